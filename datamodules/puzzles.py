"""Jigsaw-puzzle image sources (Alphazzle, arXiv 2302.00384): a MET-style folder of images, sklearn digits
(the embedded default) and scikit-image's bundled sample images (smoke set).

Every dataset yields ``(image, order)``: a square RGB image of the puzzle's canvas side in [-1, 1] and a
random placement order of its ``grid*grid`` fragments, fixed per item for val/test, fresh for train.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.utils.data import Dataset

from datamodules.base import SplitDataModule

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
SKIMAGE_NAMES = ("astronaut", "chelsea", "coffee", "rocket", "hubble_deep_field", "immunohistochemistry", "retina",
                 "colorwheel", "camera", "horse", "coins", "clock", "moon", "page")


def canvas_side(grid: int, frag: int, gap: int) -> int:
    return grid * frag + (grid - 1) * gap


def to_rgb_tensor(array: np.ndarray) -> torch.Tensor:
    """uint8/bool/float HxW(xC) array -> (3, H, W) float in [0, 1]; grey copied to 3 channels, alpha dropped."""
    arr = np.asarray(array)
    if arr.dtype == bool:
        arr = arr.astype(np.float32)
    elif arr.dtype == np.uint8:
        arr = arr.astype(np.float32) / 255.0
    else:
        arr = arr.astype(np.float32)
        arr = (arr - arr.min()) / max(float(arr.max() - arr.min()), 1e-8) if arr.max() > 1 or arr.min() < 0 else arr
    t = torch.from_numpy(np.ascontiguousarray(arr))
    if t.ndim == 2:
        t = t[None].expand(3, -1, -1)
    elif t.ndim == 3:
        t = t.permute(2, 0, 1)[:3]
        if t.shape[0] == 1:
            t = t.expand(3, -1, -1)
    else:
        raise ValueError(f"expected an HxW or HxWxC image, got shape {arr.shape}")
    return t.contiguous()


def resize_shorter(img: torch.Tensor, side: int) -> torch.Tensor:
    """Resize (3, H, W) so that the shorter side is ``side`` (bilinear, antialiased)."""
    h, w = img.shape[-2:]
    scale = side / min(h, w)
    size = (max(side, round(h * scale)), max(side, round(w * scale)))
    return F.interpolate(img[None], size=size, mode="bilinear", antialias=True, align_corners=False)[0].clamp(0, 1)


def square_crop(img: torch.Tensor, side: int, rng: np.random.Generator, lo: float = 0.0, hi: float = 1.0) -> torch.Tensor:
    """Random ``side`` x ``side`` crop lying inside the columns [lo*W, hi*W) of the image (full height)."""
    h, w = img.shape[-2:]
    x0, x1 = int(lo * w), int(round(hi * w))
    if x1 - x0 < side or h < side:
        raise ValueError(f"cannot crop {side} px from columns [{x0}, {x1}) of a {h}x{w} image; enlarge the image")
    y = int(rng.integers(0, h - side + 1))
    x = int(rng.integers(x0, x1 - side + 1))
    return img[:, y:y + side, x:x + side]


class PuzzleImages(Dataset):
    """Items ``(image in [-1, 1], order)`` from a list of loaders of (3, H, W) [0, 1] images.

    ``train=True``: a fresh random crop offset and order at each access (augmentation as in the official
    code). Otherwise both are drawn from ``seed`` + index, so evaluation puzzles are fixed.
    """

    def __init__(self, sources: list, grid: int, frag: int, gap: int, train: bool, seed: int = 0,
                 length: int | None = None, crop_range: tuple[float, float] = (0.0, 1.0), resize: bool = True) -> None:
        self.sources, self.grid, self.side, self.train, self.seed = sources, grid, canvas_side(grid, frag, gap), train, seed
        self.length = length if length is not None else len(sources)
        self.crop_range, self.resize = crop_range, resize

    def __len__(self) -> int:
        return self.length

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, torch.Tensor]:
        rng = (np.random.default_rng([self.seed, idx]) if not self.train
               else np.random.default_rng(int(torch.randint(0, 2**62, (1,)))))
        src = self.sources[idx % len(self.sources)]
        img = src() if callable(src) else src
        if img.shape[-1] != self.side or img.shape[-2] != self.side:
            if self.resize and min(img.shape[-2:]) != self.side:
                img = resize_shorter(img, self.side)
            img = square_crop(img, self.side, rng, *self.crop_range)
        order = torch.from_numpy(rng.permutation(self.grid * self.grid)).long()
        return img * 2.0 - 1.0, order


class _PuzzleDataModule(SplitDataModule):
    """Shared settings of the puzzle DataModules (loaders from ``SplitDataModule``; full training batches)."""

    drop_last_train = True

    def __init__(self, grid: int, frag: int, gap: int, batch_size: int, num_workers: int, seed: int) -> None:
        super().__init__()
        self.grid, self.frag, self.gap = grid, frag, gap
        self.batch_size, self.num_workers, self.seed = batch_size, num_workers, seed
        self.datasets: dict[str, Dataset] = {}


class _LoadImage:
    """Picklable loader of one image file (PIL), for worker processes."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def __call__(self) -> torch.Tensor:
        from datamodules.decode import read_image_array

        return to_rgb_tensor(read_image_array(self.path, "RGB"))


class FolderPuzzleDataModule(_PuzzleDataModule):
    """MET-style puzzles: ``data_dir/dataset_{train,val,test}/`` of images, resized to a shorter side equal to
    the canvas side (128 px for 3x3 x 40 px + 4 px gaps) and cropped square at a random offset."""

    def __init__(self, data_dir: str = "data/MET", grid: int = 3, frag: int = 40, gap: int = 4, batch_size: int = 64,
                 num_workers: int = 0, seed: int = 0, download: bool = False) -> None:
        super().__init__(grid, frag, gap, batch_size, num_workers, seed)
        self.data_dir, self.download = Path(data_dir), download

    def _files(self, split: str) -> list[Path]:
        folder = self.data_dir / f"dataset_{split}"
        if not folder.is_dir():
            raise FileNotFoundError(
                f"{folder} not found. Expected {self.data_dir}/dataset_train/, dataset_val/ and dataset_test/ holding "
                "images (jpg/png). The MET images are the Metropolitan Museum of Art open-access collection "
                "(https://github.com/metmuseum/openaccess), split as in Paumard et al. ECCV 2018; nothing is downloaded.")
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_EXTENSIONS)
        if not files:
            raise FileNotFoundError(f"{folder} holds no image file with one of the extensions {IMAGE_EXTENSIONS}")
        return files

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        for split in ("train", "val", "test"):
            if split == "test" and not (self.data_dir / "dataset_test").is_dir():
                self.datasets["test"] = self.datasets["val"]  # the official code evaluates on dataset_val
                continue
            loaders = [_LoadImage(p) for p in self._files(split)]
            self.datasets[split] = PuzzleImages(loaders, self.grid, self.frag, self.gap, split == "train", self.seed)


def digits_images(side: int) -> torch.Tensor:
    """The 1,797 sklearn digits resized to ``side`` px, RGB, in [0, 1] (spec section 13: 22 px for 3x3x6+2x2)."""
    from sklearn.datasets import load_digits

    x = torch.as_tensor(load_digits().images, dtype=torch.float32).unsqueeze(1) / 16.0
    x = F.interpolate(x, size=(side, side), mode="bilinear", align_corners=False).clamp(0, 1)
    return x.expand(-1, 3, -1, -1).contiguous()


class DigitsPuzzleDataModule(_PuzzleDataModule):
    """The embedded default: sklearn digits as 3x3 puzzles of 6 px fragments with 2 px gaps (22 px canvas);
    a seeded split of ``n_train`` training, ``n_test`` test digits, the rest for validation."""

    def __init__(self, grid: int = 3, frag: int = 6, gap: int = 2, batch_size: int = 32, n_train: int = 1400,
                 n_test: int = 100, num_workers: int = 0, seed: int = 0) -> None:
        super().__init__(grid, frag, gap, batch_size, num_workers, seed)
        if n_train + n_test >= 1797:
            raise ValueError(f"n_train + n_test must leave validation digits out of 1797, got {n_train + n_test}")
        self.n_train, self.n_test = n_train, n_test

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        x = digits_images(canvas_side(self.grid, self.frag, self.gap))
        perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(self.seed))
        parts = {"train": perm[:self.n_train], "test": perm[self.n_train:self.n_train + self.n_test],
                 "val": perm[self.n_train + self.n_test:]}
        for split, idx in parts.items():
            self.datasets[split] = PuzzleImages(list(x[idx]), self.grid, self.frag, self.gap, split == "train",
                                                self.seed + {"train": 0, "val": 1, "test": 2}[split])


class SkimagePuzzleDataModule(_PuzzleDataModule):
    """Smoke set: random crops of scikit-image's offline sample images; train crops from the left 70% of each
    image, val/test crops from the right 30%. Too little data to learn from: a pipeline check only."""

    def __init__(self, grid: int = 2, frag: int = 14, gap: int = 2, batch_size: int = 16, names: list[str] | None = None,
                 train_size: int = 512, eval_size: int = 32, zoom: float = 3.5, num_workers: int = 0,
                 seed: int = 0) -> None:
        super().__init__(grid, frag, gap, batch_size, num_workers, seed)
        self.names = list(names or SKIMAGE_NAMES)
        self.train_size, self.eval_size, self.zoom = train_size, eval_size, zoom

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        import skimage.data

        side = canvas_side(self.grid, self.frag, self.gap)
        images = []
        for name in self.names:
            if not hasattr(skimage.data, name):
                raise ValueError(f"skimage.data has no sample image {name!r}; offline ones: {SKIMAGE_NAMES}")
            images.append(resize_shorter(to_rgb_tensor(getattr(skimage.data, name)()), round(side * self.zoom)))
        self.datasets["train"] = PuzzleImages(images, self.grid, self.frag, self.gap, True, self.seed,
                                              length=self.train_size, crop_range=(0.0, 0.7), resize=False)
        for i, split in enumerate(("val", "test")):
            self.datasets[split] = PuzzleImages(images, self.grid, self.frag, self.gap, False, self.seed + 1 + i,
                                                length=self.eval_size, crop_range=(0.7, 1.0), resize=False)
