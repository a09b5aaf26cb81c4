"""What goes wrong under DDP, checked the same way for each LightningModule family (issue 13.3): a config's run on
2 CPU processes (gloo) through the zoo's CLI, validation included (a rank that skips a collective deadlocks it),
must end with identical weights on both ranks and test metrics reduced over the global test set, i.e. equal on both
ranks and equal to one process testing the same final weights on the whole test set."""
from __future__ import annotations

from pathlib import Path

import torch

from conftest import run_ddp_script

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = '''
import sys, torch
sys.path.insert(0, {root!r})
torch.set_num_threads(1)
from lightning.pytorch import LightningDataModule, LightningModule
from zoo.cli import ZooCLI
common = ["--config", {config!r}, "--trainer.accelerator", "cpu", "--trainer.logger", "false",
          "--trainer.enable_progress_bar", "false", "--trainer.enable_model_summary", "false",
          "--trainer.default_root_dir", {out!r}, "--trainer.max_epochs", "1", "--trainer.max_steps", {steps!r},
          "--trainer.limit_val_batches", "2", "--trainer.num_sanity_val_steps", "0", *{extra!r}]
def build(devices, strategy):
    return ZooCLI(LightningModule, LightningDataModule, subclass_mode_model=True, subclass_mode_data=True,
                  args=[*common, "--trainer.devices", str(devices), "--trainer.strategy", strategy], run=False,
                  save_config_callback=None)
cli = build(2, {strategy!r})
cli.trainer.fit(cli.model, datamodule=cli.datamodule)
res = cli.trainer.test(cli.model, datamodule=cli.datamodule, verbose=False)[0]
state = {{k: v.detach().clone() for k, v in cli.model.state_dict().items()}}
rank = cli.trainer.global_rank
torch.save({{"state": state, "test": res}}, {out!r} + f"/rank{{rank}}.pt")
if rank == 0:
    import torch.distributed as dist
    dist.destroy_process_group()
    one = build(1, "auto")
    one.model.load_state_dict(state)
    single = one.trainer.test(one.model, datamodule=one.datamodule, verbose=False)[0]
    torch.save(single, {out!r} + "/single.pt")
'''


def check_ddp_run(config: str, tmp_path: Path, *, metrics: set[str], steps: int = 2, extra: list[str] = (),
                  strategy: str = "ddp", timeout: float = 240) -> dict[str, float]:
    """Run ``config`` on 2 CPU ranks and check weights and test metrics; returns rank 0's test metrics."""
    code = SCRIPT.format(root=str(ROOT), config=str(ROOT / config), out=str(tmp_path), steps=str(steps),
                         extra=list(extra), strategy=strategy)
    run_ddp_script(code, tmp_path, timeout=timeout, WANDB_MODE="disabled")
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    single = torch.load(tmp_path / "single.pt", weights_only=True)
    for key, value in r0["state"].items():
        if value.is_floating_point():
            torch.testing.assert_close(r1["state"][key], value, msg=f"{config}: {key} differs between ranks")
    assert metrics <= set(r0["test"]), f"{config}: expected test metrics {metrics}, got {sorted(r0['test'])}"
    for name in metrics:
        assert r0["test"][name] == r1["test"][name], f"{config}: {name} not reduced: {r0['test'][name]} vs {r1['test'][name]}"
        # the distributed sampler pads an odd test set with one repeated sample per rank at most
        assert abs(r0["test"][name] - single[name]) <= 0.02 * max(1.0, abs(single[name])), \
            f"{config}: {name} over 2 ranks {r0['test'][name]} vs one process on the whole test set {single[name]}"
    return r0["test"]
