"""The ``zoo`` command: the quickstart job, config composition, errors, W&B, DDP and resume."""
from __future__ import annotations

import signal
import subprocess
import sys
import time

import pytest
import torch
import yaml

from conftest import QUICKSTART, ROOT, last_metric, run_zoo, subprocess_env, zoo_command


@pytest.mark.slow
def test_quickstart_reaches_accuracy_and_writes_checkpoints(quickstart_run):
    assert last_metric(quickstart_run / "csv", "test/acc") >= 0.95
    ckpts = quickstart_run / "checkpoints"
    assert (ckpts / "last.ckpt").is_file()
    best = [p for p in ckpts.glob("best-*.ckpt")]
    assert len(best) == 1
    state = torch.load(best[0], weights_only=True)
    assert state["hyper_parameters"]["_class_path"] == "zoo.quickstart.QuickstartClassifier"


@pytest.mark.slow
def test_wandb_offline_run_holds_the_logged_metrics(quickstart_run):
    from zoo.core.wandb_records import read_run

    runs = sorted((quickstart_run / "wandb").glob("offline-run-*"))
    assert len(runs) == 1, "one offline W&B run expected"
    run = read_run(runs[0])
    logged = {k for row in run["history"] for k in row}
    assert {"train/loss_step", "val/acc", "test/acc", "model/params", "model/macs"} <= logged
    assert run["summary"]["test/acc"] == pytest.approx(last_metric(quickstart_run / "csv", "test/acc"), abs=1e-6)
    assert run["config"]["width"] == 32 and run["config"]["model/params"] > 0


def test_print_config_composes_shared_trainer_and_overrides():
    proc = run_zoo(["fit", "--config", "configs/trainer/ddp_cpu.yaml", "--config", str(QUICKSTART),
                    "--model.init_args.width", "16", "--print_config"])
    cfg = yaml.safe_load(proc.stdout)
    assert cfg["trainer"]["strategy"] == "ddp" and cfg["trainer"]["devices"] == 2
    assert cfg["model"]["class_path"] == "zoo.quickstart.QuickstartClassifier"
    assert cfg["model"]["init_args"]["width"] == 16
    assert cfg["checkpoint"]["monitor"] == "val/acc" and cfg["checkpoint"]["save_last"] is True


@pytest.mark.parametrize(
    "bad, expected",
    [
        (["--model.init_args.widht", "3"], "widht"),
        (["--model", "zoo.quickstart.NoSuchModel"], "NoSuchModel"),
        (["--trainer.max_epoch", "3"], "max_epoch"),
    ],
)
def test_bad_config_keys_fail_with_a_message_not_a_traceback(bad, expected):
    proc = run_zoo(["fit", "--config", str(QUICKSTART), *bad, "--print_config"], check=False)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert "error" in proc.stderr.lower() and expected in proc.stderr


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_unknown_key_in_a_config_file_is_reported(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("model:\n  init_args:\n    widht: 3\n")
    proc = run_zoo(["fit", "--config", str(QUICKSTART), "--config", str(bad), "--print_config"], check=False)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr and "widht" in proc.stderr


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_ddp_two_cpu_processes_matches_single_process(quickstart_run, tmp_path):
    run_zoo(["fit", "--config", str(QUICKSTART), "--trainer.accelerator", "cpu", "--trainer.devices", "2",
             "--trainer.strategy", "ddp", "--trainer.default_root_dir", str(tmp_path)], threads=1, timeout=600)
    single = last_metric(quickstart_run / "csv", "test/acc")
    ddp = last_metric(tmp_path / "csv", "test/acc")
    # 2 processes see half the steps per epoch at twice the global batch: allow 4 points.
    assert ddp >= 0.93 and abs(ddp - single) <= 0.04, (ddp, single)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_killed_fit_resumes_from_last_checkpoint(quickstart_run, tmp_path):
    args = ["fit", "--config", str(QUICKSTART), "--trainer.default_root_dir", str(tmp_path)]
    last = tmp_path / "checkpoints" / "last.ckpt"
    proc = subprocess.Popen([*zoo_command(), *args], cwd=ROOT, env=subprocess_env(),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.time() + 300
        while time.time() < deadline and proc.poll() is None:
            if last.exists():
                try:
                    if torch.load(last, weights_only=True)["epoch"] >= 1:
                        break
                except Exception:  # being written
                    pass
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait()
    assert proc.returncode == -signal.SIGKILL, "the run finished before it could be killed"
    killed_at = torch.load(last, weights_only=True)
    max_epochs = yaml.safe_load(QUICKSTART.read_text())["trainer"]["max_epochs"]
    assert killed_at["epoch"] < max_epochs - 1

    run_zoo([*args, "--ckpt_path", "last"])
    resumed = torch.load(last, weights_only=True)
    full = torch.load(quickstart_run / "checkpoints" / "last.ckpt", weights_only=True)
    assert resumed["global_step"] == full["global_step"], "resumed run did not continue where it stopped"
    assert abs(last_metric(tmp_path / "csv", "test/acc") - last_metric(quickstart_run / "csv", "test/acc")) <= 0.03


@pytest.mark.slow
def test_validate_and_predict_subcommands_use_a_checkpoint(quickstart_run, tmp_path):
    ckpt = str(quickstart_run / "checkpoints" / "last.ckpt")
    common = ["--config", str(QUICKSTART), "--ckpt_path", ckpt, "--trainer.default_root_dir", str(tmp_path)]
    run_zoo(["validate", *common])
    assert last_metric(tmp_path / "csv", "val/acc") >= 0.95
    run_zoo(["predict", *common, "--trainer.logger", "false"])
    batches = torch.load(tmp_path / "predictions.pt", weights_only=True)
    probs = torch.cat(batches)
    from datamodules.digits import DigitsDataModule

    dm = DigitsDataModule()
    dm.setup()
    x, y = dm.datasets["test"].tensors
    assert probs.shape == (len(y), 10)
    torch.testing.assert_close(probs.sum(1), torch.ones(len(y)))
    assert (probs.argmax(1) == y).float().mean() >= 0.95


def test_help_list_and_info_answer_without_importing_torch_or_lightning():
    code = ("import sys, contextlib, io\nfrom zoo.commands import main\n"
            "with contextlib.redirect_stdout(io.StringIO()):\n"
            "    main(['--help']); main(['list']); main(['info', 'sspnet'])\n"
            "print(sorted(m for m in ('torch', 'lightning', 'wandb') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert proc.stdout.strip() == "[]", proc.stdout


def test_help_names_the_subcommands_configs_and_models():
    out = run_zoo(["--help"]).stdout
    for word in ("fit", "test", "list", "info NAME", "export", "configs/quickstart.yaml", "quickstart_cnn", "sspnet"):
        assert word in out


def test_zoo_list_is_the_registry():
    import zoo
    from zoo.core.profiling import count_params

    lines = run_zoo(["list"]).stdout.splitlines()
    rows = {line.split()[0]: line.split() for line in lines[2:] if line.strip() and not line.startswith(" ")}
    assert set(zoo.list_models()) <= set(rows)
    for name in zoo.list_models():
        has_weights = zoo.get_entry(name).weights is not None
        assert (rows[name][-1] != "-") == has_weights, rows[name]
    params = count_params(zoo.load("quickstart_cnn"))
    assert f"{params / 1e3:.3g}k" in rows["quickstart_cnn"]
    only = run_zoo(["list", "--pretrained"]).stdout
    assert "quickstart_cnn" in only and "darts_v2_cifar10" not in only


def test_zoo_info_prints_the_input_config_metrics_and_recipe():
    out = run_zoo(["info", "quickstart-cnn"]).stdout
    assert "(B, 1, 8, 8)" in out and "[0.0, 1.0]" in out and "test/acc 0.9944" in out
    assert "zoo fit --config configs/quickstart.yaml" in out
    bad = run_zoo(["info", "quickstart"], check=False)
    assert bad.returncode != 0 and "Did you mean: quickstart_cnn" in bad.stderr and "Traceback" not in bad.stderr


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_fit_console_is_quiet_but_keeps_the_run_summary(tmp_path):
    import os

    env = {k: v for k, v in subprocess_env(1).items() if not k.startswith("WANDB_")}
    proc = subprocess.run([*zoo_command(), "fit", "--config", str(QUICKSTART), "--trainer.max_epochs", "2",
                           "--trainer.default_root_dir", str(tmp_path)], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, env={**env, "WANDB_MODE": "offline", "WANDB_DIR": str(tmp_path)})
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = proc.stdout + proc.stderr
    for noise in ("Tip:", "litlogger", "Total FLOPs", "Run history", "Run summary", "anonymous setting", "LeafSpec",
                  "args parameter is intended", "Warning"):
        assert noise not in out, noise
    for kept in ("best checkpoint:", "last checkpoint:", "W&B run:", "CSVLogger logs:", "test/acc", "28,842 parameters"):
        assert kept in out, kept
    assert os.path.isfile(tmp_path / "checkpoints" / "last.ckpt")
