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
        sha256="631ea7a599811a4cd4690971412f401f14046b5a8dbee6cfff0f5f926c60afdf",
        metadata={"config": "configs/alphazzle/tiny.yaml", "dataset": "sklearn digits 3x3 puzzles (6 px, 2 px gaps)",
                  "checkpoint": "best val/frag_acc (greedy-P), epoch 15", "dtype": "float16",
                  "test_frag_acc_mcts100": 0.701, "test_perfect_mcts100": 0.25},
    ),
)
def alphazzle_digits(**kwargs) -> AlphazzleNet:
    """The tiny config's P and V (small encoder, sklearn digits as 3x3 puzzles of 6 px fragments, 2 px gaps)."""
    return AlphazzleNet(**{**DIGITS_KWARGS, **kwargs})
