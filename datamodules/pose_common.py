"""What the 3D-pose datamodules share: the 17-joint "pa17j" layout, square crops with normalised targets
(SSP-Net spec section 3.1), and a batch sampler that mixes fixed per-dataset batch sizes (spec section 4)."""
from __future__ import annotations

import os
from typing import Iterator, Sequence

import numpy as np
import torch
from torch.utils.data import Sampler

PA17J_NAMES = ("pelvis", "thorax", "neck", "head", "r_shoulder", "l_shoulder", "r_elbow", "l_elbow", "r_wrist",
               "l_wrist", "r_hip", "l_hip", "r_knee", "l_knee", "r_ankle", "l_ankle", "spine")
PA17J_FLIP = (0, 1, 2, 3, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14, 16)
PA17J_PARENTS = (-1, 16, 1, 2, 1, 1, 4, 5, 6, 7, 0, 0, 10, 11, 12, 13, 0)
DEPTH_RANGE_MM = 2000.0  # D of spec section 3.1: +-1 m around the root fits in [0, 1]
CROP_METRES = 2.25  # H36M crop side at the root depth, before scale augmentation


def crop_image(image, x0: float, y0: float, side: float, size: int) -> torch.Tensor:
    """Square crop [x0, x0+side) x [y0, y0+side) of a PIL image resized to size x size, zero outside; (3, S, S) in [0, 1]."""
    from PIL import Image

    img = image.convert("RGB").transform((size, size), Image.Transform.EXTENT, (x0, y0, x0 + side, y0 + side),
                                         Image.Resampling.BILINEAR, fillcolor=(0, 0, 0))
    return torch.from_numpy(np.asarray(img, dtype=np.float32) / 255.0).permute(2, 0, 1).contiguous()


def make_sample(image: torch.Tensor, joints_px: np.ndarray, crop: Sequence[float], *, depth_mm: np.ndarray | None = None,
                root_z: float = 0.0, pose3d: np.ndarray | None = None, camera: Sequence[float] = (1, 1, 0, 0),
                depth_range: float = DEPTH_RANGE_MM, annotated2d: np.ndarray | None = None) -> dict[str, torch.Tensor]:
    """One training/eval sample: crop image, normalised (u, v, z) targets, what is annotated, and the lifting data.

    u, v = (px - crop origin)/side; z = (Z - Z_root)/D + 0.5 (spec section 3.1). NaN joints count as unannotated.
    """
    j = joints_px.shape[0]
    x0, y0, side = (float(c) for c in crop)
    uvz = np.zeros((j, 3), np.float32)
    uvz[:, 0] = (joints_px[:, 0] - x0) / side
    uvz[:, 1] = (joints_px[:, 1] - y0) / side
    ann = np.zeros((j, 3), np.float32)
    ok2d = np.isfinite(joints_px).all(1) if annotated2d is None else (annotated2d & np.isfinite(joints_px).all(1))
    ann[:, :2] = ok2d[:, None]
    if depth_mm is not None:
        uvz[:, 2] = (depth_mm - root_z) / depth_range + 0.5
        ann[:, 2] = ok2d & np.isfinite(depth_mm)
    uvz = np.nan_to_num(uvz, nan=0.0, posinf=0.0, neginf=0.0)
    has3d = pose3d is not None
    p3 = np.zeros((j, 3), np.float32) if pose3d is None else np.asarray(pose3d, np.float32)
    return {
        "image": image, "uvz": torch.from_numpy(uvz), "annotated": torch.from_numpy(ann),
        "pose3d": torch.from_numpy(p3), "has3d": torch.tensor(float(has3d)),
        "camera": torch.tensor(camera, dtype=torch.float32), "crop": torch.tensor([x0, y0, side], dtype=torch.float32),
        "root_z": torch.tensor(float(root_z)), "depth_range": torch.tensor(float(depth_range)),
    }


def fit_pinhole(p2d: np.ndarray, p3d: np.ndarray) -> tuple[float, float, float, float]:
    """Least-squares fx, fy, cx, cy from 2D pixels (N, 2) and camera-space points (N, 3) (u = f X/Z + c)."""
    ok = np.isfinite(p2d).all(1) & np.isfinite(p3d).all(1) & (p3d[:, 2] > 0)
    if ok.sum() < 2:
        raise ValueError("need at least two valid 2D/3D correspondences to fit the camera intrinsics")
    out = []
    for a in range(2):
        design = np.stack([p3d[ok, a] / p3d[ok, 2], np.ones(ok.sum())], 1)
        (f, c), *_ = np.linalg.lstsq(design, p2d[ok, a], rcond=None)
        out.append((f, c))
    return out[0][0], out[1][0], out[0][1], out[1][1]


def root_crop(root_px: np.ndarray, root_z: float, focal: float, metres: float = CROP_METRES) -> tuple[float, float, float]:
    """Crop (x0, y0, side) of a ``metres``-wide square at the root depth, centred on the projected root."""
    side = metres * 1000.0 * focal / max(root_z, 1e-6)
    return float(root_px[0] - side / 2), float(root_px[1] - side / 2), float(side)


class MixedBatchSampler(Sampler[list[int]]):
    """Batches of a ConcatDataset holding a fixed number of samples from each part (e.g. 14 MPII + 14 H36M).

    Each part is reshuffled every epoch (``set_epoch``) and sharded across DDP ranks; an epoch has
    ``num_batches`` batches (default: the first part's size // its batch size, as in the authors' code).
    """

    def __init__(self, sizes: Sequence[int], batch_sizes: Sequence[int], num_batches: int | None = None,
                 seed: int = 0, rank: int | None = None, world_size: int | None = None) -> None:
        if len(sizes) != len(batch_sizes) or not sizes:
            raise ValueError(f"sizes {list(sizes)} and batch_sizes {list(batch_sizes)} must be non-empty and match")
        if any(s <= 0 for s in sizes):
            raise ValueError(f"every mixed dataset must be non-empty, got sizes {list(sizes)}")
        if rank is None or world_size is None:
            dist = torch.distributed
            ready = dist.is_available() and dist.is_initialized()
            rank, world_size = (dist.get_rank(), dist.get_world_size()) if ready else (0, 1)
        self.sizes, self.batch_sizes = list(sizes), list(batch_sizes)
        self.offsets = np.cumsum([0, *self.sizes[:-1]]).tolist()
        self.rank, self.world_size, self.seed, self.epoch = rank, world_size, seed, 0
        per_rank = max(self.sizes[0] // world_size, 1)
        self.num_batches = num_batches or max(per_rank // max(self.batch_sizes[0], 1), 1)

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.num_batches

    def _stream(self, part: int, gen: torch.Generator) -> Iterator[int]:
        while True:
            perm = torch.randperm(self.sizes[part], generator=gen).tolist()
            yield from perm[self.rank::self.world_size] or perm

    def __iter__(self) -> Iterator[list[int]]:
        gen = torch.Generator().manual_seed(self.seed + 7919 * self.epoch)
        streams = [self._stream(i, gen) for i in range(len(self.sizes))]
        for _ in range(self.num_batches):
            batch = []
            for part, (stream, bs) in enumerate(zip(streams, self.batch_sizes)):
                batch.extend(self.offsets[part] + next(stream) for _ in range(bs))
            yield batch


def strided(n: int, stride: int, offset: int = 0) -> range:
    """Indices offset, offset+stride, ... below n (frame subsampling)."""
    if stride < 1:
        raise ValueError(f"frame stride must be >= 1, got {stride}")
    return range(offset, n, stride)


def require(path, what: str, where: str) -> None:
    """FileNotFoundError naming the expected layout and where the dataset is obtained."""
    import os

    if not os.path.exists(path):
        raise FileNotFoundError(f"{what} not found at {path}. Expected layout: {where}")


__all__ = ["PA17J_NAMES", "PA17J_FLIP", "PA17J_PARENTS", "DEPTH_RANGE_MM", "crop_image", "make_sample",
           "fit_pinhole", "root_crop", "MixedBatchSampler", "strided", "require", "frame_sample"]


class PoseDataModule:
    """Mixin of the 3D-pose datamodules: loaders, and optional mixing of a 2D-only set (MPII) into training.

    Subclasses set ``train_set``, ``val_set``, ``test_set`` and may set ``mix_set``; hparams need
    ``batch_size``, ``mix_batch_size``, ``num_workers``, ``seed``.
    """

    mix_set = None

    def _loader(self, ds, shuffle: bool):
        from torch.utils.data import DataLoader

        h = self.hparams
        return DataLoader(ds, batch_size=h.batch_size, shuffle=shuffle, drop_last=shuffle and len(ds) >= h.batch_size,
                          num_workers=h.num_workers, persistent_workers=h.num_workers > 0)

    def train_dataloader(self):
        from torch.utils.data import ConcatDataset, DataLoader

        h = self.hparams
        if self.mix_set is None:
            return self._loader(self.train_set, True)
        sampler = MixedBatchSampler([len(self.mix_set), len(self.train_set)], [h.mix_batch_size, h.batch_size],
                                    seed=h.seed)
        return DataLoader(ConcatDataset([self.mix_set, self.train_set]), batch_sampler=sampler,
                          num_workers=h.num_workers, persistent_workers=h.num_workers > 0)

    def val_dataloader(self):
        return self._loader(self.val_set, False)

    def test_dataloader(self):
        return self._loader(self.test_set, False)


def frame_sample(data_dir: str, rel_path: str, pose: np.ndarray, camera, image_size: int, depth_range: float,
                 what: str, layout: str) -> dict[str, torch.Tensor]:
    """Read one video frame, crop it around the root joint and build the training sample of a 3D dataset."""
    from datamodules.decode import open_image

    fx, fy, cx, cy = camera
    px = np.stack([fx * pose[:, 0] / pose[:, 2] + cx, fy * pose[:, 1] / pose[:, 2] + cy], 1)
    crop = root_crop(px[0], pose[0, 2], (fx + fy) / 2)
    path = os.path.join(data_dir, rel_path)
    require(path, what, layout)
    image = crop_image(open_image(path, "RGB", what), *crop, image_size)
    return make_sample(image, px, crop, depth_mm=pose[:, 2], root_z=float(pose[0, 2]), pose3d=pose,
                       camera=(fx, fy, cx, cy), depth_range=depth_range)
