"""The quickstart: a small CNN on scikit-learn's digits, the zoo's main job and first weights."""
from zoo.quickstart.module import QuickstartClassifier
from zoo.quickstart.net import SmallCNN

__all__ = ["SmallCNN", "QuickstartClassifier"]

from zoo.registry import register_model


@register_model(paper="quickstart (embedded default)", module="zoo.quickstart.QuickstartClassifier")
def quickstart_cnn(**kwargs) -> SmallCNN:
    """The quickstart's small CNN for 8x8 digits."""
    return SmallCNN(**kwargs)
