"""Vertex Generation Network head (mesh reconstruction paper, IBISC; the architecture is reconstructed, spec 3.2):
global image code -> MLP -> N unordered vertices, tanh-bounded to the normalised object box."""
from __future__ import annotations

from typing import Sequence

import torch
from torch import nn


class VertexGenerationHead(nn.Module):
    """MLP from the pooled image code to ``num_vertices`` xyz positions in ``[-box_scale, box_scale]^3``."""

    def __init__(self, in_dim: int, num_vertices: int = 96, hidden: Sequence[int] = (256, 256),
                 box_scale: float = 1.0) -> None:
        super().__init__()
        layers, c = [], in_dim
        for h in hidden:
            layers += [nn.Linear(c, h), nn.ReLU(inplace=True)]
            c = h
        layers.append(nn.Linear(c, num_vertices * 3))
        self.mlp = nn.Sequential(*layers)
        self.num_vertices = num_vertices
        self.box_scale = box_scale

    def forward(self, code: torch.Tensor) -> torch.Tensor:
        out = self.mlp(code).view(code.shape[0], self.num_vertices, 3)
        return torch.tanh(out) * self.box_scale


def surface_spacing(points: torch.Tensor, num_vertices: int) -> torch.Tensor:
    """Expected nearest-neighbour spacing ``(B, 1)`` of ``num_vertices`` points spread over the surface sampled by
    ``points (B, P, 3)``: the GT samples' mean NN distance times sqrt(P / N) (spacing ~ density^-1/2 on a surface)."""
    d = torch.cdist(points, points)
    d = d + torch.eye(points.shape[-2], device=points.device, dtype=points.dtype) * 1e6
    return d.min(dim=-1).values.mean(-1, keepdim=True) * (points.shape[-2] / num_vertices) ** 0.5


def repulsion_loss(verts: torch.Tensor, h: float | torch.Tensor) -> torch.Tensor:
    """Optional spreading term ``mean_i max(0, h - ||v_i - v_nn(i)||)`` (spec 3.2: h = half the NN spacing, e.g.
    ``0.5 * surface_spacing(gt_points, N)``), so the VGN vertices cover the surface instead of clumping."""
    d = torch.cdist(verts, verts)
    d = d + torch.eye(verts.shape[-2], device=verts.device, dtype=verts.dtype) * 1e6
    return torch.relu(h - d.min(dim=-1).values).mean()
