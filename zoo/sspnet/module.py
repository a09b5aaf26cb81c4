"""LightningModule of SSP-Net (Luvizon, Tabia, Picard, Pattern Recognition 2023): the masked per-block loss,
RMSprop with a step schedule, accelerator-side augmentation, per-block validation with block selection,
and BatchNorm statistics re-estimated ("precise BN") before every evaluation (spec sections 3-5, 10)."""
from __future__ import annotations

from collections import deque
from typing import Any, Literal

import lightning.pytorch as L
import torch
from lightning.pytorch.utilities import rank_zero_only, rank_zero_warn
from torch.nn.modules.batchnorm import _BatchNorm

from zoo.core.optim import planned_epochs
from zoo.sspnet.augment import PoseAugment
from zoo.sspnet.losses import LossName, build_targets, sspnet_loss
from zoo.sspnet.metrics import GroupedMPJPE, PerBlockPoseMetrics, lift_to_camera, root_align

PA17J_TO_14 = (3, 2, 4, 6, 8, 5, 7, 9, 10, 12, 14, 11, 13, 15)  # the common 14 joints: no pelvis, spine, neck
from zoo.sspnet.net import SSPNet


@torch.no_grad()
def precise_batchnorm(net: torch.nn.Module, batches: list[torch.Tensor]) -> int:
    """Reset every BatchNorm's running stats and re-estimate them as exact averages over ``batches`` (train mode)."""
    bns = [m for m in net.modules() if isinstance(m, _BatchNorm)]
    if not bns or not batches:
        return 0
    momenta = [m.momentum for m in bns]
    was_training = net.training
    for m in bns:
        m.reset_running_stats()
        m.momentum = None  # cumulative average
    net.train()
    for x in batches:
        net(x)
    for m, mom in zip(bns, momenta):
        m.momentum = mom
    net.train(was_training)
    return len(batches)


class SSPNetModule(L.LightningModule):
    """Trains :class:`SSPNet` on mixed 2D/3D crops; logs MPJPE of every block and selects the block on validation."""

    def __init__(
        self,
        num_joints: int = 17,
        num_pyramids: int = 8,
        num_levels: int = 4,
        growth: int = 96,
        kernel_size: int = 5,
        stem_channels: int = 288,
        stem: Literal["paper", "tiny"] = "paper",
        input_size: int = 256,
        grid: Literal["centre", "linspace01"] = "centre",
        upsample: Literal["nearest", "transposed"] = "nearest",
        loss: LossName = "l1l2bincross",
        optimizer: Literal["rmsprop", "adam"] = "rmsprop",
        lr: float = 1e-3,
        lr_milestones: list[float] | None = None,
        lr_gamma: float = 0.2,
        augment: bool = True,
        augment_kwargs: dict[str, Any] | None = None,
        precise_bn_batches: int = 8,
        media_every_n_epochs: int = 1,
        report_14_joints: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.net = SSPNet(num_joints=num_joints, num_pyramids=num_pyramids, num_levels=num_levels, growth=growth,
                          kernel_size=kernel_size, stem_channels=stem_channels, stem=stem, input_size=input_size,
                          grid=grid, upsample=upsample)
        self.augmenter = PoseAugment(**(augment_kwargs or {})) if augment else None
        self.val_metrics = PerBlockPoseMetrics(self.net.num_blocks)
        self.test_metrics = PerBlockPoseMetrics(self.net.num_blocks)
        self.test_actions = GroupedMPJPE()  # per action (Human3.6M), selected block
        self.test_metrics14 = PerBlockPoseMetrics(self.net.num_blocks, root=None)  # MPI-INF-3DHP 14-joint variant
        self._bn_batches: deque[torch.Tensor] = deque(maxlen=max(precise_bn_batches, 1))
        self._media_batch: dict[str, torch.Tensor] | None = None

    def forward(self, x: torch.Tensor, cut: int | None = None) -> list[torch.Tensor]:
        return self.net(x, cut)

    @property
    def selected_block(self) -> int:
        """The prediction block (1-based) chosen on validation; stored in the network's state."""
        return int(self.net.selected_block)

    @selected_block.setter
    def selected_block(self, block: int) -> None:
        self.net.selected_block.fill_(int(block))

    # ----------------------------------------------------------------------------- training
    def on_after_batch_transfer(self, batch: dict[str, torch.Tensor], dataloader_idx: int = 0) -> dict:
        if self.trainer is not None and self.trainer.training and self.augmenter is not None:
            batch = dict(batch)
            batch["image"], batch["uvz"], batch["annotated"] = self.augmenter(
                batch["image"], batch["uvz"], batch["annotated"], batch["has3d"])
        return batch

    def training_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> torch.Tensor:
        target = build_targets(batch["uvz"], batch["annotated"])
        poses = self.net(batch["image"])
        loss = sspnet_loss(poses, target, self.hparams.loss)
        if self.hparams.precise_bn_batches > 0:
            self._bn_batches.append(batch["image"].detach())
        self.log("train/loss", loss, prog_bar=True, batch_size=batch["image"].shape[0], sync_dist=True)
        return loss

    def configure_optimizers(self):
        h = self.hparams
        if h.optimizer == "rmsprop":  # Keras RMSprop defaults: rho 0.9, eps 1e-7
            opt = torch.optim.RMSprop(self.parameters(), lr=h.lr, alpha=0.9, eps=1e-7)
        elif h.optimizer == "adam":
            opt = torch.optim.Adam(self.parameters(), lr=h.lr)
        else:
            raise ValueError(f"optimizer must be 'rmsprop' or 'adam', got {h.optimizer!r}")
        if not h.lr_milestones:
            return opt
        epochs = planned_epochs(self, default=100)
        milestones = sorted(int(round(m * epochs)) if m < 1 else int(m) for m in h.lr_milestones)
        sched = torch.optim.lr_scheduler.MultiStepLR(opt, milestones=milestones, gamma=h.lr_gamma)
        return {"optimizer": opt, "lr_scheduler": {"scheduler": sched, "interval": "epoch"}}

    # ----------------------------------------------------------------------------- evaluation
    def recompute_bn(self) -> int:
        """Precise BN from the latest training inputs (spec section 10, pitfall 1); returns batches used."""
        if self.hparams.precise_bn_batches <= 0:
            return 0
        used = precise_batchnorm(self.net, list(self._bn_batches))
        dist = torch.distributed
        if used and dist.is_available() and dist.is_initialized():  # one set of statistics for every process
            for m in self.net.modules():
                if isinstance(m, _BatchNorm) and m.running_mean is not None:
                    for buf in (m.running_mean, m.running_var):
                        dist.all_reduce(buf)
                        buf /= dist.get_world_size()
        return used

    def on_validation_epoch_start(self) -> None:
        if not self.trainer.sanity_checking:
            self.recompute_bn()

    def on_test_epoch_start(self) -> None:
        self.recompute_bn()

    def _lifted(self, batch: dict[str, torch.Tensor]) -> tuple[list[torch.Tensor], torch.Tensor]:
        keep = batch["has3d"] > 0
        if not keep.any():
            return [], []
        poses = self.net(batch["image"][keep])
        args = (batch["camera"][keep], batch["crop"][keep], batch["root_z"][keep], batch["depth_range"][keep])
        return [lift_to_camera(p, *args) for p in poses], poses

    def validation_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        lifted, poses = self._lifted(batch)
        gt = batch["pose3d"][batch["has3d"] > 0]
        if not lifted:
            return
        self.val_metrics.update(lifted, gt)
        if batch_idx == 0 and gt.shape[0]:
            keep = batch["has3d"] > 0
            self._media_batch = {"image": batch["image"][keep][:8], "pred_uv": poses[-1][:8, :, :2],
                                 "gt_uv": batch["uvz"][keep][:8, :, :2], "pred_mm": lifted[-1][:4], "gt_mm": gt[:4]}

    def on_validation_epoch_end(self) -> None:
        res = self.val_metrics.compute()
        self.val_metrics.reset()
        for b in range(self.net.num_blocks):
            self.log(f"val/mpjpe_b{b + 1}", res["mpjpe"][b].float(), sync_dist=True)
            self.log(f"val/pa_mpjpe_b{b + 1}", res["pa_mpjpe"][b].float(), sync_dist=True)
        best = int(torch.argmin(res["mpjpe"]).item())
        if not self.trainer.sanity_checking:
            self.selected_block = best + 1
        self.log("val/mpjpe", res["mpjpe"][best].float(), sync_dist=True)
        self.log("val/pa_mpjpe", res["pa_mpjpe"][best].float(), sync_dist=True)
        self.log("val/mpjpe_last", res["mpjpe"][-1].float(), sync_dist=True)
        self.log("val/selected_block", float(best + 1), sync_dist=True)
        epoch = self.current_epoch
        if self._media_batch is not None and not self.trainer.sanity_checking and \
                self.hparams.media_every_n_epochs > 0 and epoch % self.hparams.media_every_n_epochs == 0:
            self._log_media(res["mpjpe"].tolist(), best + 1)
        self._media_batch = None

    def test_step(self, batch: dict[str, torch.Tensor], batch_idx: int) -> None:
        lifted, _ = self._lifted(batch)
        if lifted:
            keep = batch["has3d"] > 0
            self.test_metrics.update(lifted, batch["pose3d"][keep])
            if self.hparams.report_14_joints:
                idx = list(PA17J_TO_14)
                self.test_metrics14.update([root_align(p)[:, idx] for p in lifted],
                                           root_align(batch["pose3d"][keep])[:, idx])
            if "action" in batch:
                self.test_actions.update(lifted[self.selected_block - 1], batch["pose3d"][keep], batch["action"][keep])

    def on_test_epoch_end(self) -> None:
        res = self.test_metrics.compute()
        self.test_metrics.reset()
        sel = min(self.selected_block, self.net.num_blocks) - 1
        for name, values in res.items():
            self.log(f"test/{name}", values[sel].float(), sync_dist=True)
            self.log(f"test/{name}_last", values[-1].float(), sync_dist=True)
        for b in range(self.net.num_blocks):
            self.log(f"test/mpjpe_b{b + 1}", res["mpjpe"][b].float(), sync_dist=True)
        self.log("test/selected_block", float(sel + 1), sync_dist=True)
        if self.hparams.report_14_joints and self.test_metrics14.update_called:
            res14 = self.test_metrics14.compute()
            for name, values in res14.items():
                self.log(f"test/{name}_14j", values[sel].float(), sync_dist=True)
        self.test_metrics14.reset()
        actions = self.test_actions.compute() if self.test_actions.update_called else {}
        self.test_actions.reset()
        if actions:
            for a, value in actions.items():
                self.log(f"test/mpjpe_action{a:02d}", value.float(), sync_dist=True)
            self.log("test/mpjpe_action_mean", torch.stack(list(actions.values())).mean().float(), sync_dist=True)

    # ----------------------------------------------------------------------------- media and checkpoints
    @rank_zero_only
    def _log_media(self, per_block: list[float], selected: int) -> None:
        from lightning.pytorch.loggers import WandbLogger

        loggers = [lg for lg in self.loggers if isinstance(lg, WandbLogger)]
        if not loggers:
            return
        from zoo.sspnet import media

        m = self._media_batch
        try:
            crops = media.skeletons_on_crops(m["image"], m["pred_uv"], m["gt_uv"])
            plots = media.skeletons_3d(m["pred_mm"], m["gt_mm"])
            chart = media.mpjpe_per_block_chart(per_block, selected)
        except ImportError as err:  # matplotlib is optional: metrics are logged anyway
            rank_zero_warn(f"SSP-Net media not logged ({err}); pip install matplotlib")
            return
        for lg in loggers:
            lg.log_image(key="val/skeletons_2d", images=[crops], step=self.global_step)
            lg.log_image(key="val/skeletons_3d", images=[plots], step=self.global_step)
            lg.log_image(key="val/mpjpe_per_block", images=[chart], step=self.global_step)
            try:
                import wandb

                table = wandb.Table(data=[[b + 1, v] for b, v in enumerate(per_block)], columns=["block", "mpjpe"])
                lg.experiment.log({"val/mpjpe_per_block_chart": wandb.plot.line(
                    table, "block", "mpjpe", title="val MPJPE per prediction block")})
            except Exception:  # noqa: BLE001 - a chart must never break training
                pass
