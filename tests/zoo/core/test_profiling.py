"""Parameter and MAC counts against hand computations and torchvision's published ResNet-152 figures."""
from __future__ import annotations

import pytest
import torch
import torchvision
from torch import nn

from zoo.core.profiling import count_macs, count_params, measure_latency, summarize


def test_conv_macs_match_hand_computation():
    conv = nn.Conv2d(3, 8, kernel_size=3, padding=1, bias=False)
    # every output element: 3 in-channels x 3 x 3 taps; outputs: 8 x 16 x 16 per sample, 2 samples
    assert count_macs(conv, (2, 3, 16, 16)) == 2 * 8 * 16 * 16 * 3 * 3 * 3
    assert count_params(conv) == 8 * 3 * 3 * 3


def test_linear_macs_and_shared_parameters_counted_once():
    lin = nn.Linear(10, 4)
    assert count_macs(lin, (5, 10)) == 5 * 10 * 4
    assert count_params(nn.ModuleList([lin, lin])) == count_params(lin) == 44
    lin.bias.requires_grad_(False)
    assert count_params(lin, trainable_only=True) == 40


def test_resnet152_matches_torchvision_published_cost():
    with torch.device("meta"):
        net = torchvision.models.resnet152()
    assert count_params(net) / 1e6 == pytest.approx(60.19, abs=0.005)
    assert count_macs(net, (1, 3, 224, 224)) / 1e9 == pytest.approx(11.51, abs=0.005)


def test_summarize_and_latency_helpers():
    net = nn.Sequential(nn.Conv2d(1, 4, 3), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
    summary = summarize(net, (1, 1, 8, 8))
    assert summary["params"] == 4 * 9 + 4 + 144 * 2 + 2
    assert summary["macs"] == 4 * 36 * 9 + 144 * 2
    seconds = measure_latency(net, torch.rand(1, 1, 8, 8), warmup=1, repeats=3)
    assert 0 < seconds < 5
    assert net.training, "helpers must restore the training flag"
    with pytest.raises(ValueError):
        measure_latency(net, torch.rand(1, 1, 8, 8), repeats=0)
