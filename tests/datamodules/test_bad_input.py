"""Each datamodule given a bad file in its official layout raises an error naming the file and the expectation,
instead of loading garbage or ending in a library traceback (issue 16)."""
from __future__ import annotations

import gzip
import os
import pickle
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from scipy.io import savemat

from tests.datamodules.test_cifar import make_cifar10
from tests.datamodules.test_fer import make_rafdb
from tests.datamodules.test_human36m import write_deephar
from tests.datamodules.test_mnist import make_mnist
from tests.datamodules.test_mpi_inf_3dhp import write_3dhp
from tests.datamodules.test_mpii import write_mpii
from tests.datamodules.test_puzzles import make_met_folder
from tests.datamodules.test_tiny_imagenet import _make as make_tiny


def truncate(path: Path, keep: float = 0.4) -> Path:
    raw = path.read_bytes()
    path.write_bytes(raw[: int(len(raw) * keep)])
    return path


def dump(path: Path, obj, protocol: int = 2) -> None:
    path.write_bytes(pickle.dumps(obj, protocol=protocol))


# ---- CIFAR ----------------------------------------------------------------------------------------------------
def test_cifar_float_or_wrapping_pixels_are_refused(tmp_path: Path) -> None:
    from datamodules.cifar import CIFAR10DataModule

    folder = make_cifar10(tmp_path)
    dump(folder / "data_batch_2", {b"labels": [1, 2], b"data": np.full((2, 3072), 0.5, np.float32)})
    with pytest.raises(ValueError, match=r"data_batch_2: b'data' must be uint8 \(integers 0..255\), found dtype float32"):
        CIFAR10DataModule(str(folder), num_workers=0).setup()
    wrap = np.zeros((2, 3072), np.int64)
    wrap[1, 5] = 256  # would wrap to 0 under astype(uint8)
    dump(folder / "data_batch_2", {b"labels": [1, 2], b"data": wrap})
    with pytest.raises(ValueError, match=r"data_batch_2: b'data' must be integers in 0..255, found 256"):
        CIFAR10DataModule(str(folder), num_workers=0).setup()
    dump(folder / "data_batch_2", {b"labels": [1, 2, 3], b"data": np.zeros((2, 3072), np.uint8)})
    with pytest.raises(ValueError, match=r"data_batch_2: 2 images but 3 labels"):
        CIFAR10DataModule(str(folder), num_workers=0).setup()
    dump(folder / "data_batch_2", {b"labels": [1, -2], b"data": np.zeros((2, 3072), np.uint8)})
    with pytest.raises(ValueError, match=r"data_batch_2: row 1 has label -2, expected 0..9"):
        CIFAR10DataModule(str(folder), num_workers=0).setup()


class _Payload:
    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def test_crafted_cifar_batch_does_not_run_code(tmp_path: Path) -> None:
    from datamodules.cifar import CIFAR10DataModule

    folder = make_cifar10(tmp_path)
    marker = tmp_path / "marker"
    dump(folder / "data_batch_1", {b"labels": [0], b"data": _Payload(marker)})
    with pytest.raises(ValueError) as err:
        CIFAR10DataModule(str(folder), num_workers=0).setup()
    assert not marker.exists()
    assert "data_batch_1" in str(err.value) and "refused to load global" in str(err.value)
    assert "numpy arrays" in str(err.value)


# ---- SVHN, MNIST ----------------------------------------------------------------------------------------------
def test_svhn_float_images_and_bad_labels(tmp_path: Path) -> None:
    from datamodules.svhn import read_svhn_mat

    path = tmp_path / "train_32x32.mat"
    savemat(path, {"X": np.full((32, 32, 3, 2), 0.5), "y": np.array([[1], [2]], np.uint8)})
    with pytest.raises(ValueError, match=r"train_32x32.mat: 'X' must be uint8 \(integers 0..255\), found dtype float64"):
        read_svhn_mat(path)
    savemat(path, {"X": np.zeros((32, 32, 3, 2), np.uint8), "y": np.array([[1], [11]], np.uint8)})
    with pytest.raises(ValueError, match=r"train_32x32.mat: row 1 has label 11, expected 1..10"):
        read_svhn_mat(path)
    truncate(path)
    with pytest.raises(ValueError, match=r"train_32x32.mat: expected a complete MATLAB"):
        read_svhn_mat(path)


def test_mnist_signed_labels_and_truncated_gz(tmp_path: Path) -> None:
    from datamodules.mnist import MNISTDataModule

    make_mnist(tmp_path, n_train=6, n_test=4)
    labels = np.array([0, 1, -1, 2, 3, 4], np.int8)
    header = struct.pack(">BBBBI", 0, 0, 0x09, 1, len(labels))
    (tmp_path / "train-labels-idx1-ubyte.gz").write_bytes(gzip.compress(header + labels.tobytes()))
    with pytest.raises(ValueError, match=r"train-labels-idx1-ubyte.gz: expected IDX type 0x08 \(unsigned byte\) "
                                         r"labels, found dtype int8"):
        MNISTDataModule(str(tmp_path), num_workers=0, val_size=1).setup()
    make_mnist(tmp_path / "b", n_train=6, n_test=4)
    truncate(tmp_path / "b" / "t10k-images-idx3-ubyte.gz", 0.5)
    with pytest.raises(ValueError, match=r"t10k-images-idx3-ubyte.gz: expected a complete gzip archive"):
        MNISTDataModule(str(tmp_path / "b"), num_workers=0, val_size=1).setup()


# ---- image datasets decoded on access ---------------------------------------------------------------------------
def test_rafdb_truncated_face_in_a_worker_and_global_val_rounding(tmp_path: Path) -> None:
    from datamodules.fer import RAFDBDataModule

    make_rafdb(tmp_path, n_train=14, n_test=7)  # 7 classes x 2 training images
    dm = RAFDBDataModule(str(tmp_path), num_workers=0, val_size=3, seed=0)
    dm.setup()
    val = [int(dm.datasets["val"].dataset.labels[i]) for i in dm.datasets["val"].indices]
    # per-class rounding gave round(2 * 3 / 14) = 0 images per class; globally rounded there are exactly 3
    assert len(val) == 3 and len(set(val)) == 3 and len(dm.datasets["train"]) == 11
    assert not set(dm.datasets["val"].indices) & set(dm.datasets["train"].indices)
    with pytest.raises(ValueError, match=r"val_size=14 must be in \[0, 14\)"):
        RAFDBDataModule(str(tmp_path), num_workers=0, val_size=14).setup()
    truncate(tmp_path / "basic" / "Image" / "aligned" / "test_00002_aligned.jpg")
    dm = RAFDBDataModule(str(tmp_path), num_workers=1, batch_size=7)
    with pytest.raises(ValueError, match=r"(?s)DataLoader worker.*test_00002_aligned.jpg: expected a complete, "
                                         r"decodable image"):
        next(iter(dm.test_dataloader()))


def test_tiny_imagenet_and_imagenet_truncated_jpeg(tmp_path: Path) -> None:
    from datamodules.imagenet import ImageNetDataModule
    from datamodules.tiny_imagenet import TinyImageNetDataModule

    root = make_tiny(tmp_path / "tiny")
    truncate(root / "val" / "images" / "val_3.JPEG")
    dm = TinyImageNetDataModule(str(root), num_workers=0, val_size=2)
    dm.setup()
    with pytest.raises(ValueError, match=r"val_3.JPEG: expected a complete, decodable image"):
        [dm.datasets["test"][i] for i in range(len(dm.datasets["test"]))]
    folder = tmp_path / "imagenet" / "train" / "n01440764"
    folder.mkdir(parents=True)
    for i in range(2):
        Image.new("RGB", (40, 40), (i * 50, 0, 0)).save(folder / f"x{i}.JPEG")
    (tmp_path / "imagenet" / "val").mkdir()
    os.symlink(folder, tmp_path / "imagenet" / "val" / "n01440764")
    truncate(folder / "x1.JPEG")
    inet = ImageNetDataModule(str(tmp_path / "imagenet"), num_workers=0, image_size=32, resize_size=36)
    inet.setup()
    assert inet.datasets["val"][0][0].shape == (3, 32, 32)
    with pytest.raises(ValueError, match=r"x1.JPEG: expected a complete, decodable image"):
        inet.datasets["val"][1]


def test_mesh_and_puzzle_images(tmp_path: Path) -> None:
    from datamodules.mesh_common import read_rgb
    from datamodules.puzzles import FolderPuzzleDataModule

    path = tmp_path / "render.png"
    Image.fromarray(np.random.default_rng(0).integers(0, 256, (30, 30, 4), dtype=np.uint8), "RGBA").save(path)
    assert read_rgb(path, background=1.0).shape == (3, 30, 30)
    truncate(path)
    with pytest.raises(ValueError, match=r"render.png: expected a complete, decodable image"):
        read_rgb(path)
    root = make_met_folder(tmp_path / "MET")
    truncate(root / "dataset_test" / "wide.jpg")
    dm = FolderPuzzleDataModule(data_dir=str(root), grid=2, frag=8, gap=1, batch_size=3)
    with pytest.raises(ValueError, match=r"wide.jpg: expected a complete, decodable image"):
        dm.setup()
        list(dm.test_dataloader())


# ---- pose datasets: .mat annotations and frames ------------------------------------------------------------------
def test_pose_annotations_and_frames(tmp_path: Path) -> None:
    from datamodules.human36m import Human36MDataModule
    from datamodules.mpi_inf_3dhp import MPIINF3DHPDataModule
    from datamodules.mpii import MPIIDataset

    h36m, _, _ = write_deephar(tmp_path / "h36m", subjects=(1,), n_frames=2)
    dm = Human36MDataModule(str(h36m), train_subjects=[1], test_subjects=[1], train_stride=1, val_stride=1,
                            image_size=16, num_workers=0)
    dm.setup()
    truncate(h36m / "images" / "a02_s01_e01_c01" / "00001.jpg")
    with pytest.raises(ValueError, match=r"00001.jpg: expected a complete, decodable image"):
        dm.train_set[0]
    truncate(h36m / "annotations.mat")
    with pytest.raises(ValueError, match=r"annotations.mat: expected a complete MATLAB"):
        Human36MDataModule(str(h36m), train_subjects=[1], test_subjects=[1], num_workers=0).setup()

    mpii = write_mpii(tmp_path / "mpii", n_images=2)
    truncate(mpii / "images" / "img1.jpg")
    with pytest.raises(ValueError, match=r"img1.jpg: expected a complete, decodable image"):
        MPIIDataset(str(mpii), "train", image_size=16)[1]
    truncate(mpii / "annotations.mat")
    with pytest.raises(ValueError, match=r"annotations.mat: expected a complete MATLAB"):
        MPIIDataset(str(mpii))

    hp, _ = write_3dhp(tmp_path / "3dhp", n_frames=2, n_cams=1, test_frames=2)
    truncate(hp / "S1" / "Seq1" / "annot.mat")
    dm3 = MPIINF3DHPDataModule(str(hp), train_subjects=[1], cameras=[0], test_sequences=[1], num_workers=0)
    with pytest.raises(ValueError, match=r"Seq1/annot.mat: expected a complete MATLAB"):
        dm3.setup()


def test_h36m_npz_with_crafted_pickle_does_not_run_code(tmp_path: Path) -> None:
    from datamodules.human36m import Human36MDataModule

    marker = tmp_path / "marker"
    np.savez(tmp_path / "data_3d_h36m.npz", positions_3d=np.array(_Payload(marker), dtype=object))
    (tmp_path / "cameras.json").write_text("{}")
    dm = Human36MDataModule(str(tmp_path), format="npz", train_subjects=[1], test_subjects=[11], num_workers=0)
    with pytest.raises(ValueError, match=r"data_3d_h36m.npz\[positions_3d\]: refused to load global"):
        dm.setup()
    assert not marker.exists()


# ---- meshes: Mesh R-CNN's torch.save files ------------------------------------------------------------------------
def test_meshrcnn_tensor_files_truncated_or_out_of_range(tmp_path: Path) -> None:
    from datamodules.shapenet import ShapeNetR2N2DataModule
    from tests.datamodules.test_shapenet import _write_meshrcnn

    def test_split():
        dm = ShapeNetR2N2DataModule(str(tmp_path), "meshrcnn", synsets=None, splits_json="splits.json",
                                    num_points=50, batch_size=2, return_mesh=True)
        dm.setup()
        return dm.datasets["test"]

    _write_meshrcnn(tmp_path)
    sid, mid, _ = test_split().items[0]
    d = tmp_path / sid / mid
    mesh = torch.load(d / "mesh.pt", weights_only=True)
    bad = mesh["faces"].clone()
    bad[3, 1] = len(mesh["verts"])  # one past the last vertex
    torch.save({"verts": mesh["verts"], "faces": bad}, d / "mesh.pt")
    with pytest.raises(ValueError, match=rf"mesh.pt: face 3 is .*expected vertex indices 0..{len(mesh['verts']) - 1}"):
        test_split()[0]
    torch.save(mesh, d / "mesh.pt")
    test_split()[0]  # restored: reads again
    samples = (d / "samples.pt").read_bytes()
    truncate(d / "samples.pt", 0.5)
    with pytest.raises(ValueError, match=r"samples.pt: expected a complete torch.save file of tensors"):
        test_split()[0]
    torch.save({"points_sampled": torch.zeros(5, 2), "normals_sampled": torch.zeros(5, 3)}, d / "samples.pt")
    with pytest.raises(ValueError, match=r"samples.pt: 'points_sampled' must have shape Nx3, found \(5, 2\)"):
        test_split()[0]
    (d / "samples.pt").write_bytes(samples)
    truncate(d / "metadata.pt", 0.5)
    with pytest.raises(ValueError, match=r"metadata.pt: expected a complete torch.save file"):
        test_split()[0]


def test_pix3d_records_with_bad_geometry_name_the_record(tmp_path: Path) -> None:
    import json

    from datamodules.pix3d import read_pix3d_json

    good = {"img": "img/chair/0.png", "mask": "mask/chair/0.png", "category": "chair", "model": "model/chair/a.obj",
            "rot_mat": np.eye(3).tolist(), "trans_mat": [0, 0, 3], "focal_length": 35.0, "img_size": [160, 120],
            "bbox": [10, 10, 60, 50], "truncated": False, "occluded": False, "slightly_occluded": False}
    path = tmp_path / "pix3d.json"
    path.write_text(json.dumps([good]))
    assert read_pix3d_json(path)[0]["box"] == (10.0, 10.0, 60.0, 50.0)
    cases = [({"bbox": [60, 10, 10, 50]}, r"record 1: expected a non-empty box x0 < x1, y0 < y1"),
             ({"rot_mat": [[1, 0], [0, 1]]}, r"record 1: expected rot_mat 3x3 and trans_mat of 3 values"),
             ({"focal_length": 0.0}, r"record 1: expected a positive focal length")]
    for change, message in cases:
        path.write_text(json.dumps([good, {**good, **change}]))
        with pytest.raises(ValueError, match=rf"pix3d.json: {message}"):
            read_pix3d_json(path)
