"""Closed-form checks of the torch mesh operations (spec section 10 e) and agreement with brute force / torch_geometric."""
import math

import pytest
import torch

from zoo.core.mesh import ops



def _brute_chamfer(x, y):
    d = ((x[:, None, :] - y[None, :, :]) ** 2).sum(-1)
    return d.min(1).values.mean() + d.min(0).values.mean()


def test_chamfer_identical_sets_is_zero_and_matches_brute_force():
    torch.manual_seed(0)
    x = torch.randn(2, 50, 3)
    cd, nd = ops.chamfer_distance(x, x, torch.randn(2, 50, 3), None)
    assert torch.allclose(cd, torch.zeros(2), atol=1e-7) and nd is None
    y = torch.randn(2, 37, 3)
    cd, _ = ops.chamfer_distance(x, y)
    ref = torch.stack([_brute_chamfer(x[b].double(), y[b].double()) for b in range(2)]).float()
    assert torch.allclose(cd, ref, rtol=1e-5)
    # ragged lists give the same per-cloud values
    cd_list, _ = ops.chamfer_distance([x[0], x[1, :20]], [y[0], y[1]])
    assert torch.allclose(cd_list[0], ref[0], rtol=1e-5)
    assert torch.allclose(cd_list[1], _brute_chamfer(x[1, :20].double(), y[1].double()).float(), rtol=1e-5)


def test_chamfer_chunked_equals_unchunked_with_gradients():
    torch.manual_seed(1)
    x = torch.randn(1, 300, 3, requires_grad=True)
    y = torch.randn(1, 200, 3)
    xn, yn = torch.randn(1, 300, 3), torch.randn(1, 200, 3)
    a, na = ops.chamfer_distance(x, y, xn, yn, chunk=None)
    (ga,) = torch.autograd.grad(a.sum(), x)
    b, nb = ops.chamfer_distance(x, y, xn, yn, chunk=1000)  # 5 rows of x per block
    (gb,) = torch.autograd.grad(b.sum(), x)
    assert torch.allclose(a, b) and torch.allclose(na, nb) and torch.allclose(ga, gb)
    # normal term: 1-|cos| averaged over both directions, checked by hand
    d = ((x[0, :, None] - y[0, None]) ** 2).sum(-1)
    cx = torch.nn.functional.cosine_similarity(xn[0], yn[0][d.argmin(1)], dim=-1).abs()
    cy = torch.nn.functional.cosine_similarity(yn[0], xn[0][d.argmin(0)], dim=-1).abs()
    assert torch.allclose(na[0], 0.5 * ((1 - cx).mean() + (1 - cy).mean()), atol=1e-6)


def test_knn_points_matches_sorting():
    torch.manual_seed(2)
    x, y = torch.randn(2, 20, 3), torch.randn(2, 30, 3)
    d, idx = ops.knn_points(x, y, k=4)
    ref = ((x[:, :, None] - y[:, None]) ** 2).sum(-1).sort(-1)
    assert torch.equal(idx, ref.indices[..., :4]) and torch.allclose(d, ref.values[..., :4], atol=1e-6)


def test_area_sampler_mean_is_centroid_and_normals_and_gradient():
    # unit square [0,1]^2 at z=0 split into two triangles of equal area, plus a tiny triangle far away (area 1e-4)
    v = torch.tensor([[0., 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0], [5, 5, 0], [5.01, 5, 0], [5, 5.02, 0]],
                     requires_grad=True)
    f = torch.tensor([[0, 1, 2], [0, 2, 3], [4, 5, 6]])
    g = torch.Generator().manual_seed(0)
    p, n = ops.sample_points(v, f, 40000, generator=g)
    far = p[:, 0] > 2
    assert far.float().mean() < 0.001  # area weighting: 1e-4 / 1.0001 of the mass
    sq = p[~far]
    assert torch.allclose(sq.mean(0), torch.tensor([0.5, 0.5, 0.0]), atol=0.01)
    assert torch.allclose(sq.var(0)[:2], torch.full((2,), 1 / 12), atol=0.004)  # uniform on the square
    assert torch.allclose(n, torch.tensor([0., 0, 1]).expand_as(n))
    p.sum().backward()
    assert v.grad is not None and v.grad[:4].abs().sum() > 0


def _regular_icosahedron():
    v, f = ops.icosahedron()
    return v.double(), f


def test_icosahedron_regularisers_closed_forms():
    v, f = _regular_icosahedron()
    edge = 4 / math.sqrt(10 + 2 * math.sqrt(5))  # edge of the icosahedron inscribed in the unit sphere
    assert ops.unique_edges(f).shape[0] == 30
    assert math.isclose(float(ops.edge_loss(v, f)), edge ** 2, rel_tol=1e-6)
    # the 5 neighbours of a vertex lie on a circle around it at angle acos(1/sqrt5): their mean is v / sqrt5
    lap = float(ops.laplacian_loss(v, f))
    assert lap > 0 and math.isclose(lap, 1 - 1 / math.sqrt(5), rel_tol=1e-6)
    dihedral = math.acos(-math.sqrt(5) / 3)  # interior dihedral angle, ~138.19 deg
    nc = float(ops.normal_consistency_loss(v, f))
    assert math.isclose(nc, 1 - math.cos(math.pi - dihedral), rel_tol=1e-6)
    # winding does not matter (pytorch3d builds both normals from the shared edge)
    f_flip = f.clone()
    f_flip[::2] = f_flip[::2].flip(1)
    assert math.isclose(float(ops.normal_consistency_loss(v, f_flip)), nc, rel_tol=1e-6)
    assert torch.allclose(ops.face_normals(v, f), ops.face_normals(v, f) * 0 + torch.nn.functional.normalize(
        v[f].mean(1), dim=-1), atol=1e-6)  # outward winding
    assert math.isclose(float(ops.face_areas(v, f).sum()), 20 * math.sqrt(3) / 4 * edge ** 2, rel_tol=1e-6)


def test_flat_mesh_regularisers_vanish():
    v = torch.tensor([[0., 0, 0], [1, 0, 0], [1, 1, 0], [0, 1, 0]])
    f = torch.tensor([[0, 1, 2], [0, 2, 3]])
    assert float(ops.normal_consistency_loss(v, f)) == pytest.approx(0.0, abs=1e-6)
    # three faces on one edge (non-manifold): all three pairs count
    v3 = torch.cat([v, torch.tensor([[0.5, 0.5, 1.0]])])
    f3 = torch.tensor([[0, 1, 2], [0, 2, 3], [0, 2, 4]])
    # pair (face1, face2) flat -> 0; pairs with the vertical fin: normals at 90 degrees -> 1 each
    assert float(ops.normal_consistency_loss(v3, f3)) == pytest.approx((0 + 1 + 1) / 3, abs=1e-6)


def test_cotangent_laplacian_vanishes_inside_a_flat_irregular_mesh():
    torch.manual_seed(3)
    ring = torch.tensor([[math.cos(a), math.sin(a), 0.0] for a in (0.0, 1.1, 2.0, 3.3, 4.1, 5.2)])
    ring = ring * (1 + 0.3 * torch.rand(6, 1)) * torch.tensor([1.0, 1.0, 0.0])
    v = torch.cat([torch.tensor([[0.1, -0.05, 0.0]]), ring]).double()
    f = torch.tensor([[0, k + 1, (k + 1) % 6 + 1] for k in range(6)])
    cot, used = ops.laplacian_vectors(v, f, "cot")
    uni, _ = ops.laplacian_vectors(v, f, "uniform")
    assert used.all() and float(cot[0].norm()) < 1e-12 and float(uni[0].norm()) > 1e-3  # linear precision
    # on the regular icosahedron both weightings agree (all weights equal)
    iv, fi = _regular_icosahedron()
    assert math.isclose(float(ops.laplacian_loss(iv, fi, "cot")), float(ops.laplacian_loss(iv, fi)), rel_tol=1e-9)
    with pytest.raises(ValueError, match="cot"):
        ops.laplacian_loss(v, f, "umbrella")


def test_graphconv_path_graph_by_hand():
    torch.manual_seed(0)
    gc = ops.GraphConv(2, 3)
    with torch.no_grad():
        for p in gc.parameters():
            p.normal_()
    x = torch.randn(3, 2)
    edges = torch.tensor([[0, 1], [1, 2]])  # path 0 - 1 - 2
    w0, b0, w1, b1 = gc.w0.weight, gc.w0.bias, gc.w1.weight, gc.w1.bias
    t = lambda i: w1 @ x[i] + b1  # noqa: E731
    ref = torch.stack([w0 @ x[0] + b0 + t(1), w0 @ x[1] + b0 + t(0) + t(2), w0 @ x[2] + b0 + t(1)])
    assert torch.allclose(gc(x, edges), ref, atol=1e-5)
    fresh = ops.GraphConv(64, 64)
    assert abs(float(fresh.w0.weight.detach().std()) - 0.01) < 0.001 and float(fresh.w1.bias.detach().abs().sum()) == 0


def test_graphconv_relation_to_torch_geometric():
    from torch_geometric.nn import GraphConv as PygGraphConv

    torch.manual_seed(0)
    v, f = ops.icosphere(1)
    e = ops.unique_edges(f)
    x = torch.randn(v.shape[0], 5)
    ours, pyg = ops.GraphConv(5, 4), PygGraphConv(5, 4, aggr="add")
    with torch.no_grad():
        ours.w1.bias.normal_()
        ours.w0.bias.normal_()
        pyg.lin_root.weight.copy_(ours.w0.weight)
        pyg.lin_rel.weight.copy_(ours.w1.weight)
        pyg.lin_rel.bias.copy_(ours.w0.bias)
    both = torch.cat([e, e.flip(1)]).t()
    deg = torch.bincount(both[0], minlength=v.shape[0]).float()
    # pytorch3d adds the neighbour bias once per neighbour, PyG never: the difference is deg_i * b1
    assert torch.allclose(ours(x, e), pyg(x, both) + deg[:, None] * ours.w1.bias, atol=1e-5)


def test_subdivision_counts_and_midpoints():
    v, f = ops.icosahedron()
    feats = torch.randn(12, 7)
    v2, f2, g2 = ops.subdivide(v, f, feats)
    e = ops.unique_edges(f)
    assert v2.shape[0] == 12 + 30 and f2.shape[0] == 4 * 20 and g2.shape == (42, 7)
    assert torch.allclose(v2[12:], 0.5 * (v[e[:, 0]] + v[e[:, 1]]))
    assert torch.allclose(g2[12:], 0.5 * (feats[e[:, 0]] + feats[e[:, 1]]))
    assert math.isclose(float(ops.face_areas(v2, f2).sum()), float(ops.face_areas(v, f).sum()), rel_tol=1e-5)
    assert (ops.face_normals(v2, f2) * v2[f2].mean(1)).sum(-1).min() > 0  # winding kept outward


def _torus(n_major=12, n_minor=8, r_major=1.0, r_minor=0.3):
    i, j = torch.meshgrid(torch.arange(n_major), torch.arange(n_minor), indexing="ij")
    a, b = 2 * math.pi * i / n_major, 2 * math.pi * j / n_minor
    v = torch.stack([(r_major + r_minor * b.cos()) * a.cos(), (r_major + r_minor * b.cos()) * a.sin(),
                     r_minor * b.sin()], -1).reshape(-1, 3)
    idx = lambda p, q: (p % n_major) * n_minor + (q % n_minor)  # noqa: E731
    f = []
    for p in range(n_major):
        for q in range(n_minor):
            f += [[idx(p, q), idx(p + 1, q), idx(p + 1, q + 1)], [idx(p, q), idx(p + 1, q + 1), idx(p, q + 1)]]
    return v, torch.tensor(f)


def test_topology_icosphere_torus_components():
    for level in range(4):
        v, f = ops.icosphere(level)
        assert ops.euler_characteristic(v, f) == 2 and ops.nonmanifold_edge_ratio(f) == 0.0
        assert torch.allclose(v.norm(dim=-1), torch.ones(v.shape[0]), atol=1e-6)
        assert v.shape[0] == 10 * 4 ** level + 2
    tv, tf = _torus()
    assert ops.euler_characteristic(tv, tf) == 0 and ops.connected_components(tf) == 1
    both = torch.cat([tf, ops.icosphere(0)[1] + tv.shape[0]])
    assert ops.connected_components(both) == 2
    # an open triangle fan (one face removed from the icosahedron): 3 boundary edges of 30
    _, f = ops.icosahedron()
    assert ops.nonmanifold_edge_ratio(f[1:]) == pytest.approx(3 / 30)
    assert ops.euler_characteristic(None, f[1:]) == 1


def test_project_and_vert_align_sample_the_right_pixel():
    h, w = 8, 10
    feats = torch.arange(h * w, dtype=torch.float32).view(1, 1, h, w)
    f = 5.0
    K = torch.tensor([[f, 0, w / 2], [0, f, h / 2], [0, 0, 1]])
    P = (K @ torch.tensor([[1.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 2.0]])).unsqueeze(0)  # K [I | (0,0,2)]
    # a point that projects onto the centre of pixel (row 3, col 7): u = 7.5, v = 3.5
    z = 3.0
    xyz = torch.tensor([[[(7.5 - w / 2) * z / f, (3.5 - h / 2) * z / f, z - 2.0]]])
    uv = ops.project(xyz, P, (h, w))
    assert torch.allclose(uv, torch.tensor([[[7.5, 3.5]]]), atol=1e-5)
    val = ops.vert_align(feats, xyz, P, (h, w))
    assert val.shape == (1, 1, 1) and float(val) == pytest.approx(3 * w + 7, abs=1e-4)
    # a half-resolution map covers the same extent; two maps concatenate along channels
    small = torch.nn.functional.avg_pool2d(feats, 2)
    both = ops.vert_align([feats, small, small], xyz, P, (h, w))
    assert both.shape == (1, 1, 3)


def test_vertex_normals_and_batched_sampling_on_a_sphere():
    v, f = ops.icosphere(2)
    n = ops.vertex_normals(v, f)
    assert float((n * v).sum(-1).min()) > 0.999  # area-weighted face normals average to the radial direction
    pts, nrm = ops.sample_points_batch([(v, f), (2 * v, f)], 500, generator=torch.Generator().manual_seed(0))
    assert pts.shape == (2, 500, 3) and nrm.shape == (2, 500, 3)
    r = pts.norm(dim=-1)
    assert 0.97 < float(r[0].min()) and float(r[0].max()) <= 1.0 + 1e-6 and float(r[1].mean()) > 1.9
    # the normal returned with each sample is its face normal: outward, close to radial on an icosphere
    assert float((nrm[0] * pts[0]).sum(-1).min()) > 0.9
