"""Triangulation layer of the mesh reconstruction paper (IBISC): kNN-clique candidate triangles, a per-candidate
policy network, Bernoulli sampling for RL and greedy manifold-preserving decoding at test time. All of it is
reconstructed (spec 3.3); the candidate and triangle-frame design follows PointTriNet (Sharp & Ovsjanikov, 2020)."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

GEOM_DIM = 11  # sorted edge ratios (3), area ratio (1), sorted angles (3), centroid (3), PCA-normal agreement (1)
POINT_DIM = 6  # neighbour in the triangle frame: x, y, normal offset, barycentrics u, v, w


def knn_indices(verts: torch.Tensor, k: int) -> torch.Tensor:
    """Indices ``(N, k)`` of each vertex's k nearest other vertices (torch.cdist + topk)."""
    n = verts.shape[0]
    if n < 2:
        raise ValueError(f"need at least 2 vertices for a kNN graph, got {n}")
    k = min(k, n - 1)
    d = torch.cdist(verts, verts)
    d.fill_diagonal_(float("inf"))
    return d.topk(k, dim=1, largest=False).indices


def clique_candidates(knn: torch.Tensor) -> torch.Tensor:
    """Every 3-clique ``(i<j<l)`` of the symmetrised kNN graph, as candidate triangles ``(T, 3)``."""
    n = knn.shape[0]
    adj = torch.zeros(n, n, dtype=torch.bool, device=knn.device)
    adj[torch.arange(n, device=knn.device).repeat_interleave(knn.shape[1]), knn.reshape(-1)] = True
    adj = adj | adj.T
    adj.fill_diagonal_(False)
    ei, ej = torch.triu(adj, diagonal=1).nonzero(as_tuple=True)
    common = adj[ei] & adj[ej] & (torch.arange(n, device=knn.device)[None, :] > ej[:, None])
    e_idx, l_idx = common.nonzero(as_tuple=True)
    return torch.stack([ei[e_idx], ej[e_idx], l_idx], dim=1)


def pca_normals(verts: torch.Tensor, knn: torch.Tensor) -> torch.Tensor:
    """Unit normal of each vertex's neighbourhood (itself + kNN): the least-variance principal axis."""
    pts = torch.cat([verts[:, None], verts[knn]], dim=1)
    centred = pts - pts.mean(dim=1, keepdim=True)
    cov = centred.transpose(1, 2) @ centred + 1e-9 * torch.eye(3, device=verts.device, dtype=verts.dtype)
    return torch.linalg.eigh(cov)[1][..., 0]


class CandidateBuilder(nn.Module):
    """Parameter-free: vertex sets ``(B, N, 3)`` -> per sample ``(candidates (T, 3), knn (N, k))`` (spec 3.3)."""

    def __init__(self, k: int = 8) -> None:
        super().__init__()
        self.k = k

    @torch.no_grad()
    def forward(self, verts: torch.Tensor) -> list[tuple[torch.Tensor, torch.Tensor]]:
        out = []
        for v in verts:
            knn = knn_indices(v.detach().float(), self.k)
            out.append((clique_candidates(knn), knn))
        return out


def triangle_geometry(verts: torch.Tensor, tris: torch.Tensor, knn: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-candidate geometric features ``(T, 11)`` and its corners' neighbours in the triangle frame ``(T, 3k, 6)``."""
    a, b, c = verts[tris[:, 0]], verts[tris[:, 1]], verts[tris[:, 2]]
    edges = torch.stack([(b - c).norm(dim=-1), (c - a).norm(dim=-1), (a - b).norm(dim=-1)], dim=-1)
    scale = edges.mean().clamp_min(1e-8)
    cross = torch.cross(b - a, c - a, dim=-1)
    area = 0.5 * cross.norm(dim=-1)
    normal = cross / cross.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    e2 = edges.pow(2)
    cos = torch.stack([(e2[:, 1] + e2[:, 2] - e2[:, 0]) / (2 * edges[:, 1] * edges[:, 2]).clamp_min(1e-12),
                       (e2[:, 0] + e2[:, 2] - e2[:, 1]) / (2 * edges[:, 0] * edges[:, 2]).clamp_min(1e-12),
                       (e2[:, 0] + e2[:, 1] - e2[:, 2]) / (2 * edges[:, 0] * edges[:, 1]).clamp_min(1e-12)], dim=-1)
    angles = torch.acos(cos.clamp(-1 + 1e-6, 1 - 1e-6)).sort(dim=-1).values
    centroid = (a + b + c) / 3
    agree = (pca_normals(verts, knn)[tris] * normal[:, None]).sum(-1).abs().mean(-1, keepdim=True)
    geom = torch.cat([edges.sort(dim=-1).values / scale, (area / area.mean().clamp_min(1e-12))[:, None], angles,
                      centroid, agree], dim=-1)
    # neighbours of the three corners in the triangle frame (PointTriNet's encoding), scaled by the mean edge
    pts = verts[knn[tris].reshape(tris.shape[0], -1)]  # (T, 3k, 3)
    e1 = F.normalize(b - a, dim=-1)
    frame = torch.stack([e1, torch.cross(normal, e1, dim=-1), normal], dim=1)  # (T, 3, 3)
    local = torch.einsum("tpd,tjd->tpj", pts - centroid[:, None], frame) / scale
    v0, v1, v2 = (b - a)[:, None], (c - a)[:, None], pts - a[:, None]
    d00, d01, d11 = (v0 * v0).sum(-1), (v0 * v1).sum(-1), (v1 * v1).sum(-1)
    d20, d21 = (v2 * v0).sum(-1), (v2 * v1).sum(-1)
    denom = (d00 * d11 - d01 * d01).clamp_min(1e-12)
    bv = (d11 * d20 - d01 * d21) / denom
    bw = (d00 * d21 - d01 * d20) / denom
    bary = torch.stack([1 - bv - bw, bv, bw], dim=-1).clamp(-3.0, 3.0)
    return geom, torch.cat([local, bary], dim=-1)


class TrianglePolicy(nn.Module):
    """Per-candidate keep probability: PointNet over the triangle-frame neighbours + geometry + image features,
    MLP 128 -> 128 -> 1 (spec 3.3, reconstructed)."""

    def __init__(self, img_dim: int, global_dim: int, hidden: int = 128, point_hidden: int = 64,
                 feat_hidden: int = 32, init_prob: float = 0.5, stop_head: bool = False) -> None:
        super().__init__()
        self.point_mlp = nn.Sequential(nn.Linear(POINT_DIM, point_hidden), nn.ReLU(inplace=True),
                                       nn.Linear(point_hidden, point_hidden), nn.ReLU(inplace=True))
        self.vert_proj = nn.Sequential(nn.Linear(img_dim, feat_hidden), nn.ReLU(inplace=True))
        self.global_proj = nn.Sequential(nn.Linear(global_dim, feat_hidden), nn.ReLU(inplace=True))
        in_dim = GEOM_DIM + point_hidden + 2 * feat_hidden + feat_hidden
        self.head = nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(inplace=True), nn.Linear(hidden, hidden),
                                  nn.ReLU(inplace=True), nn.Linear(hidden, 1))
        nn.init.zeros_(self.head[-1].weight)
        nn.init.constant_(self.head[-1].bias, float(torch.logit(torch.tensor(init_prob))))
        # sequential episodes (spec 3.3 alternative): a stop score from the global code
        self.stop = nn.Linear(feat_hidden, 1) if stop_head else None
        if self.stop is not None:
            nn.init.zeros_(self.stop.weight)
            nn.init.zeros_(self.stop.bias)

    def stop_logit(self, global_code: torch.Tensor) -> torch.Tensor:
        """Score of the stop action (sequential MDP only)."""
        return self.stop(self.global_proj(global_code)).squeeze(-1)

    def forward(self, verts: torch.Tensor, tris: torch.Tensor, knn: torch.Tensor, vert_feats: torch.Tensor,
                global_code: torch.Tensor) -> torch.Tensor:
        """Logits ``(T,)`` for the candidates ``tris`` of one vertex set ``verts (N, 3)``."""
        if tris.numel() == 0:
            return verts.new_zeros(0)
        geom, pts = triangle_geometry(verts, tris, knn)
        pooled = self.point_mlp(pts).max(dim=1).values
        corner = self.vert_proj(vert_feats)[tris]  # (T, 3, C)
        glob = self.global_proj(global_code).expand(tris.shape[0], -1)
        x = torch.cat([geom, pooled, corner.mean(1), corner.max(1).values, glob], dim=-1)
        return self.head(x).squeeze(-1)


def stable_probs(logits: torch.Tensor, eps: float = 1e-4) -> torch.Tensor:
    """``p <- (1 - eps) sigmoid + eps / 2``: keeps log-probabilities finite (spec 10, pitfalls)."""
    return (1 - eps) * torch.sigmoid(logits) + eps / 2


def bernoulli_log_prob(probs: torch.Tensor, actions: torch.Tensor) -> torch.Tensor:
    """``log pi(a|s)`` of keep/drop actions ``(M, T)`` under the factorised Bernoulli policy, summed over T."""
    a = actions.to(probs.dtype)
    return (a * probs.log() + (1 - a) * (1 - probs).log()).sum(-1)


def bernoulli_entropy(probs: torch.Tensor) -> torch.Tensor:
    """Mean per-candidate entropy of the factorised Bernoulli policy."""
    return -(probs * probs.log() + (1 - probs) * (1 - probs).log()).mean()


def greedy_manifold_decode(tris: torch.Tensor, probs: torch.Tensor, num_vertices: int, min_prob: float = 0.05,
                           max_faces: int | None = None) -> torch.Tensor:
    """Test-time decoding: accept candidates by descending probability unless one of their edges already has two
    faces; stop below ``min_prob`` or at ``max_faces`` (default 2N, a closed genus-0 mesh). Returns a keep mask."""
    keep = torch.zeros(tris.shape[0], dtype=torch.bool)
    if tris.numel() == 0:
        return keep.to(tris.device)
    max_faces = 2 * num_vertices if max_faces is None else max_faces
    p = probs.detach().float().cpu()
    order = torch.argsort(p, descending=True, stable=True).tolist()
    t = tris.detach().cpu()
    keys = torch.stack([torch.minimum(t[:, [0, 1, 2]], t[:, [1, 2, 0]]) * num_vertices
                        + torch.maximum(t[:, [0, 1, 2]], t[:, [1, 2, 0]])], dim=0)[0].tolist()
    pl = p.tolist()
    count: dict[int, int] = {}
    n_kept = 0
    for idx in order:
        if pl[idx] < min_prob or n_kept >= max_faces:
            break
        e = keys[idx]
        if count.get(e[0], 0) < 2 and count.get(e[1], 0) < 2 and count.get(e[2], 0) < 2:
            keep[idx] = True
            n_kept += 1
            for key in e:
                count[key] = count.get(key, 0) + 1
    return keep.to(tris.device)
