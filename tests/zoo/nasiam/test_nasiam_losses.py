"""The SSL losses as pure functions, checked against hand computations."""
import math

import torch
import torch.nn.functional as F

from zoo.nasiam.losses import embedding_std, infonce, moco_infonce, negative_cosine, nt_xent, simsiam_loss


def test_simsiam_loss_is_symmetric_negative_cosine_with_stop_gradient():
    torch.manual_seed(0)
    p1, p2 = torch.randn(4, 8, requires_grad=True), torch.randn(4, 8, requires_grad=True)
    z1, z2 = torch.randn(4, 8, requires_grad=True), torch.randn(4, 8, requires_grad=True)
    loss = simsiam_loss(p1, p2, z1, z2)
    hand = -0.5 * (F.cosine_similarity(p1, z2).mean() + F.cosine_similarity(p2, z1).mean())
    torch.testing.assert_close(loss, hand)
    loss.backward()
    assert z1.grad is None and z2.grad is None and p1.grad.abs().sum() > 0  # the target branch is not differentiated
    x = torch.randn(3, 5)
    torch.testing.assert_close(negative_cosine(2 * x, x), torch.tensor(-1.0))


def test_infonce_matches_cross_entropy_over_positive_and_queue():
    torch.manual_seed(0)
    q, k, queue = torch.randn(3, 4), torch.randn(3, 4), F.normalize(torch.randn(4, 6), dim=0)
    qn, kn = F.normalize(q, dim=1), F.normalize(k, dim=1)
    hand = 0.0
    for i in range(3):
        logits = torch.cat([(qn[i] * kn[i]).sum().view(1), qn[i] @ queue]) / 0.2
        hand += -torch.log_softmax(logits, 0)[0] / 3
    torch.testing.assert_close(infonce(q, k, queue, 0.2), hand)
    k2 = torch.randn(3, 4)
    torch.testing.assert_close(moco_infonce(q, k2, k, q, queue, 0.2), infonce(q, q, queue, 0.2) + infonce(k2, k, queue, 0.2))


def test_nt_xent_matches_a_loop_over_the_2b_views():
    torch.manual_seed(0)
    z1, z2 = torch.randn(4, 6), torch.randn(4, 6)
    z = F.normalize(torch.cat([z1, z2]), dim=1)
    t, n, hand = 0.5, 4, 0.0
    for i in range(2 * n):
        pos = (i + n) % (2 * n)
        others = [j for j in range(2 * n) if j != i]
        denom = sum(math.exp(float(z[i] @ z[j]) / t) for j in others)
        hand += -(float(z[i] @ z[pos]) / t - math.log(denom)) / (2 * n)
    assert abs(float(nt_xent(z1, z2, t)) - hand) < 1e-5
    assert float(nt_xent(z1, z1 + 1e-3, t)) < float(nt_xent(z1, z2, t))  # aligned views give a lower loss


def test_embedding_std_detects_collapse():
    torch.manual_seed(0)
    assert float(embedding_std(torch.ones(100, 16) * torch.randn(1, 16))) < 1e-6
    assert abs(float(embedding_std(torch.randn(20000, 64))) - 1 / 8) < 0.005
