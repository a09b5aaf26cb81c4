"""Hierarchical graph-convolution refinement of the mesh reconstruction paper (IBISC; stage design reconstructed from
Mesh R-CNN's mesh head and Pixel2Mesh's coarse-to-fine hierarchy, spec 3.4): vert_align -> GraphConvs -> bounded
offsets, with midpoint subdivision (unpooling) between stages."""
from __future__ import annotations

import torch
from torch import nn

from zoo.core.mesh import ops


class RefinementStage(nn.Module):
    """One stage: image features at the projected vertices (Linear -> ReLU), [img, xyz, prev] -> GraphConvs with xyz
    re-concatenated -> zero-initialised Linear -> tanh offset (times ``offset_scale``)."""

    def __init__(self, img_dim: int, hidden: int = 128, prev_dim: int = 0, num_graphconv: int = 3,
                 offset_scale: float = 1.0) -> None:
        super().__init__()
        self.bottleneck = nn.Linear(img_dim, hidden)
        dims = [hidden + 3 + prev_dim] + [hidden + 3] * (num_graphconv - 1)
        self.convs = nn.ModuleList([ops.GraphConv(d, hidden) for d in dims])
        self.offset = nn.Linear(hidden + 3, 3)
        nn.init.zeros_(self.offset.weight)
        nn.init.zeros_(self.offset.bias)
        self.offset_scale = offset_scale
        self.hidden = hidden

    def forward(self, verts: torch.Tensor, faces: torch.Tensor, img_feats: list[torch.Tensor], P: torch.Tensor,
                image_size: tuple[int, int], prev: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor]:
        """One mesh ``verts (V,3), faces (F,3)`` with its image's maps (each ``(1,C,h,w)``) and ``P (1,3,4)``."""
        aligned = ops.vert_align(img_feats, verts[None], P, image_size)[0]
        x = torch.relu(self.bottleneck(aligned))
        parts = [x, verts] + ([prev] if prev is not None else [])
        x = torch.cat(parts, dim=-1)
        edges = ops.unique_edges(faces)
        for conv in self.convs:
            x = torch.cat([torch.relu(conv(x, edges)), verts], dim=-1)
        new_verts = verts + self.offset_scale * torch.tanh(self.offset(x))
        return new_verts, x[:, :self.hidden]


class HierarchicalRefiner(nn.Module):
    """``num_stages`` refinement stages with midpoint subdivision between consecutive stages (spec 3.4)."""

    def __init__(self, img_dim: int, num_stages: int = 3, hidden: int = 128, num_graphconv: int = 3,
                 offset_scale: float = 1.0, subdivide: bool = True) -> None:
        super().__init__()
        self.stages = nn.ModuleList([
            RefinementStage(img_dim, hidden, 0 if s == 0 else hidden, num_graphconv, offset_scale)
            for s in range(num_stages)])
        self.subdivide = subdivide

    def forward(self, meshes: list[tuple[torch.Tensor, torch.Tensor]], img_feats: list[torch.Tensor], P: torch.Tensor,
                image_size: tuple[int, int]) -> list[list[tuple[torch.Tensor, torch.Tensor]]]:
        """Meshes of a batch -> per stage, the list of refined meshes ``[(V_s, F_s), ...]``."""
        out: list[list[tuple[torch.Tensor, torch.Tensor]]] = [[] for _ in self.stages]
        for b, (verts, faces) in enumerate(meshes):
            maps = [f[b:b + 1] for f in img_feats]
            prev = None
            for s, stage in enumerate(self.stages):
                if s > 0 and self.subdivide and faces.shape[0] > 0:
                    verts, faces, prev = ops.subdivide(verts, faces, prev)
                verts, prev = stage(verts, faces, maps, P[b:b + 1], image_size, prev)
                out[s].append((verts, faces))
        return out

    def stage_forward(self, s: int, verts: torch.Tensor, faces: torch.Tensor, maps: list[torch.Tensor],
                      P: torch.Tensor, image_size: tuple[int, int],
                      prev: torch.Tensor | None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Stage ``s`` alone (with the subdivision before it), for per-stage timing: returns verts, faces, features."""
        if s > 0 and self.subdivide and faces.shape[0] > 0:
            verts, faces, prev = ops.subdivide(verts, faces, prev)
        verts, prev = self.stages[s](verts, faces, maps, P, image_size, prev)
        return verts, faces, prev
