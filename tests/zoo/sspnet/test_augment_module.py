"""SSP-Net augmentation keeps crops and targets consistent; precise BN; the module's steps and checkpoints."""
import lightning.pytorch as L
import pytest
import torch

from zoo.sspnet.augment import PA17J_FLIP, PoseAugment
from zoo.sspnet.module import SSPNetModule, precise_batchnorm



def _dots(uv: torch.Tensor, size: int) -> torch.Tensor:
    """An image with one bright 3x3 dot per joint (only joint 0 in channel 0, the others in channel 1)."""
    img = torch.zeros(uv.shape[0], 3, size, size)
    for b in range(uv.shape[0]):
        for j in range(uv.shape[1]):
            x, y = (uv[b, j] * size).long().tolist()
            img[b, 0 if j == 4 else 1, y - 1:y + 2, x - 1:x + 2] = 1.0
    return img


@pytest.mark.parametrize("flip", [0.0, 1.0])
def test_warp_moves_image_and_joints_together(flip):
    torch.manual_seed(0)
    size, b = 64, 6
    uv = 0.35 + 0.3 * torch.rand(b, 17, 2)
    uvz = torch.cat([uv, torch.full((b, 17, 1), 0.7)], -1)
    img = _dots(uv, size)
    aug = PoseAugment(occlusion_prob=0.0, gamma=(1.0, 1.0), flip_prob=flip, rotation_3d=30)
    out, uvz2, ann2 = aug(img, uvz, torch.ones(b, 17, 3), torch.ones(b))
    j = PA17J_FLIP.index(4) if flip else 4  # the left/right swap moves joint 4's dot to index 5
    for i in range(b):
        chan = out[i, 0]
        ys, xs = torch.nonzero(chan > 0.3 * chan.max(), as_tuple=True)
        centre = torch.stack([xs.float().mean() + 0.5, ys.float().mean() + 0.5]) / size
        assert torch.allclose(centre, uvz2[i, j, :2], atol=1.5 / size), (i, centre, uvz2[i, j])
    scale_inv = (uvz2[..., 2] - 0.5) / (0.7 - 0.5)  # z is renormalised by the crop scale: 1/s in {1/.8, 1, 1/1.2}
    assert set(round(v, 3) for v in scale_inv[:, 0].tolist()) <= {1.25, 1.0, 0.833}


def test_gamma_and_occlusion_change_only_pixels():
    torch.manual_seed(0)
    img = torch.rand(4, 3, 32, 32)
    uvz = torch.rand(4, 17, 3) * 0.5 + 0.25
    aug = PoseAugment(rotation_3d=0, scales_3d=(1.0,), shift_x=0, shift_y=0, flip_prob=0, occlusion_prob=1.0)
    out, uvz2, _ = aug(img, uvz, torch.ones(4, 17, 3), torch.ones(4))
    torch.testing.assert_close(uvz2, uvz)
    assert (out - img).abs().amax() > 0.05


def test_precise_bn_matches_dataset_statistics():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Conv2d(1, 2, 1), torch.nn.BatchNorm2d(2, momentum=0.01))
    batches = [torch.randn(4, 1, 5, 5) * 3 + 2 for _ in range(4)]
    precise_batchnorm(net, batches)
    feats = torch.cat([net[0](b) for b in batches]).detach()
    torch.testing.assert_close(net[1].running_mean, feats.mean((0, 2, 3)), atol=1e-4, rtol=0)
    assert net[1].momentum == 0.01 and net.training


def _batch(n=4, size=32, has3d=True):
    from datamodules.synthetic_pose import SyntheticStickFigures

    ds = SyntheticStickFigures(n, size, seed=3)
    batch = {k: torch.stack([ds[i][k] for i in range(n)]) for k in ds[0]}
    if not has3d:
        batch["has3d"][:] = 0
        batch["annotated"][..., 2] = 0
    return batch


def test_module_loss_falls_and_checkpoint_keeps_selected_block(tmp_path):
    L.seed_everything(0)
    mod = SSPNetModule(num_pyramids=2, num_levels=3, growth=8, stem_channels=16, stem="tiny", input_size=32,
                       optimizer="adam", lr=3e-3, augment=False, precise_bn_batches=2)
    batch = _batch(8)
    opt = mod.configure_optimizers()
    losses = []
    for _ in range(30):
        opt.zero_grad()
        loss = _loss(mod, batch)
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.5 * losses[0]
    mod.selected_block = 3
    trainer = L.Trainer(logger=False, enable_checkpointing=False, max_epochs=0, enable_progress_bar=False)
    trainer.strategy.connect(mod)
    path = tmp_path / "m.ckpt"
    trainer.save_checkpoint(path)
    loaded = SSPNetModule.load_from_checkpoint(path, weights_only=True)
    assert loaded.selected_block == 3
    for k, v in mod.state_dict().items():
        torch.testing.assert_close(loaded.state_dict()[k], v)


def _loss(mod, batch):
    from zoo.sspnet.losses import build_targets, sspnet_loss

    return sspnet_loss(mod.net(batch["image"]), build_targets(batch["uvz"], batch["annotated"]), mod.hparams.loss)


def test_rmsprop_step_schedule_from_fractions():
    mod = SSPNetModule(num_pyramids=1, num_levels=2, growth=4, stem_channels=8, stem="tiny", input_size=8,
                       lr_milestones=[0.7, 0.9])
    trainer = L.Trainer(max_epochs=100, logger=False)
    mod.trainer = trainer
    cfg = mod.configure_optimizers()
    assert isinstance(cfg["optimizer"], torch.optim.RMSprop)
    assert sorted(cfg["lr_scheduler"]["scheduler"].milestones) == [70, 90]
    assert cfg["lr_scheduler"]["scheduler"].gamma == 0.2
