"""Module Robust Sensitivity (MRS; Bai, Tabia, Santos-Rodriguez 2024, arXiv 2410.15176).

MRS_l = max_{||dW_l|| <= lambda ||W_l||} L_adv(W_l + dW_l) - L_adv(W): the worst adversarial-loss increase
when only module l's weight moves. [RECONSTRUCTED] after RiFT's Module Robust Criticality (Zhu et al. 2023):
projected SGD ascent (lr 1) on one weight over a fixed adversarial calibration set, eval mode.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn

from zoo.core.attacks import eval_mode, pgd

MRSMeasure = Literal["loss", "acc_drop"]


def adversarial_calibration_set(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float = 8 / 255,
                                alpha: float = 2 / 255, steps: int = 10, batch_size: int = 512,
                                seed: int = 0) -> torch.Tensor:
    """D_adv: PGD-``steps`` (L-inf, random start) examples of the dense model, computed once and kept fixed."""
    gen = torch.Generator().manual_seed(seed)
    out = [pgd(model, x[i:i + batch_size], y[i:i + batch_size], eps, alpha, steps, generator=gen)
           for i in range(0, len(x), batch_size)]
    return torch.cat(out)


@torch.no_grad()
def _adv_loss(model: nn.Module, x_adv: torch.Tensor, y: torch.Tensor, batch_size: int,
              measure: MRSMeasure) -> float:
    total = 0.0
    for i in range(0, len(x_adv), batch_size):
        logits = model(x_adv[i:i + batch_size])
        yb = y[i:i + batch_size]
        if measure == "loss":
            total += F.cross_entropy(logits, yb, reduction="sum").item()
        else:  # robust error, so that "larger = more sensitive" holds for both measures
            total += (logits.argmax(1) != yb).sum().item()
    return total / len(x_adv)


def module_robust_sensitivity(
    model: nn.Module, x_adv: torch.Tensor, y: torch.Tensor, layers: list[str] | None = None,
    radius: float = 0.1, ascent_steps: int = 10, lr: float = 1.0, batch_size: int = 512,
    project_every: Literal["epoch", "step"] = "epoch", measure: MRSMeasure = "loss",
    norms: dict[str, float] | None = None, ascent: Literal["sgd", "normalized"] = "sgd",
) -> dict[str, float]:
    """MRS of each named Conv2d/Linear weight (default: all); the model is restored exactly afterwards.

    ``ascent_steps`` epochs over ``(x_adv, y)``; after each epoch (RiFT) or step, ``dW`` is projected onto
    the Frobenius ball of radius ``radius * ||W||``; the score is the largest loss seen minus the base (>= 0).
    ``measure="acc_drop"`` scores the robust-error increase instead (the spec's alternative reading).
    ``norms``, if given, receives the largest ``||dW|| / ||W||`` evaluated per layer.
    ``ascent="normalized"`` steps ``lr * radius * ||W|| * g / ||g||`` (scale-free L2 ascent) instead of SGD.
    """
    mods = dict(model.named_modules())
    if layers is None:
        layers = [n for n, m in mods.items() if isinstance(m, (nn.Conv2d, nn.Linear))]
    flags = {n: p.requires_grad for n, p in model.named_parameters()}
    scores: dict[str, float] = {}
    with eval_mode(model):
        base = _adv_loss(model, x_adv, y, batch_size, measure)
        for p in model.parameters():
            p.requires_grad_(False)
        for name in layers:
            if name not in mods or not hasattr(mods[name], "weight"):
                raise ValueError(f"MRS: {name!r} is not a Conv2d/Linear layer of the model")
            w = mods[name].weight
            w0 = w.detach().clone()
            limit = radius * w0.norm().item()
            w.requires_grad_(True)
            best = base
            for _ in range(ascent_steps):
                for i in range(0, len(x_adv), batch_size):
                    with torch.enable_grad():
                        loss = -F.cross_entropy(model(x_adv[i:i + batch_size]), y[i:i + batch_size])
                        (grad,) = torch.autograd.grad(loss, w)
                    with torch.no_grad():
                        if ascent == "normalized":
                            grad = grad * (limit / grad.norm().clamp_min(1e-12))
                        w.sub_(lr * grad)
                        if project_every == "step":
                            _project(w, w0, limit)
                with torch.no_grad():
                    _project(w, w0, limit)
                    if norms is not None:
                        norms[name] = max(norms.get(name, 0.0), ((w - w0).norm() / w0.norm().clamp_min(1e-12)).item())
                best = max(best, _adv_loss(model, x_adv, y, batch_size, measure))
            with torch.no_grad():
                w.copy_(w0)
            w.requires_grad_(False)
            scores[name] = best - base
    for n, p in model.named_parameters():
        p.requires_grad_(flags[n])
    return scores


def _project(w: torch.Tensor, w0: torch.Tensor, limit: float) -> None:
    """Project ``w - w0`` onto the Frobenius ball of radius ``limit`` (in place)."""
    d = w - w0
    n = d.norm().item()
    if n > limit > 0:
        w.copy_(w0 + d * (limit / n))
    elif limit == 0:
        w.copy_(w0)


def _fingerprint(model: nn.Module, x_adv: torch.Tensor, y: torch.Tensor, config: dict) -> str:
    h = hashlib.sha256(json.dumps(config, sort_keys=True).encode())
    for k, v in model.state_dict().items():
        h.update(k.encode())
        h.update(v.detach().cpu().contiguous().numpy().tobytes())
    h.update(x_adv.detach().cpu().contiguous().numpy().tobytes())
    h.update(y.cpu().numpy().tobytes())
    return h.hexdigest()[:20]


def cached_mrs(model: nn.Module, x_adv: torch.Tensor, y: torch.Tensor, cache_dir: str | Path | None = None,
               **kwargs) -> dict[str, float]:
    """:func:`module_robust_sensitivity` with a JSON cache keyed by weights, calibration set and settings."""
    if cache_dir is None:
        return module_robust_sensitivity(model, x_adv, y, **kwargs)
    key = _fingerprint(model, x_adv, y, {k: v for k, v in kwargs.items()})
    path = Path(cache_dir) / f"mrs-{key}.json"
    if path.is_file():
        return {k: float(v) for k, v in json.loads(path.read_text())["scores"].items()}
    scores = module_robust_sensitivity(model, x_adv, y, **kwargs)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"scores": scores, "settings": {k: str(v) for k, v in kwargs.items()}}, indent=1))
    tmp.replace(path)
    return scores
