"""RRR-Net step 2 (Sun et al., IJCNN 2023): split a reduced ResNet into a frozen stem and B thin branches
initialised by slicing the pretrained tensors ("split_pretrained_weights" of the authors' code)."""
from __future__ import annotations

import copy

import torch
from torch import nn

from zoo.backbone_reduction.nets import (
    Branch, BottleneckResNet, BranchEnsemble, branch_index_list, branch_planes, calibrate_shift, slice_conv_weight,
)

_CONVS = ("conv1", "conv2", "conv3")


def split_resnet(net: BottleneckResNet, num_branches: int, num_classes: int, split_stage: int = 3,
                 shift: int | None = None, seed: int = 0, reinit_bn: bool = True, reinit_fc: bool = True,
                 freeze_stem: bool = True, slice_mode: str = "per_tensor") -> BranchEnsemble:
    """Shared stem = everything before stage ``split_stage`` (default 3: stem + layer1 + layer2 = "3 blocks"),
    then ``num_branches`` branches of widths ``floor(planes/sqrt(B)) - shift`` (``shift`` calibrated when None).

    Branch conv weights are slices of ``net``'s; BN and fc are fresh (the authors' code, also for B = 1)
    unless ``reinit_bn`` / ``reinit_fc`` is False. ``slice_mode="per_input_channel"`` re-draws the random part of the
    output-channel list for every input channel, as the authors' code does; ``"per_tensor"`` draws it once.
    """
    if slice_mode not in ("per_tensor", "per_input_channel"):
        raise ValueError(f"slice_mode must be 'per_tensor' or 'per_input_channel', got {slice_mode!r}")
    if num_branches < 1:
        raise ValueError(f"num_branches must be >= 1, got {num_branches}")
    if split_stage not in (1, 2, 3, 4):
        raise ValueError(f"split_stage must be 1..4 (a stage boundary), got {split_stage}")
    blocks, planes = net.layers_cfg, net.planes_cfg
    stem_out = net.conv1.out_channels if split_stage == 1 else planes[split_stage - 2] * 4
    if shift is None:
        shift = calibrate_shift(planes, blocks, num_branches, num_classes, split_stage, stem_out)
    widths = branch_planes(planes, num_branches, shift, split_stage)
    stages = list(range(split_stage - 1, 4))
    if min(widths[s] for s in stages) < 1:
        raise ValueError(f"shift={shift} leaves no channels for B={num_branches} (widths {widths})")
    stem = nn.Sequential(*[copy.deepcopy(m) for m in net.stem_modules()],
                         *[copy.deepcopy(getattr(net, f"layer{s + 1}")) for s in range(split_stage - 1)])
    branches = [Branch(stem_out, [widths[s] for s in stages], [blocks[s] for s in stages], num_classes,
                       [1 if s == 0 else 2 for s in stages]) for _ in range(num_branches)]
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for j, s in enumerate(stages):
            for b, src in enumerate(getattr(net, f"layer{s + 1}")):
                pairs = [(f"{c}", f"bn{c[-1]}") for c in _CONVS]
                if b == 0:
                    if src.downsample is None:
                        raise ValueError(f"layer{s + 1}[0] has no projection shortcut; split at a stage boundary")
                    pairs.append(("downsample.0", "downsample.1"))
                for conv_name, bn_name in pairs:
                    w = src.get_submodule(conv_name).weight
                    dsts = [br.stages[j][b] for br in branches]
                    out_b, in_b = dsts[0].get_submodule(conv_name).weight.shape[:2]
                    index = branch_index_list(w.shape[0], out_b, num_branches, gen)
                    per_channel = [index] + [branch_index_list(w.shape[0], out_b, num_branches, gen)
                                             for _ in range(1, in_b)] if slice_mode == "per_input_channel" else None
                    for i, dst in enumerate(dsts):
                        target = dst.get_submodule(conv_name).weight
                        if per_channel is None:
                            target.copy_(slice_conv_weight(w, index, i, out_b, in_b))
                        else:
                            for c, idx in enumerate(per_channel):
                                target[:, c].copy_(w[idx[i * out_b:(i + 1) * out_b], c])
                        if not reinit_bn:
                            _copy_bn(src.get_submodule(bn_name), dst.get_submodule(bn_name),
                                     index[i * out_b:(i + 1) * out_b])
        if not reinit_fc:
            for br in branches:
                br.fc.weight.copy_(net.fc.weight[:, : br.fc.in_features])
                br.fc.bias.copy_(net.fc.bias)
    ens = BranchEnsemble(stem, branches, num_classes, freeze_stem=freeze_stem)
    ens.shift, ens.branch_widths, ens.split_stage = shift, [widths[s] for s in stages], split_stage
    return ens


def _copy_bn(src: nn.BatchNorm2d, dst: nn.BatchNorm2d, rows: torch.Tensor) -> None:
    for name in ("weight", "bias", "running_mean", "running_var"):
        getattr(dst, name).copy_(getattr(src, name)[rows])


def stem_and_branch_params(ens: BranchEnsemble) -> dict[str, int]:
    """Parameter counts of the shared stem and of each branch (the spec's model-card split)."""
    return {"stem": sum(p.numel() for p in ens.stem.parameters()),
            "branch": sum(p.numel() for p in ens.branches[0].parameters()),
            "branches": len(ens.branches)}
