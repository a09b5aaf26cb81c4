"""Two-view augmentations of NASiam's frameworks, run on the accelerator (kornia / torch; spec sections 6 and 9).

Images come in [0, 1] as (N, C, H, W); each call draws fresh random parameters per image.
"""
from __future__ import annotations

import torch
from torch import nn


class DigitsAugment(nn.Module):
    """The spec's 8x8 digits view: 1-px translation (pad 1 + crop), intensity x U(0.6, 1.4), a 3x3 random erasing
    with probability 0.5, then + 0.1 N(0, 1)."""

    def __init__(self, size: int = 8, scale: tuple[float, float] = (0.6, 1.4), erase_p: float = 0.5,
                 erase_size: int = 3, noise_std: float = 0.1) -> None:
        super().__init__()
        import kornia.augmentation as K

        self.crop = K.RandomCrop((size, size), padding=1)
        self.scale, self.erase_p, self.erase_size, self.noise_std = scale, erase_p, erase_size, noise_std

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, _, h, w = x.shape
        x = self.crop(x)
        lo, hi = self.scale
        x = x * (lo + (hi - lo) * torch.rand(n, 1, 1, 1, device=x.device))
        s = self.erase_size
        top = torch.randint(0, h - s + 1, (n, 1, 1, 1), device=x.device)
        left = torch.randint(0, w - s + 1, (n, 1, 1, 1), device=x.device)
        rows = torch.arange(h, device=x.device).view(1, 1, h, 1)
        cols = torch.arange(w, device=x.device).view(1, 1, 1, w)
        box = (rows >= top) & (rows < top + s) & (cols >= left) & (cols < left + s)
        erase = (torch.rand(n, 1, 1, 1, device=x.device) < self.erase_p) & box
        x = x.masked_fill(erase, 0.0)
        return x + self.noise_std * torch.randn_like(x)


def cifar_augment(framework: str, size: int = 32) -> nn.Module:
    """CIFAR views: SimSiam RRC(scale 0.2-1), jitter(0.4, 0.4, 0.4, 0.1) p 0.8, gray p 0.2, flip;
    MoCo v2 and SimCLR: RRC (default scale 0.08-1), flip, jitter p 0.8, gray p 0.2."""
    import kornia.augmentation as K

    jitter = K.ColorJitter(0.4, 0.4, 0.4, 0.1, p=0.8)
    if framework == "simsiam":
        return nn.Sequential(K.RandomResizedCrop((size, size), scale=(0.2, 1.0)), jitter, K.RandomGrayscale(p=0.2),
                             K.RandomHorizontalFlip())
    return nn.Sequential(K.RandomResizedCrop((size, size), scale=(0.08, 1.0)), K.RandomHorizontalFlip(), jitter,
                         K.RandomGrayscale(p=0.2))


def imagenet_augment(size: int = 224) -> nn.Module:
    """MoCo v2 ImageNet views: RRC(224, 0.2-1), jitter p 0.8, gray p 0.2, Gaussian blur sigma in [0.1, 2] p 0.5, flip."""
    import kornia.augmentation as K

    return nn.Sequential(K.RandomResizedCrop((size, size), scale=(0.2, 1.0)),
                         K.ColorJitter(0.4, 0.4, 0.4, 0.1, p=0.8), K.RandomGrayscale(p=0.2),
                         K.RandomGaussianBlur((23, 23), (0.1, 2.0), p=0.5), K.RandomHorizontalFlip())


def build_augment(name: str, framework: str = "simsiam", size: int | None = None) -> nn.Module:
    """``digits`` | ``cifar`` | ``imagenet`` | ``none`` (identity, for tests and ablations)."""
    if name == "digits":
        return DigitsAugment(size or 8)
    if name == "cifar":
        return cifar_augment(framework, size or 32)
    if name == "imagenet":
        return imagenet_augment(size or 224)
    if name == "none":
        return nn.Identity()
    raise ValueError(f"unknown augmentation {name!r}; expected digits, cifar, imagenet or none")
