"""ibisc-zoo: the IBISC lab's papers as PyTorch modules, Lightning recipes and pretrained weights.

Public API: :func:`list_models`, :func:`create_model`, :func:`load`.
"""
from __future__ import annotations

from typing import Any

from torch import nn

from zoo.registry import Weights, get_entry, list_models, register_model

__all__ = ["list_models", "create_model", "load", "register_model", "Weights", "get_entry"]
__version__ = "0.1.0"


def create_model(name: str, pretrained: bool = False, **kwargs: Any) -> nn.Module:
    """Build registered model ``name``; ``pretrained=True`` loads its registered weights (sha256-checked)."""
    entry = get_entry(name)
    name = entry.name
    if not pretrained:
        return entry.builder(**kwargs)
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
    net.pretrained_metadata = dict(payload["metadata"])
    return net.eval()


def load(source: str, *, sha256: str | None = None, **kwargs: Any) -> nn.Module:
    """Load a model in eval mode from a registry name, a zoo weights file, a ``zoo fit`` checkpoint or a URL.

    URLs are downloaded to the cache and checked against ``sha256``; every file is unpickled with
    ``weights_only=True``. For a Lightning checkpoint the trained network (``module.net``) is returned.
    """
    from zoo import hub

    if "/" not in source and "\\" not in source and not source.endswith((".pt", ".pth", ".ckpt")):
        return create_model(source, pretrained=True, **kwargs)
    path, payload = hub.load_payload(source, sha256=sha256)
    if isinstance(payload, dict) and "hyper_parameters" in payload and "arch" not in payload:
        if kwargs:
            raise ValueError(f"{source} is a Lightning checkpoint; its architecture is fixed, got kwargs {sorted(kwargs)}")
        module = hub.load_lightning_checkpoint(path, payload)
        return getattr(module, "net", module).eval()
    hub.check_weights_payload(payload, source)
    net = get_entry(payload["arch"]).builder(**{**payload["arch_kwargs"], **kwargs})
    net.load_state_dict(payload["state_dict"])
    net.pretrained_metadata = dict(payload["metadata"])
    return net.eval()
