"""RRR-Net networks (Sun et al., IJCNN 2023): bottleneck ResNet, its block reduction and the split branch ensemble.

Pure torch; state-dict keys follow torchvision/timm (``conv1``, ``bn1``, ``layer3.0.downsample.0`` ...) so their
ResNet152 checkpoints load unchanged.
"""
from __future__ import annotations

import copy
import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchvision.models.resnet import Bottleneck

from zoo.core.verbs import ClassifierVerbs

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
RESNET152_LAYERS = (3, 8, 36, 3)
RESNET_PLANES = (64, 128, 256, 512)


class Normalize(nn.Module):
    """Per-channel ``(x - mean) / std`` inside the model (data stays in [0, 1]); non-persistent buffers."""

    def __init__(self, mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> None:
        super().__init__()
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x - self.mean) / self.std


def make_stage(inplanes: int, planes: int, blocks: int, stride: int, *, project: bool | None = None) -> nn.Sequential:
    """``blocks`` torchvision Bottlenecks; the first owns the projection shortcut (RRR-Net keeps it when reducing)."""
    if project is None:
        project = stride != 1 or inplanes != planes * Bottleneck.expansion
    down = None
    if project:
        down = nn.Sequential(nn.Conv2d(inplanes, planes * 4, 1, stride=stride, bias=False), nn.BatchNorm2d(planes * 4))
    layers = [Bottleneck(inplanes, planes, stride, down)]
    layers += [Bottleneck(planes * 4, planes) for _ in range(1, blocks)]
    return nn.Sequential(*layers)


class BottleneckResNet(ClassifierVerbs, nn.Module):
    """Bottleneck ResNet (ResNet152 = layers (3, 8, 36, 3)); ``stem="imagenet"`` is 7x7/2 conv + maxpool,
    ``stem="cifar"`` a 3x3/1 conv without maxpool (the spec's mini ResNet for the faithful check)."""

    def __init__(self, layers: Sequence[int] = RESNET152_LAYERS, planes: Sequence[int] = RESNET_PLANES,
                 num_classes: int = 1000, in_chans: int = 3, stem: str = "imagenet", stem_width: int | None = None,
                 mean: Sequence[float] = IMAGENET_MEAN, std: Sequence[float] = IMAGENET_STD) -> None:
        super().__init__()
        if len(layers) != 4 or len(planes) != 4 or min(layers) < 1:
            raise ValueError(f"need 4 stages with >= 1 block each, got layers={list(layers)} planes={list(planes)}")
        if stem not in ("imagenet", "cifar"):
            raise ValueError(f"stem must be 'imagenet' or 'cifar', got {stem!r}")
        self.layers_cfg, self.planes_cfg, self.stem_type = list(layers), list(planes), stem
        width = stem_width or planes[0]
        self.normalize = Normalize(mean, std)
        k, s = (7, 2) if stem == "imagenet" else (3, 1)
        self.conv1 = nn.Conv2d(in_chans, width, k, stride=s, padding=k // 2, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.relu = nn.ReLU(inplace=True)
        self.maxpool = nn.MaxPool2d(3, 2, 1) if stem == "imagenet" else nn.Identity()
        inplanes = width
        for i, (n, p) in enumerate(zip(layers, planes)):
            setattr(self, f"layer{i + 1}", make_stage(inplanes, p, n, 1 if i == 0 else 2))
            inplanes = p * 4
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.num_features, self.num_classes = inplanes, num_classes
        self.fc = nn.Linear(inplanes, num_classes) if num_classes else nn.Identity()
        init_resnet(self)

    @property
    def head(self) -> nn.Module:  # timm's verbs call it "head"; torchvision/timm keys call it "fc"
        return self.fc

    def reset_classifier(self, num_classes: int) -> None:
        """Fresh ``fc`` for ``num_classes`` (0 gives pooled features)."""
        if num_classes < 0:
            raise ValueError(f"num_classes must be >= 0, got {num_classes}")
        device = self.conv1.weight.device
        self.num_classes = num_classes
        self.fc = nn.Linear(self.num_features, num_classes).to(device) if num_classes else nn.Identity()

    def stem_modules(self) -> list[nn.Module]:
        return [self.normalize, self.conv1, self.bn1, self.relu, self.maxpool]

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        for m in self.stem_modules():
            x = m(x)
        return self.layer4(self.layer3(self.layer2(self.layer1(x))))

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        x = self.global_pool(x).flatten(1)
        return x if pre_logits else self.fc(x)


def init_resnet(module: nn.Module) -> None:
    """torchvision's ResNet init: Kaiming-normal convs, BN gamma 1 / beta 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


def reduce_resnet(net: BottleneckResNet, nb_blocks: Sequence[int] = (1, 1, 1, 1),
                  num_classes: int | None = None) -> BottleneckResNet:
    """RRR-Net step 1: keep the first ``nb_blocks[s]`` blocks of each stage with their weights, no adapters.

    The first block of every stage owns the projection shortcut and stride, so the kept blocks chain
    without extra layers; a new ``fc`` is created when ``num_classes`` differs from the source head.
    """
    nb = list(nb_blocks)
    if len(nb) != 4 or any(n < 1 or n > m for n, m in zip(nb, net.layers_cfg)):
        raise ValueError(f"nb_blocks must be 4 ints in [1, {net.layers_cfg}], got {nb}")
    out = copy.deepcopy(net)
    for i, n in enumerate(nb):
        setattr(out, f"layer{i + 1}", nn.Sequential(*list(getattr(out, f"layer{i + 1}"))[:n]))
    out.layers_cfg = nb
    if num_classes is not None and num_classes != net.num_classes:
        out.reset_classifier(num_classes)
    return out


# ---- step 2: split into thin branches ----------------------------------------------------------------------------

def branch_planes(planes: Sequence[int], num_branches: int, shift: int, split_stage: int = 3) -> list[int]:
    """Per-stage widths of one branch: ``floor(planes / sqrt(B)) - shift`` for stages >= ``split_stage``."""
    return [p if s + 1 < split_stage else math.floor(p / math.sqrt(num_branches)) - shift
            for s, p in enumerate(planes)]


class Branch(nn.Module):
    """One thin RRR-Net branch: the reduced stages after the split point, global pool and its own fc."""

    def __init__(self, inplanes: int, planes: Sequence[int], blocks: Sequence[int], num_classes: int,
                 first_stride: Sequence[int]) -> None:
        super().__init__()
        stages = []
        for p, n, s in zip(planes, blocks, first_stride):
            stages.append(make_stage(inplanes, p, n, s, project=True))
            inplanes = p * 4
        self.stages = nn.Sequential(*stages)
        self.global_pool = nn.AdaptiveAvgPool2d(1)
        self.num_features = inplanes
        self.fc = nn.Linear(inplanes, num_classes)
        init_resnet(self)

    def forward(self, feats: torch.Tensor) -> torch.Tensor:
        return self.fc(self.global_pool(self.stages(feats)).flatten(1))


def count_branch_params(inplanes: int, planes: Sequence[int], blocks: Sequence[int], num_classes: int) -> int:
    """Trainable parameters of a branch (convs, BN affine, fc), counted analytically as ``calibrate_shift`` needs."""
    total, cin = 0, inplanes
    for p, n in zip(planes, blocks):
        for b in range(n):
            total += cin * p + 9 * p * p + p * 4 * p + 2 * (p + p + 4 * p)  # 3 convs + 3 BNs
            if b == 0:
                total += cin * 4 * p + 2 * 4 * p  # projection shortcut conv + BN
            cin = 4 * p
    return total + cin * num_classes + num_classes


def calibrate_shift(planes: Sequence[int], blocks: Sequence[int], num_branches: int, num_classes: int,
                    split_stage: int = 3, stem_out: int | None = None) -> int:
    """Smallest ``shift >= 0`` with ``B * params(branch) <= params(one unsplit branch)`` (the authors' rule)."""
    stages = range(split_stage - 1, 4)
    cin = stem_out if stem_out is not None else planes[split_stage - 2] * 4
    full = count_branch_params(cin, [planes[s] for s in stages], [blocks[s] for s in stages], num_classes)
    for shift in range(0, max(planes)):
        p = branch_planes(planes, num_branches, shift, split_stage)
        if min(p[s] for s in stages) < 1:
            break
        if num_branches * count_branch_params(cin, [p[s] for s in stages], [blocks[s] for s in stages],
                                              num_classes) <= full:
            return shift
    raise ValueError(f"no shift makes {num_branches} branches fit the parameter budget of one (planes={list(planes)})")


def branch_index_list(out_channels: int, per_branch: int, num_branches: int, generator: torch.Generator) -> torch.Tensor:
    """Output-channel indices: ``0..O-1`` extended by random permutations until it has ``per_branch * B`` entries.

    Drawn once per tensor (the authors re-draw it per input channel: a documented deviation).
    """
    parts, total = [torch.arange(out_channels)], out_channels
    while total < per_branch * num_branches:
        parts.append(torch.randperm(out_channels, generator=generator))
        total += out_channels
    return torch.cat(parts)[: per_branch * num_branches]


def slice_conv_weight(weight: torch.Tensor, index: torch.Tensor, branch: int, out_b: int, in_b: int) -> torch.Tensor:
    """Branch ``branch``'s slice of a pretrained conv weight: rows ``index[i*O_b:(i+1)*O_b]``, first ``I_b`` inputs."""
    rows = index[branch * out_b:(branch + 1) * out_b]
    return weight[rows][:, :in_b].clone()


class BranchEnsemble(ClassifierVerbs, nn.Module):
    """RRR-Net step 2: a frozen shared stem (always in eval mode) and ``B`` thin branches whose softmax
    probabilities are averaged. ``forward`` returns the log of the mean probabilities, so softmax/argmax
    of the output are the ensemble's."""

    def __init__(self, stem: nn.Sequential, branches: Sequence[Branch], num_classes: int,
                 freeze_stem: bool = True) -> None:
        super().__init__()
        self.stem = stem
        self.branches = nn.ModuleList(branches)
        self.num_classes = num_classes
        self.num_features = self.branches[0].num_features
        self.freeze_stem = freeze_stem
        if freeze_stem:
            self.stem.requires_grad_(False)
            self.stem.eval()

    @property
    def head(self) -> nn.Module:
        return self.branches[0].fc

    def reset_classifier(self, num_classes: int) -> None:
        """Fresh fc of ``num_classes`` on every branch."""
        device = next(self.parameters()).device
        for br in self.branches:
            br.fc = nn.Linear(br.num_features, num_classes).to(device)
        self.num_classes = num_classes

    def train(self, mode: bool = True) -> "BranchEnsemble":
        super().train(mode)
        if self.freeze_stem:
            self.stem.eval()  # the authors' ConcatenatedModel: stem BN statistics stay fixed after warm-up
        return self

    def forward_features(self, x: torch.Tensor) -> torch.Tensor:
        """Shared stem output, computed once for all branches."""
        if self.freeze_stem:
            with torch.no_grad():
                return self.stem(x)
        return self.stem(x)

    def branch_logits(self, x: torch.Tensor, from_features: bool = False) -> list[torch.Tensor]:
        feats = x if from_features else self.forward_features(x)
        return [br(feats) for br in self.branches]

    def forward_head(self, x: torch.Tensor, pre_logits: bool = False) -> torch.Tensor:
        if pre_logits:
            return torch.cat([br.global_pool(br.stages(x)).flatten(1) for br in self.branches], dim=1)
        return ensemble_log_probs(self.branch_logits(x, from_features=True))

    def predict_proba(self, x: torch.Tensor) -> torch.Tensor:
        """Mean of the branches' softmax probabilities (the paper's inference rule)."""
        return torch.stack([lg.softmax(-1) for lg in self.branch_logits(x)]).mean(0)


def ensemble_log_probs(logits: Sequence[torch.Tensor]) -> torch.Tensor:
    """``log(mean_i softmax(logits_i))``, computed stably with logsumexp."""
    stacked = torch.stack([F.log_softmax(lg, dim=-1) for lg in logits])
    return torch.logsumexp(stacked, dim=0) - math.log(len(logits))
