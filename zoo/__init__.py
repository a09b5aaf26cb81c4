"""ibisc-zoo: the IBISC lab's papers as PyTorch modules, Lightning recipes and pretrained weights.

Public API: :func:`list_models`, :func:`create_model`, :func:`load`.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any

from zoo.registry import Weights, get_entry, install_input_check, list_models, register_model, unified_metrics

if TYPE_CHECKING:  # torch loads with the first model built, so `zoo --help` / `zoo list` stay fast
    from torch import nn

__all__ = ["list_models", "create_model", "load", "register_model", "Weights", "get_entry"]
__version__ = "0.1.0"


def create_model(name: str, pretrained: bool = False, *, check_inputs: bool = True, **kwargs: Any) -> nn.Module:
    """Build registered model ``name``; ``pretrained=True`` loads its registered weights (sha256-checked).

    The model's card is ``net.pretrained_cfg``; with ``check_inputs`` (and the card's architecture) a forward pass
    whose input contradicts the card (channels, values far outside its range) raises a ``ValueError``.
    """
    entry = get_entry(name)
    name = entry.name
    if not pretrained:
        net = entry.builder(**kwargs)
        net.pretrained_cfg = dict(entry.cfg)
        return install_input_check(net, name) if check_inputs and not kwargs else net
    if entry.weights is None:
        raise ValueError(f"model {name!r} has no pretrained weights; available: {list_models(pretrained=True)}")
    from zoo import hub

    w = entry.weights
    source = str(hub.PACKAGE_DIR / w.path) if w.path else w.url
    payload = hub.load_state(source, sha256=w.sha256)
    if payload["arch"] != name:
        raise hub.CorruptCheckpointError(f"weights of {name!r} hold architecture {payload['arch']!r}")
    clash = {k for k in kwargs if k in payload["arch_kwargs"] and kwargs[k] != payload["arch_kwargs"][k]}
    if clash:
        raise ValueError(f"pretrained {name!r} was trained with {({k: payload['arch_kwargs'][k] for k in clash})}; "
                         f"these arguments conflict with the weights: {sorted(clash)}")
    net = entry.builder(**{**payload["arch_kwargs"], **kwargs})
    net.load_state_dict(payload["state_dict"])
    return _attach_cards(net, name, payload["metadata"], check_inputs).eval()


def _attach_cards(net: nn.Module, name: str, metadata: dict, check_inputs: bool) -> nn.Module:
    """``pretrained_metadata`` (the file's, plus ``metrics`` under unified keys), ``pretrained_cfg`` and the check."""
    net.pretrained_metadata = {**metadata, "metrics": unified_metrics(metadata)}
    net.pretrained_cfg = dict(get_entry(name).cfg)
    return install_input_check(net, name) if check_inputs else net


def load(source: str, *, sha256: str | None = None, check_inputs: bool = True, **kwargs: Any) -> nn.Module:
    """Load a model in eval mode from a registry name, a zoo weights file, a ``zoo fit`` checkpoint or a URL.

    URLs are downloaded to the cache and checked against ``sha256``; every file is unpickled with
    ``weights_only=True``. For a Lightning checkpoint the trained network (``module.net``) is returned.
    """
    from zoo import hub

    if "/" not in source and "\\" not in source and not source.endswith((".pt", ".pth", ".ckpt")):
        return create_model(source, pretrained=True, check_inputs=check_inputs, **kwargs)
    path, payload = hub.load_payload(source, sha256=sha256)
    if isinstance(payload, dict) and "hyper_parameters" in payload and "arch" not in payload:
        if kwargs:
            raise ValueError(f"{source} is a Lightning checkpoint; its architecture is fixed, got kwargs {sorted(kwargs)}")
        module = hub.load_lightning_checkpoint(path, payload)
        return getattr(module, "net", module).eval()
    hub.check_weights_payload(payload, source)
    net = get_entry(payload["arch"]).builder(**{**payload["arch_kwargs"], **kwargs})
    net.load_state_dict(payload["state_dict"])
    return _attach_cards(net, payload["arch"], payload["metadata"], check_inputs and not kwargs).eval()
