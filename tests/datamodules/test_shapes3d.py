"""Procedural shapes datamodule (the mesh paper's CI default): determinism, balance, batch format, frame and P."""
import pytest
import torch

from datamodules.shapes3d import ProceduralShapes, ProceduralShapesDataModule
from zoo.core.mesh import ops
from zoo.core.mesh.metrics import nn_distances



def test_batches_have_the_contract_format_and_meshes_as_lists():
    dm = ProceduralShapesDataModule(num_train=6, num_val=3, num_test=3, num_points=256, batch_size=4,
                                    channels=3, image_size=48, return_mesh=True)
    b = next(iter(dm.train_dataloader()))
    assert b["image"].shape == (4, 3, 48, 48) and b["image"].dtype == torch.float32
    assert 0.0 <= float(b["image"].min()) and float(b["image"].max()) <= 1.0
    assert b["points"].shape == (4, 256, 3) and b["normals"].shape == (4, 256, 3) and b["P"].shape == (4, 3, 4)
    assert b["label"].dtype == torch.long and len(b["id"]) == 4 and isinstance(b["verts"], list)
    for v, f, p, n in zip(b["verts"], b["faces"], b["points"], b["normals"]):
        # GT samples lie on the GT mesh, normals are unit
        dense = ops.sample_points(v, f, 20000, generator=torch.Generator().manual_seed(0))[0]
        assert float(nn_distances(p, dense).max()) < 0.03
        assert torch.allclose(n.norm(dim=-1), torch.ones(256), atol=1e-5)
    assert len(dm.val_dataloader().dataset) == 3 and len(dm.test_dataloader().dataset) == 3


def test_deterministic_balanced_and_seed_dependent():
    a = ProceduralShapes(6, image_size=32, num_points=64, seed=5)
    b = ProceduralShapes(6, image_size=32, num_points=64, seed=5)
    c = ProceduralShapes(6, image_size=32, num_points=64, seed=6)
    assert all(torch.equal(a[i]["image"], b[i]["image"]) and torch.equal(a[i]["points"], b[i]["points"])
               for i in range(6))
    assert not torch.equal(a[0]["points"], c[0]["points"])
    assert [int(a[i]["label"]) for i in range(6)] == [0, 1, 2, 0, 1, 2]
    assert a[1]["id"].endswith("cube")


def test_gt_points_project_onto_the_rendered_object_and_scale_range():
    ds = ProceduralShapes(9, image_size=64, num_points=500, scale_range=(0.8, 1.2), seed=1)
    for i in range(len(ds)):
        s = ds[i]
        uv = ops.project(s["points"][None], s["P"][None])[0].floor().long()
        assert float((s["image"][0][uv[:, 1], uv[:, 0]] > 0).float().mean()) > 0.99  # image and target agree
        ext = float((s["points"].max(0).values - s["points"].min(0).values).max())
        assert 0.75 < ext < 1.2 * 3 ** 0.5 + 0.01  # a rotated unit shape of scale in [0.8, 1.2]
        assert float(s["points"].mean(0).norm()) < 0.15  # object centred at the frame origin


def test_bad_arguments_raise():
    with pytest.raises(ValueError, match="kinds"):
        ProceduralShapes(3, kinds=("sphere", "pyramid"))
    with pytest.raises(ValueError, match="scale_range"):
        ProceduralShapes(3, scale_range=(1.2, 0.8))
