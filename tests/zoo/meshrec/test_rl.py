"""RL of the triangulation layer: point-triangle distances, the reward terms, the RLOO estimator and the expected-loss
surrogate, each checked against a hand computation."""
import math

import pytest
import torch

from zoo.core.mesh import ops
from zoo.meshrec.rl import (RewardWeights, expected_losses, overlap_score, point_triangle_distance, rloo_loss,
                            triangulation_reward)


def test_point_triangle_distance_by_hand():
    tri = torch.tensor([[[0.0, 0, 0], [1, 0, 0], [0, 1, 0]]])
    pts = torch.tensor([[0.2, 0.2, 0.5], [2.0, 0, 0], [-1.0, -1.0, 0], [0.5, 0.5, -1.0], [0.5, -1.0, 0.0]])
    expect = torch.tensor([0.5, 1.0, math.sqrt(2), 1.0, 1.0])
    torch.testing.assert_close(point_triangle_distance(pts[:, None], tri[None])[:, 0], expect)


def test_rloo_advantages_and_gradient_by_hand():
    logp = torch.tensor([-1.0, -2.0, -3.0], requires_grad=True)
    r = torch.tensor([1.0, 2.0, 6.0])
    loss = rloo_loss(logp, r, num_candidates=10, entropy=None)
    adv = torch.tensor([1 - 4.0, 2 - 3.5, 6 - 1.5])  # r_m minus the mean of the others
    torch.testing.assert_close(loss, -(adv * logp.detach()).mean() / 10)
    loss.backward()
    torch.testing.assert_close(logp.grad, -adv / 3 / 10)
    with pytest.raises(ValueError):
        rloo_loss(logp[:1], r[:1], 10)
    # identical rewards carry no signal
    assert rloo_loss(logp, torch.ones(3), 10).item() == 0.0


def test_reward_prefers_the_true_surface_and_penalises_boundaries():
    v, f = ops.icosphere(1)
    gt, _ = ops.sample_points(v, f, 2000, generator=torch.Generator().manual_seed(0))
    tris = torch.cat([f, torch.tensor([[0, 1, 2], [3, 4, 5]])])
    full = torch.zeros(2, tris.shape[0], dtype=torch.bool)
    full[0, :f.shape[0]] = True  # the closed icosphere
    full[1, : f.shape[0] // 2] = True  # half of it
    w = RewardWeights(cd=10, nm=0.5, faces=0.1, overlap=0.0)
    r, terms = triangulation_reward(v, tris, full, gt, w, num_samples=2000, generator=torch.Generator().manual_seed(1))
    assert terms["nm"][0] == 0 and terms["nm"][1] > 0
    assert terms["faces"][0] == pytest.approx(abs(80 - 2 * 42) / (2 * 42))
    assert terms["cd"][0] < terms["cd"][1]
    assert r[0] > r[1]
    torch.testing.assert_close(r, -(10 * terms["cd"] + 0.5 * terms["nm"] + 0.1 * terms["faces"]))
    empty = torch.zeros(1, tris.shape[0], dtype=torch.bool)
    r_empty, t_empty = triangulation_reward(v, tris, empty, gt, w)
    assert t_empty["nm"][0] == 1 and t_empty["faces"][0] == 1 and r_empty[0] < r[1]


def test_overlap_counts_duplicated_triangles():
    v, f = ops.icosphere(1)
    assert overlap_score(v, f) < 0.05
    dup = torch.cat([f, f[:10]])  # 10 faces covered twice: 20 of 90 faces see one extra triangle
    assert overlap_score(v, dup) == pytest.approx(20 / 90, abs=0.03)


def test_expected_losses_match_the_deterministic_limits():
    v, f = ops.icosphere(1)
    gt, _ = ops.sample_points(v, f, 500, generator=torch.Generator().manual_seed(0))
    probs = torch.full((f.shape[0],), 1 - 1e-6, requires_grad=True)
    e = expected_losses(v, f, probs, gt)
    assert e["p2m"] < 1e-4 and e["m2p"] < 1e-2  # every triangle present: GT lies on the mesh
    assert e["watertight"] < 1e-3  # closed mesh, every half-edge has exactly one twin
    half = torch.where(torch.arange(f.shape[0]) < 40, 1 - 1e-6, 1e-6)
    e_half = expected_losses(v, f, half, gt)
    assert e_half["watertight"] > 0.05 and e_half["p2m"] > e["p2m"]
    (e["p2m"] + e["watertight"]).backward()
    assert probs.grad is not None and torch.isfinite(probs.grad).all()


def test_rloo_with_the_bernoulli_policy_learns_a_linear_bandit():
    """The estimator's sign and scale: with reward = kept good - kept bad candidates, RLOO raises p on the good ones."""
    from zoo.meshrec.triangulation import bernoulli_entropy, bernoulli_log_prob, stable_probs

    torch.manual_seed(0)
    good = torch.arange(200) < 80
    logits = torch.zeros(200, requires_grad=True)
    opt = torch.optim.Adam([logits], lr=0.05)
    for _ in range(100):
        p = stable_probs(logits)
        a = torch.bernoulli(p.detach().expand(4, -1)).bool()
        r = (a & good).float().sum(1) - (a & ~good).float().sum(1)
        loss = rloo_loss(bernoulli_log_prob(p, a), r, 200, bernoulli_entropy(p))
        opt.zero_grad()
        loss.backward()
        opt.step()
    p = torch.sigmoid(logits.detach())
    assert p[good].mean() > 0.6 and p[~good].mean() < 0.4
