"""SSP-Net weights: the shipped synthetic-data entry beats the mean pose on unseen figures; a `zoo fit`
checkpoint of this paper loads through zoo.load and load_from_checkpoint."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

import zoo
from datamodules.synthetic_pose import SyntheticStickFigures
from zoo.sspnet.metrics import PerBlockPoseMetrics, lift_to_camera, mpjpe

ROOT = Path(__file__).resolve().parents[3]


def _stack(ds):
    return {k: torch.stack([ds[i][k] for i in range(len(ds))]) for k in ds[0]}


def test_shipped_weights_beat_the_mean_pose_on_unseen_figures():
    net = zoo.load("sspnet_synthetic")
    assert net.num_blocks == 8 and 1 <= int(net.selected_block) <= 8
    ref, test = _stack(SyntheticStickFigures(512, 64, seed=777)), _stack(SyntheticStickFigures(128, 64, seed=778))
    mean_pose = (ref["pose3d"] - ref["pose3d"][:, :1]).mean(0, keepdim=True)
    baseline = mpjpe(mean_pose.expand_as(test["pose3d"]), test["pose3d"]).item()
    with torch.no_grad():
        poses = net(test["image"])
        selected = net.predict(test["image"])
    torch.testing.assert_close(selected, poses[int(net.selected_block) - 1])
    metric = PerBlockPoseMetrics(8)
    metric.update([lift_to_camera(p, test["camera"], test["crop"], test["root_z"], test["depth_range"]) for p in poses],
                  test["pose3d"])
    per_block = metric.compute()["mpjpe"]
    assert per_block[int(net.selected_block) - 1] < 0.6 * baseline
    assert per_block[0] > per_block[-1]


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_zoo_fit_checkpoint_loads_both_ways(tmp_path):
    from zoo.sspnet.module import SSPNetModule

    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    cmd = [sys.executable, "-m", "zoo.cli", "fit", "--config", str(ROOT / "configs/sspnet/tiny.yaml"),
           "--trainer.default_root_dir", str(tmp_path), "--trainer.max_epochs", "1", "--trainer.logger", "false",
           "--data.init_args.num_train", "64", "--data.init_args.num_val", "16", "--data.init_args.num_test", "16",
           "--data.init_args.batch_size", "16", "--test_after_fit", "false"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=500)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = next((tmp_path / "checkpoints").glob("best*.ckpt"))
    net = zoo.load(str(ckpt))
    module = SSPNetModule.load_from_checkpoint(ckpt, weights_only=True, map_location="cpu")
    x = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(net(x)[-1], module.eval()(x)[-1])
    assert int(net.selected_block) == module.selected_block
