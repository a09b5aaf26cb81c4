"""KernelNet layouts and switches, the KernelClassifier's logs and checkpoints, the shipped digits weights."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
from lightning.pytorch.loggers import CSVLogger, WandbLogger
from torch import nn

import zoo
from datamodules.digits import DigitsDataModule
from zoo.kdl.kernels import KernelConv2d, KernelLinear, KernelPool2d
from zoo.core.wandb_records import read_run
from zoo.kdl.module import KernelClassifier
from zoo.kdl.nets import ARCHS, KernelNet


@pytest.mark.parametrize("arch,feat", [("mnist_cnn", 64 * 7 * 7), ("cifar_vgg11", 512), ("fer_vgg16", 512 * 3 * 3),
                                       ("fer2013_vgg16", 512 * 3 * 3), ("digits_cnn", 128), ("digits_mlp", 64)])
def test_arch_layouts(arch: str, feat: int) -> None:
    spec = ARCHS[arch]
    net = KernelNet(arch, num_classes=7, conv_kernel="poly", pool_type="kernel_gauss", fc_kernel="gauss").to("meta")
    x = torch.zeros(2, spec["in_chans"], spec["input_size"], spec["input_size"], device="meta")
    feats = net.forward_features(x)
    assert feats.flatten(1).shape[1] == feat
    assert net(x).shape == (2, 7)
    convs = [m for m in net.modules() if isinstance(m, KernelConv2d)]
    assert len(convs) == sum(1 for c in spec["cfg"] if c != "P") and all(c.kfn.kind == "poly" for c in convs)
    pools = [m for m in net.modules() if isinstance(m, KernelPool2d)]
    assert len(pools) == spec["cfg"].count("P") and all(p.kfn.kind == "gauss" for p in pools)
    dense = [m for m in net.modules() if isinstance(m, KernelLinear)]
    assert [d.kfn.kind for d in dense] == ["gauss"] * len(spec["hidden"]) + ["linear"]  # logits stay linear


def test_switches_and_param_count() -> None:
    base = KernelNet("cifar_vgg11", num_classes=10)
    kdl = KernelNet("cifar_vgg11", num_classes=10, fc_kernel="poly", kdl_on_logits=True)
    n_base, n_kdl = (sum(p.numel() for p in n.parameters()) for n in (base, kdl))
    assert n_kdl - n_base == 3  # one learnable c per kernelized dense layer: same weights as nn.Linear
    assert isinstance(KernelNet("digits_cnn", pool_type="max").features[3], nn.MaxPool2d)
    assert isinstance(KernelNet("digits_cnn", pool_type="avg").features[3], nn.AvgPool2d)
    assert isinstance(KernelNet("digits_cnn", fc_norm="bn").hidden[0], nn.BatchNorm1d)
    with pytest.raises(ValueError, match="unknown pool_type 'median'"):
        KernelNet("digits_cnn", pool_type="median")
    with pytest.raises(ValueError, match="unknown arch"):
        KernelNet("resnet50")


@pytest.mark.timeout(300)
def test_module_trains_logs_and_round_trips(tmp_path: Path) -> None:
    pl.seed_everything(0)
    torch.set_num_threads(1)
    model = KernelClassifier(arch="digits_cnn", conv_kernel="poly", pool_type="kernel_poly", fc_kernel="sigmoid",
                             scheduler="none", lr=3e-3)
    dm = DigitsDataModule(batch_size=64)
    wandb_logger = WandbLogger(save_dir=str(tmp_path), offline=True, project="kdl-test")
    trainer = pl.Trainer(max_epochs=3, accelerator="cpu", logger=[CSVLogger(tmp_path), wandb_logger],
                         enable_progress_bar=False,
                         default_root_dir=tmp_path, enable_model_summary=False, log_every_n_steps=5)
    trainer.fit(model, datamodule=dm)
    rows = list(csv.DictReader(open(next(tmp_path.rglob("metrics.csv")))))
    gaps = [float(r["gap/train_minus_val_acc"]) for r in rows if r.get("gap/train_minus_val_acc")]
    accs = [(float(r["train/acc"])) for r in rows if r.get("train/acc")]
    vals = [float(r["val/acc"]) for r in rows if r.get("val/acc")]
    assert len(gaps) == 3 and vals[-1] > 0.5 and -1 < gaps[-1] < 1
    assert abs(gaps[-1] - (accs[-1] - vals[-1])) < 0.1  # running train acc (train mode) minus val acc
    c_keys = sorted(k for k in rows[0] if k.startswith("kernel/"))
    assert c_keys == ["kernel/features.0.c", "kernel/features.3.c", "kernel/features.4.c", "kernel/features.7.c",
                      "kernel/hidden.0.c"]  # 2 poly convs, 2 kernel pools, the sigmoid KDL
    c_values = [float(r["kernel/hidden.0.c"]) for r in rows if r.get("kernel/hidden.0.c")]
    assert len(c_values) == 3 and c_values[-1] != 1.0  # learnt away from its init
    # mean per-class accuracy = mean of the confusion matrix's per-row recall
    trainer.test(model, datamodule=dm, verbose=False)
    conf = model.confusion["test"].double()
    assert conf.sum() == len(dm.datasets["test"])
    mean_class = (conf.diag() / conf.sum(1)).mean()
    assert abs(trainer.callback_metrics["test/mean_class_acc"].item() - mean_class.item()) < 1e-5
    # W&B got the kernel parameters, the gap and the confusion matrices (a table of true/predicted/count)
    run_dir = Path(wandb_logger.experiment.dir).parent
    wandb_logger.experiment.finish()
    run = read_run(next(run_dir.glob("*.wandb")))  # waits for the run's exit record
    assert run["finished"]
    keys = set().union(*run["history"])
    assert {"kernel/hidden.0.c", "gap/train_minus_val_acc", "test/mean_class_acc"} <= keys
    assert {"val/confusion_matrix/_type", "test/confusion_matrix/_type"} <= keys
    table_file = next(run_dir.rglob("confusion_matrix_*.table.json"))
    table = json.loads(table_file.read_text())
    assert table["columns"] == ["true", "predicted", "count"] and len(table["data"]) == 100
    # checkpoint: load_from_checkpoint (weights only) and zoo.load(path) rebuild the same network
    ckpt = tmp_path / "model.ckpt"
    trainer.save_checkpoint(ckpt)
    again = KernelClassifier.load_from_checkpoint(ckpt, weights_only=True).eval()
    net = zoo.load(str(ckpt))
    x = torch.rand(5, 1, 8, 8)
    model.eval()
    assert torch.allclose(again(x), model(x), atol=1e-6) and torch.allclose(net(x), model(x), atol=1e-6)
    assert again.hparams.fc_kernel == "sigmoid" and isinstance(net, KernelNet)


def test_shipped_digits_weights() -> None:
    """``zoo.load("kdl_digits")`` loads the tiny config's weights (sha256-checked) and beats a fresh network."""
    assert "kdl_digits" in zoo.list_models(pretrained=True)
    net = zoo.load("kdl_digits")
    dm = DigitsDataModule()
    dm.setup()
    x, y = dm.datasets["test"].tensors
    with torch.no_grad():
        acc = (net(x).argmax(-1) == y).float().mean().item()
        fresh = (zoo.create_model("kdl_digits").eval()(x).argmax(-1) == y).float().mean().item()
    assert acc >= 0.93 and acc > fresh + 0.5
    assert net.pretrained_metadata["test_acc"] == pytest.approx(acc, abs=1e-3)


def test_multi_crop_batches_average_probabilities() -> None:
    """Ten-crop test batches (B, 10, C, H, W): the loss is the NLL of the crops' mean probabilities."""
    from torch.utils.data import DataLoader, TensorDataset

    torch.manual_seed(0)
    model = KernelClassifier(arch="digits_mlp", fc_kernel="poly").eval()
    crops, y = torch.rand(6, 10, 1, 8, 8), torch.tensor([0, 1, 2, 3, 4, 5])
    with torch.no_grad():
        probs = model(crops.flatten(0, 1)).softmax(-1).view(6, 10, -1).mean(1)
    trainer = pl.Trainer(accelerator="cpu", logger=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.test(model, dataloaders=DataLoader(TensorDataset(crops, y), batch_size=6), verbose=False)
    expected_loss = torch.nn.functional.nll_loss(probs.log(), y)
    assert torch.allclose(trainer.callback_metrics["test/loss"], expected_loss, atol=1e-5)
    expected_acc = (probs.argmax(-1) == y).float().mean()
    assert torch.allclose(trainer.callback_metrics["test/acc"], expected_acc)
