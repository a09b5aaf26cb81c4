"""LightningModule of the mesh reconstruction paper (IBISC): the staged recipe of spec section 5 (reconstructed):
A VGN pre-training, B policy training by RL (VGN frozen), C refiner training on decoded meshes, D joint fine-tuning;
``stage="all"`` runs A-D in turn over ``stage_epochs``. Also trains the icosphere-template baseline (``pipeline``)."""
from __future__ import annotations

from typing import Any, Literal, Sequence

import lightning.pytorch as L
import torch
from lightning.pytorch.utilities import rank_zero_warn

from zoo.core.mesh import ops
from zoo.meshrec.episodes import sample_episodes
from zoo.meshrec.losses import mesh_loss, vertex_set_chamfer
from zoo.core.mesh.metrics import compare_meshes, compare_points
from zoo.meshrec.net import IcosphereTemplateNet, RLTriMeshNet, compact_mesh
from zoo.meshrec.rl import RewardWeights, expected_losses, rloo_loss, triangulation_reward
from zoo.meshrec.triangulation import bernoulli_entropy, bernoulli_log_prob
from zoo.meshrec.vgn import repulsion_loss, surface_spacing

Stage = Literal["vgn", "policy", "refiner", "joint", "all"]
STAGES = ("vgn", "policy", "refiner", "joint")


class RLTriMeshModule(L.LightningModule):
    """Trains :class:`RLTriMeshNet` (or :class:`IcosphereTemplateNet`) with L = L_V + L_tri + sum_s L_ref,s / S and
    logs per-stage chamfer, F1, normal consistency, Euler characteristic and non-manifold edge ratio.

    ``f1@tau`` (percent), ``normal`` and ``chamfer_l2`` follow Mesh R-CNN's ``compare_meshes`` (``meshrcnn_samples``
    fresh points from the predicted and the GT mesh; needs the datamodule's ``return_mesh``); ``cached_*`` are the
    zoo's earlier metric (``eval_points`` prediction samples against the dataset's cached GT samples, F1 in [0,1])."""

    def __init__(
        self,
        pipeline: Literal["rltri", "template"] = "rltri",
        stage: Stage = "all",
        stage_epochs: Sequence[int] = (5, 5, 5, 10),
        net_kwargs: dict[str, Any] | None = None,
        lr: float = 1e-4,
        policy_lr: float = 3e-4,
        weight_decay: float = 0.0,
        rl_samples: int = 4,
        entropy_beta: float = 1e-3,
        reward_cd: float = 10.0,
        reward_nm: float = 0.5,
        reward_faces: float = 0.1,
        reward_overlap: float = 0.01,
        reward_points: int = 500,
        expected_loss_weight: float = 0.0,
        watertight_weight: float = 1.0,
        vertex_grad_weight: float = 1.0,
        joint_lr_scale: float = 0.1,
        refine_on: Literal["greedy", "best"] = "greedy",
        loss_points: int = 1000,
        w_chamfer: float = 1.0,
        w_normal: float = 0.1,
        w_edge: float = 0.2,
        w_laplacian: float = 0.05,
        w_repulsion: float = 0.0,
        skip_loss_above: float | None = 50.0,
        eval_points: int = 2000,
        protocols: Sequence[str] = ("gt-10",),
        meshrcnn_samples: int = 10_000,
        media_every_n_epochs: int = 1,
        max_media: int = 3,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if stage not in (*STAGES, "all"):
            raise ValueError(f"stage must be one of {(*STAGES, 'all')}, got {stage!r}")
        if stage == "all" and len(stage_epochs) != 4:
            raise ValueError(f"stage_epochs needs 4 entries (vgn, policy, refiner, joint), got {list(stage_epochs)}")
        if pipeline == "rltri":
            self.net = RLTriMeshNet(**(net_kwargs or {}))
        elif pipeline == "template":
            self.net = IcosphereTemplateNet(**(net_kwargs or {}))
        else:
            raise ValueError(f"pipeline must be 'rltri' or 'template', got {pipeline!r}")
        self.reward_weights = RewardWeights(reward_cd, reward_nm, reward_faces, reward_overlap)
        self._media: list[dict] = []


    @classmethod
    def load_from_checkpoint(cls, checkpoint_path, *args: Any, **kwargs: Any):
        """Lightning's ``load_from_checkpoint``, without the ImageNet initialisation of the encoder: a run trained
        with ``pretrained_backbone: true`` reloads on a machine without the torchvision weights cache, since the
        checkpoint's own weights replace that initialisation anyway (pass ``net_kwargs`` to override)."""
        if "net_kwargs" not in kwargs:
            hparams = torch.load(checkpoint_path, map_location="cpu", weights_only=True).get("hyper_parameters") or {}
            net_kwargs = dict(hparams.get("net_kwargs") or {})
            if net_kwargs.get("pretrained_backbone"):
                kwargs["net_kwargs"] = {**net_kwargs, "pretrained_backbone": False}
        return super().load_from_checkpoint(checkpoint_path, *args, **kwargs)
    def forward(self, img: torch.Tensor, P: torch.Tensor | None = None) -> dict:
        return self.net(img, P)

    # ------------------------------------------------------------------------------------------------------- stages
    def current_stage(self, epoch: int | None = None) -> str:
        """The recipe stage of this (or the given) epoch (``stage="all"`` walks through ``stage_epochs``)."""
        if self.hparams.pipeline == "template":
            return "refiner"
        if self.hparams.stage != "all":
            return self.hparams.stage
        bounds = torch.tensor(list(self.hparams.stage_epochs)).cumsum(0)
        idx = int((bounds <= (self.current_epoch if epoch is None else epoch)).sum())
        return STAGES[min(idx, 3)]

    # ------------------------------------------------------------------------------------------------------ training
    def _policy_step(self, verts, tris, probs, points, train_policy: bool, want_best: bool):
        """RL on one image: M rollouts, rewards, the RLOO loss (+ optional expected losses); the best sample's faces."""
        m = self.hparams.rl_samples
        if self.net.mdp == "sequential":
            actions, logp, entropy = sample_episodes(probs, tris, verts.shape[0], m, self.net.max_faces)
        else:
            actions = torch.bernoulli(probs.detach().expand(m, -1)).bool()
        rewards, terms = triangulation_reward(verts.detach(), tris, actions, points, self.reward_weights,
                                              self.hparams.reward_points)
        loss = verts.new_zeros(())
        if train_policy:
            if self.net.mdp != "sequential":
                logp, entropy = bernoulli_log_prob(probs, actions), bernoulli_entropy(probs)
            loss = rloo_loss(logp, rewards, tris.shape[0], entropy, self.hparams.entropy_beta)
            if self.hparams.expected_loss_weight:
                e = expected_losses(verts.detach(), tris, probs, points)  # a surrogate for the policy only
                loss = loss + self.hparams.expected_loss_weight * (
                    e["p2m"] + e["m2p"] + self.hparams.watertight_weight * e["watertight"])
        best = int(rewards.argmax()) if want_best else 0
        stats = {"reward": rewards.mean(), "keep_rate": actions.float().mean(), "nm": terms["nm"].mean(),
                 "cd": terms["cd"].mean()}
        return loss, actions[best], stats

    def training_step(self, batch: dict, batch_idx: int):
        if self.hparams.pipeline == "template":
            return self._template_step(batch)
        stage = self.current_stage()
        img, points, normals, P = batch["image"], batch["points"], batch["normals"], batch["P"]
        size = (img.shape[-2], img.shape[-1])
        net, bsz = self.net, img.shape[0]
        frozen_encoder = stage in ("policy", "refiner")
        net.encoder.train(not frozen_encoder)  # frozen stages leave the BatchNorm statistics alone too
        net.vgn.train(not frozen_encoder)
        with torch.set_grad_enabled(not frozen_encoder):
            feats, code = net.encoder(img)
            verts = net.vgn(code)
        logs: dict[str, torch.Tensor | float] = {}
        loss = img.new_zeros(())
        if stage in ("vgn", "joint"):
            l_v = vertex_set_chamfer(verts, points).mean()
            if self.hparams.w_repulsion:
                h = 0.5 * surface_spacing(points, verts.shape[1])
                l_v = l_v + self.hparams.w_repulsion * repulsion_loss(verts, h)
            loss = loss + l_v
            logs["train/loss_vgn"] = l_v.detach()
        if stage in ("policy", "refiner", "joint"):
            if stage != "joint":
                feats, code, verts = [f.detach() for f in feats], code.detach(), verts.detach()
            with torch.set_grad_enabled(stage != "refiner"):
                cands, probs = net.triangle_probs(verts, feats, code, P, size)
            meshes, rl_losses, stats = [], [], []
            for b in range(bsz):
                if stage == "refiner" and self.hparams.refine_on == "greedy":
                    keep = net.decode(cands[b], probs[b])
                else:
                    l_rl, keep, st = self._policy_step(verts[b], cands[b], probs[b], points[b],
                                                       train_policy=stage != "refiner", want_best=True)
                    rl_losses.append(l_rl)
                    stats.append(st)
                faces = cands[b][keep]
                if stage == "joint" and self.hparams.vertex_grad_weight and faces.shape[0] > 0:
                    pts, _ = ops.sample_points(verts[b], faces, self.hparams.reward_points)  # reparameterised
                    vloss = ops.chamfer_distance(pts[None], points[b:b + 1])[0][0]
                    rl_losses.append(self.hparams.vertex_grad_weight * vloss)  # exact vertex gradients
                v, f, _ = compact_mesh(verts[b], faces)
                meshes.append((v, f))
            if rl_losses and stage != "refiner":
                l_tri = torch.stack(rl_losses).mean()
                loss = loss + l_tri
                logs["train/loss_tri"] = l_tri.detach()
            for key in ("reward", "keep_rate", "nm", "cd"):
                if stats:
                    logs[f"train/{key if key in ('reward', 'keep_rate') else 'reward_' + key}"] = torch.stack(
                        [s[key] for s in stats]).mean()
            if stage in ("refiner", "joint"):
                l_ref = self._refine_loss(meshes, feats, P, size, points, normals, logs)
                loss = loss + l_ref
        logs["train/loss"] = loss.detach()
        logs["train/stage"] = float(STAGES.index(stage))
        self.log_dict(logs, on_step=True, on_epoch=True, batch_size=bsz, sync_dist=True)
        if not loss.requires_grad:
            return None
        if self.hparams.skip_loss_above is not None and float(loss.detach()) > self.hparams.skip_loss_above:
            # Mesh R-CNN skips exploding losses; under DDP every rank must still run backward, so send zero gradients
            return loss * 0.0 if self.trainer.world_size > 1 else None
        return loss

    def _refine_loss(self, meshes, feats, P, size, points, normals, logs) -> torch.Tensor:
        stages = self.net.refiner(meshes, feats, P, size)
        total = points.new_zeros(())
        for s, refined in enumerate(stages, start=1):
            parts = [mesh_loss(v, f, points[b], normals[b], self.hparams.loss_points, self.hparams.w_chamfer,
                               self.hparams.w_normal, self.hparams.w_edge, self.hparams.w_laplacian)
                     for b, (v, f) in enumerate(refined)]
            stage_loss = torch.stack([p[0] for p in parts]).mean()
            total = total + stage_loss / len(stages)
            logs[f"train/chamfer_stage{s}"] = torch.stack([p[1]["chamfer"] for p in parts]).mean()
        logs["train/loss_ref"] = total.detach()
        return total

    def _template_step(self, batch: dict):
        img, points, normals, P = batch["image"], batch["points"], batch["normals"], batch["P"]
        feats, _ = self.net.encoder(img)
        base = [(self.net.template_verts, self.net.template_faces)] * img.shape[0]
        logs: dict[str, torch.Tensor] = {}
        loss = self._refine_loss(base, feats, P, (img.shape[-2], img.shape[-1]), points, normals, logs)
        logs["train/loss"] = loss.detach()
        self.log_dict(logs, on_step=True, on_epoch=True, batch_size=img.shape[0], sync_dist=True)
        return loss

    # ---------------------------------------------------------------------------------------------------- evaluation
    def _evaluate(self, batch: dict, prefix: str) -> None:
        img, points, normals, P = batch["image"], batch["points"], batch["normals"], batch["P"]
        out = self.net(img, P)
        bsz, n_eval = img.shape[0], self.hparams.eval_points
        logs: dict[str, float] = {}

        def add(key: str, value: float) -> None:
            logs[key] = logs.get(key, 0.0) + float(value) / bsz

        if self.hparams.pipeline == "rltri":
            for b in range(bsz):
                add("chamfer_vertices", vertex_set_chamfer(out["vertices"][b:b + 1], points[b:b + 1])[0])
        final = len(out["meshes"]) - 1
        gt_meshes = self._gt_meshes(batch)
        for s, meshes in enumerate(out["meshes"]):
            for b, (v, f) in enumerate(meshes):
                if s == final and gt_meshes is not None:
                    self._meshrcnn_metrics(v, f, *gt_meshes[b], add)
                if f.shape[0] == 0:
                    add(f"chamfer_stage{s}", vertex_set_chamfer(v[None], points[b:b + 1])[0])
                    continue
                pts, nrm = ops.sample_points(v, f, n_eval)
                add(f"chamfer_stage{s}", ops.chamfer_distance(pts[None], points[b:b + 1])[0][0])
                if s == final:
                    for protocol in self.hparams.protocols:
                        tag = "cached_" if protocol == "gt-10" else "cached_p2m_"
                        res = compare_points(pts, points[b], nrm, normals[b], protocol=protocol)
                        for k, val in res.items():
                            if k != "chamfer" or protocol != "gt-10":
                                add(f"{tag}{k}", val)
        for b, (v, f) in enumerate(out["meshes"][0]):
            add("euler", ops.euler_characteristic(v, f))
            add("nonmanifold", ops.nonmanifold_edge_ratio(f) if f.shape[0] else 1.0)
            add("components", ops.connected_components(f))
            add("faces", f.shape[0])
        logs["chamfer"] = logs[f"chamfer_stage{final}"]
        self.log_dict({f"{prefix}/{k}": float(v) for k, v in logs.items()}, on_epoch=True, batch_size=bsz,
                      sync_dist=True)  # python floats: Lightning puts them on the module's device for the all-reduce
        if prefix == "val" and len(self._media) < self.hparams.max_media:
            for b in range(min(bsz, self.hparams.max_media - len(self._media))):
                v, f = out["meshes"][-1][b]
                self._media.append({"verts": v.detach().cpu(), "faces": f.detach().cpu(),
                                    "gt": points[b].detach().cpu(), "id": str(batch.get("id", [b] * bsz)[b])})

    def _gt_meshes(self, batch: dict) -> list | None:
        """The batch's GT meshes for Mesh R-CNN's metrics (datamodule ``return_mesh: true``), else None (warns once)."""
        if not self.hparams.meshrcnn_samples:
            return None
        if "verts" in batch and "faces" in batch:
            return list(zip(batch["verts"], batch["faces"]))
        if not getattr(self, "_warned_no_gt_mesh", False):
            self._warned_no_gt_mesh = True
            rank_zero_warn("RLTriMeshModule: the batch has no GT meshes ('verts'/'faces'), so Mesh R-CNN's metrics "
                           "(f1@tau, normal, chamfer_l2) are not logged; set the datamodule's return_mesh: true")
        return None

    def _meshrcnn_metrics(self, v: torch.Tensor, f: torch.Tensor, gt_v: torch.Tensor, gt_f: torch.Tensor, add) -> None:
        """Mesh R-CNN ``compare_meshes`` per protocol: F1 in percent, absolute normal consistency, Chamfer-L2."""
        for protocol in self.hparams.protocols:
            tag = "" if protocol == "gt-10" else "p2m_"
            res = compare_meshes(v, f, gt_v, gt_f, self.hparams.meshrcnn_samples, scale=protocol)
            for k, val in res.items():
                if k.startswith("f1@") or k in ("normal", "chamfer_l2"):
                    add(f"{tag}{k}", val)

    def validation_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluate(batch, "val")

    def test_step(self, batch: dict, batch_idx: int) -> None:
        self._evaluate(batch, "test")

    def predict_step(self, batch: dict, batch_idx: int) -> list[dict]:
        """Per image: the VGN vertices, the decoded (stage 0) and the final meshes, on the CPU (``zoo predict``)."""
        out = self.net(batch["image"], batch["P"])
        ids = batch.get("id", [str(i) for i in range(batch["image"].shape[0])])
        return [{"id": str(ids[b]), "vertices": out["vertices"][b].detach().cpu(),
                 "decoded": tuple(t.detach().cpu() for t in out["meshes"][0][b]),
                 "mesh": tuple(t.detach().cpu() for t in out["meshes"][-1][b])} for b in range(len(out["meshes"][0]))]

    def on_validation_epoch_start(self) -> None:
        self._media = []

    def on_validation_epoch_end(self) -> None:
        if self._media and (self.current_epoch + 1) % max(self.hparams.media_every_n_epochs, 1) == 0:
            from zoo.meshrec.media import log_meshes, log_stage_chart

            log_meshes(self.loggers, self._media, step=self.global_step, tag="val/meshes")
            metrics, chamfers, s = self.trainer.callback_metrics, [], 0
            while f"val/chamfer_stage{s}" in metrics:
                chamfers.append(float(metrics[f"val/chamfer_stage{s}"]))
                s += 1
            log_stage_chart(self.loggers, chamfers, step=self.global_step)
        self._media = []

    def apply_stage_lr(self, optimizers: Sequence[torch.optim.Optimizer]) -> None:
        """Joint fine-tuning (stage D) runs at ``joint_lr_scale`` times the stage A-C learning rates."""
        scale = self.hparams.joint_lr_scale if self.current_stage() == "joint" else 1.0
        for opt in optimizers:
            for group in opt.param_groups:
                group["lr"] = group.setdefault("base_lr", group["lr"]) * scale

    def on_train_epoch_start(self) -> None:
        self.apply_stage_lr(self.trainer.optimizers)  # the stage changes only between epochs

    # ---------------------------------------------------------------------------------------------------- optimisers
    def configure_optimizers(self):
        """Adam with separate parameter groups: the policy at ``policy_lr`` (3e-4), everything else at ``lr`` (1e-4)."""
        policy = list(self.net.policy.parameters()) if hasattr(self.net, "policy") else []
        ids = {id(p) for p in policy}
        rest = [p for p in self.net.parameters() if id(p) not in ids]
        groups = [{"params": rest, "lr": self.hparams.lr, "name": "vgn_refiner"}]
        if policy:
            groups.append({"params": policy, "lr": self.hparams.policy_lr, "name": "policy"})
        return torch.optim.Adam(groups, weight_decay=self.hparams.weight_decay)
