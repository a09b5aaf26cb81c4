"""ArchitectureDerivation: per-epoch genotype files, logged weight statistics, graph image, network at fit end."""
import json
import math

import lightning.pytorch as pl
import pytest
import torch

from callbacks.architecture import ArchitectureDerivation, weight_stats


def test_weight_stats_by_hand():
    uniform = torch.full((3, 4), 0.25)
    s = weight_stats([uniform], ["a", "b", "c", "d"])
    assert s["arch/entropy"] == pytest.approx(math.log(4)) and s["arch/max_weight"] == pytest.approx(0.25)
    onehot = torch.eye(4)[:3]
    s = weight_stats([onehot], ["a", "b", "c", "d"])
    assert s["arch/entropy"] == pytest.approx(0.0, abs=1e-6) and s["arch/mean_weight/a"] == pytest.approx(1 / 3)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("kind", ["darts", "ddarts"])
def test_callback_writes_genotypes_and_builds_the_network(kind, tmp_path):
    from lightning.pytorch.loggers import CSVLogger

    from zoo.nas.cells import DartsNetwork
    from zoo.nas.data import DigitsNASDataModule
    from zoo.nas.genotype import load_genotype

    pl.seed_everything(0, verbose=False)
    prims = ["max_pool_3x3", "skip_connect", "sep_conv_3x3"]
    if kind == "darts":
        from zoo.nas.search import BilevelSearchModule

        m = BilevelSearchModule(C=4, layers=3, steps=2, reductions=[1, 2], primitives=["none", *prims], arch_lr=0.03)
        cb = ArchitectureDerivation(out_dir=str(tmp_path / "g"), build_network=True, eval_C=4, eval_layers=5)
    else:
        from zoo.nas.ddarts.search import DDartsSearchModule

        m = DDartsSearchModule(C=4, layers=5, steps=2, reductions=[1, 3], primitives=prims, arch_lr=0.03, threshold=0.5)
        cb = ArchitectureDerivation(out_dir=str(tmp_path / "g"), build_network=True, eval_C=4, eval_layers=8)
    trainer = pl.Trainer(max_epochs=2, limit_train_batches=3, limit_val_batches=1, callbacks=[cb],
                         logger=CSVLogger(tmp_path), enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False)
    trainer.fit(m, DigitsNASDataModule(batch_size=32))
    out = tmp_path / "g"
    for name in ("genotype_epoch0.json", "genotype_epoch1.json", "genotype.json", "history.json"):
        assert (out / name).is_file(), name
    assert (out / "genotype_epoch1.png").stat().st_size > 1000
    final = load_genotype(out / "genotype.json")
    assert final == m.genotype()
    history = json.loads((out / "history.json").read_text())
    assert [h["epoch"] for h in history] == [0, 1] and "arch/entropy" in history[0]
    assert "arch/entropy" in trainer.callback_metrics and f"arch/mean_weight/{prims[0]}" in trainer.callback_metrics
    assert isinstance(cb.network, DartsNetwork)
    assert len(cb.network.cells) == cb.eval_layers  # D-DARTS: the deepened network (5 searched cells -> 8)
    assert cb.network(torch.rand(1, 3, 8, 8)).shape == (1, 10)
