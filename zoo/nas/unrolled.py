"""Second-order DARTS hypergradient: one unrolled SGD step and a finite-difference Hessian-vector product.

grad_alpha L_val(w', alpha) - xi * [grad_alpha L_train(w+) - grad_alpha L_train(w-)] / (2 eps),
w' = w - xi (momentum * buf + grad_w L_train + wd * w), w+- = w +- eps v, v = grad_w' L_val, eps = 0.01/|v|.
Implemented with ``torch.func.functional_call`` instead of copying the model (spec section 12).
"""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn
from torch.func import functional_call

LossFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def _loss(model: nn.Module, params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor],
          batch: tuple[torch.Tensor, torch.Tensor], loss_fn: LossFn) -> torch.Tensor:
    x, y = batch
    return loss_fn(functional_call(model, {**params, **buffers}, (x,)), y)


def unrolled_arch_grads(model: nn.Module, weight_names: list[str], arch_names: list[str],
                        train_batch: tuple[torch.Tensor, torch.Tensor], val_batch: tuple[torch.Tensor, torch.Tensor],
                        loss_fn: LossFn, xi: float, momentum: float = 0.0, weight_decay: float = 0.0,
                        momentum_buffers: list[torch.Tensor | None] | None = None, r: float = 0.01) -> tuple[list[torch.Tensor], torch.Tensor]:
    """Second-order gradients for the architecture parameters ``arch_names`` and the unrolled val loss.

    BatchNorm running statistics are updated on copies, so the model is left untouched.
    """
    named = dict(model.named_parameters())
    w = [named[n].detach() for n in weight_names]
    alpha = {n: named[n].detach().requires_grad_(True) for n in arch_names}
    buffers = {n: b.clone() for n, b in model.named_buffers()}

    def params(ws: list[torch.Tensor]) -> dict[str, torch.Tensor]:
        return {**dict(zip(weight_names, ws)), **alpha}

    # 1. unrolled weights w' = w - xi * (momentum * buf + grad + wd * w)
    wt = [t.clone().requires_grad_(True) for t in w]
    g_train = torch.autograd.grad(_loss(model, params(wt), buffers, train_batch, loss_fn), wt, allow_unused=True)
    bufs = momentum_buffers or [None] * len(w)
    w_prime = []
    for t, g, b in zip(w, g_train, bufs):
        g = torch.zeros_like(t) if g is None else g
        step = g + weight_decay * t + (momentum * b if b is not None else 0.0)
        w_prime.append((t - xi * step).detach().requires_grad_(True))
    # 2. validation loss at w'; its gradient for alpha and for w'
    val_loss = _loss(model, params(w_prime), buffers, val_batch, loss_fn)
    grads = torch.autograd.grad(val_loss, list(alpha.values()) + w_prime, allow_unused=True)
    d_alpha = [torch.zeros_like(a) if g is None else g for a, g in zip(alpha.values(), grads[:len(alpha)])]
    v = [torch.zeros_like(t) if g is None else g for t, g in zip(w, grads[len(alpha):])]
    if xi == 0.0:
        return d_alpha, val_loss.detach()
    # 3. finite-difference Hessian-vector product on the train loss
    eps = r / torch.sqrt(sum((t * t).sum() for t in v)).clamp_min(1e-12)
    hv = []
    for sign in (1.0, -1.0):
        ws = [t + sign * eps * d for t, d in zip(w, v)]
        loss = _loss(model, params(ws), buffers, train_batch, loss_fn)
        hv.append(torch.autograd.grad(loss, list(alpha.values()), allow_unused=True))
    implicit = [(torch.zeros_like(a) if p is None else p) - (torch.zeros_like(a) if m is None else m)
                for a, p, m in zip(alpha.values(), hv[0], hv[1])]
    return [g - xi * h / (2 * eps) for g, h in zip(d_alpha, implicit)], val_loss.detach()


def exact_unrolled_arch_grads(model: nn.Module, weight_names: list[str], arch_names: list[str],
                              train_batch, val_batch, loss_fn: LossFn, xi: float, momentum: float = 0.0,
                              weight_decay: float = 0.0, momentum_buffers=None) -> list[torch.Tensor]:
    """The same hypergradient by differentiating through the unrolled step (exact; for tests and tiny nets)."""
    named = dict(model.named_parameters())
    w = [named[n].detach().clone().requires_grad_(True) for n in weight_names]
    alpha = {n: named[n].detach().clone().requires_grad_(True) for n in arch_names}
    buffers = {n: b.clone() for n, b in model.named_buffers()}
    p = {**dict(zip(weight_names, w)), **alpha}
    g = torch.autograd.grad(_loss(model, p, buffers, train_batch, loss_fn), w, create_graph=True)
    bufs = momentum_buffers or [None] * len(w)
    w_prime = [t - xi * (gi + weight_decay * t + (momentum * b if b is not None else 0.0))
               for t, gi, b in zip(w, g, bufs)]
    val = _loss(model, {**dict(zip(weight_names, w_prime)), **alpha}, buffers, val_batch, loss_fn)
    return list(torch.autograd.grad(val, list(alpha.values())))
