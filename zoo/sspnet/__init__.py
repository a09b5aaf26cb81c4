"""SSP-Net: scalable sequential pyramid networks for real-time 3D human pose regression (Luvizon, Tabia,
Picard, Pattern Recognition 2023). Networks, loss, metrics and the LightningModule ``SSPNetModule``."""
from zoo.registry import Weights, register_model
from zoo.sspnet.net import SSPNet, sspnet_paper, sspnet_tiny

__all__ = ["SSPNet", "sspnet_paper", "sspnet_tiny", "sspnet", "sspnet_synthetic"]

_TINY_MODULE_KWARGS = dict(num_pyramids=2, num_levels=3, growth=8, stem_channels=16, stem="tiny", input_size=32,
                           precise_bn_batches=2)


@register_model(paper="SSP-Net (Luvizon et al., Pattern Recognition 2023)", module="zoo.sspnet.module.SSPNetModule",
                module_kwargs=_TINY_MODULE_KWARGS)
def sspnet(**kwargs) -> SSPNet:
    """SSP-Net in the reference configuration (K=8, L=4, growth 96, 256x256 input, 24 prediction blocks)."""
    return sspnet_paper(**kwargs)


# the tiny config's network (configs/sspnet/tiny.yaml): TinySSP of spec section 10
SSPNET_SYNTHETIC_KWARGS = {"num_pyramids": 4, "num_levels": 3, "growth": 16, "stem_channels": 32, "stem": "tiny",
                           "input_size": 64}


@register_model(
    paper="SSP-Net (Luvizon et al., Pattern Recognition 2023)", module="zoo.sspnet.module.SSPNetModule",
    module_kwargs=dict(_TINY_MODULE_KWARGS),
    weights=Weights(
        tag="stickfigures", path="weights/sspnet_synthetic-stickfigures.pt",
        sha256="42b1746bedca5d42d42ab6a1af1f920078303a8de693fc8615ca1d25853d3cf3",
        metadata={"config": "configs/sspnet/tiny.yaml", "dataset": "synthetic stick figures", "val_mpjpe_mm": 116.0,
                  "test_mpjpe_mm": 117.5, "test_pa_mpjpe_mm": 106.1, "selected_block": 8},
    ),
)
def sspnet_synthetic(**kwargs) -> SSPNet:
    """TinySSP (64x64 input, 8 prediction blocks), trained by configs/sspnet/tiny.yaml on synthetic stick figures."""
    return SSPNet(**{**SSPNET_SYNTHETIC_KWARGS, **kwargs})
