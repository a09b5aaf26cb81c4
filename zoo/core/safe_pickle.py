"""A restricted unpickler for dataset files the user supplies (CIFAR batches, object arrays in ``.npz`` files).

Only plain containers, numbers, strings and numpy's array reconstruction may be rebuilt; any other global in the
stream (``os.system``, ``builtins.eval``, a ``__reduce__`` payload) is refused before it is looked up or called.
"""
from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any, BinaryIO

# Builtins a data pickle may name: inert types only (no eval/exec/getattr/__import__/open).
SAFE_BUILTINS = frozenset({"dict", "list", "tuple", "set", "frozenset", "bytearray", "bytes", "str", "int",
                           "float", "complex", "bool", "slice", "range"})
# numpy's array and scalar reconstruction, under numpy 1 (``numpy.core``) and numpy 2 (``numpy._core``) names.
SAFE_NUMPY = {
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("_codecs", "encode"),  # protocol-2 pickles written by Python 3 spell bytes as _codecs.encode(str, 'latin1')
}


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose ``find_class`` admits only :data:`SAFE_BUILTINS` and :data:`SAFE_NUMPY`."""

    def __init__(self, file: BinaryIO, source: str = "<stream>", **kwargs: Any) -> None:
        super().__init__(file, **kwargs)
        self.source = source

    def find_class(self, module: str, name: str) -> Any:
        if module in ("builtins", "__builtin__") and name in SAFE_BUILTINS:
            return super().find_class("builtins", name)
        if (module, name) in SAFE_NUMPY:
            import numpy as np

            if module == "numpy":
                return getattr(np, name)
            if module == "_codecs":
                import _codecs

                return _codecs.encode
            # numpy 2 renamed numpy.core to numpy._core; load the same function without the deprecation shim
            sub = "multiarray" if module.endswith("multiarray") else "numeric"
            core = getattr(np, "_core", None) or np.core
            return getattr(getattr(core, sub), name)
        raise pickle.UnpicklingError(
            f"{self.source}: refused to load global {module}.{name}; a dataset pickle may hold only plain "
            "containers, numbers, strings and numpy arrays (this file may be crafted to run code)")


def safe_load(file: str | Path | BinaryIO, encoding: str = "ASCII", source: str | None = None) -> Any:
    """Unpickle ``file`` (a path or a binary stream) with :class:`RestrictedUnpickler`; errors name the file.

    Raises ``ValueError`` for a refused global, a truncated stream or bytes that are not a pickle.
    """
    if isinstance(file, (str, Path)):
        path = Path(file)
        if not path.is_file():
            raise FileNotFoundError(f"pickle file {path} does not exist")
        with open(path, "rb") as fh:
            return safe_load(fh, encoding, str(path))
    name = source or getattr(file, "name", "<stream>")
    try:
        return RestrictedUnpickler(file, source=str(name), encoding=encoding).load()
    except pickle.UnpicklingError as err:
        msg = str(err)
        raise ValueError(msg if msg.startswith(str(name)) else f"{name}: not a valid pickle ({msg})") from None
    except (EOFError, ValueError, TypeError, AttributeError, IndexError, KeyError, MemoryError) as err:
        raise ValueError(f"{name}: truncated or malformed pickle, expected a complete pickle stream "
                         f"({type(err).__name__}: {err})") from None


def safe_loads(data: bytes, encoding: str = "ASCII", source: str = "<bytes>") -> Any:
    """:func:`safe_load` on an in-memory pickle."""
    return safe_load(io.BytesIO(data), encoding, source)
