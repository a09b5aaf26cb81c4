"""KNNMonitor: the weighted k-NN vote against a hand computation, and the callback inside a fit."""
import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.utilities import CombinedLoader
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from callbacks.knn_monitor import KNNMonitor, extract, feature_fn, knn_predict


def test_knn_predict_weights_votes_by_cosine_similarity():
    bank = torch.tensor([[1.0, 0.0], [0.8, 0.6], [0.0, 1.0], [-1.0, 0.0]])
    labels = torch.tensor([0, 1, 1, 2])
    q = torch.tensor([[2.0, 0.0]])  # cos to the bank: 1.0, 0.8, 0.0, -1.0
    scores = knn_predict(q, bank, labels, 3, k=3)
    torch.testing.assert_close(scores, torch.tensor([[1.0, 0.8, 0.0]]))
    exp = knn_predict(q, bank, labels, 3, k=2, weighting="exp", temperature=0.5)
    torch.testing.assert_close(exp, torch.tensor([[torch.e ** 2, torch.e ** 1.6, 0.0]]))
    assert knn_predict(q, bank, labels, 3, k=200).shape == (1, 3)  # k larger than the bank is clipped
    with pytest.raises(ValueError, match="weighting"):
        knn_predict(q, bank, labels, 3, weighting="rbf")


class _Data(pl.LightningDataModule):
    num_classes = 4

    def __init__(self, combined: bool = False) -> None:
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.y = torch.arange(200) % 4
        self.x = torch.randn(200, 8, generator=g) * 0.3 + nn.functional.one_hot(self.y, 8).float() * 2
        self.combined = combined

    def train_dataloader(self):
        a, b = TensorDataset(self.x[:80], self.y[:80]), TensorDataset(self.x[80:160], self.y[80:160])
        if self.combined:  # a search's {"train", "val"} halves: both are bank data
            return CombinedLoader({"train": DataLoader(a, 16), "val": DataLoader(b, 16)}, "max_size_cycle")
        return DataLoader(TensorDataset(self.x[:160], self.y[:160]), batch_size=16, shuffle=True)

    def val_dataloader(self):
        return DataLoader(TensorDataset(self.x[160:], self.y[160:]), batch_size=16)

    test_dataloader = val_dataloader


class _Backboned(pl.LightningModule):
    """A module exposing only ``backbone`` (no forward_features)."""

    def __init__(self, informative: bool) -> None:
        super().__init__()
        self.backbone = nn.Identity() if informative else nn.Linear(8, 8)
        if not informative:
            nn.init.zeros_(self.backbone.weight)
            with torch.no_grad():
                self.backbone.bias.copy_(torch.randn(8))
        self.w = nn.Parameter(torch.zeros(1))

    def training_step(self, batch, batch_idx):
        return (self.w ** 2).sum() + 0 * self.w

    def validation_step(self, batch, batch_idx):
        pass

    def test_step(self, batch, batch_idx):
        pass

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


@pytest.mark.parametrize("combined", [False, True])
def test_monitor_logs_knn_accuracy_of_any_module_with_a_backbone(combined, tmp_path):
    results = {}
    for informative in (True, False):
        mon = KNNMonitor(k=20)
        trainer = pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                             enable_model_summary=False, num_sanity_val_steps=0, default_root_dir=tmp_path,
                             callbacks=[mon], limit_train_batches=2)
        model, data = _Backboned(informative), _Data(combined)
        trainer.fit(model, data)
        results[informative] = float(trainer.callback_metrics["val/knn_acc"])
        assert mon.history == [(0, results[informative])]
        trainer.test(model, data, verbose=False)
        assert float(trainer.callback_metrics["test/knn_acc"]) == results[informative]
    assert results[True] > 0.95 and results[False] <= 0.35  # constant features: one class wins every vote


def test_feature_fn_and_extract_read_combined_loaders():
    data = _Data(combined=True)
    feats, labels = extract({"x": nn.Identity(), "2x": lambda x: 2 * x}, data.train_dataloader(), torch.device("cpu"))
    assert torch.equal(feats["2x"], 2 * feats["x"])  # one pass over the loader feeds every feature function
    feats = feats["x"]
    assert feats.shape == (160, 8) and labels.tolist() == data.y[:160].tolist()
    with pytest.raises(ValueError, match="neither forward_features"):
        feature_fn(nn.Linear(2, 2))
    with pytest.raises(ValueError):
        KNNMonitor(k=0)


def test_embedding_features_are_monitored_too(tmp_path):
    class _Embedding(_Backboned):
        def embed(self, x):
            return -x  # cosine neighbours of -x are those of x: the same accuracy

    mon = KNNMonitor(k=20, features="both")
    trainer = pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0, default_root_dir=tmp_path,
                         callbacks=[mon], limit_train_batches=1)
    trainer.fit(_Embedding(True), _Data())
    m = trainer.callback_metrics
    assert float(m["val/knn_acc_embedding"]) == float(m["val/knn_acc"]) > 0.95

    class _ConstantEmbedding(_Backboned):
        def embed(self, x):
            return torch.ones_like(x)  # no information: the embedding monitor must see it, not the backbone's

    trainer = pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, num_sanity_val_steps=0, default_root_dir=tmp_path,
                         callbacks=[KNNMonitor(k=20, features="both")], limit_train_batches=1)
    trainer.fit(_ConstantEmbedding(True), _Data())
    m = trainer.callback_metrics
    assert float(m["val/knn_acc"]) > 0.95 and float(m["val/knn_acc_embedding"]) <= 0.35
    with pytest.raises(ValueError, match="features"):
        KNNMonitor(features="projector")


def test_the_monitor_leaves_the_training_random_stream_alone(tmp_path):
    def draws(with_monitor: bool) -> torch.Tensor:
        torch.manual_seed(0)
        trainer = pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                             enable_model_summary=False, num_sanity_val_steps=0, default_root_dir=tmp_path,
                             callbacks=[KNNMonitor(k=5)] if with_monitor else [], limit_train_batches=1)
        trainer.fit(_Backboned(True), _Data())
        return torch.rand(3)

    torch.testing.assert_close(draws(True), draws(False))
