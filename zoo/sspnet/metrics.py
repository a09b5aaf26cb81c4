"""3D pose metrics of SSP-Net's protocols (spec section 5): MPJPE, PA-MPJPE, 3DPCK@150 mm, AUC, and the
lifting of a normalised (u, v, z) prediction to camera millimetres with the ground-truth root depth."""
from __future__ import annotations

import torch
from torchmetrics import Metric

PCK_THRESHOLDS = tuple(float(t) for t in range(0, 155, 5))  # 0, 5, ..., 150 mm


def root_align(pose: torch.Tensor, root: int = 0) -> torch.Tensor:
    """Subtract the root joint: (B, J, 3) -> (B, J, 3)."""
    return pose - pose[:, root:root + 1]


def joint_errors(pred: torch.Tensor, gt: torch.Tensor, root: int | None = 0) -> torch.Tensor:
    """Per-joint Euclidean error (B, J) after root alignment (``root=None`` compares as given)."""
    if root is not None:
        pred, gt = root_align(pred, root), root_align(gt, root)
    return (pred - gt).norm(dim=-1)


def mpjpe(pred: torch.Tensor, gt: torch.Tensor, root: int | None = 0) -> torch.Tensor:
    """Mean per-joint position error (protocol 1) over a batch, root-aligned."""
    return joint_errors(pred, gt, root).mean()


def procrustes_align(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """Similarity transform (scale, rotation, translation) of ``pred`` onto ``gt`` by SVD, det(R) = +1 enforced."""
    pred, gt = pred.double(), gt.double()
    mu_p, mu_g = pred.mean(1, keepdim=True), gt.mean(1, keepdim=True)
    p0, g0 = pred - mu_p, gt - mu_g
    cov = p0.transpose(1, 2) @ g0  # (B, 3, 3)
    u, s, vh = torch.linalg.svd(cov)
    d = torch.sign(torch.linalg.det(u @ vh))  # -1 where the best orthogonal map is a reflection
    fix = torch.ones_like(s)
    fix[:, -1] = d
    rot = u @ torch.diag_embed(fix) @ vh  # maps row vectors: p0 @ rot
    scale = (s * fix).sum(-1) / p0.square().sum((1, 2)).clamp_min(1e-12)
    return (scale[:, None, None] * (p0 @ rot) + mu_g).to(torch.get_default_dtype())


def pa_mpjpe(pred: torch.Tensor, gt: torch.Tensor) -> torch.Tensor:
    """MPJPE after Procrustes alignment (protocol 2)."""
    return joint_errors(procrustes_align(pred, gt), gt.to(torch.get_default_dtype()), None).mean()


def pck3d(pred: torch.Tensor, gt: torch.Tensor, threshold: float = 150.0, root: int = 0) -> torch.Tensor:
    """Fraction of joints with root-aligned error below ``threshold`` mm (3DPCK)."""
    return (joint_errors(pred, gt, root) < threshold).float().mean()


def auc3d(pred: torch.Tensor, gt: torch.Tensor, thresholds=PCK_THRESHOLDS, root: int = 0) -> torch.Tensor:
    """Mean 3DPCK over thresholds 0, 5, ..., 150 mm (the MPI-INF-3DHP AUC)."""
    err = joint_errors(pred, gt, root)
    return torch.stack([(err < t).float().mean() for t in thresholds]).mean()


def lift_to_camera(uvz: torch.Tensor, camera: torch.Tensor, crop: torch.Tensor, root_z: torch.Tensor,
                   depth_range: torch.Tensor) -> torch.Tensor:
    """Normalised crop prediction (B, J, >=3) -> camera-space mm (B, J, 3) with the GT root depth (spec 5).

    ``camera`` (B, 4) = fx, fy, cx, cy in px; ``crop`` (B, 3) = x0, y0, side in px; ``depth_range`` (B,) = D mm.
    """
    u, v, z = uvz[..., 0], uvz[..., 1], uvz[..., 2]
    x_px = crop[:, 0:1] + u * crop[:, 2:3]
    y_px = crop[:, 1:2] + v * crop[:, 2:3]
    depth = (z - 0.5) * depth_range[:, None] + root_z[:, None]
    x = (x_px - camera[:, 2:3]) * depth / camera[:, 0:1]
    y = (y_px - camera[:, 3:4]) * depth / camera[:, 1:2]
    return torch.stack([x, y, depth], dim=-1)


class PerBlockPoseMetrics(Metric):
    """Running MPJPE, PA-MPJPE, 3DPCK@150 and AUC for each prediction block (sums reduced across processes)."""

    full_state_update = False

    def __init__(self, num_blocks: int, root: int = 0) -> None:
        super().__init__()
        self.num_blocks, self.root = num_blocks, root
        for name in ("mpjpe", "pa_mpjpe", "pck150", "auc"):
            self.add_state(name, default=torch.zeros(num_blocks, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("count", default=torch.zeros((), dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, preds_mm: list[torch.Tensor], gt_mm: torch.Tensor) -> None:
        """``preds_mm``: one (B, J, 3) camera-mm pose per block; ``gt_mm`` (B, J, 3)."""
        n = gt_mm.shape[0]
        if n == 0:
            return
        for b, p in enumerate(preds_mm):
            err = joint_errors(p, gt_mm, self.root)
            self.mpjpe[b] += err.mean(1).sum().double()
            pa = joint_errors(procrustes_align(p, gt_mm), gt_mm.float(), None)
            self.pa_mpjpe[b] += pa.mean(1).sum().double()
            self.pck150[b] += (err < 150).float().mean(1).sum().double()
            self.auc[b] += torch.stack([(err < t).float().mean(1) for t in PCK_THRESHOLDS]).mean(0).sum().double()
        self.count += n

    def compute(self) -> dict[str, torch.Tensor]:
        c = self.count.clamp_min(1)
        return {"mpjpe": self.mpjpe / c, "pa_mpjpe": self.pa_mpjpe / c, "pck150": 100 * self.pck150 / c,
                "auc": 100 * self.auc / c}


class GroupedMPJPE(Metric):
    """MPJPE per group (e.g. Human3.6M action), for the per-action table and the mean over actions (spec 5)."""

    full_state_update = False

    def __init__(self, num_groups: int = 64, root: int = 0) -> None:
        super().__init__()
        self.num_groups, self.root = num_groups, root
        self.add_state("sums", default=torch.zeros(num_groups, dtype=torch.float64), dist_reduce_fx="sum")
        self.add_state("counts", default=torch.zeros(num_groups, dtype=torch.float64), dist_reduce_fx="sum")

    def update(self, pred_mm: torch.Tensor, gt_mm: torch.Tensor, groups: torch.Tensor) -> None:
        groups = groups.long().clamp(0, self.num_groups - 1)
        err = joint_errors(pred_mm, gt_mm, self.root).mean(1).double()
        self.sums.index_add_(0, groups, err)
        self.counts.index_add_(0, groups, torch.ones_like(err))

    def compute(self) -> dict[int, torch.Tensor]:
        """{group: MPJPE} for every group that has samples."""
        return {int(g): self.sums[g] / self.counts[g] for g in torch.nonzero(self.counts > 0).flatten().tolist()}
