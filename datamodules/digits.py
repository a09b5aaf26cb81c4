"""scikit-learn's bundled handwritten digits (1,797 images, 8x8, 10 classes): the embedded default.

Needs no download, so every tiny config and test can run offline. Images are scaled to [0, 1];
normalisation belongs to the model.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch.utils.data import TensorDataset
from datamodules.base import SplitDataModule


def load_digits_tensors(image_size: int | None = None, channels: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """All 1,797 digits as ``(N, channels, H, W)`` floats in [0, 1] and ``(N,)`` int64 labels."""
    from sklearn.datasets import load_digits

    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    bunch = load_digits()
    x = torch.as_tensor(bunch.images, dtype=torch.float32).unsqueeze(1) / 16.0
    if image_size is not None and image_size != 8:
        if image_size < 1:
            raise ValueError(f"image_size must be positive, got {image_size}")
        x = F.interpolate(x, size=(image_size, image_size), mode="bilinear", align_corners=False).clamp(0, 1)
    if channels == 3:
        x = x.expand(-1, 3, -1, -1).contiguous()
    return x, torch.as_tensor(bunch.target, dtype=torch.long)


def stratified_split(
    labels: torch.Tensor, fractions: tuple[float, float, float], seed: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Indices of a per-class shuffled split into train/val/test with the given fractions."""
    if abs(sum(fractions) - 1.0) > 1e-6 or min(fractions) < 0:
        raise ValueError(f"split fractions must be non-negative and sum to 1, got {fractions}")
    gen = torch.Generator().manual_seed(seed)
    parts: list[list[torch.Tensor]] = [[], [], []]
    for c in labels.unique(sorted=True):
        idx = (labels == c).nonzero().flatten()
        idx = idx[torch.randperm(len(idx), generator=gen)]
        n_val = round(len(idx) * fractions[1])
        n_test = round(len(idx) * fractions[2])
        n_train = len(idx) - n_val - n_test
        parts[0].append(idx[:n_train])
        parts[1].append(idx[n_train:n_train + n_val])
        parts[2].append(idx[n_train + n_val:])
    return tuple(torch.cat(p).sort().values for p in parts)  # type: ignore[return-value]


class DigitsDataModule(SplitDataModule):
    """Digits with a fixed stratified train/val/test split (60/20/20 by default, seed 0)."""

    num_classes = 10

    def __init__(
        self,
        batch_size: int = 64,
        image_size: int | None = None,
        channels: int = 1,
        val_fraction: float = 0.2,
        test_fraction: float = 0.2,
        seed: int = 0,
        num_workers: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.batch_size = batch_size
        self.num_workers = num_workers
        self.fractions = (1.0 - val_fraction - test_fraction, val_fraction, test_fraction)
        self.datasets: dict[str, TensorDataset] = {}

    def setup(self, stage: str | None = None) -> None:
        if self.datasets:
            return
        hp = self.hparams
        x, y = load_digits_tensors(hp.image_size, hp.channels)
        for name, idx in zip(("train", "val", "test"), stratified_split(y, self.fractions, hp.seed)):
            self.datasets[name] = TensorDataset(x[idx], y[idx])

