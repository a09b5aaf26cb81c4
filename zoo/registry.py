"""Model registry (timm-style): name -> builder, paper, LightningModule and pretrained weights.

Each paper package registers its networks with :func:`register_model` when imported;
:func:`list_models` imports every ``zoo.<paper>`` package once so the registry is complete.
"""
from __future__ import annotations

import difflib
import fnmatch
import importlib
import pkgutil
from dataclasses import dataclass, field
from typing import Any, Callable

from torch import nn


@dataclass(frozen=True)
class Weights:
    """Where a model's pretrained weights live and what they achieve.

    ``path`` is relative to the ``zoo`` package (small files shipped inside it) or absolute;
    ``url`` is fetched to the cache. ``sha256`` is checked before any byte is unpickled.
    """

    tag: str
    sha256: str
    path: str | None = None
    url: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if (self.path is None) == (self.url is None):
            raise ValueError(f"weights {self.tag!r}: give exactly one of path= or url=")
        if len(self.sha256) != 64:
            raise ValueError(f"weights {self.tag!r}: sha256 must be 64 hex digits")


@dataclass(frozen=True)
class ModelEntry:
    """One registered network."""

    name: str
    builder: Callable[..., nn.Module]
    paper: str
    module: str | None = None  # dotted path of the LightningModule that trains it
    module_kwargs: dict[str, Any] = field(default_factory=dict)
    weights: Weights | None = None
    tags: tuple[str, ...] = ()


_REGISTRY: dict[str, ModelEntry] = {}
_DISCOVERED = False


def register_model(
    *, paper: str, module: str | None = None, module_kwargs: dict[str, Any] | None = None,
    weights: Weights | None = None, name: str | None = None,
) -> Callable[[Callable[..., nn.Module]], Callable[..., nn.Module]]:
    """Decorator registering a builder ``fn(**kwargs) -> nn.Module`` under ``name`` (default: its name)."""

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        key = name or fn.__name__
        if key in _REGISTRY and _REGISTRY[key].builder is not fn:
            raise ValueError(f"model {key!r} is registered twice")
        _REGISTRY[key] = ModelEntry(key, fn, paper, module, dict(module_kwargs or {}), weights)
        return fn

    return wrap


def _discover() -> None:
    """Import every paper package under ``zoo`` once so their models register themselves."""
    global _DISCOVERED
    if _DISCOVERED:
        return
    import zoo

    for info in pkgutil.iter_modules(zoo.__path__):
        if info.ispkg and info.name != "core":
            importlib.import_module(f"zoo.{info.name}")
    _DISCOVERED = True


def list_models(pattern: str = "*", *, pretrained: bool = False) -> list[str]:
    """Sorted names of registered models matching a glob ``pattern`` (only those with weights if asked)."""
    _discover()
    return sorted(
        n for n, e in _REGISTRY.items() if fnmatch.fnmatch(n, pattern) and (e.weights or not pretrained)
    )


def get_entry(name: str) -> ModelEntry:
    """The registry entry of ``name`` (``-`` and ``_`` are interchangeable); an unknown name raises with the
    closest matches."""
    _discover()
    if name not in _REGISTRY and name.replace("-", "_") in _REGISTRY:
        name = name.replace("-", "_")
    if name not in _REGISTRY:
        close = difflib.get_close_matches(name, list(_REGISTRY), n=3, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise KeyError(f"unknown model {name!r}.{hint} See zoo.list_models() for all {len(_REGISTRY)} names.")
    return _REGISTRY[name]
