"""The shared classifier base: loss, verbs, optimisers, schedules and saved hyperparameters."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from zoo.core.optim import build_optimizer, build_scheduler
from zoo.quickstart import QuickstartClassifier, SmallCNN


def test_label_smoothing_matches_the_formula():
    module = QuickstartClassifier(label_smoothing=0.1)
    logits, target = torch.randn(6, 10), torch.randint(0, 10, (6,))
    logp = logits.log_softmax(-1)
    expected = (0.9 * -logp.gather(1, target[:, None]).squeeze(1) - 0.1 * logp.mean(-1)).mean()
    torch.testing.assert_close(module.loss(logits, target), expected)


def test_hyperparameters_of_the_whole_init_chain_are_saved():
    module = QuickstartClassifier(width=8, lr=0.01)
    assert module.hparams.width == 8 and module.hparams.lr == 0.01
    assert "net" not in module.hparams


def test_invalid_arguments_fail_loudly():
    with pytest.raises(ValueError, match="label_smoothing"):
        QuickstartClassifier(label_smoothing=1.5)
    with pytest.raises(ValueError, match="unknown optimizer"):
        build_optimizer([torch.nn.Parameter(torch.zeros(1))], "lamb", lr=0.1)
    opt = build_optimizer([torch.nn.Parameter(torch.zeros(1))], "sgd", lr=0.1)
    with pytest.raises(ValueError, match="milestones"):
        build_scheduler(opt, "multistep", max_epochs=10)


def test_uniform_verbs():
    net = SmallCNN(width=8).eval()
    x = torch.rand(3, 1, 8, 8)
    feats = net.forward_features(x)
    torch.testing.assert_close(net.forward_head(feats), net(x))
    assert net.forward_head(feats, pre_logits=True).shape == (3, net.num_features)
    net.reset_classifier(4)
    assert net(x).shape == (3, 4)
    net.reset_classifier(0)
    assert net(x).shape == (3, net.num_features)


def test_cosine_schedule_with_warmup_reaches_zero_at_the_end():
    param = torch.nn.Parameter(torch.zeros(1))
    opt = build_optimizer([param], "sgd", lr=1.0)
    sched = build_scheduler(opt, "cosine", max_epochs=10, warmup_epochs=2)["scheduler"]
    lrs = []
    for _ in range(10):
        lrs.append(opt.param_groups[0]["lr"])
        opt.step()
        sched.step()
    assert lrs[0] < lrs[1] < lrs[2] == pytest.approx(1.0)
    assert lrs[2] > lrs[5] > lrs[9]
    assert lrs[6] == pytest.approx(0.5 * (1 + math.cos(math.pi * 4 / 8)))


def test_a_few_steps_reduce_the_training_loss():
    from datamodules.digits import load_digits_tensors

    torch.manual_seed(0)
    x, y = load_digits_tensors()
    module = QuickstartClassifier(width=8, scheduler="none", lr=0.01)
    opt = module.configure_optimizers()
    with torch.no_grad():
        before = F.cross_entropy(module.eval()(x[:256]), y[:256]).item()
    module.train()
    for _ in range(60):
        opt.zero_grad()
        module.loss(module(x[:256]), y[:256]).backward()
        opt.step()
    with torch.no_grad():
        assert F.cross_entropy(module.eval()(x[:256]), y[:256]).item() < 0.5 * before
