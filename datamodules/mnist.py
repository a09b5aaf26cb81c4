"""MNIST and Fashion-MNIST from their IDX files (gzipped or not): 60,000 train / 10,000 test, 28x28 grey.

Images come out as float [0, 1] tensors of shape (1, 28, 28); the validation split is carved from the
training set with a seeded generator. No augmentation (the kernel-function study's recipe).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from datamodules.cifar import UInt8ImageDataset
from datamodules.base import SplitDataModule
from datamodules.decode import as_labels, read_bytes

IDX_FILES = {
    "train_images": "train-images-idx3-ubyte", "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte", "test_labels": "t10k-labels-idx1-ubyte",
}
IDX_DTYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


def read_idx(path: str | Path) -> np.ndarray:
    """One IDX file (``magic = 0 0 dtype ndim``, big-endian dims, then the data), gzipped or not."""
    path = Path(path)
    raw = read_bytes(path, "IDX file")
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in IDX_DTYPES or raw[3] == 0:
        raise ValueError(f"{path}: not an IDX file (magic bytes {raw[:4].hex() or 'missing'}; expected "
                         "00 00 <type> <ndim>, e.g. 0x00000803 = 2051 for images, 0x00000801 = 2049 for labels)")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: truncated header ({len(raw)} bytes, expected {header})")
    dims = [int.from_bytes(raw[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    dtype = np.dtype(IDX_DTYPES[raw[2]])
    expected = header + int(np.prod(dims)) * dtype.itemsize
    if len(raw) != expected:
        raise ValueError(f"{path}: header promises dims {dims} ({expected} bytes) but the file has {len(raw)} bytes")
    return np.frombuffer(raw, dtype=dtype, offset=header).reshape(dims)


class MNISTDataModule(SplitDataModule):
    """MNIST from ``data_dir`` holding the four IDX files (``.gz`` or not; also found under ``raw/``)."""

    num_classes = 10
    dataset_name = "MNIST"
    source = "http://yann.lecun.com/exdb/mnist/ (or torchvision's mirrors)"
    classes = [str(i) for i in range(10)]

    def __init__(
        self,
        data_dir: str = "data/mnist",
        batch_size: int = 128,
        num_workers: int = 4,
        val_size: int = 5000,
        seed: int = 0,
        train_subset: int = 0,
        download: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if val_size < 0 or train_subset < 0:
            raise ValueError(f"val_size and train_subset must be >= 0, got {val_size}, {train_subset}")
        self.data_dir = Path(data_dir)
        self.batch_size, self.num_workers = batch_size, num_workers
        self.datasets: dict[str, Dataset] = {}

    def _find(self, stem: str) -> Path | None:
        for folder in (self.data_dir, self.data_dir / "raw", self.data_dir / self.dataset_name / "raw"):
            for name in (stem, stem + ".gz"):
                if (folder / name).is_file():
                    return folder / name
        return None

    def prepare_data(self) -> None:
        missing = [stem for stem in IDX_FILES.values() if self._find(stem) is None]
        if missing and self.hparams.download:
            import torchvision.datasets as tvd

            getattr(tvd, self.dataset_name)(root=str(self.data_dir), train=True, download=True)
            missing = [stem for stem in IDX_FILES.values() if self._find(stem) is None]
        if missing:
            raise FileNotFoundError(
                f"{type(self).__name__}: {missing} (optionally .gz) not found in {self.data_dir} or its raw/ "
                f"folder. Expected the four IDX files {list(IDX_FILES.values())} of {self.dataset_name}; get them "
                f"from {self.source}, or pass download=True on a machine with network."
            )

    def _read_split(self, split: str) -> UInt8ImageDataset:
        img_path, lbl_path = self._find(IDX_FILES[f"{split}_images"]), self._find(IDX_FILES[f"{split}_labels"])
        images, labels = read_idx(img_path), read_idx(lbl_path)
        if images.ndim != 3 or images.shape[1:] != (28, 28) or images.dtype != np.uint8:
            raise ValueError(f"{img_path}: expected uint8 images N x 28 x 28, got {images.dtype} {images.shape}")
        if labels.ndim != 1 or len(labels) != len(images):
            raise ValueError(f"{lbl_path}: expected {len(images)} labels (one per image in {img_path.name}), "
                             f"got shape {labels.shape}")
        if labels.dtype != np.uint8:  # torchvision refuses other IDX types too (a signed byte can hold -1)
            raise ValueError(f"{lbl_path}: expected IDX type 0x08 (unsigned byte) labels, found dtype {labels.dtype}")
        labels = as_labels(labels, lbl_path, 0, self.num_classes - 1, "label", "item")
        return UInt8ImageDataset(torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels))

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        self.prepare_data()
        hp = self.hparams
        train, test = self._read_split("train"), self._read_split("test")
        gen = torch.Generator().manual_seed(hp.seed)
        perm = torch.randperm(len(train), generator=gen)
        if hp.val_size >= len(train):
            raise ValueError(f"val_size={hp.val_size} leaves no training images (train set has {len(train)})")
        val_idx, train_idx = perm[:hp.val_size], perm[hp.val_size:]
        if hp.train_subset:
            train_idx = train_idx[:hp.train_subset]
        self.datasets = {
            "train": Subset(train, train_idx.sort().values.tolist()),
            "val": Subset(train, val_idx.sort().values.tolist()) if hp.val_size else test,
            "test": test,
        }


class FashionMNISTDataModule(MNISTDataModule):
    """Fashion-MNIST (Zalando): same IDX layout and sizes as MNIST, ten clothing classes."""

    dataset_name = "FashionMNIST"
    source = "https://github.com/zalandoresearch/fashion-mnist (data/fashion)"
    classes = ["T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
               "Ankle boot"]

    def __init__(
        self,
        data_dir: str = "data/fashion-mnist",
        batch_size: int = 128,
        num_workers: int = 4,
        val_size: int = 5000,
        seed: int = 0,
        train_subset: int = 0,
        download: bool = False,
    ) -> None:
        super().__init__(data_dir, batch_size, num_workers, val_size, seed, train_subset, download)
