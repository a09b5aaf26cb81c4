"""Embedded 3D-pose data (SSP-Net spec section 10): random 17-joint stick figures rendered at 64x64 with
per-limb colours, brightness falling with depth (the monocular depth cue) and a z-buffer. No download."""
from __future__ import annotations

import lightning.pytorch as L
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from datamodules.pose_common import DEPTH_RANGE_MM, PA17J_PARENTS, make_sample

# rest pose offsets from the parent (mm; x right, y down, z away from the camera), pa17j order
_OFFSETS = np.array([
    [0, 0, 0], [0, -250, 0], [0, -100, 0], [0, -150, 0], [-180, 20, 0], [180, 20, 0], [-10, 280, 0], [10, 280, 0],
    [-10, 250, 0], [10, 250, 0], [-120, 40, 0], [120, 40, 0], [0, 430, 0], [0, 430, 0], [0, 420, 0], [0, 420, 0],
    [0, -220, 0]], dtype=np.float64)
ROOT_DEPTH_MM = 5000.0
FOCAL_NORM = 2.0  # focal length in units of half the image width


def _rot(rx: np.ndarray, ry: np.ndarray, rz: np.ndarray) -> np.ndarray:
    """Rotation matrices (..., 3, 3) from Euler angles about x, y, z (applied z, then y, then x)."""
    cx, sx, cy, sy, cz, sz = np.cos(rx), np.sin(rx), np.cos(ry), np.sin(ry), np.cos(rz), np.sin(rz)
    one, zero = np.ones_like(rx), np.zeros_like(rx)
    mx = np.stack([one, zero, zero, zero, cx, -sx, zero, sx, cx], -1).reshape(*rx.shape, 3, 3)
    my = np.stack([cy, zero, sy, zero, one, zero, -sy, zero, cy], -1).reshape(*rx.shape, 3, 3)
    mz = np.stack([cz, -sz, zero, sz, cz, zero, zero, zero, one], -1).reshape(*rx.shape, 3, 3)
    return mx @ my @ mz


def _order() -> list[int]:
    order, seen = [], set()
    while len(order) < len(PA17J_PARENTS):
        for j, p in enumerate(PA17J_PARENTS):
            if j not in seen and (p < 0 or p in seen):
                order.append(j)
                seen.add(j)
    return order


def random_poses(n: int, rng: np.random.Generator, local: float = 0.5) -> np.ndarray:
    """(n, 17, 3) camera-space joints in mm: random local rotations (+-local rad), global yaw, small pitch/roll."""
    j = len(PA17J_PARENTS)
    local_r = _rot(*rng.uniform(-local, local, (3, n, j)))
    glob = _rot(rng.uniform(-0.2, 0.2, n), rng.uniform(0, 2 * np.pi, n), rng.uniform(-0.2, 0.2, n))
    rots = np.zeros((n, j, 3, 3))
    pos = np.zeros((n, j, 3))
    for k in _order():
        p = PA17J_PARENTS[k]
        parent_rot = glob if p < 0 else rots[:, p]
        rots[:, k] = parent_rot @ local_r[:, k]
        if p >= 0:
            pos[:, k] = pos[:, p] + np.einsum("nab,b->na", parent_rot, _OFFSETS[k])
    pos -= pos[:, :1]
    pos[..., 2] += ROOT_DEPTH_MM
    return pos


def project(pose_mm: np.ndarray, size: int) -> np.ndarray:
    """Pinhole projection (normalised focal 2.0, principal point at the centre) to pixels: (..., 2)."""
    f = FOCAL_NORM * size / 2
    return f * pose_mm[..., :2] / pose_mm[..., 2:3] + size / 2


_COLOURS = np.array([[1, .2, .2], [.2, 1, .2], [.2, .4, 1], [1, 1, .2], [1, .2, 1], [.2, 1, 1], [1, .6, .2],
                     [.6, .2, 1], [.2, 1, .6], [1, .2, .6], [.6, 1, .2], [.2, .6, 1], [1, .8, .6], [.6, .8, 1],
                     [.8, 1, .6], [1, .6, .8], [.8, .8, .8]])


def render(pose_mm: np.ndarray, size: int = 64) -> np.ndarray:
    """One (3, size, size) float image: 1-px limbs, own colour each, darker when farther, nearer limb wins."""
    uv = project(pose_mm, size)
    pts, depth, col = [], [], []
    for k, p in enumerate(PA17J_PARENTS):
        if p < 0:
            continue
        steps = int(np.ceil(np.abs(uv[k] - uv[p]).max() * 2)) + 2
        t = np.linspace(0, 1, steps)[:, None]
        pts.append(uv[p] + t * (uv[k] - uv[p]))
        depth.append(pose_mm[p, 2] + t[:, 0] * (pose_mm[k, 2] - pose_mm[p, 2]))
        col.append(np.repeat(_COLOURS[k][None], steps, 0))
    pts, depth, col = np.concatenate(pts), np.concatenate(depth), np.concatenate(col)
    ij = np.floor(pts).astype(int)
    ok = (ij >= 0).all(1) & (ij < size).all(1)
    ij, depth, col = ij[ok], depth[ok], col[ok]
    bright = np.clip(0.55 - 0.45 * (depth - ROOT_DEPTH_MM) / 1000.0, 0.1, 1.0)
    flat = ij[:, 1] * size + ij[:, 0]
    order = np.lexsort((depth, flat))  # by pixel, nearest first
    first = order[np.unique(flat[order], return_index=True)[1]]
    img = np.zeros((size * size, 3), np.float32)
    img[flat[first]] = col[first] * bright[first, None]
    return img.reshape(size, size, 3).transpose(2, 0, 1)


class SyntheticStickFigures(Dataset):
    """``num_samples`` stick figures pre-rendered once (seeded), in the samples format of the pose datamodules."""

    def __init__(self, num_samples: int, image_size: int = 64, seed: int = 0) -> None:
        rng = np.random.default_rng(seed)
        self.poses = random_poses(num_samples, rng).astype(np.float32)
        self.images = torch.from_numpy(np.stack([render(p, image_size) for p in self.poses]))
        self.size = image_size

    def __len__(self) -> int:
        return len(self.poses)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        s, pose = self.size, self.poses[i]
        f = FOCAL_NORM * s / 2
        return make_sample(self.images[i], project(pose, s), (0.0, 0.0, float(s)), depth_mm=pose[:, 2],
                           root_z=float(pose[0, 2]), pose3d=pose, camera=(f, f, s / 2, s / 2),
                           depth_range=DEPTH_RANGE_MM)


class SyntheticStickFigureDataModule(L.LightningDataModule):
    """Train/val/test splits of synthetic stick figures with 3D targets: the CI default of SSP-Net."""

    def __init__(self, num_train: int = 3072, num_val: int = 256, num_test: int = 256, image_size: int = 64,
                 batch_size: int = 32, num_workers: int = 0, seed: int = 0) -> None:
        super().__init__()
        self.save_hyperparameters()

    def setup(self, stage: str | None = None) -> None:
        h = self.hparams
        if not hasattr(self, "train_set"):
            self.train_set = SyntheticStickFigures(h.num_train, h.image_size, h.seed)
            self.val_set = SyntheticStickFigures(h.num_val, h.image_size, h.seed + 1)
            self.test_set = SyntheticStickFigures(h.num_test, h.image_size, h.seed + 2)

    def _loader(self, ds: Dataset, shuffle: bool) -> DataLoader:
        return DataLoader(ds, batch_size=self.hparams.batch_size, shuffle=shuffle, drop_last=shuffle,
                          num_workers=self.hparams.num_workers, persistent_workers=self.hparams.num_workers > 0)

    def train_dataloader(self) -> DataLoader:
        return self._loader(self.train_set, True)

    def val_dataloader(self) -> DataLoader:
        return self._loader(self.val_set, False)

    def test_dataloader(self) -> DataLoader:
        return self._loader(self.test_set, False)
