"""Sequential triangulation episodes (the spec's alternative MDP): every sampled mesh is edge-manifold, the
log-probability is the sum of the masked softmax steps, the greedy episode is the greedy decoder, and RLOO on
episodes learns which candidates to add."""
import math

import torch

from zoo.core.mesh import ops
from zoo.meshrec.episodes import sample_episodes
from zoo.meshrec.net import RLTriMeshNet
from zoo.meshrec.rl import rloo_loss
from zoo.meshrec.triangulation import CandidateBuilder, stable_probs


def test_episodes_are_edge_manifold_and_bounded():
    torch.manual_seed(0)
    v = torch.randn(60, 3)
    (tris, _), = CandidateBuilder(8)(v[None])
    probs = torch.full((tris.shape[0],), 0.9)
    keeps, logp, ent = sample_episodes(probs, tris, 60, 5, generator=torch.Generator().manual_seed(0))
    assert keeps.shape == (5, tris.shape[0]) and logp.shape == (5,) and ent > 0
    for k in keeps:
        assert 0 < int(k.sum()) <= 120 and ops.edge_face_counts(tris[k])[1].max() <= 2
    small = sample_episodes(probs, tris, 60, 2, max_faces=7)[0]
    assert (small.sum(1) <= 7).all()


def test_log_probability_and_frequencies_by_hand():
    """One candidate with p = 0.8: scores (logit 0.8, stop 0) -> add it with probability 0.8 (then nothing is left),
    or stop first with probability 0.2; two candidates on disjoint vertices: the first step's softmax over three."""
    probs = torch.tensor([0.8], requires_grad=True)
    keeps, logp, ent = sample_episodes(probs, torch.tensor([[0, 1, 2]]), 3, 400,
                                       generator=torch.Generator().manual_seed(0))
    added = keeps[:, 0]
    assert abs(float(added.float().mean()) - 0.8) < 0.06
    torch.testing.assert_close(logp.detach(), torch.where(added, math.log(0.8), math.log(0.2)).float())
    logp.mean().backward()
    assert probs.grad is not None and torch.isfinite(probs.grad).all()
    two = torch.tensor([0.8, 0.5])
    keeps, logp, _ = sample_episodes(two, torch.tensor([[0, 1, 2], [3, 4, 5]]), 6, 200,
                                     generator=torch.Generator().manual_seed(1))
    none = ~keeps.any(1)
    torch.testing.assert_close(logp[none], torch.full((int(none.sum()),), -math.log(4 + 1 + 1)))
    assert abs(float(none.float().mean()) - 1 / 6) < 0.07


def test_rloo_on_episodes_learns_to_add_the_good_candidates():
    torch.manual_seed(0)
    tris = torch.arange(60).view(20, 3)  # 20 disjoint candidates, the first 8 good
    good = torch.arange(20) < 8
    logits = torch.zeros(20, requires_grad=True)
    opt = torch.optim.Adam([logits], lr=0.1)
    for _ in range(150):
        p = stable_probs(logits)
        keeps, logp, ent = sample_episodes(p, tris, 60, 4)
        r = (keeps & good).float().sum(1) - (keeps & ~good).float().sum(1)
        opt.zero_grad()
        rloo_loss(logp, r, 20, ent).backward()
        opt.step()
    p = torch.sigmoid(logits.detach())
    assert p[good].min() > 0.5 > p[~good].max()


def test_sequential_net_decodes_the_greedy_episode_and_adds_a_stop_head():
    torch.manual_seed(0)
    kw = dict(in_chans=1, encoder_widths=[8, 8, 16, 16], num_vertices=30, vgn_hidden=[32], k=6, policy_hidden=16,
              refine_stages=1, refine_hidden=8)
    seq, bandit = RLTriMeshNet(mdp="sequential", **kw), RLTriMeshNet(**kw)
    assert seq.policy.stop is not None and bandit.policy.stop is None
    img = torch.rand(2, 1, 64, 64)
    seq.train()
    out = seq(img)
    for keep, tris in zip(out["keep"], out["candidates"]):
        assert ops.edge_face_counts(tris[keep])[1].max() <= 2
    seq.eval()
    with torch.no_grad():
        out = seq(img)
    for keep, p in zip(out["keep"], out["probs"]):
        assert (p[keep] >= 0.5).all()
