"""MPII in deephar's annotations.mat layout: parsing, the pa17j joint map, the deephar crop; bad files fail clearly."""
import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import savemat

from datamodules.mpii import MPII_TO_PA17J, MPIIDataset, load_mpii_annotations


def _rect(objpos, scale, pose):
    rec = np.zeros((1,), dtype=[("head", "O"), ("objpos", "O"), ("scale", "O"), ("pose", "O")])
    rec[0] = (np.array([0.0, 0.0, 10.0, 10.0]), np.asarray(objpos, float), float(scale), np.asarray(pose, float))
    return rec


def write_mpii(root, n_images=3, size=(160, 120)):
    """A tiny deephar-layout MPII: one person per image, joints on a line, pelvis marked by a white square."""
    (root / "images").mkdir(parents=True, exist_ok=True)
    cells = np.empty((3, n_images), dtype=object)
    for i in range(n_images):
        pose = np.stack([np.linspace(40, 120, 16), np.full(16, 60.0)])  # 2 x 16
        pose[:, 9] = np.nan  # head top missing
        pose[1, 6] = 55.0
        img = np.zeros((size[1], size[0], 3), np.uint8)
        x, y = pose[:, 6].astype(int)
        img[y - 2:y + 3, x - 2:x + 3] = 255
        Image.fromarray(img).save(root / "images" / f"img{i}.jpg", quality=95)
        cells[0, i] = np.array([1])
        cells[1, i] = f"img{i}.jpg"
        cells[2, i] = _rect([80.0, 50.0], 0.4, pose)
    savemat(root / "annotations.mat", {"annot_tr": cells, "annot_val": cells[:, :1]})
    return root


def test_parse_and_map_joints(tmp_path):
    root = write_mpii(tmp_path / "mpii")
    samples = load_mpii_annotations(str(root / "annotations.mat"), "train")
    assert len(samples) == 3 and samples[0]["pose"].shape == (16, 2)
    assert len(load_mpii_annotations(str(root / "annotations.mat"), "val")) == 1
    ds = MPIIDataset(str(root), "train", image_size=32)
    s = ds[0]
    assert s["image"].shape == (3, 32, 32) and s["has3d"] == 0
    assert (s["annotated"][:, 2] == 0).all()  # no depth from MPII
    assert s["annotated"][16].sum() == 0 and s["annotated"][3].sum() == 0  # spine absent, head top missing
    side = 200 * 1.25 * 0.4
    x0, y0 = 80 - side / 2, 50 + 12 * 1.25 * 0.4 - side / 2
    torch.testing.assert_close(s["crop"], torch.tensor([x0, y0, side]))
    expect_u = (np.linspace(40, 120, 16)[MPII_TO_PA17J[0]] - x0) / side
    assert s["uvz"][0, 0].item() == pytest.approx(expect_u, abs=1e-5)
    img = s["image"].mean(0)
    y, x = divmod(int(img.argmax()), 32)
    assert abs((x + 0.5) / 32 - s["uvz"][0, 0].item()) < 2 / 32 and abs((y + 0.5) / 32 - s["uvz"][0, 1].item()) < 2 / 32


def test_missing_and_malformed(tmp_path):
    with pytest.raises(FileNotFoundError, match="annotations.mat"):
        MPIIDataset(str(tmp_path))
    savemat(tmp_path / "annotations.mat", {"something": np.zeros(3)})
    with pytest.raises(ValueError, match="annot_tr"):
        MPIIDataset(str(tmp_path))
