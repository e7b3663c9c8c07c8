"""Dtype rules shared by every operation: normalisation of ``dtype=`` arguments and the
categories the operations' dtype tables are written in.

Dtypes are handled as :class:`numpy.dtype` objects everywhere in the front layer
(``ml_dtypes`` provides bfloat16 and the float8 family); each backend maps them to its own.
"""

from __future__ import annotations

import sys
from typing import Any

import ml_dtypes
import numpy as np

__all__ = [
    "BFLOAT16",
    "BOOL",
    "COMPLEX",
    "FLOAT",
    "SIGNED",
    "UNSIGNED",
    "cast_hint",
    "describe",
    "normalize_dtype",
]

BFLOAT16: np.dtype[Any] = np.dtype(ml_dtypes.bfloat16)
BOOL = frozenset({np.dtype(np.bool_)})
SIGNED = frozenset(np.dtype(t) for t in (np.int8, np.int16, np.int32, np.int64))
UNSIGNED = frozenset(np.dtype(t) for t in (np.uint8, np.uint16, np.uint32, np.uint64))
FLOAT = frozenset(np.dtype(t) for t in (np.float16, np.float32, np.float64)) | {BFLOAT16}
COMPLEX = frozenset(np.dtype(t) for t in (np.complex64, np.complex128))

_NORMALIZED: dict[Any, np.dtype[Any]] = {}


def normalize_dtype(dtype: Any) -> np.dtype[Any]:
    """The NumPy dtype for a ``dtype=`` argument given as a NumPy dtype, a string, a Python or
    NumPy scalar type, or a ``torch.dtype``. Raises ``TypeError`` naming what was given.
    """
    try:
        return _NORMALIZED[dtype]
    except (KeyError, TypeError):
        pass
    torch = sys.modules.get("torch")
    result: np.dtype[Any] | None = None
    if torch is not None and isinstance(dtype, torch.dtype):
        from xback.backends.torch import TORCH_TO_NP

        result = TORCH_TO_NP.get(dtype)
    elif isinstance(dtype, str) and hasattr(ml_dtypes, dtype):
        result = np.dtype(getattr(ml_dtypes, dtype))
    else:
        try:
            result = np.dtype(dtype)
        except (TypeError, ValueError):
            result = None
    if result is None:
        raise TypeError(
            f"dtype {dtype!r} is not understood: give a NumPy dtype, a dtype name such as "
            f"'float32' or 'bfloat16', or a torch.dtype"
        )
    try:
        _NORMALIZED[dtype] = result
    except TypeError:
        pass
    return result


def describe(dtype: np.dtype[Any]) -> str:
    """Short, readable name of a dtype for error messages."""
    return str(dtype)


def cast_hint(dtype: np.dtype[Any]) -> str:
    """A cast that turns an array of ``dtype`` into one every backend can hold."""
    kind = dtype.kind
    if kind in "mM":
        return "a.astype('int64') (or a.view('int64'))"
    if kind == "f":  # longdouble wider than float64
        return "a.astype('float64')"
    if kind == "c":
        return "a.astype('complex128')"
    if kind in "US":
        return "a numeric array, e.g. np.unique(a, return_inverse=True)[1] for codes"
    if kind == "O":
        return "a.astype('float64') (or another numeric dtype)"
    if kind == "V":
        return "one numeric field, e.g. a['x'], or structured_to_unstructured(a)"
    return "a.astype('float64')"
