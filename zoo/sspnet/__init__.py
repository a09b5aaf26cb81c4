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
