"""Alphazzle: jigsaw puzzle reassembly with single-player MCTS and learned policy/value networks
(Paumard, Tabia, Picard, arXiv 2302.00384)."""
from zoo.alphazzle.game import Puzzle, fragment_accuracy, neighbour_accuracy, perfect
from zoo.alphazzle.mcts import MCTS
from zoo.alphazzle.nets import AlphazzleNet, PolicyNet, SmallEncoder, ValueNet, WideResNetTrunk

__all__ = ["Puzzle", "MCTS", "AlphazzleNet", "PolicyNet", "ValueNet", "WideResNetTrunk", "SmallEncoder",
           "fragment_accuracy", "perfect", "neighbour_accuracy"]

from zoo.registry import Weights, register_model

_PAPER = "Alphazzle: jigsaw puzzle solver with deep Monte-Carlo tree search (Paumard, Tabia, Picard, 2023)"

# the tiny config's networks (configs/alphazzle/tiny.yaml): digits 3x3, 6 px fragments, 2 px gaps
DIGITS_KWARGS = {"grid": 3, "frag": 6, "gap": 2, "encoder": "small"}


@register_model(paper=_PAPER, module="zoo.alphazzle.module.AlphazzleModule",
                module_kwargs={**DIGITS_KWARGS, "num_simulations": 10})
def alphazzle(**kwargs) -> AlphazzleNet:
    """Alphazzle's P and V (WRN-28-4 trunks, 3x3 puzzles of 40 px fragments with 4 px gaps by default)."""
    return AlphazzleNet(**kwargs)


@register_model(
    paper=_PAPER, module="zoo.alphazzle.module.AlphazzleModule", module_kwargs={**DIGITS_KWARGS, "num_simulations": 10},
    weights=Weights(
        tag="digits", path="weights/alphazzle_digits.pt",
        sha256="791d0abe98a4fb94b21407b9abae6afadcf3aa22afca61365795f2100c36706a",
        # the seed-0 run of `zoo fit --config configs/alphazzle/tiny.yaml` in float16 (under the 2 MB limit;
        # tools/tiny_results.py --export 0): the file's own test (MCTS, 100 simulations per move, 100 test digits);
        # the run printed 0.8056 / 0.44 / 0.8161 for its float32 checkpoint
        metadata={"config": "configs/alphazzle/tiny.yaml", "dataset": "sklearn digits 3x3 puzzles (6 px, 2 px gaps)",
                  "checkpoint": "best val/frag_acc (max) on the validation split, epoch 18, the seed-0 run of the "
                                "command, stored in float16",
                  "dtype": "float16", "seed": 0, "test_frag_acc": 0.8033, "test_perfect": 0.43, "test_neighbour_acc": 0.8136},
    ),
)
def alphazzle_digits(**kwargs) -> AlphazzleNet:
    """The tiny config's P and V (small encoder, sklearn digits as 3x3 puzzles of 6 px fragments, 2 px gaps)."""
    return AlphazzleNet(**{**DIGITS_KWARGS, **kwargs})
