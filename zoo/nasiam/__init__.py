"""NASiam (Heuillet, Tabia, Arioui; arXiv 2302.00059): differentiable search of the projector and predictor MLPs
of siamese SSL frameworks (SimSiam, MoCo v2, SimCLR).

Public API: the MLP search space (``MLP_PRIMITIVES``, ``MLP_OPS``, ``register_mlp_op``), ``SearchChain`` /
``FixedChain`` / ``HeadGenotype``, the losses, ``SiameseNet``, the authors' genotypes (``PUBLISHED``), and the
Lightning modules ``NASiamSearchModule`` and ``NASiamModule`` (imported lazily).
"""
from __future__ import annotations

from zoo.nasiam.frameworks import FRAMEWORKS, Head, SiameseNet
from zoo.nasiam.heads import FixedChain, HeadGenotype, MLPMixedOp, SearchChain, standard_chain
from zoo.nasiam.losses import embedding_std, infonce, moco_infonce, negative_cosine, nt_xent, simsiam_loss
from zoo.nasiam.ops import MLP_OPS, MLP_PRIMITIVES, SIMCLR_PRIMITIVES, build_mlp_op, register_mlp_op
from zoo.nasiam.published import PUBLISHED, resolve_head
from zoo.registry import Weights, register_model

__all__ = [
    "MLP_PRIMITIVES", "SIMCLR_PRIMITIVES", "MLP_OPS", "register_mlp_op", "build_mlp_op", "MLPMixedOp", "SearchChain", "FixedChain",
    "HeadGenotype", "standard_chain", "Head", "SiameseNet", "FRAMEWORKS", "PUBLISHED", "resolve_head",
    "negative_cosine", "simsiam_loss", "infonce", "moco_infonce", "nt_xent", "embedding_std",
    "NASiamModule", "NASiamSearchModule",
]

PAPER = "NASiam (Heuillet et al., arXiv 2302.00059)"
_MODULE = "zoo.nasiam.module.NASiamModule"
_SMALL = {"backbone": "digits_convnet", "in_chans": 1, "mean": [0.5], "std": [0.5], "width": 8, "dim": 16,
          "pred_dim": 8, "hidden_dim": 8, "queue_size": 64, "views": "digits"}


def __getattr__(name: str):
    """Lightning modules are imported lazily so ``import zoo.nasiam`` stays cheap."""
    if name == "NASiamModule":
        from zoo.nasiam.module import NASiamModule
        return NASiamModule
    if name == "NASiamSearchModule":
        from zoo.nasiam.search import NASiamSearchModule
        return NASiamSearchModule
    raise AttributeError(f"module 'zoo.nasiam' has no attribute {name!r}")


def _published(name: str, framework: str, backbone: str, dim: int, doc: str, temperature: float = 0.1):
    def build(**kwargs) -> SiameseNet:
        return SiameseNet(**{"framework": framework, "backbone": backbone, "head": name, "dim": dim,
                             "temperature": temperature, **kwargs})

    build.__doc__ = doc
    register_model(paper=PAPER, module=_MODULE, name=f"nasiam_{name}",
                   module_kwargs={**_SMALL, "framework": framework, "head": name})(build)


_published("simsiam_cifar10_resnet18", "simsiam", "resnet18", 2048, "SimSiam, ResNet-18 (CIFAR stem), the authors' CIFAR-10 head.")
_published("simsiam_cifar10_resnet50", "simsiam", "resnet50", 2048, "SimSiam, ResNet-50, the authors' CIFAR-10 head.")
_published("simsiam_cifar100_resnet50", "simsiam", "resnet50", 2048,
           "SimSiam, ResNet-50, the authors' CIFAR-100 head (also their ImageNet head).")
_published("moco_cifar10_resnet18", "moco", "resnet18", 128, "MoCo v2, ResNet-18 (CIFAR stem), the authors' CIFAR-10 head.")
_published("moco_cifar100_resnet18", "moco", "resnet18", 128, "MoCo v2, ResNet-18, the authors' CIFAR-100 head.")
_published("moco_cifar10_resnet50", "moco", "resnet50", 128, "MoCo v2, ResNet-50, the authors' CIFAR-10 head.")
_published("simclr_cifar10_resnet50", "simclr", "resnet50", 128, "SimCLR, ResNet-50 (CIFAR stem), the authors' head.", 0.5)

_DIGITS = {"framework": "simsiam", "backbone": "digits_convnet", "in_chans": 1, "width": 32, "mean": [0.3053],
           "std": [0.3761], "head": "nasiam_digits", "dim": 64, "pred_dim": 16}


@register_model(paper=PAPER, module=_MODULE, module_kwargs={**_SMALL, "head": "nasiam_digits"},
                weights=Weights(tag="digits", sha256="d4861d082112ef43ab6f05a2fbded9879b57dff0936bc709162f90b9a9ae848b",
                                path="weights/nasiam_digits.pt",
                                metadata={"config": "configs/nasiam/tiny.yaml", "test_knn_acc": 0.8410,
                                          "test_knn_acc_embedding": 0.7767, "test_logistic_probe": 0.9638, "epochs": 40}))
def nasiam_digits(**kwargs) -> SiameseNet:
    """The tiny config's SimSiam with the head searched on digits (zoo.load("nasiam_digits")): forward = 64-d features."""
    return SiameseNet(**{**_DIGITS, **kwargs})
