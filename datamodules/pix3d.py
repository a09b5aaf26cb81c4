"""Pix3D for single-image mesh reconstruction (spec section 8): ``pix3d.json`` records or Mesh R-CNN's COCO-style
split files (``pix3d_s1_train.json`` ...), each image cropped to its ground-truth box and resized, the CAD model
(OBJ, read by trimesh) sampled once per model and put in the view frame of the annotation's ``rot_mat``.

Camera convention (Mesh R-CNN's, which uses Pix3D's R, t as given): ``X = R x + t`` has x to the left and y up
(``u = w/2 - f X/Z``); we flip both to our axes (x right, y down, z away) and keep the model's origin as the origin
of the frame. ``mask_agreement`` measures how well points and masks agree on a real copy. Not downloadable here:
Pix3D from pix3d.csail.mit.edu, the S1/S2 split jsons from Mesh R-CNN's ``datasets/pix3d``.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset

from datamodules.mesh_common import (LRUCache, MeshSplitDataModule, crop_and_resize, crop_matrix, load_obj,
                                     obj_surface, pick_points, read_rgb, stable_seed)

PIX3D_CATEGORIES = ("bed", "bookcase", "chair", "desk", "misc", "sofa", "table", "tool", "wardrobe")
PIX3D_TO_OURS = torch.diag(torch.tensor([-1.0, -1.0, 1.0]))
SENSOR_WIDTH_MM = 32.0
IGNORED_IMAGES = ("img/table/1749.jpg", "img/table/0045.png")  # image/mask mismatch, skipped as Mesh R-CNN does
RECORD_KEYS = ("img", "category", "model", "rot_mat", "trans_mat", "focal_length", "bbox", "img_size")
LAYOUT_HELP = ("<data_dir>/pix3d.json, <data_dir>/img/<category>/*.jpg|png, <data_dir>/mask/<category>/*.png, "
               "<data_dir>/model/<category>/<name>/model.obj (Pix3D, pix3d.csail.mit.edu)")


def _read_json(path: Path, what: str):
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found ({what}); expected {LAYOUT_HELP}")
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise ValueError(f"{path}: not valid JSON ({e})") from e


def _checked(path: Path, what: str, rec: dict) -> dict:
    """One record with R 3x3, t 3, a non-empty box and a positive focal length, or a ValueError naming the record."""
    import numpy as np

    try:
        rot, trans = np.asarray(rec["R"], dtype=float), np.asarray(rec["t"], dtype=float).reshape(-1)
        box = tuple(float(v) for v in rec["box"])
    except (TypeError, ValueError) as err:
        raise ValueError(f"{path}: {what}: rot_mat, trans_mat and bbox must be numbers ({err})") from None
    if rot.shape != (3, 3) or trans.shape != (3,):
        raise ValueError(f"{path}: {what}: expected rot_mat 3x3 and trans_mat of 3 values, found {rot.shape} and "
                         f"{trans.shape}")
    if len(box) != 4 or box[2] <= box[0] or box[3] <= box[1]:
        raise ValueError(f"{path}: {what}: expected a non-empty box x0 < x1, y0 < y1, found {box}")
    if not np.isfinite(rec["focal_px"]) or rec["focal_px"] <= 0:
        raise ValueError(f"{path}: {what}: expected a positive focal length, found {rec['focal_px']}")
    rec["box"] = box
    return rec


def read_pix3d_json(path: Path) -> list[dict]:
    """Records of ``pix3d.json`` as ``{img, mask, category, model, R, t, focal_px, box (x0,y0,x1,y1), hidden}``
    (``hidden``: truncated or (slightly) occluded)."""
    data = _read_json(path, "the Pix3D annotation file")
    if not isinstance(data, list):
        raise ValueError(f"{path}: expected a list of records, found {type(data).__name__}")
    out = []
    for i, r in enumerate(data):
        missing = [k for k in RECORD_KEYS if not isinstance(r, dict) or k not in r]
        if missing:
            raise ValueError(f"{path}: record {i} lacks {missing} (expected the keys {list(RECORD_KEYS)})")
        w = float(r["img_size"][0])
        out.append(_checked(path, f"record {i}", {
            "img": r["img"], "mask": r.get("mask"), "category": r["category"], "model": r["model"],
            "R": r["rot_mat"], "t": r["trans_mat"], "focal_px": float(r["focal_length"]) * w / SENSOR_WIDTH_MM,
            "pp": None, "box": tuple(r["bbox"]), "hidden": _hidden(r)}))
    return out


def read_coco_split(path: Path) -> list[dict]:
    """Records of a Mesh R-CNN Pix3D split (COCO style; boxes XYWH, ``K = [f_px, cx, cy]``) in the same form."""
    data = _read_json(path, "a Mesh R-CNN Pix3D split file")
    if not isinstance(data, dict) or not {"images", "annotations", "categories"} <= set(data):
        raise ValueError(f"{path}: expected a COCO-style object with 'images', 'annotations' and 'categories'")
    images = {im["id"]: im for im in data["images"]}
    cats = {c["id"]: c["name"] for c in data["categories"]}
    out = []
    for i, a in enumerate(data["annotations"]):
        missing = [k for k in ("image_id", "bbox", "category_id", "K", "rot_mat", "trans_mat", "model") if k not in a]
        if missing:
            raise ValueError(f"{path}: annotation {i} lacks {missing}")
        if a["image_id"] not in images or a["category_id"] not in cats:
            raise ValueError(f"{path}: annotation {i} refers to an unknown image {a['image_id']} or category "
                             f"{a['category_id']}")
        x, y, bw, bh = (float(v) for v in a["bbox"])
        out.append(_checked(path, f"annotation {i}", {
            "img": images[a["image_id"]]["file_name"], "mask": a.get("segmentation"),
            "category": cats[a["category_id"]], "model": a["model"], "R": a["rot_mat"], "t": a["trans_mat"],
            "focal_px": float(a["K"][0]), "pp": (float(a["K"][1]), float(a["K"][2])), "box": (x, y, x + bw, y + bh)}))
    return out


def crop_box(box: tuple[float, float, float, float], square: bool = True,
             padding: float = 0.0) -> tuple[float, float, float, float]:
    """The crop around a GT box: squared around its centre (longest side) and enlarged by ``padding`` (fraction)."""
    x0, y0, x1, y1 = box
    cx, cy, hw, hh = (x0 + x1) / 2, (y0 + y1) / 2, (x1 - x0) / 2, (y1 - y0) / 2
    if square:
        hw = hh = max(hw, hh)
    hw, hh = hw * (1 + padding), hh * (1 + padding)
    return cx - hw, cy - hh, cx + hw, cy + hh


class Pix3DObjects(Dataset):
    """One sample per annotated object: GT-box crop of the image, GT surface samples in the view frame, ``P``."""

    def __init__(self, root: Path, records: list[dict], categories: list[str], num_points: int, image_size: int,
                 train: bool, square_crop: bool = True, box_padding: float = 0.0, mask_background: bool = False,
                 return_mesh: bool = False, cache_points: int = 10000, cache_dir: str | None = None) -> None:
        self.root, self.records, self.train = root, records, train
        self.label = {c: i for i, c in enumerate(categories)}
        self.num_points, self.size = num_points, image_size
        self.square, self.padding, self.mask_bg, self.return_mesh = square_crop, box_padding, mask_background, return_mesh
        self.cache_points, self.cache_dir = max(cache_points, num_points), cache_dir
        self._samples = LRUCache(400)  # Pix3D has 395 models
        self._meshes = LRUCache(16)  # return_mesh: images of one model share one parsed mesh

    def __len__(self) -> int:
        return len(self.records)

    def _surface(self, model: str) -> tuple[Tensor, Tensor]:
        if model not in self._samples:
            self._samples.put(model, obj_surface(self.root / model, self.cache_points, self.cache_dir, model))
        return self._samples[model]

    def frame(self, r: dict, image_hw: tuple[int, int]) -> tuple[Tensor, Tensor, tuple[float, ...]]:
        """Rotation model -> view frame (3,3), ``P`` (3,4) to the resized crop, and the crop box."""
        rot = PIX3D_TO_OURS @ torch.tensor(r["R"], dtype=torch.float32)
        t = PIX3D_TO_OURS @ torch.tensor(r["t"], dtype=torch.float32)
        h, w = image_hw
        cx, cy = r["pp"] if r["pp"] is not None else (w / 2, h / 2)
        k = torch.tensor([[r["focal_px"], 0.0, cx], [0.0, r["focal_px"], cy], [0.0, 0.0, 1.0]])
        box = crop_box(r["box"], self.square, self.padding)
        P = crop_matrix(box, (self.size, self.size)) @ k @ torch.cat([torch.eye(3), t[:, None]], 1)
        return rot, P, box

    def __getitem__(self, i: int) -> dict:
        r = self.records[i]
        img = read_rgb(self.root / r["img"])
        if self.mask_bg and r["mask"]:
            m = read_rgb(self.root / r["mask"])[:1]
            img = img * (m > 0.5)
        rot, P, box = self.frame(r, tuple(img.shape[1:]))
        img = crop_and_resize(img, box, (self.size, self.size)).clamp(0, 1)
        sample_id = f"{r['img']}-{r['model']}"
        pts, nrm = pick_points(*self._surface(r["model"]), self.num_points,
                               seed=None if self.train else stable_seed(sample_id))
        out = {"image": img, "points": pts @ rot.t(), "normals": nrm @ rot.t(), "P": P,
               "label": torch.tensor(self.label[r["category"]]), "id": sample_id}
        if self.return_mesh:
            if r["model"] not in self._meshes:
                self._meshes.put(r["model"], load_obj(self.root / r["model"]))
            v, f = self._meshes[r["model"]]
            out.update(verts=v @ rot.t(), faces=f)
        return out


class Pix3DDataModule(MeshSplitDataModule):
    """Pix3D objects (GT-box crops) for the mesh-reconstruction paper.

    ``split_json``: Mesh R-CNN's split, as a prefix (``"pix3d_s1"`` -> ``pix3d_s1_train.json`` and
    ``pix3d_s1_test.json`` under ``data_dir``) or the path of a ``*_train.json``; ``None`` splits ``pix3d.json``
    by a seeded random draw of images (``test_fraction``). Validation: ``val_fraction`` of training, or the test split.
    ``samples_cache_dir`` keeps the models' surface samples on disk (each OBJ parsed once).
    """

    def __init__(self, data_dir: str = "data/pix3d", split_json: str | None = "pix3d_s1",
                 categories: list[str] | None = None, image_size: int = 224, num_points: int = 5000,
                 square_crop: bool = True, box_padding: float = 0.0, mask_background: bool = False,
                 skip_truncated_occluded: bool = False, test_fraction: float = 0.25, val_fraction: float = 0.0,
                 seed: int = 0, return_mesh: bool = False, samples_cache_dir: str | None = None,
                 batch_size: int = 32, num_workers: int = 0, download: bool = False) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.batch_size, self.num_workers = batch_size, num_workers
        unknown = sorted(set(categories or []) - set(PIX3D_CATEGORIES))
        if unknown:
            raise ValueError(f"unknown Pix3D categories {unknown}; expected some of {list(PIX3D_CATEGORIES)}")
        self.categories = list(categories) if categories else list(PIX3D_CATEGORIES)
        self.num_classes = len(self.categories)

    def _records(self, root: Path) -> dict[str, list[dict]]:
        h = self.hparams
        if h.split_json:
            train = Path(h.split_json) if h.split_json.endswith(".json") else Path(f"{h.split_json}_train.json")
            train = train if train.is_absolute() else root / train
            test = train.with_name(train.name.replace("_train", "_test"))
            splits = {"train": read_coco_split(train), "test": read_coco_split(test)}
            if h.skip_truncated_occluded:  # COCO splits lack the flags: take them from pix3d.json
                flags = {r["img"]: r for r in _read_json(root / "pix3d.json", "the Pix3D annotation file")}
                splits = {k: [r for r in v if not _hidden(flags.get(r["img"], {}))] for k, v in splits.items()}
        else:
            recs = read_pix3d_json(root / "pix3d.json")
            if h.skip_truncated_occluded:
                recs = [r for r in recs if not r["hidden"]]
            perm = torch.randperm(len(recs), generator=torch.Generator().manual_seed(h.seed)).tolist()
            n_test = round(h.test_fraction * len(recs))
            splits = {"train": [recs[i] for i in sorted(perm[n_test:])],
                      "test": [recs[i] for i in sorted(perm[:n_test])]}
        keep = set(self.categories)
        splits = {k: [r for r in v if r["category"] in keep and r["img"] not in IGNORED_IMAGES]
                  for k, v in splits.items()}
        n_val = round(h.val_fraction * len(splits["train"]))
        if n_val:
            perm = torch.randperm(len(splits["train"]), generator=torch.Generator().manual_seed(h.seed + 1)).tolist()
            splits["val"] = [splits["train"][i] for i in sorted(perm[:n_val])]
            splits["train"] = [splits["train"][i] for i in sorted(perm[n_val:])]
        else:
            splits["val"] = splits["test"]
        return splits

    def build(self) -> dict[str, Dataset]:
        h = self.hparams
        root = Path(h.data_dir)
        if h.download:
            raise FileNotFoundError(f"Pix3D is not downloaded automatically: get it from pix3d.csail.mit.edu (and the "
                                    f"S1/S2 splits from Mesh R-CNN's datasets/pix3d); expected {LAYOUT_HELP}")
        if not root.is_dir():
            raise FileNotFoundError(f"{root} not found: expected {LAYOUT_HELP}; Pix3D cannot be downloaded "
                                    "automatically (pix3d.csail.mit.edu; splits from Mesh R-CNN's datasets/pix3d)")
        kw = dict(root=root, categories=self.categories, num_points=h.num_points, image_size=h.image_size,
                  square_crop=h.square_crop, box_padding=h.box_padding, mask_background=h.mask_background,
                  return_mesh=h.return_mesh, cache_dir=h.samples_cache_dir)
        return {k: Pix3DObjects(records=v, train=k == "train", **kw) for k, v in self._records(root).items()}


def _hidden(raw: dict) -> bool:
    return bool(raw.get("truncated") or raw.get("occluded") or raw.get("slightly_occluded"))


def mask_agreement(ds: Pix3DObjects, indices: list[int] | None = None) -> float:
    """Fraction of projected GT points that land inside the object's mask (after the crop): a check of the camera
    convention on a real Pix3D copy (about 1 when frame, P and crop agree; near 0.5 or less when an axis is flipped)."""
    vals = []
    for i in indices if indices is not None else range(len(ds)):
        r = ds.records[i]
        if not r["mask"]:
            continue
        s = ds[i]
        mask = read_rgb(ds.root / r["mask"])[:1]
        _, _, box = ds.frame(r, tuple(mask.shape[1:]))
        m = crop_and_resize(mask, box, (ds.size, ds.size))[0] > 0.5
        hom = s["points"] @ s["P"][:, :3].t() + s["P"][:, 3]
        uv = (hom[:, :2] / hom[:, 2:]).floor().long().clamp(0, ds.size - 1)
        vals.append(float(m[uv[:, 1], uv[:, 0]].float().mean()))
    if not vals:
        raise ValueError("mask_agreement: none of the selected records has a mask")
    return sum(vals) / len(vals)
