"""MPI-INF-3DHP: training annot.mat + camera.calibration and test annot_data.mat (valid_frame), from tiny
copies written with scipy.io; joint maps, intrinsics, crops and malformed files."""
import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import savemat

from datamodules.mpi_inf_3dhp import TEST_TO_PA17J, TRAIN_TO_PA17J, MPIINF3DHPDataModule, parse_calibration

K = (150.0, 140.0, 60.0, 50.0)  # fx, fy, cx, cy


def _pose(k, joints):
    rng = np.random.default_rng(k)
    p = rng.normal(0, 200, (joints, 3))
    p[:, 2] += 4000.0
    return p


def _dot(path, xy, size=(120, 100)):
    img = np.zeros((size[1], size[0], 3), np.uint8)
    x, y = int(xy[0]), int(xy[1])
    img[y - 2:y + 3, x - 2:x + 3] = 255
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(img).save(path, quality=95)


def _project(p):
    return np.stack([K[0] * p[:, 0] / p[:, 2] + K[2], K[1] * p[:, 1] / p[:, 2] + K[3]], 1)


def _calibration(n_cams=3):
    lines = ["Skeletool Camera Calibration File V1.0"]
    for c in range(n_cams):
        intr = [K[0], 0, K[2], 0, 0, K[1], K[3], 0, 0, 0, 1, 0, 0, 0, 0, 1]
        lines += [f"name          {c}", "  sensor      10 10", "  size        120 100", "  animated    0",
                  "  intrinsic   " + " ".join(map(str, intr)), "  extrinsic   " + " ".join(["1"] + ["0"] * 15),
                  "  radial      0"]
    return "\n".join(lines) + "\n"


def write_3dhp(root, n_frames=4, n_cams=3, test_frames=5):
    for q in (1, 2):
        seq = root / "S1" / f"Seq{q}"
        seq.mkdir(parents=True)
        (seq / "camera.calibration").write_text(_calibration(n_cams))
        annot3 = np.empty((n_cams, 1), dtype=object)
        annot2 = np.empty((n_cams, 1), dtype=object)
        for c in range(n_cams):
            poses = np.stack([_pose(100 * q + 10 * c + k, 28) for k in range(n_frames)])
            annot3[c, 0] = poses.reshape(n_frames, 84)
            annot2[c, 0] = np.stack([_project(p) for p in poses]).reshape(n_frames, 56)
            for k in range(n_frames):
                _dot(seq / "imageFrames" / f"video_{c}" / f"frame_{k + 1:06d}.jpg", _project(poses[k])[4])
        savemat(seq / "annot.mat", {"annot2": annot2, "annot3": annot3, "univ_annot3": annot3, "cameras": np.arange(n_cams),
                                    "frames": np.arange(n_frames)})
    ts = root / "mpi_inf_3dhp_test_set" / "TS1"
    poses = np.stack([_pose(1000 + k, 17) for k in range(test_frames)])
    a3 = poses.transpose(2, 1, 0)[:, :, None, :]  # MATLAB order: 3 x 17 x 1 x F
    a2 = np.stack([_project(p) for p in poses]).transpose(2, 1, 0)[:, :, None, :]
    valid = np.ones((1, test_frames))
    valid[0, 1] = 0
    for k in range(test_frames):
        _dot(ts / "imageSequence" / f"img_{k + 1:06d}.jpg", _project(poses[k])[14])
    savemat(ts / "annot_data.mat", {"annot2": a2, "annot3": a3, "univ_annot3": a3, "valid_frame": valid,
                                    "activity_annotation": np.ones((1, test_frames))})
    return root, poses


def test_calibration_parser(tmp_path):
    path = tmp_path / "camera.calibration"
    path.write_text(_calibration(2))
    assert parse_calibration(str(path)) == {0: K, 1: K}
    path.write_text("name 0\n  intrinsic 1 2 3\n")
    with pytest.raises(ValueError, match=":2: expected 'intrinsic'"):
        parse_calibration(str(path))


def test_train_and_test_layouts(tmp_path):
    root, test_poses = write_3dhp(tmp_path / "3dhp")
    dm = MPIINF3DHPDataModule(str(root), train_subjects=[1], cameras=[0, 2], test_sequences=[1], train_stride=2,
                              val_stride=4, image_size=32, batch_size=2, num_workers=0)
    dm.setup()
    assert len(dm.train_set) == 2 * 2 * 2  # 2 sequences x 2 cameras x frames 0, 2
    assert len(dm.test_set) == 4  # frame 2 (index 1) is not a valid frame
    s = dm.train_set[3]  # Seq1, camera 2, frame 2
    raw = _pose(100 + 20 + 2, 28)[list(TRAIN_TO_PA17J)]
    torch.testing.assert_close(s["pose3d"], torch.tensor(raw, dtype=torch.float32), atol=1e-2, rtol=0)
    torch.testing.assert_close(s["camera"], torch.tensor(K, dtype=torch.float32))
    t = dm.test_set[1]  # the third frame: valid frames are 0, 2, 3, 4
    torch.testing.assert_close(t["pose3d"], torch.tensor(test_poses[2][list(TEST_TO_PA17J)], dtype=torch.float32),
                               atol=1e-2, rtol=0)
    torch.testing.assert_close(t["camera"], torch.tensor(K, dtype=torch.float32), atol=1e-2, rtol=0)  # fitted
    for sample in (s, t):
        torch.testing.assert_close(sample["uvz"][0], torch.tensor([0.5, 0.5, 0.5]), atol=1e-4, rtol=0)
        m = sample["image"].mean(0)
        ys, xs = torch.nonzero(m > 0.5 * m.max(), as_tuple=True)
        assert abs((xs.float().mean() + 0.5) / 32 - 0.5) < 2 / 32 and abs((ys.float().mean() + 0.5) / 32 - 0.5) < 2 / 32


def test_malformed_annotation(tmp_path):
    root, _ = write_3dhp(tmp_path / "3dhp")
    savemat(root / "S1" / "Seq1" / "annot.mat", {"annot3": np.array([[np.zeros((4, 80))]], dtype=object)})
    dm = MPIINF3DHPDataModule(str(root), train_subjects=[1], cameras=[0], test_sequences=[1], num_workers=0)
    with pytest.raises(ValueError, match="F x 84"):
        dm.setup()
    with pytest.raises(FileNotFoundError, match="annot.mat"):
        MPIINF3DHPDataModule(str(tmp_path / "none"), num_workers=0).setup()
