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


def _encoder_layer_macs(batch: int, seq: int, d: int, heads: int, ffn: int) -> int:
    """MACs of one TransformerEncoderLayer from its shapes: projections, QK^T, AV and the FFN."""
    tokens = batch * seq
    projections = tokens * d * 3 * d + tokens * d * d  # in_proj (q, k, v) and out_proj
    scores_and_mix = 2 * batch * heads * seq * seq * (d // heads)  # QK^T and softmax(.) V
    feed_forward = tokens * (d * ffn + ffn * d)
    return projections + scores_and_mix + feed_forward


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_transformer_encoder_layer_counts_attention_in_eval(device):
    # eval() + no_grad would take the fused fast path, which the flop counter does not see
    with torch.device(device):
        layer = nn.TransformerEncoderLayer(64, 4, 128, batch_first=True)
    assert count_macs(layer, (2, 10, 64)) == _encoder_layer_macs(2, 10, 64, 4, 128)
    assert torch.backends.mha.get_fastpath_enabled(), "count_macs must restore the fast-path flag"


def test_multihead_attention_counts_with_and_without_weights():
    attn = nn.MultiheadAttention(32, 2, batch_first=True).eval()
    x = torch.randn(3, 7, 32)
    expected = 3 * 7 * 32 * 4 * 32 + 2 * 3 * 2 * 7 * 7 * 16
    for need_weights in (False, True):
        model = _SelfAttention(attn, need_weights)
        assert count_macs(model, x) == expected


class _SelfAttention(nn.Module):
    def __init__(self, attn: nn.MultiheadAttention, need_weights: bool) -> None:
        super().__init__()
        self.attn, self.need_weights = attn, need_weights

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.attn(x, x, x, need_weights=self.need_weights)[0]


@pytest.mark.parametrize("device", ["cpu", "meta"])
def test_vit_b_16_matches_torchvision_published_cost(device):
    # torchvision's model card: 17.56 GFLOPS (in MACs), 86.57 M parameters
    with torch.device(device):
        net = torchvision.models.vit_b_16()
    assert count_params(net) / 1e6 == pytest.approx(86.57, abs=0.005)
    assert count_macs(net, (1, 3, 224, 224)) / 1e9 == pytest.approx(17.56, abs=0.005)
