"""RRR-Net (manual optimisation, one pass per branch) on 2 CPU processes (gloo): identical weights on both ranks after the steps, test metrics reduced over the
global test set, validation without deadlock (issue 13.3)."""
import pytest
from ddp_checks import check_ddp_run


@pytest.mark.slow
def test_tiny_config_under_ddp_keeps_ranks_in_sync_and_reduces_metrics(tmp_path):
    check_ddp_run("configs/backbone_reduction/tiny.yaml", tmp_path, metrics={"test/acc"}, extra=[])
