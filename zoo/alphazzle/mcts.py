"""Alphazzle's single-player PUCT search (Paumard, Tabia, Picard, arXiv 2302.00384; spec section 7).

Values live in [0, 1] and are backed up without a sign flip; an unvisited edge scores
``c_puct * P * sqrt(N(s) + unvisited_bonus)``. The tree (dictionaries keyed by state) is reused across the
moves of one puzzle. ``search`` is the sequential reference; ``run`` collects ``leaf_batch`` leaves with a
virtual loss and evaluates them in one call, and with ``leaf_batch=1`` it performs exactly ``search``.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import numpy as np

from zoo.alphazzle.game import Puzzle, State

# evaluate(states, need_prior) -> (priors (B, A) of raw probabilities, values (B,) in [0, 1])
Evaluator = Callable[[Sequence[State], Sequence[bool]], tuple[np.ndarray, np.ndarray]]


class MCTS:
    """PUCT over a :class:`Puzzle`; ``evaluate`` stands in for the P and V networks (or their ablations)."""

    def __init__(self, puzzle: Puzzle, evaluate: Evaluator, c_puct: float = 1.0, unvisited_bonus: float = 1000.0,
                 leaf_batch: int = 1) -> None:
        if leaf_batch < 1:
            raise ValueError(f"leaf_batch must be >= 1, got {leaf_batch}")
        self.puzzle, self.evaluate = puzzle, evaluate
        self.c_puct, self.bonus, self.leaf_batch = c_puct, unvisited_bonus, leaf_batch
        self.Ns: dict[State, int] = {}
        self.Nsa: dict[State, list[int]] = {}  # plain lists: for 9 actions they beat numpy by ~10x
        self.Qsa: dict[State, list[float]] = {}
        self.Ps: dict[State, list[float]] = {}
        self.Vs: dict[State, float] = {}  # cached terminal values
        self.valid: dict[State, list[int]] = {}  # valid actions
        self._vl: dict[State, list[int]] = {}  # pending virtual visits per edge
        self.evaluations = 0  # states sent to ``evaluate``

    # --- shared pieces -------------------------------------------------------------------------------
    def _expand(self, s: State, prior: np.ndarray) -> None:
        """Store the masked, renormalised prior (uniform over valid moves if it sums to 0)."""
        valid = [f < 0 for f in s]
        p = [float(x) if ok else 0.0 for x, ok in zip(np.asarray(prior, dtype=np.float64).tolist(), valid)]
        total = sum(p)
        self.Ps[s] = [x / total for x in p] if total > 0 else [ok / sum(valid) for ok in valid]
        self.valid[s] = [a for a, ok in enumerate(valid) if ok]
        self.Ns[s] = 0
        self.Nsa[s] = [0] * len(s)
        self.Qsa[s] = [0.0] * len(s)
        self._vl[s] = [0] * len(s)

    def _select(self, s: State) -> int:
        """argmax of U over valid edges (first on ties); a pending virtual visit counts as a visit of value 0."""
        vl, nsa, qsa, ps = self._vl[s], self.Nsa[s], self.Qsa[s], self.Ps[s]
        n_s = self.Ns[s] + sum(vl)
        sq, sq_bonus, c = math.sqrt(n_s), math.sqrt(n_s + self.bonus), self.c_puct
        best, best_u = -1, -math.inf
        for a in self.valid[s]:
            n = nsa[a] + vl[a]
            if n > 0:
                q = qsa[a] if vl[a] == 0 else nsa[a] * qsa[a] / n
                u = q + c * ps[a] * sq / (1 + n)
            else:
                u = c * ps[a] * sq_bonus
            if u > best_u:
                best, best_u = a, u
        return best

    def _backup(self, path: list[tuple[State, int]], v: float) -> None:
        for s, a in path:
            n = self.Nsa[s][a]
            self.Qsa[s][a] = v if n == 0 else (n * self.Qsa[s][a] + v) / (n + 1)
            self.Nsa[s][a] = n + 1
            self.Ns[s] += 1

    def _terminal_value(self, s: State) -> float | None:
        return self.Vs.get(s)

    # --- sequential reference -------------------------------------------------------------------------
    def search(self, s: State) -> float:
        """One simulation from ``s``, recursive, one evaluation per leaf (the official code's ``search``)."""
        if self.puzzle.is_terminal(s):
            if s not in self.Vs:
                _, v = self.evaluate([s], [False])
                self.evaluations += 1
                self.Vs[s] = float(v[0])
            return self.Vs[s]
        if s not in self.Ps:
            prior, v = self.evaluate([s], [True])
            self.evaluations += 1
            self._expand(s, prior[0])
            return float(v[0])
        a = self._select(s)
        v = self.search(self.puzzle.step(s, a))
        self._backup([(s, a)], v)
        return v

    # --- batched leaf evaluation ----------------------------------------------------------------------
    def _descend(self, root: State) -> tuple[list[tuple[State, int]], State]:
        path, s = [], root
        while not self.puzzle.is_terminal(s) and s in self.Ps:
            a = self._select(s)
            path.append((s, a))
            s = self.puzzle.step(s, a)
        return path, s

    def run(self, root: State, num_simulations: int) -> None:
        """``num_simulations`` simulations from ``root``, leaves evaluated ``leaf_batch`` at a time."""
        done = 0
        while done < num_simulations:
            want = min(self.leaf_batch, num_simulations - done)
            pending: dict[State, list[tuple[State, int]]] = {}
            collected = 0
            while collected < want:
                path, leaf = self._descend(root)
                cached = self._terminal_value(leaf)
                if cached is not None:  # known terminal value: back up at once, as the sequential search does
                    self._backup(path, cached)
                    collected += 1
                    continue
                if leaf in pending:  # collision: evaluate what we have first
                    break
                pending[leaf] = path
                collected += 1
                for s, a in path:  # virtual loss: later descents in this batch avoid this path
                    self._vl[s][a] += 1
            if pending:
                leaves = list(pending)
                need = [not self.puzzle.is_terminal(s) for s in leaves]
                priors, values = self.evaluate(leaves, need)
                self.evaluations += len(leaves)
                for i, leaf in enumerate(leaves):
                    v = float(values[i])
                    if need[i]:
                        self._expand(leaf, priors[i])
                    else:
                        self.Vs[leaf] = v
                    for s, a in pending[leaf]:
                        self._vl[s][a] -= 1
                    self._backup(pending[leaf], v)
            done += collected

    # --- move choice ---------------------------------------------------------------------------------
    def policy(self, s: State, use_q: bool = False) -> np.ndarray:
        """pi over positions at ``s``: visit counts (or Q with ``use_q``), normalised over valid moves."""
        if s not in self.Nsa:
            raise ValueError("state has not been expanded: run simulations first")
        mask = np.zeros(len(s), dtype=bool)
        mask[self.valid[s]] = True
        score = np.where(mask, np.asarray(self.Qsa[s] if use_q else self.Nsa[s], dtype=np.float64), 0.0)
        if score.sum() <= 0:
            score = mask.astype(np.float64)
        return score / score.sum()

    def best_move(self, s: State, use_q: bool = False) -> int:
        """argmax of pi over valid positions (inference: tau -> 0)."""
        pi = self.policy(s, use_q)
        return int(self.valid[s][int(np.argmax(pi[self.valid[s]]))])
