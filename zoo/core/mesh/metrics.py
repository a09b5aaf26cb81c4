"""Evaluation metrics of the mesh-reconstruction paper (spec section 6; the protocols are Mesh R-CNN's, since the
paper's own evaluation text was not reachable): F1@tau, exact EMD, voxel IoU and the two scale protocols."""
from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np
import torch
from torch import Tensor

from zoo.core.mesh.ops import _nn_sq, chamfer_distance

GT10_THRESHOLDS = (0.1, 0.3, 0.5)
P2M_SCALE = 0.57
P2M_THRESHOLDS = (math.sqrt(1e-4), math.sqrt(2e-4))


def nn_distances(x: Tensor, y: Tensor, chunk: int | str | None = "auto") -> Tensor:
    """Euclidean distance (N,) from each point of ``x (N,3)`` to its nearest neighbour in ``y (M,3)``."""
    return (x - y[_nn_sq(x, y, 1, chunk)[:, 0]]).norm(dim=-1)


def f1_score(pred: Tensor, gt: Tensor, thresholds: Sequence[float] = GT10_THRESHOLDS) -> dict[float, float]:
    """F1@tau in [0,1] per threshold (Mesh R-CNN ``compare_meshes``; it reports percentages): harmonic mean of the
    fraction of predicted points within tau of the GT (precision) and of GT points within tau of the prediction."""
    d_pg, d_gp = nn_distances(pred, gt), nn_distances(gt, pred)
    out = {}
    for t in thresholds:
        p, r = float((d_pg < t).float().mean()), float((d_gp < t).float().mean())
        out[float(t)] = 2 * p * r / (p + r) if p + r > 0 else 0.0
    return out


def emd_exact(x: Tensor, y: Tensor) -> float:
    """Exact earth mover's distance between equal-size clouds: the optimal one-to-one assignment
    (``scipy.optimize.linear_sum_assignment`` on squared distances), reported as sqrt of the mean matched squared distance."""
    from scipy.optimize import linear_sum_assignment

    if x.shape != y.shape:
        raise ValueError(f"emd_exact needs two clouds of the same size, got {tuple(x.shape)} and {tuple(y.shape)}")
    cost = torch.cdist(x.double(), y.double()).pow(2).cpu().numpy()
    r, c = linear_sum_assignment(cost)
    return float(np.sqrt(cost[r, c].mean()))


def emd_sinkhorn(x: Tensor, y: Tensor, eps: float = 1e-3, iters: int = 500) -> Tensor:
    """Entropic EMD in torch (log-domain Sinkhorn, uniform weights, squared-distance cost scaled by its mean so
    ``eps`` is relative; spec section 6's alternative to ``emd_exact``): sqrt of the transport cost, differentiable."""
    cost = torch.cdist(x, y).pow(2)
    scale = cost.detach().mean().clamp(min=1e-12)
    c = cost / scale
    n, m = c.shape
    log_a = torch.full((n,), -math.log(n), dtype=c.dtype, device=c.device)
    log_b = torch.full((m,), -math.log(m), dtype=c.dtype, device=c.device)
    f, g = torch.zeros_like(log_a), torch.zeros_like(log_b)
    for _ in range(iters):
        f = -eps * torch.logsumexp((g[None, :] - c) / eps + log_b[None, :], dim=1)
        g = -eps * torch.logsumexp((f[:, None] - c) / eps + log_a[:, None], dim=0)
    plan = torch.exp((f[:, None] + g[None, :] - c) / eps + log_a[:, None] + log_b[None, :])
    return ((plan * cost).sum() / plan.sum()).clamp(min=0).sqrt()


def winding_numbers(verts: Tensor, faces: Tensor, query: Tensor, chunk: int = 262_144) -> Tensor:
    """Generalised winding number (Q,) of a triangle mesh at ``query (Q,3)``: sum of signed solid angles / 4pi
    (Van Oosterom-Strackee), in float32, ``chunk`` query-face pairs at a time; about 1 inside a closed outward-wound
    mesh, 0 outside, and graceful for open or soup meshes. Queries outside the mesh's bounding box get 0."""
    tri = verts.detach().float()[faces]  # (F,3,3)
    a0, b0, c0 = tri[:, 0], tri[:, 1], tri[:, 2]
    out = torch.zeros(query.shape[0], device=query.device)
    if faces.shape[0] == 0:
        return out
    lo, hi = verts.detach().min(0).values, verts.detach().max(0).values
    idx = torch.nonzero(((query >= lo) & (query <= hi)).all(-1)).squeeze(-1)
    step = max(1, chunk // faces.shape[0])
    for s in range(0, idx.numel(), step):
        i = idx[s:s + step]
        p = query[i].float()[:, None, :]
        a, b, c = a0 - p, b0 - p, c0 - p
        la, lb, lc = a.norm(dim=-1), b.norm(dim=-1), c.norm(dim=-1)
        num = (a * torch.cross(b, c, dim=-1)).sum(-1)
        den = la * lb * lc + (a * b).sum(-1) * lc + (a * c).sum(-1) * lb + (b * c).sum(-1) * la
        out[i] = torch.atan2(num, den).sum(-1) / (2 * math.pi)
    return out


def voxelize(verts: Tensor, faces: Tensor, lo: Tensor, pitch: float, resolution: int) -> Tensor:
    """Occupancy (R,R,R) bool of the cells whose centres have |winding number| > 0.5 (a filled voxelisation)."""
    ax = lo.double().unsqueeze(0) + (torch.arange(resolution, dtype=torch.float64).unsqueeze(1) + 0.5) * pitch
    g = torch.stack(torch.meshgrid(ax[:, 0], ax[:, 1], ax[:, 2], indexing="ij"), -1).reshape(-1, 3)
    return (winding_numbers(verts.detach().cpu(), faces.cpu(), g.float()).abs() > 0.5).reshape(resolution, resolution,
                                                                                               resolution)


def voxel_iou(mesh_a: tuple[Tensor, Tensor], mesh_b: tuple[Tensor, Tensor], resolution: int = 32) -> float:
    """IoU of the filled voxelisations of two meshes on one cubic ``resolution``^3 grid spanning both bounding boxes.

    Filling uses generalised winding numbers in torch rather than trimesh's ``voxelized().fill()``, so open or
    fragmented predicted meshes still get an inside (spec section 6 names both).
    """
    (va, fa), (vb, fb) = mesh_a, mesh_b
    pts = torch.cat([va.detach().cpu(), vb.detach().cpu()]).double()
    lo, hi = pts.min(0).values, pts.max(0).values
    side = float((hi - lo).max()) * (1 + 1e-6) + 1e-12
    lo = (lo + hi) / 2 - side / 2
    pitch = side / resolution
    occ_a, occ_b = voxelize(va, fa, lo, pitch, resolution), voxelize(vb, fb, lo, pitch, resolution)
    union = (occ_a | occ_b).sum()
    return float((occ_a & occ_b).sum()) / float(union) if union > 0 else 0.0


def normalize_scale(points: Tensor, longest_edge: float = 10.0) -> float:
    """Factor that makes the longest edge of the bounding box of ``points`` (or GT verts) equal ``longest_edge``."""
    extent = float((points.max(0).values - points.min(0).values).max())
    if extent <= 0:
        raise ValueError("normalize_scale: the points have a zero-size bounding box")
    return longest_edge / extent


def eval_protocol_scale(pred_pts: Tensor, gt_pts: Tensor, protocol: str = "gt-10",
                        gt_verts: Tensor | None = None) -> tuple[Tensor, Tensor, tuple[float, ...]]:
    """Scale prediction and GT for one of the spec's two protocols; returns (pred, gt, F1 thresholds).

    "gt-10" (Mesh R-CNN Table 2): both times the factor that makes the GT bounding box's longest edge 10 (from
    ``gt_verts`` when given, else from ``gt_pts``), tau 0.1/0.3/0.5. "p2m" (Pixel2Mesh, Mesh R-CNN Table 1): both times
    0.57, tau sqrt(1e-4) and sqrt(2e-4) (P2M's thresholds are on squared distances).
    """
    if protocol == "gt-10":
        s = normalize_scale(gt_verts if gt_verts is not None else gt_pts, 10.0)
        return pred_pts * s, gt_pts * s, GT10_THRESHOLDS
    if protocol == "p2m":
        return pred_pts * P2M_SCALE, gt_pts * P2M_SCALE, P2M_THRESHOLDS
    raise ValueError(f"unknown evaluation protocol {protocol!r}; expected 'gt-10' or 'p2m'")


def compare_points(pred_pts: Tensor, gt_pts: Tensor, pred_normals: Tensor | None = None,
                   gt_normals: Tensor | None = None, protocol: str = "gt-10",
                   gt_verts: Tensor | None = None) -> dict[str, float]:
    """Mesh R-CNN ``compare_meshes`` on sampled clouds: chamfer (squared L2, after scaling), absolute normal
    consistency (mean |cos|, in [0,1]; higher is better) and F1 at the protocol's thresholds."""
    p, g, taus = eval_protocol_scale(pred_pts, gt_pts, protocol, gt_verts)
    cd, nd = chamfer_distance(p.unsqueeze(0), g.unsqueeze(0),
                              None if pred_normals is None else pred_normals.unsqueeze(0),
                              None if gt_normals is None else gt_normals.unsqueeze(0))
    out = {"chamfer": float(cd[0])}
    if nd is not None:
        out["normal"] = 1.0 - float(nd[0])
    out.update({f"f1@{t:g}": v for t, v in f1_score(p, g, taus).items()})
    return out
