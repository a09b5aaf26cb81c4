"""SSP-Net loss (spec section 3.5): per prediction block, masked elastic-net on (u, v, z) plus BCE on visibility.

Targets <= 0 are ignored element-wise, so 2D-only samples (MPII, depth = -1e9) and 3D samples mix in one batch.
"""
from __future__ import annotations

from typing import Literal

import torch
import torch.nn.functional as F

LossName = Literal["l1l2bincross", "l1l2"]
INVALID = -1e9  # sentinel of missing targets (spec section 3.1)


def block_loss(pred: torch.Tensor, target: torch.Tensor, kind: LossName = "l1l2bincross",
               bce_weight: float = 0.01) -> torch.Tensor:
    """Loss of one block. ``pred`` (B, J, 4) = [u, v, z, c]; ``target`` (B, J, 4) = [u, v, z, visible].

    Coordinates: sum over valid elements of |e| + e^2 (+ 0.01 BCE) divided by the number of valid joints;
    visibility: 0.01 BCE averaged over joints whose visibility is defined (target >= 0).
    """
    if kind not in ("l1l2bincross", "l1l2"):
        raise ValueError(f"loss must be 'l1l2bincross' or 'l1l2', got {kind!r}")
    p, t = pred[..., :3].float(), target[..., :3].float()
    mask = t > 0
    t_safe = torch.where(mask, t, torch.zeros_like(t))
    err = (p - t_safe) * mask
    per_elem = err.abs() + err.square()
    if kind == "l1l2bincross":
        bce = F.binary_cross_entropy(p.clamp(1e-6, 1 - 1e-6), t_safe.clamp(0, 1), reduction="none")
        per_elem = per_elem + bce_weight * bce * mask
    n_valid = mask.any(-1).sum().clamp_min(1)
    loss = per_elem.sum() / n_valid
    if kind == "l1l2bincross":
        vis_t = target[..., 3].float()
        vmask = vis_t >= 0
        if vmask.any():
            vis_p = pred[..., 3].float().clamp(1e-6, 1 - 1e-6)
            loss = loss + bce_weight * F.binary_cross_entropy(vis_p[vmask], vis_t[vmask])
    return loss


def sspnet_loss(poses: list[torch.Tensor], target: torch.Tensor, kind: LossName = "l1l2bincross") -> torch.Tensor:
    """Sum of :func:`block_loss` over every prediction block (all weights 1, spec section 3.5)."""
    return torch.stack([block_loss(p, target, kind) for p in poses]).sum()


def build_targets(uvz: torch.Tensor, annotated: torch.Tensor) -> torch.Tensor:
    """(B, J, 4) targets [u, v, z, visible] from normalised joints and an annotated mask (B, J, 3).

    A joint outside the crop (u or v not in (0, 1)) gets visible = 0 and all its coordinates set to the
    sentinel, as in the authors' code; unannotated elements get the sentinel, visibility too if 2D is missing.
    """
    ann = annotated.bool()
    inside = ((uvz[..., :2] > 0) & (uvz[..., :2] < 1)).all(-1)
    has2d = ann[..., :2].all(-1)
    keep = ann & (inside & has2d).unsqueeze(-1)
    coords = torch.where(keep, uvz, torch.full_like(uvz, INVALID))
    vis = torch.where(has2d, inside.to(uvz.dtype), torch.full_like(uvz[..., 0], INVALID))
    return torch.cat([coords, vis.unsqueeze(-1)], dim=-1)
