"""ImageNet options for self-supervised runs: un-augmented fixed-size training images and the first-fraction subset."""
import pytest
import torch


def _jpeg_tree(root, classes=("n01440764", "n01443537"), per_class=4):
    from PIL import Image

    for split in ("train", "val"):
        for k, wnid in enumerate(classes):
            folder = root / split / wnid
            folder.mkdir(parents=True)
            for i in range(per_class):
                Image.new("RGB", (50 + 3 * i, 40), color=(60 * k, 20 * i, 100)).save(folder / f"{wnid}_{i}.JPEG")


def test_plain_train_images_are_deterministic_fixed_size_and_subset_keeps_the_first_images(tmp_path):
    from datamodules.imagenet import ImageNetDataModule

    _jpeg_tree(tmp_path)
    dm = ImageNetDataModule(str(tmp_path), batch_size=4, num_workers=0, image_size=32, resize_size=36, plain_train=True)
    dm.setup()
    a, b = dm.datasets["train"][5][0], dm.datasets["train"][5][0]
    assert a.shape == (3, 36, 36) and torch.equal(a, b)  # no random crop, flip or jitter in the workers
    x, _ = next(iter(dm.train_dataloader()))
    assert x.shape == (4, 3, 36, 36)
    quarter = ImageNetDataModule(str(tmp_path), num_workers=0, subset_fraction=0.25)
    quarter.setup()
    assert len(quarter.datasets["train"]) == 2 and [quarter.datasets["train"][i][1] for i in range(2)] == [0, 0]
    default = ImageNetDataModule(str(tmp_path), num_workers=0, image_size=32, resize_size=36)
    default.setup()
    assert default.datasets["train"][0][0].shape == (3, 32, 32) and len(default.datasets["train"]) == 8
    with pytest.raises(ValueError, match="subset_fraction"):
        ImageNetDataModule(str(tmp_path), num_workers=0, subset_fraction=0.0).setup()
