"""Triangulation layer: kNN-clique candidates, triangle features, policy, Bernoulli log-probabilities and the greedy
manifold-preserving decoder, each against a hand computation or the property it must guarantee."""
import itertools
import math

import torch

from zoo.core.mesh import ops
from zoo.meshrec.triangulation import (CandidateBuilder, TrianglePolicy, bernoulli_entropy, bernoulli_log_prob,
                                       clique_candidates, greedy_manifold_decode, knn_indices, pca_normals,
                                       stable_probs, triangle_geometry)


def _brute_cliques(knn):
    n = knn.shape[0]
    adj = [[False] * n for _ in range(n)]
    for i in range(n):
        for j in knn[i].tolist():
            adj[i][j] = adj[j][i] = True
    return {(i, j, l) for i, j, l in itertools.combinations(range(n), 3) if adj[i][j] and adj[j][l] and adj[i][l]}


def test_candidates_are_exactly_the_3_cliques_of_the_symmetric_knn_graph():
    torch.manual_seed(0)
    v = torch.randn(40, 3)
    knn = knn_indices(v, 5)
    d = torch.cdist(v, v)
    for i in range(40):  # the k nearest others, never itself
        assert i not in knn[i].tolist()
        assert d[i, knn[i]].max() <= d[i][torch.arange(40) != i].sort().values[4] + 1e-6
    tris = clique_candidates(knn)
    got = {tuple(t) for t in tris.tolist()}
    assert len(got) == tris.shape[0] and all(i < j < l for i, j, l in got)
    assert got == _brute_cliques(knn)


def test_toy_candidate_count_matches_the_spec():
    """Spec 10: k=8 on ~96 surface vertices gives about 5-6 candidates per vertex (~550 triangles)."""
    torch.manual_seed(0)
    v, f = ops.icosphere(3)
    pts, _ = ops.sample_points(v, f, 96)
    (tris, knn), = CandidateBuilder(8)(pts[None])
    assert knn.shape == (96, 8)
    assert 3 * 96 < tris.shape[0] < 10 * 96


def test_triangle_geometry_of_an_equilateral_triangle():
    h = math.sqrt(3) / 2
    v = torch.tensor([[0.0, 0, 0], [1, 0, 0], [0.5, h, 0], [0.5, h / 3, 1.0]])
    tris = torch.tensor([[0, 1, 2]])
    knn = knn_indices(v, 3)
    geom, pts = triangle_geometry(v, tris, knn)
    torch.testing.assert_close(geom[0, :3], torch.ones(3))  # edges / mean edge
    torch.testing.assert_close(geom[0, 3], torch.tensor(1.0))  # area / mean area
    torch.testing.assert_close(geom[0, 4:7], torch.full((3,), math.pi / 3), atol=1e-3, rtol=0)
    torch.testing.assert_close(geom[0, 7:10], torch.tensor([0.5, h / 3, 0.0]))  # centroid
    assert pts.shape == (1, 9, 6)
    apex = (knn[tris].reshape(-1) == 3).nonzero()[0, 0]  # the point above the centroid: frame (0, 0, +-1), bary 1/3
    torch.testing.assert_close(pts[0, apex, :2], torch.zeros(2), atol=1e-5, rtol=0)
    torch.testing.assert_close(pts[0, apex, 2].abs(), torch.tensor(1.0))
    torch.testing.assert_close(pts[0, apex, 3:], torch.full((3,), 1 / 3), atol=1e-5, rtol=0)


def test_pca_normals_of_a_plane_point_along_z():
    torch.manual_seed(0)
    v = torch.cat([torch.rand(30, 2), torch.zeros(30, 1)], dim=1)
    n = pca_normals(v, knn_indices(v, 6))
    torch.testing.assert_close(n[:, 2].abs(), torch.ones(30), atol=1e-4, rtol=0)


def test_policy_is_permutation_equivariant_and_starts_at_the_init_probability():
    torch.manual_seed(0)
    v = torch.randn(30, 3)
    (tris, knn), = CandidateBuilder(6)(v[None])
    pol = TrianglePolicy(img_dim=10, global_dim=4, init_prob=0.3)
    feats, code = torch.randn(30, 10), torch.randn(4)
    torch.testing.assert_close(torch.sigmoid(pol(v, tris, knn, feats, code)), torch.full((tris.shape[0],), 0.3))
    torch.nn.init.normal_(pol.head[-1].weight)
    logits = pol(v, tris, knn, feats, code)
    perm = torch.randperm(tris.shape[0])
    torch.testing.assert_close(pol(v, tris[perm], knn, feats, code), logits[perm])
    logits.sum().backward()
    assert pol.point_mlp[0].weight.grad.abs().sum() > 0


def test_bernoulli_log_prob_entropy_and_stable_probs_by_hand():
    p = torch.tensor([0.2, 0.9, 0.5])
    a = torch.tensor([[1, 0, 1], [0, 0, 0]])
    expect = torch.tensor([math.log(0.2) + math.log(0.1) + math.log(0.5),
                           math.log(0.8) + math.log(0.1) + math.log(0.5)])
    torch.testing.assert_close(bernoulli_log_prob(p, a), expect)
    h = -(p * p.log() + (1 - p) * (1 - p).log()).mean()
    torch.testing.assert_close(bernoulli_entropy(p), h)
    q = stable_probs(torch.tensor([-1e4, 1e4]))
    assert torch.isfinite(q.log()).all() and torch.isfinite((1 - q).log()).all() and q[0] > 0 and q[1] < 1


def test_greedy_decoding_is_edge_manifold_ordered_and_bounded():
    torch.manual_seed(0)
    v = torch.randn(50, 3)
    (tris, _), = CandidateBuilder(8)(v[None])
    probs = torch.rand(tris.shape[0])
    keep = greedy_manifold_decode(tris, probs, 50, min_prob=0.05)
    _, counts = ops.edge_face_counts(tris[keep])
    assert counts.max() <= 2  # assertion (d) of spec 10
    assert (probs[keep] >= 0.05).all()
    # every rejected candidate above the threshold had an edge already full when it came
    full = greedy_manifold_decode(tris, torch.ones(tris.shape[0]), 50, min_prob=0.0, max_faces=10)
    assert int(full.sum()) == 10
    # a fan of 3 triangles on one edge: the best two win
    fan = torch.tensor([[0, 1, 2], [0, 1, 3], [0, 1, 4]])
    assert greedy_manifold_decode(fan, torch.tensor([0.9, 0.3, 0.8]), 5).tolist() == [True, False, True]


def test_greedy_decoding_of_an_icosahedron_candidate_set_recovers_a_closed_mesh():
    v, f = ops.icosahedron()
    extra = torch.tensor([[0, 1, 3], [2, 5, 8]])  # two non-faces with lower probability
    tris = torch.cat([f, extra])
    probs = torch.cat([torch.full((20,), 0.9), torch.full((2,), 0.6)])
    keep = greedy_manifold_decode(tris, probs, 12)
    assert keep[:20].all() and ops.euler_characteristic(v, tris[:20]) == 2
    assert not keep[20]  # its edge (0, 1) already has two faces
    assert keep[21]  # (2, 5, 8) uses three new edges: allowed (the decoder only forbids non-manifold edges)
    assert ops.edge_face_counts(tris[keep])[1].max() <= 2
