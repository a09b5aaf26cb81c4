"""Tiny-ImageNet-200 DataModule on a tiny copy of the release layout (val labels from val_annotations.txt)."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from datamodules.tiny_imagenet import TinyImageNetDataModule

WNIDS = ["n01443537", "n01629819", "n01641577"]


def _make(root, per_class=4, n_val=6, gray_val=True):
    rng = np.random.default_rng(0)
    root.mkdir(parents=True, exist_ok=True)
    (root / "wnids.txt").write_text("\n".join(WNIDS) + "\n")
    (root / "words.txt").write_text("".join(f"{w}\tthing {i}\n" for i, w in enumerate(WNIDS)))
    for w in WNIDS:
        d = root / "train" / w / "images"
        d.mkdir(parents=True)
        for k in range(per_class):
            Image.fromarray(rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)).save(d / f"{w}_{k}.JPEG")
        (root / "train" / w / f"{w}_boxes.txt").write_text("".join(f"{w}_{k}.JPEG\t0\t0\t63\t63\n" for k in range(per_class)))
    (root / "val" / "images").mkdir(parents=True)
    lines = []
    for k in range(n_val):
        arr = rng.integers(0, 256, (64, 64), dtype=np.uint8) if (gray_val and k == 0) else \
            rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
        Image.fromarray(arr).save(root / "val" / "images" / f"val_{k}.JPEG")
        lines.append(f"val_{k}.JPEG\t{WNIDS[(k * 2) % 3]}\t1\t2\t60\t61")
    (root / "val" / "val_annotations.txt").write_text("\n".join(lines) + "\n")
    return root


def test_reads_release_layout(tmp_path):
    root = _make(tmp_path / "tiny-imagenet-200")
    dm = TinyImageNetDataModule(str(root), batch_size=4, num_workers=0, val_size=3)
    dm.setup()
    assert dm.classes == WNIDS
    assert [len(dm.datasets[k]) for k in ("train", "val", "test")] == [9, 3, 6]
    test = dm.datasets["test"]
    assert test.labels.tolist() == [(k * 2) % 3 for k in range(6)]  # from val_annotations.txt
    x, _ = test[0]  # a grayscale JPEG comes out as RGB
    assert x.shape == (3, 64, 64) and 0 <= x.min() and x.max() <= 1 and torch.equal(x[0], x[1])
    xb, yb = next(iter(dm.train_dataloader()))
    assert xb.shape == (4, 3, 64, 64) and yb.dtype == torch.long
    assert dm.augmentation()(xb).shape == xb.shape


def test_bad_annotations_and_missing(tmp_path):
    with pytest.raises(FileNotFoundError, match="wnids.txt"):
        TinyImageNetDataModule(str(tmp_path / "nothing")).setup()
    root = _make(tmp_path / "t")
    ann = root / "val" / "val_annotations.txt"
    ann.write_text(ann.read_text() + "val_0.JPEG\tn99999999\t0\t0\t1\t1\n")
    with pytest.raises(ValueError, match=r"val_annotations.txt:7: unknown wnid 'n99999999'"):
        TinyImageNetDataModule(str(root), num_workers=0).setup()
    ann.write_text("val_0.JPEG n01443537\n")
    with pytest.raises(ValueError, match=":1: expected"):
        TinyImageNetDataModule(str(root), num_workers=0).setup()
