"""Pretrained weights: cache, sha256-checked downloads and safe (``weights_only``) loading.

A zoo weights file is ``torch.save({"arch", "arch_kwargs", "state_dict", "metadata"})``: plain
tensors and containers only, so it loads with ``torch.load(weights_only=True)``.
"""
from __future__ import annotations

import hashlib
import os
import pickle
import re
import shutil
import urllib.error
import urllib.parse
import urllib.request
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

PACKAGE_DIR = Path(__file__).resolve().parent


class WeightsError(RuntimeError):
    """Base class of every problem with a weights file or its source."""


class HashMismatchError(WeightsError):
    """The bytes obtained do not have the sha256 the registry promises; they were not used."""


class CorruptCheckpointError(WeightsError):
    """The file is truncated or not a torch checkpoint."""


class UntrustedCheckpointError(WeightsError):
    """The file holds objects other than tensors and plain containers; it was not unpickled."""


def zoo_home() -> Path:
    """Cache directory: ``$ZOO_HOME`` or ``<torch.hub dir>/ibisc-zoo``."""
    env = os.environ.get("ZOO_HOME")
    return Path(env).expanduser() if env else Path(torch.hub.get_dir()) / "ibisc-zoo"


def sha256_file(path: str | os.PathLike) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _check_hash(path: Path, sha256: str | None, origin: str) -> None:
    if sha256 is None:
        return
    actual = sha256_file(path)
    if not actual.startswith(sha256.lower()):
        raise HashMismatchError(
            f"{origin}: sha256 is {actual}, expected {sha256}. The file was not loaded; "
            "it may be truncated, tampered with or a different release."
        )


def download(url: str, sha256: str, *, progress: bool = True, timeout: float = 30.0) -> Path:
    """Fetch ``url`` into ``zoo_home()/weights`` unless a copy with the right hash is there."""
    dest = zoo_home() / "weights" / Path(urllib.parse.urlparse(url).path).name
    if dest.exists():
        try:
            _check_hash(dest, sha256, str(dest))
            return dest
        except HashMismatchError:
            dest.unlink()  # stale or damaged cache entry: fetch again
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = dest.with_name(dest.name + ".part")
    try:
        with urllib.request.urlopen(url, timeout=timeout) as resp, open(part, "wb") as out:
            total = int(resp.headers.get("Content-Length") or 0)
            _copy_with_progress(resp, out, total, dest.name, progress)
    except (urllib.error.URLError, OSError, TimeoutError) as err:
        part.unlink(missing_ok=True)
        raise WeightsError(
            f"could not download {url}: {err}. Without network, download the file elsewhere and "
            f"put it at {dest} (or pass its local path to zoo.load)."
        ) from err
    try:
        _check_hash(part, sha256, url)
    except HashMismatchError:
        part.unlink(missing_ok=True)
        raise
    part.replace(dest)
    return dest


def _copy_with_progress(src, dst, total: int, label: str, progress: bool) -> None:
    if not progress:
        shutil.copyfileobj(src, dst)
        return
    from rich.progress import Progress

    with Progress(transient=True) as bar:
        task = bar.add_task(f"downloading {label}", total=total or None)
        for chunk in iter(lambda: src.read(1 << 16), b""):
            dst.write(chunk)
            bar.advance(task, len(chunk))


def safe_load(path: str | os.PathLike, *, sha256: str | None = None) -> Any:
    """``torch.load(weights_only=True)`` with clear errors for missing, corrupt or untrusted files."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no checkpoint at {path}")
    _check_hash(path, sha256, str(path))
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        if "weights_only" in str(err) or "Unsupported global" in str(err):
            raise UntrustedCheckpointError(
                f"{path} contains objects that are not tensors or plain containers, so it was not "
                "unpickled (weights_only=True). Re-save it as a state_dict; only load full pickles "
                f"from sources you trust. Details: {str(err).splitlines()[0]}"
            ) from err
        raise CorruptCheckpointError(f"{path} is not a valid torch checkpoint: {err}") from err
    except (RuntimeError, EOFError, zipfile.BadZipFile, ValueError, OSError) as err:
        raise CorruptCheckpointError(
            f"{path} is truncated or corrupt ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''}). "
            "Delete it and download or export it again."
        ) from err


def save_weights(net: nn.Module, path: str | os.PathLike, *, arch: str, arch_kwargs: dict | None = None,
                 metadata: dict | None = None) -> str:
    """Write ``net`` as a zoo weights file and return its sha256."""
    payload = {
        "arch": arch,
        "arch_kwargs": dict(arch_kwargs or {}),
        "state_dict": {k: v.detach().cpu().clone() for k, v in net.state_dict().items()},
        "metadata": dict(metadata or {}),
    }
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, path)
    return sha256_file(path)


_HASH_IN_NAME = re.compile(r"-([0-9a-f]{8,64})\.[A-Za-z0-9]+$")


def _source_path(source: str, sha256: str | None) -> Path:
    if re.match(r"^(https?|file)://", source):
        if sha256 is None:
            match = _HASH_IN_NAME.search(urllib.parse.urlparse(source).path)
            if not match:
                raise ValueError(
                    f"refusing to download {source} without a checksum: pass sha256=..., or name the "
                    "file '<name>-<first hex digits of its sha256>.pt' as torch.hub does"
                )
            sha256 = match.group(1)
        return download(source, sha256)
    return Path(source).expanduser()


def load_payload(source: str, *, sha256: str | None = None) -> tuple[Path, Any]:
    """Resolve ``source`` (path or URL) to a local file and load it safely."""
    path = _source_path(source, sha256)
    return path, safe_load(path, sha256=sha256)


def load_state(source: str, *, sha256: str | None = None) -> dict:
    """Load a zoo weights file from a path or URL, checking it is one."""
    _, payload = load_payload(source, sha256=sha256)
    check_weights_payload(payload, source)
    return payload


def check_weights_payload(payload: Any, source: str) -> None:
    """Raise unless ``payload`` is a zoo weights dict."""
    if not isinstance(payload, dict) or "state_dict" not in payload or "arch" not in payload:
        keys = sorted(payload)[:8] if isinstance(payload, dict) else type(payload).__name__
        raise CorruptCheckpointError(
            f"{source} is not a zoo weights file: expected keys 'arch', 'arch_kwargs', 'state_dict', "
            f"'metadata', found {keys}. Export a Lightning checkpoint with zoo.hub.export_checkpoint."
        )


_TRUSTED_PREFIXES = ("zoo.", "datamodules.", "callbacks.")


def load_lightning_checkpoint(path: str | os.PathLike, checkpoint: dict):
    """Rebuild the zoo LightningModule named by a checkpoint's ``_class_path`` (CLI) or ``zoo_class_path``."""
    import importlib

    class_path = checkpoint.get("hyper_parameters", {}).get("_class_path") or checkpoint.get("zoo_class_path")
    if not isinstance(class_path, str) or not class_path.startswith(_TRUSTED_PREFIXES):
        raise CorruptCheckpointError(
            f"{path} is a Lightning checkpoint without a zoo class path (found {class_path!r}); load it with "
            "YourModule.load_from_checkpoint(path, weights_only=True)"
        )
    module_name, _, cls_name = class_path.rpartition(".")
    cls = getattr(importlib.import_module(module_name), cls_name)
    return cls.load_from_checkpoint(path, map_location="cpu", weights_only=True)


def export_checkpoint(ckpt_path: str | os.PathLike, out_path: str | os.PathLike, *, arch: str,
                      prefix: str = "net.", metadata: dict | None = None, **arch_kwargs: Any) -> str:
    """Turn a Lightning checkpoint into a zoo weights file for ``arch``; returns its sha256."""
    from zoo.registry import get_entry

    ckpt = safe_load(ckpt_path)
    state = {k[len(prefix):]: v for k, v in ckpt["state_dict"].items() if k.startswith(prefix)}
    net = get_entry(arch).builder(**arch_kwargs)
    net.load_state_dict(state)
    return save_weights(net, out_path, arch=arch, arch_kwargs=arch_kwargs, metadata=metadata)
