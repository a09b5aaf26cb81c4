"""White-box adversarial attacks shared by the zoo: FGSM, PGD (L-inf / L2), CW-inf and AutoAttack.

Inputs live in [0, 1] and normalisation belongs inside the model, so ``eps`` is in pixel units.
Attacks run with the model in eval mode (BatchNorm running statistics, no dropout) and restore
its previous mode; they never change the model's parameters or their ``requires_grad`` flags.
"""
from __future__ import annotations

import contextlib
import re
from dataclasses import dataclass
from typing import Callable, Iterator, Literal

import torch
import torch.nn.functional as F
from torch import nn

Norm = Literal["linf", "l2"]
LossName = Literal["ce", "cw", "kl"]


@contextlib.contextmanager
def eval_mode(model: nn.Module) -> Iterator[nn.Module]:
    """Put ``model`` in eval mode for the duration of an attack, then restore its mode."""
    was_training = model.training
    model.eval()
    try:
        yield model
    finally:
        model.train(was_training)


def cw_margin_loss(logits: torch.Tensor, y: torch.Tensor, kappa: float = 50.0) -> torch.Tensor:
    """Carlini-Wagner margin ``max_{j != y} z_j - z_y`` clipped at ``kappa`` (mean over the batch)."""
    onehot = F.one_hot(y, logits.shape[1]).bool()
    correct = logits[onehot]
    other = logits.masked_fill(onehot, float("-inf")).amax(dim=1)
    return (other - correct).clamp(max=kappa).mean()


def _attack_loss(name: LossName, logits: torch.Tensor, y: torch.Tensor, ref: torch.Tensor | None) -> torch.Tensor:
    if name == "ce":
        return F.cross_entropy(logits, y)
    if name == "cw":
        return cw_margin_loss(logits, y)
    if name == "kl":  # TRADES inner maximisation: KL(f(x) || f(x'))
        assert ref is not None
        return F.kl_div(F.log_softmax(logits, dim=1), F.softmax(ref, dim=1), reduction="batchmean")
    raise ValueError(f"unknown attack loss {name!r}; expected 'ce', 'cw' or 'kl'")


def _l2_normalise(g: torch.Tensor) -> torch.Tensor:
    norm = g.flatten(1).norm(dim=1).clamp_min(1e-12)
    return g / norm.view(-1, *([1] * (g.dim() - 1)))


def project(delta: torch.Tensor, eps: float, norm: Norm) -> torch.Tensor:
    """Project perturbations onto the ``eps``-ball of ``norm`` (per sample)."""
    if norm == "linf":
        return delta.clamp(-eps, eps)
    if norm == "l2":
        n = delta.flatten(1).norm(dim=1).clamp_min(1e-12)
        factor = (eps / n).clamp(max=1.0)
        return delta * factor.view(-1, *([1] * (delta.dim() - 1)))
    raise ValueError(f"unknown norm {norm!r}; expected 'linf' or 'l2'")


def _check(x: torch.Tensor, eps: float) -> None:
    if eps < 0:
        raise ValueError(f"eps must be >= 0, got {eps}")
    if x.numel() and (x.min() < -1e-6 or x.max() > 1 + 1e-6):
        raise ValueError(
            f"attacks expect images in [0, 1] (normalisation inside the model); got range "
            f"[{x.min().item():.3f}, {x.max().item():.3f}]"
        )


def pgd(
    model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, alpha: float, steps: int,
    norm: Norm = "linf", random_start: bool = True, loss: LossName = "ce",
    ref_logits: torch.Tensor | None = None, start_noise: float | None = None,
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Projected gradient ascent (Madry et al.) on ``loss``; returns ``x_adv`` in the eps-ball and [0, 1].

    ``random_start`` draws uniformly from the ball (L-inf) or a scaled Gaussian direction (L2);
    ``start_noise`` instead starts at ``x + start_noise * N(0, 1)`` (TRADES' start).
    """
    _check(x, eps)
    x = x.detach()
    if eps == 0 or steps < 0:
        return x.clone()
    with eval_mode(model), torch.enable_grad():
        if start_noise is not None:
            noise = torch.randn(x.shape, generator=generator, device="cpu").to(x)
            delta = start_noise * noise
        elif random_start:
            if norm == "linf":
                delta = (torch.rand(x.shape, generator=generator, device="cpu").to(x) * 2 - 1) * eps
            else:
                d = _l2_normalise(torch.randn(x.shape, generator=generator, device="cpu").to(x))
                r = torch.rand(x.shape[0], generator=generator, device="cpu").to(x)
                delta = d * (eps * r).view(-1, *([1] * (x.dim() - 1)))
        else:
            delta = torch.zeros_like(x)
        delta = ((x + project(delta, eps, norm)).clamp(0, 1) - x)
        for _ in range(steps):
            delta.requires_grad_(True)
            logits = model(x + delta)
            value = _attack_loss(loss, logits, y, ref_logits)
            (grad,) = torch.autograd.grad(value, delta)
            with torch.no_grad():
                step = grad.sign() if norm == "linf" else _l2_normalise(grad)
                delta = project(delta + alpha * step, eps, norm)
                delta = (x + delta).clamp(0, 1) - x
        return (x + delta).detach()


def fgsm(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float) -> torch.Tensor:
    """Fast gradient sign method (Goodfellow et al.): one L-inf step of size ``eps`` from ``x``."""
    return pgd(model, x, y, eps=eps, alpha=eps, steps=1, norm="linf", random_start=False)


def cw_inf(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, alpha: float, steps: int = 30) -> torch.Tensor:
    """CW-inf: L-inf PGD on the Carlini-Wagner margin loss (as in robust-pruning evaluations)."""
    return pgd(model, x, y, eps=eps, alpha=alpha, steps=steps, norm="linf", random_start=True, loss="cw")


def autoattack(model: nn.Module, x: torch.Tensor, y: torch.Tensor, eps: float, norm: Norm = "linf",
               version: str = "standard", seed: int = 0, batch_size: int = 250) -> torch.Tensor:
    """AutoAttack (Croce & Hein 2020; standard = APGD-CE, APGD-T, FAB-T, Square) via ``pyautoattack``."""
    try:
        from pyautoattack import AutoAttack
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError(
            "AutoAttack needs the optional package 'pyautoattack' (pip install pyautoattack==0.2.0)."
        ) from err
    _check(x, eps)
    with eval_mode(model):
        aa = AutoAttack(model, norm="Linf" if norm == "linf" else "L2", eps=eps, version=version,
                        device=x.device, seed=seed)
        aa.logger.disabled = True
        x_adv, _ = aa.run_standard_evaluation(x.detach(), y, batch_size=batch_size)
    return x_adv.detach()


@dataclass(frozen=True)
class AttackSpec:
    """A named attack configuration, e.g. ``pgd20`` = PGD, 20 steps, L-inf."""

    name: str
    kind: Literal["fgsm", "pgd", "cw", "autoattack"]
    eps: float
    alpha: float
    steps: int
    norm: Norm = "linf"

    def __call__(self, model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if self.kind == "fgsm":
            return fgsm(model, x, y, self.eps)
        if self.kind == "pgd":
            return pgd(model, x, y, self.eps, self.alpha, self.steps, norm=self.norm)
        if self.kind == "cw":
            return cw_inf(model, x, y, self.eps, self.alpha, self.steps)
        return autoattack(model, x, y, self.eps, norm=self.norm)


_PATTERN = re.compile(r"^(fgsm|pgd|cw|aa|autoattack)(\d*)(_l2)?$")


def parse_attack(name: str, eps: float, alpha: float | None = None) -> AttackSpec:
    """Build an :class:`AttackSpec` from a name: ``fgsm``, ``pgd20``, ``pgd10_l2``, ``cw30``, ``aa``.

    ``alpha`` defaults to ``eps / 4`` (2/255 for eps = 8/255, the usual PGD step).
    """
    match = _PATTERN.match(name.lower())
    if not match:
        raise ValueError(f"unknown attack {name!r}; expected fgsm, pgd<steps>[_l2], cw<steps> or aa")
    kind, steps, l2 = match.groups()
    kind = {"aa": "autoattack"}.get(kind, kind)
    n = int(steps) if steps else {"pgd": 20, "cw": 30}.get(kind, 1)
    return AttackSpec(name=name.lower(), kind=kind, eps=eps, alpha=alpha if alpha is not None else eps / 4,
                      steps=n, norm="l2" if l2 else "linf")


@torch.no_grad()
def accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Top-1 accuracy of ``model`` (eval mode) on a batch."""
    with eval_mode(model):
        return (model(x).argmax(1) == y).float().mean().item()


def robust_accuracy(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                    attack: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor],
                    batch_size: int = 256) -> float:
    """Accuracy on adversarial examples produced by ``attack`` (batched)."""
    correct = 0
    for i in range(0, len(x), batch_size):
        xb, yb = x[i:i + batch_size], y[i:i + batch_size]
        x_adv = attack(model, xb, yb)
        with torch.no_grad(), eval_mode(model):
            correct += (model(x_adv).argmax(1) == yb).sum().item()
    return correct / max(1, len(x))
