"""Tiny copies of every dataset a config under ``configs/`` reads, in the dataset's real on-disk format.

The writers are the ones the datamodule tests use (``tests/datamodules/test_*.py``, loaded here by file path so
their module names never clash with the ``datamodules`` package); ``build(class_path, root)`` returns the
``data.init_args`` paths (``data_dir``, ``mpii_dir``) that point a config's datamodule at its copy.
"""
from __future__ import annotations

import importlib.util
import json
import sys
from functools import lru_cache
from pathlib import Path
from types import ModuleType

import numpy as np
import torch
from PIL import Image

TESTS = Path(__file__).resolve().parent
VAL_OFFSET = 320  # Human3.6M validation frames start half a val_stride (640) into each training sequence


@lru_cache(maxsize=None)
def writers(name: str) -> ModuleType:
    """``tests/datamodules/test_<name>.py`` as a module (its tiny-format writers), imported once."""
    path = TESTS / "datamodules" / f"test_{name}.py"
    spec = importlib.util.spec_from_file_location(f"_format_writers_{name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def make_meta_album(root: Path, code: str = "BCT", classes: int = 20, per_class: int = 40, size: int = 24) -> Path:
    """A Meta-Album Micro dataset (info.json, labels.csv, images/) with the Micro sets' 20 classes x 40 images."""
    from datamodules.meta_album import micro_dataset_dir

    folder = micro_dataset_dir(root, code)
    (folder / "images").mkdir(parents=True)
    rng = np.random.default_rng(0)
    lines = ["FILE_NAME,CATEGORY,SUPER_CATEGORY"]
    for i in range(per_class):
        for c in range(classes):
            name = f"c{c}_{i}.jpg"
            Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(folder / "images" / name)
            lines.append(f"{name},class{c},all")
    (folder / "labels.csv").write_text("\n".join(lines) + "\n")
    (folder / "info.json").write_text(json.dumps({
        "dataset_name": code, "image_column_name": "FILE_NAME", "category_column_name": "CATEGORY",
        "has_super_categories": True, "super_category_column_name": "SUPER_CATEGORY", "total_categories": classes}))
    return root


def make_imagenet(root: Path, classes: int = 2, per_class: int = 16) -> Path:
    """ILSVRC2012 in the ImageFolder layout (train/<wnid>/*.JPEG, val/<wnid>/*.JPEG), real-size-ish JPEGs; enough
    that the NASiam searches (a quarter of the images, halved) still fill two batches of two."""
    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        for k in range(classes):
            folder = root / split / f"n0{1440764 + k}"
            folder.mkdir(parents=True)
            for i in range(per_class):
                arr = rng.integers(0, 256, (240 + 8 * i, 300, 3), dtype=np.uint8)
                Image.fromarray(arr).save(folder / f"img_{i}.JPEG")
    return root


def make_svhn(root: Path, n_train: int) -> Path:
    root.mkdir(parents=True)
    w = writers("svhn")
    w._write(root / "train_32x32.mat", n_train, 0)
    w._write(root / "test_32x32.mat", 6, 1)
    return root


def make_3dhp(root: Path, subjects: int = 8, cameras: int = 9, sequences: int = 6, frames: int = 251) -> Path:
    """MPI-INF-3DHP with every subject S1..S8 (Seq1/Seq2, 9 cameras, ``frames`` frames: validation starts half a
    val_stride of 500 in) and every test sequence TS1..TS6. One image a camera is written, the other frames are
    hard links to it."""
    import os
    import shutil

    from scipy.io import savemat

    w = writers("mpi_inf_3dhp")
    w.write_3dhp(root, n_frames=2, n_cams=cameras, test_frames=3)
    for q in (1, 2):
        seq = root / "S1" / f"Seq{q}"
        annot3, annot2 = np.empty((cameras, 1), dtype=object), np.empty((cameras, 1), dtype=object)
        for c in range(cameras):
            poses = np.stack([w._pose(k, 28) for k in range(frames)])
            annot3[c, 0], annot2[c, 0] = poses.reshape(frames, 84), np.stack([w._project(p) for p in poses]).reshape(frames, 56)
            video = seq / "imageFrames" / f"video_{c}"
            for k in range(2, frames):
                os.link(video / f"frame_{1 + k % 2:06d}.jpg", video / f"frame_{k + 1:06d}.jpg")
        savemat(seq / "annot.mat", {"annot2": annot2, "annot3": annot3, "univ_annot3": annot3,
                                    "cameras": np.arange(cameras), "frames": np.arange(frames)})
    for k in range(2, subjects + 1):
        shutil.copytree(root / "S1", root / f"S{k}", copy_function=os.link)
    for k in range(2, sequences + 1):
        test = root / "mpi_inf_3dhp_test_set"
        shutil.copytree(test / "TS1", test / f"TS{k}", copy_function=os.link)
    return root


def make_tiny_imagenet(root: Path, per_class: int) -> Path:
    """The Tiny ImageNet release layout with ``per_class`` training images a class (above val_size): four
    written images a class, the rest hard links to them (the loader reads files, not their contents' identity)."""
    import os

    writers("tiny_imagenet")._make(root, per_class=4)
    for wnid in writers("tiny_imagenet").WNIDS:
        images, boxes = root / "train" / wnid / "images", root / "train" / wnid / f"{wnid}_boxes.txt"
        extra = []
        for k in range(4, per_class):
            os.link(images / f"{wnid}_{k % 4}.JPEG", images / f"{wnid}_{k}.JPEG")
            extra.append(f"{wnid}_{k}.JPEG\t0\t0\t63\t63\n")
        boxes.write_text(boxes.read_text() + "".join(extra))
    return root


def fake_timm_resnet152(cache: Path, tag: str = "resnet152.a1h_in1k") -> Path:
    """A seeded random ResNet152 state dict where timm keeps ``tag`` in the HF cache (``$HF_HUB_CACHE``)."""
    from zoo.backbone_reduction.nets import BottleneckResNet

    snap = cache / f"models--timm--{tag}" / "snapshots" / "0000000"
    snap.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    net = BottleneckResNet(layers=(3, 8, 36, 3), num_classes=1000)
    torch.save(net.state_dict(), snap / "pytorch_model.bin")
    return cache


def fake_torchvision_weights(torch_home: Path, arch: str = "resnet50") -> Path:
    """A seeded random ``arch`` state dict where torchvision caches its DEFAULT ImageNet weights (``$TORCH_HOME``)."""
    import os

    import torchvision

    url = torchvision.models.get_model_weights(arch).DEFAULT.url
    folder = torch_home / "hub" / "checkpoints"
    folder.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(0)
    torch.save(getattr(torchvision.models, arch)().state_dict(), folder / os.path.basename(url))
    return torch_home


def build(class_path: str, root: Path, val_size: int = 0) -> dict[str, str]:
    """Write the tiny copy that ``class_path`` reads under ``root``, with more training images than a config's
    ``val_size`` carves out; return its ``data.init_args`` path overrides."""
    n = val_size + 4
    name = class_path.rsplit(".", 1)[-1]
    root.mkdir(parents=True, exist_ok=True)
    if name == "CIFAR10DataModule":
        return {"data_dir": str(writers("cifar").make_cifar10(root, n_per_batch=-(-n // 5), n_test=4))}
    if name == "CIFAR100DataModule":
        return {"data_dir": str(writers("cifar").make_cifar100(root, n_train=n, n_test=4))}
    if name in ("MNISTDataModule", "FashionMNISTDataModule"):
        writers("mnist").make_mnist(root / "idx", n_train=n, n_test=4)
        return {"data_dir": str(root / "idx")}
    if name == "FER2013DataModule":
        writers("fer").write_fer_csv(root / "fer2013.csv", n_per_usage=4)
        return {"data_dir": str(root)}
    if name == "RAFDBDataModule":
        writers("fer").make_rafdb(root, n_train=6, n_test=4)
        return {"data_dir": str(root / "basic")}
    if name == "ExpWDataModule":
        writers("fer").make_expw(root, n_images=40)  # 10 % of 40 faces test
        return {"data_dir": str(root)}
    if name == "ImageNetDataModule":
        return {"data_dir": str(make_imagenet(root))}
    if name == "TinyImageNetDataModule":
        return {"data_dir": str(make_tiny_imagenet(root / "tiny-imagenet-200", max(4, -(-n // 3))))}
    if name == "SVHNDataModule":
        return {"data_dir": str(make_svhn(root / "svhn", n))}
    if name == "MetaAlbumDataModule":
        return {"data_dir": str(make_meta_album(root))}
    if name == "FolderPuzzleDataModule":
        return {"data_dir": str(writers("puzzles").make_met_folder(root / "MET"))}
    if name == "Human36MDataModule":
        writers("human36m").write_deephar(root / "h36m", subjects=(1, 5, 6, 7, 8, 9, 11), n_frames=VAL_OFFSET + 1)
        return {"data_dir": str(root / "h36m"), "mpii_dir": str(writers("mpii").write_mpii(root / "mpii", n_images=4))}
    if name == "MPIINF3DHPDataModule":
        make_3dhp(root / "3dhp")
        return {"data_dir": str(root / "3dhp"), "mpii_dir": str(writers("mpii").write_mpii(root / "mpii", n_images=4))}
    if name == "Pix3DDataModule":
        writers("pix3d")._write_pix3d(root / "pix3d", n_images=6)
        return {"data_dir": str(root / "pix3d")}
    if name == "ShapeNetR2N2DataModule":
        writers("shapenet")._write_r2n2(root / "shapenet")
        return {"data_dir": str(root / "shapenet")}
    return {}  # embedded datasets (digits, procedural shapes, stick figures, skimage) need no files
