"""Human3.6M for SSP-Net (spec sections 3.1, 5, 7): the deephar ``annotations.mat`` layout or VideoPose3D-style
npz + cameras.json; subjects S1, S5-S8 train / S9, S11 test; configurable frame strides; GT-box crops of
2.25 m at the root depth; optional MPII mixed into every training batch."""
from __future__ import annotations

import json
import os
import re
from typing import Literal

import lightning.pytorch as L
import numpy as np
import torch
from torch.utils.data import Dataset

from datamodules.pose_common import DEPTH_RANGE_MM, PoseDataModule, frame_sample, require

H36M_TO_PA17J = (0, 12, 13, 15, 25, 17, 26, 18, 27, 19, 1, 6, 2, 7, 3, 8, 11)  # deephar's 32 -> 17 selection
DEEPHAR_LAYOUT = ("<data_dir>/annotations.mat (deephar: sequences_tr/_te/_val, each sequence with name "
                  "'aAA_sSS_eEE_cCC', frames[f, w, h, pose3d 3x32 world mm], camera_parameters[R, T, f, c, p, k]) and "
                  "<data_dir>/images/<name>/<%05d f>.jpg; get annotations.mat from github.com/dluvizon/deephar and "
                  "the videos from http://vision.imar.ro/human3.6m")
NPZ_LAYOUT = ("<data_dir>/data_3d_h36m.npz (VideoPose3D: positions_3d[subject][action] = T x 32 x 3 world metres), "
              "<data_dir>/cameras.json ({subject: [{id, center, focal_length, orientation (w,x,y,z, camera-to-world), "
              "translation (mm)}]}) and frames at <data_dir>/<image_template>")
_NAME = re.compile(r"^a(\d+)_s(\d+)_e(\d+)_c(\d+)$")


def _qrot_inverse(q: np.ndarray, v: np.ndarray) -> np.ndarray:
    """Rotate rows of ``v`` by the inverse of unit quaternion q = (w, x, y, z)."""
    w, x, y, z = q / np.linalg.norm(q)
    rot = np.array([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                    [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                    [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]])
    return v @ rot  # R^T v for row vectors


class Human36MFrames(Dataset):
    """Frames as (image path, 17x3 camera mm, fx fy cx cy); crops and normalised targets built on access."""

    def __init__(self, data_dir: str, paths: list[str], pose_cam: np.ndarray, camera: np.ndarray,
                 actions: list[int], image_size: int = 256, depth_range: float = DEPTH_RANGE_MM) -> None:
        self.data_dir, self.paths, self.pose_cam, self.camera = data_dir, paths, pose_cam, camera
        self.actions, self.image_size, self.depth_range = actions, image_size, depth_range

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        sample = frame_sample(self.data_dir, self.paths[i], self.pose_cam[i], self.camera[i], self.image_size,
                              self.depth_range, "Human3.6M frame", DEEPHAR_LAYOUT)
        sample["action"] = torch.tensor(self.actions[i])
        return sample


def _collect(frames: list[tuple]) -> tuple[list[str], np.ndarray, np.ndarray, list[int]]:
    if not frames:
        return [], np.zeros((0, 17, 3), np.float32), np.zeros((0, 4), np.float32), []
    paths, poses, cams, acts = zip(*frames)
    return list(paths), np.stack(poses).astype(np.float32), np.stack(cams).astype(np.float32), list(acts)


def read_deephar(data_dir: str, subjects: list[int], stride: int, offset: int = 0) -> list[tuple]:
    """(path, pose_cam 17x3 mm, camera 4, action) for every ``stride``-th frame of the given subjects' sequences."""
    from datamodules.decode import read_mat

    path = os.path.join(data_dir, "annotations.mat")
    require(path, "Human3.6M annotations", DEEPHAR_LAYOUT)
    mat = read_mat(path, "Human3.6M annotations", squeeze_me=True, struct_as_record=False)
    keys = [k for k in ("sequences_te", "sequences_tr", "sequences_val") if k in mat]
    if not keys:
        raise ValueError(f"{path}: no sequences_te/sequences_tr/sequences_val variables (deephar layout)")
    images = "images" if os.path.isdir(os.path.join(data_dir, "images")) else "images.new"
    out = []
    for key in keys:
        for seq in np.atleast_1d(mat[key]):
            name = str(seq.name)
            m = _NAME.match(name)
            if m is None:
                raise ValueError(f"{path}: {key} sequence name {name!r} is not 'aAA_sSS_eEE_cCC'")
            action, subject = int(m.group(1)), int(m.group(2))
            if subject not in subjects:
                continue
            cam = seq.camera_parameters
            rot, trans = np.asarray(cam.R, float).reshape(3, 3), np.asarray(cam.T, float).ravel()
            f, c = np.asarray(cam.f, float).ravel(), np.asarray(cam.c, float).ravel()
            frames = np.atleast_1d(seq.frames)
            for k in range(offset, len(frames), stride):
                fr = frames[k]
                world = np.asarray(fr.pose3d, float)
                if world.shape != (3, 32):
                    raise ValueError(f"{path}: {name} frame {k}: pose3d must be 3 x 32, got {world.shape}")
                pose = (rot @ (world[:, list(H36M_TO_PA17J)] - trans[:, None])).T  # x = R (X - T)
                out.append((f"{images}/{name}/{int(fr.f):05d}.jpg", pose, np.r_[f, c], action))
    return out


def read_npz(data_dir: str, subjects: list[int], stride: int, offset: int, image_template: str) -> list[tuple]:
    """The VideoPose3D-style alternative: world positions (m) + per-subject cameras -> camera-space frames."""
    p3d, pcam = os.path.join(data_dir, "data_3d_h36m.npz"), os.path.join(data_dir, "cameras.json")
    require(p3d, "Human3.6M 3D positions", NPZ_LAYOUT)
    require(pcam, "Human3.6M cameras", NPZ_LAYOUT)
    from datamodules.decode import read_npz_object

    positions = read_npz_object(p3d, "positions_3d", "Human3.6M 3D positions")  # a pickled dict: restricted unpickler
    if not isinstance(positions, dict):
        raise ValueError(f"{p3d}: positions_3d must hold a dict subject -> action -> array, found {type(positions).__name__}")
    with open(pcam) as fh:
        cameras = json.load(fh)
    actions = sorted({a.split(" ")[0] for s in positions.values() for a in s})
    out = []
    for subj_key in sorted(positions):
        if int(str(subj_key).lstrip("S")) not in subjects:
            continue
        if subj_key not in cameras:
            raise ValueError(f"{pcam}: no cameras for subject {subj_key!r}")
        for action, seq in sorted(positions[subj_key].items()):
            seq = np.asarray(seq, float)
            if seq.ndim != 3 or seq.shape[1:] != (32, 3):
                raise ValueError(f"{p3d}: positions_3d[{subj_key}][{action}] must be T x 32 x 3, got {seq.shape}")
            for cam in cameras[subj_key]:
                f = np.asarray(cam["focal_length"], float)
                c = np.asarray(cam["center"], float)
                t, q = np.asarray(cam["translation"], float), np.asarray(cam["orientation"], float)
                for k in range(offset, len(seq), stride):
                    pose = _qrot_inverse(q, seq[k, list(H36M_TO_PA17J)] * 1000.0 - t)
                    rel = image_template.format(subject=subj_key, action=action, camera=cam["id"], frame=k,
                                                frame1=k + 1)
                    out.append((rel, pose, np.r_[f, c], actions.index(action.split(" ")[0]) + 1))
    return out


class Human36MDataModule(PoseDataModule, L.LightningDataModule):
    """Human3.6M 3D crops (S1, S5-S8 train / S9, S11 test), optionally mixed with MPII 2D crops in each batch.

    Validation (block selection) defaults to the training subjects at ``val_stride`` offset by half a stride,
    because the paper's protocol holds out no subject; set ``val_subjects`` to hold some out.
    """

    def __init__(self, data_dir: str = "data/human36m", format: Literal["deephar_mat", "npz"] = "deephar_mat",
                 train_subjects: list[int] = [1, 5, 6, 7, 8], test_subjects: list[int] = [9, 11],
                 val_subjects: list[int] | None = None, train_stride: int = 5, val_stride: int = 640,
                 test_stride: int = 64, image_size: int = 256, batch_size: int = 14,
                 mpii_dir: str | None = None, mix_batch_size: int = 14, num_workers: int = 4, seed: int = 0,
                 image_template: str = "images/{subject}/{action}.{camera}/{frame1:06d}.jpg",
                 download: bool = False) -> None:
        super().__init__()
        if format not in ("deephar_mat", "npz"):
            raise ValueError(f"format must be 'deephar_mat' or 'npz', got {format!r}")
        self.save_hyperparameters()

    def _read(self, subjects, stride: int, offset: int = 0) -> list[tuple]:
        h = self.hparams
        if h.download:
            raise FileNotFoundError("Human3.6M cannot be downloaded automatically (licence); expected " +
                                    (DEEPHAR_LAYOUT if h.format == "deephar_mat" else NPZ_LAYOUT))
        subjects = [int(s) for s in subjects]
        if h.format == "deephar_mat":
            return read_deephar(h.data_dir, subjects, stride, offset)
        return read_npz(h.data_dir, subjects, stride, offset, h.image_template)

    def _dataset(self, frames: list[tuple], what: str) -> Human36MFrames:
        if not frames:
            raise ValueError(f"Human3.6M {what}: no frames for these subjects in {self.hparams.data_dir}")
        paths, poses, cams, acts = _collect(frames)
        return Human36MFrames(self.hparams.data_dir, paths, poses, cams, acts, self.hparams.image_size)

    def setup(self, stage: str | None = None) -> None:
        h = self.hparams
        if hasattr(self, "test_set"):
            return
        self.train_set = self._dataset(self._read(h.train_subjects, h.train_stride), "train")
        val_subjects = h.val_subjects if h.val_subjects else h.train_subjects
        self.val_set = self._dataset(self._read(val_subjects, h.val_stride, h.val_stride // 2), "val")
        self.test_set = self._dataset(self._read(h.test_subjects, h.test_stride), "test")
        if h.mpii_dir:
            from datamodules.mpii import MPIIDataset

            self.mix_set = MPIIDataset(h.mpii_dir, "train", h.image_size)
