"""configs/kdl: every dataset config builds its model and datamodule; variants switch one layer type; the grid runs."""
from __future__ import annotations

import importlib
from pathlib import Path

import pytest
import torch
import yaml

from zoo.kdl import grid
from zoo.kdl.kernels import KernelConv2d, KernelLinear, KernelPool2d
from zoo.kdl.module import KernelClassifier

CONFIGS = Path(__file__).resolve().parents[3] / "configs" / "kdl"


def _load(*names: str) -> dict:
    cfg: dict = {}
    for name in names:
        part = yaml.safe_load((CONFIGS / name).read_text())
        for key, value in part.items():
            if isinstance(value, dict) and isinstance(cfg.get(key), dict):
                cfg[key] = {**cfg[key], **value, "init_args": {**cfg[key].get("init_args", {}),
                                                             **value.get("init_args", {})}}
            else:
                cfg[key] = value
    return cfg


def _class(path: str):
    module, name = path.rsplit(".", 1)
    return getattr(importlib.import_module(module), name)


@pytest.mark.parametrize("name", ["tiny.yaml", "paper.yaml", *(f"{d}.yaml" for d in
                                  ("mnist", "fashion_mnist", "cifar10", "rafdb", "fer2013", "expw"))])
def test_dataset_configs_build_matching_model_and_data(name: str) -> None:
    cfg = _load(name)
    model_cls, data_cls = _class(cfg["model"]["class_path"]), _class(cfg["data"]["class_path"])
    assert model_cls is KernelClassifier
    model = model_cls(**cfg["model"]["init_args"])
    data = data_cls(**cfg["data"]["init_args"])
    net = model.net
    assert net.num_classes == data.num_classes
    # the datamodule's (cropped) images are what the network expects
    args = cfg["model"]["init_args"]
    size = getattr(data, "crop_size", None) or (32 if "cifar" in name else 28 if "mnist" in name else 8)
    chans = getattr(data, "channels", 3 if ("cifar" in name or name in ("rafdb.yaml", "expw.yaml", "paper.yaml")) else 1)
    assert args.get("input_size", size) == size and args.get("in_chans", chans) == chans
    meta = net.to("meta")
    assert meta(torch.zeros(2, chans, size, size, device="meta")).shape == (2, data.num_classes)
    if name == "paper.yaml":
        assert args["fc_kernel"] == "poly" and "RAFDB" in cfg["data"]["class_path"]


@pytest.mark.parametrize("variant", grid.variants())
def test_variants_change_only_their_layer_type(variant: str) -> None:
    cfg = _load("tiny.yaml", f"variants/{variant}.yaml")
    net = KernelClassifier(**cfg["model"]["init_args"]).net
    kinds = {
        "conv": {m.kfn.kind for m in net.modules() if isinstance(m, KernelConv2d)},
        "pool": {m.kfn.kind for m in net.modules() if isinstance(m, KernelPool2d)} or {"plain"},
        "fc": {m.kfn.kind for m in net.hidden.modules() if isinstance(m, KernelLinear)},
    }
    kernelized = {k for k, v in kinds.items() if v - {"linear", "plain"}}
    expected = {"fc": set(), "kdl": {"fc"}, "conv": {"conv"}, "pool": {"pool"}}[variant.split("_")[0]]
    if variant in ("pool_avg", "pool_kernel_linear"):  # linear-type pools: a different pool, no non-linear kernel
        expected = set()
    assert kernelized == expected, kinds


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_grid_runs_zoo_fit_and_writes_table(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    out = tmp_path / "results.md"
    args = ["--datasets", "digits", "--variants", "kdl_poly3", "--seeds", "0", "1", "--root", str(tmp_path / "runs"),
            "--out", str(out), "--trainer.max_epochs", "2"]
    grid.main(args)
    table = out.read_text().splitlines()
    assert table[0].startswith("| dataset | variant | seeds | test_acc") and len(table) == 3
    cells = table[2].split("|")
    assert cells[2].strip() == "kdl_poly3" and cells[3].strip() == "2"
    mean, std = (float(v) for v in cells[4].split("±"))
    assert 0.3 < mean <= 1.0 and std >= 0.0
    # a second call reuses the finished runs instead of training again
    monkeypatch.setattr(grid.subprocess, "run", lambda *a, **k: (_ for _ in ()).throw(AssertionError("re-ran")))
    grid.main(args)


def _tiny_copy(name: str, root: Path) -> str:
    """Write a few samples in the dataset's distributed format under ``root``; return the config's data_dir."""
    import gzip
    import pickle
    import struct

    import numpy as np
    from PIL import Image

    rng = np.random.default_rng(0)
    if name in ("mnist", "fashion_mnist"):
        for split, n in (("train", 12), ("t10k", 4)):
            for kind, arr in (("images-idx3", rng.integers(0, 256, (n, 28, 28))), ("labels-idx1", np.arange(n) % 10)):
                head = struct.pack(">BBBB", 0, 0, 8, arr.ndim) + b"".join(struct.pack(">I", d) for d in arr.shape)
                (root / f"{split}-{kind}-ubyte.gz").write_bytes(gzip.compress(head + arr.astype(np.uint8).tobytes()))
        return str(root)
    if name == "cifar10":
        for f, n in [*((f"data_batch_{i}", 4) for i in range(1, 6)), ("test_batch", 4)]:
            with open(root / f, "wb") as fh:
                pickle.dump({b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8), b"labels": [1, 2, 3, 4]}, fh)
        return str(root)
    if name == "fer2013":
        lines = ["emotion,pixels,Usage"] + [f"{i % 7},{' '.join(['9'] * 2304)},{u}" for u in
                                            ("Training", "PublicTest", "PrivateTest") for i in range(4)]
        (root / "fer2013.csv").write_text("\n".join(lines))
        return str(root)
    if name in ("rafdb", "paper"):
        (root / "EmoLabel").mkdir()
        (root / "Image" / "aligned").mkdir(parents=True)
        names = [f"{s}_{i:05d}" for s in ("train", "test") for i in range(1, 5)]
        for n in names:
            Image.fromarray(rng.integers(0, 256, (100, 100, 3), dtype=np.uint8)).save(
                root / "Image" / "aligned" / f"{n}_aligned.jpg")
        (root / "EmoLabel" / "list_patition_label.txt").write_text(
            "\n".join(f"{n}.jpg {i % 7 + 1}" for i, n in enumerate(names)))
        return str(root)
    (root / "label").mkdir()
    (root / "image" / "origin").mkdir(parents=True)
    Image.fromarray(rng.integers(0, 256, (120, 160, 3), dtype=np.uint8)).save(root / "image" / "origin" / "a.jpg")
    (root / "label" / "label.lst").write_text("\n".join(f"a.jpg {i} 10 20 90 80 50.0 {i % 7}" for i in range(70)))
    return str(root)


@pytest.mark.timeout(300)
@pytest.mark.parametrize("name", ["mnist", "fashion_mnist", "cifar10", "fer2013", "rafdb", "expw", "paper"])
def test_dataset_config_fits_one_batch_on_a_tiny_copy(name: str, tmp_path: Path) -> None:
    """Config + real-format reader + device-side augmentation + network + optimiser/schedule run together."""
    import lightning.pytorch as pl

    torch.set_num_threads(1)
    cfg = _load(f"{name}.yaml")
    data_args = {**cfg["data"]["init_args"], "data_dir": _tiny_copy(name, tmp_path), "batch_size": 2,
                 "num_workers": 0}
    if "val_size" in data_args and name in ("mnist", "fashion_mnist", "cifar10"):
        data_args["val_size"] = 4
    data = _class(cfg["data"]["class_path"])(**data_args)
    model = KernelClassifier(**cfg["model"]["init_args"])
    trainer = pl.Trainer(fast_dev_run=1, accelerator="cpu", logger=False, enable_progress_bar=False,
                         enable_model_summary=False, max_epochs=cfg["trainer"]["max_epochs"])
    trainer.fit(model, datamodule=data)
    trainer.test(model, datamodule=data, verbose=False)
    assert torch.isfinite(trainer.callback_metrics["test/loss"]) and "test/mean_class_acc" in trainer.callback_metrics
