"""The shipped tiny-config weights: hash-checked registry entry whose frozen features beat a random-init backbone."""
from pathlib import Path

import torch

import zoo
from zoo.core.ssl_eval import logistic_probe
from zoo.hub import sha256_file
from zoo.nas.data import DigitsNASDataModule
from zoo.registry import get_entry


def test_nasiam_digits_weights_load_hash_checked_and_beat_random_init():
    entry = get_entry("nasiam_digits")
    path = Path(zoo.__file__).parent / entry.weights.path
    assert path.stat().st_size < 2_000_000 and sha256_file(path) == entry.weights.sha256
    net = zoo.load("nasiam_digits")
    assert not net.training and net.projector.chain.ops == ["linear_hardswish", "linear_silu", "linear_silu"]
    data = DigitsNASDataModule(batch_size=128, search=False, corrupted=False, channels=1)
    data.setup()
    torch.manual_seed(0)
    random_init = zoo.create_model("nasiam_digits").eval()
    trained = logistic_probe(net, data.train_dataloader(), data.test_dataloader())
    baseline = logistic_probe(random_init, data.train_dataloader(), data.test_dataloader())
    assert trained > baseline + 0.4 and trained > 0.9
