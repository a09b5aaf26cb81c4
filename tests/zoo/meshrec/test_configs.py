"""The mesh configs instantiate their classes with the spec's hyperparameters and monitor the final-stage chamfer."""
import importlib
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[3]


def _cls(path):
    mod, _, name = path.rpartition(".")
    return getattr(importlib.import_module(mod), name)


@pytest.mark.parametrize("name", ["tiny", "tiny_bandit", "tiny_template", "shapenet", "pix3d"])
def test_config_instantiates_with_the_spec_hyperparameters(name):
    cfg = yaml.safe_load((ROOT / "configs" / "meshrec" / f"{name}.yaml").read_text())
    assert cfg["checkpoint"] == {"monitor": "val/chamfer", "mode": "min"}
    args = dict(cfg["model"]["init_args"])
    net_kwargs = dict(args["net_kwargs"])
    net_kwargs["pretrained_backbone"] = False  # no ImageNet weights offline
    module = _cls(cfg["model"]["class_path"])(**{**args, "net_kwargs": net_kwargs})
    data = _cls(cfg["data"]["class_path"])(**cfg["data"]["init_args"])
    assert type(module).__name__ == "RLTriMeshModule"
    assert data.hparams.return_mesh  # Mesh R-CNN's metrics sample the GT meshes themselves
    assert module.hparams.meshrcnn_samples == 10_000  # as Mesh R-CNN compare_meshes
    if name.startswith("tiny"):
        assert data.hparams.num_train == 96 and data.hparams.image_size == 64 and data.hparams.channels == 1
        assert module.hparams.lr == 1e-3  # the toy's Adam lr (spec 10)
    if name.startswith("tiny") and name != "tiny_template":
        assert module.net.mdp == ("sequential" if name == "tiny" else "bandit")
        assert module.net.num_vertices == 96 and module.net.candidate_builder.k == 8
        assert len(module.net.refiner.stages) == 2 and module.hparams.rl_samples == 4
    if name in ("shapenet", "pix3d"):
        h = module.hparams
        assert (h.lr, h.policy_lr, h.rl_samples, h.entropy_beta) == (1e-4, 3e-4, 8, 1e-3)
        assert list(h.stage_epochs) == [5, 5, 5, 10] and sum(h.stage_epochs) == cfg["trainer"]["max_epochs"] == 25
        assert module.net.num_vertices == 1024 and module.net.candidate_builder.k == 12
        assert module.net.encoder.kind == "resnet50" and len(module.net.refiner.stages) == 3
        assert module.net.refiner.stages[0].hidden == 128 and h.loss_points == 5000 and h.eval_points == 10000
        assert (h.reward_cd, h.reward_nm, h.reward_faces, h.reward_overlap) == (10.0, 0.5, 0.1, 0.01)
        assert (h.w_chamfer, h.w_normal, h.w_edge, h.w_laplacian) == (1.0, 0.1, 0.2, 0.05)
        assert data.hparams.batch_size == 32
    if name == "shapenet":
        assert data.hparams.image_size == 137 and set(module.hparams.protocols) == {"gt-10", "p2m"}
