"""Model registry (timm-style): name -> builder, paper, LightningModule and pretrained weights.

Each paper package registers its networks with :func:`register_model` when imported;
:func:`list_models` imports every ``zoo.<paper>`` package once so the registry is complete.
Every entry carries a card from ``zoo/weights/model_cards.json`` (one schema: input config, labels,
output, params/MACs, recipe); ``tools/model_cards.py`` measures its numbers and a test checks them.
"""
from __future__ import annotations

import difflib
import fnmatch
import importlib
import json
import os
import pkgutil
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable

if TYPE_CHECKING:  # torch is imported by the builders, not by the registry (``zoo list`` stays fast)
    from torch import nn

CARDS_PATH = Path(__file__).resolve().parent / "weights" / "model_cards.json"


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
    cfg: dict[str, Any] = field(default_factory=dict)  # the card: input config, labels, output, cost, recipe


@lru_cache(maxsize=1)
def load_cards() -> dict[str, dict[str, Any]]:
    """The model cards (``zoo/weights/model_cards.json``), read without importing torch."""
    with open(CARDS_PATH, encoding="utf-8") as fh:
        return json.load(fh)["models"]


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
        card = load_cards().get(key, {})
        # the card's module_kwargs are the recipe that trained the shipped weights; they win over the
        # registration's small defaults so the LightningModule rebuilds the shipped architecture
        kwargs = dict(card.get("module_kwargs", module_kwargs or {}))
        _REGISTRY[key] = ModelEntry(key, fn, paper, module, kwargs, weights, cfg=card)
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


# -- input checks: a forward pass whose input contradicts the card raises instead of scoring silently --------------

class InputCheck:
    """Forward pre-hook checking channels and value range against a model card; ``enabled = False`` switches it off.

    A value is refused when it lies more than one range width outside ``value_range`` (for [0, 1]: below -1
    or above 2), which catches raw 0-255 or 0-16 pixels and doubly normalised inputs, not noise or augmentation.
    """

    def __init__(self, name: str, cfg: dict[str, Any]) -> None:
        self.name, self.enabled = name, os.environ.get("ZOO_CHECK_INPUTS", "1") != "0"
        inp = cfg.get("input", {})
        shapes = inp.get("inputs") or {"x": inp.get("input_size")}
        self.shapes = [(arg, s) for arg, s in shapes.items() if s]
        self.value_range = inp.get("value_range")

    def __call__(self, module: Any, args: tuple) -> None:
        if not self.enabled:
            return
        import torch

        for (arg, shape), x in zip(self.shapes, args):
            if not isinstance(x, torch.Tensor) or not x.is_floating_point():
                continue
            hint = (f" (card: zoo.get_entry({self.name!r}).cfg['input']; switch the check off with "
                    f"net.zoo_input_check.enabled = False or zoo.create_model(..., check_inputs=False))")
            if x.dim() != len(shape) + 1 or x.shape[1] != shape[0]:
                raise ValueError(f"{self.name}: input {arg!r} must be (B, {', '.join(map(str, [shape[0], 'H', 'W'][:len(shape)]))}) "
                                 f"with {shape[0]} channel(s), e.g. {(1, *shape)}; got shape {tuple(x.shape)}{hint}")
            if self.value_range and x.numel() and x.device.type != "meta":
                lo, hi = self.value_range
                span = hi - lo
                xmin, xmax = (float(v) for v in torch.aminmax(x.detach()))
                if xmin < lo - span or xmax > hi + span:
                    raise ValueError(f"{self.name}: input {arg!r} values lie in [{xmin:.3g}, {xmax:.3g}], far outside the "
                                     f"expected range [{lo}, {hi}] (the network normalises internally; pass e.g. "
                                     f"pixels / 255 or digits / 16){hint}")


def install_input_check(net: "nn.Module", name: str) -> "nn.Module":
    """Attach an :class:`InputCheck` for registered model ``name`` to ``net`` (as ``net.zoo_input_check``)."""
    entry = get_entry(name)
    check = InputCheck(entry.name, entry.cfg)
    if check.shapes:
        net.zoo_input_check = check
        net.register_forward_pre_hook(check)
    return net


# -- metadata: one set of metric keys --------------------------------------------------------------------------

def unified_metrics(metadata: dict[str, Any]) -> dict[str, float]:
    """The numeric ``test``/``val`` results of a weights file's metadata under Lightning's keys (``test/acc``).

    Older files say ``test_acc``, ``metrics: {test/acc}`` or ``test_mpjpe_mm``; units stay in the card's ``output``.
    """
    flat = {**metadata, **(metadata.get("metrics") or {})}
    out: dict[str, float] = {}
    for key, value in flat.items():
        if not key.startswith(("test", "val")) or isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if "/" not in key:
            key = key.replace("_", "/", 1)
        out[key.removesuffix("_mm")] = float(value)
    return dict(sorted(out.items()))


def measure_cost(name: str) -> dict[str, int]:
    """Parameters and MACs of registered ``name`` as built with its shipped weights' arguments (or its defaults),
    on its card's input size, counted on the meta device by :mod:`zoo.core.profiling`."""
    import torch

    from zoo.core.profiling import count_macs, count_params

    entry = get_entry(name)
    kwargs = dict(entry.cfg.get("arch_kwargs") or {})
    inp = entry.cfg["input"]
    shapes = list((inp.get("inputs") or {"x": inp["input_size"]}).values())
    for device in ("meta", "cpu"):  # meta counts without memory; a forward with data-dependent steps needs real tensors
        try:
            with torch.random.fork_rng(), torch.device(device):  # seeded: some forwards sample (meshrec's policy)
                torch.manual_seed(0)
                net = entry.builder(**kwargs)
                example = tuple(torch.zeros(1, *s) for s in shapes)
                macs = count_macs(_Spread(net, example), example[0])
            return {"params": count_params(net), "macs": int(macs)}
        except (NotImplementedError, RuntimeError):
            if device == "cpu":
                raise
    raise AssertionError("unreachable")


class _Spread:
    """Calls ``net(*example)`` whatever ``count_macs`` passes, so several inputs are counted (an ``nn.Module``)."""

    def __new__(cls, net: Any, example: tuple) -> Any:
        import torch

        class Spread(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.net = net

            def forward(self, _: Any) -> Any:
                return self.net(*example)

        return Spread()
