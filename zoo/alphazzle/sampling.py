"""On-the-fly training samples of Alphazzle's supervised pre-training (arXiv 2302.00384, spec section 6.1).

P: k ~ U{0..A-1} fragments of a random order placed correctly; input (canvas, fragment k+1), target its cell.
V: as the official ``prepare_data_v`` (``lib/puzzles_generator_MET.py``): k ~ U{0..A} cells of a random order; even
samples place each cell's own fragment (label 1), odd ones place ``order[mix[i]]`` at cell ``order[i]`` with ``mix``
a random non-identity permutation of all A fragments (label 0, even when the placed ones happen to be right).
"""
from __future__ import annotations

import torch

from zoo.alphazzle.game import cell_mask, extract_fragments
from zoo.alphazzle.solve import _render_many

V_TARGETS = ("binary", "frac_correct")


def policy_batch(images: torch.Tensor, grid: int, frag: int, gap: int, generator: torch.Generator | None = None,
                 min_placed: int = 0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """(canvas (B, C, S, S), next fragment (B, C, f, f), true position (B,)) from images (B, C, S, S);
    k ~ U{min_placed..A-1} (``min_placed`` = the number of helper fragments)."""
    b, a = images.shape[0], grid * grid
    dev = images.device
    orders = torch.stack([torch.randperm(a, generator=generator) for _ in range(b)]).to(dev)
    k = torch.randint(min_placed, a, (b,), generator=generator).to(dev)
    rank = torch.empty_like(orders)
    rank.scatter_(1, orders, torch.arange(a, device=dev).expand(b, a).contiguous())  # rank[b, pos]
    placed = rank < k[:, None]
    canvas = images * cell_mask(placed, grid, frag, gap)
    target = orders.gather(1, k[:, None]).squeeze(1)
    frags = extract_fragments(images, grid, frag, gap)
    return canvas, frags[torch.arange(b, device=dev), target], target


def value_states(b: int, grid: int, generator: torch.Generator | None = None,
                 min_placed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(state (b, A): fragment at each cell or -1, label (b,)) as the official ``prepare_data_v``: sample i is a
    negative when i is odd; its cells ``order[:k]`` hold ``order[mix[:k]]``, ``mix`` a non-identity permutation."""
    a = grid * grid
    identity = torch.arange(a)
    state = torch.full((b, a), -1, dtype=torch.long)
    for i in range(b):
        order = torch.randperm(a, generator=generator)
        k = int(torch.randint(min_placed, a + 1, (1,), generator=generator))
        mix = identity
        if i % 2 == 1:
            while torch.equal(mix, identity):
                mix = torch.randperm(a, generator=generator)
        state[i, order[:k]] = order[mix[:k]]
    label = (torch.arange(b) % 2 == 0).float()
    return state, label


def value_batch(images: torch.Tensor, grid: int, frag: int, gap: int, v_target: str = "binary",
                generator: torch.Generator | None = None, min_placed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """(canvas (B, C, S, S), target (B,)): ``binary`` = the official label (1 for even samples, 0 for the odd,
    permuted ones), ``frac_correct`` = fraction of placed fragments at their cell (an MSE-style target; 1 for an
    empty canvas)."""
    if v_target not in V_TARGETS:
        raise ValueError(f"v_target must be one of {V_TARGETS}, got {v_target!r}")
    a = grid * grid
    state, label = value_states(images.shape[0], grid, generator, min_placed)
    state = state.to(images.device)
    canvas = _render_many(extract_fragments(images, grid, frag, gap), state, grid, frag, gap)
    if v_target == "binary":
        return canvas, label.to(images.device)
    placed = state >= 0
    correct = (state == torch.arange(a, device=images.device)) & placed
    target = correct.sum(1).float() / placed.sum(1).clamp(min=1).float()
    return canvas, torch.where(placed.sum(1) == 0, torch.ones_like(target), target)
