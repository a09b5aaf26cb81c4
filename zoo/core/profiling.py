"""Model cost: parameters, MACs (``torch.utils.flop_counter``; MACs = FLOPs / 2) and latency."""
from __future__ import annotations

import statistics
import time
from typing import Sequence

import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode, sdpa_flop_count

_aten = torch.ops.aten


def _sdpa_cpu_flop(query_shape, key_shape, value_shape, *args, out_shape=None, **kwargs) -> int:
    """FLOPs of the CPU flash-attention kernel, which torch's counter has no formula for."""
    return sdpa_flop_count(query_shape, key_shape, value_shape)


# Kernels that scaled_dot_product_attention dispatches to on CPU, missing from flop_registry.
_EXTRA_FLOPS = {
    op: _sdpa_cpu_flop
    for name in ("_scaled_dot_product_flash_attention_for_cpu",)
    if (op := getattr(_aten, name, None)) is not None
}


def count_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (shared tensors counted once)."""
    seen: set[int] = set()
    total = 0
    for p in model.parameters():
        if id(p) in seen or (trainable_only and not p.requires_grad):
            continue
        seen.add(id(p))
        total += p.numel()
    return total


def _example(model: nn.Module, x: torch.Tensor | Sequence[int], device: torch.device | str | None) -> torch.Tensor:
    if isinstance(x, torch.Tensor):
        return x
    if device is None:
        param = next(model.parameters(), None)
        device = param.device if param is not None else "cpu"
    return torch.zeros(tuple(x), device=device)


@torch.no_grad()
def count_macs(model: nn.Module, x: torch.Tensor | Sequence[int], device: torch.device | str | None = None) -> int:
    """Multiply-accumulates of one forward pass on ``x`` (a tensor or an input shape with batch dim).

    Counts convolutions, matmuls and attention as torch's flop counter does (not BN, activations
    or pooling), the convention of the FLOPs columns of torchvision and timm. A model on the
    ``meta`` device is counted without allocating memory. The fused fast path of
    ``nn.MultiheadAttention``/``TransformerEncoderLayer`` (invisible to the counter) is switched
    off while counting, and the CPU flash-attention kernel is counted, so attention counts on
    every device.
    """
    was_training = model.training
    fastpath = torch.backends.mha.get_fastpath_enabled()
    model.eval()
    torch.backends.mha.set_fastpath_enabled(False)
    try:
        with FlopCounterMode(display=False, custom_mapping=_EXTRA_FLOPS) as counter:
            model(_example(model, x, device))
    finally:
        torch.backends.mha.set_fastpath_enabled(fastpath)
        model.train(was_training)
    return counter.get_total_flops() // 2


@torch.no_grad()
def measure_latency(model: nn.Module, x: torch.Tensor, warmup: int = 5, repeats: int = 20) -> float:
    """Median wall time in seconds of ``model(x)`` in eval mode after ``warmup`` calls."""
    if repeats < 1:
        raise ValueError("repeats must be >= 1")
    was_training = model.training
    model.eval()
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)
    try:
        for _ in range(warmup):
            model(x)
        sync()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            model(x)
            sync()
            times.append(time.perf_counter() - start)
    finally:
        model.train(was_training)
    return statistics.median(times)


def summarize(model: nn.Module, input_shape: Sequence[int]) -> dict[str, float]:
    """``{"params": ..., "macs": ...}`` of ``model`` on an input of ``input_shape`` (batch of one)."""
    return {"params": count_params(model), "macs": count_macs(model, input_shape)}
