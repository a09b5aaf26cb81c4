"""SSP-Net training augmentation on the accelerator (spec section 4): rotation, scale, shift, horizontal flip
with left/right joint swap, a random occluding box and per-channel gamma, applied to crops and targets together."""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

PA17J_FLIP = (0, 1, 2, 3, 5, 4, 7, 6, 9, 8, 11, 10, 13, 12, 15, 14, 16)


def _choice(values: Sequence[float], n: int, device) -> torch.Tensor:
    vals = torch.as_tensor(list(values), dtype=torch.float32, device=device)
    return vals[torch.randint(len(vals), (n,), device=device)]


class PoseAugment(nn.Module):
    """Random similarity warp + flip + occlusion + gamma of (B, 3, S, S) crops and their (B, J, 3) targets.

    Samples with 3D labels use the Human3.6M ranges, 2D-only samples (MPII) the MPII ranges (spec section 4).
    Pixel amounts (shift, occluder) are given for a 256-pixel crop and scaled to the actual input size.
    """

    def __init__(self, rotation_3d: float = 10.0, rotation_2d: float = 40.0, rotation_step: float = 5.0,
                 scales_3d: Sequence[float] = (0.8, 1.0, 1.2), scales_2d: Sequence[float] = (0.7, 1.0, 1.3),
                 shift_x: float = 20.0, shift_y: float = 4.0, occlusion: Sequence[float] = (20.0, 90.0),
                 occlusion_prob: float = 0.5, flip_prob: float = 0.5, gamma: Sequence[float] = (0.9, 1.1),
                 flip_index: Sequence[int] = PA17J_FLIP) -> None:
        super().__init__()
        self.rot3, self.rot2, self.step = rotation_3d, rotation_2d, rotation_step
        self.scales3, self.scales2 = list(scales_3d), list(scales_2d)
        self.shift = (shift_x / 256.0, shift_y / 256.0)
        self.occ, self.occ_prob, self.flip_prob, self.gamma = list(occlusion), occlusion_prob, flip_prob, list(gamma)
        self.register_buffer("flip_index", torch.tensor(list(flip_index)), persistent=False)

    def _angles(self, limit: float, n: int, device) -> torch.Tensor:
        k = int(limit // self.step) if self.step > 0 else 0
        vals = [self.step * i for i in range(-k, k + 1)] or [0.0]
        return _choice(vals, n, device) * math.pi / 180

    @torch.no_grad()
    def forward(self, image: torch.Tensor, uvz: torch.Tensor, annotated: torch.Tensor, has3d: torch.Tensor
                ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        b, _, h, w = image.shape
        dev = image.device
        is3d = has3d.bool()
        ang = torch.where(is3d, self._angles(self.rot3, b, dev), self._angles(self.rot2, b, dev))
        scale = torch.where(is3d, _choice(self.scales3, b, dev), _choice(self.scales2, b, dev))
        tx = (torch.rand(b, device=dev) * 2 - 1) * self.shift[0] * is3d
        ty = (torch.rand(b, device=dev) * 2 - 1) * self.shift[1] * is3d
        cos, sin = torch.cos(ang), torch.sin(ang)
        rot = torch.stack([torch.stack([cos, -sin], -1), torch.stack([sin, cos], -1)], -2)  # (B, 2, 2)
        # output q -> source p:  p - 0.5 = s R (q - 0.5) + t ;  in [-1, 1] units: n_src = s R n_out + 2 t
        theta = torch.cat([scale[:, None, None] * rot, 2 * torch.stack([tx, ty], -1)[..., None]], -1)
        grid = F.affine_grid(theta, list(image.shape), align_corners=False)
        image = F.grid_sample(image, grid, mode="bilinear", padding_mode="zeros", align_corners=False)
        centred = uvz[..., :2] - 0.5 - torch.stack([tx, ty], -1)[:, None]
        uv = torch.einsum("bji,bik->bjk", centred, rot) / scale[:, None, None] + 0.5  # R^T (p - 0.5 - t) / s
        z = (uvz[..., 2:] - 0.5) / scale[:, None, None] + 0.5  # depth normalised by D * s
        uvz = torch.cat([uv, z], -1)
        flip = torch.rand(b, device=dev) < self.flip_prob
        if flip.any():
            image = torch.where(flip[:, None, None, None], image.flip(-1), image)
            flipped = uvz[:, self.flip_index].clone()
            flipped[..., 0] = 1 - flipped[..., 0]
            uvz = torch.where(flip[:, None, None], flipped, uvz)
            annotated = torch.where(flip[:, None, None], annotated[:, self.flip_index], annotated)
        image = self._occlude(image)
        g = torch.empty(b, 3, 1, 1, device=dev).uniform_(*self.gamma)
        return image.clamp(0, 1).pow(g), uvz, annotated

    def _occlude(self, image: torch.Tensor) -> torch.Tensor:
        b, c, h, w = image.shape
        dev = image.device
        side = (torch.empty(b, device=dev).uniform_(*self.occ) * w / 256.0).clamp(max=w)
        x0 = torch.rand(b, device=dev) * (w - side)
        y0 = torch.rand(b, device=dev) * (h - side)
        xs = torch.arange(w, device=dev)[None, None, :]
        ys = torch.arange(h, device=dev)[None, :, None]
        box = ((xs >= x0[:, None, None]) & (xs < (x0 + side)[:, None, None])
               & (ys >= y0[:, None, None]) & (ys < (y0 + side)[:, None, None]))
        box &= (torch.rand(b, device=dev) < self.occ_prob)[:, None, None]
        fill = torch.rand(b, c, 1, 1, device=dev).expand(b, c, h, w)
        return torch.where(box[:, None], fill, image)
