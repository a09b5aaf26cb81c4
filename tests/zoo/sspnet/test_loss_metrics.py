"""SSP-Net masked loss and the 3D pose metrics, each against a hand computation."""
import math

import numpy as np
import pytest
import torch

from zoo.sspnet.losses import INVALID, block_loss, build_targets, sspnet_loss
from zoo.sspnet.metrics import (PCK_THRESHOLDS, PerBlockPoseMetrics, auc3d, lift_to_camera, mpjpe, pa_mpjpe,
                                pck3d, procrustes_align)


def test_l1l2_loss_masks_nonpositive_targets():
    pred = torch.tensor([[[0.5, 0.5, 0.9, 0.5], [0.2, 0.3, 0.4, 0.5]]])
    target = torch.tensor([[[0.4, 0.7, INVALID, 1.0], [INVALID, INVALID, INVALID, 0.0]]])
    # valid: u (e=.1), v (e=-.2) of joint 0 -> (|.1|+.01+|.2|+.04) / 1 valid joint
    assert block_loss(pred, target, "l1l2").item() == pytest.approx(0.1 + 0.01 + 0.2 + 0.04, abs=1e-6)
    pred2 = pred.clone()
    pred2[0, 0, 2] = 0.1  # the masked depth of a 2D-only joint changes nothing
    pred2[0, 1, :3] = 0.9
    assert block_loss(pred2, target, "l1l2").item() == pytest.approx(block_loss(pred, target, "l1l2").item())


def test_bincross_terms_match_hand_computation():
    pred = torch.tensor([[[0.5, 0.5, 0.5, 0.8]]])
    target = torch.tensor([[[0.25, 0.5, 0.75, 1.0]]])
    bce = lambda y, p: -(y * math.log(p) + (1 - y) * math.log(1 - p))  # noqa: E731
    coords = (0.25 + 0.0625) * 2 + 0.01 * (bce(0.25, 0.5) + bce(0.5, 0.5) + bce(0.75, 0.5))
    expect = coords + 0.01 * bce(1.0, 0.8)
    assert block_loss(pred, target).item() == pytest.approx(expect, abs=1e-5)
    assert sspnet_loss([pred, pred], target).item() == pytest.approx(2 * expect, abs=1e-5)


def test_build_targets_sentinels_and_visibility():
    uvz = torch.tensor([[[0.5, 0.5, 0.6], [1.2, 0.5, 0.6], [0.3, 0.3, 0.0]]])
    ann = torch.tensor([[[1, 1, 1], [1, 1, 1], [1, 1, 0]]], dtype=torch.float32)
    t = build_targets(uvz, ann)[0]
    torch.testing.assert_close(t[0], torch.tensor([0.5, 0.5, 0.6, 1.0]))
    assert (t[1, :3] == INVALID).all() and t[1, 3] == 0  # outside the crop: invisible, no coordinates
    assert t[2, 2] == INVALID and t[2, 3] == 1  # 2D-only joint: depth masked


def test_mpjpe_and_pck_auc_hand_values():
    gt = torch.zeros(1, 5, 3)
    gt[0, 1:, 0] = torch.tensor([100.0, 200.0, 300.0, 400.0])
    pred = gt.clone()
    offsets = torch.tensor([0.0, 100.0, 149.0, 151.0, 200.0])
    pred[0, :, 1] += offsets  # root moves too: root-aligned errors are offsets - offsets[0]
    assert mpjpe(pred, gt).item() == pytest.approx(float(offsets.mean()), abs=1e-4)
    assert pck3d(pred, gt).item() == pytest.approx(3 / 5)
    hand_auc = np.mean([np.mean(offsets.numpy() < t) for t in range(0, 155, 5)])
    assert len(PCK_THRESHOLDS) == 31
    assert auc3d(pred, gt).item() == pytest.approx(hand_auc, abs=1e-6)


def _umeyama_numpy(p, g):
    mp, mg = p.mean(0), g.mean(0)
    p0, g0 = p - mp, g - mg
    u, s, vt = np.linalg.svd(p0.T @ g0)
    d = np.sign(np.linalg.det(u @ vt))
    e = np.diag([1, 1, d])
    r = u @ e @ vt
    scale = (s * np.diag(e)).sum() / (p0 ** 2).sum()
    return scale * p0 @ r + mg


def test_procrustes_recovers_similarity_and_refuses_reflection():
    torch.manual_seed(0)
    gt = torch.randn(3, 17, 3) * 200
    q, _ = torch.linalg.qr(torch.randn(3, 3))
    q = q * torch.sign(torch.det(q))  # proper rotation
    pred = 1.7 * gt @ q + torch.tensor([50.0, -20.0, 300.0])
    assert pa_mpjpe(pred, gt).item() < 1e-3
    mirrored = gt * torch.tensor([-1.0, 1.0, 1.0])
    aligned = procrustes_align(mirrored, gt)
    ref = _umeyama_numpy(mirrored[0].double().numpy(), gt[0].double().numpy())
    np.testing.assert_allclose(aligned[0].numpy(), ref, atol=1e-3)
    err = pa_mpjpe(mirrored[:1], gt[:1]).item()
    assert err > 10  # a mirror image is not a rotation
    best_random = min(  # no random rotation (with the optimal scale and shift) does better
        pa_mpjpe(_rotated(mirrored[:1], seed), gt[:1]).item() for seed in range(200))
    assert err <= best_random + 1e-3


def _rotated(p, seed):
    g = torch.Generator().manual_seed(seed)
    q, _ = torch.linalg.qr(torch.randn(3, 3, generator=g))
    return p @ (q * torch.sign(torch.det(q)))


def test_lift_to_camera_inverts_the_crop_projection():
    pose = torch.tensor([[[0.0, 0.0, 4000.0], [300.0, -500.0, 4200.0], [-200.0, 400.0, 3800.0]]])
    fx, fy, cx, cy = 1100.0, 1050.0, 500.0, 480.0
    u_px = fx * pose[..., 0] / pose[..., 2] + cx
    v_px = fy * pose[..., 1] / pose[..., 2] + cy
    crop = torch.tensor([[300.0, 250.0, 600.0]])
    uvz = torch.stack([(u_px - 300) / 600, (v_px - 250) / 600, (pose[..., 2] - 4000) / 2000 + 0.5], -1)
    out = lift_to_camera(uvz, torch.tensor([[fx, fy, cx, cy]]), crop, torch.tensor([4000.0]), torch.tensor([2000.0]))
    torch.testing.assert_close(out, pose, atol=1e-2, rtol=0)


def test_per_block_metric_accumulates_like_the_functions():
    torch.manual_seed(1)
    gt = torch.randn(6, 17, 3) * 300
    p1, p2 = gt + torch.randn_like(gt) * 40, gt + torch.randn_like(gt) * 80
    m = PerBlockPoseMetrics(2)
    m.update([p1[:4], p2[:4]], gt[:4])
    m.update([p1[4:], p2[4:]], gt[4:])
    res = m.compute()
    assert res["mpjpe"][0].item() == pytest.approx(mpjpe(p1, gt).item(), rel=1e-5)
    assert res["pa_mpjpe"][1].item() == pytest.approx(pa_mpjpe(p2, gt).item(), rel=1e-4)
    assert res["pck150"][1].item() == pytest.approx(100 * pck3d(p2, gt).item(), rel=1e-5)
    assert res["mpjpe"][0] < res["mpjpe"][1]


def test_grouped_mpjpe_per_action_and_mean():
    from zoo.sspnet.metrics import GroupedMPJPE

    gt = torch.zeros(3, 2, 3)
    gt[:, 1, 0] = 100.0
    pred = gt.clone()
    pred[:, 1, 1] = torch.tensor([10.0, 30.0, 40.0])  # per-sample MPJPE: 5, 15, 20
    m = GroupedMPJPE()
    m.update(pred, gt, torch.tensor([2, 2, 7]))
    res = m.compute()
    assert set(res) == {2, 7}
    assert res[2].item() == pytest.approx(10.0) and res[7].item() == pytest.approx(20.0)
