"""Pictures of Alphazzle runs for people: ground truth next to the reassembly, and per-move root visit maps."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import numpy as np
import torch


def to_uint8(image: torch.Tensor, scale: int = 1) -> np.ndarray:
    """(C, H, W) in [-1, 1] -> (H*scale, W*scale, 3) uint8, nearest-neighbour upscaled."""
    x = ((image.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().byte()
    if x.shape[0] == 1:
        x = x.expand(3, -1, -1)
    arr = x.permute(1, 2, 0).numpy()
    return np.kron(arr, np.ones((scale, scale, 1), dtype=np.uint8)) if scale > 1 else arr


def puzzle_panel(truth: torch.Tensor, reassembled: torch.Tensor, min_side: int = 128) -> np.ndarray:
    """[ground truth | white bar | reassembly] as one uint8 image."""
    scale = max(1, -(-min_side // truth.shape[-1]))
    a, b = to_uint8(truth, scale), to_uint8(reassembled, scale)
    bar = np.full((a.shape[0], max(2, scale * 2), 3), 255, dtype=np.uint8)
    return np.concatenate([a, bar, b], axis=1)


def visit_heatmaps(visits: Sequence[np.ndarray], grid: int, cell: int = 24) -> np.ndarray:
    """One grid x grid map of root visit fractions per move, side by side (viridis, or grey without matplotlib;
    dark = few visits)."""
    try:
        from matplotlib import colormaps

        cmap = colormaps["viridis"]
    except ImportError:  # matplotlib is a test/notebook extra, not a runtime dependency
        def cmap(x):
            return np.repeat(np.asarray(x)[..., None], 3, axis=-1)
    tiles = []
    for n in visits:
        frac = np.asarray(n, dtype=np.float64).reshape(grid, grid)
        frac = frac / max(frac.sum(), 1.0)
        rgb = (cmap(frac)[..., :3] * 255).astype(np.uint8)
        rgb = np.kron(rgb, np.ones((cell, cell, 1), dtype=np.uint8))
        tiles += [rgb, np.full((rgb.shape[0], 4, 3), 255, dtype=np.uint8)]
    return np.concatenate(tiles[:-1], axis=1) if tiles else np.zeros((cell, cell, 3), dtype=np.uint8)


def save_png(image: np.ndarray, path: str | Path) -> Path:
    from PIL import Image

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(image).save(path)
    return path
