"""Read an offline W&B run (``run-*.wandb``) back: its logged history rows, config and summary.

The file is wandb's transaction log (leveldb log framing, 32 KiB blocks) of records defined by
wandb's own protobuf schema (``wandb.proto.wandb_internal_pb2.Record``), which does the decoding.
"""
from __future__ import annotations

import json
import struct
import time
import zlib
from pathlib import Path
from typing import Any, Iterator

_BLOCK = 32768
_HEADER = 7
_FULL, _FIRST, _MIDDLE, _LAST = 1, 2, 3, 4


def iter_record_bytes(path: str | Path) -> Iterator[bytes]:
    """Yield each record's payload from a ``.wandb`` file, checking every chunk's CRC-32."""
    data = Path(path).read_bytes()
    if data[:4] != b":W&B":
        raise ValueError(f"{path} is not a W&B transaction log (no ':W&B' header)")
    pos, pending = _HEADER, b""
    while pos + _HEADER <= len(data):
        room = _BLOCK - pos % _BLOCK
        if room < _HEADER:  # block trailer padding
            pos += room
            continue
        crc, length, kind = struct.unpack("<IHB", data[pos:pos + _HEADER])
        if length == 0 and kind == 0:
            pos += room
            continue
        chunk = data[pos + _HEADER:pos + _HEADER + length]
        if len(chunk) < length:
            break  # run still being written or killed: ignore the torn tail
        if zlib.crc32(bytes([kind]) + chunk) & 0xFFFFFFFF != crc:
            raise ValueError(f"{path}: bad checksum at byte {pos}")
        pos += _HEADER + length
        if kind == _FULL:
            yield chunk
        elif kind == _FIRST:
            pending = chunk
        elif kind == _MIDDLE:
            pending += chunk
        elif kind == _LAST:
            yield pending + chunk
            pending = b""


def read_run(path: str | Path, wait: float = 15.0) -> dict[str, Any]:
    """``{"history": [rows], "config": {...}, "summary": {...}, "finished": bool}`` of an offline run file or folder.

    wandb's service process writes the file asynchronously; until the run's exit record is in it, the reader
    polls for up to ``wait`` seconds (``finished`` says whether the exit record was seen).
    """
    deadline = time.monotonic() + wait
    while True:
        out = _read_once(Path(path))
        if out["finished"] or time.monotonic() >= deadline:
            return out
        time.sleep(0.25)


def _read_once(path: Path) -> dict[str, Any]:
    from wandb.proto import wandb_internal_pb2 as pb

    if path.is_dir():
        files = sorted(path.glob("*.wandb"))
        if not files:
            raise FileNotFoundError(f"no run-*.wandb file in {path}")
        path = files[0]
    out: dict[str, Any] = {"history": [], "config": {}, "summary": {}, "finished": False}
    for raw in iter_record_bytes(path):
        record = pb.Record()
        record.ParseFromString(raw)
        kind = record.WhichOneof("record_type")
        if kind == "history":
            out["history"].append({_key(i): json.loads(i.value_json) for i in record.history.item})
        elif kind == "config":
            out["config"].update({_key(i): json.loads(i.value_json) for i in record.config.update})
        elif kind == "summary":
            out["summary"].update({_key(i): json.loads(i.value_json) for i in record.summary.update})
        elif kind == "exit":
            out["finished"] = True
    return out


def _key(item) -> str:
    return item.key or "/".join(item.nested_key)
