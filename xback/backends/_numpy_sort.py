"""Sorting for the NumPy backend (see :meth:`xback.backends.Backend.sort` for the contract).

* Ascending: ``np.sort`` / ``np.argsort`` directly (NumPy already puts NaN last, treats
  ``-0.0 == 0.0`` and orders complex numbers lexicographically with NaN groups last).
* Descending, stable, NaN last: NumPy >= 2.5 has ``descending=``; it is used when a probe at
  import time shows it gives the contract's answer for the dtype kind. Otherwise the keys are
  mapped by an order-reversing bijection and sorted ascending: ``-x`` for floats and complex
  (NaN stays NaN, hence last; ``-0.0``/``0.0`` stay equal; exact, so the values are restored
  bit for bit by negating again), ``~x`` for integers and bool (``~x == -x - 1`` for signed,
  ``max - x`` for unsigned: no overflow). Equal keys stay in input order: stable.
* ``ml_dtypes`` bfloat16: NumPy's generic sort misorders it (NaN in the middle), so it is
  sorted through exact float32 keys and the values gathered.
"""

from __future__ import annotations

import functools
from typing import Any

import numpy as np

__all__ = ["argsort", "last_axis_sorts", "sort"]

_INT64 = np.dtype(np.int64)
_FLOAT32 = np.dtype(np.float32)
_NP: Any = np  # NumPy >= 2.5 keywords unknown to older stubs


def _probe(x: list[Any], dtype: Any, expected: list[int]) -> bool:
    try:
        got = _NP.argsort(np.array(x, dtype=dtype), kind="stable", descending=True)
    except TypeError:  # NumPy < 2.5: no descending keyword
        return False
    return bool(got.tolist() == expected)


_nan = float("nan")
#: dtype kind -> NumPy's native descending sort gives the contract's answer
_NATIVE_DESC: dict[str, bool] = {
    "f": _probe([1.0, _nan, 1.0, 2.0, _nan, -0.0, 0.0], np.float64, [3, 0, 2, 5, 6, 1, 4]),
    "c": _probe(
        [complex(1, _nan), complex(_nan, 0), 2, 1, 1, complex(_nan, 1), complex(3, _nan)],
        np.complex128,
        [2, 3, 4, 6, 0, 5, 1],
    ),
    "i": _probe([1, 2, 1, -(2**63)], np.int64, [1, 0, 2, 3]),
    "u": _probe([1, 2, 1, 2**64 - 1], np.uint64, [3, 1, 0, 2]),
    "b": _probe([True, False, True], np.bool_, [0, 2, 1]),
}
_NEG = {"f": np.negative, "c": np.negative, "i": np.invert, "u": np.invert, "b": np.invert}


def _flat(x: Any) -> Any:
    return np.reshape(x, -1)  # C order, an ndarray even for NumPy scalars; never written to


def _values(x: Any, axis: int = -1, kind: Any = "stable") -> Any:
    out = x.copy()  # what np.sort does, minus its dispatch layer
    out.sort(axis, kind)
    return out


def _values_desc(x: Any, axis: int = -1, kind: Any = "stable") -> Any:
    dt = x.dtype
    k = dt.kind
    if _NATIVE_DESC[k]:
        return _NP.sort(x, axis=axis, kind=kind, descending=True)
    neg = _NEG[k]
    keys = neg(x)  # fresh array: sorted in place, then mapped back exactly
    keys.sort(axis=axis, kind=kind)
    neg(keys, out=keys)
    return keys if dt.isnative else keys.astype(dt)  # ufuncs return native byte order


def _indices(x: Any, axis: int = -1, kind: Any = "stable") -> Any:
    idx = x.argsort(axis, kind)
    return idx if idx.dtype == _INT64 else idx.astype(_INT64)


def _indices_desc(x: Any, axis: int = -1, kind: Any = "stable") -> Any:
    k = x.dtype.kind
    if _NATIVE_DESC[k]:
        idx = _NP.argsort(x, axis=axis, kind=kind, descending=True)
        return idx if idx.dtype == _INT64 else idx.astype(_INT64)
    return _indices(_NEG[k](x), axis, kind)


def _last_axis_sorts() -> dict[Any, tuple[Any, ...]]:
    """:attr:`xback.backends.Backend.last_axis_sorts`: the common call (last axis, stable)
    without the general functions' branches, for every native dtype but bfloat16 (sorted
    through keys); the argsort of ascending order is the array's own method where NumPy's
    indices are int64 already."""
    asc = _indices
    if np.dtype(np.intp) == _INT64:
        asc = functools.partial(np.ndarray.argsort, kind="stable")
    names = "?bhilqBHILQefdFD"  # bool, the integers, float16/32/64, complex64/128
    return {np.dtype(c): (_values, _values_desc, asc, _indices_desc) for c in names}


def sort(x: Any, axis: int | None, descending: bool, stable: bool) -> Any:
    kind: Any = "stable" if stable else None
    dt = x.dtype
    if axis is None:
        x, axis = _flat(x), 0
    if dt.kind == "V":  # bfloat16 (the only void-kind dtype the front layer lets through)
        idx = argsort(x, axis, descending, stable)
        return np.take_along_axis(x, idx, axis)
    return _values_desc(x, axis, kind) if descending else _values(x, axis, kind)


def argsort(x: Any, axis: int | None, descending: bool, stable: bool) -> Any:
    kind: Any = "stable" if stable else None
    dt = x.dtype
    if axis is None:
        x, axis = _flat(x), 0
    if dt.kind == "V":  # bfloat16
        x = x.astype(_FLOAT32)  # exact
        if descending:
            np.negative(x, out=x)
    elif descending:
        return _indices_desc(x, axis, kind)
    return _indices(x, axis, kind)


#: :attr:`xback.backends.Backend.last_axis_sorts` of the NumPy backend
last_axis_sorts = _last_axis_sorts()
