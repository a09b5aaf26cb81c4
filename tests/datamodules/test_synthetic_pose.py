"""Synthetic stick figures (SSP-Net's embedded default) and the shared pose utilities: targets, depth cue,
z-buffer, intrinsics fit and the mixed batch sampler."""
import numpy as np
import pytest
import torch

from datamodules.pose_common import MixedBatchSampler, fit_pinhole
from datamodules.synthetic_pose import (ROOT_DEPTH_MM, SyntheticStickFigureDataModule, SyntheticStickFigures,
                                        project, random_poses, render)


def test_samples_targets_follow_the_spec():
    ds = SyntheticStickFigures(16, 64, seed=0)
    s = ds[3]
    pose = ds.poses[3]
    assert s["image"].shape == (3, 64, 64) and 0 <= s["image"].min() and s["image"].max() <= 1
    torch.testing.assert_close(s["uvz"][0], torch.tensor([0.5, 0.5, 0.5]))
    torch.testing.assert_close(s["uvz"][:, 2], torch.tensor((pose[:, 2] - pose[0, 2]) / 2000 + 0.5))
    torch.testing.assert_close(s["uvz"][:, :2], torch.tensor(project(pose, 64) / 64, dtype=torch.float32))
    assert s["annotated"].all() and s["has3d"] == 1
    assert pose[0, 2] == ROOT_DEPTH_MM
    again = SyntheticStickFigures(16, 64, seed=0)
    torch.testing.assert_close(again.images, ds.images)  # seeded


def test_bones_keep_their_length_and_depth_darkens():
    poses = random_poses(50, np.random.default_rng(1))
    thigh = np.linalg.norm(poses[:, 12] - poses[:, 10], axis=1)  # r_knee - r_hip
    np.testing.assert_allclose(thigh, 430.0, rtol=1e-6)
    near = np.array([[0, 0, 4200.0], [0, 300, 4200.0]] + [[0, 0, 4200.0]] * 15)
    far = near + np.array([0, 0, 1600.0])
    far[:, :2] *= far[0, 2] / near[0, 2]  # same image position, farther away
    assert render(near).sum() > 1.5 * render(far).sum()


def test_zbuffer_keeps_the_nearer_limb():
    from datamodules.synthetic_pose import _COLOURS

    pose = np.tile(np.array([0.0, 0.0, 5000.0]), (17, 1))
    pose[4], pose[6] = [-300, -200, 4000], [300, -200, 4000]  # r_shoulder -> r_elbow: near, horizontal
    pose[5], pose[7] = [0, -500, 6000], [0, 100, 6000]  # l_shoulder -> l_elbow: far, vertical, crossing it
    img = render(pose, 64)
    np.testing.assert_allclose(img[:, 28, 32], _COLOURS[6] * 1.0, atol=1e-6)  # the near limb wins the shared pixel
    pose[4], pose[6] = [-300, 300, 4000], [300, 300, 4000]  # move the near limb away: the far one shows, darker
    hidden = render(pose, 64)[:, 28, 32]
    assert 0 < hidden.sum() < 0.5 * img[:, 28, 32].sum()


def test_fit_pinhole_recovers_intrinsics():
    rng = np.random.default_rng(0)
    p3 = rng.normal(0, 300, (40, 3)) + [0, 0, 4000]
    p2 = np.stack([1200 * p3[:, 0] / p3[:, 2] + 500, 1100 * p3[:, 1] / p3[:, 2] + 400], 1)
    np.testing.assert_allclose(fit_pinhole(p2, p3), (1200, 1100, 500, 400), rtol=1e-6)


def test_mixed_batch_sampler_counts_and_ddp_shards():
    sampler = MixedBatchSampler([10, 7], [2, 3], seed=0, rank=0, world_size=1)
    batches = list(sampler)
    assert len(batches) == 5 == len(sampler)
    for b in batches:
        assert sum(i < 10 for i in b) == 2 and sum(i >= 10 for i in b) == 3
    assert sorted(i for b in batches for i in b if i < 10) == list(range(10))  # an epoch covers the first set
    r0 = [i for b in MixedBatchSampler([10, 7], [2, 3], rank=0, world_size=2) for i in b if i < 10]
    r1 = [i for b in MixedBatchSampler([10, 7], [2, 3], rank=1, world_size=2) for i in b if i < 10]
    assert not set(r0) & set(r1)
    sampler.set_epoch(1)
    assert list(sampler) != batches
    with pytest.raises(ValueError, match="non-empty"):
        MixedBatchSampler([0, 4], [1, 1])


def test_datamodule_loaders():
    dm = SyntheticStickFigureDataModule(num_train=40, num_val=8, num_test=8, batch_size=8)
    dm.setup()
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (8, 3, 64, 64) and batch["pose3d"].shape == (8, 17, 3)
    assert len(dm.train_dataloader()) == 5 and len(dm.val_dataloader()) == 1
