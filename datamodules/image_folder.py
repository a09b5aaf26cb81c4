"""Folder-per-class image datasets kept in RAM, with RRR-Net's Micro split and augmentation family.

Layouts: ``<data_dir>/<class>/**`` (split per class by counts and seeds, as RRR-Net's Micro split), or
``<data_dir>/{train,val,test}/<class>/**`` (used as given; ``test`` optional). Images come out as floats in [0, 1];
normalisation belongs to the model.
"""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import lightning.pytorch as pl
import numpy as np
import torch
from torch.utils.data import DataLoader, Dataset

from datamodules.decode import IMG_EXTENSIONS, load_image as decode_image

SPLIT_PROTOCOLS = ("authors", "per_class")


def load_image(path: str | Path, size: int) -> torch.Tensor:
    """Decode an image as RGB and resize it to ``size x size``: a ``(3, size, size)`` uint8 tensor."""
    return decode_image(path, size, "RGB")


def authors_split(labels: Sequence[int], train: int, val: int, test: int | None, seed: int = 88,
                  shuffle_seed: int = 66) -> dict[str, list[int]]:
    """RRR-Net's Micro split (``Benchmark40MicroSplitDataset.divide_items_into_split``): one ``default_rng(seed)``
    shuffle of the whole list, bucket by class in order of first appearance after that shuffle, take ``train``, then
    ``val``, then ``test`` items of each bucket (``None`` = the rest), then shuffle each split with its own fresh
    ``default_rng(shuffle_seed)``."""
    labels = np.asarray(labels)
    order = np.random.default_rng(seed).permutation(len(labels))  # = rng.shuffle of the item list
    buckets: dict[int, list[int]] = {}
    for i in order.tolist():
        buckets.setdefault(int(labels[i]), []).append(i)
    need = train + val + (test or 0)
    out: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    for c, idx in buckets.items():
        if len(idx) < need:
            raise ValueError(f"class {c} has {len(idx)} images, the split needs {need} (train {train}, "
                             f"val {val}, test {test})")
        out["train"] += idx[:train]
        out["val"] += idx[train:train + val]
        out["test"] += idx[train + val:] if test is None else idx[train + val:need]
    for name in out:
        perm = np.random.default_rng(shuffle_seed).permutation(len(out[name]))
        out[name] = [out[name][i] for i in perm]
    return out


def per_class_split(labels: Sequence[int], train: int, val: int, test: int | None, seed: int = 88,
                    shuffle_seed: int = 66) -> dict[str, list[int]]:
    """The zoo's earlier split (``split_protocol="per_class"``): one ``default_rng(seed)`` shuffles each class in
    first-seen order, take ``train`` then ``val`` then ``test`` images (``None`` = the rest); then one
    ``default_rng(shuffle_seed)`` shuffles the splits in turn. About half the images differ from :func:`authors_split`."""
    rng = np.random.default_rng(seed)
    out: dict[str, list[int]] = {"train": [], "val": [], "test": []}
    labels = np.asarray(labels)
    for c in dict.fromkeys(labels.tolist()):
        idx = np.flatnonzero(labels == c)
        rng.shuffle(idx)
        need = train + val + (test or 0)
        if len(idx) < need:
            raise ValueError(f"class {c} has {len(idx)} images, the split needs {need} (train {train}, "
                             f"val {val}, test {test})")
        out["train"] += idx[:train].tolist()
        out["val"] += idx[train:train + val].tolist()
        out["test"] += (idx[train + val:] if test is None else idx[train + val:train + val + test]).tolist()
    rng2 = np.random.default_rng(shuffle_seed)
    for name in out:
        perm = rng2.permutation(len(out[name]))
        out[name] = [out[name][i] for i in perm]
    return out


def rrr_augmentation():
    """RRR-Net's train augmentation on uint8 tensors: two successive picks from 12 ops. The mapping of the authors'
    albumentations 1.2.0 ops to torchvision v2 is reconstructed (MotionBlur, RGBShift, GaussNoise written here)."""
    from torchvision.transforms import v2

    ops = [
        v2.RandomAffine(degrees=0, shear=10),
        v2.RandomAffine(degrees=30, translate=(0.1, 0.1), scale=(0.99, 1.01)),
        v2.Lambda(_rgb_shift),
        v2.ColorJitter(brightness=0.2, contrast=0.2),
        v2.RandomPosterize(bits=4, p=1.0),
        v2.Lambda(_motion_blur),
        v2.JPEG(quality=(99, 100)),
        v2.Lambda(_gauss_noise),
        v2.RandomEqualize(p=1.0),
        v2.RandomSolarize(threshold=128, p=1.0),
        v2.RandomAdjustSharpness(sharpness_factor=2.0, p=1.0),
        v2.RandomInvert(p=1.0),
    ]
    return v2.Compose([v2.RandomChoice(ops), v2.RandomChoice(ops)])


def _rgb_shift(img: torch.Tensor, limit: int = 15) -> torch.Tensor:
    shift = torch.randint(-limit, limit + 1, (3, 1, 1))
    return (img.to(torch.int16) + shift).clamp(0, 255).to(torch.uint8)


def _gauss_noise(img: torch.Tensor) -> torch.Tensor:
    std = float(torch.empty(()).uniform_(10.0, 50.0).sqrt())  # albumentations var_limit=(10, 50)
    return (img.float() + torch.randn(img.shape) * std).round().clamp(0, 255).to(torch.uint8)


def _motion_blur(img: torch.Tensor) -> torch.Tensor:
    k = int(torch.randint(1, 4, ()).item()) * 2 + 1  # 3, 5 or 7 (albumentations blur_limit=7)
    kernel = torch.zeros(k, k)
    angle = float(torch.rand(()) * np.pi)
    for t in np.linspace(-(k // 2), k // 2, 2 * k):
        kernel[int(round(k // 2 + t * np.sin(angle))), int(round(k // 2 + t * np.cos(angle)))] = 1.0
    kernel = (kernel / kernel.sum()).expand(3, 1, k, k)
    out = torch.nn.functional.conv2d(img.float().unsqueeze(0), kernel, padding=k // 2, groups=3)[0]
    return out.round().clamp(0, 255).to(torch.uint8)


class ImageTensorDataset(Dataset):
    """uint8 images in RAM -> (float image in [0, 1], label), with an optional uint8 transform."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, transform=None) -> None:
        self.images, self.labels, self.transform = images, labels, transform

    def __len__(self) -> int:
        return len(self.labels)

    def __getitem__(self, i: int):
        img = self.images[i]
        if self.transform is not None:
            img = self.transform(img)
        return img.float() / 255.0, self.labels[i]


def scan_class_folders(root: Path) -> tuple[list[Path], list[int], list[str]]:
    """Images of ``root/<class>/`` and its nested sub-folders, in torchvision ImageFolder's order (classes sorted
    by name, files by sorted ``os.walk``) and with its extensions (``IMG_EXTENSIONS``)."""
    import os

    classes = sorted(d.name for d in os.scandir(root) if d.is_dir())
    paths, labels = [], []
    for c, name in enumerate(classes):
        files = [Path(top) / f for top, _, names in sorted(os.walk(root / name, followlinks=True))
                 for f in sorted(names) if f.lower().endswith(IMG_EXTENSIONS)]
        paths += files
        labels += [c] * len(files)
    if not paths:
        raise FileNotFoundError(f"no images under {root}/<class>/ (any depth, extensions {', '.join(IMG_EXTENSIONS)})")
    return paths, labels, classes


class InMemoryImageDataModule(pl.LightningDataModule):
    """Shared logic: read (paths, labels), split per class, decode once into RAM, augment the train split."""

    def __init__(self, data_dir: str, image_size: int = 128, batch_size: int = 32, train_per_class: int = 20,
                 val_per_class: int = 0, test_per_class: int | None = 20, split_seed: int = 88,
                 shuffle_seed: int = 66, augment: bool = True, num_workers: int = 0, download: bool = False,
                 branch_loaders: int = 1, split_protocol: str = "authors") -> None:
        super().__init__()
        if branch_loaders < 1:
            raise ValueError(f"branch_loaders must be >= 1, got {branch_loaders}")
        if split_protocol not in SPLIT_PROTOCOLS:
            raise ValueError(f"split_protocol must be one of {SPLIT_PROTOCOLS}, got {split_protocol!r}")
        self.save_hyperparameters()
        self.data_dir = Path(data_dir).expanduser()
        self.datasets: dict[str, ImageTensorDataset] = {}
        self.class_names: list[str] = []

    def read_splits(self) -> dict[str, tuple[list[Path], list[int]]]:  # pragma: no cover - abstract
        raise NotImplementedError

    @property
    def num_classes(self) -> int:
        self.setup()
        return len(self.class_names)

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        hp = self.hparams
        for name, (paths, labels) in self.read_splits().items():
            imgs = torch.stack([load_image(p, hp.image_size) for p in paths]) if paths else \
                torch.zeros(0, 3, hp.image_size, hp.image_size, dtype=torch.uint8)
            tf = rrr_augmentation() if (name == "train" and hp.augment) else None
            self.datasets[name] = ImageTensorDataset(imgs, torch.as_tensor(labels, dtype=torch.long), tf)

    def _split_flat(self, paths: list[Path], labels: list[int]) -> dict[str, tuple[list[Path], list[int]]]:
        hp = self.hparams
        split = authors_split if hp.split_protocol == "authors" else per_class_split
        try:
            idx = split(labels, hp.train_per_class, hp.val_per_class, hp.test_per_class, hp.split_seed,
                        hp.shuffle_seed)
        except ValueError as err:
            raise ValueError(f"{getattr(self, 'folder', self.data_dir)}: {err}") from None
        return {k: ([paths[i] for i in v], [labels[i] for i in v]) for k, v in idx.items()}

    def _loader(self, name: str, shuffle: bool) -> DataLoader:
        self.setup()
        return DataLoader(self.datasets[name], batch_size=self.hparams.batch_size, shuffle=shuffle,
                          num_workers=self.hparams.num_workers, persistent_workers=self.hparams.num_workers > 0)

    def train_dataloader(self) -> DataLoader | list[DataLoader]:
        """One loader, or ``branch_loaders`` independently shuffled ones (RRR-Net: one full pass per branch)."""
        if self.hparams.branch_loaders == 1:
            return self._loader("train", True)
        return [self._loader("train", True) for _ in range(self.hparams.branch_loaders)]

    def val_dataloader(self) -> DataLoader:
        """The val split, or the test split when the val split is empty (the paper's Micro runs have no val)."""
        self.setup()
        return self._loader("val" if len(self.datasets["val"]) else "test", False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test", False)


class ImageFolderDataModule(InMemoryImageDataModule):
    """Generic folder-per-class dataset: ``<data_dir>/<class>/**`` split per class (``split_protocol``), or
    ready-made ``<data_dir>/{train,val,test}/<class>/**`` splits (``train`` plus ``val`` and/or ``test``: without
    ``test`` the val split is also the test split; without ``val`` validation uses the test split)."""

    def read_splits(self) -> dict[str, tuple[list[Path], list[int]]]:
        root = self.data_dir
        if not root.is_dir():
            raise FileNotFoundError(f"{root} does not exist; expected <data_dir>/<class>/<image> or "
                                    "<data_dir>/{train,val,test}/<class>/<image> (no download is attempted)")
        tops = {d.name for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")}
        if "train" in tops and tops & {"val", "test"} and tops <= {"train", "val", "test"}:
            paths, labels, self.class_names = scan_class_folders(root / "train")
            out = {"train": (paths, labels)}
            for name in ("val", "test"):
                if name in tops:
                    p, lab, cls = scan_class_folders(root / name)
                    unknown = sorted(set(cls) - set(self.class_names))
                    if unknown:
                        raise ValueError(f"{root / name} has classes {unknown} absent from {root / 'train'}")
                    out[name] = (p, [self.class_names.index(cls[i]) for i in lab])
                else:
                    out[name] = ([], [])
            if "test" not in tops:
                out["test"] = out["val"]
            return out
        paths, labels, self.class_names = scan_class_folders(root)
        return self._split_flat(paths, labels)
