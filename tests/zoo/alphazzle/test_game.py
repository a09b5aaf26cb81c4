"""The puzzle game: fragments, order, mask, renderer and the three metrics on hand-made placements."""
import pytest
import torch

from zoo.alphazzle.game import (Puzzle, canvas_size, extract_fragments, fragment_accuracy, neighbour_accuracy,
                                perfect, render_batch)


@pytest.mark.parametrize("grid,frag,gap", [(3, 40, 4), (2, 5, 0), (4, 3, 2)])
def test_fragments_render_back_to_the_image_without_gaps(grid, frag, gap):
    side = canvas_size(grid, frag, gap)
    img = torch.randn(3, side, side)
    frags = extract_fragments(img, grid, frag, gap)
    assert frags.shape == (grid * grid, 3, frag, frag)
    p = Puzzle(frags, list(range(grid * grid)), grid, frag, gap)
    full = p.render(tuple(range(grid * grid)))
    gap_mask = torch.ones(side, side, dtype=torch.bool)
    for k in range(grid * grid):
        r, c = divmod(k, grid)
        gap_mask[r * (frag + gap):r * (frag + gap) + frag, c * (frag + gap):c * (frag + gap) + frag] = False
    assert torch.equal(full[:, ~gap_mask], img[:, ~gap_mask])
    assert (full[:, gap_mask] == 0).all()
    assert (p.render(p.initial()) == 0).all()


def test_paper_canvas_is_128():
    assert canvas_size(3, 40, 4) == 128
    with pytest.raises(ValueError, match="128x128"):
        extract_fragments(torch.zeros(3, 120, 120), 3, 40, 4)


def test_order_mask_and_steps():
    img = torch.randn(3, 22, 22)
    p = Puzzle.from_image(img, 3, 6, 2, order=[4, 0, 8, 1, 2, 3, 5, 6, 7])
    s = p.initial()
    assert p.valid_moves(s) == [True] * 9 and p.next_fragment(s) == 4
    s = p.step(s, 7)
    assert s[7] == 4 and p.valid_moves(s)[7] is False and p.next_fragment(s) == 0
    with pytest.raises(ValueError, match="occupied"):
        p.step(s, 7)
    canvas = p.render(s)
    assert torch.equal(canvas[:, 16:22, 8:14], p.fragments[4])  # cell 7 = row 2, col 1
    assert float(canvas.abs().sum()) == pytest.approx(float(p.fragments[4].abs().sum()))
    with pytest.raises(ValueError, match="permutation"):
        Puzzle.from_image(img, 3, 6, 2, order=[0, 0, 1, 2, 3, 4, 5, 6, 7])


def test_render_batch_matches_single_render():
    p = Puzzle.from_image(torch.randn(3, 22, 22), 3, 6, 2, generator=torch.Generator().manual_seed(0))
    states = [p.initial(), (3, -1, -1, -1, 0, -1, -1, -1, 8), tuple(range(9))[::-1]]
    batch = render_batch(p.fragments, states, 3, 6, 2)
    for i, s in enumerate(states):
        assert torch.equal(batch[i], p.render(s))


def test_metrics_on_hand_made_placements():
    identity = tuple(range(9))
    assert fragment_accuracy(identity) == 1 and perfect(identity) == 1 and neighbour_accuracy(identity, 3) == 1
    swapped = (1, 0, 2, 3, 4, 5, 6, 7, 8)
    assert fragment_accuracy(swapped) == pytest.approx(7 / 9)
    assert perfect(swapped) == 0
    # by hand: fragments 0 and 1 keep only their 'up' border (1/4 each); 2, 3, 4 lose one neighbour (3/4);
    # 5..8 keep all four -> (0.25 * 2 + 0.75 * 3 + 4) / 9
    assert neighbour_accuracy(swapped, 3) == pytest.approx(6.75 / 9)
    # 2x2 fully reversed: every fragment ends in the opposite corner, no slot matches
    assert neighbour_accuracy((3, 2, 1, 0), 2) == 0.0


def test_helper_fragments_start_placed_and_leave_the_fragment_accuracy():
    p = Puzzle.from_image(torch.randn(3, 22, 22), 3, 6, 2, order=[4, 0, 8, 1, 2, 3, 5, 6, 7], helpers=2)
    s = p.initial()
    assert s == (0, -1, -1, -1, 4, -1, -1, -1, -1) and p.next_fragment(s) == 8
    wrong = (0, 2, 1, 5, 4, 3, 7, 8, 6)  # helpers 4 and 0 right, every other fragment wrong
    assert p.metrics(wrong)["frag_acc"] == 0.0 and fragment_accuracy(wrong) == pytest.approx(2 / 9)
    with pytest.raises(ValueError, match="helpers"):
        Puzzle.from_image(torch.randn(3, 22, 22), 3, 6, 2, helpers=9)
