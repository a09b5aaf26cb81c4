"""AlphazzleModule: on-the-fly samples, two-optimizer pre-training, fine-tuning stage, zoo fit checkpoints, media."""
import math
import os
import subprocess
import sys
from pathlib import Path

import lightning.pytorch as pl
import pytest
import torch
import torch.nn.functional as F

import zoo
from datamodules.puzzles import DigitsPuzzleDataModule
from zoo.alphazzle.module import AlphazzleModule
from zoo.alphazzle.nets import AlphazzleNet
from zoo.alphazzle.sampling import policy_batch, value_batch, value_states

ROOT = Path(__file__).resolve().parents[3]


def digits_images(n=16):
    dm = DigitsPuzzleDataModule()
    dm.setup()
    return torch.stack([dm.datasets["val"][i][0] for i in range(n)])


def coded_images(n):
    """Images whose cell p is filled with the value (p + 1) / 10, so a canvas shows which fragment sits where."""
    img = torch.zeros(n, 3, 22, 22)
    for p in range(9):
        r, c = divmod(p, 3)
        img[:, :, r * 8:r * 8 + 6, c * 8:c * 8 + 6] = (p + 1) / 10
    return img


def cells(canvas):
    """pos -> fragment (-1 if empty) read off a coded canvas."""
    return [round(canvas[0, (p // 3) * 8, (p % 3) * 8].item() * 10) - 1 for p in range(9)]


def test_policy_samples_place_a_correct_prefix_of_the_order():
    torch.manual_seed(0)
    canvas, frag, target = policy_batch(coded_images(64), 3, 6, 2)
    counts = set()
    for i in range(64):
        state = cells(canvas[i])
        assert all(f in (-1, p) for p, f in enumerate(state))  # placed fragments are at their true cells
        assert state[target[i]] == -1  # the target cell is still empty
        assert torch.allclose(frag[i], torch.full((3, 6, 6), (target[i].item() + 1) / 10))
        counts.add(sum(f >= 0 for f in state))
    assert counts == set(range(9))  # k ~ U{0..8}


def test_value_samples_are_balanced_and_labels_match_the_canvas():
    torch.manual_seed(1)
    canvas, target = value_batch(coded_images(64), 3, 6, 2)
    for i in range(64):
        state = cells(canvas[i])
        assert target[i] == (i % 2 == 0)  # the official label: even samples correct, odd ones permuted
        if i % 2 == 0:
            assert all(f in (-1, p) for p, f in enumerate(state))
        placed = [f for f in state if f >= 0]
        assert len(set(placed)) == len(placed)  # a permutation: no fragment twice
    _, frac = value_batch(coded_images(64), 3, 6, 2, v_target="frac_correct")
    assert ((frac >= 0) & (frac <= 1)).all() and ((frac > 0) & (frac < 1)).any()


def test_value_negatives_follow_the_official_generator_statistics():
    """prepare_data_v: k ~ U{0..9}; a negative puts fragment order[mix[i]] at cell order[i], mix a non-identity
    permutation of all 9. Among the first k cells exactly one is wrong for k (9 - k) (9 - k)! of the 9! - 1 mixes
    (one cell j < k moves to a fragment >= k), and none is wrong for (9 - k)! - 1 of them."""
    n, a = 12_800, 9
    state, label = value_states(n, 3, generator=torch.Generator().manual_seed(0))
    assert label.sum() == n / 2 and (label[::2] == 1).all()  # half the samples negatives, alternating
    wrong = ((state >= 0) & (state != torch.arange(a))).sum(1)
    placed = (state >= 0).sum(1)
    assert (wrong[::2] == 0).all()
    neg_wrong, neg_placed = wrong[1::2], placed[1::2]
    mixes = math.factorial(a) - 1
    p_one = sum(k * (a - k) * math.factorial(a - k) for k in range(a + 1)) / (a + 1) / mixes
    p_none = sum(math.factorial(a - k) - 1 for k in range(a + 1)) / (a + 1) / mixes
    p_single = (a - 1) * math.factorial(a - 1) / (a + 1) / mixes  # k = 1 and that one fragment is wrong
    for observed, p in (((neg_wrong == 1).sum(), p_one), ((neg_wrong == 0).sum(), p_none),
                        (((neg_placed == 1) & (neg_wrong == 1)).sum(), p_single)):
        expected, sd = n / 2 * p, math.sqrt(n / 2 * p * (1 - p))
        assert abs(int(observed) - expected) < 4 * sd, (int(observed), expected)
    assert set(placed.tolist()) == set(range(a + 1))  # k ~ U{0..9}


def test_pretraining_lowers_both_losses_with_two_optimizers():
    pl.seed_everything(0)
    module = AlphazzleModule(grid=3, frag=6, gap=2, encoder="small", num_simulations=5)
    images = digits_images(64)
    g = torch.Generator().manual_seed(5)
    fixed_p, fixed_v = policy_batch(images, 3, 6, 2, generator=g), value_batch(images, 3, 6, 2, generator=g)

    def losses():
        module.eval()
        with torch.no_grad():
            return (F.cross_entropy(module.net.policy(*fixed_p[:2]), fixed_p[2]).item(),
                    F.binary_cross_entropy_with_logits(module.net.value(fixed_v[0]), fixed_v[1]).item())

    before = losses()
    module.train()
    trainer = pl.Trainer(max_steps=240, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         limit_val_batches=0, num_sanity_val_steps=0, enable_model_summary=False)
    trainer.fit(module, DigitsPuzzleDataModule())
    assert len(trainer.optimizers) == 2
    after = losses()
    assert after[0] < before[0] - 0.3 and after[1] < before[1] - 0.05


def test_finetune_stage_runs_mcts_and_updates_p():
    pl.seed_everything(0)
    module = AlphazzleModule(grid=3, frag=6, gap=2, encoder="small", stage="finetune", num_simulations=5,
                             finetune_value=True)
    before = [p.detach().clone() for p in module.net.policy.parameters()]
    trainer = pl.Trainer(max_steps=2, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         limit_val_batches=0, num_sanity_val_steps=0, enable_model_summary=False)
    trainer.fit(module, DigitsPuzzleDataModule(batch_size=2))
    assert any(not torch.equal(a, b) for a, b in zip(before, module.net.policy.parameters()))
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(1e-4)


def test_finetune_defaults_follow_reassembly_py():
    """reassembly.py: Adam lr 1e-4 for P and V, learnV defaults to learn, 1000 simulations, c_puct 1, then
    ``fit(..., epochs=1)`` (poutyne batch size 32) over every visited state: ceil(states / 32) steps per network."""
    import inspect

    defaults = {k: v.default for k, v in inspect.signature(AlphazzleModule.__init__).parameters.items()}
    assert (defaults["finetune_lr"], defaults["finetune_value"], defaults["finetune_batch_size"]) == (1e-4, True, 32)
    assert (defaults["num_simulations"], defaults["c_puct"]) == (1000, 1.0)
    pl.seed_everything(0)
    module = AlphazzleModule(grid=3, frag=6, gap=2, encoder="small", stage="finetune", num_simulations=3)
    trainer = pl.Trainer(max_epochs=1, limit_train_batches=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, limit_val_batches=0, num_sanity_val_steps=0,
                         enable_model_summary=False)
    trainer.fit(module, DigitsPuzzleDataModule(batch_size=8))
    states = 8 * 9  # one state per placed fragment of each 3x3 puzzle
    for opt in trainer.optimizers:
        steps = {int(st["step"]) for st in opt.state.values()}
        assert steps == {math.ceil(states / 32)}


def test_init_weights_from_a_zoo_weights_file(tmp_path):
    net = AlphazzleNet(3, 6, 2, encoder="small")
    from zoo import hub

    hub.save_weights(net, tmp_path / "w.pt", arch="alphazzle", arch_kwargs={"grid": 3, "frag": 6, "gap": 2,
                                                                               "encoder": "small"})
    module = AlphazzleModule(grid=3, frag=6, gap=2, encoder="small", init_weights=str(tmp_path / "w.pt"))
    for a, b in zip(net.state_dict().values(), module.net.state_dict().values()):
        assert torch.equal(a, b)


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_zoo_fit_checkpoint_loads_both_ways_and_logs_puzzle_images(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "WANDB_MODE": "offline", "WANDB_SILENT": "true"}
    cmd = [sys.executable, "-m", "zoo.cli", "fit", "--config", str(ROOT / "configs/alphazzle/tiny.yaml"),
           "--trainer.default_root_dir", str(tmp_path), "--trainer.max_epochs", "1",
           "--trainer.limit_train_batches", "5", "--trainer.limit_val_batches", "1", "--trainer.limit_test_batches", "1",
           "--model.init_args.num_simulations", "5", "--data.init_args.batch_size", "4"]
    proc = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=380)
    assert proc.returncode == 0, proc.stderr[-3000:]
    ckpt = tmp_path / "checkpoints" / "last.ckpt"
    net = zoo.load(str(ckpt))
    module = AlphazzleModule.load_from_checkpoint(ckpt, weights_only=True, map_location="cpu").eval()
    assert isinstance(net, AlphazzleNet)
    x, f = torch.rand(2, 3, 22, 22), torch.rand(2, 3, 6, 6)
    with torch.no_grad():
        torch.testing.assert_close(net(x, f), module(x, f))
    media = tmp_path / "media"
    assert list(media.glob("val_epoch000_puzzle*.png")) and list(media.glob("test_*_visits*.png"))
    from zoo.core.wandb_records import read_run

    runs = [read_run(p) for p in tmp_path.glob("wandb/offline-run-*/run-*.wandb")]
    keys = {k for r in runs for row in r["history"] for k in row}
    assert {"val/frag_acc", "test/frag_acc", "test/perfect", "test/neighbour_acc"} <= keys
    assert any(k.startswith("test/reassembly") for k in keys) and any(k.startswith("test/root_visits") for k in keys)


def test_predict_and_test_solve_with_the_chosen_solver(tmp_path):
    pl.seed_everything(0)
    module = AlphazzleModule(grid=3, frag=6, gap=2, encoder="small", num_simulations=8, leaf_batch=4, num_orders=2)
    dm = DigitsPuzzleDataModule(batch_size=3, n_test=6)
    trainer = pl.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False, limit_predict_batches=1,
                         default_root_dir=tmp_path)
    out = trainer.predict(module, dm)[0]
    assert len(out) == 3 and all(sorted(r["state"]) == list(range(9)) for r in out)
    assert all(len(r["visits"]) == 9 and sum(r["visits"][0]) == 8 - 1 for r in out)  # root: first sim expands
    oracle = AlphazzleModule(grid=3, frag=6, gap=2, encoder="small", num_simulations=30, test_solver="mcts_oracle_dense")
    res = pl.Trainer(logger=False, enable_progress_bar=False, enable_model_summary=False,
                     default_root_dir=tmp_path).test(oracle, dm)[0]
    assert list((tmp_path / "media").glob("test_epoch*_puzzle*.png")), "test end writes the reassembled puzzles"
    assert res["test/perfect"] == 1.0 and res["test/frag_acc"] == 1.0


def test_samples_with_helpers_place_at_least_that_many():
    torch.manual_seed(2)
    canvas, _, _ = policy_batch(coded_images(32), 3, 6, 2, min_placed=5)
    assert min(sum(f >= 0 for f in cells(c)) for c in canvas) >= 5
    canvas, _ = value_batch(coded_images(32), 3, 6, 2, min_placed=5)
    assert min(sum(f >= 0 for f in cells(c)) for c in canvas) >= 5
