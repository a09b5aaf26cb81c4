"""Losses of the mesh reconstruction paper (IBISC; weights reconstructed from Mesh R-CNN / Pixel2Mesh, spec 3.5):
the VGN vertex-set chamfer and the per-stage mesh loss chamfer + normal + edge + Laplacian."""
from __future__ import annotations

import torch

from zoo.core.mesh import ops


def vertex_set_chamfer(verts: torch.Tensor, points: torch.Tensor) -> torch.Tensor:
    """``L_V = CD(V, P)`` per image ``(B,)``: squared-L2 chamfer between the unordered VGN vertices and GT samples."""
    return ops.chamfer_distance(verts, points)[0]


def mesh_loss(verts: torch.Tensor, faces: torch.Tensor, gt_points: torch.Tensor, gt_normals: torch.Tensor,
              num_points: int = 1000, w_chamfer: float = 1.0, w_normal: float = 0.1, w_edge: float = 0.2,
              w_laplacian: float = 0.05) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Loss of one refined mesh against its GT surface samples; a mesh without faces contributes nothing."""
    if faces.shape[0] == 0:
        z = verts.sum() * 0.0
        return z, {"chamfer": z.detach(), "normal": z.detach()}
    pts, nrm = ops.sample_points(verts, faces, num_points)
    cd, nd = ops.chamfer_distance(pts[None], gt_points[None], nrm[None], gt_normals[None])
    total = w_chamfer * cd[0] + w_normal * nd[0]
    if w_edge:
        total = total + w_edge * ops.edge_loss(verts, faces)
    if w_laplacian:
        total = total + w_laplacian * ops.laplacian_loss(verts, faces)
    return total, {"chamfer": cd[0].detach(), "normal": nd[0].detach()}
