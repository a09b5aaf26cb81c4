"""RLTriMeshModule: the staged recipe trains exactly the parameters of its stage, separate learning rates per group,
the spec's metrics per stage, and W&B 3D objects for the predicted meshes."""
from pathlib import Path

import lightning.pytorch as L
import pytest
import torch

from datamodules.shapes3d import ProceduralShapesDataModule
from zoo.meshrec.module import RLTriMeshModule

NET = {"in_chans": 1, "encoder_widths": [8, 8, 16, 16], "num_vertices": 32, "vgn_hidden": [32], "k": 6,
       "policy_hidden": 16, "refine_stages": 2, "refine_hidden": 16, "num_graphconv": 2}


def _batch(n=2):
    data = ProceduralShapesDataModule(num_train=n, num_val=1, num_test=1, num_points=256, batch_size=n)
    data.setup("fit")
    return next(iter(data.train_dataloader()))


def _grads(module):
    return {name: any(p.grad is not None and p.grad.abs().sum() > 0 for p in child.parameters())
            for name, child in module.net.named_children() if list(child.parameters())}


@pytest.mark.parametrize("stage,trained", [
    ("vgn", {"encoder", "vgn"}), ("policy", {"policy"}), ("refiner", {"refiner"}),
    ("joint", {"encoder", "vgn", "policy", "refiner"})])
def test_each_stage_trains_its_own_parameters(stage, trained):
    torch.manual_seed(0)
    module = RLTriMeshModule(stage=stage, net_kwargs=NET, rl_samples=3, reward_points=128, loss_points=128,
                             expected_loss_weight=1.0, skip_loss_above=None)
    module.log_dict = lambda *a, **k: None
    loss = module.training_step(_batch(), 0)
    loss.backward()
    assert {k for k, v in _grads(module).items() if v} == trained


def test_stage_all_walks_through_stage_epochs_and_template_trains_the_refiner():
    module = RLTriMeshModule(stage="all", stage_epochs=[2, 1, 1, 3], net_kwargs=NET)
    seen = [module.current_stage(epoch) for epoch in range(8)]
    assert seen == ["vgn", "vgn", "policy", "refiner", "joint", "joint", "joint", "joint"]
    tpl = RLTriMeshModule(pipeline="template", net_kwargs={k: v for k, v in NET.items() if k in (
        "in_chans", "encoder_widths", "refine_stages", "refine_hidden", "num_graphconv")} | {"template_level": 1})
    assert tpl.current_stage() == "refiner"
    tpl.log_dict = lambda *a, **k: None
    opt = tpl.configure_optimizers()
    for _ in range(2):  # the zero-initialised offset layers pass no gradient upstream on the very first step
        opt.zero_grad()
        tpl.training_step(_batch(), 0).backward()
        opt.step()
    assert _grads(tpl) == {"encoder": True, "refiner": True}
    with pytest.raises(ValueError, match="stage"):
        RLTriMeshModule(stage="everything")
    with pytest.raises(ValueError, match="stage_epochs"):
        RLTriMeshModule(stage="all", stage_epochs=[1, 2])


def test_parameter_groups_and_joint_learning_rate():
    module = RLTriMeshModule(net_kwargs=NET, lr=1e-4, policy_lr=3e-4)
    opt = module.configure_optimizers()
    lrs = {g["name"]: g["lr"] for g in opt.param_groups}
    assert lrs == {"vgn_refiner": 1e-4, "policy": 3e-4}
    policy_ids = {id(p) for p in module.net.policy.parameters()}
    assert {id(p) for p in opt.param_groups[1]["params"]} == policy_ids
    assert sum(len(g["params"]) for g in opt.param_groups) == len(list(module.net.parameters()))
    module.hparams.stage = "joint"  # stage D: both groups at joint_lr_scale (0.1) times their own rate
    module.apply_stage_lr([opt])
    assert {g["name"]: g["lr"] for g in opt.param_groups} == pytest.approx({"vgn_refiner": 1e-5, "policy": 3e-5})
    module.hparams.stage = "refiner"
    module.apply_stage_lr([opt])
    assert {g["name"]: g["lr"] for g in opt.param_groups} == {"vgn_refiner": 1e-4, "policy": 3e-4}


@pytest.mark.timeout(300)
def test_short_fit_logs_stage_metrics_and_wandb_meshes(tmp_path, monkeypatch):
    from lightning.pytorch.loggers import CSVLogger, WandbLogger

    from zoo.core.wandb_records import read_run

    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    L.seed_everything(0)
    module = RLTriMeshModule(stage="all", stage_epochs=[1, 1, 1, 1], net_kwargs=NET, lr=1e-3, rl_samples=2,
                             reward_points=128, loss_points=256, eval_points=500, protocols=["gt-10", "p2m"],
                             meshrcnn_samples=1000, expected_loss_weight=1.0, max_media=2)
    data = ProceduralShapesDataModule(num_train=8, num_val=4, num_test=4, num_points=256, batch_size=4,
                                      return_mesh=True)
    wandb_logger = WandbLogger(save_dir=str(tmp_path), offline=True, project="meshrec")
    trainer = L.Trainer(max_epochs=4, logger=[CSVLogger(str(tmp_path)), wandb_logger], enable_checkpointing=False,
                        enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                        default_root_dir=tmp_path)
    trainer.fit(module, data)
    res = trainer.test(module, data, verbose=False)[0]
    preds = [p for batch in trainer.predict(module, data.test_dataloader()) for p in batch]
    assert len(preds) == 4 and preds[0]["vertices"].shape == (32, 3)
    assert preds[0]["mesh"][1].shape[0] == 4 * preds[0]["decoded"][1].shape[0]  # one subdivision after stage 1
    wandb_logger.experiment.finish()
    for key in ("chamfer", "chamfer_vertices", "chamfer_stage0", "chamfer_stage1", "chamfer_stage2", "normal",
                "f1@0.1", "f1@0.3", "f1@0.5", "chamfer_l2", "euler", "nonmanifold", "p2m_f1@0.01", "p2m_f1@0.014142",
                "p2m_chamfer_l2", "cached_normal", "cached_f1@0.1", "cached_f1@0.5", "cached_p2m_f1@0.01",
                "cached_p2m_chamfer"):
        assert f"test/{key}" in res, key
    assert res["test/chamfer"] == res["test/chamfer_stage2"]
    assert 0 <= res["test/nonmanifold"] <= 1 and 0 <= res["test/cached_f1@0.5"] <= 1
    assert 0 <= res["test/f1@0.1"] <= res["test/f1@0.5"] <= 100  # Mesh R-CNN's F1 is in percent
    # Chamfer-L2 at the gt-10 scale: the GT of these shapes has a longest edge near 1, so about 100x the unit chamfer
    assert res["test/chamfer_l2"] > 10 * res["test/chamfer"]
    run = read_run(next(Path(tmp_path).glob("wandb/offline-run-*")))  # waits for the run's exit record
    assert run["finished"]
    keys = {k for row in run["history"] for k in row}
    assert {"train/reward_epoch", "train/keep_rate_epoch", "val/chamfer_stage1", "val/euler"} <= keys
    logged = [row for row in run["history"] if "val/meshes/count" in row]
    assert len(logged) == 4 and all(r["val/meshes/count"] == 2 and r["val/meshes/_type"] == "object3D" for r in logged)
    assert all(r["val/meshes_gt/count"] == 2 for r in logged)  # the GT clouds beside them
    charts = [row for row in run["history"] if any(k.startswith("val/chamfer_per_stage") for k in row)]
    assert len(charts) == 4  # the per-stage chamfer chart at every validation
    glb = list(Path(tmp_path).rglob("media/object3D/val/*.glb"))
    assert glb and glb[0].read_bytes()[:4] == b"glTF"
