"""Single-image mesh reconstruction: Vertex Generation Network, RL-trained triangulation layer and hierarchical
graph-convolution refinement (IBISC; full text unreachable, method reconstructed from the abstract).

Networks ``RLTriMeshNet`` and the baseline ``IcosphereTemplateNet``; the LightningModule is
``zoo.meshrec.module.RLTriMeshModule`` (imported lazily to keep ``import zoo.meshrec`` cheap)."""
from __future__ import annotations

from zoo.meshrec.net import IcosphereTemplateNet, RLTriMeshNet
from zoo.registry import Weights, register_model

__all__ = ["RLTriMeshNet", "IcosphereTemplateNet", "rltrimesh_shapenet", "meshrec_shapes", "SHAPES_NET_KWARGS"]

PAPER = "Single-image mesh reconstruction with an RL triangulation layer (IBISC, Tabia et al.; reconstructed)"
_MODULE = "zoo.meshrec.module.RLTriMeshModule"
# a small, fast module for the registry's round-trip test
_SMALL = {"net_kwargs": {"in_chans": 1, "encoder_widths": [8, 8, 16, 16], "num_vertices": 24, "vgn_hidden": [32],
                         "k": 6, "policy_hidden": 16, "refine_stages": 2, "refine_hidden": 8, "num_graphconv": 1}}

# the network of configs/meshrec/tiny.yaml (spec section 10)
SHAPES_NET_KWARGS = {"encoder": "conv", "in_chans": 1, "encoder_widths": [16, 32, 64, 128], "num_vertices": 96,
                     "vgn_hidden": [256, 256], "k": 8, "policy_hidden": 128, "refine_stages": 2, "refine_hidden": 64,
                     "num_graphconv": 3, "offset_scale": 0.1, "mdp": "sequential"}


@register_model(paper=PAPER, module=_MODULE, module_kwargs=_SMALL)
def rltrimesh_shapenet(**kwargs) -> RLTriMeshNet:
    """Paper-scale network (spec 3, reconstructed): ResNet-50 encoder, N=1024 vertices, k=12 cliques, 3 stages x 128."""
    return RLTriMeshNet(**{"encoder": "resnet50", "in_chans": 3, "num_vertices": 1024, "vgn_hidden": [2048, 1024],
                           "k": 12, "refine_stages": 3, "refine_hidden": 128, "num_graphconv": 3,
                           "offset_scale": 1.0, **kwargs})


@register_model(
    paper=PAPER, module=_MODULE, module_kwargs=_SMALL,
    weights=Weights(tag="shapes", path="weights/meshrec-shapes.pt",
                    sha256="835cb8d840c49bd03131e39f818fd26dceff8e81abb0575271475095c76f4f16",
                    metadata={"config": "configs/meshrec/tiny.yaml", "checkpoint": "last (end of stage D)",
                              "dataset": "procedural sphere/cube/torus, 64x64", "test_chamfer": 0.0146,
                              "test_chamfer_vertices": 0.0222, "test_chamfer_stage0": 0.0176,
                              "test_cached_f1@0.3": 0.2711, "test_cached_normal": 0.8234, "test_f1@0.1": 8.16,
                              "test_f1@0.3": 44.89, "test_f1@0.5": 67.43, "test_chamfer_l2": 1.020,
                              "test_normal": 0.824, "test_euler": 1.75, "test_closed_meshes": "23/24"}),
)
def meshrec_shapes(**kwargs) -> RLTriMeshNet:
    """The tiny config's network (procedural sphere/cube/torus, 64x64 grayscale, sequential triangulation episodes;
    zoo.load("meshrec_shapes"))."""
    return RLTriMeshNet(**{**SHAPES_NET_KWARGS, **kwargs})
