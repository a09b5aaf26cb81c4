"""The three siamese SSL losses NASiam searches with (pure functions; Heuillet et al., arXiv 2302.00059).

SimSiam: symmetric negative cosine with stop-gradient (Chen & He, 2021); MoCo v2: symmetric InfoNCE against
a queue of momentum keys (He et al., 2020; Chen et al., 2020); SimCLR: NT-Xent over 2B views (Chen et al., 2020).
"""
from __future__ import annotations

import torch
import torch.nn.functional as F


def negative_cosine(p: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
    """-mean_i cos(p_i, sg(z_i)): the target branch gets no gradient (stop-gradient)."""
    return -F.cosine_similarity(p, z.detach(), dim=-1).mean()


def simsiam_loss(p1: torch.Tensor, p2: torch.Tensor, z1: torch.Tensor, z2: torch.Tensor) -> torch.Tensor:
    """L = -1/2 [cos(p1, sg(z2)) + cos(p2, sg(z1))]; minimum -1."""
    return 0.5 * (negative_cosine(p1, z2) + negative_cosine(p2, z1))


def infonce(q: torch.Tensor, k: torch.Tensor, queue: torch.Tensor, temperature: float) -> torch.Tensor:
    """Cross-entropy over [q.k+, q.queue] / T with the positive at index 0; q, k L2-normalised, queue (dim, K).

    The keys and the queue are treated as constants (no gradient), as in MoCo.
    """
    q = F.normalize(q, dim=1)
    k = F.normalize(k, dim=1).detach()
    l_pos = (q * k).sum(dim=1, keepdim=True)
    l_neg = q @ queue.detach()
    logits = torch.cat([l_pos, l_neg], dim=1) / temperature
    return F.cross_entropy(logits, torch.zeros(len(q), dtype=torch.long, device=q.device))


def moco_infonce(q1: torch.Tensor, q2: torch.Tensor, k1: torch.Tensor, k2: torch.Tensor, queue: torch.Tensor,
                 temperature: float = 0.1) -> torch.Tensor:
    """Symmetric MoCo loss L = l(q1, k2) + l(q2, k1) (the NASiam MoCo code's form)."""
    return infonce(q1, k2, queue, temperature) + infonce(q2, k1, queue, temperature)


def nt_xent(z1: torch.Tensor, z2: torch.Tensor, temperature: float = 0.5) -> torch.Tensor:
    """NT-Xent: for each of the 2B views, -log softmax of its positive among the other 2B - 1 views (cosine / T)."""
    if z1.shape != z2.shape:
        raise ValueError(f"nt_xent needs two views of the same shape, got {tuple(z1.shape)} and {tuple(z2.shape)}")
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    n = len(z1)
    sim = z @ z.t() / temperature
    sim = sim.masked_fill(torch.eye(2 * n, dtype=torch.bool, device=z.device), float("-inf"))
    target = torch.cat([torch.arange(n, 2 * n), torch.arange(0, n)]).to(z.device)
    return F.cross_entropy(sim, target)


def embedding_std(z: torch.Tensor) -> torch.Tensor:
    """Mean over dims of the per-dimension std of L2-normalised embeddings: 1/sqrt(d) without collapse, 0 if collapsed."""
    return F.normalize(z.detach().float(), dim=1).std(dim=0).mean()
