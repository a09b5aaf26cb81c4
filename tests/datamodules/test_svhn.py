"""SVHN DataModule on tiny copies of the real ``.mat`` format (label 10 = digit 0)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.io import savemat

from datamodules.svhn import SVHNDataModule, read_svhn_mat


def _write(path, n, seed):
    rng = np.random.default_rng(seed)
    x = rng.integers(0, 256, size=(32, 32, 3, n), dtype=np.uint8)
    y = (np.arange(n) % 10 + 1).reshape(-1, 1).astype(np.uint8)  # 1..10, 10 = digit 0
    savemat(str(path), {"X": x, "y": y})
    return x, y


def test_reads_real_layout_and_remaps_ten(tmp_path):
    x, y = _write(tmp_path / "train_32x32.mat", 20, 0)
    images, labels = read_svhn_mat(tmp_path / "train_32x32.mat")
    assert images.shape == (20, 3, 32, 32) and images.dtype == torch.uint8
    assert torch.equal(images[3], torch.from_numpy(x[:, :, :, 3]).permute(2, 0, 1))  # H, W, C, N -> N, C, H, W
    assert labels[9] == 0 and labels[0] == 1 and labels.max() == 9


def test_datamodule_split_and_augmentation(tmp_path):
    _write(tmp_path / "train_32x32.mat", 30, 0)
    _write(tmp_path / "test_32x32.mat", 12, 1)
    dm = SVHNDataModule(str(tmp_path), batch_size=8, num_workers=0, val_size=6)
    dm.setup()
    assert [len(dm.datasets[k]) for k in ("train", "val", "test")] == [24, 6, 12]
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (8, 3, 32, 32) and 0 <= x.min() and x.max() <= 1
    out = dm.augmentation()(x)
    assert out.shape == x.shape and not torch.equal(out, x)


def test_missing_and_malformed(tmp_path):
    with pytest.raises(FileNotFoundError, match="train_32x32.mat"):
        SVHNDataModule(str(tmp_path)).setup()
    savemat(str(tmp_path / "bad.mat"), {"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.array([[0], [3]])})
    with pytest.raises(ValueError, match="row 0 has label 0"):
        read_svhn_mat(tmp_path / "bad.mat")
    savemat(str(tmp_path / "bad2.mat"), {"images": np.zeros(3)})
    with pytest.raises(ValueError, match="'X' and 'y'"):
        read_svhn_mat(tmp_path / "bad2.mat")
