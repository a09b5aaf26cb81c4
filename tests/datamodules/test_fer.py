"""FER2013 (CSV), RAF-DB (partition list + aligned JPEGs) and ExpW (label.lst boxes) on tiny real-format copies."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from datamodules.fer import ExpWDataModule, FER2013DataModule, RAFDBDataModule, read_fer2013_csv


class _Trainer:
    training = True


def write_fer_csv(path: Path, n_per_usage: int = 4, seed: int = 0) -> dict[str, list]:
    rng = np.random.default_rng(seed)
    rows = {"Training": [], "PublicTest": [], "PrivateTest": []}
    lines = ["emotion,pixels,Usage"]
    for usage in rows:
        for _ in range(n_per_usage):
            pix, emo = rng.integers(0, 256, 2304), int(rng.integers(0, 7))
            rows[usage].append((emo, pix))
            lines.append(f"{emo},{' '.join(map(str, pix))},{usage}")
    path.write_text("\n".join(lines) + "\n")
    return rows


def test_fer2013_csv_splits_and_pixels(tmp_path: Path) -> None:
    rows = write_fer_csv(tmp_path / "fer2013.csv")
    dm = FER2013DataModule(str(tmp_path), batch_size=3, num_workers=0, crop_size=44)
    dm.setup()
    assert {k: len(v) for k, v in dm.datasets.items()} == {"train": 4, "val": 4, "test": 4}
    x, y = dm.datasets["test"][1]
    emo, pix = rows["PrivateTest"][1]
    assert x.shape == (1, 48, 48) and int(y) == emo
    assert torch.allclose(x.flatten(), torch.tensor(pix / 255.0, dtype=torch.float32))  # row-major 48x48
    dm.trainer = _Trainer()
    _Trainer.training = True
    xb, _ = dm.on_after_batch_transfer(next(iter(dm.train_dataloader())), 0)
    assert xb.shape == (3, 1, 44, 44)
    _Trainer.training = False
    xv, _ = dm.on_after_batch_transfer(next(iter(dm.val_dataloader())), 0)
    full = next(iter(dm.val_dataloader()))[0]
    assert torch.equal(xv, full[:, :, 2:46, 2:46])  # centre crop at evaluation
    rgb = FER2013DataModule(str(tmp_path / "fer2013.csv"), num_workers=0, channels=3)
    rgb.setup()
    assert rgb.datasets["train"][0][0].shape == (3, 48, 48)


@pytest.mark.parametrize("bad,match", [
    ("9,{p},Training", r"fer2013.csv:3: unknown emotion label '9'"),
    ("1,{short},Training", r"fer2013.csv:3: expected 2304 pixel values.*found 2000"),
    ("1,{p},Validation", r"fer2013.csv:3: unknown Usage 'Validation'"),
    ("1,{p}", r"fer2013.csv:3: expected 3 columns, found 2"),
    ("1,{bad_token},Training", r"fer2013.csv:3: pixels must be space-separated integers"),
    ("1,{big},Training", r"fer2013.csv:3: expected 2304 pixel values in 0..255.*outside"),
])
def test_fer2013_malformed_rows(tmp_path: Path, bad: str, match: str) -> None:
    good = " ".join(["7"] * 2304)
    text = ["emotion,pixels,Usage", f"0,{good},Training",
            bad.format(p=good, short=" ".join(["1"] * 2000), bad_token=" ".join(["1"] * 2303 + ["x"]),
                   big=" ".join(["1"] * 2303 + ["256"])), f"0,{good},PublicTest", f"0,{good},PrivateTest"]
    (tmp_path / "fer2013.csv").write_text("\n".join(text) + "\n")
    with pytest.raises(ValueError, match=match):
        read_fer2013_csv(tmp_path / "fer2013.csv")


def make_rafdb(root: Path, n_train: int = 14, n_test: int = 7) -> list[str]:
    basic = root / "basic"
    (basic / "EmoLabel").mkdir(parents=True)
    (basic / "Image" / "aligned").mkdir(parents=True)
    lines = []
    rng = np.random.default_rng(0)
    for split, n in (("train", n_train), ("test", n_test)):
        for i in range(1, n + 1):
            name = f"{split}_{i:05d}.jpg"
            label = (i % 7) + 1
            Image.fromarray(rng.integers(0, 256, (100, 100, 3), dtype=np.uint8)).save(
                basic / "Image" / "aligned" / f"{split}_{i:05d}_aligned.jpg")
            lines.append(f"{name} {label}")
    (basic / "EmoLabel" / "list_patition_label.txt").write_text("\n".join(lines) + "\n")
    return lines


def test_rafdb_partition_labels_and_images(tmp_path: Path) -> None:
    make_rafdb(tmp_path)
    dm = RAFDBDataModule(str(tmp_path), batch_size=4, num_workers=0)
    dm.setup()
    assert len(dm.datasets["train"]) == 14 and dm.datasets["val"] is dm.datasets["test"]
    x, y = dm.datasets["test"][2]  # test_00003.jpg, label 3 % 7 + 1 = 4 -> 0-based 3 (Happiness)
    assert x.shape == (3, 100, 100) and int(y) == 3 and dm.classes[3] == "Happiness"
    dm.trainer = _Trainer()
    _Trainer.training = True
    xb, yb = dm.on_after_batch_transfer(next(iter(dm.train_dataloader())), 0)
    assert xb.shape == (4, 3, 90, 90) and yb.dtype == torch.long
    carved = RAFDBDataModule(str(tmp_path / "basic"), num_workers=0, val_size=7, seed=1)
    carved.setup()
    assert len(carved.datasets["train"]) == 7 and len(carved.datasets["val"]) == 7


def test_rafdb_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="list_patition_label.txt"):
        RAFDBDataModule(str(tmp_path), num_workers=0).setup()
    make_rafdb(tmp_path)
    label_file = tmp_path / "basic" / "EmoLabel" / "list_patition_label.txt"
    lines = label_file.read_text().splitlines()
    label_file.write_text("\n".join(lines[:3] + ["train_00004.jpg 8"] + lines[4:]))
    with pytest.raises(ValueError, match=r"list_patition_label.txt:4: unknown label '8'"):
        RAFDBDataModule(str(tmp_path), num_workers=0).setup()
    label_file.write_text("\n".join(lines[:2] + ["train_00099.jpg 1"]))
    with pytest.raises(FileNotFoundError, match=r":3: aligned image .*train_00099_aligned.jpg"):
        RAFDBDataModule(str(tmp_path), num_workers=0).setup()


def make_expw(root: Path, n_images: int = 35) -> list[str]:
    (root / "label").mkdir(parents=True)
    (root / "image" / "origin").mkdir(parents=True)
    lines = []
    for i in range(n_images):
        img = np.zeros((60, 80, 3), dtype=np.uint8)
        img[10:30, 20:50] = 200  # the face box of face 0 is bright
        Image.fromarray(img).save(root / "image" / "origin" / f"img_{i}.jpg", quality=100)
        lines.append(f"img_{i}.jpg 0 10 20 50 30 {50 + i}.5 {i % 7}")
        lines.append(f"img_{i}.jpg 1 35 5 25 55 10.0 {(i + 3) % 7}")  # second face, low confidence
    (root / "label" / "label.lst").write_text("\n".join(lines) + "\n")
    return lines


def test_expw_crops_boxes_and_splits(tmp_path: Path) -> None:
    make_expw(tmp_path)
    dm = ExpWDataModule(str(tmp_path), num_workers=0, image_size=32, crop_size=28, split_seed=0)
    dm.setup()
    sizes = [len(dm.datasets[s]) for s in ("train", "val", "test")]
    assert sizes == [56, 7, 7]  # 10 faces per class -> 8/1/1 per class
    faces = dm.datasets["train"].dataset
    first = faces.paths.index(tmp_path / "image" / "origin" / "img_0.jpg")
    x, y = faces[first]
    assert x.shape == (3, 32, 32) and x.mean() > 0.7 and int(y) == 0  # the crop is the bright box only
    confident = ExpWDataModule(str(tmp_path), num_workers=0, image_size=32, crop_size=28, min_confidence=20)
    confident.setup()
    assert sum(len(d) for d in confident.datasets.values()) == 35
    again = ExpWDataModule(str(tmp_path), num_workers=0, image_size=32, crop_size=28, split_seed=0)
    again.setup()
    assert again.datasets["test"].indices == dm.datasets["test"].indices


def test_expw_malformed_lines(tmp_path: Path) -> None:
    lines = make_expw(tmp_path)
    lst = tmp_path / "label" / "label.lst"
    lst.write_text("\n".join(lines[:4] + ["img_1.jpg 0 10 20 50 30 99.0 7"]))
    with pytest.raises(ValueError, match=r"label.lst:5: unknown label '7'"):
        ExpWDataModule(str(tmp_path), num_workers=0).setup()
    lst.write_text("\n".join(lines[:1] + ["img_1.jpg 0 10 20 50"]))
    with pytest.raises(ValueError, match=r"label.lst:2: expected 8 fields"):
        ExpWDataModule(str(tmp_path), num_workers=0).setup()
    lst.write_text("\n".join(lines[:1] + ["missing.jpg 0 10 20 50 30 99.0 1"]))
    with pytest.raises(FileNotFoundError, match=r"label.lst:2: image .*missing.jpg"):
        ExpWDataModule(str(tmp_path), num_workers=0).setup()
    with pytest.raises(FileNotFoundError, match="label.lst"):
        ExpWDataModule(str(tmp_path / "nope"), num_workers=0).setup()


def test_ten_crop_at_test_time(tmp_path: Path) -> None:
    from datamodules.fer import ten_crop

    x = torch.arange(2 * 3 * 6 * 6, dtype=torch.float32).view(2, 3, 6, 6)
    crops = ten_crop(x, 4)
    assert crops.shape == (2, 10, 3, 4, 4)
    assert torch.equal(crops[:, 0], x[..., :4, :4]) and torch.equal(crops[:, 3], x[..., 2:, 2:])
    assert torch.equal(crops[:, 4], x[..., 1:5, 1:5]) and torch.equal(crops[:, 9], x[..., 1:5, 1:5].flip(-1))
    write_fer_csv(tmp_path / "fer2013.csv")
    dm = FER2013DataModule(str(tmp_path), batch_size=4, num_workers=0, crop_size=44, ten_crop=True)
    dm.setup()

    class _Testing:
        training, testing = False, True

    dm.trainer = _Testing()
    xb, _ = dm.on_after_batch_transfer(next(iter(dm.test_dataloader())), 0)
    assert xb.shape == (4, 10, 1, 44, 44)
    _Testing.testing = False  # validation keeps the single centre crop
    assert dm.on_after_batch_transfer(next(iter(dm.val_dataloader())), 0)[0].shape == (4, 1, 44, 44)
