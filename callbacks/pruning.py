"""Structured pruning for any classifier LightningModule: one-shot or iterative, physical channel removal.

Channels/filters/neurons are removed through torch-pruning's dependency graph, so the pruned model is
really smaller. Criterion (which channels) and ratio policy (how many per layer: uniform, explicit dict
or an object such as ``zoo.robust_pruning.MRSAllocation``) are pluggable. Importance and ratios are
computed on rank 0 and broadcast, so every DDP rank gets the same network. The pruned architecture is
stored in checkpoints (``checkpoint["pruned_structure"]``, names relative to the LightningModule).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Literal

import torch
from lightning.pytorch import Callback, LightningModule, Trainer
from lightning.pytorch.utilities import rank_zero_info
from torch import nn

from zoo.core.structured_pruning import (
    CRITERIA, ParamCounter, RatioPolicy, channel_importance, find_units, prune_channels, pruning_indices,
    record_structure, uniform_ratios,
)
from zoo.core.attacks import pgd


class PruningSchedule(Callback):
    """Prune ``pl_module.net`` (or the module itself) to ``sparsity`` of its parameters (or MACs).

    ``steps`` > 1 prunes iteratively at epochs ``start_epoch + i * every_n_epochs`` towards cumulative
    targets ``1 - (1 - sparsity)^((i + 1) / steps)``; ``start_epoch = 0`` prunes before training starts.
    """

    def __init__(
        self,
        sparsity: float = 0.5,
        budget: Literal["params", "macs"] = "params",
        criterion: Literal["random", "l1", "l2", "bn_scale", "taylor"] = "l1",
        taylor_adversarial: bool = False,
        ratio_policy: str | dict[str, float] | RatioPolicy = "uniform",
        start_epoch: int = 0,
        steps: int = 1,
        every_n_epochs: int = 1,
        min_channels: int = 1,
        coupled: bool = False,
        exclude: list[str] | None = None,
        calib_batches: int = 4,
        attack_eps: float = 8 / 255,
        attack_alpha: float = 2 / 255,
        attack_steps: int = 10,
        seed: int = 0,
        log_dir: str | None = None,
    ) -> None:
        super().__init__()
        if not 0.0 <= sparsity < 1.0:
            raise ValueError(f"sparsity must be in [0, 1), got {sparsity}")
        if criterion not in CRITERIA:
            raise ValueError(f"unknown criterion {criterion!r}; expected one of {CRITERIA}")
        if isinstance(ratio_policy, str) and ratio_policy != "uniform":
            raise ValueError(f"ratio_policy must be 'uniform', a dict of per-layer ratios or a RatioPolicy, "
                             f"got {ratio_policy!r}")
        if steps < 1 or every_n_epochs < 1:
            raise ValueError("steps and every_n_epochs must be >= 1")
        self.sparsity, self.budget, self.criterion = sparsity, budget, criterion
        self.taylor_adversarial, self.policy = taylor_adversarial, ratio_policy
        self.start_epoch, self.steps, self.every_n_epochs = start_epoch, steps, every_n_epochs
        self.min_channels, self.coupled, self.exclude = min_channels, coupled, exclude
        self.calib_batches, self.seed, self.log_dir = calib_batches, seed, log_dir
        self.attack = dict(eps=attack_eps, alpha=attack_alpha, steps=attack_steps)
        self.done_steps = 0
        self.dense_count: int | None = None
        self.history: list[dict[str, Any]] = []

    # ---- schedule ------------------------------------------------------------------------------
    def epochs(self) -> list[int]:
        return [self.start_epoch + i * self.every_n_epochs for i in range(self.steps)]

    def target(self, step: int) -> float:
        """Cumulative sparsity (of the dense model) after pruning step ``step`` (0-based)."""
        return 1.0 - (1.0 - self.sparsity) ** ((step + 1) / self.steps)

    @staticmethod
    def network(pl_module: nn.Module) -> nn.Module:
        net = getattr(pl_module, "net", None)
        return net if isinstance(net, nn.Module) else pl_module

    # ---- data ----------------------------------------------------------------------------------
    def _batches(self, trainer: Trainer, n_samples: int) -> list[tuple[torch.Tensor, torch.Tensor]]:
        dm = trainer.datamodule
        loader = dm.train_dataloader() if dm is not None else trainer.train_dataloader
        loader = getattr(loader, "iterables", loader)  # Lightning's CombinedLoader -> the user's loader(s)
        if isinstance(loader, dict):
            loader = next(iter(loader.values()))
        elif isinstance(loader, (list, tuple)):
            loader = loader[0]
        if loader is None:
            raise RuntimeError("PruningSchedule needs a training dataloader to calibrate pruning")
        out, have = [], 0
        for i, batch in enumerate(loader):
            if have >= n_samples and i >= self.calib_batches:
                break
            out.append((batch[0], batch[1]))
            have += len(batch[1])
        return out

    # ---- hooks ---------------------------------------------------------------------------------
    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        if (stage == "fit" and self.done_steps == 0 and self.start_epoch == 0 and trainer.ckpt_path is None
                and trainer.datamodule is not None):
            self.prune_step(trainer, pl_module)  # before DDP wrapping and optimiser creation
        # without a datamodule, epoch-0 pruning happens in on_train_epoch_start (then optimisers are rebuilt)

    def on_train_epoch_start(self, trainer: Trainer, pl_module: LightningModule) -> None:
        epochs = self.epochs()
        if self.done_steps < self.steps and trainer.current_epoch >= epochs[self.done_steps]:
            self.prune_step(trainer, pl_module)
            self._reset_training(trainer, pl_module)

    def on_train_epoch_end(self, trainer: Trainer, pl_module: LightningModule) -> None:
        if self.dense_count:
            params = sum(p.numel() for p in self.network(pl_module).parameters())
            pl_module.log("prune/param_sparsity", 1.0 - params / self.dense_count, sync_dist=False)

    # ---- pruning -------------------------------------------------------------------------------
    @torch.no_grad()
    def prune_step(self, trainer: Trainer, pl_module: LightningModule) -> dict[str, float]:
        """One pruning step: score channels, allocate ratios, remove channels physically; returns ratios."""
        prepare = getattr(pl_module, "prepare_dense", None)
        if callable(prepare):
            prepare()
        self._root = trainer.default_root_dir
        net = self.network(pl_module)
        device = next(net.parameters()).device
        need = max(getattr(self.policy, "num_samples", 0), 1)
        batches = [(x.to(device), y.to(device)) for x, y in self._batches(trainer, need)]
        example = batches[0][0][:1]
        with torch.enable_grad():
            units = find_units(net, example, exclude=self.exclude if self.exclude is not None else None,
                               coupled=self.coupled)
        counter = ParamCounter(net, example, units)
        dense_now = counter.count({}, self.budget)
        if self.dense_count is None:
            self.dense_count = sum(p.numel() for p in net.parameters())
            self._dense_budget = dense_now
        goal = self.target(self.done_steps)
        rel = max(0.0, 1.0 - (1.0 - goal) * self._dense_budget / dense_now)
        plan = None
        if trainer.global_rank == 0:
            plan = self._plan(net, units, counter, rel, batches)
        plan = trainer.strategy.broadcast(plan, src=0)
        prune_channels(net, example, plan["indices"])
        self.done_steps += 1
        structure = record_structure(net)
        if hasattr(pl_module, "mark_pruned"):
            pl_module.mark_pruned(structure)
        params = sum(p.numel() for p in net.parameters())
        record = {"step": self.done_steps, "epoch": trainer.current_epoch, "target_sparsity": goal,
                  "param_sparsity": 1.0 - params / self.dense_count, "params": params,
                  "ratios": plan["ratios"], "scores": plan["scores"]}
        self.history.append(record)
        self._log(trainer, pl_module, record, units)
        return plan["ratios"]

    def _plan(self, net: nn.Module, units, counter: ParamCounter, rel: float, batches) -> dict[str, Any]:
        """Ratios and channel indices (computed on rank 0 only, then broadcast)."""
        scores = None
        if isinstance(self.policy, RatioPolicy):
            data = None
            if self.policy.num_samples:
                n = self.policy.num_samples
                data = (torch.cat([b[0] for b in batches])[:n], torch.cat([b[1] for b in batches])[:n])
            if hasattr(self.policy, "root_dir") and self.policy.root_dir is None:
                self.policy.root_dir = self.log_dir or self._root
            with torch.enable_grad():
                ratios = self.policy.ratios(net, counter, rel, self.budget, self.min_channels, data)
            scores = dict(self.policy.scores or {})
        elif isinstance(self.policy, dict):
            unknown = sorted(set(self.policy) - {u.name for u in units})
            if unknown:
                raise ValueError(f"ratio_policy names {unknown}, which are not prunable units; "
                                 f"prunable: {[u.name for u in units]}")
            ratios = {u.name: float(self.policy.get(u.name, 0.0)) for u in units}
        else:
            ratios = uniform_ratios(counter, rel, self.budget, self.min_channels)
        attack = None
        if self.criterion == "taylor" and self.taylor_adversarial:
            attack = lambda m, x, y: pgd(m, x, y, **self.attack)  # noqa: E731
        with torch.enable_grad():
            importance = channel_importance(net, units, self.criterion, self.seed + self.done_steps,
                                            batches[:self.calib_batches], attack)
        indices = pruning_indices(units, importance, ratios, self.min_channels)
        return {"indices": indices, "ratios": ratios, "scores": scores}

    def _reset_training(self, trainer: Trainer, pl_module: LightningModule) -> None:
        """New optimisers for the new parameters (and a fresh DDP wrapper) after a mid-training prune."""
        strategy = trainer.strategy
        from torch.nn.parallel import DistributedDataParallel

        if isinstance(strategy.model, DistributedDataParallel):
            strategy.model = strategy._setup_model(pl_module)
        strategy.setup_optimizers(trainer)

    def _log(self, trainer: Trainer, pl_module: LightningModule, record: dict[str, Any], units) -> None:
        names = [u.name for u in units]
        rank_zero_info(f"pruning step {record['step']}: {record['param_sparsity']:.1%} of parameters removed "
                       f"({record['params']} left); ratios " +
                       ", ".join(f"{n}={record['ratios'][n]:.2f}" for n in names))
        if trainer.global_rank != 0:
            return
        rows = [[n, float(record["ratios"][n]), float((record["scores"] or {}).get(n, float("nan")))] for n in names]
        for logger in trainer.loggers:
            metrics = {"prune/param_sparsity": record["param_sparsity"], "prune/params": float(record["params"])}
            metrics.update({f"prune/ratio/{n}": r for n, r, _ in rows})
            metrics.update({f"prune/mrs/{n}": s for n, _, s in rows if s == s})
            logger.log_metrics(metrics, step=trainer.global_step)
            if hasattr(logger, "log_table"):  # W&B: a table and a bar chart of per-layer ratios / MRS
                try:
                    import wandb

                    table = wandb.Table(columns=["layer", "ratio", "mrs"], data=rows)
                    logger.experiment.log({"prune/layers": table,
                                           "prune/ratios_bar": wandb.plot.bar(table, "layer", "ratio"),
                                           "prune/mrs_bar": wandb.plot.bar(table, "layer", "mrs")})
                except Exception as err:  # logging must never stop training
                    rank_zero_info(f"W&B pruning table not logged: {err}")
        root = Path(self.log_dir or trainer.default_root_dir)
        root.mkdir(parents=True, exist_ok=True)
        (root / "pruning_history.json").write_text(json.dumps(self.history, indent=1))

    # ---- checkpoints ---------------------------------------------------------------------------
    def on_save_checkpoint(self, trainer: Trainer, pl_module: LightningModule, checkpoint: dict[str, Any]) -> None:
        if self.done_steps:
            checkpoint["pruned_structure"] = record_structure(pl_module)

    def state_dict(self) -> dict[str, Any]:
        return {"done_steps": self.done_steps, "dense_count": self.dense_count,
                "dense_budget": getattr(self, "_dense_budget", None), "history": json.dumps(self.history)}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        self.done_steps = int(state_dict.get("done_steps", 0))
        self.dense_count = state_dict.get("dense_count")
        self._dense_budget = state_dict.get("dense_budget")
        self.history = json.loads(state_dict.get("history", "[]"))
