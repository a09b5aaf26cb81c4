"""Checks that stop a misconfigured run at ``setup``, in its first seconds, instead of after an epoch (issue 13.6).

* **Class count.** A model whose head has more outputs than the datamodule has classes trains without complaint
  (the extra logits are never a target) and one with fewer fails only at the first loss, on a GPU as an opaque
  device-side assert. :class:`Preflight` compares the two where both sides state them: the module's
  ``num_classes`` hyperparameter (or ``net_kwargs["num_classes"]``) and the datamodule's ``num_classes``
  (read after the datamodule's ``setup``, so folder-based datasets count their folders first).

``zoo fit|validate|test|predict`` adds the callback to every run; a plain ``Trainer`` can add it too.
"""
from __future__ import annotations

from typing import Any

from lightning.pytorch import Callback, LightningModule, Trainer


def model_num_classes(module: LightningModule) -> int | None:
    """The number of classes the module's head predicts, where its hyperparameters say it; else ``None``."""
    hp: Any = getattr(module, "hparams", {}) or {}
    for value in (hp.get("num_classes"), (hp.get("net_kwargs") or {}).get("num_classes")):
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def data_num_classes(datamodule: Any) -> int | None:
    """The datamodule's class count (attribute or property); ``None`` where it has none or cannot tell yet."""
    try:
        value = getattr(datamodule, "num_classes", None)
    except (AttributeError, RuntimeError, FileNotFoundError):  # a property that needs data not read yet
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) and value > 0 else None


def check_num_classes(module: LightningModule, datamodule: Any) -> None:
    """Raise ``ValueError`` naming both values and the flag to change when model and data disagree."""
    n_model, n_data = model_num_classes(module), data_num_classes(datamodule)
    if n_model is None or n_data is None or n_model == n_data:
        return
    flag = "--model.init_args.num_classes" if module.hparams.get("num_classes") is not None else \
        "--model.init_args.net_kwargs.num_classes"
    raise ValueError(f"{type(module).__name__} predicts {n_model} classes but {type(datamodule).__name__} has "
                     f"{n_data}: set {flag} {n_data} (or point the datamodule at the dataset the model is for)")


class Preflight(Callback):
    """Fail at ``setup`` on a model/datamodule mismatch (see the module docstring)."""

    def setup(self, trainer: Trainer, pl_module: LightningModule, stage: str) -> None:
        datamodule = getattr(trainer, "datamodule", None)
        if datamodule is not None:
            check_num_classes(pl_module, datamodule)
