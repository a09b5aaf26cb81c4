"""The paper config (MET, WRN-28-4, 3x3 x 40 px, 4 px gaps, 1000 simulations) runs on a tiny MET-style folder."""
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml
from PIL import Image

ROOT = Path(__file__).resolve().parents[3]


def test_met_config_holds_the_paper_settings():
    cfg = yaml.safe_load((ROOT / "configs/alphazzle/met.yaml").read_text())
    m, d = cfg["model"]["init_args"], cfg["data"]["init_args"]
    assert (m["grid"], m["frag"], m["gap"], m["encoder"], m["num_simulations"]) == (3, 40, 4, "wrn28_4", 1000)
    assert (m["c_puct"], m["unvisited_bonus"], m["lr"], d["batch_size"]) == (1.0, 1000.0, 1e-3, 64)
    assert cfg["checkpoint"] == {"monitor": "val/frag_acc", "mode": "max"}


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_met_config_trains_one_step_on_a_tiny_image_folder(tmp_path):
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        d = tmp_path / "MET" / f"dataset_{split}"
        d.mkdir(parents=True)
        for i in range(2):
            Image.fromarray(rng.integers(0, 256, (140, 170, 3), dtype=np.uint8)).save(d / f"img{i}.jpg")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    cmd = [sys.executable, "-m", "zoo.cli", "fit", "--config", str(ROOT / "configs/alphazzle/met.yaml"),
           "--trainer.default_root_dir", str(tmp_path / "run"), "--trainer.fast_dev_run", "1",
           "--trainer.accelerator", "cpu", "--trainer.logger", "false",
           "--data.init_args.data_dir", str(tmp_path / "MET"), "--data.init_args.batch_size", "2",
           "--data.init_args.num_workers", "0"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stderr[-3000:]


def test_skimage_smoke_config_pipeline_and_oracle(tmp_path):
    import lightning.pytorch as pl

    from datamodules.puzzles import SkimagePuzzleDataModule
    from zoo.alphazzle.module import AlphazzleModule

    cfg = yaml.safe_load((ROOT / "configs/alphazzle/skimage.yaml").read_text())
    pl.seed_everything(0)
    kwargs = {**cfg["model"]["init_args"], "test_solver": "mcts_oracle_dense", "num_simulations": 20}
    module = AlphazzleModule(**kwargs)
    dm = SkimagePuzzleDataModule(**{**cfg["data"]["init_args"], "train_size": 32, "eval_size": 8})
    trainer = pl.Trainer(max_steps=4, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0, default_root_dir=tmp_path)
    trainer.fit(module, dm)
    res = trainer.test(module, dm)[0]
    assert res["test/perfect"] == 1.0  # spec: oracle MCTS = 100 % on the smoke set
