"""Puzzle image sources: a tiny MET-style folder built on disk, sklearn digits and scikit-image samples."""
import numpy as np
import pytest
import torch
from PIL import Image

from datamodules.puzzles import DigitsPuzzleDataModule, FolderPuzzleDataModule, SkimagePuzzleDataModule


def make_met_folder(root, splits=("train", "val", "test")):
    rng = np.random.default_rng(0)
    for split in splits:
        d = root / f"dataset_{split}"
        d.mkdir(parents=True)
        Image.fromarray(rng.integers(0, 256, (60, 90, 3), dtype=np.uint8)).save(d / "wide.jpg")
        Image.fromarray(rng.integers(0, 256, (80, 50), dtype=np.uint8)).save(d / "tall_grey.png")
        Image.fromarray(rng.integers(0, 256, (40, 40, 3), dtype=np.uint8)).save(d / "small.png")
        (d / "notes.txt").write_text("not an image")
    return root


def test_folder_datamodule_reads_met_layout(tmp_path):
    dm = FolderPuzzleDataModule(data_dir=str(make_met_folder(tmp_path / "MET")), grid=3, frag=10, gap=2, batch_size=3)
    dm.setup()
    assert {k: len(v) for k, v in dm.datasets.items()} == {"train": 3, "val": 3, "test": 3}
    x, order = next(iter(dm.test_dataloader()))
    assert x.shape == (3, 3, 34, 34) and order.shape == (3, 9)
    assert x.min() >= -1 and x.max() <= 1 and x.min() < -0.5 and x.max() > 0.5
    names = sorted(p.name for p in (tmp_path / "MET" / "dataset_test").iterdir() if p.suffix != ".txt")
    grey = x[names.index("tall_grey.png")]
    assert torch.equal(grey[0], grey[1]) and torch.equal(grey[1], grey[2])  # grey copied to RGB
    assert all(sorted(o.tolist()) == list(range(9)) for o in order)
    x2, order2 = next(iter(dm.test_dataloader()))
    assert torch.equal(x, x2) and torch.equal(order, order2)  # evaluation puzzles are fixed
    ds = dm.datasets["train"]
    wide = [p.name for p in sorted((tmp_path / "MET" / "dataset_train").iterdir()) if p.suffix != ".txt"].index("wide.jpg")
    crops = {tuple(ds[wide][0][0, 0, :5].tolist()) for _ in range(8)}
    assert len(crops) > 1  # a new random crop of the long side at each access


def test_folder_without_test_split_evaluates_on_val(tmp_path):
    dm = FolderPuzzleDataModule(data_dir=str(make_met_folder(tmp_path, ("train", "val"))), grid=2, frag=8, gap=1)
    dm.setup()
    assert dm.datasets["test"] is dm.datasets["val"]


def test_folder_errors_name_the_layout(tmp_path):
    with pytest.raises(FileNotFoundError, match="dataset_train"):
        FolderPuzzleDataModule(data_dir=str(tmp_path / "nowhere")).setup()
    for split in ("train", "val"):
        (tmp_path / "empty" / f"dataset_{split}").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no image file"):
        FolderPuzzleDataModule(data_dir=str(tmp_path / "empty")).setup()


def test_digits_puzzles_split_and_geometry():
    dm = DigitsPuzzleDataModule()
    dm.setup()
    assert {k: len(v) for k, v in dm.datasets.items()} == {"train": 1400, "test": 100, "val": 297}
    x, order = dm.datasets["test"][0]
    assert x.shape == (3, 22, 22) and x.min() == -1 and sorted(order.tolist()) == list(range(9))
    with pytest.raises(ValueError, match="validation"):
        DigitsPuzzleDataModule(n_train=1700, n_test=97)


def test_skimage_smoke_set_keeps_train_and_test_regions_apart():
    dm = SkimagePuzzleDataModule(names=["astronaut", "camera"], train_size=8, eval_size=4, batch_size=4)
    dm.setup()
    x, order = next(iter(dm.train_dataloader()))
    assert x.shape == (4, 3, 30, 30) and order.shape == (4, 4)
    assert dm.datasets["train"].crop_range == (0.0, 0.7) and dm.datasets["test"].crop_range == (0.7, 1.0)
    assert len(dm.datasets["test"]) == 4
    with pytest.raises(ValueError, match="no sample image"):
        SkimagePuzzleDataModule(names=["not_an_image"]).setup()
