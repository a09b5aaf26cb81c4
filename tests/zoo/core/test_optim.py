"""zoo.core.optim schedules against the reference formulas they claim (MoCo's adjust_learning_rate, per epoch)."""
from __future__ import annotations

import math

import pytest
import torch

from zoo.core.optim import build_optimizer, build_scheduler, step_factor


def _lrs(name: str, epochs: int, **kw) -> list[float]:
    opt = build_optimizer([torch.nn.Parameter(torch.zeros(1))], "sgd", lr=0.06)
    sched = build_scheduler(opt, name, max_epochs=epochs, **kw)["scheduler"]
    out = []
    for _ in range(epochs):
        out.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    return out


def test_multistep_is_the_moco_stepwise_schedule():
    # MoCo main_moco.py without cos: lr = 0.06, times 0.1 for every milestone in --schedule [120, 160] with epoch >= m
    expected = [0.06 * (0.1 if e >= 120 else 1.0) * (0.1 if e >= 160 else 1.0) for e in range(200)]
    assert _lrs("multistep", 200, milestones=[120, 160]) == pytest.approx(expected, rel=1e-9)
    assert [step_factor(e, [120, 160]) for e in (0, 119, 120, 159, 160, 199)] == pytest.approx(
        [1.0, 1.0, 0.1, 0.1, 0.01, 0.01])


def test_cosine_is_the_moco_and_simsiam_cosine():
    # adjust_learning_rate with cos: lr = 0.06 * 0.5 * (1 + cos(pi * epoch / epochs)), set at the start of each epoch
    expected = [0.06 * 0.5 * (1.0 + math.cos(math.pi * e / 100)) for e in range(100)]
    assert _lrs("cosine", 100) == pytest.approx(expected, rel=1e-9)


def test_unknown_schedule_and_missing_milestones_are_named():
    opt = build_optimizer([torch.nn.Parameter(torch.zeros(1))], "sgd", lr=0.1)
    with pytest.raises(ValueError, match="milestones"):
        build_scheduler(opt, "multistep", max_epochs=10)
    with pytest.raises(ValueError, match="unknown scheduler 'poly'"):
        build_scheduler(opt, "poly", max_epochs=10)
