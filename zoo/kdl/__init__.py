"""Kernel functions in CNN layers and Kernelized Dense Layers (Mahmoudi et al., ICIP 2020 / arXiv 2302.10266)."""
from zoo.kdl.kernels import KERNELS, KernelConv2d, KernelFunction, KernelLinear, KernelPool2d, kernel_fn
from zoo.kdl.nets import ARCHS, POOL_TYPES, KernelNet

__all__ = ["KERNELS", "POOL_TYPES", "ARCHS", "KernelFunction", "KernelLinear", "KernelConv2d", "KernelPool2d",
           "kernel_fn", "KernelNet"]

from zoo.registry import Weights, register_model

_PAPER = "Kernelized dense layers / kernel function impact on CNNs (Mahmoudi et al. 2020, 2023)"


@register_model(paper=_PAPER, module="zoo.kdl.module.KernelClassifier",
                module_kwargs={"arch": "digits_mlp", "fc_kernel": "poly"})
def kdl_net(**kwargs) -> KernelNet:
    """Any of the papers' networks: ``arch`` in ARCHS, with ``conv_kernel``, ``pool_type``, ``fc_kernel``."""
    return KernelNet(**kwargs)


# KDL_DIGITS_KWARGS: the tiny config's network (configs/kdl/tiny.yaml)
KDL_DIGITS_KWARGS = {"arch": "digits_cnn", "conv_kernel": "poly", "pool_type": "kernel_poly", "fc_kernel": "poly"}


@register_model(
    paper=_PAPER, module="zoo.kdl.module.KernelClassifier", module_kwargs=dict(KDL_DIGITS_KWARGS),
    weights=Weights(
        tag="digits", path="weights/kdl_digits-digits.pt",
        sha256="5e0dd63d6af68cf1faae2bf5e3f1124bbb746cb0780be10002e87258815076b5",
        metadata={"config": "configs/kdl/tiny.yaml", "dataset": "sklearn digits", "test_acc": 0.9749},
    ),
)
def kdl_digits(**kwargs) -> KernelNet:
    """The tiny config's digits CNN with polynomial conv, kernel pooling and a polynomial KDL head."""
    return KernelNet(**{**KDL_DIGITS_KWARGS, **kwargs})
