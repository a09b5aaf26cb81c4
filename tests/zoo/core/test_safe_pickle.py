"""The restricted unpickler: numpy arrays and plain containers load, a crafted __reduce__ is refused before it runs."""
from __future__ import annotations

import os
import pickle
from pathlib import Path

import numpy as np
import pytest

from zoo.core.safe_pickle import safe_load, safe_loads


class _Payload:
    """Unpickling this would call os.system and create a marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_arrays_and_containers_round_trip(tmp_path: Path, protocol: int) -> None:
    obj = {b"data": np.arange(12, dtype=np.uint8).reshape(3, 4), b"labels": [1, 2, 3], "f": np.float32(1.5),
           "nested": (frozenset({1}), {2.0: [b"x", "y"]}), "big": np.linspace(0, 1, 7)}
    path = tmp_path / "batch"
    path.write_bytes(pickle.dumps(obj, protocol=protocol))
    got = safe_load(path, encoding="bytes")
    assert got[b"labels"] == [1, 2, 3] and got["nested"] == obj["nested"] and got["f"] == np.float32(1.5)
    np.testing.assert_array_equal(got[b"data"], obj[b"data"])
    np.testing.assert_array_equal(got["big"], obj["big"])


def test_crafted_pickle_is_refused_before_its_code_runs(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    path = tmp_path / "data_batch_1"
    path.write_bytes(pickle.dumps({b"data": _Payload(marker)}, protocol=2))
    pickle.loads(pickle.dumps(_Payload(tmp_path / "control")))  # the payload works with plain pickle ...
    assert (tmp_path / "control").exists()
    with pytest.raises(ValueError) as err:  # ... and is refused here
        safe_load(path, encoding="bytes")
    assert not marker.exists()
    msg = str(err.value)
    assert "data_batch_1" in msg and ("posix.system" in msg or "os.system" in msg)
    assert "numpy arrays" in msg


@pytest.mark.parametrize("name", ["eval", "exec", "getattr", "__import__", "open"])
def test_dangerous_builtins_are_refused(name: str) -> None:
    data = b"\x80\x02cbuiltins\n" + name.encode() + b"\nX\x01\x00\x00\x001\x85R."
    with pytest.raises(ValueError, match=f"stream: refused to load global builtins.{name}"):
        safe_loads(data, source="stream")


def test_truncated_and_foreign_bytes_name_the_file(tmp_path: Path) -> None:
    path = tmp_path / "test_batch"
    path.write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), np.uint8)}, protocol=2)[:50])
    with pytest.raises(ValueError, match=r"test_batch: truncated or malformed pickle, expected a complete pickle"):
        safe_load(path)
    path.write_bytes(b"PK\x03\x04 not a pickle at all")
    with pytest.raises(ValueError, match="test_batch"):
        safe_load(path)
    with pytest.raises(FileNotFoundError, match="absent_batch does not exist"):
        safe_load(tmp_path / "absent_batch")
