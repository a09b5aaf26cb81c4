"""Single-player PUCT: visit bookkeeping, masks, oracle values, and batched == sequential at batch 1."""
import hashlib

import numpy as np
import pytest
import torch

from zoo.alphazzle.game import Puzzle
from zoo.alphazzle.mcts import MCTS
from zoo.alphazzle.solve import NetworkEvaluator, greedy_p_batch, solve_mcts


def hashed_evaluator(states, need_prior):
    """A deterministic stand-in for P and V: pseudo-random prior and value from the state's bytes."""
    pri, val = [], []
    for s in states:
        h = np.random.default_rng(int(hashlib.md5(str(s).encode()).hexdigest()[:8], 16))
        pri.append(h.dirichlet(np.ones(len(s))))
        val.append(h.random())
    return np.array(pri), np.array(val)


def puzzle(seed=0, grid=3):
    g = torch.Generator().manual_seed(seed)
    side = grid * 6 + (grid - 1) * 2
    return Puzzle.from_image(torch.randn(3, side, side, generator=g), grid, 6, 2, generator=g)


def test_root_visits_sum_and_invalid_never_visited():
    p = puzzle()
    tree = MCTS(p, hashed_evaluator)
    s = p.step(p.step(p.initial(), 4), 0)
    for k in range(1, 60):
        tree.search(s)
        assert sum(tree.Nsa[s]) == tree.Ns[s] == k - 1  # the first simulation only expands the root
    assert tree.Nsa[s][0] == tree.Nsa[s][4] == 0
    for st, n in tree.Nsa.items():
        assert np.asarray(n)[np.array(st) >= 0].sum() == 0


def uniform_prior(states, need):
    pri, val = hashed_evaluator(states, need)
    return np.full_like(pri, 1.0 / pri.shape[1]), val


def test_unvisited_bonus_expands_children_first():
    p = puzzle()
    root = p.initial()
    tree = MCTS(p, uniform_prior, unvisited_bonus=1000.0)
    for _ in range(10):
        tree.search(root)
    assert tree.Nsa[root] == [1] * 9  # 1 expansion + 9 children, each visited once before any revisit
    plain = MCTS(p, uniform_prior, unvisited_bonus=0.0)  # textbook PUCT revisits a good child first
    for _ in range(10):
        plain.search(root)
    assert 0 in plain.Nsa[root] and max(plain.Nsa[root]) > 1


@pytest.mark.parametrize("sims", [1, 7, 50])
def test_batched_search_with_batch_one_is_the_sequential_search(sims):
    p = puzzle(1)
    a, b = MCTS(p, hashed_evaluator), MCTS(p, hashed_evaluator, leaf_batch=1)
    sa = sb = p.initial()
    while not p.is_terminal(sa):
        for _ in range(sims):
            a.search(sa)
        b.run(sb, sims)
        assert a.Ns == b.Ns and a.Vs == b.Vs
        for key in a.Nsa:
            assert np.array_equal(a.Nsa[key], b.Nsa[key]) and np.array_equal(a.Qsa[key], b.Qsa[key])
        sa, sb = p.step(sa, a.best_move(sa)), p.step(sb, b.best_move(sb))
        assert sa == sb


def test_batched_leaves_share_network_calls():
    p = puzzle(2)
    sizes = []

    def counting(states, need):
        sizes.append(len(states))
        return hashed_evaluator(states, need)

    tree = MCTS(p, counting, leaf_batch=8)
    root = p.initial()
    tree.run(root, 200)
    assert tree.Ns[root] == sum(tree.Nsa[root]) and tree.Ns[root] >= 190
    assert max(sizes) == 8 and len(sizes) < 60
    assert all(not any(v) for v in tree._vl.values())  # every virtual loss was removed


def test_dense_oracle_solves_with_uniform_prior():
    for seed in range(3):
        p = puzzle(seed)
        ev = NetworkEvaluator(None, p, prior="uniform", value="oracle_dense")
        for lb in (1, 8):
            s, info = solve_mcts(p, ev, num_simulations=30, leaf_batch=lb)
            assert s == tuple(range(9)) and len(info["visits"]) == 9


def test_move_by_q_and_by_visits():
    p = puzzle(3)
    tree = MCTS(p, hashed_evaluator)
    root = p.initial()
    tree.run(root, 100)
    assert tree.best_move(root) == int(np.argmax(tree.Nsa[root]))
    assert tree.best_move(root, use_q=True) == int(np.argmax(tree.Qsa[root]))


class OraclePolicy(torch.nn.Module):
    """Fake P that puts all mass on the true cell of the given fragment (looked up by its pixels)."""

    def __init__(self, frags):
        super().__init__()
        self.frags = frags

    def forward(self, canvas, fragment):
        d = ((fragment[:, None] - self.frags[None]) ** 2).flatten(2).sum(-1)
        return -d * 100


def test_greedy_p_batch_follows_the_policy():
    p = puzzle(4)
    net = torch.nn.Module()
    net.policy, net.grid, net.frag, net.gap = OraclePolicy(p.fragments), 3, 6, 2
    img = p.render(tuple(range(9)))
    states = greedy_p_batch(net, img[None].repeat(2, 1, 1, 1), torch.tensor([p.order, list(range(9))]))
    assert states.tolist() == [list(range(9))] * 2


def test_best_of_orders_keeps_the_highest_final_value():
    from zoo.alphazzle.nets import AlphazzleNet
    from zoo.alphazzle.solve import solve_best_of_orders

    torch.manual_seed(0)
    net = AlphazzleNet(3, 6, 2, encoder="small").eval()
    p = puzzle(5)
    s, info = solve_best_of_orders(p, net, 3, torch.Generator().manual_seed(0), num_simulations=5, leaf_batch=4)
    assert sorted(s) == list(range(9)) and len(info["order_values"]) == 3
    assert info["value"] == max(info["order_values"])
    with torch.no_grad():
        assert info["value"] == pytest.approx(float(torch.sigmoid(net.value(p.render(s)[None]))[0]))


def test_helpers_in_mcts_and_greedy_p():
    g = torch.Generator().manual_seed(7)
    p = Puzzle.from_image(torch.randn(3, 22, 22, generator=g), 3, 6, 2, generator=g, helpers=4)
    ev = NetworkEvaluator(None, p, prior="uniform", value="oracle_dense")
    s, info = solve_mcts(p, ev, num_simulations=20)
    assert s == tuple(range(9)) and len(info["visits"]) == 5  # only the 5 non-helper fragments are moves
    net = torch.nn.Module()
    net.policy, net.grid, net.frag, net.gap = OraclePolicy(p.fragments), 3, 6, 2
    net.policy.forward = lambda canvas, fragment: torch.zeros(len(fragment), 9)  # argmax = first empty cell
    states = greedy_p_batch(net, p.render(tuple(range(9)))[None], torch.tensor([p.order]), helpers=4)[0].tolist()
    assert all(states[f] == f for f in p.order[:4])
