"""Pretrained loading: registry, sha256-checked downloads over real HTTP, safe unpickling, hubconf."""
from __future__ import annotations

import functools
import http.server
import pickle
import shutil
import threading
from pathlib import Path

import pytest
import torch

import zoo
from zoo import hub
from zoo.core.classifier import ClassifierModule
from zoo.quickstart import SmallCNN


@pytest.fixture
def zoo_home(tmp_path, monkeypatch) -> Path:
    monkeypatch.setenv("ZOO_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def http_dir(tmp_path):
    """Serve ``tmp_path/www`` on 127.0.0.1; yields (folder, base URL, request log)."""
    root = tmp_path / "www"
    root.mkdir()
    requests: list[str] = []

    class Handler(http.server.SimpleHTTPRequestHandler):
        def log_message(self, fmt, *args):
            requests.append(self.path)

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield root, f"http://127.0.0.1:{server.server_address[1]}", requests
    finally:
        server.shutdown()
        server.server_close()


def _weights_file(path: Path, width: int = 8) -> tuple[SmallCNN, str]:
    torch.manual_seed(0)
    net = SmallCNN(width=width).eval()
    return net, hub.save_weights(net, path, arch="quickstart_cnn", arch_kwargs={"width": width}, metadata={"k": 1})


def test_list_and_create_models():
    assert "quickstart_cnn" in zoo.list_models()
    assert "quickstart_cnn" in zoo.list_models("quick*", pretrained=True)
    net = zoo.create_model("quickstart_cnn", width=8)
    assert net(torch.rand(2, 1, 8, 8)).shape == (2, 10)


def test_hyphenated_names_resolve_to_the_registered_underscore_names():
    net = zoo.load("quickstart-cnn")  # the spelling the issues use (e.g. "darts-digits")
    ref = zoo.load("quickstart_cnn")
    for a, b in zip(net.state_dict().values(), ref.state_dict().values()):
        assert torch.equal(a, b)
    with pytest.raises(KeyError, match="unknown model 'quickstart-cn'"):
        zoo.create_model("quickstart-cn")


def test_unknown_name_suggests_close_matches():
    with pytest.raises(KeyError, match="Did you mean: quickstart_cnn"):
        zoo.create_model("quickstart_cn")


def test_shipped_quickstart_weights_are_accurate_on_the_test_split():
    from datamodules.digits import DigitsDataModule

    net = zoo.load("quickstart_cnn")
    assert not net.training and net.pretrained_metadata["dataset"].startswith("sklearn digits")
    dm = DigitsDataModule()
    dm.setup()
    x, y = dm.datasets["test"].tensors
    with torch.no_grad():
        acc = (net(x).argmax(1) == y).float().mean().item()
    assert acc >= 0.95
    assert acc == pytest.approx(zoo.get_entry("quickstart_cnn").weights.metadata["test/acc"], abs=0.01)


def test_pretrained_conflicting_kwargs_fail_loudly():
    with pytest.raises(ValueError, match="conflict"):
        zoo.create_model("quickstart_cnn", pretrained=True, width=8)


def test_download_is_checked_cached_and_loaded(zoo_home, http_dir):
    root, base, requests = http_dir
    net, sha = _weights_file(root / "tiny.pt")
    loaded = zoo.load(f"{base}/tiny.pt", sha256=sha)
    x = torch.rand(3, 1, 8, 8)
    torch.testing.assert_close(loaded(x), net(x))
    assert (zoo_home / "weights" / "tiny.pt").is_file()
    zoo.load(f"{base}/tiny.pt", sha256=sha)
    assert requests.count("/tiny.pt") == 1, "second load must come from the cache"


def test_hash_in_file_name_is_accepted_and_missing_hash_refused(zoo_home, http_dir):
    root, base, _ = http_dir
    _, sha = _weights_file(root / "tmp.pt")
    shutil.move(root / "tmp.pt", root / f"tiny-{sha[:10]}.pt")
    assert isinstance(zoo.load(f"{base}/tiny-{sha[:10]}.pt"), SmallCNN)
    with pytest.raises(ValueError, match="without a checksum"):
        zoo.load(f"{base}/other.pt")


def test_hash_mismatch_is_refused_and_the_file_not_kept(zoo_home, http_dir):
    root, base, _ = http_dir
    _weights_file(root / "tiny.pt")
    with pytest.raises(hub.HashMismatchError, match="expected 00"):
        zoo.load(f"{base}/tiny.pt", sha256="00" * 32)
    assert not any((zoo_home / "weights").iterdir())


def test_unreachable_url_says_where_to_put_the_file(zoo_home):
    with pytest.raises(hub.WeightsError, match="put it at"):
        zoo.load("http://127.0.0.1:9/none.pt", sha256="0" * 64)


def test_truncated_file_is_reported_as_corrupt(tmp_path):
    path = tmp_path / "w.pt"
    _weights_file(path)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(hub.CorruptCheckpointError, match="truncated or corrupt"):
        zoo.load(str(path))


class _Payload:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_pickled_code_is_refused_without_running(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"arch": "quickstart_cnn", "state_dict": {}, "x": _Payload()}, path)
    with pytest.raises(hub.UntrustedCheckpointError, match="not tensors or plain containers"):
        zoo.load(str(path))
    assert "must never run" not in capsys.readouterr().out


def test_not_a_weights_file_names_the_expected_keys(tmp_path):
    path = tmp_path / "sd.pt"
    torch.save(SmallCNN().state_dict(), path)
    with pytest.raises(hub.CorruptCheckpointError, match="expected keys 'arch'"):
        zoo.load(str(path))


def test_missing_file_is_a_file_not_found_error(tmp_path):
    with pytest.raises(FileNotFoundError, match="no checkpoint"):
        zoo.load(str(tmp_path / "nope.pt"))


def test_torch_hub_local_entry_points():
    root = Path(__file__).resolve().parents[2]
    import importlib.util

    spec = importlib.util.spec_from_file_location("hubconf_under_test", root / "hubconf.py")
    hubconf = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(hubconf)
    assert set(zoo.list_models()) <= {n for n in dir(hubconf) if callable(getattr(hubconf, n)) and not n.startswith("_")}
    net = torch.hub.load(str(root), "quickstart_cnn", source="local", trust_repo=True)
    ref = zoo.load("quickstart_cnn")
    x = torch.rand(2, 1, 8, 8)
    torch.testing.assert_close(net(x), ref(x))
    assert net.pretrained_metadata["metrics"]["test/acc"] > 0.9


def test_torch_hub_model_without_weights_builds_untrained_and_refuses_pretrained():
    root = str(Path(__file__).resolve().parents[2])
    assert zoo.get_entry("darts_v2_cifar10").weights is None
    net = torch.hub.load(root, "darts_v2_cifar10", source="local", trust_repo=True, C=4, layers=3)
    assert net(torch.rand(1, 3, 32, 32)).shape == (1, 10)
    with pytest.raises(ValueError, match=r"darts_v2_cifar10 has no pretrained weights.*quickstart_cnn.*configs/darts/paper_eval.yaml"):
        torch.hub.load(root, "darts_v2_cifar10", source="local", trust_repo=True, pretrained=True)


@pytest.mark.parametrize("name", zoo.list_models())
def test_every_registered_model_round_trips_load_from_checkpoint(name, tmp_path):
    import importlib

    import lightning.pytorch as pl

    entry = zoo.get_entry(name)
    if entry.module is None:
        pytest.fail(f"{name} registers no LightningModule")
    module_path, _, cls_name = entry.module.rpartition(".")
    cls = getattr(importlib.import_module(module_path), cls_name)
    torch.manual_seed(0)
    module = cls(**entry.module_kwargs)
    trainer = pl.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, accelerator="cpu")
    trainer.strategy.connect(module)
    path = tmp_path / "m.ckpt"
    trainer.save_checkpoint(path)
    restored = cls.load_from_checkpoint(path, weights_only=True)
    if isinstance(module, ClassifierModule):  # a plain-Trainer checkpoint loads through zoo.load too
        assert type(zoo.load(str(path))) is type(module.net)
    assert dict(restored.hparams) == dict(module.hparams)
    expected = module.state_dict()
    got = restored.state_dict()
    assert expected.keys() == got.keys()
    for key in expected:
        torch.testing.assert_close(got[key], expected[key], msg=key)


def test_zoo_load_accepts_a_zoo_fit_checkpoint(quickstart_run):
    net = zoo.load(str(quickstart_run / "checkpoints" / "last.ckpt"))
    assert isinstance(net, SmallCNN) and not net.training


def test_lightning_checkpoint_with_foreign_class_path_is_refused(tmp_path):
    path = tmp_path / "x.ckpt"
    torch.save({"state_dict": {}, "hyper_parameters": {"_class_path": "os.system"}}, path)
    with pytest.raises(hub.CorruptCheckpointError, match="without a zoo class path"):
        zoo.load(str(path))
