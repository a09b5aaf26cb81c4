"""The point-splat renderer and procedural shapes of the mesh paper's toy data (spec sections 4 and 8)."""
import math

import pytest
import torch

from zoo.core.mesh import ops
from zoo.core.mesh.render import camera_matrix, make_shape, random_rotation, render_mesh, splat



def test_shapes_are_closed_with_the_right_topology_and_size():
    g = torch.Generator().manual_seed(0)
    for kind, chi in (("sphere", 2), ("cube", 2), ("torus", 0)):
        v, f = make_shape(kind, 1.0)
        assert ops.euler_characteristic(v, f) == chi and ops.nonmanifold_edge_ratio(f) == 0.0
        assert ops.connected_components(f) == 1
        assert float((v.max(0).values - v.min(0).values).max()) == pytest.approx(1.0, abs=0.01)
        # outward winding: the winding number is +1 inside (sign convention of metrics.winding_numbers)
        from zoo.core.mesh.metrics import winding_numbers
        inside = torch.tensor([[0.35, 0.0, 0.0]]) if kind == "torus" else torch.zeros(1, 3)
        assert float(winding_numbers(v, f, inside)) == pytest.approx(1.0, abs=1e-4)
        r = random_rotation(g)
        assert torch.allclose(r @ r.t(), torch.eye(3), atol=1e-5) and float(torch.det(r)) == pytest.approx(1.0, 1e-5)
        v2, _ = make_shape(kind, 2.0, r)
        assert torch.allclose(v2, 2 * v @ r.t(), atol=1e-5)
    with pytest.raises(ValueError, match="unknown shape kind"):
        make_shape("cone")


def test_sphere_silhouette_has_the_perspective_radius():
    size, depth, focal = 64, 2.5, 2.2
    P = camera_matrix((size, size), focal, depth)
    v, f = make_shape("sphere", 1.0)  # radius 0.5
    img = render_mesh(v, f, P, (size, size), generator=torch.Generator().manual_seed(0))
    fpx = focal * size / 2
    r_px = fpx * 0.5 / math.sqrt(depth ** 2 - 0.25)  # tangent cone of a sphere seen from distance `depth`
    # pixel squares [j, j+1) x [i, i+1) against the analytic disc: fully inside <= rendered <= touching
    c = torch.arange(size, dtype=torch.float64)
    lo_x, lo_y = (c[None, :] - size / 2), (c[:, None] - size / 2)
    near = torch.stack(torch.broadcast_tensors(torch.clamp(torch.zeros(1), lo_x, lo_x + 1),
                                               torch.clamp(torch.zeros(1), lo_y, lo_y + 1))).norm(dim=0)
    far = torch.stack(torch.broadcast_tensors(torch.maximum(lo_x.abs(), (lo_x + 1).abs()),
                                              torch.maximum(lo_y.abs(), (lo_y + 1).abs()))).norm(dim=0)
    rendered = img[0] > 0
    # the icosphere (level 3) is inscribed in the sphere: its silhouette radius is at most 1% smaller
    assert int((far < 0.99 * r_px).sum()) <= int(rendered.sum()) <= int((near < r_px).sum())
    assert not (rendered & (near >= r_px)).any()
    assert float(rendered.sum()) == pytest.approx(math.pi * r_px ** 2, rel=0.12)
    ys, xs = torch.nonzero(img[0] > 0, as_tuple=True)
    assert float(xs.float().mean() + 0.5) == pytest.approx(size / 2, abs=0.5)
    assert float(ys.float().mean() + 0.5) == pytest.approx(size / 2, abs=0.5)


def _square(z, tilt=0.0):
    """A unit square at depth offset z in the frame, rotated by `tilt` about the x axis."""
    c, s = math.cos(tilt), math.sin(tilt)
    v = torch.tensor([[-0.5, -0.5, 0], [0.5, -0.5, 0], [0.5, 0.5, 0], [-0.5, 0.5, 0]])
    v = v @ torch.tensor([[1, 0, 0], [0, c, -s], [0, s, c]]).t() + torch.tensor([0, 0, z])
    return v, torch.tensor([[0, 1, 2], [0, 2, 3]])


def test_lambert_shading_and_z_buffer():
    P = camera_matrix((32, 32))
    light = (0.0, 0.0, 1.0)
    v, f = _square(0.0, tilt=math.radians(60))
    img = render_mesh(v, f, P, (32, 32), light=light, ambient=0.2)
    lit = img[0][img[0] > 0]
    assert torch.allclose(lit, torch.full_like(lit, 0.2 + 0.8 * math.cos(math.radians(60))), atol=1e-5)
    # two parallel squares: the nearer one hides the farther one whatever the order of the points
    near, far = _square(-0.5), _square(0.5)
    pts = torch.cat([near[0] * 0.0 + torch.tensor([[0.0, 0, -0.5]]), far[0] * 0.0 + torch.tensor([[0.0, 0, 0.5]])])
    vals = torch.tensor([[1.0], [2.0]])
    for order in (torch.tensor([0, 4]), torch.tensor([4, 0])):
        out, mask = splat(pts[order], vals[order // 4], P, (32, 32))
        assert float(out.max()) == 1.0 and int(mask.sum()) == 1


def test_render_channels_and_determinism():
    P = camera_matrix((48, 48))
    v, f = make_shape("torus", 1.0, random_rotation(torch.Generator().manual_seed(3)))
    a = render_mesh(v, f, P, (48, 48), channels=3, generator=torch.Generator().manual_seed(1))
    b = render_mesh(v, f, P, (48, 48), channels=3, generator=torch.Generator().manual_seed(1))
    assert a.shape == (3, 48, 48) and torch.equal(a, b) and 0 <= float(a.min()) and float(a.max()) <= 1
    # every projected surface point falls on a rendered pixel (no holes in the silhouette)
    pts, _ = ops.sample_points(v, f, 2000, generator=torch.Generator().manual_seed(2))
    uv = ops.project(pts[None], P[None])[0].floor().long()
    assert float((a.sum(0)[uv[:, 1], uv[:, 0]] > 0).float().mean()) > 0.995
    with pytest.raises(ValueError, match="channels"):
        render_mesh(v, f, P, (48, 48), channels=2)
