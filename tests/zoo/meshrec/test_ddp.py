"""The staged recipe under DDP (2 CPU processes, gloo): each stage leaves some parameters without gradient, so DDP
needs ``ddp_find_unused_parameters_true``; with it a fit through every stage ends with identical weights on both
ranks and a checkpoint that loads."""
from pathlib import Path

import pytest
import torch
from conftest import run_ddp_script

ROOT = Path(__file__).resolve().parents[3]
SCRIPT = '''
import sys, torch, lightning.pytorch as L
sys.path.insert(0, {root!r})
from datamodules.shapes3d import ProceduralShapesDataModule
from zoo.meshrec.module import RLTriMeshModule
torch.set_num_threads(1)
L.seed_everything(0)
net = {{"in_chans": 1, "encoder_widths": [8, 8, 16, 16], "num_vertices": 32, "vgn_hidden": [32], "k": 6,
        "policy_hidden": 16, "refine_stages": 2, "refine_hidden": 16, "num_graphconv": 2, "mdp": "sequential"}}
module = RLTriMeshModule(stage="all", stage_epochs=[1, 1, 1, 1], net_kwargs=net, lr=1e-3, rl_samples=2,
                         reward_points=128, loss_points=256, eval_points=300, expected_loss_weight=1.0)
data = ProceduralShapesDataModule(num_train=8, num_val=4, num_test=4, num_points=256, batch_size=2)
trainer = L.Trainer(accelerator="cpu", devices=2, strategy="ddp_find_unused_parameters_true", max_epochs=4,
                    logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                    num_sanity_val_steps=0, default_root_dir={out!r})
trainer.fit(module, data)
res = trainer.test(module, data, verbose=False)[0]
torch.save({{"state": module.net.state_dict(), "test": res}}, {out!r} + f"/rank{{trainer.global_rank}}.pt")
'''


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_ddp_fit_through_every_stage_keeps_ranks_in_sync(tmp_path):
    run_ddp_script(SCRIPT.format(root=str(ROOT), out=str(tmp_path)), tmp_path, timeout=380, WANDB_MODE="offline")
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    for key, value in r0["state"].items():
        torch.testing.assert_close(r1["state"][key], value, msg=key)
    assert r0["test"] == r1["test"]  # the logged test metrics are all-reduced
    assert {"test/chamfer", "test/chamfer_stage2", "test/euler"} <= set(r0["test"])
