"""MNIST / Fashion-MNIST DataModules read tiny IDX files, gzipped or not."""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from datamodules.mnist import FashionMNISTDataModule, MNISTDataModule, read_idx


def write_idx(path: Path, array: np.ndarray, gz: bool) -> None:
    header = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + b"".join(struct.pack(">I", d) for d in array.shape)
    data = header + array.astype(np.uint8).tobytes()
    if gz:
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)


def make_mnist(folder: Path, n_train: int = 30, n_test: int = 8, gz: bool = True, seed: int = 0):
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    arrays = {}
    for split, n in (("train", n_train), ("t10k", n_test)):
        arrays[split] = (rng.integers(0, 256, (n, 28, 28)), rng.integers(0, 10, n))
        write_idx(folder / f"{split}-images-idx3-ubyte", arrays[split][0], gz)
        write_idx(folder / f"{split}-labels-idx1-ubyte", arrays[split][1], gz)
    return arrays


@pytest.mark.parametrize("gz", [True, False])
def test_idx_roundtrip_and_magic(tmp_path: Path, gz: bool) -> None:
    arrays = make_mnist(tmp_path, gz=gz)
    suffix = ".gz" if gz else ""
    images = read_idx(tmp_path / f"train-images-idx3-ubyte{suffix}")
    raw = (gzip.decompress if gz else bytes)((tmp_path / f"train-images-idx3-ubyte{suffix}").read_bytes())
    assert struct.unpack(">I", raw[:4])[0] == 2051  # the magic number of image files
    assert np.array_equal(images, arrays["train"][0]) and images.shape == (30, 28, 28)
    assert np.array_equal(read_idx(tmp_path / f"t10k-labels-idx1-ubyte{suffix}"), arrays["t10k"][1])


def test_datamodule_splits_values_and_seed(tmp_path: Path) -> None:
    arrays = make_mnist(tmp_path / "raw", gz=True)  # torchvision keeps the files under raw/
    dm = MNISTDataModule(str(tmp_path), batch_size=5, num_workers=0, val_size=10, seed=3)
    dm.setup()
    assert [len(dm.datasets[s]) for s in ("train", "val", "test")] == [20, 10, 8]
    x, y = dm.datasets["test"][2]
    assert x.shape == (1, 28, 28) and x.dtype == torch.float32
    assert torch.allclose(x[0], torch.tensor(arrays["t10k"][0][2] / 255.0, dtype=torch.float32))
    assert int(y) == arrays["t10k"][1][2]
    xb, yb = next(iter(dm.train_dataloader()))
    assert xb.shape == (5, 1, 28, 28) and 0 <= xb.min() and xb.max() <= 1
    other = MNISTDataModule(str(tmp_path), num_workers=0, val_size=10, seed=4)
    other.setup()
    assert dm.datasets["val"].indices != other.datasets["val"].indices
    subset = MNISTDataModule(str(tmp_path), num_workers=0, val_size=10, train_subset=7)
    subset.setup()
    assert len(subset.datasets["train"]) == 7


def test_fashion_and_val_zero(tmp_path: Path) -> None:
    make_mnist(tmp_path, gz=False)
    dm = FashionMNISTDataModule(str(tmp_path), num_workers=0, val_size=0)
    dm.setup()
    assert dm.datasets["val"] is dm.datasets["test"] and len(dm.datasets["train"]) == 30
    assert dm.classes[9] == "Ankle boot" and dm.hparams.data_dir == str(tmp_path)


def test_missing_files_name_the_layout(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="train-images-idx3-ubyte.*fashion"):
        FashionMNISTDataModule(str(tmp_path), num_workers=0).setup()


def test_malformed_idx_files(tmp_path: Path) -> None:
    make_mnist(tmp_path, gz=False)
    labels = tmp_path / "t10k-labels-idx1-ubyte"
    write_idx(labels, np.array([1, 2, 3, 4, 5, 6, 7, 11]), gz=False)
    with pytest.raises(ValueError, match="t10k-labels-idx1-ubyte: item 7 has label 11"):
        MNISTDataModule(str(tmp_path), num_workers=0, val_size=5).setup()
    write_idx(labels, np.arange(5), gz=False)
    with pytest.raises(ValueError, match="expected 8 labels"):
        MNISTDataModule(str(tmp_path), num_workers=0, val_size=5).setup()
    images = tmp_path / "train-images-idx3-ubyte"
    images.write_bytes(images.read_bytes()[:-10])  # truncated: wrong pixel count
    with pytest.raises(ValueError, match="train-images-idx3-ubyte: header promises dims"):
        read_idx(images)
    images.write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(ValueError, match="not an IDX file"):
        read_idx(images)
