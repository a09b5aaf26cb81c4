"""Facial expression recognition datasets in their distributed formats: FER2013, RAF-DB (basic) and ExpW.

- FER2013: Kaggle ``fer2013.csv`` (``emotion,pixels,Usage``; Training / PublicTest = val / PrivateTest = test).
- RAF-DB basic: ``EmoLabel/list_patition_label.txt`` + ``Image/aligned/<name>_aligned.jpg``; labels 1..7.
- ExpW: ``label/label.lst`` face boxes over ``image/origin/``; crops; seeded stratified 80/10/10 split.
Workers decode; flip, +-10 degree rotation and random crop (centre crop at evaluation) run on the device.
"""
from __future__ import annotations

import csv
import warnings
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset, Subset

from datamodules.cifar import UInt8ImageDataset
from datamodules.digits import stratified_split
from datamodules.base import SplitDataModule

FER2013_CLASSES = ["Angry", "Disgust", "Fear", "Happy", "Sad", "Surprise", "Neutral"]
RAFDB_CLASSES = ["Surprise", "Fear", "Disgust", "Happiness", "Sadness", "Anger", "Neutral"]
EXPW_CLASSES = ["angry", "disgust", "fear", "happy", "sad", "surprise", "neutral"]
FER2013_USAGE = {"Training": "train", "PublicTest": "val", "PrivateTest": "test"}


class FaceImageDataset(Dataset):
    """Decode a face image file (optionally crop a ``(top, left, bottom, right)`` box) to a float [0, 1] tensor."""

    def __init__(self, paths: list[Path], labels: list[int], image_size: int, channels: int = 3,
                 boxes: list[tuple[int, int, int, int]] | None = None) -> None:
        self.paths, self.labels, self.boxes = paths, torch.as_tensor(labels, dtype=torch.long), boxes
        self.image_size, self.mode = image_size, "RGB" if channels == 3 else "L"

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        from PIL import Image

        from datamodules.decode import open_image

        img = open_image(self.paths[i], self.mode, "face image")
        if self.boxes is not None:
            top, left, bottom, right = self.boxes[i]
            box = (max(left, 0), max(top, 0), min(right, img.width), min(bottom, img.height))
            if box[2] <= box[0] or box[3] <= box[1]:
                raise ValueError(f"{self.paths[i]}: face box top={top} left={left} bottom={bottom} right={right} "
                                 f"lies outside the {img.width}x{img.height} image (sample {i})")
            img = img.crop(box)
        if img.size != (self.image_size, self.image_size):
            img = img.resize((self.image_size, self.image_size), Image.BILINEAR)
        arr = np.asarray(img, dtype=np.uint8)
        x = torch.from_numpy(arr.copy())
        x = x.unsqueeze(0) if x.ndim == 2 else x.permute(2, 0, 1)
        return x.float().div_(255.0), self.labels[i]


class FERDataModule(SplitDataModule):
    """Shared loaders and device-side augmentation of the FER datasets (subclasses fill ``self.datasets``)."""

    num_classes = 7
    classes: list[str] = FER2013_CLASSES

    def __init__(self, data_dir: str, batch_size: int, num_workers: int, image_size: int, crop_size: int,
                 augment: bool, rotation: float, ten_crop: bool = False) -> None:
        super().__init__()
        if crop_size > image_size:
            raise ValueError(f"crop_size={crop_size} exceeds image_size={image_size}")
        self.data_dir = Path(data_dir)
        self.batch_size, self.num_workers = batch_size, num_workers
        self.image_size, self.crop_size = image_size, crop_size or image_size
        self.augment, self.rotation, self.ten_crop = augment, rotation, ten_crop
        self.datasets: dict[str, Dataset] = {}
        self._train_aug: torch.nn.Module | None = None
        self._eval_aug: torch.nn.Module | None = None


    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        """Training: h-flip, rotation, random crop; evaluation: centre crop (identity when crop = image size).

        With ``ten_crop`` the test batches hold the 10 crops (4 corners + centre, and their mirrors).
        """
        import kornia.augmentation as K

        x, y = batch[0], batch[1]
        trainer = getattr(self, "trainer", None)
        size = (self.crop_size, self.crop_size)
        if self.augment and trainer is not None and trainer.training:
            if self._train_aug is None:
                self._train_aug = torch.nn.Sequential(
                    K.RandomHorizontalFlip(), K.RandomRotation(degrees=self.rotation, p=1.0), K.RandomCrop(size))
            return self._train_aug.to(x.device)(x), y
        if self.ten_crop and trainer is not None and trainer.testing and self.crop_size != self.image_size:
            return ten_crop(x, self.crop_size), y  # (B, 10, C, crop, crop): the module averages the crops
        if self.crop_size != self.image_size:
            if self._eval_aug is None:
                self._eval_aug = K.CenterCrop(size)
            x = self._eval_aug.to(x.device)(x)
        return x, y


def ten_crop(x: torch.Tensor, size: int) -> torch.Tensor:
    """The four corner crops, the centre crop and their horizontal mirrors: ``(B, 10, C, size, size)``."""
    h, w = x.shape[-2:]
    corners = [(0, 0), (0, w - size), (h - size, 0), (h - size, w - size), ((h - size) // 2, (w - size) // 2)]
    crops = [x[..., t:t + size, l:l + size] for t, l in corners]
    return torch.stack(crops + [c.flip(-1) for c in crops], dim=1)


# ---- FER2013 ----------------------------------------------------------------------------------------------
def read_fer2013_csv(path: str | Path) -> dict[str, tuple[torch.Tensor, torch.Tensor]]:
    """``fer2013.csv`` -> {"train"|"val"|"test": ((N, 1, 48, 48) uint8, (N,) labels)}, every row checked."""
    path = Path(path)
    parts: dict[str, tuple[list[np.ndarray], list[int]]] = {s: ([], []) for s in FER2013_USAGE.values()}
    with open(path, newline="") as fh:
        reader = csv.reader(fh)
        header = [h.strip() for h in next(reader, [])]
        if not {"emotion", "pixels", "Usage"} <= set(header):
            raise ValueError(f"{path}:1: expected the header emotion,pixels,Usage, found {','.join(header) or 'nothing'}")
        col = {name: header.index(name) for name in ("emotion", "pixels", "Usage")}
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            if len(row) != len(header):
                raise ValueError(f"{path}:{line}: expected {len(header)} columns, found {len(row)}")
            emotion, usage = row[col["emotion"]].strip(), row[col["Usage"]].strip()
            if emotion not in {str(i) for i in range(7)}:
                raise ValueError(f"{path}:{line}: unknown emotion label {emotion!r}, expected 0..6 ({FER2013_CLASSES})")
            if usage not in FER2013_USAGE:
                raise ValueError(f"{path}:{line}: unknown Usage {usage!r}, expected one of {list(FER2013_USAGE)}")
            try:
                with warnings.catch_warnings():  # numpy warns (here: raises) on a token that is not an integer
                    warnings.simplefilter("error")
                    pixels = np.fromstring(row[col["pixels"]], dtype=np.int64, sep=" ")
            except (ValueError, DeprecationWarning) as err:
                raise ValueError(f"{path}:{line}: pixels must be space-separated integers ({err})") from None
            if pixels.size != 48 * 48 or pixels.min(initial=0) < 0 or pixels.max(initial=0) > 255:
                raise ValueError(f"{path}:{line}: expected 2304 pixel values in 0..255 (48x48), found {pixels.size}"
                                 + ("" if pixels.size != 2304 else " with values outside 0..255"))
            parts[FER2013_USAGE[usage]][0].append(pixels.astype(np.uint8).reshape(1, 48, 48))
            parts[FER2013_USAGE[usage]][1].append(int(emotion))
    out = {}
    for split, (images, labels) in parts.items():
        if not images:
            raise ValueError(f"{path}: no rows with Usage "
                             f"{[u for u, s in FER2013_USAGE.items() if s == split][0]!r}")
        out[split] = (torch.from_numpy(np.stack(images)), torch.as_tensor(labels, dtype=torch.long))
    return out


class FER2013DataModule(FERDataModule):
    """FER2013 (Kaggle CSV, 48x48 grey): Training / PublicTest (val) / PrivateTest (test)."""

    classes = FER2013_CLASSES

    def __init__(self, data_dir: str = "data/fer2013", batch_size: int = 64, num_workers: int = 4,
                 crop_size: int = 44, channels: int = 1, augment: bool = True, rotation: float = 10.0,
                 ten_crop: bool = False, download: bool = False) -> None:
        super().__init__(data_dir, batch_size, num_workers, 48, crop_size, augment, rotation, ten_crop)
        self.save_hyperparameters()
        if channels not in (1, 3):
            raise ValueError(f"channels must be 1 or 3, got {channels}")
        self.channels = channels

    def csv_path(self) -> Path:
        return self.data_dir if self.data_dir.suffix == ".csv" else self.data_dir / "fer2013.csv"

    def prepare_data(self) -> None:
        if not self.csv_path().is_file():
            raise FileNotFoundError(
                f"FER2013: {self.csv_path()} not found. Expected the Kaggle file fer2013.csv (columns emotion,pixels,"
                "Usage) from 'Challenges in Representation Learning: Facial Expression Recognition Challenge' on "
                "kaggle.com; it cannot be downloaded automatically (download=True is not supported).")

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        self.prepare_data()
        for split, (images, labels) in read_fer2013_csv(self.csv_path()).items():
            if self.channels == 3:
                images = images.expand(-1, 3, -1, -1).contiguous()
            self.datasets[split] = UInt8ImageDataset(images, labels)


# ---- RAF-DB -----------------------------------------------------------------------------------------------
class RAFDBDataModule(FERDataModule):
    """RAF-DB basic: aligned 100x100 faces, official split by file prefix (train 12,271 / test 3,068)."""

    classes = RAFDB_CLASSES

    def __init__(self, data_dir: str = "data/RAF-DB/basic", batch_size: int = 64, num_workers: int = 4,
                 image_size: int = 100, crop_size: int = 90, val_size: int = 0, seed: int = 0,
                 augment: bool = True, rotation: float = 10.0, ten_crop: bool = False, download: bool = False) -> None:
        super().__init__(data_dir, batch_size, num_workers, image_size, crop_size, augment, rotation, ten_crop)
        self.save_hyperparameters()

    def root(self) -> Path:
        return self.data_dir / "basic" if (self.data_dir / "basic" / "EmoLabel").is_dir() else self.data_dir

    def prepare_data(self) -> None:
        if not (self.root() / "EmoLabel" / "list_patition_label.txt").is_file():
            raise FileNotFoundError(
                f"RAF-DB: {self.root() / 'EmoLabel' / 'list_patition_label.txt'} not found. Expected the 'basic' "
                "folder of RAF-DB (EmoLabel/list_patition_label.txt and Image/aligned/<name>_aligned.jpg); it is "
                "released on request by its authors (http://www.whdeng.cn/raf/model1.html).")

    def read_split_file(self) -> dict[str, tuple[list[Path], list[int]]]:
        """Parse ``list_patition_label.txt``: ``train_00001.jpg 5`` per line, labels 1..7 -> 0..6."""
        label_file = self.root() / "EmoLabel" / "list_patition_label.txt"
        image_dir = self.root() / "Image" / "aligned"
        out: dict[str, tuple[list[Path], list[int]]] = {"train": ([], []), "test": ([], [])}
        for line_no, line in enumerate(label_file.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            fields = line.split()
            if len(fields) != 2:
                raise ValueError(f"{label_file}:{line_no}: expected '<image name> <label>', found {line!r}")
            name, label = fields
            if label not in {str(i) for i in range(1, 8)}:
                raise ValueError(f"{label_file}:{line_no}: unknown label {label!r}, expected 1..7 ({RAFDB_CLASSES})")
            split = name.split("_", 1)[0]
            if split not in out:
                raise ValueError(f"{label_file}:{line_no}: image name {name!r} starts neither with train_ nor test_")
            image = image_dir / f"{Path(name).stem}_aligned.jpg"
            if not image.is_file():
                raise FileNotFoundError(f"{label_file}:{line_no}: aligned image {image} is missing")
            out[split][0].append(image)
            out[split][1].append(int(label) - 1)
        return out

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        self.prepare_data()
        parts = self.read_split_file()
        train = FaceImageDataset(*parts["train"], image_size=self.image_size)
        test = FaceImageDataset(*parts["test"], image_size=self.image_size)
        self.datasets = {"train": train, "val": test, "test": test}
        if self.hparams.val_size:
            tr, va = stratified_holdout(train.labels, self.hparams.val_size, self.hparams.seed)
            self.datasets.update(train=Subset(train, tr), val=Subset(train, va))


def stratified_holdout(labels: torch.Tensor, n_val: int, seed: int) -> tuple[list[int], list[int]]:
    """Exactly ``n_val`` indices drawn per class in proportion to its size (quotas rounded globally by largest
    remainder, so a small set never gets an empty split), the rest for training; both sorted."""
    n = len(labels)
    if not 0 < n_val < n:
        raise ValueError(f"val_size={n_val} must be in [0, {n}) (the training set has {n} images)")
    classes, counts = labels.unique(sorted=True, return_counts=True)
    exact = counts.double() * n_val / n
    quota = exact.floor().long()
    order = torch.argsort(exact - quota, descending=True, stable=True)
    quota[order[: n_val - int(quota.sum())]] += 1
    gen = torch.Generator().manual_seed(seed)
    val: list[int] = []
    for c, q in zip(classes.tolist(), quota.tolist()):
        idx = (labels == c).nonzero().flatten()
        val += idx[torch.randperm(len(idx), generator=gen)[:q]].tolist()
    held = set(val)
    return [i for i in range(n) if i not in held], sorted(val)


# ---- ExpW -------------------------------------------------------------------------------------------------
class ExpWDataModule(FERDataModule):
    """ExpW: faces cropped from ``label/label.lst`` boxes, resized, seeded stratified train/val/test split."""

    classes = EXPW_CLASSES

    def __init__(self, data_dir: str = "data/ExpW", batch_size: int = 64, num_workers: int = 4,
                 image_size: int = 100, crop_size: int = 90, split_fractions: list[float] | None = None,
                 split_seed: int = 0, min_confidence: float = 0.0, augment: bool = True, rotation: float = 10.0,
                 check_images: bool = True, ten_crop: bool = False, download: bool = False) -> None:
        super().__init__(data_dir, batch_size, num_workers, image_size, crop_size, augment, rotation, ten_crop)
        self.save_hyperparameters()
        self.split_fractions = tuple(split_fractions or (0.8, 0.1, 0.1))
        if len(self.split_fractions) != 3:
            raise ValueError(f"split_fractions must be [train, val, test], got {split_fractions}")

    def prepare_data(self) -> None:
        if not (self.data_dir / "label" / "label.lst").is_file():
            raise FileNotFoundError(
                f"ExpW: {self.data_dir / 'label' / 'label.lst'} not found. Expected <data_dir>/label/label.lst and "
                "<data_dir>/image/origin/<image files> of the Expression in-the-Wild dataset "
                "(http://mmlab.ie.cuhk.edu.hk/projects/socialrelation/index.html).")

    def read_label_list(self) -> tuple[list[Path], list[int], list[tuple[int, int, int, int]]]:
        """Parse ``label.lst``: ``name face_id top left right bottom confidence label`` per face."""
        label_file = self.data_dir / "label" / "label.lst"
        image_dir = self.data_dir / "image" / "origin"
        paths, labels, boxes = [], [], []
        for line_no, line in enumerate(label_file.read_text().splitlines(), start=1):
            if not line.strip():
                continue
            fields = line.split()
            if len(fields) != 8:
                raise ValueError(f"{label_file}:{line_no}: expected 8 fields (image_name face_id top left right "
                                 f"bottom confidence label), found {len(fields)}")
            try:
                top, left, right, bottom = (int(float(v)) for v in fields[2:6])
                confidence = float(fields[6])
            except ValueError:
                raise ValueError(f"{label_file}:{line_no}: box and confidence must be numbers, "
                                 f"found {fields[2:7]}") from None
            if fields[7] not in {str(i) for i in range(7)}:
                raise ValueError(f"{label_file}:{line_no}: unknown label {fields[7]!r}, expected 0..6 ({EXPW_CLASSES})")
            if bottom <= top or right <= left:
                raise ValueError(f"{label_file}:{line_no}: empty face box top={top} left={left} right={right} "
                                 f"bottom={bottom}")
            if confidence < self.hparams.min_confidence:
                continue
            path = image_dir / fields[0]
            if self.hparams.check_images and not path.is_file():
                raise FileNotFoundError(f"{label_file}:{line_no}: image {path} is missing")
            paths.append(path)
            labels.append(int(fields[7]))
            boxes.append((top, left, bottom, right))
        if not paths:
            raise ValueError(f"{label_file}: no face left (min_confidence={self.hparams.min_confidence})")
        return paths, labels, boxes

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        self.prepare_data()
        paths, labels, boxes = self.read_label_list()
        faces = FaceImageDataset(paths, labels, self.image_size, boxes=boxes)
        splits = stratified_split(faces.labels, self.split_fractions, self.hparams.split_seed)
        self.datasets = {name: Subset(faces, idx.tolist()) for name, idx in zip(("train", "val", "test"), splits)}
