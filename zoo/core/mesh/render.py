"""A small torch point-splat renderer and the procedural shapes (sphere, cube, torus) of the mesh paper's toy data
(spec sections 4 and 8; pytorch3d's rasteriser is not installable here, and kornia has no mesh rasteriser)."""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from zoo.core.mesh.ops import icosphere, sample_points

SHAPE_KINDS = ("sphere", "cube", "torus")
TOY_DEPTH = 2.5  # camera distance of the toy scenes (object of unit size at the origin of the frame)
TOY_FOCAL = 2.2  # focal length in units of half the image width


def camera_matrix(image_size: tuple[int, int], focal: float = TOY_FOCAL, depth: float = TOY_DEPTH) -> Tensor:
    """``P = K [I | (0,0,depth)]`` (3,4): the object-centred, camera-aligned frame (x right, y down, z away from the
    camera) to pixels; focal in half-widths, principal point at the image centre (pixel centres at half-integers)."""
    h, w = image_size
    f = focal * w / 2
    k = torch.tensor([[f, 0.0, w / 2], [0.0, f, h / 2], [0.0, 0.0, 1.0]])
    return k @ torch.tensor([[1.0, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, depth]])


def random_rotation(generator: torch.Generator | None = None) -> Tensor:
    """A uniformly random rotation matrix (3,3) (normalised random quaternion)."""
    q = F.normalize(torch.randn(4, generator=generator, dtype=torch.float64), dim=0)
    w, x, y, z = q.tolist()
    return torch.tensor([[1 - 2 * (y * y + z * z), 2 * (x * y - z * w), 2 * (x * z + y * w)],
                         [2 * (x * y + z * w), 1 - 2 * (x * x + z * z), 2 * (y * z - x * w)],
                         [2 * (x * z - y * w), 2 * (y * z + x * w), 1 - 2 * (x * x + y * y)]], dtype=torch.float32)


def _cube() -> tuple[Tensor, Tensor]:
    v = torch.tensor([[x, y, z] for x in (-0.5, 0.5) for y in (-0.5, 0.5) for z in (-0.5, 0.5)])
    quads = [(0, 1, 3, 2), (4, 6, 7, 5), (0, 4, 5, 1), (2, 3, 7, 6), (0, 2, 6, 4), (1, 5, 7, 3)]  # outward winding
    f = torch.tensor([t for a, b, c, d in quads for t in ((a, b, c), (a, c, d))])
    return v, f


def torus(n_major: int = 24, n_minor: int = 12, r_major: float = 0.35, r_minor: float = 0.15) -> tuple[Tensor, Tensor]:
    """A triangulated torus in the xy-plane (genus 1, Euler characteristic 0), outward winding."""
    i, j = torch.meshgrid(torch.arange(n_major), torch.arange(n_minor), indexing="ij")
    a, b = 2 * math.pi * i / n_major, 2 * math.pi * j / n_minor
    ring = r_major + r_minor * b.cos()
    v = torch.stack([ring * a.cos(), ring * a.sin(), r_minor * b.sin()], -1).reshape(-1, 3).float()
    p, q = i.reshape(-1), j.reshape(-1)
    idx = lambda p_, q_: (p_ % n_major) * n_minor + (q_ % n_minor)  # noqa: E731
    f = torch.cat([torch.stack([idx(p, q), idx(p + 1, q), idx(p + 1, q + 1)], 1),
                   torch.stack([idx(p, q), idx(p + 1, q + 1), idx(p, q + 1)], 1)])
    return v, f


def make_shape(kind: str, scale: float = 1.0, rotation: Tensor | None = None,
               level: int = 3) -> tuple[Tensor, Tensor]:
    """A procedural shape of unit size at the origin: sphere (diameter 1, icosphere ``level``), cube (side 1) or torus
    (outer diameter 1, tube radius 0.15), times ``scale``, then rotated by ``rotation (3,3)``."""
    if kind == "sphere":
        v, f = icosphere(level)
        v = 0.5 * v
    elif kind == "cube":
        v, f = _cube()
    elif kind == "torus":
        v, f = torus()
    else:
        raise ValueError(f"unknown shape kind {kind!r}; expected one of {SHAPE_KINDS}")
    v = v * scale
    if rotation is not None:
        v = v @ rotation.to(v).t()
    return v, f


def splat(points: Tensor, values: Tensor, P: Tensor, image_size: tuple[int, int],
          background: float = 0.0) -> tuple[Tensor, Tensor]:
    """Nearest-point splatting of ``points (N,3)`` with per-point ``values (N,C)``: each pixel shows the value of the
    nearest point falling in it (a ``scatter_reduce("amin")`` z-buffer). Returns image (C,H,W) and mask (H,W)."""
    h, w = image_size
    hom = points @ P[:, :3].t() + P[:, 3]
    depth = hom[:, 2]
    front = depth > 1e-6
    uv = hom[:, :2] / depth.clamp(min=1e-6).unsqueeze(-1)
    col, row = uv[:, 0].floor().long(), uv[:, 1].floor().long()
    ok = front & (col >= 0) & (col < w) & (row >= 0) & (row < h)
    pix, depth, values = row[ok] * w + col[ok], depth[ok], values[ok]
    zbuf = torch.full((h * w,), float("inf"), dtype=depth.dtype, device=depth.device)
    zbuf = zbuf.scatter_reduce(0, pix, depth, reduce="amin")
    win = depth <= zbuf[pix]  # the nearest point (ties: any of them) of each pixel
    img = torch.full((h * w, values.shape[1]), background, dtype=values.dtype, device=values.device)
    img[pix[win]] = values[win]
    mask = torch.isfinite(zbuf)
    return img.t().reshape(-1, h, w), mask.reshape(h, w)


def render_mesh(verts: Tensor, faces: Tensor, P: Tensor, image_size: tuple[int, int] = (64, 64), channels: int = 1,
                samples_per_pixel: float = 24.0, light: tuple[float, float, float] = (-0.4, -0.6, -1.0),
                ambient: float = 0.25, color: tuple[float, float, float] = (0.9, 0.8, 0.65),
                generator: torch.Generator | None = None) -> Tensor:
    """Render a mesh to a ``(channels,H,W)`` image in [0,1]: dense area-weighted surface samples, two-sided Lambert
    shading ``ambient + (1-ambient)|n.l|`` under a directional light (frame coordinates, pointing from the light
    towards the scene), nearest-sample splatting; black background. ``color`` tints the 3-channel image."""
    if channels not in (1, 3):
        raise ValueError(f"channels must be 1 or 3, got {channels}")
    h, w = image_size
    n = int(samples_per_pixel * h * w)
    with torch.no_grad():
        pts, nrm = sample_points(verts.float(), faces, n, generator=generator)
        lam = (nrm @ F.normalize(torch.tensor(light, dtype=pts.dtype), dim=0)).abs()
        shade = (ambient + (1 - ambient) * lam).unsqueeze(-1)
        if channels == 3:
            shade = shade * torch.tensor(color, dtype=pts.dtype)
        img, _ = splat(pts, shade, P.to(pts), image_size)
    return img.clamp(0, 1)
