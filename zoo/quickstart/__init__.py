"""The quickstart: a small CNN on scikit-learn's digits, the zoo's main job and first weights."""
from zoo.quickstart.module import QuickstartClassifier
from zoo.quickstart.net import SmallCNN

__all__ = ["SmallCNN", "QuickstartClassifier"]

from zoo.registry import Weights, register_model

DIGITS_WEIGHTS = Weights(
    tag="digits",
    path="weights/quickstart_cnn-digits.pt",
    sha256="9ae1a2e8442cb818cc43144a51d3bd6467ffa8421d79e2dfcceae514ec2ea31f",
    metadata={"dataset": "sklearn digits", "test/acc": 0.9944, "params": 28842, "macs": 903808,
              "recipe": "configs/quickstart.yaml"},
)


@register_model(paper="quickstart (embedded default)", module="zoo.quickstart.QuickstartClassifier",
                module_kwargs={"width": 8}, weights=DIGITS_WEIGHTS)
def quickstart_cnn(**kwargs) -> SmallCNN:
    """The quickstart's small CNN for 8x8 digits."""
    return SmallCNN(**kwargs)
