"""Solvers of the Alphazzle game (arXiv 2302.00384): MCTS with P and V or their ablations (uniform prior,
constant value, ground-truth values), and the greedy-P, greedy-V and random baselines of the paper's ablation.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from zoo.alphazzle.game import Puzzle, State, extract_fragments, render_batch
from zoo.alphazzle.mcts import MCTS
from zoo.alphazzle.nets import AlphazzleNet

PRIORS = ("network", "uniform")
VALUES = ("network", "constant", "oracle_sparse", "oracle_dense")
SOLVERS = ("random", "greedy_v", "greedy_p", "mcts", "mcts_no_p", "mcts_oracle_sparse", "mcts_oracle_dense",
           "mcts_constant_v")


class NetworkEvaluator:
    """Batched leaf evaluation for :class:`MCTS`: renders the states' canvases, one P call and one V call.

    ``prior='uniform'`` ablates P; ``value`` = ``constant`` (v = 1), ``oracle_sparse`` (1 iff complete and
    perfect, the official code's ground-truth switch) or ``oracle_dense`` (1 iff all placed so far are correct).
    """

    def __init__(self, net: AlphazzleNet | None, puzzle: Puzzle, prior: str = "network", value: str = "network",
                 device: torch.device | str = "cpu") -> None:
        if prior not in PRIORS or value not in VALUES:
            raise ValueError(f"prior must be in {PRIORS} and value in {VALUES}; got {prior!r}, {value!r}")
        if net is None and (prior == "network" or value == "network"):
            raise ValueError("a network is needed unless prior='uniform' and value is not 'network'")
        self.net, self.puzzle, self.prior, self.value, self.device = net, puzzle, prior, value, torch.device(device)
        self.fragments = puzzle.fragments.to(self.device)
        self.calls = 0

    @torch.no_grad()
    def __call__(self, states: Sequence[State], need_prior: Sequence[bool]) -> tuple[np.ndarray, np.ndarray]:
        a = self.puzzle.num_actions
        priors = np.full((len(states), a), 1.0 / a)
        values = np.ones(len(states))
        canvases = None
        if self.value == "network" or (self.prior == "network" and any(need_prior)):
            canvases = render_batch(self.fragments, list(states), self.puzzle.grid, self.puzzle.frag, self.puzzle.gap)
            self.calls += 1
        if self.prior == "network" and any(need_prior):
            idx = [i for i, need in enumerate(need_prior) if need]
            frags = self.fragments[[self.puzzle.next_fragment(states[i]) for i in idx]]
            logits = self.net.policy(canvases[idx], frags)
            priors[idx] = torch.softmax(logits.float(), dim=1).cpu().numpy()
        if self.value == "network":
            values = torch.sigmoid(self.net.value(canvases).float()).cpu().numpy().astype(np.float64)
        elif self.value == "oracle_sparse":
            values = np.array([float(self.puzzle.is_terminal(s) and self.puzzle.all_correct_so_far(s)) for s in states])
        elif self.value == "oracle_dense":
            values = np.array([float(self.puzzle.all_correct_so_far(s)) for s in states])
        return priors, values


def solve_mcts(puzzle: Puzzle, evaluator: NetworkEvaluator, num_simulations: int = 1000, c_puct: float = 1.0,
               unvisited_bonus: float = 1000.0, leaf_batch: int = 1, use_q: bool = False,
               sequential: bool = False) -> tuple[State, dict]:
    """Play one puzzle with MCTS (tree reused across moves); returns the final state and per-move root visits."""
    tree = MCTS(puzzle, evaluator, c_puct, unvisited_bonus, leaf_batch)
    s, visits = puzzle.initial(), []
    while not puzzle.is_terminal(s):
        if sequential:
            for _ in range(num_simulations):
                tree.search(s)
        else:
            tree.run(s, num_simulations)
        visits.append(np.array(tree.Nsa[s]))
        s = puzzle.step(s, tree.best_move(s, use_q))
    return s, {"visits": visits, "evaluations": tree.evaluations}


@torch.no_grad()
def greedy_p_batch(net: AlphazzleNet, images: torch.Tensor, orders: torch.Tensor, helpers: int = 0) -> torch.Tensor:
    """Greedy-P on a batch of puzzles at once: argmax P over empty positions at each step; returns states (B, A).
    The first ``helpers`` fragments of each order start at their true cells."""
    grid, frag, gap = net.grid, net.frag, net.gap
    frags = extract_fragments(images, grid, frag, gap)  # (B, A, C, f, f)
    b, a = orders.shape
    state = torch.full((b, a), -1, dtype=torch.long, device=images.device)
    rows = torch.arange(b, device=images.device)
    for t in range(helpers):
        state[rows, orders[:, t]] = orders[:, t]
    for t in range(helpers, a):
        canvas = _render_many(frags, state, grid, frag, gap)
        nxt = orders[:, t]
        logits = net.policy(canvas, frags[rows, nxt]).float()
        logits = logits.masked_fill(state >= 0, float("-inf"))
        pos = logits.argmax(dim=1)
        state[rows, pos] = nxt
    return state


def _render_many(frags: torch.Tensor, state: torch.Tensor, grid: int, frag: int, gap: int) -> torch.Tensor:
    """Canvases of B different puzzles: ``frags`` (B, A, C, f, f), ``state`` (B, A) pos -> fragment or -1."""
    b, a, c = frags.shape[:3]
    side = grid * frag + (grid - 1) * gap
    out = frags.new_zeros(b, c, side, side)
    rows = torch.arange(b, device=frags.device)
    for p in range(a):
        y, x = divmod(p, grid)
        y, x = y * (frag + gap), x * (frag + gap)
        f = state[:, p]
        placed = (f >= 0).float()[:, None, None, None]
        out[:, :, y:y + frag, x:x + frag] = frags[rows, f.clamp(min=0)] * placed
    return out


@torch.no_grad()
def solve_greedy_v(net: AlphazzleNet, puzzle: Puzzle, device: torch.device | str = "cpu") -> State:
    """Greedy-V: one-step look-ahead, place where the resulting canvas has the highest sigma(V)."""
    frags = puzzle.fragments.to(device)
    s = puzzle.initial()
    while not puzzle.is_terminal(s):
        moves = [p for p, ok in enumerate(puzzle.valid_moves(s)) if ok]
        children = [puzzle.step(s, p) for p in moves]
        v = net.value(render_batch(frags, children, puzzle.grid, puzzle.frag, puzzle.gap))
        s = children[int(v.argmax())]
    return s


def solve_random(puzzle: Puzzle, generator: np.random.Generator) -> State:
    """Uniformly random placement: the chance level of the ablation table."""
    s = puzzle.initial()
    while not puzzle.is_terminal(s):
        moves = [p for p, ok in enumerate(puzzle.valid_moves(s)) if ok]
        s = puzzle.step(s, int(generator.choice(moves)))
    return s


def solve(solver: str, puzzle: Puzzle, net: AlphazzleNet | None, *, num_simulations: int = 1000,
          c_puct: float = 1.0, unvisited_bonus: float = 1000.0, leaf_batch: int = 1, use_q: bool = False,
          generator: np.random.Generator | None = None, device: torch.device | str = "cpu") -> tuple[State, dict]:
    """Solve ``puzzle`` with one of :data:`SOLVERS`; returns (final state, info)."""
    if solver == "random":
        return solve_random(puzzle, generator or np.random.default_rng(0)), {}
    if solver == "greedy_v":
        return solve_greedy_v(net, puzzle, device), {}
    if solver == "greedy_p":
        order = torch.tensor([puzzle.order], device=device)
        img = puzzle.render(tuple(range(puzzle.num_actions))).unsqueeze(0).to(device)
        return tuple(greedy_p_batch(net, img, order, puzzle.helpers)[0].tolist()), {}
    prior, value = {"mcts": ("network", "network"), "mcts_no_p": ("uniform", "network"),
                    "mcts_oracle_sparse": ("network", "oracle_sparse"), "mcts_oracle_dense": ("network", "oracle_dense"),
                    "mcts_constant_v": ("network", "constant")}.get(solver, (None, None))
    if prior is None:
        raise ValueError(f"unknown solver {solver!r}; choose from {SOLVERS}")
    ev = NetworkEvaluator(net, puzzle, prior, value, device)
    return solve_mcts(puzzle, ev, num_simulations, c_puct, unvisited_bonus, leaf_batch, use_q)


def solve_best_of_orders(puzzle: Puzzle, net: AlphazzleNet, num_orders: int, generator: torch.Generator,
                         device: torch.device | str = "cpu", **kwargs) -> tuple[State, dict]:
    """The code's ``-g K``: solve under K random fragment orders (the first is ``puzzle.order``), keep the
    result whose final sigma(V) is highest."""
    best, best_v, best_info = None, -1.0, {}
    values = []
    for k in range(num_orders):
        order = puzzle.order if k == 0 else torch.randperm(puzzle.num_actions, generator=generator).tolist()
        p = Puzzle(puzzle.fragments, order, puzzle.grid, puzzle.frag, puzzle.gap, puzzle.helpers)
        s, info = solve("mcts", p, net, device=device, **kwargs)
        with torch.no_grad():
            v = float(torch.sigmoid(net.value(p.render(s).unsqueeze(0).to(device)))[0])
        values.append(v)
        if v > best_v:
            best, best_v, best_info = s, v, info
    return best, {**best_info, "value": best_v, "order_values": values}
