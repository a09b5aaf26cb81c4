"""The model trains and evaluates on batches of the real dataset layouts (tiny copies written by the datamodule
tests: ShapeNet R2N2 + OBJ, Pix3D json + crops), 3-channel images, in the view-aligned frame of each."""
import importlib.util
from pathlib import Path

import lightning.pytorch as L
import pytest
import torch

from zoo.meshrec.module import RLTriMeshModule

ROOT = Path(__file__).resolve().parents[3]
NET = {"in_chans": 3, "encoder_widths": [8, 8, 16, 16], "num_vertices": 32, "vgn_hidden": [32], "k": 6,
       "policy_hidden": 16, "refine_stages": 2, "refine_hidden": 16, "num_graphconv": 2}


def _fixture(name):
    spec = importlib.util.spec_from_file_location(f"meshrec_{name}_fixture", ROOT / "tests" / "datamodules" / name)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _fit_and_test(module, data, tmp_path):
    trainer = L.Trainer(max_epochs=4, limit_train_batches=1, limit_val_batches=1, limit_test_batches=1, logger=False,
                        enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                        num_sanity_val_steps=0, default_root_dir=tmp_path)
    before = {k: v.clone() for k, v in module.net.state_dict().items()}
    trainer.fit(module, data)
    res = trainer.test(module, data, verbose=False)[0]
    moved = {k.split(".")[0] for k, v in module.net.state_dict().items() if v.dtype.is_floating_point
             and not torch.equal(v, before[k])}
    return res, moved


@pytest.mark.timeout(300)
def test_shapenet_r2n2_batches_train_every_stage(tmp_path):
    from datamodules.shapenet import ShapeNetR2N2DataModule

    _fixture("test_shapenet.py")._write_r2n2(tmp_path / "shapenet")
    data = ShapeNetR2N2DataModule(str(tmp_path / "shapenet"), "r2n2", synsets=["02691156", "03001627"],
                                  num_points=300, image_size=64, batch_size=3, return_mesh=True)
    L.seed_everything(0)
    module = RLTriMeshModule(stage="all", stage_epochs=[1, 1, 1, 1], net_kwargs=NET, lr=1e-3, rl_samples=2,
                             reward_points=128, loss_points=256, eval_points=400, protocols=["gt-10", "p2m"],
                             meshrcnn_samples=1000)
    res, moved = _fit_and_test(module, data, tmp_path)
    assert moved >= {"encoder", "vgn", "policy", "refiner"}
    assert all(torch.isfinite(torch.tensor(v)) for v in res.values())
    assert {"test/chamfer", "test/f1@0.3", "test/p2m_f1@0.01", "test/chamfer_l2", "test/cached_f1@0.3",
            "test/euler"} <= set(res)


@pytest.mark.timeout(300)
def test_pix3d_crops_evaluate_with_the_template_baseline_and_the_rl_pipeline(tmp_path):
    from datamodules.pix3d import Pix3DDataModule

    _fixture("test_pix3d.py")._write_pix3d(tmp_path / "pix3d")
    data = Pix3DDataModule(str(tmp_path / "pix3d"), split_json=None, image_size=64, num_points=300, batch_size=2,
                           test_fraction=1 / 3)
    L.seed_everything(0)
    tpl = RLTriMeshModule(pipeline="template", lr=1e-3, loss_points=256, eval_points=400, net_kwargs={
        "in_chans": 3, "encoder_widths": [8, 8, 16, 16], "template_level": 1, "refine_hidden": 16})
    res, moved = _fit_and_test(tpl, data, tmp_path)
    assert moved == {"encoder", "refiner"} and res["test/euler"] == 2.0
    module = RLTriMeshModule(stage="vgn", net_kwargs=NET, lr=1e-3, eval_points=400)
    res, moved = _fit_and_test(module, data, tmp_path)
    assert moved == {"encoder", "vgn"} and res["test/chamfer_vertices"] > 0
