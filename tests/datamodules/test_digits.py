"""The embedded digits DataModule: a fixed, stratified, disjoint split, resize and channels."""
from __future__ import annotations

import pytest
import torch

from datamodules.digits import DigitsDataModule, load_digits_tensors, stratified_split


def test_split_is_disjoint_complete_stratified_and_fixed():
    _, y = load_digits_tensors()
    train, val, test = stratified_split(y, (0.6, 0.2, 0.2), seed=0)
    all_idx = torch.cat([train, val, test])
    assert len(all_idx) == len(y) == 1797 and len(all_idx.unique()) == len(y)
    for part in (val, test):
        share = torch.bincount(y[part], minlength=10).float() / torch.bincount(y, minlength=10)
        assert share.min() > 0.17 and share.max() < 0.23
    again = stratified_split(y, (0.6, 0.2, 0.2), seed=0)
    assert all(torch.equal(a, b) for a, b in zip((train, val, test), again))
    other = stratified_split(y, (0.6, 0.2, 0.2), seed=1)
    assert not torch.equal(test, other[2])


def test_images_in_unit_range_with_resize_and_channels():
    dm = DigitsDataModule(batch_size=16, image_size=32, channels=3)
    x, y = next(iter(dm.train_dataloader()))
    assert x.shape == (16, 3, 32, 32) and y.dtype == torch.int64
    assert x.min() >= 0 and x.max() <= 1 and x.max() > 0.5
    assert torch.equal(x[:, 0], x[:, 2])


def test_bad_arguments():
    with pytest.raises(ValueError, match="channels"):
        load_digits_tensors(channels=2)
    with pytest.raises(ValueError, match="sum to 1"):
        stratified_split(torch.arange(10) % 2, (0.5, 0.5, 0.5), seed=0)
