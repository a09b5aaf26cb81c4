"""One builder for every RRR-Net model (Sun et al., IJCNN 2023): full [A]/[B], reduced, and split [C]/[D]."""
from __future__ import annotations

from typing import Sequence

from torch import nn

from zoo.backbone_reduction.nets import RESNET152_LAYERS, RESNET_PLANES, BottleneckResNet, reduce_resnet
from zoo.backbone_reduction.sources import load_into, load_source_state
from zoo.backbone_reduction.split import split_resnet


def build_rrrnet(
    num_classes: int = 20,
    layers: Sequence[int] = RESNET152_LAYERS,
    planes: Sequence[int] = RESNET_PLANES,
    stem: str = "imagenet",
    stem_width: int | None = None,
    source: str = "random",
    nb_blocks: Sequence[int] | None = (1, 1, 1, 1),
    num_branches: int = 1,
    split_stage: int = 3,
    shift: int | None = None,
    slice_seed: int = 0,
    reinit_bn: bool = True,
    freeze_stem: bool = True,
    slice_mode: str = "per_tensor",
) -> nn.Module:
    """``nb_blocks=None``: the full network with a new head ([A]/[B]); otherwise keep ``nb_blocks`` per stage,
    then ``num_branches >= 1`` splits at ``split_stage`` ([C]: B = 1, [D]: B = 8) and ``0`` keeps the plain
    reduced network (the authors' forward-selection runs)."""
    state = load_source_state(source)
    if state is None and nb_blocks is not None:  # random init: build the reduced shape directly (cheap)
        base = BottleneckResNet(list(nb_blocks), planes, num_classes, stem=stem, stem_width=stem_width)
    else:
        src_classes = state["fc.weight"].shape[0] if state is not None and "fc.weight" in state else num_classes
        base = BottleneckResNet(layers, planes, src_classes, stem=stem, stem_width=stem_width)
        if state is not None:
            load_into(base, state, source)
        if nb_blocks is None:
            if src_classes != num_classes:
                base.reset_classifier(num_classes)
            return base
        base = reduce_resnet(base, nb_blocks, num_classes)
    if nb_blocks is None or num_branches == 0:
        return base
    return split_resnet(base, num_branches, num_classes, split_stage=split_stage, shift=shift, seed=slice_seed,
                        reinit_bn=reinit_bn, freeze_stem=freeze_stem, slice_mode=slice_mode)
