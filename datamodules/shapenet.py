"""ShapeNet for single-image mesh reconstruction (spec section 8), in either on-disk layout:

- ``layout="r2n2"``: 3D-R2N2 renderings ``ShapeNetRendering/<synset>/<model>/rendering/{00..23}.png`` with
  ``rendering_metadata.txt`` (azimuth elevation in-plane distance-ratio fov per view) and ShapeNetCore v1
  ``ShapeNetCore.v1/<synset>/<model>/model.obj`` (read by trimesh, surface sampled once per model);
- ``layout="meshrcnn"``: Mesh R-CNN's ``tools/preprocess_shapenet.py`` output ``<synset>/<model>/{metadata.pt,
  mesh.pt, samples.pt, images/*.png}``.

Targets are in the view-aligned frame of Mesh R-CNN (rotation of the view applied, origin at the model's origin)
with our axes (x right, y down, z away from the camera) and ``P = K [I | (0,0,d)]`` to pixels. Not downloadable:
R2N2 renderings from the 3D-R2N2 project page, ShapeNetCore v1 from shapenet.org, splits from Mesh R-CNN
(``pix2mesh_splits_val05.json``).
"""
from __future__ import annotations

import json
import math
import warnings
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset

from datamodules.decode import check_faces, read_tensors
from datamodules.mesh_common import (LRUCache, MeshSplitDataModule, crop_and_resize, crop_matrix, load_obj,
                                     obj_surface, pick_points, read_rgb, stable_seed)

R2N2_SYNSETS = {"02691156": "airplane", "02828884": "bench", "02933112": "cabinet", "02958343": "car",
                "03001627": "chair", "03211117": "display", "03636649": "lamp", "03691459": "speaker",
                "04090263": "rifle", "04256520": "sofa", "04379243": "table", "04401088": "telephone",
                "04530566": "watercraft"}
MAX_CAMERA_DISTANCE = 1.75  # 3D-R2N2's constant: camera distance = ratio * 1.75 (as in Mesh R-CNN)
BLENDER_FOCAL = 2.1875  # Blender's default camera (35 mm lens, 32 mm sensor) in half image widths
GL_TO_OURS = torch.diag(torch.tensor([1.0, -1.0, -1.0]))  # OpenGL camera axes (y up, looking down -z) -> ours
OBJ_TO_BLENDER = torch.tensor([[1.0, 0, 0], [0, 0, -1], [0, 1, 0]])  # Blender turns an imported OBJ's y-up to z-up
LAYOUT_HELP = {"r2n2": "<data_dir>/ShapeNetRendering/<synset>/<model>/rendering/{00..23}.png + rendering_metadata.txt "
                       "and <data_dir>/ShapeNetCore.v1/<synset>/<model>/model.obj",
               "meshrcnn": "<data_dir>/<synset>/<model>/{metadata.pt,mesh.pt,samples.pt,images/} (Mesh R-CNN's "
                           "tools/preprocess_shapenet.py)"}


def r2n2_view_rotation(azimuth: float, elevation: float) -> Tensor:
    """Rotation (3,3) from ShapeNet v1 OBJ coordinates to our camera axes for an R2N2 view (degrees); Mesh R-CNN's
    ``compute_extrinsic_matrix`` convention, re-derived: camera on a sphere at that azimuth/elevation, looking at the
    origin, Blender's OBJ import rotation folded in."""
    a, e = math.radians(azimuth), math.radians(elevation)
    back = [math.cos(a) * math.cos(e), -math.sin(a) * math.cos(e), math.sin(e)]  # object -> camera, Blender world
    right = [math.sin(a), math.cos(a), 0.0]
    up = [-math.cos(a) * math.sin(e), math.sin(a) * math.sin(e), math.cos(e)]
    return GL_TO_OURS @ torch.tensor([right, up, back]) @ OBJ_TO_BLENDER


def intrinsic_projection(focal_px: float, size: tuple[int, int], t: Tensor) -> Tensor:
    """``P = K [I | t]`` (3,4) with principal point at the image centre (pixel centres at half-integers)."""
    h, w = size
    k = torch.tensor([[focal_px, 0.0, w / 2], [0.0, focal_px, h / 2], [0.0, 0.0, 1.0]])
    return k @ torch.cat([torch.eye(3), t.reshape(3, 1).float()], 1)


def parse_rendering_metadata(path: Path) -> list[tuple[float, ...]]:
    """R2N2 ``rendering_metadata.txt``: one line per view with 5 numbers (azimuth, elevation, in-plane rotation,
    distance ratio, field of view). Raises FileNotFoundError / ValueError naming the file and line."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found (expected the R2N2 layout: {LAYOUT_HELP['r2n2']})")
    views = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            vals = tuple(float(v) for v in line.split())
        except ValueError:
            vals = ()
        if len(vals) != 5:
            raise ValueError(f"{path}, line {n}: expected 5 numbers (azimuth elevation in-plane distance_ratio fov), "
                             f"found {line.strip()!r}")
        views.append(vals)
    return views


class ShapeNetViews(Dataset):
    """One sample per (synset, model, view) of one split, in the mesh datamodules' sample format."""

    def __init__(self, root: Path, layout: str, items: list[tuple[str, str, int]], synsets: list[str],
                 num_points: int, image_size: int, train: bool, return_mesh: bool = False,
                 background: float | None = None, cache_points: int = 20000, cache_dir: str | None = None) -> None:
        self.root, self.layout, self.items, self.train = root, layout, items, train
        self.label = {s: i for i, s in enumerate(synsets)}
        self.num_points, self.size, self.return_mesh, self.background = num_points, image_size, return_mesh, background
        self.cache_points, self.cache_dir = max(cache_points, num_points), cache_dir
        self._meta: dict[tuple[str, str], dict] = {}
        self._samples = LRUCache(64)
        self._meshes = LRUCache(16)  # return_mesh: a model's 24 views share one parsed mesh

    def __len__(self) -> int:
        return len(self.items)

    def _model_dir(self, sid: str, mid: str) -> Path:
        return self.root / (f"ShapeNetRendering/{sid}/{mid}/rendering" if self.layout == "r2n2" else f"{sid}/{mid}")

    def _metadata(self, sid: str, mid: str) -> dict:
        """Per-model: image file names, view rotations (V,3,3), translations (V,3), focal in half-widths."""
        key = (sid, mid)
        if key not in self._meta:
            d = self._model_dir(sid, mid)
            if self.layout == "r2n2":
                views = parse_rendering_metadata(d / "rendering_metadata.txt")
                names_file = d / "renderings.txt"
                names = (names_file.read_text().split() if names_file.is_file()
                         else [f"{i:02d}.png" for i in range(len(views))])
                rot = torch.stack([r2n2_view_rotation(v[0], v[1]) for v in views])
                t = torch.tensor([[0.0, 0.0, MAX_CAMERA_DISTANCE * v[3]] for v in views])
                meta = {"images": [d / n for n in names], "R": rot, "t": t, "focal": BLENDER_FOCAL}
            else:
                f = d / "metadata.pt"
                if not f.is_file():
                    raise FileNotFoundError(f"{f} not found (expected the layout {LAYOUT_HELP['meshrcnn']})")
                m = read_tensors(f, {"image_list": (), "intrinsic": (None, None), "extrinsics": (None, 4, 4)},
                                 "Mesh R-CNN metadata")
                rt = m["extrinsics"].float()
                if len(m["image_list"]) != len(rt):
                    raise ValueError(f"{f}: {len(m['image_list'])} images in image_list but {len(rt)} extrinsics")
                meta = {"images": [d / "images" / n for n in m["image_list"]], "R": GL_TO_OURS @ rt[:, :3, :3],
                        "t": rt[:, :3, 3] @ GL_TO_OURS.t(), "focal": float(m["intrinsic"][0, 0])}
            self._meta[key] = meta
        return self._meta[key]

    def _mesh(self, sid: str, mid: str) -> tuple[Tensor, Tensor]:
        if (sid, mid) not in self._meshes:
            self._meshes.put((sid, mid), self._read_mesh(sid, mid))
        return self._meshes[(sid, mid)]

    def _read_mesh(self, sid: str, mid: str) -> tuple[Tensor, Tensor]:
        if self.layout == "r2n2":
            return load_obj(self.root / "ShapeNetCore.v1" / sid / mid / "model.obj")
        f = self._model_dir(sid, mid) / "mesh.pt"
        if not f.is_file():
            raise FileNotFoundError(f"{f} not found (expected the layout {LAYOUT_HELP['meshrcnn']})")
        m = read_tensors(f, {"verts": (None, 3), "faces": (None, 3)}, "mesh file")
        return m["verts"].float(), check_faces(m["faces"], len(m["verts"]), f)

    def _surface(self, sid: str, mid: str) -> tuple[Tensor, Tensor]:
        """Cached surface samples of a model in OBJ coordinates (R2N2: sampled once, seeded; Mesh R-CNN: samples.pt)."""
        key = (sid, mid)
        if key in self._samples:
            return self._samples[key]
        if self.layout == "r2n2":
            obj = self.root / "ShapeNetCore.v1" / sid / mid / "model.obj"
            return self._samples.put(key, obj_surface(obj, self.cache_points, self.cache_dir, f"{sid}/{mid}"))
        f = self._model_dir(sid, mid) / "samples.pt"
        if not f.is_file():
            raise FileNotFoundError(f"{f} not found (expected the layout {LAYOUT_HELP['meshrcnn']})")
        s = read_tensors(f, {"points_sampled": (None, 3), "normals_sampled": (None, 3)}, "surface samples")
        if len(s["points_sampled"]) != len(s["normals_sampled"]):
            raise ValueError(f"{f}: {len(s['points_sampled'])} points but {len(s['normals_sampled'])} normals")
        return self._samples.put(key, (s["points_sampled"].float(), s["normals_sampled"].float()))

    def __getitem__(self, i: int) -> dict:
        sid, mid, view = self.items[i]
        meta = self._metadata(sid, mid)
        if not 0 <= view < len(meta["images"]):
            raise ValueError(f"{sid}/{mid}: view {view} requested but the model has {len(meta['images'])} views")
        img = read_rgb(meta["images"][view], self.background)
        h, w = img.shape[1:]
        P = intrinsic_projection(meta["focal"] * w / 2, (h, w), meta["t"][view])
        if (h, w) != (self.size, self.size):
            box = (0.0, 0.0, float(w), float(h))
            img = crop_and_resize(img, box, (self.size, self.size))
            P = crop_matrix(box, (self.size, self.size)) @ P
        rot = meta["R"][view]
        sample_id = f"{sid}-{mid}-{view:02d}"
        pts, nrm = pick_points(*self._surface(sid, mid), self.num_points,
                               seed=None if self.train else stable_seed(sample_id))
        out = {"image": img, "points": pts @ rot.t(), "normals": nrm @ rot.t(), "P": P,
               "label": torch.tensor(self.label[sid]), "id": sample_id}
        if self.return_mesh:
            v, f = self._mesh(sid, mid)
            out.update(verts=v @ rot.t(), faces=f)
        return out


class ShapeNetR2N2DataModule(MeshSplitDataModule):
    """ShapeNet (13 R2N2 classes) renderings + meshes for the mesh-reconstruction paper, R2N2 or Mesh R-CNN layout.

    ``samples_cache_dir`` keeps the R2N2 layout's OBJ surface samples on disk (parsed once per model).
    ``splits_json`` (Mesh R-CNN's ``{"train"|"val"|"test": {synset: {model: [views]}}}``, relative to ``data_dir`` or
    absolute) selects the images; without it models are split by sorted id per synset (``split_fractions``).
    """

    def __init__(self, data_dir: str = "data/shapenet", layout: str = "r2n2", synsets: list[str] | None = None,
                 views: list[int] | None = None, splits_json: str | None = None,
                 split_fractions: tuple[float, float, float] = (0.75, 0.05, 0.2), num_points: int = 5000,
                 image_size: int = 137, background: float | None = None, return_mesh: bool = False,
                 samples_cache_dir: str | None = None, batch_size: int = 32, num_workers: int = 0,
                 download: bool = False) -> None:
        super().__init__()
        if layout not in LAYOUT_HELP:
            raise ValueError(f"layout must be one of {sorted(LAYOUT_HELP)}, got {layout!r}")
        self.save_hyperparameters()
        self.batch_size, self.num_workers = batch_size, num_workers
        self.synsets = list(synsets) if synsets else sorted(R2N2_SYNSETS)
        self.num_classes = len(self.synsets)

    def _models(self, root: Path) -> dict[str, list[str]]:
        base = root / "ShapeNetRendering" if self.hparams.layout == "r2n2" else root
        if not base.is_dir():
            raise FileNotFoundError(f"{base} not found: expected the {self.hparams.layout} layout "
                                    f"{LAYOUT_HELP[self.hparams.layout]}. ShapeNet cannot be downloaded automatically "
                                    "(R2N2 renderings: cvgl.stanford.edu/3d-r2n2; ShapeNetCore v1: shapenet.org)")
        found = {s: sorted(p.name for p in (base / s).iterdir() if p.is_dir()) for s in self.synsets
                 if (base / s).is_dir()}
        if self.hparams.synsets and len(found) < len(self.synsets):
            raise FileNotFoundError(f"synsets {sorted(set(self.synsets) - set(found))} not found under {base}")
        if not found:
            raise FileNotFoundError(f"none of the synsets {self.synsets} found under {base} "
                                    f"(expected {LAYOUT_HELP[self.hparams.layout]})")
        return found

    def _split_items(self, root: Path) -> dict[str, list[tuple[str, str, int]]]:
        h = self.hparams
        if h.splits_json:
            path = Path(h.splits_json) if Path(h.splits_json).is_absolute() else root / h.splits_json
            if not path.is_file():
                raise FileNotFoundError(f"split file {path} not found (Mesh R-CNN's pix2mesh_splits_val05.json format)")
            try:
                spec = json.loads(path.read_text())
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}: not valid JSON ({e})") from e
            if not isinstance(spec, dict) or not {"train", "test"} <= set(spec):
                raise ValueError(f"{path}: expected an object with keys 'train', 'val', 'test' mapping "
                                 "synset -> model -> [view ids]")
            items = {}
            for name in ("train", "val", "test"):
                items[name] = [(sid, mid, int(v)) for sid, models in spec.get(name, {}).items() if sid in self.synsets
                               for mid, vs in models.items() for v in vs if h.views is None or int(v) in h.views]
            return items
        fr = h.split_fractions
        if len(fr) != 3 or min(fr) < 0 or abs(sum(fr) - 1) > 1e-6:
            raise ValueError(f"split_fractions must be three non-negative numbers summing to 1, got {fr}")
        items = {"train": [], "val": [], "test": []}
        for sid, mids in self._models(root).items():
            n = len(mids)
            n_test = max(1, round(fr[2] * n)) if n > 1 and fr[2] > 0 else 0
            n_val = round(fr[1] * n)
            cut = {"train": mids[:n - n_test - n_val], "val": mids[n - n_test - n_val:n - n_test],
                   "test": mids[n - n_test:]}
            for name, ms in cut.items():
                for m in ms:
                    n_views = self._num_views(root, sid, m)
                    items[name] += [(sid, m, v) for v in range(n_views) if h.views is None or v in h.views]
        return items

    def _num_views(self, root: Path, sid: str, mid: str) -> int:
        """Views of a model: lines of ``rendering_metadata.txt`` (R2N2) or ``summary.json`` (Mesh R-CNN)."""
        if self.hparams.layout == "r2n2":
            return len(parse_rendering_metadata(root / "ShapeNetRendering" / sid / mid / "rendering" /
                                                "rendering_metadata.txt"))
        if not hasattr(self, "_summary"):
            path = root / "summary.json"
            if not path.is_file():
                raise FileNotFoundError(f"{path} not found (written by Mesh R-CNN's tools/preprocess_shapenet.py)")
            try:
                self._summary = json.loads(path.read_text())
            except json.JSONDecodeError as e:
                raise ValueError(f"{path}: not valid JSON ({e})") from e
        try:
            return int(self._summary[sid][mid])
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(f"{root / 'summary.json'}: no image count for {sid}/{mid} "
                             "(expected {synset: {model: number of images}})") from e

    def build(self) -> dict[str, Dataset]:
        h = self.hparams
        root = Path(h.data_dir)
        if h.download:
            raise FileNotFoundError("ShapeNet cannot be downloaded automatically (licence): get the R2N2 renderings "
                                    "(cvgl.stanford.edu/3d-r2n2) and ShapeNetCore v1 (shapenet.org) and lay them out "
                                    f"as {LAYOUT_HELP[h.layout]}")
        self._models(root)  # clear error for a missing root or synsets
        items = self._split_items(root)
        if not items["val"]:
            warnings.warn("ShapeNet: the validation split is empty; validating on the test split", stacklevel=2)
            items["val"] = items["test"]
        kw = dict(root=root, layout=h.layout, synsets=self.synsets, num_points=h.num_points,
                  image_size=h.image_size, return_mesh=h.return_mesh, background=h.background,
                  cache_dir=h.samples_cache_dir)
        return {name: ShapeNetViews(items=it, train=name == "train", **kw) for name, it in items.items()}
