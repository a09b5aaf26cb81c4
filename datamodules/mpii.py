"""MPII Human Pose, single-person 2D crops in the deephar ``annotations.mat`` layout (used by SSP-Net as the
2D-only half of each training batch, spec section 4); joints mapped to the 17-joint pa17j layout."""
from __future__ import annotations

import os

import numpy as np
import torch
from torch.utils.data import Dataset

from datamodules.decode import open_image, read_mat
from datamodules.pose_common import crop_image, make_sample, require

# pa17j <- MPII (0 r_ankle, 1 r_knee, 2 r_hip, 3 l_hip, 4 l_knee, 5 l_ankle, 6 pelvis, 7 thorax, 8 upper_neck,
# 9 head_top, 10 r_wrist, 11 r_elbow, 12 r_shoulder, 13 l_shoulder, 14 l_elbow, 15 l_wrist); spine has no MPII joint
MPII_TO_PA17J = (6, 7, 8, 9, 12, 13, 11, 14, 10, 15, 2, 3, 1, 4, 0, 5, -1)
MPII_LAYOUT = ("<data_dir>/annotations.mat (deephar's MPII file: 'annot_tr' and 'annot_val', 3 x N cells of "
               "[rect indices; image name; annorect with head, objpos, scale, pose (2 x 16)]) and "
               "<data_dir>/images/<name>.jpg from the official MPII tarball (http://human-pose.mpi-inf.mpg.de), "
               "annotations.mat from github.com/dluvizon/deephar (datasets/MPII)")


def _field(obj, name: str, where: str):
    try:
        return getattr(obj, name) if hasattr(obj, name) else obj[name]
    except (KeyError, ValueError, IndexError, TypeError) as err:
        raise ValueError(f"{where}: annotation has no field {name!r}") from err


def load_mpii_annotations(path: str, split: str = "train") -> list[dict]:
    """Single-person samples (image name, 16x2 joints with NaN = missing, objpos, scale) of one split."""
    require(path, "MPII annotations", MPII_LAYOUT)
    key = {"train": "annot_tr", "val": "annot_val"}.get(split)
    if key is None:
        raise ValueError(f"MPII split must be 'train' or 'val', got {split!r}")
    mat = read_mat(path, "MPII annotations", squeeze_me=True, struct_as_record=False)
    if key not in mat:
        raise ValueError(f"{path}: expected a variable {key!r} (deephar layout), found {sorted(k for k in mat if not k.startswith('__'))}")
    annot = np.asarray(mat[key], dtype=object)
    if annot.ndim == 1 and annot.shape[0] == 3:  # a single image: squeeze_me dropped the N axis
        annot = annot.reshape(3, 1)
    if annot.ndim != 2 or annot.shape[0] != 3:
        raise ValueError(f"{path}: {key} must be a 3 x N cell array, got shape {annot.shape}")
    samples = []
    for i in range(annot.shape[1]):
        rect_idx = np.atleast_1d(annot[0, i]).astype(int).ravel()
        name = str(annot[1, i])
        rects = np.atleast_1d(annot[2, i]).ravel()
        for r in rect_idx:
            if not 1 <= r <= len(rects):
                raise ValueError(f"{path}: {key} image {i} ({name}) refers to rect {r} of {len(rects)}")
            rect = rects[r - 1]
            where = f"{path}: {key} image {i} rect {r}"
            pose = np.asarray(_field(rect, "pose", where), dtype=np.float64)
            if pose.shape == (16, 2):
                pose = pose.T
            if pose.shape != (2, 16):
                raise ValueError(f"{where}: pose must be 2 x 16, got {pose.shape}")
            samples.append({"image": name, "pose": pose.T.copy(),
                            "objpos": np.asarray(_field(rect, "objpos", where), dtype=np.float64).ravel()[:2],
                            "scale": float(np.asarray(_field(rect, "scale", where)).ravel()[0])})
    return samples


class MPIIDataset(Dataset):
    """2D-only pa17j samples: the deephar crop (side 250 x scale px, centre 15 x scale px below objpos), no depth."""

    def __init__(self, data_dir: str, split: str = "train", image_size: int = 256) -> None:
        self.data_dir, self.image_size = data_dir, image_size
        self.samples = load_mpii_annotations(os.path.join(data_dir, "annotations.mat"), split)
        if not self.samples:
            raise ValueError(f"{data_dir}/annotations.mat: no {split} samples")

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:

        s = self.samples[i]
        path = os.path.join(self.data_dir, "images", s["image"])
        require(path, "MPII image", MPII_LAYOUT)
        scale = 1.25 * s["scale"]
        cx, cy = s["objpos"][0], s["objpos"][1] + 12 * scale
        side = 200 * scale
        crop = (cx - side / 2, cy - side / 2, side)
        image = crop_image(open_image(path, "RGB", "MPII image"), *crop, self.image_size)
        joints = np.full((len(MPII_TO_PA17J), 2), np.nan)
        for j, m in enumerate(MPII_TO_PA17J):
            if m >= 0:
                joints[j] = s["pose"][m]
        joints[(joints <= 0).any(1)] = np.nan  # MPII marks missing joints with -1 or 0
        return make_sample(image, joints, crop)
