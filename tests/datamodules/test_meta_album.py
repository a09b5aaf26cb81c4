"""MetaAlbumDataModule on a tiny copy of the Meta-Album layout (info.json, labels.csv, images/)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from datamodules.image_folder import per_class_split, rrr_augmentation
from datamodules.meta_album import MICRO_CODES, MetaAlbumDataModule, micro_dataset_dir, read_meta_album

CLASSES = ["zebra", "apple", "moth"]  # first-seen order differs from sorted order on purpose


def make_dataset(folder: Path, per_class: int = 6, size: int = 20) -> list[tuple[str, str]]:
    (folder / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    rows = []
    for i in range(per_class):
        for c, name in enumerate(CLASSES):
            fname = f"{name}_{i}.jpg"
            arr = np.full((size, size, 3), 40 + 80 * c, dtype=np.uint8) + rng.integers(0, 20, (size, size, 3), dtype=np.uint8)
            Image.fromarray(arr).save(folder / "images" / fname)
            rows.append((fname, name))
    (folder / "info.json").write_text(json.dumps({
        "dataset_name": "Tiny", "image_column_name": "FILE_NAME", "category_column_name": "CATEGORY",
        "has_super_categories": True, "super_category_column_name": "SUPER_CATEGORY", "total_categories": 3}))
    lines = ["FILE_NAME,CATEGORY,SUPER_CATEGORY"] + [f"{f},{c},animal" for f, c in rows]
    (folder / "labels.csv").write_text("\n".join(lines) + "\n")
    return rows


def test_reader_maps_labels_in_first_seen_order(tmp_path):
    rows = make_dataset(tmp_path / "TINY_Micro")
    paths, labels, classes = read_meta_album(tmp_path / "TINY_Micro")
    assert classes == CLASSES and len(paths) == len(rows) == 18
    assert [classes[lab] for lab in labels] == [c for _, c in rows]


def test_micro_split_counts_seeds_and_images(tmp_path):
    make_dataset(tmp_path / "TINY_Micro")
    dm = MetaAlbumDataModule(str(tmp_path / "TINY_Micro"), image_size=16, batch_size=4, train_per_class=2,
                             val_per_class=1, test_per_class=3, augment=False)
    dm.setup()
    assert dm.num_classes == 3
    sizes = {k: len(v) for k, v in dm.datasets.items()}
    assert sizes == {"train": 6, "val": 3, "test": 9}
    for name, per in (("train", 2), ("val", 1), ("test", 3)):
        assert torch.bincount(dm.datasets[name].labels, minlength=3).tolist() == [per] * 3
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (4, 3, 16, 16) and x.dtype == torch.float32 and 0 <= x.min() and x.max() <= 1
    # the split is the authors' procedure: per class default_rng(88).shuffle, train first, then val, then test
    _, labels, _ = read_meta_album(tmp_path / "TINY_Micro")
    rng = np.random.default_rng(88)
    want_train = set()
    for c in range(3):
        idx = np.flatnonzero(np.asarray(labels) == c)
        rng.shuffle(idx)
        want_train |= set(idx[:2].tolist())
    got = per_class_split(labels, 2, 1, 3)
    assert set(got["train"]) == want_train
    assert not set(got["train"]) & set(got["test"]) and not set(got["val"]) & set(got["test"])
    assert got == per_class_split(labels, 2, 1, 3)  # deterministic
    # no val split (the paper's Micro runs): validation falls back to the test split
    dm0 = MetaAlbumDataModule(str(tmp_path / "TINY_Micro"), image_size=16, train_per_class=3, test_per_class=3)
    dm0.setup()
    assert len(dm0.val_dataloader().dataset) == len(dm0.datasets["test"]) == 9
    with pytest.raises(ValueError, match="has 6 images, the split needs 8"):
        per_class_split(labels, 4, 0, 4)


def test_augmentation_family_changes_train_images_only(tmp_path):
    make_dataset(tmp_path / "TINY_Micro")
    dm = MetaAlbumDataModule(str(tmp_path / "TINY_Micro"), image_size=16, train_per_class=3, test_per_class=3)
    dm.setup()
    torch.manual_seed(0)
    raw = dm.datasets["train"].images[0].float() / 255
    assert any(not torch.allclose(dm.datasets["train"][0][0], raw) for _ in range(5))
    assert torch.equal(dm.datasets["test"][0][0], dm.datasets["test"].images[0].float() / 255)
    aug = rrr_augmentation()
    ops = aug.transforms[0].transforms
    assert len(ops) == 12
    img = dm.datasets["train"].images[1]
    for op in ops:
        out = op(img)
        assert out.dtype == torch.uint8 and out.shape == img.shape, op


def test_dataset_code_under_the_set_layout(tmp_path):
    assert len(MICRO_CODES) == 40 and len(set(MICRO_CODES)) == 40
    folder = micro_dataset_dir(tmp_path, "BCT")
    assert folder == tmp_path / "Set0_Micro" / "BCT_Micro"
    make_dataset(folder)
    dm = MetaAlbumDataModule(str(tmp_path), dataset="BCT", image_size=8, train_per_class=3, test_per_class=3)
    assert dm.num_classes == 3
    with pytest.raises(ValueError, match="unknown Meta-Album Micro code"):
        MetaAlbumDataModule(str(tmp_path), dataset="NOPE")


def test_missing_and_malformed_files_are_explained(tmp_path):
    folder = tmp_path / "TINY_Micro"
    with pytest.raises(FileNotFoundError, match="meta-album.github.io"):
        read_meta_album(folder)
    make_dataset(folder)
    csv_path = folder / "labels.csv"
    good = csv_path.read_text()
    csv_path.unlink()
    with pytest.raises(FileNotFoundError, match="labels.csv"):
        read_meta_album(folder)
    csv_path.write_text(good.replace("CATEGORY,SUPER", "LABEL,SUPER", 1))
    with pytest.raises(ValueError, match=r"lacks column\(s\) \['CATEGORY'\]"):
        read_meta_album(folder)
    lines = good.splitlines()
    csv_path.write_text("\n".join(lines[:3] + ["broken_row_without_commas"] + lines[3:]))
    with pytest.raises(ValueError, match="labels.csv, line 4: 1 fields"):
        read_meta_album(folder)
    csv_path.write_text("\n".join(lines[:2] + ["ghost.jpg,moth,animal"]))
    with pytest.raises(FileNotFoundError, match="line 3: image .*ghost.jpg does not exist"):
        read_meta_album(folder)
    csv_path.write_text("")
    with pytest.raises(ValueError, match="is empty"):
        read_meta_album(folder)
