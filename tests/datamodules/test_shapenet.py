"""ShapeNet datamodule on tiny copies of the R2N2 (+ ShapeNetCore v1 OBJ) and Mesh R-CNN preprocessed layouts.

The images are drawn here through Mesh R-CNN's own camera pipeline (its extrinsic formula, Blender intrinsic, NDC to
pixels), independently of the loader's frame conversion, so the loader's points and P must land on them.
"""
import json
import math

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image

from datamodules.shapenet import ShapeNetR2N2DataModule, parse_rendering_metadata
from zoo.core.mesh import ops

SIZE = 137
VIEWS = [(30.0, 20.0, 0.0, 0.8, 25.0), (150.0, 35.0, 0.0, 0.7, 25.0), (260.0, -5.0, 0.0, 0.9, 25.0)]


def _meshrcnn_rt(az, el, dist):
    """Mesh R-CNN's shapenet/utils/coords.py compute_extrinsic_matrix, written out (OpenGL camera, OBJ quirk)."""
    a, e = -math.radians(az), -math.radians(el)
    sa, ca, se, ce = math.sin(a), math.cos(a), math.sin(e), math.cos(e)
    world2obj = torch.tensor([[ca * ce, sa * ce, -se], [-sa, ca, 0], [ca * se, sa * se, ce]])
    obj2cam = torch.tensor([[0.0, 1, 0], [0, 0, 1], [1, 0, 0]])
    rt = torch.eye(4)
    rt[:3, :3] = obj2cam @ world2obj
    rt[:3, 3] = -obj2cam @ torch.tensor([dist, 0.0, 0.0])
    quirk = torch.tensor([[1.0, 0, 0, 0], [0, 0, -1, 0], [0, 1, 0, 0], [0, 0, 0, 1]])
    return rt @ quirk


BLENDER_K = torch.tensor([[2.1875, 0, 0, 0], [0, 2.1875, 0, 0], [0, 0, -1.002002, -0.2002002], [0, 0, -1.0, 0]])


def _draw(points, rt):
    """RGBA image of the points projected by Mesh R-CNN's K @ RT, NDC (y up) to pixels."""
    hom = torch.cat([points, torch.ones(len(points), 1)], 1) @ (BLENDER_K @ rt).t()
    ndc = hom[:, :3] / hom[:, 3:]
    u = ((ndc[:, 0] + 1) / 2 * SIZE).floor().long().clamp(0, SIZE - 1)
    v = ((1 - ndc[:, 1]) / 2 * SIZE).floor().long().clamp(0, SIZE - 1)
    img = np.zeros((SIZE, SIZE, 4), np.uint8)
    img[v.numpy(), u.numpy()] = (200, 180, 160, 255)
    return img


def _shapes():
    box = trimesh.creation.box(extents=(0.6, 0.3, 0.4))
    box.apply_translation((0.05, 0.0, -0.02))
    return {"02691156": [box, trimesh.creation.icosphere(2, radius=0.3)],
            "03001627": [trimesh.creation.annulus(0.1, 0.3, 0.2), trimesh.creation.cylinder(0.2, 0.5),
                         trimesh.creation.box(extents=(0.2, 0.5, 0.3))]}


def _dense(mesh):
    v, f = torch.tensor(mesh.vertices, dtype=torch.float32), torch.tensor(mesh.faces)
    return ops.sample_points(v, f, 30000, generator=torch.Generator().manual_seed(0))


def _write_r2n2(root):
    for sid, meshes in _shapes().items():
        for k, mesh in enumerate(meshes):
            mid = f"model{k}"
            obj = root / "ShapeNetCore.v1" / sid / mid / "model.obj"
            obj.parent.mkdir(parents=True)
            mesh.export(obj)
            rd = root / "ShapeNetRendering" / sid / mid / "rendering"
            rd.mkdir(parents=True)
            rd.joinpath("rendering_metadata.txt").write_text("\n".join(" ".join(map(str, v)) for v in VIEWS) + "\n")
            rd.joinpath("renderings.txt").write_text("\n".join(f"{i:02d}.png" for i in range(len(VIEWS))) + "\n")
            pts, _ = _dense(mesh)
            for i, (az, el, _, ratio, _) in enumerate(VIEWS):
                Image.fromarray(_draw(pts, _meshrcnn_rt(az, el, 1.75 * ratio))).save(rd / f"{i:02d}.png")


def _write_meshrcnn(root):
    summary, split = {}, {"train": {}, "val": {}, "test": {}}
    for sid, meshes in _shapes().items():
        summary[sid] = {}
        for k, mesh in enumerate(meshes):
            mid, d = f"model{k}", root / sid / f"model{k}"
            (d / "images").mkdir(parents=True)
            rts = torch.stack([_meshrcnn_rt(az, el, 1.75 * r) for az, el, _, r, _ in VIEWS])
            torch.save({"image_list": [f"{i:02d}.png" for i in range(len(VIEWS))], "intrinsic": BLENDER_K,
                        "extrinsics": rts}, d / "metadata.pt")
            torch.save({"verts": torch.tensor(mesh.vertices, dtype=torch.float32),
                        "faces": torch.tensor(mesh.faces)}, d / "mesh.pt")
            pts, nrm = _dense(mesh)
            torch.save({"points_sampled": pts, "normals_sampled": nrm}, d / "samples.pt")
            for i in range(len(VIEWS)):
                Image.fromarray(_draw(pts, rts[i])[..., :3]).save(d / "images" / f"{i:02d}.png")
            summary[sid][mid] = len(VIEWS)
            split["train" if k == 0 else "val" if k == 1 else "test"].setdefault(sid, {})[mid] = [0, 2]
    (root / "summary.json").write_text(json.dumps(summary))
    (root / "splits.json").write_text(json.dumps(split))


def _on_object(batch, size):
    """Fraction of GT points whose projection by P lands on a drawn (non-black) pixel."""
    uv = ops.project(batch["points"], batch["P"]).floor().long().clamp(0, size - 1)
    lit = batch["image"].sum(1) > 0
    b = torch.arange(len(uv))[:, None].expand(-1, uv.shape[1])
    return float(lit[b, uv[..., 1], uv[..., 0]].float().mean())


@pytest.mark.parametrize("size", [SIZE, 64])
def test_r2n2_layout_points_and_P_match_meshrcnn_rendering(tmp_path, size):
    _write_r2n2(tmp_path)
    dm = ShapeNetR2N2DataModule(str(tmp_path), "r2n2", synsets=["02691156", "03001627"], num_points=400,
                                image_size=size, batch_size=6, return_mesh=True)
    dm.setup()
    assert {k: len(v) for k, v in dm.datasets.items()} == {"train": 9, "val": 6, "test": 6}  # val = test (fallback)
    b = next(iter(dm.test_dataloader()))
    assert b["image"].shape == (6, 3, size, size) and b["points"].shape == (6, 400, 3) and b["P"].shape == (6, 3, 4)
    assert set(b["label"].tolist()) <= {0, 1} and b["id"][0].startswith(("02691156-", "03001627-"))
    assert _on_object(b, size) > (0.97 if size == SIZE else 0.95)
    for v, f, p in zip(b["verts"], b["faces"], b["points"]):  # GT points lie on the GT mesh in the same frame
        dense = ops.sample_points(v, f, 20000, generator=torch.Generator().manual_seed(1))[0]
        assert float(ops.nn_distances(p, dense).max()) < 0.03
    # view-aligned: a model's points differ between its views by a rotation only (centroid norm kept)
    s0, s1 = dm.datasets["train"][0], dm.datasets["train"][1]
    assert s0["id"][:-2] == s1["id"][:-2]
    assert float(s0["points"].norm(dim=-1).mean()) == pytest.approx(float(s1["points"].norm(dim=-1).mean()), rel=0.05)
    # fixed targets outside training, fresh draws in training
    t = dm.datasets["test"]
    assert torch.equal(t[0]["points"], t[0]["points"])
    assert not torch.equal(dm.datasets["train"][0]["points"], dm.datasets["train"][0]["points"])


def test_meshrcnn_layout_frame_equals_meshrcnn_camera_frame(tmp_path):
    _write_meshrcnn(tmp_path)
    dm = ShapeNetR2N2DataModule(str(tmp_path), "meshrcnn", synsets=None, splits_json="splits.json",
                                num_points=300, batch_size=4)
    dm.setup()
    assert {k: len(v) for k, v in dm.datasets.items()} == {"train": 4, "val": 4, "test": 2}
    assert dm.num_classes == 13
    b = next(iter(dm.val_dataloader()))
    assert _on_object(b, SIZE) > 0.97
    ds = dm.datasets["test"]
    s = ds[1]
    sid, mid, view = ds.items[1]
    samples = torch.load(tmp_path / sid / mid / "samples.pt")
    rt = _meshrcnn_rt(*VIEWS[view][:2], 1.75 * VIEWS[view][3])
    gl = samples["points_sampled"] @ rt[:3, :3].t() + rt[:3, 3]  # Mesh R-CNN's frame (camera at the origin)
    ours = s["points"] + torch.tensor([0.0, 0.0, 1.75 * VIEWS[view][3]])
    flipped = gl * torch.tensor([1.0, -1.0, -1.0])
    assert float(ops.nn_distances(ours, flipped).max()) < 1e-4  # float32 NN search between 30k samples
    assert s["label"] == sorted(["02691156", "02828884", "02933112", "02958343", "03001627", "03211117", "03636649",
                                 "03691459", "04090263", "04256520", "04379243", "04401088",
                                 "04530566"]).index(sid)


def test_errors_name_the_file_and_expected_format(tmp_path):
    with pytest.raises(FileNotFoundError, match="ShapeNetRendering"):
        ShapeNetR2N2DataModule(str(tmp_path / "none"), "r2n2").setup()
    with pytest.raises(ValueError, match="layout"):
        ShapeNetR2N2DataModule(str(tmp_path), "obj")
    with pytest.raises(FileNotFoundError, match="cannot be downloaded automatically"):
        ShapeNetR2N2DataModule(str(tmp_path), "meshrcnn", download=True).setup()
    _write_r2n2(tmp_path)
    meta = tmp_path / "ShapeNetRendering/02691156/model0/rendering/rendering_metadata.txt"
    meta.write_text("30 20 0 0.8 25\n10 20 oops 0.8 25\n")
    with pytest.raises(ValueError, match=r"rendering_metadata.txt, line 2: expected 5 numbers"):
        parse_rendering_metadata(meta)
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="bad.json"):
        ShapeNetR2N2DataModule(str(tmp_path), "r2n2", synsets=["02691156"], splits_json="bad.json").setup()
    with pytest.raises(FileNotFoundError, match="04530566"):
        ShapeNetR2N2DataModule(str(tmp_path), "r2n2", synsets=["02691156", "04530566"]).setup()
