"""Dtype rules shared by every operation: normalisation of ``dtype=`` arguments and the
categories the operations' dtype tables are written in.

Dtypes are handled as :class:`numpy.dtype` objects everywhere in the front layer
(``ml_dtypes`` provides bfloat16 and the float8 family); each backend maps them to its own.

``ml_dtypes`` is never imported here at module level (it takes longer to import than the
rest of xback): a bfloat16 array can only exist once its owner imported ``ml_dtypes`` (torch
converts through it too), so the tables below recognise its dtypes by looking the module up
in ``sys.modules`` when such a dtype is first seen. Only :func:`normalize_dtype` imports it,
for a dtype *named* by a string NumPy does not know (``dtype="bfloat16"``).
"""

from __future__ import annotations

import sys
from collections.abc import Iterable
from typing import Any, TypeVar

import numpy as np

__all__ = [
    "BOOL",
    "COMPLEX",
    "FLOAT",
    "SIGNED",
    "UNSIGNED",
    "DtypeSet",
    "bfloat16",
    "cast_hint",
    "learn_lazy",
    "ml_dtype",
    "normalize_dtype",
]


V = TypeVar("V")


def ml_dtype(name: str) -> np.dtype[Any] | None:
    """The NumPy dtype of ``ml_dtypes.<name>`` if ``ml_dtypes`` is imported, else None (no
    array of that dtype can exist then)."""
    mod = sys.modules.get("ml_dtypes")
    t = getattr(mod, name, None) if mod is not None else None
    return np.dtype(t) if t is not None else None


def bfloat16() -> np.dtype[Any] | None:
    """The bfloat16 dtype (``ml_dtypes``), or None while ``ml_dtypes`` is not imported."""
    return ml_dtype("bfloat16")


def _lazy_match(d: Any, names: Iterable[str]) -> str | None:
    """Which of the ``ml_dtypes`` dtype ``names`` the dtype ``d`` is, if any."""
    if not isinstance(d, np.dtype) or d.type.__module__.split(".")[0] != "ml_dtypes":
        return None
    for name in names:
        if d == ml_dtype(name):
            return name
    return None


class DtypeSet(frozenset[np.dtype[Any]]):
    """A frozenset of NumPy dtypes that also holds the ``ml_dtypes`` dtypes named in
    ``lazy`` (matched by :func:`ml_dtype` when looked up, never importing ``ml_dtypes``).
    Unions, differences and intersections keep both parts."""

    lazy: frozenset[str]

    def __new__(cls, dtypes: Iterable[Any] = (), lazy: Iterable[str] = ()) -> DtypeSet:
        self = super().__new__(cls, (np.dtype(d) for d in dtypes))
        self.lazy = frozenset(lazy)
        return self

    def __contains__(self, d: object) -> bool:
        try:
            if frozenset.__contains__(self, d):
                return True
        except TypeError:  # unhashable
            return False
        return bool(self.lazy) and _lazy_match(d, self.lazy) is not None

    def __or__(self, other: frozenset[Any]) -> DtypeSet:  # type: ignore[override]
        return DtypeSet(
            frozenset.__or__(self, other), self.lazy | getattr(other, "lazy", frozenset())
        )

    __ror__ = __or__

    def __sub__(self, other: frozenset[Any]) -> DtypeSet:  # type: ignore[override]
        return DtypeSet(frozenset.__sub__(self, other), self.lazy - _names(other))

    def __and__(self, other: frozenset[Any]) -> DtypeSet:  # type: ignore[override]
        return DtypeSet(frozenset.__and__(self, other), self.lazy & _names(other))

    __rand__ = __and__

    def __reduce__(self) -> tuple[Any, ...]:
        return (DtypeSet, (frozenset(self), self.lazy))


def _names(dtypes: frozenset[Any]) -> frozenset[str]:
    """The names a set of dtypes holds: its lazy ``ml_dtypes`` names, and the names of the
    dtype objects in it (``ml_dtypes``' own objects among them)."""
    return getattr(dtypes, "lazy", frozenset()) | {getattr(d, "name", str(d)) for d in dtypes}


def learn_lazy(table: dict[np.dtype[Any], V], d: Any, lazy: dict[str, V]) -> V | None:
    """For a dtype ``d`` missing from ``table``: ``lazy[name]`` when ``d`` is the
    ``ml_dtypes`` dtype ``name`` (then also stored in ``table``, so the next lookup is a plain
    dict hit), else None. Keeps the tables plain dicts for the per-call lookups."""
    name = _lazy_match(d, lazy)
    if name is None:
        return None
    table[d] = value = lazy[name]
    return value


BOOL = DtypeSet([np.bool_])
SIGNED = DtypeSet([np.int8, np.int16, np.int32, np.int64])
UNSIGNED = DtypeSet([np.uint8, np.uint16, np.uint32, np.uint64])
FLOAT = DtypeSet([np.float16, np.float32, np.float64], lazy=["bfloat16"])
COMPLEX = DtypeSet([np.complex64, np.complex128])

_NORMALIZED: dict[Any, np.dtype[Any]] = {}


def _library_dtype(dtype: Any) -> np.dtype[Any] | None:
    """The NumPy dtype for a library's own dtype object (a ``torch.dtype``), asking the
    backends whose library the caller has imported (:meth:`Backend.dtype_from
    <xback.backends.Backend.dtype_from>`), or None."""
    from xback._dispatch import load_backend
    from xback.backends import KNOWN_BACKENDS

    for name, (_module, package, _requirement) in KNOWN_BACKENDS.items():
        if package in sys.modules:
            found = load_backend(name).dtype_from(dtype)
            if found is not None:
                return found
    return None


def normalize_dtype(dtype: Any) -> np.dtype[Any]:
    """The NumPy dtype for a ``dtype=`` argument given as a NumPy dtype, a string, a Python or
    NumPy scalar type, or a ``torch.dtype``. Raises ``TypeError`` naming what was given.
    """
    try:
        return _NORMALIZED[dtype]
    except (KeyError, TypeError):
        pass
    result: np.dtype[Any] | None = None
    if not isinstance(dtype, (str, type, np.dtype)):
        result = _library_dtype(dtype)
    if result is None:
        try:
            result = np.dtype(dtype)
        except (TypeError, ValueError):
            result = _ml_dtype_named(dtype) if isinstance(dtype, str) else None
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


def _ml_dtype_named(name: str) -> np.dtype[Any] | None:
    """The ``ml_dtypes`` dtype called ``name`` (``"bfloat16"``, ``"float8_e4m3fn"``...),
    importing ``ml_dtypes`` for it; None if there is none (or ``ml_dtypes`` is missing)."""
    try:
        import ml_dtypes
    except ImportError:  # pragma: no cover - a dependency
        return None
    t = getattr(ml_dtypes, name, None)
    return np.dtype(t) if isinstance(t, type) and issubclass(t, np.generic) else None


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
