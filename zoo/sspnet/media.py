"""Pictures of SSP-Net predictions for loggers: skeletons on the input crops, 3D skeleton plots and the
per-block MPJPE chart (the paper's accuracy-versus-cut trade-off). Returned as HxWx3 uint8 arrays."""
from __future__ import annotations

import numpy as np
import torch

PA17J_PARENTS = (-1, 16, 1, 2, 1, 1, 4, 5, 6, 7, 0, 0, 10, 11, 12, 13, 0)


def _figure(**kwargs):
    """A matplotlib Figure on its own Agg canvas: no pyplot state, no change of the global backend."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(**kwargs)
    FigureCanvasAgg(fig)
    return fig


def _figure_to_array(fig) -> np.ndarray:
    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def _edges(num_joints: int) -> list[tuple[int, int]]:
    parents = PA17J_PARENTS if num_joints == len(PA17J_PARENTS) else [-1] + list(range(num_joints - 1))
    return [(j, p) for j, p in enumerate(parents) if p >= 0]


def skeletons_on_crops(images: torch.Tensor, pred_uv: torch.Tensor, gt_uv: torch.Tensor | None = None,
                       max_images: int = 8) -> np.ndarray:
    """Crops (B, 3, H, W) in [0, 1] with predicted (red) and ground-truth (green) 2D skeletons, side by side."""
    n = min(max_images, images.shape[0])
    fig = _figure(figsize=(2 * n, 2.2))
    axes = fig.subplots(1, n, squeeze=False)
    size = images.shape[-1]
    for i, ax in enumerate(axes[0]):
        ax.imshow(images[i].detach().float().cpu().permute(1, 2, 0).clamp(0, 1).numpy())
        for uv, colour in ((gt_uv, "lime"), (pred_uv, "red")):
            if uv is None:
                continue
            pts = uv[i].detach().float().cpu().numpy() * size - 0.5
            for j, p in _edges(pts.shape[0]):
                ax.plot(pts[[j, p], 0], pts[[j, p], 1], color=colour, lw=1)
        ax.set_xlim(-0.5, size - 0.5)
        ax.set_ylim(size - 0.5, -0.5)
        ax.axis("off")
    fig.tight_layout()
    return _figure_to_array(fig)


def skeletons_3d(pred_mm: torch.Tensor, gt_mm: torch.Tensor, max_poses: int = 4) -> np.ndarray:
    """Root-aligned 3D skeletons, prediction (red) over ground truth (green), one panel per sample."""
    n = min(max_poses, pred_mm.shape[0])
    fig = _figure(figsize=(3 * n, 3))
    for i in range(n):
        ax = fig.add_subplot(1, n, i + 1, projection="3d")
        for pose, colour in ((gt_mm[i], "green"), (pred_mm[i], "red")):
            p = (pose - pose[:1]).detach().float().cpu().numpy()
            for j, q in _edges(p.shape[0]):
                ax.plot(p[[j, q], 0], p[[j, q], 2], -p[[j, q], 1], color=colour, lw=1.5)
        ax.set_xlim(-1000, 1000), ax.set_ylim(-1000, 1000), ax.set_zlim(-1000, 1000)
        ax.set_xlabel("x"), ax.set_ylabel("z (depth)"), ax.set_zlabel("-y")
    fig.tight_layout()
    return _figure_to_array(fig)


def mpjpe_per_block_chart(mpjpe: list[float], selected: int | None = None, title: str = "MPJPE per block") -> np.ndarray:
    """Line chart of MPJPE (mm) against the prediction block (the network's cut point)."""
    fig = _figure(figsize=(5, 3))
    ax = fig.subplots()
    blocks = list(range(1, len(mpjpe) + 1))
    ax.plot(blocks, mpjpe, marker="o")
    if selected is not None:
        ax.axvline(selected, color="grey", ls="--", label=f"selected block {selected}")
        ax.legend()
    ax.set_xlabel("prediction block (cut)"), ax.set_ylabel("MPJPE (mm)"), ax.set_title(title)
    fig.tight_layout()
    return _figure_to_array(fig)
