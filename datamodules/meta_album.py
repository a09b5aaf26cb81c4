"""Meta-Album (meta-album.github.io) datasets in their on-disk layout: ``info.json``, ``labels.csv``, ``images/``.

RRR-Net's Micro protocol: 20 train / 20 test images per class, chosen image for image as the authors' code does
(one ``default_rng(88)`` shuffle of the file list, bucket by class, then ``default_rng(66)`` per split;
``split_protocol="per_class"`` keeps the zoo's earlier per-class shuffle), 128x128, augmentation of the authors' family. No download: get the datasets from meta-album.github.io.
"""
from __future__ import annotations

import csv
import json
from pathlib import Path

from datamodules.image_folder import InMemoryImageDataModule

MICRO_SETS: dict[str, list[str]] = {
    "Set0": ["BCT", "BRD", "CRS", "FLW", "MD_MIX", "PLK", "PLT_VIL", "RESISC", "SPT", "TEX"],
    "Set1": ["ACT_40", "APL", "DOG", "INS_2", "MD_5_BIS", "MED_LF", "PLT_NET", "PNU", "RSICB", "TEX_DTD"],
    "Set2": ["ACT_410", "AWA", "BTS", "FNG", "INS", "MD_6", "PLT_DOC", "PRT", "RSD", "TEX_ALOT"],
    "Set3": ["ARC", "ASL_ALP", "BFY", "BRK", "MD_5_T", "PLT_LVS", "POT_TUB", "SNK", "UCMLU", "VEG_FRU"],
}
MICRO_CODES = [c for codes in MICRO_SETS.values() for c in codes]
LAYOUT = "<dataset>/info.json, <dataset>/labels.csv (FILE_NAME,CATEGORY,... columns), <dataset>/images/<FILE_NAME>"


def micro_dataset_dir(root: str | Path, code: str) -> Path:
    """``<root>/Set{k}_Micro/<code>_Micro`` for one of the 40 Micro codes."""
    for set_name, codes in MICRO_SETS.items():
        if code in codes:
            return Path(root).expanduser() / f"{set_name}_Micro" / f"{code}_Micro"
    raise ValueError(f"unknown Meta-Album Micro code {code!r}; known: {MICRO_CODES}")


def read_meta_album(folder: str | Path) -> tuple[list[Path], list[int], list[str]]:
    """Image paths, labels (0..C-1 in first-seen order, as the authors' reader) and class names of one dataset."""
    folder = Path(folder).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"Meta-Album dataset folder {folder} does not exist; expected {LAYOUT}. "
                                "Download the datasets from https://meta-album.github.io (nothing is downloaded here).")
    info_path, csv_path, img_dir = folder / "info.json", folder / "labels.csv", folder / "images"
    for p in (info_path, csv_path):
        if not p.is_file():
            raise FileNotFoundError(f"missing {p}; a Meta-Album dataset folder holds {LAYOUT}")
    if not img_dir.is_dir():
        raise FileNotFoundError(f"missing image folder {img_dir}; expected {LAYOUT}")
    try:
        info = json.loads(info_path.read_text())
    except json.JSONDecodeError as err:
        raise ValueError(f"{info_path} is not valid JSON: {err}") from err
    img_col = info.get("image_column_name", "FILE_NAME")
    cat_col = info.get("category_column_name", "CATEGORY")
    with open(csv_path, newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if header is None:
            raise ValueError(f"{csv_path} is empty; expected a header with columns {img_col!r} and {cat_col!r}")
        header = [h.strip() for h in header]
        missing = [c for c in (img_col, cat_col) if c not in header]
        if missing:
            raise ValueError(f"{csv_path}: header {header} lacks column(s) {missing} named in {info_path.name}")
        i_img, i_cat = header.index(img_col), header.index(cat_col)
        paths, raw = [], []
        for line, row in enumerate(reader, start=2):
            if not row or all(not c.strip() for c in row):
                continue
            if len(row) != len(header):
                raise ValueError(f"{csv_path}, line {line}: {len(row)} fields, the header has {len(header)}")
            name, cat = row[i_img].strip(), row[i_cat].strip()
            if not name or not cat:
                raise ValueError(f"{csv_path}, line {line}: empty {img_col if not name else cat_col}")
            if not (img_dir / name).is_file():
                raise FileNotFoundError(f"{csv_path}, line {line}: image {img_dir / name} does not exist")
            paths.append(img_dir / name)
            raw.append(cat)
    if not paths:
        raise ValueError(f"{csv_path} has a header but no rows")
    classes = list(dict.fromkeys(raw))
    lookup = {c: i for i, c in enumerate(classes)}
    return paths, [lookup[c] for c in raw], classes


class MetaAlbumDataModule(InMemoryImageDataModule):
    """One Meta-Album dataset: ``data_dir`` is its folder, or the root holding ``Set{k}_Micro/`` when ``dataset``
    names a Micro code (e.g. ``"BCT"``). Defaults are the RRR-Net Micro split (20/0/20 per class, the authors' draw);
    ``branch_loaders=B`` gives each of B branches its own shuffled, augmented pass (the authors' training loop)."""

    def __init__(self, data_dir: str, dataset: str | None = None, image_size: int = 128, batch_size: int = 32,
                 train_per_class: int = 20, val_per_class: int = 0, test_per_class: int | None = 20,
                 split_seed: int = 88, shuffle_seed: int = 66, augment: bool = True, num_workers: int = 0,
                 download: bool = False, branch_loaders: int = 1, split_protocol: str = "authors") -> None:
        super().__init__(data_dir, image_size, batch_size, train_per_class, val_per_class, test_per_class,
                         split_seed, shuffle_seed, augment, num_workers, download, branch_loaders, split_protocol)
        self.folder = micro_dataset_dir(data_dir, dataset) if dataset else Path(data_dir).expanduser()

    def read_splits(self):
        paths, labels, self.class_names = read_meta_album(self.folder)
        return self._split_flat(paths, labels)
