"""CIFAR-10 and CIFAR-100 from their official python pickles (``cifar-10-batches-py``, ``cifar-100-python``).

Images come out as float tensors in [0, 1] (normalisation belongs to the model); the validation
split is carved from the training set with a seeded generator; random crop (pad 4) and horizontal
flip run on the accelerator with kornia.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Subset
from datamodules.base import SplitDataModule
from datamodules.decode import as_labels, as_uint8
from zoo.core.safe_pickle import safe_load

CIFAR10_TRAIN = [f"data_batch_{i}" for i in range(1, 6)]
CIFAR_URL = "https://www.cs.toronto.edu/~kriz/cifar.html"


class UInt8ImageDataset(Dataset):
    """``(N, C, H, W)`` uint8 images kept compact in memory, returned as float [0, 1] with int64 labels."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor) -> None:
        if images.dtype != torch.uint8 or images.ndim != 4:
            raise ValueError(f"images must be uint8 (N, C, H, W), got {images.dtype} {tuple(images.shape)}")
        if len(images) != len(labels):
            raise ValueError(f"{len(images)} images but {len(labels)} labels")
        self.images, self.labels = images, labels.long()

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        return self.images[i].float().div_(255.0), self.labels[i]


def _unpickle(path: Path) -> dict:
    """A CIFAR pickle through the restricted unpickler: a crafted batch is refused before any of its code runs."""
    try:
        return safe_load(path, encoding="bytes")
    except ValueError as err:
        raise ValueError(f"not a CIFAR python pickle: {err}") from None


def read_cifar_batch(path: str | Path, label_key: bytes = b"labels",
                     num_classes: int = 10) -> tuple[torch.Tensor, torch.Tensor]:
    """One CIFAR pickle as ``(N, 3, 32, 32)`` uint8 images and ``(N,)`` labels, with row-level checks."""
    path = Path(path)
    batch = _unpickle(path)
    if not isinstance(batch, dict) or b"data" not in batch or label_key not in batch:
        keys = sorted(batch) if isinstance(batch, dict) else type(batch).__name__
        raise ValueError(f"{path}: expected a dict with keys b'data' and {label_key!r}, found {keys}")
    data = np.asarray(batch[b"data"])
    if data.ndim != 2 or data.shape[1] != 3072:
        raise ValueError(f"{path}: b'data' must be N x 3072 uint8 (R, G, B planes of 32x32), got shape {data.shape}")
    data = as_uint8(data, path, "b'data'")
    labels = as_labels(batch[label_key], path, 0, num_classes - 1, "label")
    if len(labels) != len(data):
        raise ValueError(f"{path}: {len(data)} images but {len(labels)} labels")
    images = torch.from_numpy(data.reshape(-1, 3, 32, 32).copy())
    return images, torch.from_numpy(labels)


def read_label_names(path: str | Path, key: bytes) -> list[str]:
    """Class names from ``batches.meta`` (``b'label_names'``) or ``meta`` (``b'fine_label_names'``)."""
    meta = _unpickle(Path(path))
    return [n.decode() if isinstance(n, bytes) else str(n) for n in meta.get(key, [])]


class CIFAR10DataModule(SplitDataModule):
    """CIFAR-10 (50,000 train / 10,000 test, 10 classes) read from ``data_batch_1..5`` and ``test_batch``."""

    num_classes = 10
    folder = "cifar-10-batches-py"
    train_files: tuple[str, ...] = tuple(CIFAR10_TRAIN)
    test_files: tuple[str, ...] = ("test_batch",)
    meta_file, names_key, label_key = "batches.meta", b"label_names", b"labels"

    def __init__(
        self,
        data_dir: str = "data/cifar-10-batches-py",
        batch_size: int = 128,
        num_workers: int = 4,
        val_size: int = 5000,
        seed: int = 0,
        augment: bool = True,
        download: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if val_size < 0:
            raise ValueError(f"val_size must be >= 0, got {val_size}")
        self.data_dir = Path(data_dir)
        self.batch_size, self.num_workers = batch_size, num_workers
        self.datasets: dict[str, Dataset] = {}
        self.classes: list[str] = []
        self._aug: torch.nn.Module | None = None

    # ---- files -----------------------------------------------------------------------------
    def _missing(self) -> list[str]:
        return [f for f in (*self.train_files, *self.test_files) if not (self.data_dir / f).is_file()]

    def prepare_data(self) -> None:
        if not self._missing():
            return
        if self.hparams.download:
            self._download()
        if self._missing():
            raise FileNotFoundError(
                f"{type(self).__name__}: missing {self._missing()} in {self.data_dir}. Expected the python "
                f"version of the dataset, i.e. <data_dir> = .../{self.folder} holding "
                f"{', '.join((*self.train_files, *self.test_files))} and {self.meta_file} "
                f"(get {self.folder}.tar.gz from {CIFAR_URL} and extract it, or pass download=True "
                "on a machine with network)."
            )

    def _download(self) -> None:
        from torchvision.datasets import CIFAR10

        CIFAR10(root=str(self.data_dir.parent), train=True, download=True)

    def _read(self, files: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor]:
        parts = [read_cifar_batch(self.data_dir / f, self.label_key, self.num_classes) for f in files]
        return torch.cat([p[0] for p in parts]), torch.cat([p[1] for p in parts])

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        self.prepare_data()
        hp = self.hparams
        train = UInt8ImageDataset(*self._read(self.train_files))
        test = UInt8ImageDataset(*self._read(self.test_files))
        if (self.data_dir / self.meta_file).is_file():
            self.classes = read_label_names(self.data_dir / self.meta_file, self.names_key)
        if hp.val_size == 0:
            self.datasets = {"train": train, "val": test, "test": test}
            return
        if hp.val_size >= len(train):
            raise ValueError(f"val_size={hp.val_size} leaves no training images (train set has {len(train)})")
        perm = torch.randperm(len(train), generator=torch.Generator().manual_seed(hp.seed))
        self.datasets = {
            "train": Subset(train, perm[hp.val_size:].sort().values.tolist()),
            "val": Subset(train, perm[:hp.val_size].sort().values.tolist()),
            "test": test,
        }

    # ---- loaders -----------------------------------------------------------------------------

    # ---- accelerator-side augmentation ------------------------------------------------------------
    def augmentation(self) -> torch.nn.Module:
        """Random crop 32 with zero padding 4, then horizontal flip (the standard CIFAR recipe)."""
        if self._aug is None:
            import kornia.augmentation as K

            self._aug = torch.nn.Sequential(K.RandomCrop((32, 32), padding=4), K.RandomHorizontalFlip())
        return self._aug

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        trainer = getattr(self, "trainer", None)
        if self.hparams.augment and trainer is not None and trainer.training:
            x, y = batch[0], batch[1]
            batch = (self.augmentation().to(x.device)(x), y)
        return batch


class CIFAR100DataModule(CIFAR10DataModule):
    """CIFAR-100 (50,000 train / 10,000 test) read from ``train`` and ``test``; fine (100) or coarse (20) labels."""

    num_classes = 100
    folder = "cifar-100-python"
    train_files = ("train",)
    test_files = ("test",)
    meta_file, names_key, label_key = "meta", b"fine_label_names", b"fine_labels"

    def __init__(
        self,
        data_dir: str = "data/cifar-100-python",
        batch_size: int = 128,
        num_workers: int = 4,
        val_size: int = 5000,
        seed: int = 0,
        augment: bool = True,
        download: bool = False,
        label_type: str = "fine",
    ) -> None:
        super().__init__(data_dir, batch_size, num_workers, val_size, seed, augment, download)
        if label_type not in ("fine", "coarse"):
            raise ValueError(f"label_type must be 'fine' or 'coarse', got {label_type!r}")
        if label_type == "coarse":
            self.num_classes = 20
            self.names_key, self.label_key = b"coarse_label_names", b"coarse_labels"

    def _download(self) -> None:
        from torchvision.datasets import CIFAR100

        CIFAR100(root=str(self.data_dir.parent), train=True, download=True)
