"""NAS data: corrupted digits, the seeded search split, the generic wrapper and ImageNet folders."""
import lightning.pytorch as pl
import pytest
import torch

from zoo.nas.data import DigitsNASDataModule, SearchSplitDataModule, corrupt_digits, search_split


def test_search_split_is_seeded_disjoint_and_half():
    a, b = search_split(1300, 0.5, seed=2)
    assert len(a) == len(b) == 650 and not set(a) & set(b) and set(a) | set(b) == set(range(1300))
    assert search_split(1300, 0.5, seed=2) == (a, b) and search_split(1300, 0.5, seed=3) != (a, b)
    with pytest.raises(ValueError, match="fraction"):
        search_split(10, 1.0)


def test_corruption_matches_the_spec_recipe():
    x = torch.rand(200, 1, 8, 8)
    y = corrupt_digits(x)
    assert torch.equal(y, corrupt_digits(x))  # fixed generator
    zero = float((y == 0).float().mean())
    assert 0.25 <= zero < 0.40  # 25 % dropped + the noise clamped at 0
    assert float(y.max()) <= 1.5 and float(y.min()) >= 0.0


def test_digits_nas_datamodule_sizes_and_batches():
    dm = DigitsNASDataModule(batch_size=64)
    dm.setup()
    assert [len(dm.data[k]) for k in ("train", "val", "test", "pool")] == [650, 650, 497, 1300]
    batch = next(iter(dm.train_dataloader()))
    batch = batch[0] if isinstance(batch, tuple) else batch
    assert batch["train"][0].shape == (64, 3, 8, 8) and batch["val"][1].shape == (64,)
    plain = DigitsNASDataModule(search=False, corrupted=False, channels=1, image_size=16)
    plain.setup()
    x, _ = next(iter(plain.train_dataloader()))
    assert x.shape[1:] == (1, 16, 16) and float(x.max()) <= 1.0


def test_search_split_wrapper_around_any_datamodule():
    from datamodules.digits import DigitsDataModule

    base = DigitsDataModule(batch_size=16, channels=3)
    dm = SearchSplitDataModule(base, seed=2)
    dm.setup()
    w, a = dm.halves
    n = len(base.datasets["train"])
    assert len(w) + len(a) == n and abs(len(w) - len(a)) <= 1
    assert not set(w.indices) & set(a.indices)
    it = iter(dm.train_dataloader())
    batch = next(it)
    batch = batch[0] if isinstance(batch, tuple) else batch
    assert set(batch) == {"train", "val"} and batch["train"][0].shape == (16, 3, 8, 8)
    assert len(dm.val_dataloader().dataset) == len(base.datasets["val"])


def _jpeg_tree(root, classes=("n01440764", "n01443537"), per_class=2):
    from PIL import Image

    for split in ("train", "val"):
        for k, wnid in enumerate(classes):
            folder = root / split / wnid
            folder.mkdir(parents=True)
            for i in range(per_class):
                Image.new("RGB", (40 + i, 30), color=(60 * k, 20 * i, 100)).save(folder / f"{wnid}_{i}.JPEG")


def test_imagenet_folder_layout(tmp_path):
    from datamodules.imagenet import ImageNetDataModule

    _jpeg_tree(tmp_path)
    dm = ImageNetDataModule(str(tmp_path), batch_size=2, num_workers=0, image_size=32, resize_size=36)
    dm.setup()
    assert dm.classes == ["n01440764", "n01443537"] and dm.num_classes == 2
    x, y = next(iter(dm.val_dataloader()))
    assert x.shape == (2, 3, 32, 32) and 0.0 <= float(x.min()) and float(x.max()) <= 1.0 and y.tolist() == [0, 0]
    x, _ = next(iter(dm.train_dataloader()))
    assert x.shape == (2, 3, 32, 32)


def test_imagenet_missing_data_names_the_layout(tmp_path):
    from datamodules.imagenet import ImageNetDataModule

    with pytest.raises(FileNotFoundError, match=r"train/<wnid>/\*\.JPEG"):
        ImageNetDataModule(str(tmp_path)).setup()
    (tmp_path / "train").mkdir()
    (tmp_path / "val").mkdir()
    with pytest.raises(FileNotFoundError, match="no class sub-folders"):
        ImageNetDataModule(str(tmp_path)).setup()


def _fake_cifar10(root, n=8, n_test=5):
    import pickle

    import numpy as np

    rng = np.random.default_rng(0)
    folder = root / "cifar-10-batches-py"
    folder.mkdir(parents=True)
    for name, k in [*[(f"data_batch_{i}", n) for i in range(1, 6)], ("test_batch", n_test)]:
        with open(folder / name, "wb") as fh:
            pickle.dump({b"labels": rng.integers(0, 10, k).tolist(),
                         b"data": rng.integers(0, 256, size=(k, 3072), dtype=np.uint8)}, fh)
    return folder


@pytest.mark.timeout(300)
def test_search_split_over_cifar_files_augments_both_halves_and_trains(tmp_path):
    from types import SimpleNamespace

    from datamodules.cifar import CIFAR10DataModule
    from zoo.nas.search import BilevelSearchModule

    base = CIFAR10DataModule(str(_fake_cifar10(tmp_path)), batch_size=4, num_workers=0, val_size=0)
    dm = SearchSplitDataModule(base, seed=2)
    dm.setup()
    assert [len(h) for h in dm.halves] == [20, 20]
    batch = next(iter(dm.train_dataloader()))
    batch = batch[0] if isinstance(batch, tuple) else batch
    dm.trainer = SimpleNamespace(training=True)
    torch.manual_seed(0)
    out = dm.on_after_batch_transfer(batch, 0)
    assert set(out) == {"train", "val"}
    assert not torch.equal(out["train"][0], batch["train"][0]) and torch.equal(out["val"][1], batch["val"][1])
    dm.trainer = None
    pl.seed_everything(0, verbose=False)
    m = BilevelSearchModule(C=4, layers=3, steps=2, reductions=[1, 2], primitives=["skip_connect", "sep_conv_3x3"])
    trainer = pl.Trainer(max_epochs=1, limit_train_batches=2, limit_val_batches=1, logger=False,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False)
    trainer.fit(m, dm)
    assert torch.isfinite(trainer.callback_metrics["train/loss"])


def _wrappable(tmp_path, name: str, augment: bool):
    """Each datamodule with an ``augment`` switch that a search config may wrap, on a tiny copy of its real format."""
    if name == "cifar10":
        from datamodules.cifar import CIFAR10DataModule
        from tests.datamodules.test_cifar import make_cifar10

        root = tmp_path / "c10"
        folder = root / "cifar-10-batches-py" if root.exists() else make_cifar10(root)
        return CIFAR10DataModule(str(folder), batch_size=4, num_workers=0, val_size=0, augment=augment)
    if name == "cifar100":
        from datamodules.cifar import CIFAR100DataModule
        from tests.datamodules.test_cifar import make_cifar100

        root = tmp_path / "c100"
        folder = root / "cifar-100-python" if root.exists() else make_cifar100(root)
        return CIFAR100DataModule(str(folder), batch_size=4, num_workers=0, val_size=0, augment=augment)
    if name == "svhn":
        from datamodules.svhn import SVHNDataModule
        from tests.datamodules.test_svhn import _write

        if not (tmp_path / "train_32x32.mat").exists():
            _write(tmp_path / "train_32x32.mat", 16, 0), _write(tmp_path / "test_32x32.mat", 6, 1)
        return SVHNDataModule(str(tmp_path), batch_size=4, num_workers=0, val_size=0, augment=augment)
    if name == "tiny_imagenet":
        from datamodules.tiny_imagenet import TinyImageNetDataModule
        from tests.datamodules.test_tiny_imagenet import _make

        root = tmp_path / "tin" if (tmp_path / "tin").exists() else _make(tmp_path / "tin", per_class=4)
        return TinyImageNetDataModule(str(root), batch_size=4, num_workers=0, val_size=0, augment=augment)
    if name == "fer2013":
        from datamodules.fer import FER2013DataModule
        from tests.datamodules.test_fer import write_fer_csv

        if not (tmp_path / "fer2013.csv").exists():
            write_fer_csv(tmp_path / "fer2013.csv", n_per_usage=8)
        return FER2013DataModule(str(tmp_path), batch_size=4, num_workers=0, crop_size=48, augment=augment)  # no eval crop
    raise KeyError(name)


@pytest.mark.parametrize("name", ["cifar10", "cifar100", "svhn", "tiny_imagenet", "fer2013"])
def test_search_split_honours_the_wrapped_augment_switch(tmp_path, name):
    from types import SimpleNamespace

    changed = {}
    for augment in (False, True):
        dm = SearchSplitDataModule(_wrappable(tmp_path, name, augment), seed=0)
        dm.setup()
        torch.manual_seed(0)
        batch = next(iter(dm.train_dataloader()))
        batch = batch[0] if isinstance(batch, tuple) else batch
        before = {k: v[0].clone() for k, v in batch.items()}
        dm.trainer = SimpleNamespace(training=True, testing=False)
        torch.manual_seed(1)
        out = dm.on_after_batch_transfer(batch, 0)
        assert set(out) == {"train", "val"}
        changed[augment] = [not torch.equal(out[k][0], before[k]) for k in ("train", "val")]
    assert changed[False] == [False, False], f"{name}: augment=false still changed the batch"
    assert changed[True] == [True, True], f"{name}: augment=true left a half unchanged"  # the check can fail


def test_search_split_under_the_cli_reads_the_wrapped_modules_own_arguments(tmp_path):
    """Through the CLI the nested datamodule saves its own arguments (val_size, augment), not the wrapper's."""
    from types import SimpleNamespace

    from lightning.pytorch import LightningDataModule, LightningModule

    from tests.conftest import ROOT
    from tests.datamodules.test_cifar import make_cifar10
    from zoo.cli import ZooCLI

    folder = make_cifar10(tmp_path)
    nested = "--data.init_args.datamodule.init_args."
    cli = ZooCLI(LightningModule, LightningDataModule, subclass_mode_model=True, subclass_mode_data=True, run=False,
                 args=["--config", str(ROOT / "configs/darts/paper.yaml"), "--trainer.accelerator", "cpu",
                       "--trainer.logger", "false", "--trainer.default_root_dir", str(tmp_path),
                       f"{nested}data_dir", str(folder), f"{nested}batch_size", "2", f"{nested}num_workers", "0",
                       f"{nested}augment", "false", "--model.init_args.C", "4", "--model.init_args.layers", "3"])
    dm = cli.datamodule
    assert isinstance(dm, SearchSplitDataModule)
    assert dm.base.hparams.val_size == 0 and dm.base.hparams.augment is False and "fraction" not in dm.base.hparams
    assert dm.hparams.fraction == 0.5 and dm.hparams.seed == 2
    dm.setup("fit")  # read hp.val_size here before the fix
    assert [len(h) for h in dm.halves] == [15, 15]
    batch = next(iter(dm.train_dataloader()))
    batch = batch[0] if isinstance(batch, tuple) else batch
    before = {k: v[0].clone() for k, v in batch.items()}
    dm.trainer = SimpleNamespace(training=True, testing=False)
    out = dm.on_after_batch_transfer(batch, 0)
    assert all(torch.equal(out[k][0], before[k]) for k in before)
