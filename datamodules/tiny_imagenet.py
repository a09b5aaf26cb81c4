"""Tiny-ImageNet-200 (64 x 64, 200 classes) from its release folder ``tiny-imagenet-200``.

Train: ``train/<wnid>/images/*.JPEG`` (500 per class); the labelled ``val`` split (labels from
``val/val_annotations.txt``) serves as the test set, as is standard. JPEGs are decoded in workers
(grayscale ones converted to RGB); random crop 64 (pad 8) and flip run on the accelerator.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset
from datamodules.base import SplitDataModule, carve_validation

TINY_URL = "http://cs231n.stanford.edu/tiny-imagenet-200.zip"


def read_wnids(root: Path) -> list[str]:
    path = root / "wnids.txt"
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: expected the tiny-imagenet-200 release folder ({TINY_URL})")
    wnids = [line.strip() for line in path.read_text().splitlines() if line.strip()]
    if len(set(wnids)) != len(wnids):
        raise ValueError(f"{path}: duplicate WordNet ids")
    return wnids


def read_val_annotations(path: Path, classes: dict[str, int]) -> list[tuple[str, int]]:
    """``(file name, label)`` from ``val_annotations.txt`` (tab-separated: file, wnid, x0, y0, x1, y1)."""
    if not path.is_file():
        raise FileNotFoundError(f"{path} not found: the val split needs val/val_annotations.txt")
    rows = []
    for n, line in enumerate(path.read_text().splitlines(), 1):
        if not line.strip():
            continue
        parts = line.split("\t")
        if len(parts) < 2:
            raise ValueError(f"{path}:{n}: expected 'file<TAB>wnid<TAB>x0<TAB>y0<TAB>x1<TAB>y1', got {line!r}")
        if parts[1] not in classes:
            raise ValueError(f"{path}:{n}: unknown wnid {parts[1]!r} (not in wnids.txt)")
        rows.append((parts[0], classes[parts[1]]))
    return rows


class JPEGDataset(Dataset):
    """Image files decoded on access to ``(3, H, W)`` floats in [0, 1]; labels int64."""

    def __init__(self, files: list[Path], labels: list[int]) -> None:
        self.files, self.labels = files, torch.as_tensor(labels, dtype=torch.long)

    def __len__(self) -> int:
        return len(self.files)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        from datamodules.decode import load_image

        return load_image(self.files[i]).float().div_(255.0), self.labels[i]


class TinyImageNetDataModule(SplitDataModule):
    """Tiny-ImageNet-200: 100,000 train images (seeded validation split carved out), val (10,000) as test."""

    num_classes = 200

    def __init__(self, data_dir: str = "data/tiny-imagenet-200", batch_size: int = 128, num_workers: int = 8,
                 val_size: int = 10000, seed: int = 0, augment: bool = True, download: bool = False) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.data_dir = Path(data_dir)
        self.batch_size, self.num_workers = batch_size, num_workers
        self.datasets: dict[str, Dataset] = {}
        self.classes: list[str] = []
        self._aug: torch.nn.Module | None = None

    def prepare_data(self) -> None:
        if not (self.data_dir / "wnids.txt").is_file() or not (self.data_dir / "train").is_dir():
            raise FileNotFoundError(
                f"TinyImageNetDataModule: {self.data_dir} is not a tiny-imagenet-200 folder (expected wnids.txt, "
                f"train/<wnid>/images/*.JPEG, val/images/*.JPEG and val/val_annotations.txt). Download and unzip "
                f"{TINY_URL} (download=True is not supported: the zip is not checksummed upstream)."
            )

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        self.prepare_data()
        hp, root = self.hparams, self.data_dir
        self.classes = read_wnids(root)
        index = {w: i for i, w in enumerate(self.classes)}
        files, labels = [], []
        for w in self.classes:
            found = sorted((root / "train" / w / "images").glob("*.JPEG"))
            if not found:
                raise FileNotFoundError(f"{root / 'train' / w / 'images'}: no JPEG images for class {w}")
            files += found
            labels += [index[w]] * len(found)
        train = JPEGDataset(files, labels)
        rows = read_val_annotations(root / "val" / "val_annotations.txt", index)
        missing = [f for f, _ in rows if not (root / "val" / "images" / f).is_file()]
        if missing:
            raise FileNotFoundError(f"{root / 'val' / 'images'}: {len(missing)} annotated images missing, e.g. {missing[0]}")
        test = JPEGDataset([root / "val" / "images" / f for f, _ in rows], [c for _, c in rows])
        self.datasets = carve_validation(train, test, hp.val_size, hp.seed)


    def augmentation(self) -> torch.nn.Module:
        """Random crop 64 with padding 8 and horizontal flip."""
        if self._aug is None:
            import kornia.augmentation as K

            self._aug = torch.nn.Sequential(K.RandomCrop((64, 64), padding=8), K.RandomHorizontalFlip())
        return self._aug

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        trainer = getattr(self, "trainer", None)
        if self.hparams.augment and trainer is not None and trainer.training:
            batch = (self.augmentation().to(batch[0].device)(batch[0]), batch[1])
        return batch
