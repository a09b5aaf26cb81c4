"""What the zoo's dataset modules share: loaders over a train/val/test dict and a seeded validation split."""
from __future__ import annotations

from typing import Any, Callable

import lightning.pytorch as pl
import torch
from torch.utils.data import DataLoader, Dataset, Subset


class SplitDataModule(pl.LightningDataModule):
    """Base for datamodules whose ``setup`` fills ``self.datasets`` with ``train``, ``val`` and ``test``.

    Subclasses set ``self.batch_size`` and ``self.num_workers`` and make ``setup`` idempotent; predict uses the
    test split. ``collate_fn`` (a staticmethod) and ``drop_last_train`` let a subclass change batching.
    """

    batch_size: int
    num_workers: int
    datasets: dict[str, Dataset]
    collate_fn: Callable[[list], Any] | None = None
    drop_last_train: bool = False

    def _loader(self, name: str, shuffle: bool) -> DataLoader:
        self.setup()
        return DataLoader(self.datasets[name], batch_size=self.batch_size, shuffle=shuffle,
                          num_workers=self.num_workers, persistent_workers=self.num_workers > 0,
                          pin_memory=torch.cuda.is_available(), collate_fn=self.collate_fn,
                          drop_last=shuffle and self.drop_last_train)

    def train_dataloader(self) -> DataLoader:
        return self._loader("train", shuffle=True)

    def val_dataloader(self) -> DataLoader:
        return self._loader("val", shuffle=False)

    def test_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)

    def predict_dataloader(self) -> DataLoader:
        return self._loader("test", shuffle=False)


def carve_validation(train: Dataset, test: Dataset, val_size: int, seed: int) -> dict[str, Dataset]:
    """``val_size`` training images (seeded draw) become the validation split; 0 validates on ``test``."""
    if val_size == 0:
        return {"train": train, "val": test, "test": test}
    if not 0 < val_size < len(train):
        raise ValueError(f"val_size={val_size} must be in [0, {len(train)}) (the training set has {len(train)} images)")
    perm = torch.randperm(len(train), generator=torch.Generator().manual_seed(seed))
    return {"train": Subset(train, perm[val_size:].sort().values.tolist()),
            "val": Subset(train, perm[:val_size].sort().values.tolist()), "test": test}
