"""SVHN cropped digits (Netzer et al. 2011) from the official ``train_32x32.mat`` / ``test_32x32.mat``.

MATLAB arrays ``X`` (32 x 32 x 3 x N, uint8) and ``y`` (N x 1, label 10 = digit 0, remapped to 0 as
torchvision does). Images come out in [0, 1]; random crop (pad 4) on the accelerator, no flip (digits).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from datamodules.cifar import UInt8ImageDataset
from datamodules.base import SplitDataModule, carve_validation
from datamodules.decode import as_labels, as_uint8, read_mat

SVHN_URL = "http://ufldl.stanford.edu/housenumbers/"


def read_svhn_mat(path: str | Path) -> tuple[torch.Tensor, torch.Tensor]:
    """One SVHN ``.mat`` file as ``(N, 3, 32, 32)`` uint8 images and ``(N,)`` labels in 0..9."""
    path = Path(path)
    mat = read_mat(path, "SVHN file")
    if "X" not in mat or "y" not in mat:
        raise ValueError(f"{path}: expected variables 'X' and 'y', found {sorted(k for k in mat if not k.startswith('__'))}")
    x = np.asarray(mat["X"])
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3):
        raise ValueError(f"{path}: 'X' must be 32 x 32 x 3 x N, got shape {x.shape}")
    x = as_uint8(x, path, "'X'")
    y = as_labels(np.asarray(mat["y"]).reshape(-1), path, 1, 10, "label")
    if x.shape[3] != len(y):
        raise ValueError(f"{path}: {x.shape[3]} images but {len(y)} labels")
    y[y == 10] = 0
    images = torch.from_numpy(np.ascontiguousarray(x.transpose(3, 2, 0, 1)))
    return images, torch.from_numpy(y)


class SVHNDataModule(SplitDataModule):
    """SVHN (73,257 train / 26,032 test, 10 classes; ``extra`` optional) with a seeded validation split."""

    num_classes = 10

    def __init__(self, data_dir: str = "data/svhn", batch_size: int = 128, num_workers: int = 4, val_size: int = 5000,
                 seed: int = 0, augment: bool = True, use_extra: bool = False, download: bool = False) -> None:
        super().__init__()
        self.save_hyperparameters()
        if val_size < 0:
            raise ValueError(f"val_size must be >= 0, got {val_size}")
        self.data_dir = Path(data_dir)
        self.batch_size, self.num_workers = batch_size, num_workers
        self.datasets: dict[str, Dataset] = {}
        self._aug: torch.nn.Module | None = None

    def _files(self) -> list[str]:
        return ["train_32x32.mat", "test_32x32.mat"] + (["extra_32x32.mat"] if self.hparams.use_extra else [])

    def prepare_data(self) -> None:
        missing = [f for f in self._files() if not (self.data_dir / f).is_file()]
        if missing and self.hparams.download:
            from torchvision.datasets import SVHN

            for split in ("train", "test") + (("extra",) if self.hparams.use_extra else ()):
                SVHN(str(self.data_dir), split=split, download=True)
            missing = [f for f in self._files() if not (self.data_dir / f).is_file()]
        if missing:
            raise FileNotFoundError(
                f"SVHNDataModule: missing {missing} in {self.data_dir}. Expected the cropped-digits format "
                f"(train_32x32.mat, test_32x32.mat[, extra_32x32.mat]) from {SVHN_URL}, or download=True "
                "on a machine with network."
            )

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        self.prepare_data()
        hp = self.hparams
        xs, ys = zip(*(read_svhn_mat(self.data_dir / f) for f in self._files() if f != "test_32x32.mat"))
        train = UInt8ImageDataset(torch.cat(xs), torch.cat(ys))
        test = UInt8ImageDataset(*read_svhn_mat(self.data_dir / "test_32x32.mat"))
        self.datasets = carve_validation(train, test, hp.val_size, hp.seed)


    def augmentation(self) -> torch.nn.Module:
        """Random crop 32 with padding 4; no horizontal flip (it would change digits)."""
        if self._aug is None:
            import kornia.augmentation as K

            self._aug = torch.nn.Sequential(K.RandomCrop((32, 32), padding=4))
        return self._aug

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        trainer = getattr(self, "trainer", None)
        if self.hparams.augment and trainer is not None and trainer.training:
            batch = (self.augmentation().to(batch[0].device)(batch[0]), batch[1])
        return batch
