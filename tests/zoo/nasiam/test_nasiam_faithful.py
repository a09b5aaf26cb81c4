"""The spec's small-scale faithful check (section 9): search SimSiam heads on digits, pre-train the derived and the
hand-designed heads from scratch, probe the frozen backbones with logistic regression."""
import math

import pytest

from tests.conftest import faithful_report

from .faithful_utils import run_check


@pytest.mark.faithful
@pytest.mark.timeout(400)
def test_nasiam_search_moves_away_from_uniform_and_the_derived_head_learns_like_the_baseline(faithful_seed):
    r = run_check(seed=faithful_seed, arch_lr=1e-2)
    faithful_report("nasiam", faithful_seed, **{k: v for k, v in r.items() if k != "genotype"})
    uniform = math.log(7)
    assert r["entropy_e"] < uniform - 0.02 and r["entropy_p"] < uniform - 0.02  # alpha left the uniform start
    assert r["pool_weight"] < 1 / 7  # the two pooling ops lost weight (the spec's SimSiam pattern)
    assert r["probe_nasiam"] >= r["probe_random"] + 0.4  # the representation was learnt
    assert r["probe_nasiam"] >= r["probe_standard"] - 0.03  # within a margin of the hand-designed head
    for name in ("nasiam", "standard"):
        assert r[f"z_std_{name}"] >= 0.5 / math.sqrt(64)  # no collapse (1/sqrt(d) = 0.125 when spread)
