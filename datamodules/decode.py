"""One place that decodes dataset files (images, MATLAB ``.mat``, ``.gz``, pickled ``.npz`` members) and checks
arrays, so every datamodule raises the same clear errors: ``FileNotFoundError`` or ``ValueError`` naming the file,
what was expected and what was found. The errors are plain built-in types, so DataLoader workers re-raise them
with the message intact.
"""
from __future__ import annotations

import gzip
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

# torchvision.datasets.folder.IMG_EXTENSIONS, the list ImageFolder reads
IMG_EXTENSIONS = (".jpg", ".jpeg", ".png", ".ppm", ".bmp", ".pgm", ".tif", ".tiff", ".webp")


def _missing(path: Path, what: str) -> FileNotFoundError:
    return FileNotFoundError(f"{what} {path} does not exist")


# ---- images ---------------------------------------------------------------------------------------------------
def open_image(path: str | Path, mode: str | None = "RGB", what: str = "image file"):
    """A fully decoded PIL image (converted to ``mode`` unless ``None``); a truncated or undecodable file raises
    ``ValueError`` naming it, a missing one ``FileNotFoundError``."""
    from PIL import Image

    path = Path(path)
    if not path.is_file():
        raise _missing(path, what)
    try:
        with Image.open(path) as img:
            img.load()  # decode now: PIL opens lazily, and a truncated file only fails here
            return img.convert(mode) if mode is not None and img.mode != mode else img.copy()
    except Exception as err:  # PIL raises OSError, SyntaxError, ValueError, struct.error, ... by format
        raise ValueError(f"{path}: expected a complete, decodable image, but it is truncated or not an image "
                         f"({type(err).__name__}: {err})") from None


def read_image_array(path: str | Path, mode: str = "RGB", size: int | tuple[int, int] | None = None,
                     what: str = "image file") -> np.ndarray:
    """An image as a uint8 ``(H, W, C)`` array (``(H, W)`` for mode ``L``), optionally resized bilinearly."""
    from PIL import Image

    img = open_image(path, mode, what)
    if size is not None:
        wh = (size, size) if isinstance(size, int) else (size[1], size[0])
        if img.size != wh:
            img = img.resize(wh, Image.BILINEAR)
    return np.asarray(img, dtype=np.uint8).copy()


def load_image(path: str | Path, size: int | None = None, mode: str = "RGB") -> torch.Tensor:
    """An image as a ``(C, H, W)`` uint8 tensor (resized to ``size x size`` when given)."""
    arr = read_image_array(path, mode, size)
    x = torch.from_numpy(arr)
    return (x.unsqueeze(0) if x.ndim == 2 else x.permute(2, 0, 1)).contiguous()


# ---- compressed and MATLAB files --------------------------------------------------------------------------------
def read_bytes(path: str | Path, what: str = "file") -> bytes:
    """The bytes of ``path``, gunzipped when it ends in ``.gz``; a truncated or non-gzip ``.gz`` names the file."""
    path = Path(path)
    if not path.is_file():
        raise _missing(path, what)
    raw = path.read_bytes()
    if path.suffix != ".gz":
        return raw
    try:
        return gzip.decompress(raw)
    except (gzip.BadGzipFile, EOFError, zlib.error, OSError) as err:
        raise ValueError(f"{path}: expected a complete gzip archive, but it is truncated or not gzip "
                         f"({type(err).__name__}: {err})") from None


def read_mat(path: str | Path, what: str = "MATLAB file", **loadmat_kwargs: Any) -> dict:
    """A ``.mat`` file: MATLAB v5 via scipy (``loadmat_kwargs`` passed on); v7.3 (HDF5) via h5py, datasets only,
    dims reversed back to MATLAB order. A truncated or undecodable file raises ``ValueError`` naming it."""
    from scipy.io import loadmat

    path = Path(path)
    if not path.is_file():
        raise _missing(path, what)
    try:
        return loadmat(str(path), **loadmat_kwargs)
    except NotImplementedError:  # scipy: "Please use HDF reader for matlab v7.3 files"
        pass
    except Exception as err:  # scipy raises ValueError, TypeError, OSError, MatReadError, zlib.error ...
        raise ValueError(f"{path}: expected a complete MATLAB v5 or v7.3 .mat file, but it is truncated or "
                         f"undecodable ({type(err).__name__}: {err})") from None
    try:
        import h5py
    except ImportError as err:
        raise ImportError(f"{path} is a MATLAB v7.3 file: pip install h5py to read it") from err
    try:
        with h5py.File(path, "r") as fh:
            return {k: np.asarray(fh[k]).T for k in fh.keys() if isinstance(fh[k], h5py.Dataset)}
    except Exception as err:
        raise ValueError(f"{path}: expected a complete MATLAB v7.3 (HDF5) file, but it is truncated or "
                         f"undecodable ({type(err).__name__}: {err})") from None


def read_npz_object(path: str | Path, key: str, what: str = "npz file") -> Any:
    """Member ``key`` of an ``.npz``; an object array (a pickled dict, as VideoPose3D's ``data_3d_h36m.npz``) is
    unpickled by the zoo's restricted unpickler, so a crafted file cannot run code. 0-d object arrays are unwrapped."""
    import zipfile

    from numpy.lib import format as npformat

    from zoo.core.safe_pickle import safe_load

    path = Path(path)
    if not path.is_file():
        raise _missing(path, what)
    try:
        with zipfile.ZipFile(path) as zf:
            member = key if key.endswith(".npy") else key + ".npy"
            if member not in zf.namelist():
                raise ValueError(f"{path}: no array {key!r}; found {[n[:-4] for n in zf.namelist()]}")
            with zf.open(member) as fh:
                version = npformat.read_magic(fh)
                if version == (1, 0):
                    shape, fortran, dtype = npformat.read_array_header_1_0(fh)
                elif version == (2, 0):
                    shape, fortran, dtype = npformat.read_array_header_2_0(fh)
                else:
                    shape, fortran, dtype = npformat._read_array_header(fh, version)
                if dtype.hasobject:
                    arr = safe_load(fh, encoding="latin1", source=f"{path}[{key}]")
                else:
                    arr = np.frombuffer(fh.read(), dtype=dtype, count=int(np.prod(shape)))
                    arr = arr.reshape(shape, order="F" if fortran else "C").copy()
    except (zipfile.BadZipFile, OSError, EOFError) as err:
        raise ValueError(f"{path}: expected a complete .npz (zip) archive, but it is truncated or not a zip "
                         f"({type(err).__name__}: {err})") from None
    if isinstance(arr, np.ndarray) and arr.dtype.hasobject and arr.shape == ():
        return arr.item()
    return arr


# ---- array checks -----------------------------------------------------------------------------------------------
def as_uint8(arr: Any, path: str | Path, what: str = "pixel data") -> np.ndarray:
    """``arr`` as uint8 if it holds integers in 0..255; a float or out-of-range array raises ``ValueError``.

    A float array is refused even when it could be rounded: [0, 1] floats cast to uint8 would be all zeros.
    """
    arr = np.asarray(arr)
    if arr.dtype == np.uint8:
        return arr
    if arr.dtype.kind not in "iu" or arr.dtype == np.bool_:
        raise ValueError(f"{path}: {what} must be uint8 (integers 0..255), found dtype {arr.dtype}")
    if arr.size and (arr.min() < 0 or arr.max() > 255):
        flat = np.flatnonzero((arr.reshape(-1) < 0) | (arr.reshape(-1) > 255))[0]
        raise ValueError(f"{path}: {what} must be integers in 0..255, found {arr.reshape(-1)[flat]} "
                         f"(dtype {arr.dtype}) at flat index {flat}")
    return arr.astype(np.uint8)


def as_labels(values: Any, path: str | Path, low: int, high: int, what: str = "label", index: str = "row") -> np.ndarray:
    """Integer labels checked to lie in ``low..high``; the first bad one is reported with its ``index`` number."""
    arr = np.asarray(values)
    if arr.ndim != 1:
        raise ValueError(f"{path}: {what}s must be a 1-D sequence, found shape {arr.shape}")
    if arr.size and (arr.dtype.kind not in "iu" or arr.dtype == np.bool_):
        if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
            arr = arr.astype(np.int64)
        else:
            raise ValueError(f"{path}: {what}s must be integers {low}..{high}, found dtype {arr.dtype}")
    arr = arr.astype(np.int64)
    bad = np.flatnonzero((arr < low) | (arr > high))
    if bad.size:
        raise ValueError(f"{path}: {index} {bad[0]} has {what} {arr[bad[0]]}, expected {low}..{high}")
    return arr


# ---- tensor files -----------------------------------------------------------------------------------------------
def read_tensors(path: str | Path, shapes: dict[str, tuple], what: str = "tensor file") -> dict:
    """A ``torch.save``d dict read with ``weights_only=True``; each key of ``shapes`` must be present, a tensor, and
    match its shape pattern (an int fixes a dim, ``None`` leaves it free; ``()`` accepts a non-tensor such as a list
    of names). Errors name the file and the key."""
    path = Path(path)
    if not path.is_file():
        raise _missing(path, what)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch: RuntimeError (zip reader), UnpicklingError, EOFError ...
        raise ValueError(f"{path}: expected a complete torch.save file of tensors, but it is truncated or not "
                         f"loadable with weights_only=True ({type(err).__name__}: {err})") from None
    if not isinstance(data, dict):
        raise ValueError(f"{path}: expected a dict with keys {sorted(shapes)}, found {type(data).__name__}")
    missing = sorted(set(shapes) - set(data))
    if missing:
        raise ValueError(f"{path}: missing keys {missing} (expected {sorted(shapes)}, found {sorted(map(str, data))})")
    for key, pattern in shapes.items():
        value = data[key]
        if not isinstance(value, torch.Tensor):
            if pattern == ():  # not a tensor-shaped entry (a list of names, say): presence is enough
                continue
            raise ValueError(f"{path}: {key!r} must be a tensor, found {type(value).__name__}")
        if len(pattern) != value.ndim or any(p is not None and p != s for p, s in zip(pattern, value.shape)):
            want = "x".join("N" if p is None else str(p) for p in pattern)
            raise ValueError(f"{path}: {key!r} must have shape {want}, found {tuple(value.shape)}")
        if value.is_floating_point() and not bool(torch.isfinite(value).all()):
            raise ValueError(f"{path}: {key!r} holds NaN or infinite values")
    return data


def check_faces(faces: torch.Tensor, n_verts: int, path: str | Path) -> torch.Tensor:
    """Integer triangle indices within ``0..n_verts-1`` (a bad index would read another model's memory as garbage)."""
    if faces.is_floating_point() or faces.dtype == torch.bool:
        raise ValueError(f"{path}: faces must be integer vertex indices, found dtype {faces.dtype}")
    faces = faces.long()
    if faces.numel() and (int(faces.min()) < 0 or int(faces.max()) >= n_verts):
        row = int(((faces < 0) | (faces >= n_verts)).any(1).nonzero()[0])
        raise ValueError(f"{path}: face {row} is {faces[row].tolist()}, expected vertex indices 0..{n_verts - 1}")
    return faces
