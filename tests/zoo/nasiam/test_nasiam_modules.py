"""NASiam Lightning modules: the bilevel step's parameter split and cadence, the predictor's fixed lr, the two-step
``zoo fit`` (search, then pre-train the derived head), W&B media, and checkpoint loading."""
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch

from zoo.nas.data import DigitsNASDataModule
from zoo.nasiam.module import NASiamModule
from zoo.nasiam.search import NASiamSearchModule

SMALL = dict(backbone="digits_convnet", in_chans=1, mean=[0.3], std=[0.4], width=8, dim=16, pred_dim=8,
             hidden_dim=8, proj_layers=3, pred_layers=2, queue_size=64, views="digits", lr=0.05)


def _fit(module, data, epochs=1, batches=3, **kw):
    trainer = pl.Trainer(max_epochs=epochs, limit_train_batches=batches, limit_val_batches=0, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False, **kw)
    trainer.fit(module, data)
    return trainer


@pytest.mark.parametrize("framework", ["simsiam", "moco", "simclr"])
def test_search_steps_update_alpha_only_with_the_arch_optimizer(framework, tmp_path, monkeypatch):
    pl.seed_everything(0)
    module = NASiamSearchModule(framework=framework, **SMALL, arch_lr=0.05)
    opt_w, opt_a = module.configure_optimizers()[0]
    arch_ids = {id(p) for p in module.arch_parameters()}
    assert {id(p) for g in opt_a.param_groups for p in g["params"]} == arch_ids
    assert arch_ids.isdisjoint({id(p) for g in opt_w.param_groups for p in g["params"]})
    before = [a.detach().clone() for a in module.arch_parameters()]
    weights = [p for g in opt_w.param_groups for p in g["params"] if p.requires_grad]
    moved = {"arch_step": [], "weight_step": []}

    def watch(name, step, watched):  # which parameter set each step changes
        def wrapped(*args):
            snap = [p.detach().clone() for p in watched]
            out = step(*args)
            moved[name].append(any(not torch.equal(p, s) for p, s in zip(watched, snap)))
            return out
        return wrapped

    monkeypatch.setattr(module, "arch_step", watch("arch_step", module.arch_step, weights))
    monkeypatch.setattr(module, "weight_step", watch("weight_step", module.weight_step, module.arch_parameters()))
    _fit(module, DigitsNASDataModule(batch_size=32, search=True, corrupted=False, channels=1), default_root_dir=tmp_path)
    assert moved == {"arch_step": [False] * 3, "weight_step": [False] * 3}  # alpha step: weights fixed, and back
    assert all((a - b).abs().max() > 1e-4 for a, b in zip(module.arch_parameters(), before))
    assert module.genotype().projector.ops and len(module.weight_history) == 1
    if framework == "moco":
        assert int(module.net.queue_ptr) == (3 * 2 * 2 * 32) % 64  # both halves' steps enqueue both views' keys


def test_reference_simclr_cadence_takes_one_alpha_step_per_epoch(tmp_path, monkeypatch):
    module = NASiamSearchModule(framework="simclr", **{**SMALL, "lr": 1e-3}, arch_every="epoch", optimizer="adam")
    calls = []
    original = module.arch_step
    monkeypatch.setattr(module, "arch_step", lambda t, v: (calls.append(1), original(t, v)))
    _fit(module, DigitsNASDataModule(batch_size=32, search=True, corrupted=False, channels=1), epochs=2, batches=4,
         default_root_dir=tmp_path)
    assert len(calls) == 2


def test_fixed_predictor_lr_and_cosine_for_the_rest(tmp_path):
    module = NASiamModule(framework="simsiam", **{k: v for k, v in SMALL.items() if k != "pred_layers"})
    trainer = _fit(module, DigitsNASDataModule(batch_size=64, search=False, corrupted=False, channels=1), epochs=3,
                   batches=2, default_root_dir=tmp_path)
    groups = trainer.optimizers[0].param_groups
    pred_ids = {id(p) for p in module.net.predictor.parameters()}
    fixed = [g for g in groups if g["fix_lr"]]
    assert len(fixed) == 1 and {id(p) for p in fixed[0]["params"]} == pred_ids and fixed[0]["lr"] == 0.05
    rest = next(g for g in groups if not g["fix_lr"])
    assert rest["lr"] == pytest.approx(0.05 * 0.5 * (1 + torch.cos(torch.tensor(torch.pi * 3 / 3)).item()))


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_two_step_zoo_fit_search_then_pretrain_with_media_and_checkpoints(tmp_path):
    from conftest import last_metric, run_zoo

    import zoo
    from zoo.core.wandb_records import read_run
    from zoo.nasiam import HeadGenotype, SiameseNet

    search, pre = tmp_path / "search", tmp_path / "pre"
    fast = ["--trainer.max_epochs", "2", "--trainer.limit_train_batches", "3", "--trainer.check_val_every_n_epoch", "1"]
    run_zoo(["fit", "--config", "configs/nasiam/tiny_search.yaml", "--trainer.default_root_dir", str(search), *fast],
            threads=1, timeout=300)
    geno_file = search / "genotypes" / "genotype.json"
    geno = HeadGenotype.load(geno_file)
    assert len(geno.projector.ops) == 3 and len(geno.predictor.ops) == 2
    run = read_run(next(search.rglob("*.wandb")))
    keys = set().union(*(row.keys() for row in run["history"]))
    assert {"arch/op_weights_heatmap/_type", "arch/derived_head/_type", "val/knn_acc", "train/z_std"} <= keys
    assert "arch/projector/entropy_l2" in keys and "arch/predictor/entropy_l1" in keys
    assert isinstance(zoo.load(str(search / "checkpoints" / "last.ckpt")), SiameseNet)

    run_zoo(["fit", "--config", "configs/nasiam/tiny.yaml", "--model.init_args.head", str(geno_file),
             "--trainer.default_root_dir", str(pre), *fast], threads=1, timeout=300)
    ckpt = pre / "checkpoints" / "last.ckpt"
    module = NASiamModule.load_from_checkpoint(ckpt, weights_only=True)
    assert module.hparams.head == geno.to_dict()  # the checkpoint carries the head, not the path
    net = zoo.load(str(ckpt))
    assert isinstance(net, SiameseNet) and net.projector.chain.ops == geno.projector.ops
    rows = read_run(next(pre.rglob("*.wandb")))["history"]
    knn = [r["val/knn_acc"] for r in rows if "val/knn_acc" in r]
    tested = [r["test/knn_acc"] for r in rows if "test/knn_acc" in r]
    assert len(knn) == 2 and len(tested) == 1 and 0.1 < tested[0] <= 1.0

    # linear evaluation reads the run folder's LAST checkpoint
    lin = tmp_path / "linear"
    run_zoo(["fit", "--config", "configs/nasiam/tiny_linear.yaml", "--model.init_args.source", str(pre),
             "--trainer.default_root_dir", str(lin), "--trainer.max_epochs", "10"], threads=1, timeout=300)
    from zoo.core.ssl_eval import LinearEvalModule

    probe = LinearEvalModule.load_from_checkpoint(lin / "checkpoints" / "last.ckpt", weights_only=True)
    torch.testing.assert_close(probe.backbone.state_dict()["backbone.trunk.0.weight"],
                               module.net.state_dict()["backbone.trunk.0.weight"])
    assert last_metric(lin, "test/acc") > 0.3  # ten classes (chance 0.1); features of a 6-step pre-training


def test_cifar_files_to_two_kornia_views_with_a_resnet18_moco(tmp_path, monkeypatch):
    """CIFAR10DataModule overrides on_after_batch_transfer, so Lightning skips the module's: the views are then
    made in training_step (still on the accelerator)."""
    from datamodules.cifar import CIFAR10DataModule

    data = CIFAR10DataModule(str(_cifar10_files(tmp_path)), batch_size=8, num_workers=0, val_size=0, augment=False)
    module = NASiamModule(framework="moco", backbone="resnet18", dim=32, queue_size=64, head="moco_cifar10_resnet18",
                          views="cifar", lr=0.06)
    seen = []
    original = module.make_views
    monkeypatch.setattr(module, "make_views", lambda x: (seen.append(tuple(x.shape)), original(x))[1])
    _fit(module, data, batches=2, default_root_dir=tmp_path)
    assert seen == [(8, 3, 32, 32)] * 2 and int(module.net.queue_ptr) == 2 * 2 * 8


def _cifar10_files(root: Path) -> Path:
    """data_batch_1..5 and test_batch in the python-pickle layout of CIFAR-10 (4 images each)."""
    import pickle

    import numpy as np

    rng, folder = np.random.default_rng(0), root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name in [*(f"data_batch_{i}" for i in range(1, 6)), "test_batch"]:
        obj = {b"labels": rng.integers(0, 10, 4).tolist(), b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8)}
        (folder / name).write_bytes(pickle.dumps(obj))
    return folder


def test_search_on_cifar_files_through_the_search_split(tmp_path):
    """SearchSplitDataModule (which also overrides the batch hook) over CIFAR files: both halves get two views."""
    from datamodules.cifar import CIFAR10DataModule
    from zoo.nas.data import SearchSplitDataModule

    base = CIFAR10DataModule(str(_cifar10_files(tmp_path)), batch_size=4, num_workers=0, val_size=0, augment=False)
    module = NASiamSearchModule(framework="simsiam", backbone="digits_convnet", width=8, dim=16, pred_dim=8,
                                proj_layers=2, pred_layers=2, views="cifar", lr=0.05)
    before = [a.detach().clone() for a in module.arch_parameters()]
    _fit(module, SearchSplitDataModule(base, fraction=0.5), batches=2, default_root_dir=tmp_path)
    assert all((a - b).abs().max() > 0 for a, b in zip(module.arch_parameters(), before))
