"""The Alphazzle puzzle game (Paumard, Tabia, Picard, arXiv 2302.00384): an n x n grid of square fragments
separated by an erosion gap, placed one at a time in a fixed random order; the agent only chooses *where*.

A state is a tuple ``pos -> fragment`` (``-1`` = empty). Fragment ``i`` is cut from cell ``i`` (raster order),
so the solution is ``state[p] == p`` for every ``p``.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

State = tuple[int, ...]


def canvas_size(grid: int, frag: int, gap: int) -> int:
    """Side of the canvas: ``grid`` fragments of ``frag`` px with ``gap`` px between neighbours (3x40+2x4=128)."""
    if grid < 1 or frag < 1 or gap < 0:
        raise ValueError(f"need grid >= 1, frag >= 1, gap >= 0; got grid={grid}, frag={frag}, gap={gap}")
    return grid * frag + (grid - 1) * gap


def cell_origin(pos: int, grid: int, frag: int, gap: int) -> tuple[int, int]:
    """Top-left pixel (row, col) of cell ``pos`` on the canvas."""
    r, c = divmod(pos, grid)
    return r * (frag + gap), c * (frag + gap)


def extract_fragments(image: torch.Tensor, grid: int, frag: int, gap: int) -> torch.Tensor:
    """Cut ``(..., C, S, S)`` images into ``(..., grid*grid, C, frag, frag)`` fragments; the gaps are discarded."""
    side = canvas_size(grid, frag, gap)
    if image.shape[-1] != side or image.shape[-2] != side:
        raise ValueError(f"image must be {side}x{side} for grid={grid}, frag={frag}, gap={gap}; "
                         f"got {tuple(image.shape[-2:])}")
    parts = []
    for p in range(grid * grid):
        y, x = cell_origin(p, grid, frag, gap)
        parts.append(image[..., y:y + frag, x:x + frag])
    return torch.stack(parts, dim=-4)


def cell_mask(placed: torch.Tensor, grid: int, frag: int, gap: int) -> torch.Tensor:
    """``(B, A)`` booleans of occupied cells -> ``(B, 1, S, S)`` float mask covering those cells only."""
    side = canvas_size(grid, frag, gap)
    mask = torch.zeros(placed.shape[0], 1, side, side, device=placed.device)
    for p in range(grid * grid):
        y, x = cell_origin(p, grid, frag, gap)
        mask[:, :, y:y + frag, x:x + frag] = placed[:, p, None, None, None].float()
    return mask


def render(fragments: torch.Tensor, state: State, grid: int, frag: int, gap: int) -> torch.Tensor:
    """The partial canvas ``(C, S, S)``: placed fragments pasted at their cells, empty cells and gaps 0."""
    side = canvas_size(grid, frag, gap)
    out = fragments.new_zeros(fragments.shape[1], side, side)
    for p, f in enumerate(state):
        if f >= 0:
            y, x = cell_origin(p, grid, frag, gap)
            out[:, y:y + frag, x:x + frag] = fragments[f]
    return out


def render_batch(fragments: torch.Tensor, states: list[State], grid: int, frag: int, gap: int) -> torch.Tensor:
    """Canvases ``(B, C, S, S)`` of several states of the same puzzle (one gather per cell, not per state)."""
    side = canvas_size(grid, frag, gap)
    idx = torch.tensor(states, dtype=torch.long, device=fragments.device)  # (B, A)
    out = fragments.new_zeros(len(states), fragments.shape[1], side, side)
    for p in range(grid * grid):
        y, x = cell_origin(p, grid, frag, gap)
        col = idx[:, p]
        placed = col >= 0
        if placed.any():
            out[placed, :, y:y + frag, x:x + frag] = fragments[col[placed]]
    return out


def fragment_accuracy(state: State, exclude: tuple[int, ...] | list[int] = ()) -> float:
    """Fraction of fragments at their true cell; ``exclude`` (helper fragments) leave both counts, as in the code."""
    kept = [(p, f) for p, f in enumerate(state) if f not in exclude]
    return sum(int(f == p) for p, f in kept) / max(len(kept), 1)


def perfect(state: State) -> float:
    """1 if every fragment is at its true cell, else 0."""
    return float(all(f == p for p, f in enumerate(state)))


def _neighbours(pos: int, grid: int, at: State | None) -> list[int | None]:
    """Content of the up/left/right/down slots of ``pos`` (``None`` beyond the border)."""
    r, c = divmod(pos, grid)
    slots = [(r - 1, c), (r, c - 1), (r, c + 1), (r + 1, c)]
    out: list[int | None] = []
    for rr, cc in slots:
        if 0 <= rr < grid and 0 <= cc < grid:
            q = rr * grid + cc
            out.append(q if at is None else at[q])
        else:
            out.append(None)
    return out


def neighbour_accuracy(state: State, grid: int) -> float:
    """Deepzzle's neighbour metric: per fragment, the fraction of its 4 neighbour slots (border = None)
    holding the same fragment as in the solution; averaged over placed fragments."""
    where = {f: p for p, f in enumerate(state) if f >= 0}
    if not where:
        return 0.0
    scores = []
    for f, p in where.items():
        truth = _neighbours(f, grid, None)
        got = _neighbours(p, grid, state)  # empty slot -> -1, never equal to a true neighbour
        scores.append(sum(int(a == b) for a, b in zip(truth, got)) / 4)
    return sum(scores) / len(scores)


@dataclass
class Puzzle:
    """One episode: the fragments of an image, the fixed placement order, and the grid geometry."""

    fragments: torch.Tensor  # (A, C, frag, frag)
    order: list[int]
    grid: int
    frag: int
    gap: int
    helpers: int = 0  # the code's numHelp: the first fragments of the order are placed by ground truth

    def __post_init__(self) -> None:
        a = self.grid * self.grid
        if not 0 <= self.helpers < a:
            raise ValueError(f"helpers must be in [0, {a - 1}], got {self.helpers}")
        if sorted(self.order) != list(range(a)):
            raise ValueError(f"order must be a permutation of range({a}), got {self.order}")
        if self.fragments.shape[0] != a:
            raise ValueError(f"expected {a} fragments, got {self.fragments.shape[0]}")

    @classmethod
    def from_image(cls, image: torch.Tensor, grid: int, frag: int, gap: int, order: list[int] | None = None,
                   generator: torch.Generator | None = None, helpers: int = 0) -> "Puzzle":
        """Cut ``image`` (C, S, S) and draw a random order unless one is given."""
        if order is None:
            order = torch.randperm(grid * grid, generator=generator).tolist()
        return cls(extract_fragments(image, grid, frag, gap), list(order), grid, frag, gap, helpers)

    @property
    def num_actions(self) -> int:
        return self.grid * self.grid

    def initial(self) -> State:
        """Empty canvas, except the helper fragments at their true cells."""
        s = [-1] * self.num_actions
        for f in self.order[:self.helpers]:
            s[f] = f
        return tuple(s)

    def num_placed(self, state: State) -> int:
        return sum(1 for f in state if f >= 0)

    def is_terminal(self, state: State) -> bool:
        return all(f >= 0 for f in state)

    def next_fragment(self, state: State) -> int:
        """The first fragment of the order not yet placed."""
        return self.order[self.num_placed(state)]

    def valid_moves(self, state: State) -> list[bool]:
        """Valid positions: the empty ones."""
        return [f < 0 for f in state]

    def step(self, state: State, pos: int) -> State:
        """Place the next fragment at ``pos`` (must be empty)."""
        if state[pos] >= 0:
            raise ValueError(f"position {pos} is already occupied in {state}")
        s = list(state)
        s[pos] = self.next_fragment(state)
        return tuple(s)

    def render(self, state: State) -> torch.Tensor:
        return render(self.fragments, state, self.grid, self.frag, self.gap)

    def render_batch(self, states: list[State]) -> torch.Tensor:
        return render_batch(self.fragments, states, self.grid, self.frag, self.gap)

    def all_correct_so_far(self, state: State) -> bool:
        """Dense oracle: every placed fragment is at its true cell."""
        return all(f == p for p, f in enumerate(state) if f >= 0)

    def metrics(self, state: State) -> dict[str, float]:
        return {"frag_acc": fragment_accuracy(state, self.order[:self.helpers]), "perfect": perfect(state),
                "neighbour_acc": neighbour_accuracy(state, self.grid)}
