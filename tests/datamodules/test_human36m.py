"""Human3.6M: the deephar annotations.mat layout and the VideoPose3D npz layout, parsed from tiny copies;
crops centred on the root, subject splits, frame strides, lifting back to camera mm, and MPII mixing."""
import json

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import savemat
from scipy.spatial.transform import Rotation

from datamodules.human36m import H36M_TO_PA17J, Human36MDataModule
from zoo.sspnet.metrics import lift_to_camera

F, C = np.array([100.0, 100.0]), np.array([80.0, 60.0])


def _world_pose(k):
    rng = np.random.default_rng(k)
    pose = rng.normal(0, 200, (3, 32))
    pose[:, 0] = [10.0 * k, -20.0, 0.0]  # root (pelvis)
    return pose


def _frame_with_dot(path, x, y, size=(160, 120)):
    img = np.zeros((size[1], size[0], 3), np.uint8)
    img[int(y) - 2:int(y) + 3, int(x) - 2:int(x) + 3] = 255
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path, quality=95)


def write_deephar(root, subjects=(1, 9), n_frames=6):
    """annotations.mat (deephar layout) + images/<name>/%05d.jpg with a white square at the projected root."""
    rot = Rotation.from_euler("y", 20, degrees=True).as_matrix()
    trans = np.array([0.0, 0.0, -4000.0])
    seqs = []
    for s in subjects:
        name = f"a02_s{s:02d}_e01_c01"
        frames = []
        for k in range(n_frames):
            world = _world_pose(k)
            frames.append({"f": k + 1, "w": 160, "h": 120, "pose3d": world})
            cam = rot @ (world[:, 0] - trans)
            _frame_with_dot(root / "images" / name / f"{k + 1:05d}.jpg", *(F * cam[:2] / cam[2] + C))
        frames_arr = np.empty((len(frames),), dtype=object)
        frames_arr[:] = frames
        seqs.append({"name": name, "frames": frames_arr,
                     "camera_parameters": {"R": rot, "T": trans, "f": F, "c": C, "p": np.zeros(2), "k": np.zeros(3)}})
    seq_arr = np.empty((len(seqs),), dtype=object)
    seq_arr[:] = seqs
    savemat(root / "annotations.mat", {"sequences_tr": seq_arr, "action_labels": np.array(["a"], dtype=object),
                                        "joint_labels": np.array(["j"], dtype=object)})
    return root, rot, trans


def _dot_centre(image):
    m = image.mean(0)
    ys, xs = torch.nonzero(m > 0.5 * m.max(), as_tuple=True)
    return (xs.float().mean() + 0.5) / m.shape[1], (ys.float().mean() + 0.5) / m.shape[0]


def test_deephar_layout_split_stride_crop_and_lift(tmp_path):
    root, rot, trans = write_deephar(tmp_path / "h36m")
    dm = Human36MDataModule(str(root), train_subjects=[1], test_subjects=[9], train_stride=2, val_stride=4,
                            test_stride=3, image_size=40, batch_size=2, num_workers=0)
    dm.setup("fit")
    assert (len(dm.train_set), len(dm.val_set), len(dm.test_set)) == (3, 1, 2)
    s = dm.test_set[1]  # subject 9, frame index 3
    expect = (rot @ (_world_pose(3)[:, list(H36M_TO_PA17J)] - trans[:, None])).T
    torch.testing.assert_close(s["pose3d"], torch.tensor(expect, dtype=torch.float32), atol=1e-2, rtol=0)
    torch.testing.assert_close(s["uvz"][0], torch.tensor([0.5, 0.5, 0.5]), atol=1e-5, rtol=0)
    side = 2250.0 * 100.0 / expect[0, 2]
    assert s["crop"][2].item() == pytest.approx(side, rel=1e-4)
    u, v = _dot_centre(s["image"])
    assert abs(u - 0.5) < 2 / 40 and abs(v - 0.5) < 2 / 40
    lifted = lift_to_camera(s["uvz"][None], s["camera"][None], s["crop"][None], s["root_z"][None],
                            s["depth_range"][None])
    torch.testing.assert_close(lifted[0], s["pose3d"], atol=0.5, rtol=0)
    batch = next(iter(dm.train_dataloader()))
    assert batch["image"].shape == (2, 3, 40, 40) and batch["uvz"].shape == (2, 17, 3)


def test_npz_layout_uses_quaternion_cameras(tmp_path):
    root = tmp_path / "vp3d"
    root.mkdir()
    positions = {"S1": {"Walking": np.stack([_world_pose(k).T / 1000 for k in range(4)])},
                 "S11": {"Walking 1": np.stack([_world_pose(k).T / 1000 for k in range(4)])}}
    np.savez(root / "data_3d_h36m.npz", positions_3d=positions)
    rot = Rotation.from_euler("xz", [80, 30], degrees=True)
    x, y, z, w = rot.as_quat()
    t = -rot.apply([0.0, 0.0, 4000.0])  # the camera looks at the origin from 4 m
    cams = {s: [{"id": "54138969", "center": C.tolist(), "focal_length": F.tolist(), "orientation": [w, x, y, z],
                 "translation": t.tolist()}] for s in positions}
    (root / "cameras.json").write_text(json.dumps(cams))
    for s, acts in positions.items():
        for a, seq in acts.items():
            for k in range(4):
                cam = rot.inv().apply(seq[k, 0] * 1000 - t)
                _frame_with_dot(root / "images" / s / f"{a}.54138969" / f"{k + 1:06d}.jpg", *(F * cam[:2] / cam[2] + C))
    dm = Human36MDataModule(str(root), format="npz", train_subjects=[1], test_subjects=[11], train_stride=1,
                            val_stride=2, test_stride=2, image_size=32, num_workers=0, batch_size=2)
    dm.setup()
    assert len(dm.train_set) == 4 and len(dm.test_set) == 2
    s = dm.test_set[1]
    expect = rot.inv().apply(positions["S11"]["Walking 1"][2][list(H36M_TO_PA17J)] * 1000 - t)
    torch.testing.assert_close(s["pose3d"], torch.tensor(expect, dtype=torch.float32), atol=1e-2, rtol=0)
    assert expect[0, 2] > 3000
    u, v = _dot_centre(s["image"])
    assert abs(u - 0.5) < 2 / 32 and abs(v - 0.5) < 2 / 32


def test_mixing_mpii_gives_fixed_per_dataset_counts(tmp_path):
    import importlib.util
    from pathlib import Path

    spec = importlib.util.spec_from_file_location("mpii_fixture", Path(__file__).with_name("test_mpii.py"))
    mpii_fixture = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mpii_fixture)
    write_mpii = mpii_fixture.write_mpii

    root, *_ = write_deephar(tmp_path / "h36m")
    mpii = write_mpii(tmp_path / "mpii")
    dm = Human36MDataModule(str(root), train_subjects=[1], test_subjects=[9], train_stride=1, val_stride=2, image_size=32,
                            batch_size=3, mix_batch_size=2, mpii_dir=str(mpii), num_workers=0)
    dm.setup()
    loader = dm.train_dataloader()
    assert len(loader) == 1  # len(MPII) // MPII batch size, as in the authors' epochs
    batch = next(iter(loader))
    assert batch["has3d"].tolist() == [0, 0, 1, 1, 1]


def test_missing_data_names_the_layout(tmp_path):
    dm = Human36MDataModule(str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="sequences_tr"):
        dm.setup()
    with pytest.raises(ValueError, match="format"):
        Human36MDataModule(str(tmp_path), format="h5")
