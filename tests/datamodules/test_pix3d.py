"""Pix3D datamodule on a tiny copy of the real layout (pix3d.json, img/, mask/, model/*.obj, Mesh R-CNN COCO splits).

Images and masks are drawn here with Mesh R-CNN's Pix3D camera (X = R x + t, u = w/2 - f X/Z, v = h/2 - f Y/Z,
f = focal_mm * width / 32), independently of the loader's frame conversion and crop.
"""
import json

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image

import datamodules.pix3d as pix3d
from datamodules.pix3d import Pix3DDataModule, mask_agreement
from zoo.core.mesh import ops
from zoo.core.mesh.render import random_rotation

MODELS = {"chair": "model/chair/IKEA_A/model.obj", "table": "model/table/IKEA_B/model.obj"}


def _write_pix3d(root, n_images=6):
    meshes = {"chair": trimesh.creation.box(extents=(0.5, 0.9, 0.4)), "table": trimesh.creation.cylinder(0.4, 0.3)}
    dense = {}
    for cat, mesh in meshes.items():
        path = root / MODELS[cat]
        path.parent.mkdir(parents=True)
        mesh.export(path)
        v, f = torch.tensor(mesh.vertices, dtype=torch.float32), torch.tensor(mesh.faces)
        dense[cat] = ops.sample_points(v, f, 30000, generator=torch.Generator().manual_seed(0))[0]
    g = torch.Generator().manual_seed(1)
    records, images, anns = [], [], []
    for i in range(n_images):
        cat = ("chair", "table")[i % 2]
        w, h = (160, 120) if i % 3 else (100, 140)
        rot = random_rotation(g)
        t = torch.tensor([0.15 * (i % 3 - 1), -0.1, 3.0 + 0.3 * i])
        focal = 35.0 + 5 * i
        fpx = focal * w / 32
        cam = dense[cat] @ rot.t() + t
        u, v = w / 2 - fpx * cam[:, 0] / cam[:, 2], h / 2 - fpx * cam[:, 1] / cam[:, 2]
        ui, vi = u.floor().long().clamp(0, w - 1).numpy(), v.floor().long().clamp(0, h - 1).numpy()
        img, mask = np.zeros((h, w, 3), np.uint8), np.zeros((h, w), np.uint8)
        img[vi, ui], mask[vi, ui] = (220, 200, 180), 255
        name = f"img/{cat}/{i:04d}.{'png' if i % 2 else 'jpg'}"
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / f"mask/{cat}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(img).save(root / name, quality=100)
        Image.fromarray(mask).save(root / f"mask/{cat}/{i:04d}.png")
        bbox = [int(u.min()), int(v.min()), int(np.ceil(float(u.max()))), int(np.ceil(float(v.max())))]
        records.append({"img": name, "category": cat, "img_size": [w, h], "mask": f"mask/{cat}/{i:04d}.png",
                        "model": MODELS[cat], "rot_mat": rot.tolist(), "trans_mat": t.tolist(),
                        "focal_length": focal, "bbox": bbox, "truncated": i == 5, "occluded": False,
                        "slightly_occluded": False, "voxel": "", "cam_position": [0, 0, 0], "inplane_rotation": 0})
        images.append({"id": i + 1, "file_name": name, "width": w, "height": h})
        anns.append({"id": 10 + i, "image_id": i + 1, "category_id": 3 if cat == "chair" else 7, "iscrowd": 0,
                     "bbox": [bbox[0], bbox[1], bbox[2] - bbox[0], bbox[3] - bbox[1]], "K": [fpx, w / 2, h / 2],
                     "rot_mat": rot.tolist(), "trans_mat": t.tolist(), "model": MODELS[cat],
                     "segmentation": f"mask/{cat}/{i:04d}.png"})
    (root / "pix3d.json").write_text(json.dumps(records))
    cats = [{"id": k + 1, "name": c} for k, c in enumerate(pix3d.PIX3D_CATEGORIES)]
    for split, ids in (("train", [0, 1, 2, 3]), ("test", [4, 5])):
        (root / f"pix3d_s1_{split}.json").write_text(json.dumps(
            {"images": [images[k] for k in ids], "annotations": [anns[k] for k in ids], "categories": cats}))


def _on_object(s, size):
    uv = ops.project(s["points"][None], s["P"][None])[0]
    inside = ((uv >= 0) & (uv < size)).all(-1).float().mean()
    ij = uv.floor().long().clamp(0, size - 1)
    return float(inside), float((s["image"].sum(0)[ij[:, 1], ij[:, 0]] > 0).float().mean()), uv


@pytest.mark.parametrize("split_json", ["pix3d_s1", None])
def test_crops_points_and_P_agree_with_the_image(tmp_path, split_json):
    _write_pix3d(tmp_path)
    dm = Pix3DDataModule(str(tmp_path), split_json=split_json, image_size=64, num_points=300, batch_size=3,
                         test_fraction=1 / 3, return_mesh=True)
    dm.setup()
    assert {k: len(v) for k, v in dm.datasets.items()} == {"train": 4, "val": 2, "test": 2}
    b = next(iter(dm.train_dataloader()))
    assert b["image"].shape == (3, 3, 64, 64) and b["points"].shape == (3, 300, 3) and b["P"].shape == (3, 3, 4)
    assert set(b["label"].tolist()) <= {2, 6}  # chair, table in the 9 Pix3D categories
    for ds in dm.datasets.values():
        for i in range(len(ds)):
            s = ds[i]
            inside, on, uv = _on_object(s, 64)
            assert inside == 1.0 and on > 0.93
            # the crop is the square around the GT box: the object spans the crop along its longer side
            span = (uv.max(0).values - uv.min(0).values).max()
            assert 56 < float(span) <= 64.5
    assert mask_agreement(dm.datasets["train"]) > 0.95


def test_mask_agreement_detects_a_wrong_axis_convention(tmp_path, monkeypatch):
    _write_pix3d(tmp_path)
    dm = Pix3DDataModule(str(tmp_path), split_json="pix3d_s1", image_size=64, num_points=300)
    dm.setup()
    good = mask_agreement(dm.datasets["train"])
    monkeypatch.setattr(pix3d, "PIX3D_TO_OURS", torch.eye(3))  # forget the x/y flip
    assert good > 0.95 and mask_agreement(dm.datasets["train"]) < 0.7


def test_options_and_errors(tmp_path):
    _write_pix3d(tmp_path)
    dm = Pix3DDataModule(str(tmp_path), split_json="pix3d_s1", categories=["table"], skip_truncated_occluded=True,
                         image_size=32, num_points=50, val_fraction=0.5, mask_background=True)
    dm.setup()
    assert {k: len(v) for k, v in dm.datasets.items()} == {"train": 1, "val": 1, "test": 0}  # image 5 is truncated
    assert dm.num_classes == 1 and int(dm.datasets["train"][0]["label"]) == 0
    with pytest.raises(ValueError, match="unknown Pix3D categories"):
        Pix3DDataModule(str(tmp_path), categories=["lamp"])
    with pytest.raises(FileNotFoundError, match="pix3d_s2_train.json"):
        Pix3DDataModule(str(tmp_path), split_json="pix3d_s2").setup()
    with pytest.raises(FileNotFoundError, match="pix3d.csail.mit.edu"):
        Pix3DDataModule(str(tmp_path / "missing")).setup()
    with pytest.raises(FileNotFoundError, match="not downloaded automatically"):
        Pix3DDataModule(str(tmp_path), download=True).setup()
    recs = json.loads((tmp_path / "pix3d.json").read_text())
    del recs[2]["rot_mat"]
    (tmp_path / "pix3d.json").write_text(json.dumps(recs))
    with pytest.raises(ValueError, match=r"record 2 lacks \['rot_mat'\]"):
        Pix3DDataModule(str(tmp_path), split_json=None).setup()
    (tmp_path / "pix3d_s1_test.json").write_text("[1, 2")
    with pytest.raises(ValueError, match="pix3d_s1_test.json: not valid JSON"):
        Pix3DDataModule(str(tmp_path)).setup()


def test_samples_cache_dir_parses_each_obj_once(tmp_path):
    root, cache = tmp_path / "pix3d", tmp_path / "cache"
    root.mkdir()
    _write_pix3d(root)
    kw = dict(split_json="pix3d_s1", image_size=32, num_points=100, samples_cache_dir=str(cache))
    dm = Pix3DDataModule(str(root), **kw)
    dm.setup()
    first = dm.datasets["test"][0]
    assert len(list(cache.glob("*.pt"))) == 1  # test split: images 4 and 5 (chair, table); one model read so far
    for p in MODELS.values():
        (root / p).write_text("not an obj")  # from now on only the cache can serve the chair's samples
    dm2 = Pix3DDataModule(str(root), **kw)
    dm2.setup()
    assert torch.equal(dm2.datasets["test"][0]["points"], first["points"])
    with pytest.raises(ValueError, match="model.obj"):
        dm2.datasets["test"][1]  # the table was never cached: its (now broken) OBJ is parsed and rejected
