"""CIFAR-10/100 DataModules read tiny copies of the official python pickles."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from datamodules.cifar import CIFAR10DataModule, CIFAR100DataModule, read_cifar_batch


def _write(path: Path, obj) -> None:
    with open(path, "wb") as fh:
        pickle.dump(obj, fh)


def make_cifar10(root: Path, n_per_batch: int = 6, n_test: int = 5, seed: int = 0) -> Path:
    """Write data_batch_1..5, test_batch and batches.meta in the official layout; return the folder."""
    rng = np.random.default_rng(seed)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name, n in [*[(f"data_batch_{i}", n_per_batch) for i in range(1, 6)], ("test_batch", n_test)]:
        data = rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)
        _write(folder / name, {b"batch_label": name.encode(), b"labels": rng.integers(0, 10, n).tolist(),
                               b"data": data, b"filenames": [b"x.png"] * n})
    _write(folder / "batches.meta", {b"label_names": [f"c{i}".encode() for i in range(10)], b"num_vis": 3072})
    return folder


def make_cifar100(root: Path, n_train: int = 20, n_test: int = 7, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    folder = root / "cifar-100-python"
    folder.mkdir(parents=True)
    for name, n in (("train", n_train), ("test", n_test)):
        _write(folder / name, {b"fine_labels": rng.integers(0, 100, n).tolist(),
                               b"coarse_labels": rng.integers(0, 20, n).tolist(),
                               b"data": rng.integers(0, 256, size=(n, 3072), dtype=np.uint8)})
    _write(folder / "meta", {b"fine_label_names": [f"f{i}".encode() for i in range(100)],
                             b"coarse_label_names": [f"k{i}".encode() for i in range(20)]})
    return folder


def test_pixel_layout_is_rgb_planes(tmp_path: Path) -> None:
    folder = make_cifar10(tmp_path)
    raw = pickle.load(open(folder / "data_batch_2", "rb"), encoding="bytes")
    images, labels = read_cifar_batch(folder / "data_batch_2")
    assert images.shape == (6, 3, 32, 32) and images.dtype == torch.uint8
    row = raw[b"data"][3]
    # R plane first, row-major: pixel (c, h, w) is data[c*1024 + h*32 + w]
    for c, h, w in [(0, 0, 0), (1, 5, 7), (2, 31, 30)]:
        assert images[3, c, h, w].item() == row[c * 1024 + h * 32 + w]
    assert labels.tolist() == raw[b"labels"]


def test_cifar10_splits_and_float_range(tmp_path: Path) -> None:
    folder = make_cifar10(tmp_path)
    dm = CIFAR10DataModule(str(folder), batch_size=4, num_workers=0, val_size=8, seed=1)
    dm.setup()
    assert [len(dm.datasets[s]) for s in ("train", "val", "test")] == [22, 8, 5]
    assert dm.classes[:2] == ["c0", "c1"]
    x, y = next(iter(dm.train_dataloader()))
    assert x.dtype == torch.float32 and x.shape == (4, 3, 32, 32) and 0.0 <= x.min() and x.max() <= 1.0
    assert y.dtype == torch.long
    # val split is seeded: same seed same indices, other seed different indices; no overlap with train
    dm2 = CIFAR10DataModule(str(folder), num_workers=0, val_size=8, seed=1)
    dm2.setup()
    dm3 = CIFAR10DataModule(str(folder), num_workers=0, val_size=8, seed=2)
    dm3.setup()
    assert dm.datasets["val"].indices == dm2.datasets["val"].indices != dm3.datasets["val"].indices
    assert not set(dm.datasets["val"].indices) & set(dm.datasets["train"].indices)


def test_val_size_zero_uses_test_set(tmp_path: Path) -> None:
    dm = CIFAR10DataModule(str(make_cifar10(tmp_path)), num_workers=0, val_size=0)
    dm.setup()
    assert len(dm.datasets["train"]) == 30 and dm.datasets["val"] is dm.datasets["test"]


def test_augmentation_only_in_training(tmp_path: Path) -> None:
    dm = CIFAR10DataModule(str(make_cifar10(tmp_path)), num_workers=0)

    class _T:  # the attribute Lightning's trainer exposes
        training = True

    x = torch.rand(16, 3, 32, 32)
    torch.manual_seed(0)
    dm.trainer = _T()
    out, _ = dm.on_after_batch_transfer((x, torch.zeros(16)), 0)
    assert out.shape == x.shape and not torch.equal(out, x)
    # a crop of a padded image keeps 32x32 and shares content with the original (shift <= 4)
    _T.training = False
    same, _ = dm.on_after_batch_transfer((x, torch.zeros(16)), 0)
    assert torch.equal(same, x)
    dm_noaug = CIFAR10DataModule(str(tmp_path), augment=False)
    _T.training = True
    dm_noaug.trainer = _T()
    assert torch.equal(dm_noaug.on_after_batch_transfer((x, torch.zeros(16)), 0)[0], x)


def test_cifar100_fine_and_coarse(tmp_path: Path) -> None:
    folder = make_cifar100(tmp_path)
    dm = CIFAR100DataModule(str(folder), num_workers=0, val_size=5)
    dm.setup()
    assert dm.num_classes == 100 and len(dm.datasets["train"]) == 15 and len(dm.datasets["test"]) == 7
    raw = pickle.load(open(folder / "test", "rb"), encoding="bytes")
    assert dm.datasets["test"].labels.tolist() == raw[b"fine_labels"]
    coarse = CIFAR100DataModule(str(folder), num_workers=0, val_size=5, label_type="coarse")
    coarse.setup()
    assert coarse.num_classes == 20 and coarse.datasets["test"].labels.tolist() == raw[b"coarse_labels"]
    assert coarse.hparams.label_type == "coarse" and coarse.classes[0] == "k0"


def test_missing_folder_names_layout(tmp_path: Path) -> None:
    dm = CIFAR10DataModule(str(tmp_path / "nowhere"), num_workers=0)
    with pytest.raises(FileNotFoundError, match="data_batch_1.*cifar-10-batches-py|cifar-10-batches-py.*data_batch_1"):
        dm.setup()


def test_malformed_pickles_name_file_and_row(tmp_path: Path) -> None:
    folder = make_cifar10(tmp_path)
    _write(folder / "data_batch_3", {b"labels": [1, 2], b"data": np.zeros((2, 3000), np.uint8)})
    with pytest.raises(ValueError, match="data_batch_3.*3072"):
        CIFAR10DataModule(str(folder), num_workers=0).setup()
    _write(folder / "data_batch_3", {b"labels": [1, 12], b"data": np.zeros((2, 3072), np.uint8)})
    with pytest.raises(ValueError, match="data_batch_3: row 1 has label 12"):
        CIFAR10DataModule(str(folder), num_workers=0).setup()
    (folder / "data_batch_3").write_bytes(b"not a pickle")
    with pytest.raises(ValueError, match="data_batch_3"):
        CIFAR10DataModule(str(folder), num_workers=0).setup()
