"""MPI-INF-3DHP for SSP-Net (spec sections 5, 7): training ``annot.mat`` + ``camera.calibration`` (28 joints),
test ``annot_data.mat`` (17 joints, ``valid_frame``); both mapped to pa17j, cropped 2.25 m at the root depth."""
from __future__ import annotations

import os
from typing import Sequence

import lightning.pytorch as L
import numpy as np
import torch
from torch.utils.data import Dataset

from datamodules.pose_common import DEPTH_RANGE_MM, PoseDataModule, fit_pinhole, frame_sample, require

TRAIN_TO_PA17J = (4, 5, 6, 7, 14, 9, 15, 10, 16, 11, 23, 18, 24, 19, 25, 20, 3)  # authors' 28 -> 17 map
TEST_TO_PA17J = (14, 1, 16, 0, 2, 5, 3, 6, 4, 7, 8, 11, 9, 12, 10, 13, 15)  # authors' test 17 -> pa17j map
LAYOUT = ("<data_dir>/S{1..8}/Seq{1,2}/annot.mat (annot2, annot3 cells per camera) + camera.calibration, frames at "
          "<data_dir>/<train_template>; test: <data_dir>/mpi_inf_3dhp_test_set/TS{1..6}/annot_data.mat (annot2, annot3, "
          "valid_frame) and imageSequence/img_%06d.jpg. Obtain it with the official get_dataset.sh / "
          "get_testset.sh from https://vcai.mpi-inf.mpg.de/3dhp-dataset and extract the videos to frames")


def parse_calibration(path: str) -> dict[int, tuple[float, float, float, float]]:
    """fx, fy, cx, cy per camera from a 3DHP ``camera.calibration`` file (4x4 row-major 'intrinsic' lines)."""
    require(path, "MPI-INF-3DHP camera calibration", LAYOUT)
    cams, current = {}, None
    with open(path) as fh:
        for lineno, line in enumerate(fh, 1):
            parts = line.split()
            if not parts:
                continue
            if parts[0] == "name":
                current = int(parts[1])
            elif parts[0] == "intrinsic":
                if current is None or len(parts) != 17:
                    raise ValueError(f"{path}:{lineno}: expected 'intrinsic' + 16 numbers after a 'name' line")
                k = np.asarray(parts[1:], float).reshape(4, 4)
                cams[current] = (k[0, 0], k[1, 1], k[0, 2], k[1, 2])
    if not cams:
        raise ValueError(f"{path}: no 'name'/'intrinsic' entries found")
    return cams


def _loadmat(path: str) -> dict:
    """MATLAB v5 via scipy; v7.3 (HDF5, the official test files) via h5py with dims reversed back to MATLAB order."""
    from datamodules.decode import read_mat

    return read_mat(path, "MPI-INF-3DHP annotations", squeeze_me=False)


class Frames3D(Dataset):
    """Frames with 17x3 camera-mm poses and intrinsics; root-centred 2.25 m crops built on access."""

    def __init__(self, data_dir: str, paths: list[str], pose_cam: np.ndarray, camera: np.ndarray,
                 image_size: int = 256, depth_range: float = DEPTH_RANGE_MM) -> None:
        self.data_dir, self.paths, self.pose_cam, self.camera = data_dir, paths, pose_cam, camera
        self.image_size, self.depth_range = image_size, depth_range

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> dict[str, torch.Tensor]:
        return frame_sample(self.data_dir, self.paths[i], self.pose_cam[i], self.camera[i], self.image_size,
                            self.depth_range, "MPI-INF-3DHP frame", LAYOUT)


def read_train(data_dir: str, subjects: Sequence[int], cameras: Sequence[int], stride: int, offset: int,
               template: str) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Every ``stride``-th frame of S*/Seq{1,2} for the given cameras: paths, poses (N,17,3) mm, intrinsics (N,4)."""
    paths, poses, cams = [], [], []
    for s in subjects:
        for q in (1, 2):
            seq_dir = os.path.join(data_dir, f"S{s}", f"Seq{q}")
            annot_path = os.path.join(seq_dir, "annot.mat")
            require(annot_path, "MPI-INF-3DHP annotation", LAYOUT)
            calib = parse_calibration(os.path.join(seq_dir, "camera.calibration"))
            mat = _loadmat(annot_path)
            if "annot3" not in mat:
                raise ValueError(f"{annot_path}: no 'annot3' variable")
            annot3 = np.asarray(mat["annot3"], dtype=object).ravel()
            for c in cameras:
                if c >= len(annot3) or c not in calib:
                    raise ValueError(f"{annot_path}: camera {c} missing (annot3 has {len(annot3)}, calibration "
                                     f"{sorted(calib)})")
                a3 = np.asarray(annot3[c], float)
                if a3.ndim != 2 or a3.shape[1] != 84:
                    raise ValueError(f"{annot_path}: annot3{{{c}}} must be F x 84 (28 joints x 3), got {a3.shape}")
                a3 = a3.reshape(-1, 28, 3)[:, list(TRAIN_TO_PA17J)]
                for k in range(offset, len(a3), stride):
                    paths.append(template.format(subject=s, seq=q, camera=c, frame=k, frame1=k + 1))
                    poses.append(a3[k])
                    cams.append(calib[c])
    return paths, np.asarray(poses, np.float32).reshape(-1, 17, 3), np.asarray(cams, np.float32).reshape(-1, 4)


def _frames_last(arr: np.ndarray, joints: int, dims: int, path: str, key: str) -> np.ndarray:
    """MATLAB dims*joints*1*F (or F*joints*dims) -> (F, joints, dims)."""
    a = np.asarray(arr, float)
    if a.ndim >= 3 and a.shape[0] == dims and a.shape[1] == joints:
        return np.moveaxis(a.reshape(dims, joints, -1), -1, 0).transpose(0, 2, 1)
    if a.shape[-2:] == (joints, dims):
        return a.reshape(-1, joints, dims)
    raise ValueError(f"{path}: {key} must be {dims} x {joints} x 1 x F, got {a.shape}")


def read_test(data_dir: str, sequences: Sequence[int], stride: int) -> tuple[list[str], np.ndarray, np.ndarray, list]:
    """Valid frames (``valid_frame == 1``) of TS*: paths, poses, intrinsics fitted per sequence from annot2/annot3."""
    root = os.path.join(data_dir, "mpi_inf_3dhp_test_set")
    root = root if os.path.isdir(root) else data_dir
    paths, poses, cams, seq_ids = [], [], [], []
    for ts in sequences:
        path = os.path.join(root, f"TS{ts}", "annot_data.mat")
        require(path, "MPI-INF-3DHP test annotation", LAYOUT)
        mat = _loadmat(path)
        for key in ("annot2", "annot3", "valid_frame"):
            if key not in mat:
                raise ValueError(f"{path}: no {key!r} variable")
        a2 = _frames_last(mat["annot2"], 17, 2, path, "annot2")[:, list(TEST_TO_PA17J)]
        a3 = _frames_last(mat["annot3"], 17, 3, path, "annot3")[:, list(TEST_TO_PA17J)]
        valid = np.asarray(mat["valid_frame"]).ravel().astype(bool)
        if not len(valid) == len(a2) == len(a3):
            raise ValueError(f"{path}: annot2/annot3/valid_frame lengths differ ({len(a2)}, {len(a3)}, {len(valid)})")
        idx = np.flatnonzero(valid)[::stride]
        cam = fit_pinhole(a2[valid].reshape(-1, 2), a3[valid].reshape(-1, 3))
        for k in idx:
            paths.append(os.path.relpath(os.path.join(root, f"TS{ts}", "imageSequence", f"img_{k + 1:06d}.jpg"), data_dir))
            poses.append(a3[k])
            cams.append(cam)
            seq_ids.append(ts)
    return paths, np.asarray(poses, np.float32).reshape(-1, 17, 3), np.asarray(cams, np.float32).reshape(-1, 4), seq_ids


class MPIINF3DHPDataModule(PoseDataModule, L.LightningDataModule):
    """MPI-INF-3DHP: train S1-S8 (chosen cameras), test TS1-TS6 valid frames; optional MPII mixed into training."""

    def __init__(self, data_dir: str = "data/mpi_inf_3dhp", train_subjects: list[int] = [1, 2, 3, 4, 5, 6, 7, 8],
                 cameras: list[int] = [0, 1, 2, 4, 5, 6, 7, 8], test_sequences: list[int] = [1, 2, 3, 4, 5, 6],
                 train_stride: int = 10, val_stride: int = 500, test_stride: int = 1, image_size: int = 256,
                 batch_size: int = 14, mpii_dir: str | None = None, mix_batch_size: int = 14, num_workers: int = 4,
                 seed: int = 0, train_template: str = "S{subject}/Seq{seq}/imageFrames/video_{camera}/frame_{frame1:06d}.jpg",
                 download: bool = False) -> None:
        super().__init__()
        self.save_hyperparameters()

    def setup(self, stage: str | None = None) -> None:
        h = self.hparams
        if hasattr(self, "test_set"):
            return
        if h.download:
            raise FileNotFoundError(f"MPI-INF-3DHP must be fetched with its own licence scripts; expected {LAYOUT}")
        def build(parts):
            if not parts[0]:
                raise ValueError(f"MPI-INF-3DHP: no frames selected in {h.data_dir}")
            return Frames3D(h.data_dir, parts[0], parts[1], parts[2], h.image_size)
        self.train_set = build(read_train(h.data_dir, h.train_subjects, h.cameras, h.train_stride, 0, h.train_template))
        self.val_set = build(read_train(h.data_dir, h.train_subjects, h.cameras, h.val_stride, h.val_stride // 2,
                                        h.train_template))
        test = read_test(h.data_dir, h.test_sequences, h.test_stride)
        self.test_set = build(test[:3])
        if h.mpii_dir:
            from datamodules.mpii import MPIIDataset

            self.mix_set = MPIIDataset(h.mpii_dir, "train", h.image_size)
