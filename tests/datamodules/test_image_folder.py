"""ImageFolderDataModule on tiny folder-per-class trees (flat, and ready-made train/test splits)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from datamodules.image_folder import ImageFolderDataModule, load_image


def make_tree(root: Path, classes=("cat", "dog"), per_class: int = 5, size: int = 12) -> None:
    for c, name in enumerate(classes):
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            arr = np.full((size, size + 3, 3), 30 + 100 * c + i, dtype=np.uint8)
            Image.fromarray(arr).save(root / name / f"{i}.png")
    (root / classes[0] / "notes.txt").write_text("not an image")


def test_flat_tree_is_split_per_class(tmp_path):
    make_tree(tmp_path / "data")
    dm = ImageFolderDataModule(str(tmp_path / "data"), image_size=8, batch_size=3, train_per_class=3,
                               test_per_class=None, augment=False)
    dm.setup()
    assert dm.class_names == ["cat", "dog"] and dm.num_classes == 2
    assert len(dm.datasets["train"]) == 6 and len(dm.datasets["test"]) == 4 and len(dm.datasets["val"]) == 0
    x, y = next(iter(dm.test_dataloader()))
    assert x.shape == (3, 3, 8, 8)
    # pixel values survive decoding: class 0 images are darker than class 1 images
    means = {int(c): dm.datasets["test"].images[dm.datasets["test"].labels == c].float().mean() for c in (0, 1)}
    assert means[0] < means[1]


def test_ready_made_splits_keep_train_class_indices(tmp_path):
    make_tree(tmp_path / "data" / "train", per_class=3)
    make_tree(tmp_path / "data" / "test", classes=("dog",), per_class=2)
    dm = ImageFolderDataModule(str(tmp_path / "data"), image_size=8, augment=False)
    dm.setup()
    assert len(dm.datasets["train"]) == 6 and dm.datasets["test"].labels.tolist() == [1, 1]
    make_tree(tmp_path / "bad" / "train", per_class=2)
    make_tree(tmp_path / "bad" / "test", classes=("bird",), per_class=1)
    with pytest.raises(ValueError, match=r"classes \['bird'\] absent"):
        ImageFolderDataModule(str(tmp_path / "bad")).setup()


def test_missing_and_unreadable_inputs(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        ImageFolderDataModule(str(tmp_path / "absent")).setup()
    (tmp_path / "empty" / "cls").mkdir(parents=True)
    with pytest.raises(FileNotFoundError, match="no images under"):
        ImageFolderDataModule(str(tmp_path / "empty")).setup()
    bad = tmp_path / "broken.png"
    bad.write_bytes(b"not a png")
    with pytest.raises(ValueError, match="broken.png: expected a complete, decodable image"):
        load_image(bad, 8)
    img = Image.fromarray(np.zeros((5, 7), dtype=np.uint8))  # greyscale -> 3 channels, resized
    img.save(tmp_path / "grey.png")
    out = load_image(tmp_path / "grey.png", 9)
    assert out.shape == (3, 9, 9) and out.dtype == torch.uint8
