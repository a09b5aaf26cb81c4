"""Robust pruning with Module Robust Sensitivity (MRS / MRPF; Bai, Tabia, Santos-Rodriguez, arXiv 2410.15176).

MRS scores each layer's sensitivity to adversarial weight perturbation; pruning ratios follow its
inverse within bounds; the pruned net is fine-tuned adversarially (TRADES / PGD-AT).
"""
from __future__ import annotations

from torch import nn

from zoo.registry import Weights, register_model

_MODULE = "zoo.robust_pruning.module.RobustPruneModule"
_PAPER = "robust_pruning (Bai et al. 2024, MRS)"


def __getattr__(name: str):  # lazy: keep `import zoo.robust_pruning` cheap
    if name == "RobustPruneModule":
        from zoo.robust_pruning.module import RobustPruneModule

        return RobustPruneModule
    if name == "MRSAllocation":
        from zoo.robust_pruning.policy import MRSAllocation

        return MRSAllocation
    raise AttributeError(name)


DIGITS_WEIGHTS = Weights(
    tag="digits",
    path="weights/mrs_digits-digits.pt",
    sha256="f97e24e6267d87fcaac2b9b75be6c2df3774d6c6c7f810cf453e50cb2b2f71aa",
    metadata={"dataset": "sklearn digits (DigitsDataModule seed 0, 60/20/20)", "recipe": "configs/robust_pruning/tiny.yaml",
              "param_sparsity": 0.50, "params": 38765, "test/acc": 0.9916, "test/robust_acc_fgsm": 0.9164,
              "test/robust_acc_pgd20": 0.8830, "attack": "L-inf eps 0.1, PGD step 0.01"},
)


@register_model(paper=_PAPER, module=_MODULE, module_kwargs={"arch": "digits_cnn", "train_steps": 1})
def mrs_digits_cnn(structure: dict | None = None, **kwargs) -> nn.Module:
    """The faithful-check CNN for 8x8 digits (optionally pruned to ``structure``)."""
    from zoo.robust_pruning.module import build_net

    return build_net("digits_cnn", structure=structure, **kwargs)


@register_model(paper=_PAPER, module=_MODULE, module_kwargs={"arch": "digits_cnn", "train_steps": 1},
                weights=DIGITS_WEIGHTS)
def mrs_digits(structure: dict | None = None, **kwargs) -> nn.Module:
    """The tiny config's result: the digits CNN pruned by MRS to 50 % of its parameters, TRADES fine-tuned."""
    return mrs_digits_cnn(structure=structure, **kwargs)


@register_model(paper=_PAPER, module=_MODULE,
                module_kwargs={"arch": "resnet18", "in_chans": 3, "input_size": 32, "width": 0.125, "train_steps": 1})
def mrs_resnet18(structure: dict | None = None, **kwargs) -> nn.Module:
    """ResNet-18 (CIFAR variant) for robust pruning."""
    from zoo.robust_pruning.module import build_net

    kwargs.setdefault("in_chans", 3)
    return build_net("resnet18", structure=structure, **kwargs)


@register_model(paper=_PAPER, module=_MODULE,
                module_kwargs={"arch": "vgg16_bn", "in_chans": 3, "input_size": 32, "width": 0.125, "train_steps": 1})
def mrs_vgg16_bn(structure: dict | None = None, **kwargs) -> nn.Module:
    """VGG-16-BN (CIFAR variant) for robust pruning."""
    from zoo.robust_pruning.module import build_net

    kwargs.setdefault("in_chans", 3)
    return build_net("vgg16_bn", structure=structure, **kwargs)
