"""MetaAlbumDataModule on a tiny copy of the Meta-Album layout (info.json, labels.csv, images/)."""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from datamodules.image_folder import authors_split, per_class_split, rrr_augmentation
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
    # split_protocol='per_class' (the zoo's earlier split): per class default_rng(88).shuffle, train, val, test
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


def authors_divide(items: list, train: int, val: int, test: int, split: str) -> list:
    """Benchmark40MicroSplitDataset.divide_items_into_split of SunHaozhe/RRR_Net (main_code/utils.py), written out:
    shuffle the whole [path, label] list with default_rng(88), bucket by class, slice, shuffle with default_rng(66)."""
    items = [list(it) for it in items]
    np.random.default_rng(88).shuffle(items)
    per_class = defaultdict(list)
    for path, target in items:
        per_class[target].append([path, target])
    pruned = []
    for c in per_class.keys():
        assert len(per_class[c]) >= train + val + test
        lo, hi = {"train": (0, train), "val": (train, train + val), "test": (train + val, train + val + test)}[split]
        pruned.extend(per_class[c][lo:hi])
    np.random.default_rng(66).shuffle(pruned)
    return pruned


def test_authors_split_is_image_for_image_the_authors_draw():
    # a Micro-sized fixture list: 20 classes of 40-47 images, CSV order interleaved, labels in first-seen order
    rng = np.random.default_rng(5)
    sizes = rng.integers(40, 48, 20)
    labels = rng.permutation(np.repeat(np.arange(20), sizes)).tolist()
    first_seen = {c: i for i, c in enumerate(dict.fromkeys(labels))}
    labels = [first_seen[c] for c in labels]
    items = [[f"img_{i:04d}.jpg", lab] for i, lab in enumerate(labels)]
    for train, val, test in ((20, 0, 20), (15, 5, 20)):
        got = authors_split(labels, train, val, test)
        for split in ("train", "val", "test"):
            want = authors_divide(items, train, val, test, split)
            assert [items[i][0] for i in got[split]] == [p for p, _ in want]  # same images, same order
    old = per_class_split(labels, 20, 0, 20)
    overlap = len(set(old["train"]) & set(authors_split(labels, 20, 0, 20)["train"])) / len(old["train"])
    assert overlap < 0.8  # the earlier per-class shuffle is a different draw (about half coincides)


def test_datamodule_default_is_the_authors_split_and_per_class_is_a_switch(tmp_path):
    make_dataset(tmp_path / "TINY_Micro", per_class=7)
    paths, labels, _ = read_meta_album(tmp_path / "TINY_Micro")
    items = [[str(p), lab] for p, lab in zip(paths, labels)]
    dm = MetaAlbumDataModule(str(tmp_path / "TINY_Micro"), image_size=16, train_per_class=2, val_per_class=1,
                             test_per_class=3, augment=False)
    splits = dm.read_splits()
    for split in ("train", "val", "test"):
        want = authors_divide(items, 2, 1, 3, split)
        assert [str(p) for p in splits[split][0]] == [p for p, _ in want]
        assert splits[split][1] == [t for _, t in want]
    dm.setup()
    assert dm.datasets["test"].labels.tolist() == [t for _, t in authors_divide(items, 2, 1, 3, "test")]
    old = MetaAlbumDataModule(str(tmp_path / "TINY_Micro"), image_size=16, train_per_class=2, val_per_class=1,
                              test_per_class=3, split_protocol="per_class").read_splits()
    idx = per_class_split(labels, 2, 1, 3)
    assert [str(p) for p in old["train"][0]] == [str(paths[i]) for i in idx["train"]]
    with pytest.raises(ValueError, match="split_protocol must be one of"):
        MetaAlbumDataModule(str(tmp_path / "TINY_Micro"), split_protocol="authors_v2")
    with pytest.raises(ValueError, match=r"class \d has 7 images, the split needs 8"):
        authors_split(labels, 4, 0, 4)
    with pytest.raises(ValueError, match=r"TINY_Micro: class \d has 7 images, the split needs 8 \(train 4"):
        MetaAlbumDataModule(str(tmp_path / "TINY_Micro"), image_size=16, train_per_class=4, test_per_class=4).setup()
