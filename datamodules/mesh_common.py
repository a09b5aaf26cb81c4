"""What the mesh-reconstruction datamodules share: the sample format, a collate that keeps meshes as lists, OBJ
reading through trimesh and surface sampling. Sample: ``{"image" (C,H,W) in [0,1], "points" (P,3), "normals" (P,3),
"P" (3,4), "label" long, "id" str}`` plus optional ``"verts"``/``"faces"`` (kept as lists by ``mesh_collate``)."""
from __future__ import annotations

from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset
from torch.utils.data.dataloader import default_collate

from datamodules.base import SplitDataModule

MESH_KEYS = ("verts", "faces")


def mesh_collate(batch: list[dict]) -> dict:
    """Default collate for the fixed-size entries; ``verts``/``faces`` (ragged) stay Python lists of tensors."""
    ragged = {k: [s.pop(k) for s in batch] for k in MESH_KEYS if k in batch[0]}
    out = default_collate(batch)
    for s_i, s in enumerate(batch):  # put the popped tensors back: samples may be cached by the dataset
        for k, v in ragged.items():
            s[k] = v[s_i]
    out.update(ragged)
    return out


def load_obj(path: str | Path) -> tuple[Tensor, Tensor]:
    """Vertices (V,3) float32 and triangle faces (F,3) long of an OBJ (or any trimesh format), scenes merged.

    Raises FileNotFoundError for a missing file and ValueError (naming the file) for one without triangles.
    """
    import trimesh

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"mesh file {path} not found")
    try:
        mesh = trimesh.load(str(path), force="mesh", process=False, skip_materials=True)
    except Exception as e:  # noqa: BLE001 - trimesh raises many types for bad files
        raise ValueError(f"{path}: could not be read as a mesh ({type(e).__name__}: {e})") from e
    faces = getattr(mesh, "faces", None)
    if faces is None or len(faces) == 0:
        raise ValueError(f"{path}: no triangles found (expected an OBJ with 'f' lines)")
    from datamodules.decode import check_faces

    verts = torch.tensor(mesh.vertices, dtype=torch.float32)
    if not bool(torch.isfinite(verts).all()):
        raise ValueError(f"{path}: vertex coordinates must be finite numbers, found NaN or infinity")
    return verts, check_faces(torch.tensor(faces, dtype=torch.long), len(verts), path)


def surface_samples(verts: Tensor, faces: Tensor, n: int, seed: int | None = None) -> tuple[Tensor, Tensor]:
    """``n`` area-weighted surface points and normals (seeded when ``seed`` is given, for fixed val/test targets)."""
    from zoo.core.mesh.ops import sample_points

    g = torch.Generator().manual_seed(seed) if seed is not None else None
    with torch.no_grad():
        return sample_points(verts, faces, n, generator=g)


def stable_seed(text: str) -> int:
    """A seed from a string that does not change between processes (unlike ``hash``)."""
    import zlib

    return zlib.crc32(text.encode()) & 0x7FFFFFFF


def crop_and_resize(image: Tensor, box: tuple[float, float, float, float], size: tuple[int, int]) -> Tensor:
    """Crop ``image (C,H,W)`` to ``box = (x0, y0, x1, y1)`` (pixel edges, may leave the image: zeros outside) and
    resize bilinearly to ``size = (h, w)`` with ``grid_sample`` (pixel centres at half-integers; area pre-shrink)."""
    x0, y0, x1, y1 = box
    oh, ow = size
    k = int(min((x1 - x0) / ow, (y1 - y0) / oh))
    if k >= 2:  # shrink by an integer factor with area averaging first, so the bilinear resize does not alias
        image = torch.nn.functional.avg_pool2d(image.unsqueeze(0).float(), k, ceil_mode=True)[0]
        x0, y0, x1, y1 = x0 / k, y0 / k, x1 / k, y1 / k
    _, h, w = image.shape
    xs = x0 + (torch.arange(ow, dtype=torch.float32) + 0.5) * (x1 - x0) / ow  # source coordinates of output centres
    ys = y0 + (torch.arange(oh, dtype=torch.float32) + 0.5) * (y1 - y0) / oh
    gy, gx = torch.meshgrid(2 * ys / h - 1, 2 * xs / w - 1, indexing="ij")
    grid = torch.stack([gx, gy], -1).unsqueeze(0)
    return torch.nn.functional.grid_sample(image.unsqueeze(0).float(), grid, mode="bilinear", padding_mode="zeros",
                                           align_corners=False)[0]


def crop_matrix(box: tuple[float, float, float, float], size: tuple[int, int]) -> Tensor:
    """The (3,3) pixel map of ``crop_and_resize``: ``[u', v', 1] = A [u, v, 1]``, to left-multiply a projection P."""
    x0, y0, x1, y1 = box
    oh, ow = size
    sx, sy = ow / (x1 - x0), oh / (y1 - y0)
    return torch.tensor([[sx, 0.0, -sx * x0], [0.0, sy, -sy * y0], [0.0, 0.0, 1.0]])


def read_rgb(path: Path, background: float | None = None) -> Tensor:
    """An image file as (3,H,W) float in [0,1]. RGBA: alpha dropped (Mesh R-CNN's ``convert("RGB")``) or, with
    ``background``, composited over that grey level. Raises FileNotFoundError naming the file."""
    import numpy as np

    from datamodules.decode import open_image

    im = open_image(path, mode=None, what="image")
    if background is not None and im.mode in ("RGBA", "LA", "P"):
        rgba = np.asarray(im.convert("RGBA"), dtype=np.float32) / 255.0
        rgb = rgba[..., :3] * rgba[..., 3:] + background * (1 - rgba[..., 3:])
    else:
        rgb = np.asarray(im.convert("RGB"), dtype=np.float32) / 255.0
    return torch.from_numpy(np.ascontiguousarray(rgb)).permute(2, 0, 1)


class MeshSplitDataModule(SplitDataModule):
    """Base of the mesh datamodules: ``build`` makes the train/val/test datasets once; batches keep meshes as lists."""

    collate_fn = staticmethod(mesh_collate)

    def build(self) -> dict[str, Dataset]:
        raise NotImplementedError

    def setup(self, stage: str | None = None) -> None:
        if not hasattr(self, "datasets"):
            self.datasets = self.build()


def pick_points(points: Tensor, normals: Tensor, n: int, seed: int | None = None) -> tuple[Tensor, Tensor]:
    """``n`` of the cached surface samples: a fresh random subset in training (``seed=None``), a fixed one otherwise;
    drawn with replacement only when fewer than ``n`` are cached."""
    g = torch.Generator().manual_seed(seed) if seed is not None else None
    m = points.shape[0]
    idx = torch.randperm(m, generator=g)[:n] if m >= n else torch.randint(m, (n,), generator=g)
    return points[idx], normals[idx]


class LRUCache(dict):
    """A small least-recently-inserted cache (per worker process) for per-model surface samples."""

    def __init__(self, size: int = 64) -> None:
        super().__init__()
        self.size = size

    def put(self, key, value):
        if len(self) >= self.size:
            self.pop(next(iter(self)))
        self[key] = value
        return value


def obj_surface(obj: Path, n: int, cache_dir: str | Path | None = None, key: str | None = None) -> tuple[Tensor, Tensor]:
    """``n`` surface samples (points, normals) of an OBJ, seeded by ``key``; with ``cache_dir`` they are written once
    to ``<cache_dir>/<key>.pt`` (atomic rename, safe with several workers) and read back afterwards, so the OBJ is
    parsed once per model instead of once per worker and epoch."""
    import os

    key = key or str(obj)
    if cache_dir is not None:
        path = Path(cache_dir) / f"{key.replace('/', '__')}-{n}.pt"
        if path.is_file():
            from datamodules.decode import read_tensors

            d = read_tensors(path, {"points": (n, 3), "normals": (n, 3)}, "surface-sample cache")
            return d["points"], d["normals"]
    v, f = load_obj(obj)
    pts, nrm = surface_samples(v, f, n, seed=stable_seed(key))
    if cache_dir is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(f".{os.getpid()}.tmp")
        torch.save({"points": pts, "normals": nrm}, tmp)
        os.replace(tmp, path)
    return pts, nrm
