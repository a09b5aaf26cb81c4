"""Evaluation metrics of the mesh paper (spec section 6) against closed forms and brute force."""
import itertools
import math

import pytest
import torch

from zoo.core.mesh import metrics, ops



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


def test_mean_convention_emd_matches_brute_force_permutations():
    torch.manual_seed(3)
    x, y = torch.randn(6, 3), torch.randn(6, 3)
    best = min(float((x - y[list(p)]).norm(dim=-1).mean()) for p in itertools.permutations(range(6)))
    assert metrics.emd_mean_exact(x, y) == pytest.approx(best, rel=1e-6)
    assert metrics.emd_exact is metrics.emd_rms_exact and metrics.emd_sinkhorn is metrics.emd_rms_sinkhorn


@pytest.mark.parametrize("n", [32, 128])
def test_sinkhorn_emd_converges_to_the_exact_assignment_and_has_gradients(n):
    from scipy.optimize import linear_sum_assignment

    torch.manual_seed(2)
    x, y = torch.randn(n, 3, dtype=torch.float64, requires_grad=True), torch.randn(n, 3, dtype=torch.float64)
    cost = torch.cdist(x.detach(), y).pow(2).numpy()
    r, c = linear_sum_assignment(cost)
    exact = math.sqrt(cost[r, c].mean())  # RMS of the optimally matched distances
    approx = metrics.emd_rms_sinkhorn(x, y)
    assert float(approx.detach()) == pytest.approx(exact, rel=0.01)
    approx.backward()
    assert x.grad is not None and float(x.grad.abs().sum()) > 0
    assert float(metrics.emd_rms_sinkhorn(y, y)) < 0.05 * float(approx)


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


def test_sampling_metrics_hand_case_in_percent():
    pred = torch.tensor([[0.0, 0, 0], [0.05, 0, 0], [5, 0, 0]])
    gt = torch.tensor([[0.0, 0, 0.02], [0, 9, 0]])
    out = metrics.sampling_metrics(pred, gt, (0.1,))
    p, r = 100 * 2 / 3, 100 * 1 / 2
    assert out["precision@0.1"] == pytest.approx(p) and out["recall@0.1"] == pytest.approx(r)
    assert out["f1@0.1"] == pytest.approx(2 * p * r / (p + r), rel=1e-6)
    d_pg = [0.02 ** 2, 0.05 ** 2 + 0.02 ** 2, 25 + 0.02 ** 2]
    d_gp = [0.02 ** 2, 81]
    assert out["chamfer_l2"] == pytest.approx(sum(d_pg) / 3 + sum(d_gp) / 2, rel=1e-5)


def test_perfect_prediction_f1_matches_the_sampling_expectation():
    """Two independent draws of N = 10,000 points on one surface of (scaled) area A: a point has a neighbour within
    tau with probability 1 - (1 - pi tau^2 / A)^N (the surface is locally flat at tau = 0.1 against a tube radius of
    1.5), so E[F1@0.1] = that, in percent. The zoo's torus (outer diameter 1, tube 0.15) scaled to a longest edge of
    10 has A = 4 pi^2 R r = 207: about 78 %, not 100 %. Measured spread over seeds: 0.5 points; margin 2 points."""
    from zoo.core.mesh.render import torus

    v, f = torus(128, 64, 0.35, 0.15)
    area = float(ops.face_areas(v, f).sum()) * (10.0 / float((v.max(0).values - v.min(0).values).max())) ** 2
    expect = 100 * (1 - (1 - math.pi * 0.1 ** 2 / area) ** 10_000)
    assert 77 < expect < 79
    out = metrics.compare_meshes(v, f, v.clone(), f.clone(), generator=torch.Generator().manual_seed(0))
    assert abs(out["f1@0.1"] - expect) < 2.0
    assert out["f1@0.3"] > 99.9 and out["f1@0.5"] == pytest.approx(100.0)
    assert out["normal"] > 0.99  # both clouds carry the same face normals
    # the scale comes from the GT mesh alone: a prediction 3x too large is far off, and invariance under a common scale
    big = metrics.compare_meshes(3 * v, f, v, f, generator=torch.Generator().manual_seed(0))
    assert big["f1@0.1"] < 20
    same = metrics.compare_meshes(7 * v, f, 7 * v, f, generator=torch.Generator().manual_seed(0))
    assert same["f1@0.1"] == pytest.approx(out["f1@0.1"], abs=0.2)  # float rounding moves a few points at tau


def test_offset_square_chamfer_is_twice_offset_squared_plus_the_sampling_term():
    """GT: the square [0,2]^2 at z=0 (longest edge 2, so the scale is 5 and the scaled area 100); prediction: the same
    square at z=0.2 (1 after scaling). Each NN distance^2 is 1 + rho^2, rho the in-plane gap to the nearest of N
    uniform points, E[rho^2] = A / (pi N) = 0.0032 (a Poisson process; the border adds a few %): Chamfer-L2 = 2 (1 +
    0.0032), within 0.002. Every pair is 1 apart, so F1 is 0 at tau = 0.1 and 0.3, and 100 at tau = 1.1."""
    sq = torch.tensor([[0.0, 0, 0], [2, 0, 0], [2, 2, 0], [0, 2, 0]])
    faces = torch.tensor([[0, 1, 2], [0, 2, 3]])
    pred = sq + torch.tensor([0.0, 0.0, 0.2])
    out = metrics.compare_meshes(pred, faces, sq, faces, generator=torch.Generator().manual_seed(0))
    assert out["chamfer_l2"] == pytest.approx(2 * (1 + 100 / (math.pi * 10_000)), abs=2e-3)
    assert out["f1@0.1"] == 0.0 and out["f1@0.3"] == 0.0
    wide = metrics.compare_meshes(pred, faces, sq, faces, thresholds=(1.1,), generator=torch.Generator().manual_seed(0))
    assert wide["f1@1.1"] == pytest.approx(100.0, abs=1e-4)
    p2m = metrics.compare_meshes(pred, faces, sq, faces, scale="p2m", generator=torch.Generator().manual_seed(0))
    assert p2m["chamfer_l2"] == pytest.approx(2 * 0.57 ** 2 * (0.2 ** 2 + 4 / (math.pi * 10_000)), rel=0.01)
    assert set(p2m) >= {"f1@0.01", "f1@0.014142"}
    with pytest.raises(ValueError, match="gt-<float>"):
        metrics.compare_meshes(pred, faces, sq, faces, scale="other")
