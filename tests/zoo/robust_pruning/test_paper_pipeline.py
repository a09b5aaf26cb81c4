"""The paper configs end to end on a tiny CIFAR-10 copy: dense PGD-AT -> MRS pruning + TRADES -> full attack suite."""
from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[3]
CFG = ROOT / "configs" / "robust_pruning"


def _cifar10(root: Path) -> Path:
    rng = np.random.default_rng(0)
    root.mkdir(parents=True)
    for name, n in [*[(f"data_batch_{i}", 12) for i in range(1, 6)], ("test_batch", 16)]:
        with open(root / name, "wb") as fh:
            pickle.dump({b"data": rng.integers(0, 256, (n, 3072), dtype=np.uint8),
                         b"labels": rng.integers(0, 10, n).tolist()}, fh)
    with open(root / "batches.meta", "wb") as fh:
        pickle.dump({b"label_names": [f"c{i}".encode() for i in range(10)]}, fh)
    return root


# both tests share one dense pre-training run (module fixture): keep them on one xdist worker
pytestmark = [pytest.mark.slow, pytest.mark.xdist_group("mrs_pipeline")]
SMALL = ["model.init_args.width=0.125", "model.init_args.train_steps=1", "trainer.max_epochs=1",
         "trainer.accelerator=cpu", "trainer.devices=1", "data.init_args.val_size=10", "data.init_args.num_workers=0",
         "data.init_args.batch_size=16"]


def _flags(sets: list[str]) -> list[str]:
    return [part for item in sets for part in ("--" + item.partition("=")[0], item.partition("=")[2])]


@pytest.fixture(scope="module")
def dense(tmp_path_factory) -> tuple[Path, Path]:
    """The tiny CIFAR-10 copy and one dense PGD-AT run of configs/robust_pruning/dense.yaml (ResNet-18, width 1/8)."""
    from tests.conftest import run_zoo

    tmp = tmp_path_factory.mktemp("mrs_dense")
    data = _cifar10(tmp / "cifar-10-batches-py")
    run = tmp / "dense"
    run_zoo(["fit", "--config", str(CFG / "dense.yaml"), *_flags(SMALL), "--data.init_args.data_dir", str(data),
             "--trainer.default_root_dir", str(run)], threads=1, timeout=280)
    return data, run / "checkpoints" / "last.ckpt"


@pytest.mark.timeout(600)
def test_dense_then_paper_config(tmp_path, dense):
    from tests.conftest import last_metric, run_zoo

    data, ckpt = dense
    run = tmp_path / "mrpf"
    run_zoo(["fit", "--config", str(CFG / "paper.yaml"), *_flags(SMALL), "--data.init_args.data_dir", str(data),
             "--trainer.default_root_dir", str(run), "--model.init_args.init_weights", str(ckpt)], threads=1, timeout=300)
    for name in ("fgsm", "pgd20", "cw30", "aa"):
        assert 0.0 <= last_metric(run / "csv", f"test/robust_acc_{name}") <= 1.0
    assert last_metric(run / "csv", "prune/param_sparsity") == pytest.approx(0.5, abs=0.01)
    history = (run / "pruning_history.json").read_text()
    assert '"scores"' in history and len(list((run / "mrs_cache").glob("mrs-*.json"))) == 1
    dense_state = torch.load(ckpt, weights_only=True)["state_dict"]
    pruned = torch.load(run / "checkpoints" / "last.ckpt", weights_only=True)
    assert pruned["hyper_parameters"]["structure"] and pruned["hyper_parameters"]["init_weights"] == str(ckpt)
    w_dense = dense_state["net.conv1.weight"]  # first conv is never pruned and starts from the dense weights
    assert pruned["state_dict"]["net.conv1.weight"].shape == w_dense.shape


@pytest.mark.timeout(600)
def test_sweep_fills_the_results_table(tmp_path, dense):
    """The sweep finds the dense checkpoint already in its root (as on a resumed grid), prunes and tabulates."""
    import shutil

    from zoo.robust_pruning import sweep

    data, ckpt = dense
    root = tmp_path / "runs"
    (root / "dense_cifar10_resnet18" / "checkpoints").mkdir(parents=True)
    shutil.copy(ckpt, root / "dense_cifar10_resnet18" / "checkpoints" / "last.ckpt")
    sweep.main(["--datasets", "cifar10", "--archs", "resnet18", "--sparsities", "0.7", "--policies", "mrs",
                "--criteria", "random", "--finetune", "natural", "--root", str(root),
                "--out", str(tmp_path / "results.md"), "--set", *SMALL, f"data.init_args.data_dir={data}",
                "--set-prune", "trainer.callbacks.0.init_args.ratio_policy.init_args.ascent_steps=2"])
    assert not (root / "configs" / "dense_cifar10_resnet18.yaml").exists()  # the existing dense run was reused
    row = (tmp_path / "results.md").read_text().splitlines()[2].split("|")
    cells = [c.strip() for c in row[1:-1]]
    assert cells[:6] == ["cifar10", "resnet18", "70%", "mrs", "random", "natural"]
    assert all(c != "-" for c in cells), cells  # clean, FGSM, PGD-20, CW-inf, AA, params, MACs all measured
