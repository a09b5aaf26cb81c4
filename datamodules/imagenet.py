"""ImageNet (ILSVRC2012) in the ImageFolder layout: ``<data_dir>/train/<wnid>/*.JPEG`` and ``<data_dir>/val/<wnid>/*.JPEG``.

Workers decode, crop and flip; images come out in [0, 1] (normalisation belongs to the model).
Colour jitter (DARTS ImageNet recipe) is applied in the workers as torchvision transforms.
"""
from __future__ import annotations

from pathlib import Path

from torch.utils.data import Subset

from datamodules.base import SplitDataModule
from datamodules.decode import open_image

IMAGENET_URL = "https://image-net.org/download-images.php"


def rgb_loader(path: str):
    """ImageFolder's loader through the shared decoder: a truncated or undecodable file names itself."""
    return open_image(path, "RGB")


class ImageNetDataModule(SplitDataModule):
    """ILSVRC2012 train/val folders; train: RandomResizedCrop + flip (+ colour jitter), val: resize 256, centre crop.

    ``plain_train=True`` only resizes and centre-crops training images to ``resize_size`` (fixed-size batches for
    augmentation on the accelerator, e.g. self-supervised two-view pipelines); ``subset_fraction`` keeps the first
    fraction of the (sorted) training images, as NASiam's search on the first quarter of ImageNet.
    """

    drop_last_train = True

    def __init__(self, data_dir: str = "data/imagenet", batch_size: int = 128, num_workers: int = 8,
                 image_size: int = 224, resize_size: int = 256, color_jitter: float = 0.4,
                 download: bool = False, plain_train: bool = False, subset_fraction: float = 1.0) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.data_dir = Path(data_dir)
        self.batch_size, self.num_workers = batch_size, num_workers
        self.datasets: dict = {}
        self.classes: list[str] = []

    @property
    def num_classes(self) -> int:
        return len(self.classes) if self.classes else 1000

    def _check(self) -> None:
        problems = []
        for split in ("train", "val"):
            folder = self.data_dir / split
            if not folder.is_dir():
                problems.append(f"missing folder {folder}")
            elif not any(p.is_dir() for p in folder.iterdir()):
                problems.append(f"{folder} has no class sub-folders (expected <wnid>/ e.g. n01440764/)")
        if problems:
            raise FileNotFoundError(
                f"ImageNetDataModule: {'; '.join(problems)}. Expected the ILSVRC2012 ImageFolder layout "
                f"<data_dir>/train/<wnid>/*.JPEG and <data_dir>/val/<wnid>/*.JPEG (validation images sorted into "
                f"class folders). The dataset cannot be downloaded automatically; obtain it from {IMAGENET_URL}.")

    def prepare_data(self) -> None:
        self._check()

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        self._check()
        from torchvision import datasets, transforms as T

        hp = self.hparams
        jitter = [T.ColorJitter(hp.color_jitter, hp.color_jitter, hp.color_jitter, 0.2)] if hp.color_jitter > 0 else []
        train_tf = T.Compose([T.RandomResizedCrop(hp.image_size), T.RandomHorizontalFlip(), *jitter, T.ToTensor()])
        if hp.plain_train:
            train_tf = T.Compose([T.Resize(hp.resize_size), T.CenterCrop(hp.resize_size), T.ToTensor()])
        val_tf = T.Compose([T.Resize(hp.resize_size), T.CenterCrop(hp.image_size), T.ToTensor()])
        train = datasets.ImageFolder(str(self.data_dir / "train"), transform=train_tf, loader=rgb_loader)
        val = datasets.ImageFolder(str(self.data_dir / "val"), transform=val_tf, loader=rgb_loader)
        if train.classes != val.classes:
            missing = sorted(set(train.classes) ^ set(val.classes))[:5]
            raise ValueError(f"train and val class folders differ in {self.data_dir} (e.g. {missing})")
        self.classes = train.classes
        fraction = hp.subset_fraction
        if not 0.0 < fraction <= 1.0:
            raise ValueError(f"subset_fraction must be in (0, 1], got {fraction}")
        if fraction < 1.0:
            train = Subset(train, list(range(max(1, int(len(train) * fraction)))))
        self.datasets = {"train": train, "val": val, "test": val}
