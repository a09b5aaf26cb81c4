"""The ``zoo`` command: LightningCLI in subclass mode for any model and datamodule of the zoo.

``zoo fit|validate|test|predict --config shared.yaml --config paper.yaml --trainer.devices 2``.
On top of Lightning's CLI it adds: W&B (offline) + CSV loggers when none is configured, a
``checkpoint:`` section (ModelCheckpoint, ``last.ckpt`` kept for ``--ckpt_path last``), a
params/MACs summary, and a test of the best checkpoint after ``fit``.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any, Optional

import torch

from lightning.pytorch import LightningDataModule, LightningModule, Trainer
from lightning.pytorch.callbacks import ModelCheckpoint
from lightning.pytorch.cli import LightningArgumentParser, LightningCLI
from lightning.pytorch.loggers import CSVLogger, Logger, WandbLogger
from lightning.pytorch.utilities import rank_zero_info


def default_loggers(root: str | os.PathLike, name: str) -> list[Logger]:
    """W&B (offline unless ``WANDB_MODE`` says otherwise) and CSV, both under ``root``."""
    Path(root).mkdir(parents=True, exist_ok=True)
    offline = os.environ.get("WANDB_MODE", "offline") != "online"
    import wandb

    # quiet: no sparkline history or summary dump at exit (the zoo prints where the run is, Lightning the metrics)
    wandb_logger = WandbLogger(project=os.environ.get("WANDB_PROJECT", "ibisc-zoo"), name=name, save_dir=str(root),
                               offline=offline, log_model=False, settings=wandb.Settings(quiet=True))
    wandb_logger._wandb_init.pop("anonymous", None)  # Lightning always passes it; wandb warns it has no effect
    return [wandb_logger, CSVLogger(save_dir=str(root), name="csv")]


_NOISE = ("💡 Tip:", "Loading `train_dataloader` to estimate number of stepping batches")


class _DropNoise:
    """Logging filter dropping Lightning's advertising tip and step-estimation notice (no switch exists for them)."""

    def filter(self, record) -> bool:
        return not str(record.getMessage()).startswith(_NOISE)


def quiet_console() -> None:
    """Silence third-party chatter that has no switch of its own; the run's summary and metrics stay."""
    import logging
    import warnings

    for name in ("lightning.pytorch", "lightning.fabric"):
        for handler in logging.getLogger(name).handlers:
            if not any(isinstance(f, _DropNoise) for f in handler.filters):
                handler.addFilter(_DropNoise())
    # Lightning 2.x calls a torch.utils._pytree API that torch >= 2.6 deprecates; nothing for the zoo to fix
    warnings.filterwarnings("ignore", message=r".*isinstance\(treespec, LeafSpec\).*")


def _is_config_class(class_type: type, section: dict) -> bool:
    """Whether ``class_type`` is the class named by a config section's ``class_path`` (not one nested in it)."""
    import importlib

    path = section.get("class_path") if isinstance(section, dict) else None
    if not isinstance(path, str) or "." not in path:
        return True
    module, _, name = path.rpartition(".")
    try:
        return getattr(importlib.import_module(module), name) is class_type
    except (ImportError, AttributeError):
        return True


class _OwnHparamsInstantiator:
    """Lightning's instantiator hands every module built under ``model``/``data`` that section's config as its
    hyperparameters, so a datamodule nested in another (``SearchSplitDataModule(datamodule=...)``) took the outer
    one's keys as its own (``hparams.val_size`` missing). A nested module saves its own arguments instead."""

    def __init__(self, cli: LightningCLI, key: str) -> None:
        from lightning.pytorch.cli import _InstantiatorFn

        self.cli, self.key, self.lightning = cli, key, _InstantiatorFn(cli=cli, key=key)

    def __call__(self, class_type: type, *args: Any, applied_instantiation_links: dict, **kwargs: Any) -> Any:
        from lightning.pytorch.core.mixins.hparams_mixin import _given_hyperparameters

        self.cli._dump_config()
        if _is_config_class(class_type, self.cli.config_dump.get(self.key, {})):
            return self.lightning(class_type, *args, applied_instantiation_links=applied_instantiation_links, **kwargs)
        token = _given_hyperparameters.set(None)  # save_hyperparameters() reads the constructor's own frame
        try:
            return class_type(*args, **kwargs)
        finally:
            _given_hyperparameters.reset(token)


class ZooCLI(LightningCLI):
    """LightningCLI with the zoo's defaults (see module docstring)."""

    def _add_instantiators(self) -> None:
        from lightning.pytorch.cli import _get_module_type

        for key, cls, sub in (("model", self._model_class, self.subclass_mode_model),
                              ("data", self._datamodule_class, self.subclass_mode_data)):
            self.parser.add_instantiator(_OwnHparamsInstantiator(self, key), _get_module_type(cls), subclasses=sub)

    def add_arguments_to_parser(self, parser: LightningArgumentParser) -> None:
        from callbacks.checkpoint import ResumableCheckpoint

        parser.add_lightning_class_args(ResumableCheckpoint, "checkpoint")
        parser.set_defaults({
            "checkpoint.monitor": "val/acc",
            "checkpoint.mode": "max",
            "checkpoint.save_last": True,
            "checkpoint.filename": "best-epoch{epoch:03d}",
            "checkpoint.auto_insert_metric_name": False,
            # Lightning's table shows a FLOPs column of zeros without example_input_array; the zoo prints one
            # line at fit start instead, and ModelProfile logs model/params and model/macs
            "trainer.enable_model_summary": False,
        })
        parser.add_argument("--test_after_fit", type=bool, default=True,
                            help="after fit, test the best checkpoint on the datamodule's test split")
        parser.add_argument("--predictions_path", type=Optional[str], default=None,
                            help="predict: where to torch.save the outputs (default <default_root_dir>/predictions.pt)")

    def before_instantiate_classes(self) -> None:
        cfg = self.config.get(str(self.subcommand), self.config)
        root = cfg.trainer.get("default_root_dir") or os.getcwd()
        if cfg.checkpoint.get("dirpath") is None:  # fixed folder, so `--ckpt_path last` finds it on resume
            cfg.checkpoint.dirpath = str(Path(root) / "checkpoints")
        from zoo.core.resume import check_resume_checkpoint  # a corrupt checkpoint names itself and a good one

        check_resume_checkpoint(cfg.get("ckpt_path"), cfg.checkpoint.dirpath)

    def _instantiate_trainer(self, config: dict[str, Any], callbacks: list) -> Trainer:
        from callbacks.preflight import Preflight
        from callbacks.profiling import ModelProfile

        if config.get("logger") in (None, True):
            root = config.get("default_root_dir") or os.getcwd()
            config["logger"] = default_loggers(root, name=type(self._get(self.config_init, "model")).__name__
                                               if self._get(self.config_init, "model", None) is not None else "run")
        callbacks = [*callbacks, ModelProfile(), Preflight()]
        return super()._instantiate_trainer(config, callbacks)

    def before_fit(self) -> None:
        from zoo.core.profiling import count_params

        trainable = sum(p.numel() for p in self.model.parameters() if p.requires_grad)
        rank_zero_info(f"model: {type(self.model).__name__}, {count_params(self.model):,} parameters "
                       f"({trainable:,} trainable); MACs are logged as model/macs")

    def after_fit(self) -> None:
        ckpt_cb = self.trainer.checkpoint_callback
        best = ckpt_cb.best_model_path if isinstance(ckpt_cb, ModelCheckpoint) else ""
        cfg = self.config.get(str(self.subcommand), self.config)
        if cfg.get("test_after_fit", True) and not self.trainer.fast_dev_run:
            self.trainer.test(self.model, datamodule=self.datamodule, ckpt_path=best or None)
        self._report_locations(best)

    def predict(self, model: LightningModule, **kwargs: Any) -> None:
        """``trainer.predict``, then save the outputs (rank zero; under DDP each rank predicts its shard)."""
        predictions = self.trainer.predict(model, **kwargs)
        cfg = self.config.get(str(self.subcommand), self.config)
        path = Path(cfg.get("predictions_path") or Path(self.trainer.default_root_dir) / "predictions.pt")
        if self.trainer.is_global_zero and predictions is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            torch.save(predictions, path)
            rank_zero_info(f"predictions ({len(predictions)} batches): {path}")

    def _report_locations(self, best: str) -> None:
        lines = []
        if best:
            lines.append(f"best checkpoint: {best}")
        ckpt_cb = self.trainer.checkpoint_callback
        if isinstance(ckpt_cb, ModelCheckpoint) and ckpt_cb.last_model_path:
            lines.append(f"last checkpoint: {ckpt_cb.last_model_path}")
        for logger in self.trainer.loggers:
            if isinstance(logger, WandbLogger):
                run_dir = getattr(getattr(logger.experiment, "settings", None), "sync_dir", None) or logger.save_dir
                lines.append(f"W&B run: {run_dir}  (upload later with: wandb sync {run_dir})")
            elif logger.log_dir:
                lines.append(f"{type(logger).__name__} logs: {logger.log_dir}")
        if lines:
            rank_zero_info("\n".join(["", *lines]))


def main(args: list[str] | None = None) -> int | None:
    """The Lightning subcommands of the ``zoo`` console script (``zoo.commands.main`` answers the others)."""
    argv = sys.argv[1:] if args is None else args
    if not argv or argv[0] in ("-h", "--help", "list", "info", "export"):  # answered without Lightning
        from zoo.commands import main as light_main

        return light_main(argv)
    try:
        _run_cli(args)
    finally:
        # Flush the W&B run before exit: without an explicit finish() the offline .wandb file is completed by
        # wandb's atexit hook and service process, and a reader started right after the command can find it empty.
        wandb = sys.modules.get("wandb")
        if wandb is not None and getattr(wandb, "run", None) is not None:
            wandb.finish()
        # A gloo/NCCL group left open at interpreter exit can abort the process ("terminate called without an
        # active exception", exit -6) after a successful DDP run; close it explicitly.
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()


def _run_cli(args: list[str] | None) -> None:
    quiet_console()
    ZooCLI(
        LightningModule,
        LightningDataModule,
        subclass_mode_model=True,
        subclass_mode_data=True,
        save_config_kwargs={"overwrite": True},
        parser_kwargs={"allow_abbrev": False},  # a misspelt flag must fail, not match a longer one
        args=args,
    )


if __name__ == "__main__":
    main()
