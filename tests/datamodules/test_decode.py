"""The shared decoder: truncated images, archives and .mat files raise errors that name the file and say what was
expected, in the main process and inside DataLoader workers; array checks refuse float or out-of-range data."""
from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import savemat
from torch.utils.data import DataLoader, Dataset

from datamodules.decode import (IMG_EXTENSIONS, as_labels, as_uint8, load_image, open_image, read_bytes, read_mat,
                                read_npz_object)


def write_image(path: Path, fmt: str, size=(24, 20), mode="RGB") -> Path:
    rng = np.random.default_rng(0)
    shape = (size[1], size[0]) + ((3,) if mode == "RGB" else ())
    Image.fromarray(rng.integers(0, 256, shape, dtype=np.uint8), mode).save(path, format=fmt)
    return path


def truncate(path: Path, keep: float = 0.5) -> Path:
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * keep)])
    return path


@pytest.mark.parametrize("name,fmt", [("face.jpg", "JPEG"), ("face.png", "PNG")])
def test_truncated_image_names_file_and_expectation(tmp_path: Path, name: str, fmt: str) -> None:
    path = truncate(write_image(tmp_path / name, fmt))
    with pytest.raises(OSError):
        with Image.open(path) as img:  # PIL itself fails only on load, without the file's name
            img.load()
    with pytest.raises(ValueError, match=rf"{name}: expected a complete, decodable image, but it is truncated"):
        load_image(path, 8)
    (tmp_path / "text.png").write_text("hello")
    with pytest.raises(ValueError, match=r"text.png: expected a complete, decodable image"):
        open_image(tmp_path / "text.png")
    with pytest.raises(FileNotFoundError, match=r"image file .*absent.jpg does not exist"):
        open_image(tmp_path / "absent.jpg")


def test_pgm_is_read_and_listed_as_torchvision_does(tmp_path: Path) -> None:
    from torchvision.datasets.folder import IMG_EXTENSIONS as TV

    assert set(IMG_EXTENSIONS) == set(TV)
    arr = np.arange(30, dtype=np.uint8).reshape(5, 6)
    Image.fromarray(arr, "L").save(tmp_path / "x.pgm")
    out = load_image(tmp_path / "x.pgm", mode="L")
    assert out.shape == (1, 5, 6) and torch.equal(out[0], torch.from_numpy(arr))


class _Files(Dataset):
    def __init__(self, paths):
        self.paths = paths

    def __len__(self):
        return len(self.paths)

    def __getitem__(self, i):
        return load_image(self.paths[i], 8).float()


def test_error_inside_a_dataloader_worker_still_names_the_file(tmp_path: Path) -> None:
    good = write_image(tmp_path / "good.png", "PNG")
    bad = truncate(write_image(tmp_path / "bad_frame.jpg", "JPEG"), 0.3)
    loader = DataLoader(_Files([good, bad]), batch_size=1, num_workers=1)
    with pytest.raises(ValueError) as err:
        list(loader)
    assert "DataLoader worker" in str(err.value)  # it did come from the worker process
    assert "bad_frame.jpg: expected a complete, decodable image" in str(err.value)


def test_gz_truncated_or_foreign(tmp_path: Path) -> None:
    path = tmp_path / "train-labels-idx1-ubyte.gz"
    path.write_bytes(gzip.compress(bytes(range(256)) * 20))
    assert read_bytes(path) == bytes(range(256)) * 20
    truncate(path)
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte.gz: expected a complete gzip archive, but it "
                                         r"is truncated"):
        read_bytes(path)
    path.write_bytes(b"\x00\x00\x08\x01 plain IDX, not gzip")
    with pytest.raises(ValueError, match=r"idx1-ubyte.gz: expected a complete gzip archive.*not gzip"):
        read_bytes(path)


def test_truncated_mat_names_file(tmp_path: Path) -> None:
    path = tmp_path / "annotations.mat"
    savemat(path, {"X": np.arange(4000.0).reshape(40, 100), "y": np.ones((40, 1))})
    assert read_mat(path)["X"].shape == (40, 100)
    truncate(path, 0.4)
    with pytest.raises(ValueError, match=r"annotations.mat: expected a complete MATLAB v5 or v7.3 .mat file"):
        read_mat(path)
    path.write_bytes(b"MATLAB 5.0" + b"\x00" * 5)
    with pytest.raises(ValueError, match=r"annotations.mat: expected a complete MATLAB"):
        read_mat(path)


def test_npz_object_member_loads_safely(tmp_path: Path) -> None:
    path = tmp_path / "data_3d_h36m.npz"
    positions = {"S1": {"Walking": np.arange(6.0, dtype=np.float32).reshape(1, 2, 3)}}
    np.savez_compressed(path, positions_3d=positions, plain=np.arange(5))  # as VideoPose3D writes it
    got = read_npz_object(path, "positions_3d")
    np.testing.assert_array_equal(got["S1"]["Walking"], positions["S1"]["Walking"])
    np.testing.assert_array_equal(read_npz_object(path, "plain"), np.arange(5))
    with pytest.raises(ValueError, match=r"data_3d_h36m.npz: no array 'missing'"):
        read_npz_object(path, "missing")
    truncate(path)
    with pytest.raises(ValueError, match=r"data_3d_h36m.npz: expected a complete .npz \(zip\) archive"):
        read_npz_object(path, "positions_3d")


def test_uint8_check_refuses_floats_and_wrapping(tmp_path: Path) -> None:
    f = tmp_path / "batch"
    with pytest.raises(ValueError, match=r"batch: pixels must be uint8 \(integers 0..255\), found dtype float32"):
        as_uint8(np.full(4, 0.5, np.float32), f, "pixels")
    with pytest.raises(ValueError, match=r"batch: pixels must be integers in 0..255, found 300 .*index 2"):
        as_uint8(np.array([0, 255, 300], np.int64), f, "pixels")
    assert as_uint8(np.array([0, 255], np.int64), f).dtype == np.uint8
    with pytest.raises(ValueError, match=r"batch: row 1 has label -1, expected 0..9"):
        as_labels([3, -1], f, 0, 9)
    with pytest.raises(ValueError, match=r"batch: labels must be integers 0..9, found dtype float64"):
        as_labels([0.5, 1.0], f, 0, 9)
