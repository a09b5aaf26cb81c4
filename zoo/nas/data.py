"""Data for architecture search: the seeded 50/50 split of a training set into weight and alpha halves,
and the digits tiny default (plain or corrupted, DARTS spec section 9).

The search loader yields ``{"train": batch, "val": batch}`` through a ``CombinedLoader("max_size_cycle")``.
"""
from __future__ import annotations

import lightning.pytorch as pl
import torch
import torch.nn.functional as F
from lightning.pytorch.utilities import CombinedLoader
from torch.utils.data import DataLoader, Dataset, Subset, TensorDataset


def search_split(n: int, fraction: float = 0.5, seed: int = 2) -> tuple[list[int], list[int]]:
    """Seeded split of ``range(n)`` into the weight half and the architecture half."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"search split fraction must be in (0, 1), got {fraction}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    k = int(round(n * fraction))
    return perm[:k].sort().values.tolist(), perm[k:].sort().values.tolist()


class SearchSplitDataModule(pl.LightningDataModule):
    """Wrap any DataModule: its training set is split into w/alpha halves; val and test loaders are its own.

    Every batch (each half, and its val/test batches) goes through the wrapped module's own
    ``on_after_batch_transfer``, so its switches (``augment: false``) and eval-time transforms hold as without the
    wrapper. Only constructor attributes of the wrapped module are read, never its ``hparams``.
    """

    def __init__(self, datamodule: pl.LightningDataModule, fraction: float = 0.5, seed: int = 2,
                 batch_size: int | None = None) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["datamodule"])
        if not isinstance(datamodule, pl.LightningDataModule):
            raise ValueError(f"SearchSplitDataModule wraps a LightningDataModule, got {type(datamodule).__name__}")
        self.base = datamodule
        self.fraction, self.seed, self._batch_size_arg = fraction, seed, batch_size
        self.halves: tuple[Dataset, Dataset] | None = None

    @property
    def num_classes(self) -> int:
        return self.base.num_classes

    def prepare_data(self) -> None:
        self.base.prepare_data()

    def setup(self, stage: str | None = None) -> None:
        self.base.setup("fit")
        if self.halves is None:
            train = self.base.train_dataloader().dataset
            w_idx, a_idx = search_split(len(train), self.fraction, self.seed)
            self.halves = (Subset(train, w_idx), Subset(train, a_idx))

    @property
    def batch_size(self) -> int:
        """Per-half batch size: the wrapper's ``batch_size`` if given, else the wrapped module's."""
        return self._batch_size_arg or getattr(self.base, "batch_size", 64)

    def train_dataloader(self) -> CombinedLoader:
        self.setup()
        nw = getattr(self.base, "num_workers", 0)
        loaders = {name: DataLoader(ds, batch_size=self.batch_size, shuffle=True, num_workers=nw, drop_last=True,
                                    persistent_workers=nw > 0)
                   for name, ds in zip(("train", "val"), self.halves)}
        return CombinedLoader(loaders, mode="max_size_cycle")

    def val_dataloader(self):
        return self.base.val_dataloader()

    def test_dataloader(self):
        return self.base.test_dataloader()

    def _base_transfer(self, batch, dataloader_idx: int):
        """The wrapped module's hook, seeing the same trainer state (training / testing) as this one."""
        if type(self.base).on_after_batch_transfer is pl.LightningDataModule.on_after_batch_transfer:
            return batch
        self.base.trainer = getattr(self, "trainer", None)
        return self.base.on_after_batch_transfer(batch, dataloader_idx)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        inner = batch[0] if isinstance(batch, (list, tuple)) and batch and isinstance(batch[0], dict) else batch
        if isinstance(inner, dict):
            return {k: self._base_transfer(v, dataloader_idx) for k, v in inner.items()}
        return self._base_transfer(batch, dataloader_idx)


def corrupt_digits(x: torch.Tensor, noise_std: float = 0.5, drop_fraction: float = 0.25, seed: int = 99) -> torch.Tensor:
    """The "hard" digits of the spec: clamp(x + noise_std * N(0, 1), 0, 1.5), then zero ``drop_fraction`` of pixels.

    ``x`` is in [0, 1] (digits / 16); one fixed generator, applied once to all images.
    """
    gen = torch.Generator().manual_seed(seed)
    noisy = (x + noise_std * torch.randn(x.shape, generator=gen)).clamp(0.0, 1.5)
    keep = torch.rand(x.shape, generator=gen) >= drop_fraction
    return noisy * keep


def digits_tensors(corrupted: bool, image_size: int | None = None, channels: int = 1,
                   noise_std: float = 0.5, drop_fraction: float = 0.25, corruption_seed: int = 99) -> tuple[torch.Tensor, torch.Tensor]:
    """sklearn digits as (N, C, H, W) floats (corrupted at 8x8 before any resize) and labels."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    x = torch.as_tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    if corrupted:
        x = corrupt_digits(x, noise_std, drop_fraction, corruption_seed)
    if image_size is not None and image_size != 8:
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False)
    if channels == 3:
        x = x.expand(-1, 3, -1, -1).contiguous()
    elif channels != 1:
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    return x, torch.as_tensor(bunch.target, dtype=torch.long)


class DigitsNASDataModule(pl.LightningDataModule):
    """Digits for NAS (spec section 9): shuffled with ``shuffle_seed``, ``test_size`` held out, the rest the pool.

    ``search=True``: train yields {"train", "val"} halves of the pool (650/650); else the whole pool trains.
    Validation and test both use the held-out images (the faithful protocol scores the last epoch).
    """

    num_classes = 10

    def __init__(self, batch_size: int = 64, search: bool = True, corrupted: bool = True, image_size: int | None = None,
                 channels: int = 3, test_size: int = 497, shuffle_seed: int = 123, split_seed: int = 0,
                 noise_std: float = 0.5, drop_fraction: float = 0.25, corruption_seed: int = 99,
                 num_workers: int = 0) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.data: dict[str, Dataset] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.data:
            return
        hp = self.hparams
        x, y = digits_tensors(hp.corrupted, hp.image_size, hp.channels, hp.noise_std, hp.drop_fraction, hp.corruption_seed)
        perm = torch.randperm(len(y), generator=torch.Generator().manual_seed(hp.shuffle_seed))
        if not 0 < hp.test_size < len(y) - 1:
            raise ValueError(f"test_size must be in 1..{len(y) - 2}, got {hp.test_size}")
        test, pool = perm[:hp.test_size], perm[hp.test_size:]
        self.data["test"] = TensorDataset(x[test], y[test])
        self.data["pool"] = TensorDataset(x[pool], y[pool])
        w_idx, a_idx = search_split(len(pool), 0.5, hp.split_seed)
        self.data["train"] = TensorDataset(x[pool[w_idx]], y[pool[w_idx]])
        self.data["val"] = TensorDataset(x[pool[a_idx]], y[pool[a_idx]])

    def train_dataloader(self):
        self.setup()
        mk = lambda ds: DataLoader(ds, batch_size=self.batch_size, shuffle=True, num_workers=self.num_workers)
        if self.hparams.search:
            return CombinedLoader({"train": mk(self.data["train"]), "val": mk(self.data["val"])}, mode="max_size_cycle")
        return mk(self.data["pool"])

    def val_dataloader(self) -> DataLoader:
        self.setup()
        return DataLoader(self.data["test"], batch_size=256, num_workers=self.num_workers)

    def test_dataloader(self) -> DataLoader:
        return self.val_dataloader()
