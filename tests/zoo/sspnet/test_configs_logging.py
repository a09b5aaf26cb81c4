"""SSP-Net configs instantiate their classes; a short fit logs every block's MPJPE, the selected and last block
at test, and W&B media (skeletons on crops, 3D plots, the per-block chart)."""
import importlib
from pathlib import Path

import lightning.pytorch as L
import pytest
import torch
import yaml

ROOT = Path(__file__).resolve().parents[3]


def _cls(path):
    mod, _, name = path.rpartition(".")
    return getattr(importlib.import_module(mod), name)


@pytest.mark.parametrize("name", ["tiny", "h36m", "mpi_inf_3dhp"])
def test_config_instantiates(name):
    cfg = yaml.safe_load((ROOT / "configs" / "sspnet" / f"{name}.yaml").read_text())
    assert cfg["checkpoint"] == {"monitor": "val/mpjpe", "mode": "min"}
    module = _cls(cfg["model"]["class_path"])(**cfg["model"]["init_args"])
    data = _cls(cfg["data"]["class_path"])(**cfg["data"]["init_args"])
    assert module.net.num_blocks == (8 if name == "tiny" else 24)
    if name != "tiny":
        assert module.hparams.optimizer == "rmsprop" and data.hparams.batch_size == 14
        assert data.hparams.mix_batch_size == 14 and module.hparams.lr_milestones == [0.7, 0.9]


@pytest.mark.timeout(300)
def test_short_fit_logs_blocks_selection_and_media(tmp_path, monkeypatch):
    from lightning.pytorch.loggers import CSVLogger, WandbLogger

    from datamodules.synthetic_pose import SyntheticStickFigureDataModule
    from zoo.sspnet.module import SSPNetModule

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    L.seed_everything(0)
    model = SSPNetModule(num_pyramids=2, num_levels=3, growth=8, stem_channels=16, stem="tiny", input_size=32,
                         optimizer="adam", lr=2e-3, precise_bn_batches=2, augment=True,
                         augment_kwargs={"rotation_2d": 10})
    data = SyntheticStickFigureDataModule(num_train=64, num_val=16, num_test=16, image_size=32, batch_size=16)
    wandb_logger = WandbLogger(save_dir=str(tmp_path), offline=True, project="t")
    trainer = L.Trainer(max_epochs=2, logger=[CSVLogger(str(tmp_path)), wandb_logger], enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0)
    trainer.fit(model, data)
    metrics = trainer.callback_metrics
    for b in range(1, 5):
        assert f"val/mpjpe_b{b}" in metrics and f"val/pa_mpjpe_b{b}" in metrics
    per_block = torch.stack([metrics[f"val/mpjpe_b{b}"] for b in range(1, 5)])
    assert metrics["val/mpjpe"] == per_block.min()
    assert model.selected_block == int(per_block.argmin()) + 1
    res = trainer.test(model, data, verbose=False)[0]
    assert {"test/mpjpe", "test/mpjpe_last", "test/pa_mpjpe", "test/pck150", "test/auc"} <= set(res)
    assert res["test/selected_block"] == model.selected_block
    wandb_logger.experiment.finish()
    media = list(Path(tmp_path).rglob("media/images/val/*.png"))
    names = {p.name.split("_")[0] for p in media}
    assert len(media) >= 6 and names >= {"skeletons", "mpjpe"}, media


@pytest.mark.timeout(300)
def test_human36m_test_reports_per_action(tmp_path):
    import importlib.util

    from datamodules.human36m import Human36MDataModule
    from zoo.sspnet.module import SSPNetModule

    spec = importlib.util.spec_from_file_location("h36m_fixture", ROOT / "tests" / "datamodules" / "test_human36m.py")
    fixture = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(fixture)
    root, *_ = fixture.write_deephar(tmp_path / "h36m", subjects=(1, 9), n_frames=4)
    data = Human36MDataModule(str(root), train_subjects=[1], test_subjects=[9], train_stride=1, val_stride=2,
                              test_stride=1, image_size=32, batch_size=2, num_workers=0)
    model = SSPNetModule(num_pyramids=1, num_levels=3, growth=8, stem_channels=16, stem="tiny", input_size=32)
    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    res = trainer.test(model, data, verbose=False)[0]
    assert res["test/mpjpe_action02"] == pytest.approx(res["test/mpjpe"], rel=1e-5)  # one action: same frames
    assert res["test/mpjpe_action_mean"] == pytest.approx(res["test/mpjpe_action02"], rel=1e-6)


@pytest.mark.timeout(300)
def test_fourteen_joint_scores_match_a_direct_computation():
    from datamodules.synthetic_pose import SyntheticStickFigureDataModule
    from zoo.sspnet.metrics import lift_to_camera, mpjpe, pck3d, root_align
    from zoo.sspnet.module import PA17J_TO_14, SSPNetModule

    torch.manual_seed(0)
    model = SSPNetModule(num_pyramids=1, num_levels=3, growth=8, stem_channels=16, stem="tiny", input_size=32,
                         report_14_joints=True, precise_bn_batches=0)
    data = SyntheticStickFigureDataModule(num_train=8, num_val=8, num_test=24, image_size=32, batch_size=8)
    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    res = trainer.test(model, data, verbose=False)[0]
    ds = data.test_set
    batch = {k: torch.stack([ds[i][k] for i in range(len(ds))]) for k in ds[0]}
    with torch.no_grad():
        pose = model.eval().net(batch["image"])[model.selected_block - 1]
    lifted = lift_to_camera(pose, batch["camera"], batch["crop"], batch["root_z"], batch["depth_range"])
    idx = list(PA17J_TO_14)
    p14, g14 = root_align(lifted)[:, idx], root_align(batch["pose3d"])[:, idx]
    assert res["test/mpjpe_14j"] == pytest.approx(mpjpe(p14, g14, root=None).item(), rel=1e-4)
    assert res["test/pck150_14j"] == pytest.approx(100 * (((p14 - g14).norm(dim=-1) < 150).float().mean()).item(),
                                                   rel=1e-4)
    assert res["test/mpjpe_14j"] != pytest.approx(res["test/mpjpe"], rel=1e-3)
