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


def test_train_and_val_without_test_are_splits_not_classes(tmp_path):
    make_tree(tmp_path / "data" / "train", per_class=3)
    make_tree(tmp_path / "data" / "val", per_class=2)
    (tmp_path / "data" / ".ipynb_checkpoints").mkdir()  # hidden folders do not turn splits into classes
    dm = ImageFolderDataModule(str(tmp_path / "data"), image_size=8, augment=False)
    dm.setup()
    assert dm.class_names == ["cat", "dog"]  # not ["train", "val"]
    assert len(dm.datasets["train"]) == 6 and len(dm.datasets["val"]) == 4
    assert dm.datasets["test"].labels.tolist() == dm.datasets["val"].labels.tolist() == [0, 0, 1, 1]
    # a flat dataset that happens to have a class called "train" is still read as classes
    make_tree(tmp_path / "flat", classes=("bird", "train"), per_class=4)
    flat = ImageFolderDataModule(str(tmp_path / "flat"), image_size=8, train_per_class=2, test_per_class=2,
                                 augment=False)
    flat.setup()
    assert flat.class_names == ["bird", "train"]


def test_nested_folders_and_pgm_match_torchvision_imagefolder(tmp_path):
    from torchvision.datasets import ImageFolder

    root = tmp_path / "data"
    rng = np.random.default_rng(0)
    files = {"cat/a.png": "RGB", "cat/sub/b.pgm": "L", "cat/sub/deeper/c.JPG": "RGB", "dog/x.ppm": "RGB",
             "dog/y.tif": "RGB", "dog/notes/readme.txt": None, "dog/z.webp": "RGB"}
    for rel, mode in files.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        if mode is None:
            (root / rel).write_text("not an image")
            continue
        shape = (6, 6) if mode == "L" else (6, 6, 3)
        Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(root / rel)
    reference = ImageFolder(str(root))
    from datamodules.image_folder import scan_class_folders

    paths, labels, classes = scan_class_folders(root)
    assert classes == reference.classes
    assert [(str(p), c) for p, c in zip(paths, labels)] == reference.samples
    assert len(paths) == 6 and any(str(p).endswith(".pgm") for p in paths)
    dm = ImageFolderDataModule(str(root), image_size=6, train_per_class=1, test_per_class=None, augment=False)
    dm.setup()
    pgm = [i for i, p in enumerate(paths) if str(p).endswith(".pgm")][0]
    grey = torch.from_numpy(np.array(Image.open(paths[pgm]).convert("RGB"))).permute(2, 0, 1)
    all_images = torch.cat([dm.datasets["train"].images, dm.datasets["test"].images])
    assert any(torch.equal(img, grey) for img in all_images)
