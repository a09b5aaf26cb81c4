"""DartsEvalModule: recipe pieces (cutout, drop-path ramp, auxiliary loss), checkpoints, pretrained weights."""
import lightning.pytorch as pl
import pytest
import torch

from zoo.nas.module import DartsEvalModule, cutout
from zoo.nas.published import DARTS_V2


def test_cutout_zeroes_one_square_per_image():
    torch.manual_seed(0)
    x = torch.ones(500, 3, 32, 32)
    y = cutout(x, 16)
    zeros = (y[:, 0] == 0).flatten(1).sum(1).float()
    assert float(zeros.max()) == 256 and float(zeros.min()) >= 64  # a 16x16 square, clipped at borders
    assert torch.equal((y == 0).all(1), (y[:, :1] == 0).squeeze(1))  # same square in every channel
    assert torch.equal(cutout(x, 0), x)


def _module(tmp_path=None, **kw):
    args = dict(genotype="DARTS_DIGITS", C=4, layers=3, auxiliary=True, drop_path_prob=0.3, mean=[0.5] * 3,
                std=[0.5] * 3, lr=0.05, cutout_length=4)
    return DartsEvalModule(**{**args, **kw})


@pytest.mark.timeout(300)
def test_training_ramps_drop_path_and_round_trips_checkpoints(tmp_path):
    from zoo.nas.data import DigitsNASDataModule

    pl.seed_everything(0, verbose=False)
    m = _module()
    seen = []

    class Spy(pl.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            if batch_idx == 0:
                seen.append(pl_module.net.drop_path_prob)

    trainer = pl.Trainer(max_epochs=3, limit_train_batches=2, limit_val_batches=1, logger=False, callbacks=[Spy()],
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         gradient_clip_val=5.0)
    trainer.fit(m, DigitsNASDataModule(search=False, batch_size=32))
    assert seen == pytest.approx([0.0, 0.1, 0.2])
    assert "train/aux_loss" in trainer.callback_metrics
    path = tmp_path / "m.ckpt"
    trainer.save_checkpoint(path)
    again = DartsEvalModule.load_from_checkpoint(path, weights_only=True)
    assert again.hparams.genotype["type"] == "CellGenotype"  # the genotype itself is stored, not a name or path
    m.eval(), again.eval()
    x = torch.rand(2, 3, 8, 8)
    assert torch.allclose(m(x), again(x))
    import zoo

    # a Lightning checkpoint of this paper loads with zoo.load once exported
    from zoo.hub import export_checkpoint

    export_checkpoint(path, tmp_path / "w.pt", arch="darts_digits", C=4, auxiliary=True)
    net = zoo.load(str(tmp_path / "w.pt"))
    assert torch.allclose(net(x), again(x), atol=1e-6)


def test_genotype_given_as_a_json_file_is_stored_as_a_dict(tmp_path):
    from zoo.nas.genotype import save_genotype

    path = save_genotype(DARTS_V2, tmp_path / "genotype.json")
    m = _module(genotype=str(path), C=4, layers=3, auxiliary=False)
    assert m.hparams.genotype == DARTS_V2.to_dict()


@pytest.mark.parametrize("name", ["darts_digits", "ddarts_digits"])
def test_pretrained_digits_weights_beat_an_untrained_net(name):
    import zoo
    from zoo.nas.data import DigitsNASDataModule

    dm = DigitsNASDataModule(search=False)
    dm.setup()
    x, y = dm.data["test"].tensors
    net = zoo.load(name)
    acc = float((net(x).argmax(1) == y).float().mean())
    torch.manual_seed(0)
    fresh = zoo.create_model(name).eval()
    chance = float((fresh(x).argmax(1) == y).float().mean())
    assert acc > 0.40 and acc > chance + 0.2
    assert acc == pytest.approx(net.pretrained_metadata["test_acc"], abs=1e-3)
