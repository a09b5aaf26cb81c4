"""Sequential triangulation episodes, the spec's alternative MDP (mesh reconstruction paper, IBISC; reconstructed,
spec 3.3): add one candidate triangle per step from a softmax over the candidates that keep every edge manifold, or
stop. With ``p_t = sigmoid(l_t - l_stop)`` the step distribution is ``softmax([logit(p_t) for valid t] + [0])``, so
the greedy episode is exactly ``greedy_manifold_decode(..., min_prob=0.5)``."""
from __future__ import annotations

import torch

from zoo.core.mesh import ops


def _edge_incidence(tris: torch.Tensor) -> tuple[list[list[int]], list[list[int]]]:
    """For each candidate its 3 edge ids, and for each edge id the candidates containing it."""
    ids = ops.face_edge_ids(tris.detach().cpu())
    tri_edges = ids.tolist()
    members: list[list[int]] = [[] for _ in range(int(ids.max()) + 1)]
    for c, es in enumerate(tri_edges):
        for e in es:
            members[e].append(c)
    return tri_edges, members


def sample_episodes(probs: torch.Tensor, tris: torch.Tensor, num_vertices: int, num_episodes: int,
                    max_faces: int | None = None,
                    generator: torch.Generator | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``num_episodes`` manifold-masked episodes: keep masks ``(M, T)``, differentiable log-probabilities ``(M,)``
    (sum over steps, the stop step included) and the mean per-step entropy of the policy."""
    t_count = tris.shape[0]
    max_faces = 2 * num_vertices if max_faces is None else max_faces
    scores = torch.cat([torch.logit(probs), probs.new_zeros(1)])  # the stop action scores 0
    tri_edges, members = _edge_incidence(tris)
    s = scores.detach().cpu()
    keeps = torch.zeros(num_episodes, t_count, dtype=torch.bool)
    masks, chosen, owner = [], [], []
    for m in range(num_episodes):
        valid = torch.ones(t_count + 1, dtype=torch.bool)
        count = [0] * len(members)
        faces = 0
        while True:
            masks.append(valid.clone())
            pick = int(torch.multinomial(torch.softmax(s.masked_fill(~valid, float("-inf")), 0), 1,
                                         generator=generator))
            chosen.append(pick)
            owner.append(m)
            if pick == t_count:  # stop
                break
            keeps[m, pick] = True
            faces += 1
            valid[pick] = False
            for e in tri_edges[pick]:
                count[e] += 1
                if count[e] >= 2:
                    valid[members[e]] = False
            if faces >= max_faces or not bool(valid[:t_count].any()):
                break
    mask = torch.stack(masks).to(probs.device)
    logp_all = torch.log_softmax(scores.expand(mask.shape[0], -1).masked_fill(~mask, float("-inf")), dim=1)
    idx = torch.tensor(chosen, device=probs.device)
    step_logp = logp_all.gather(1, idx[:, None])[:, 0]
    logp = torch.zeros(num_episodes, device=probs.device, dtype=probs.dtype).index_add(
        0, torch.tensor(owner, device=probs.device), step_logp)
    p_all = logp_all.exp()
    entropy = -(p_all * logp_all.masked_fill(~mask, 0.0)).sum(1).mean()
    return keeps.to(tris.device), logp, entropy
