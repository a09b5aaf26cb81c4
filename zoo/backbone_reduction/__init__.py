"""RRR-Net: reuse, reduce and recycle a deep backbone (Sun, Guyon, Mohr, Tabia; IJCNN 2023, arXiv 2310.01157)."""
from zoo.backbone_reduction.build import build_rrrnet
from zoo.backbone_reduction.nets import BottleneckResNet, Branch, BranchEnsemble, calibrate_shift, reduce_resnet
from zoo.backbone_reduction.split import split_resnet

__all__ = ["build_rrrnet", "BottleneckResNet", "Branch", "BranchEnsemble", "calibrate_shift", "reduce_resnet",
           "split_resnet"]

from zoo.registry import Weights, register_model  # noqa: E402

_PAPER = "RRR-Net: Reusing, Reducing, and Recycling a Deep Backbone Network (Sun et al., IJCNN 2023)"
_MODULE = "zoo.backbone_reduction.module.RRRNetModule"
# a small, fast LightningModule for the registry round-trip test (mini bottleneck ResNet, 2 branches)
_SMALL = {"num_classes": 10, "layers": [1, 1, 1, 1], "planes": [4, 8, 16, 32], "stem": "cifar",
          "num_branches": 2, "warm_stem_epochs": 0, "ema_epochs": 0}


@register_model(paper=_PAPER, module=_MODULE, module_kwargs={**_SMALL, "nb_blocks": None, "num_branches": 1})
def rrrnet_resnet152(**kwargs) -> BottleneckResNet:
    """Full ResNet152 with a new head (methods [A]/[B]); ``source`` picks torchvision/timm/local weights."""
    return build_rrrnet(**{"nb_blocks": None, **kwargs})


@register_model(paper=_PAPER, module=_MODULE, module_kwargs={**_SMALL, "num_branches": 1})
def rrrnet_reduced(**kwargs) -> BranchEnsemble:
    """ResNet152 reduced to 5 blocks (stem + first block of each stage), frozen stem, one branch: method [C]."""
    return build_rrrnet(**{"nb_blocks": [1, 1, 1, 1], "num_branches": 1, **kwargs})


@register_model(paper=_PAPER, module=_MODULE, module_kwargs=dict(_SMALL))
def rrrnet_split(**kwargs) -> BranchEnsemble:
    """The 5-block ResNet152 split after 3 blocks into B = 8 thin branches (method [D]); ``num_branches`` any B."""
    return build_rrrnet(**{"nb_blocks": [1, 1, 1, 1], "num_branches": 8, **kwargs})


# RRRNET_TINY_KWARGS: the tiny config's network (configs/backbone_reduction/tiny.yaml)
RRRNET_TINY_KWARGS = {"num_classes": 10, "layers": [1, 1, 1, 1], "planes": [8, 16, 32, 64], "stem": "cifar",
                      "nb_blocks": [1, 1, 1, 1], "num_branches": 4}


@register_model(
    paper=_PAPER, module=_MODULE, module_kwargs={**RRRNET_TINY_KWARGS, "warm_stem_epochs": 0, "ema_epochs": 0},
    weights=Weights(
        tag="digits", path="weights/rrrnet_tiny-digits.pt",
        sha256="ccd051fee4649df59777039c110dd6aeeda1e37e6d679a7f3d00e4c291382a60",
        # the seed-0 run of `zoo fit --config configs/backbone_reduction/tiny.yaml` (tools/tiny_results.py --export 0)
        metadata={"config": "configs/backbone_reduction/tiny.yaml", "dataset": "sklearn digits 32x32x3",
                  "checkpoint": "last epoch (the config monitors nothing), the seed-0 run of the command", "seed": 0,
                  "test_acc": 0.9526, "test_acc_branch_mean": 0.9352},
    ),
)
def rrrnet_tiny(**kwargs) -> BranchEnsemble:
    """The tiny config's model: mini bottleneck ResNet reduced to 5 blocks and split into 4 branches (digits)."""
    return build_rrrnet(**{**RRRNET_TINY_KWARGS, **kwargs})
