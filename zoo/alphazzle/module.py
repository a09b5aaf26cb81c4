"""LightningModule of Alphazzle (Paumard, Tabia, Picard, arXiv 2302.00384).

``stage='pretrain'``: supervised P and V on puzzles sampled on the fly, one P batch then one V batch per step,
two Adam optimizers under manual optimisation. ``stage='finetune'``: the optional MCTS-driven stage (spec 6.2).
Validation runs greedy-P each epoch; test/predict solve every puzzle with the full MCTS (or an ablation).
"""
from __future__ import annotations

from pathlib import Path

import lightning.pytorch as pl
import numpy as np
import torch
import torch.nn.functional as F
from torchmetrics import MeanMetric

from zoo.alphazzle.game import Puzzle, fragment_accuracy, neighbour_accuracy, perfect
from zoo.alphazzle.media import puzzle_panel, save_png, visit_heatmaps
from zoo.alphazzle.nets import AlphazzleNet
from zoo.alphazzle.sampling import policy_batch, value_batch
from zoo.alphazzle.solve import SOLVERS, NetworkEvaluator, greedy_p_batch, solve, solve_best_of_orders, solve_mcts

METRICS = ("frag_acc", "perfect", "neighbour_acc")


def state_metrics(states: list[tuple[int, ...]], grid: int, helper_lists: list[list[int]] | None = None
                  ) -> dict[str, list[float]]:
    """The three metrics of the spec for each final state (helper fragments left out of fragment accuracy)."""
    helper_lists = helper_lists or [[] for _ in states]
    return {"frag_acc": [fragment_accuracy(s, h) for s, h in zip(states, helper_lists)],
            "perfect": [perfect(s) for s in states], "neighbour_acc": [neighbour_accuracy(s, grid) for s in states]}


class AlphazzleModule(pl.LightningModule):
    """Pre-trains (or MCTS-fine-tunes) Alphazzle's P and V and evaluates them with MCTS."""

    def __init__(self, grid: int = 3, frag: int = 40, gap: int = 4, in_channels: int = 3, encoder: str = "wrn28_4",
                 head_width: int | None = None, head_depth: int | None = None, share_trunk: bool = False,
                 lr: float = 1e-3, v_target: str = "binary", stage: str = "pretrain", num_simulations: int = 1000,
                 c_puct: float = 1.0, unvisited_bonus: float = 1000.0, leaf_batch: int = 16, use_q: bool = False,
                 test_solver: str = "mcts", num_orders: int = 1, num_helpers: int = 0, finetune_lr: float = 1e-4, finetune_value: bool = True,
                 finetune_batch_size: int = 32,
                 init_weights: str | None = None, log_puzzles: int = 4) -> None:
        super().__init__()
        self.save_hyperparameters()
        if stage not in ("pretrain", "finetune"):
            raise ValueError(f"stage must be 'pretrain' or 'finetune', got {stage!r}")
        if test_solver not in SOLVERS:
            raise ValueError(f"test_solver must be one of {SOLVERS}, got {test_solver!r}")
        if finetune_batch_size < 0:
            raise ValueError(f"finetune_batch_size must be >= 0 (0: one update on all states), got {finetune_batch_size}")
        if v_target not in ("binary", "frac_correct"):
            raise ValueError(f"v_target must be 'binary' or 'frac_correct', got {v_target!r}")
        self.automatic_optimization = False
        self.net = AlphazzleNet(grid, frag, gap, in_channels, encoder, head_width, head_depth, share_trunk)
        if init_weights:
            self._load_init(init_weights)
        self.agg = torch.nn.ModuleDict({f"{st}_{m}": MeanMetric() for st in ("val", "test") for m in METRICS})
        self._media: list[dict] = []

    def _load_init(self, path: str) -> None:
        """Start from a zoo weights file or a ``zoo fit`` checkpoint of this module (for the fine-tuning stage)."""
        from lightning.pytorch.utilities import rank_zero_warn

        from zoo.hub import safe_load

        if not Path(path).is_file():  # e.g. restoring a fine-tuned checkpoint on another machine: its own weights win
            rank_zero_warn(f"init_weights {path} not found; the network keeps its current (or checkpointed) weights")
            return
        payload = safe_load(path)
        state = payload.get("state_dict", payload)
        if any(k.startswith("net.") for k in state):
            state = {k[4:]: v for k, v in state.items() if k.startswith("net.")}
        self.net.load_state_dict(state)

    def forward(self, canvas: torch.Tensor, fragment: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.net(canvas, fragment)

    def configure_optimizers(self):
        lr = self.hparams.lr if self.hparams.stage == "pretrain" else self.hparams.finetune_lr
        return (torch.optim.Adam(self.net.policy.parameters(), lr=lr),
                torch.optim.Adam(self.net.value.parameters(), lr=lr))

    # --- training ---------------------------------------------------------------------------------------
    def _geometry(self) -> tuple[int, int, int]:
        return self.hparams.grid, self.hparams.frag, self.hparams.gap

    def _p_loss(self, canvas, fragment, target) -> tuple[torch.Tensor, torch.Tensor]:
        logits = self.net.policy(canvas, fragment)
        return F.cross_entropy(logits, target), (logits.argmax(1) == target).float().mean()

    def _v_loss(self, canvas, target) -> tuple[torch.Tensor, torch.Tensor]:
        logit = self.net.value(canvas)
        if self.hparams.v_target == "binary":
            loss = F.binary_cross_entropy_with_logits(logit, target)
        else:
            loss = F.mse_loss(torch.sigmoid(logit), target)
        return loss, ((logit > 0).float() == (target > 0.5).float()).float().mean()

    def _step(self, opt, loss: torch.Tensor) -> None:
        opt.zero_grad()
        self.manual_backward(loss)
        opt.step()

    def training_step(self, batch, batch_idx: int) -> torch.Tensor:
        images, orders = batch
        opt_p, opt_v = self.optimizers()
        if self.hparams.stage == "finetune":
            return self._finetune_step(images, orders, opt_p, opt_v)
        g = self._geometry()
        h = self.hparams.num_helpers
        p_loss, p_acc = self._p_loss(*policy_batch(images, *g, min_placed=h))
        self._step(opt_p, p_loss)
        v_loss, v_acc = self._v_loss(*value_batch(images, *g, v_target=self.hparams.v_target, min_placed=h))
        self._step(opt_v, v_loss)
        self.log_dict({"train/p_loss": p_loss, "train/p_acc": p_acc, "train/v_loss": v_loss, "train/v_acc": v_acc},
                      prog_bar=True, on_step=True, on_epoch=True, batch_size=images.shape[0])
        return p_loss + v_loss

    def _finetune_step(self, images, orders, opt_p, opt_v) -> torch.Tensor:
        """Spec 6.2 / ``reassembly.py``: MCTS plays the puzzles; every visited state gets the ground-truth position as
        P target and a Bernoulli V target with p = (0.5 + 0.5 t / (n - 1)) x [no mistake yet] (t counts helpers
        too); then one epoch over those states in minibatches of ``finetune_batch_size`` (0: one update)."""
        self.net.eval()
        canv, frags, pos, vt = [], [], [], []
        n = self.hparams.grid ** 2
        for img, order in zip(images, orders):
            puzzle = Puzzle.from_image(img, *self._geometry(), order.tolist(), helpers=self.hparams.num_helpers)
            s, info = self._mcts(puzzle)
            states = [puzzle.initial()]
            for p_move in _moves(puzzle, s)[self.hparams.num_helpers:]:
                states.append(puzzle.step(states[-1], p_move))
            for t, st in enumerate(states[:-1]):
                canv.append(puzzle.render(st))
                nxt = puzzle.next_fragment(st)
                frags.append(puzzle.fragments[nxt])
                pos.append(nxt)
                step = self.hparams.num_helpers + t  # the code's episodeStep - 1
                prob = (0.5 + 0.5 * step / max(n - 1, 1)) * float(puzzle.all_correct_so_far(st))
                vt.append(float(torch.rand(()) < prob))
        self.net.train()
        canvas, fragment = torch.stack(canv), torch.stack(frags)
        target, v_target = torch.tensor(pos, device=self.device), torch.tensor(vt, device=self.device)
        size = self.hparams.finetune_batch_size or len(pos)
        # poutyne's fit(..., epochs=1): P then V, each one shuffled pass in minibatches (the code's defaults)
        p_losses, p_accs, v_losses = [], [], []
        for idx in torch.randperm(len(pos)).split(size):
            p_loss, p_acc = self._p_loss(canvas[idx], fragment[idx], target[idx])
            self._step(opt_p, p_loss)
            p_losses.append(p_loss.detach()), p_accs.append(p_acc)
        if self.hparams.finetune_value:
            for idx in torch.randperm(len(pos)).split(size):
                v_loss, _ = self._v_loss(canvas[idx], v_target[idx])
                self._step(opt_v, v_loss)
                v_losses.append(v_loss.detach())
        logs = {"train/p_loss": torch.stack(p_losses).mean(), "train/p_acc": torch.stack(p_accs).mean()}
        if v_losses:
            logs["train/v_loss"] = torch.stack(v_losses).mean()
        self.log_dict(logs, prog_bar=True, on_step=True, on_epoch=True, batch_size=len(pos))
        return logs["train/p_loss"]

    # --- evaluation --------------------------------------------------------------------------------------
    def _mcts(self, puzzle: Puzzle):
        h = self.hparams
        ev = NetworkEvaluator(self.net, puzzle, device=self.device)
        return solve_mcts(puzzle, ev, h.num_simulations, h.c_puct, h.unvisited_bonus, h.leaf_batch, h.use_q)

    def _update(self, stage: str, metrics: dict[str, list[float]]) -> None:
        for m in METRICS:
            self.agg[f"{stage}_{m}"].update(torch.tensor(metrics[m], device=self.device))

    def validation_step(self, batch, batch_idx: int) -> None:
        images, orders = batch
        h = self.hparams.num_helpers
        states = greedy_p_batch(self.net, images, orders, h).tolist()
        self._update("val", state_metrics([tuple(s) for s in states], self.hparams.grid, orders[:, :h].tolist()))
        if batch_idx == 0:
            self._media = [{"truth": images[i], "state": tuple(states[i]), "order": orders[i].tolist()}
                           for i in range(min(self.hparams.log_puzzles, len(states)))]

    def on_validation_epoch_end(self) -> None:
        self._log_stage("val")

    def _solve_batch(self, images, orders) -> list[dict]:
        out = []
        for img, order in zip(images, orders):
            puzzle = Puzzle.from_image(img, *self._geometry(), order.tolist(), helpers=self.hparams.num_helpers)
            h = self.hparams
            kw = dict(num_simulations=h.num_simulations, c_puct=h.c_puct, unvisited_bonus=h.unvisited_bonus,
                      leaf_batch=h.leaf_batch, use_q=h.use_q, device=self.device)
            if h.test_solver == "mcts" and h.num_orders > 1:  # the code's -g K: keep the order with the best final V
                gen = torch.Generator().manual_seed(len(out))
                state, info = solve_best_of_orders(puzzle, self.net, h.num_orders, gen, **kw)
            else:
                state, info = solve(h.test_solver, puzzle, self.net, generator=np.random.default_rng(len(out)), **kw)
            out.append({"truth": img, "state": state, "order": order.tolist(), "visits": info.get("visits", []),
                        **puzzle.metrics(state)})
        return out

    def test_step(self, batch, batch_idx: int) -> None:
        results = self._solve_batch(*batch)
        self._update("test", {m: [r[m] for r in results] for m in METRICS})
        if batch_idx == 0:
            self._media = results[:self.hparams.log_puzzles]

    def on_test_epoch_end(self) -> None:
        self._log_stage("test")

    def predict_step(self, batch, batch_idx: int) -> list[dict]:
        return [{k: v for k, v in r.items() if k != "truth"} for r in self._solve_batch(*batch)]

    def _log_stage(self, stage: str) -> None:
        for m in METRICS:
            self.log(f"{stage}/{m}", self.agg[f"{stage}_{m}"].compute(), prog_bar=m == "frag_acc", sync_dist=True)
            self.agg[f"{stage}_{m}"].reset()
        if self._media and not self.trainer.sanity_checking:
            self._log_media(stage)
        self._media = []

    def _log_media(self, stage: str) -> None:
        """Ground truth | reassembly images (and root visit maps per move) to W&B and as PNG files."""
        if self.trainer.global_rank != 0:
            return
        panels, maps = [], []
        for r in self._media:
            puzzle = Puzzle.from_image(r["truth"], *self._geometry(), order=r["order"])
            truth = puzzle.render(tuple(range(puzzle.num_actions)))
            panels.append(puzzle_panel(truth, puzzle.render(r["state"])))
            if r.get("visits"):
                maps.append(visit_heatmaps(r["visits"], self.hparams.grid))
        root = Path(self.trainer.default_root_dir) / "media"
        tag = f"{stage}_epoch{self.current_epoch:03d}"
        for i, img in enumerate(panels):
            save_png(img, root / f"{tag}_puzzle{i}.png")
        for i, img in enumerate(maps):
            save_png(img, root / f"{tag}_visits{i}.png")
        for lg in self.loggers:
            if type(lg).__name__ == "WandbLogger":
                lg.log_image(key=f"{stage}/reassembly", images=panels, step=self.global_step,
                             caption=["ground truth | reassembly"] * len(panels))
                if maps:
                    lg.log_image(key=f"{stage}/root_visits", images=maps, step=self.global_step,
                                 caption=["root visit fractions, one map per move"] * len(maps))


def _moves(puzzle: Puzzle, final: tuple[int, ...]) -> list[int]:
    """Positions chosen at each step to reach ``final`` (fragments were placed in ``puzzle.order``)."""
    where = {f: p for p, f in enumerate(final)}
    return [where[f] for f in puzzle.order]
