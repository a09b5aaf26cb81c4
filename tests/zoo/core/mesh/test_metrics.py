"""Evaluation metrics of the mesh paper (spec section 6) against closed forms and brute force."""
import itertools
import math

import pytest
import torch

from zoo.core.mesh import metrics, ops

torch.set_num_threads(1)


def _cube(offset=(0.0, 0.0, 0.0), size=1.0):
    import trimesh

    m = trimesh.creation.box(extents=(size,) * 3)
    v = torch.tensor(m.vertices, dtype=torch.float32) + size / 2 + torch.tensor(offset)
    return v, torch.tensor(m.faces, dtype=torch.long)


def test_f1_identical_and_hand_case():
    torch.manual_seed(0)
    x = torch.randn(200, 3)
    assert metrics.f1_score(x, x, (0.01, 0.1)) == {0.01: 1.0, 0.1: 1.0}
    # 3 predicted points, 2 within 0.1 of the GT; GT has 2 points, 1 within 0.1 of the prediction
    pred = torch.tensor([[0.0, 0, 0], [0.05, 0, 0], [5, 0, 0]])
    gt = torch.tensor([[0.0, 0, 0.02], [0, 9, 0]])
    p, r = 2 / 3, 1 / 2
    assert metrics.f1_score(pred, gt, (0.1,))[0.1] == pytest.approx(2 * p * r / (p + r))
    assert ops.f1_score is metrics.f1_score  # re-exported from ops


def test_emd_matches_brute_force_permutations():
    torch.manual_seed(1)
    for _ in range(3):
        x, y = torch.randn(6, 3), torch.randn(6, 3)
        best = min(float(((x - y[list(p)]) ** 2).sum(-1).mean()) for p in itertools.permutations(range(6)))
        assert metrics.emd_exact(x, y) == pytest.approx(math.sqrt(best), rel=1e-6)
    assert metrics.emd_exact(x, x[torch.randperm(6)]) == pytest.approx(0.0, abs=1e-7)
    with pytest.raises(ValueError, match="same size"):
        metrics.emd_exact(x, y[:5])


def test_sinkhorn_emd_approximates_the_exact_one_and_has_gradients():
    torch.manual_seed(2)
    x, y = torch.randn(32, 3, dtype=torch.float64, requires_grad=True), torch.randn(32, 3, dtype=torch.float64)
    approx = metrics.emd_sinkhorn(x, y)
    assert float(approx) == pytest.approx(metrics.emd_exact(x.detach(), y), rel=0.05)
    approx.backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    assert float(metrics.emd_sinkhorn(y, y)) < 0.05 * float(approx)


def test_voxel_iou_identical_and_offset_cubes():
    a = _cube()
    assert metrics.voxel_iou(a, a, resolution=16) == 1.0
    b = _cube(offset=(0.5, 0.0, 0.0))
    # overlap 0.5 of volume 1 each: IoU = 0.5 / 1.5
    assert metrics.voxel_iou(a, b, resolution=24) == pytest.approx(1 / 3, abs=0.02)
    # winding numbers: 1 inside, 0 outside a closed mesh, and independent of the sphere's resolution
    v, f = ops.icosphere(2)
    w = metrics.winding_numbers(v, f, torch.tensor([[0.0, 0, 0], [0.3, -0.2, 0.1], [2.0, 0, 0]]))
    assert torch.allclose(w.abs(), torch.tensor([1.0, 1.0, 0.0], dtype=w.dtype), atol=1e-6)


def test_protocol_scaling():
    gt = torch.tensor([[0.0, 0, 0], [2.0, 1, 0.5]])
    pred = gt + 0.1
    p, g, taus = metrics.eval_protocol_scale(pred, gt, "gt-10")
    assert taus == (0.1, 0.3, 0.5) and torch.allclose(g, gt * 5) and torch.allclose(p, pred * 5)
    p, g, taus = metrics.eval_protocol_scale(pred, gt, "p2m")
    assert torch.allclose(g, gt * 0.57) and taus[0] == pytest.approx(0.01) and taus[1] == pytest.approx(0.0141421, 1e-5)
    with pytest.raises(ValueError, match="gt-10"):
        metrics.eval_protocol_scale(pred, gt, "other")
    out = metrics.compare_points(gt, gt, torch.ones(2, 3), torch.ones(2, 3))
    assert out["chamfer"] == 0 and out["normal"] == pytest.approx(1.0) and out["f1@0.1"] == 1.0
