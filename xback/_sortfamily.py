"""The sort family on xback's sort contract: ``top_k``, ``searchsorted``, ``unique_*``,
``quantile``/``nanquantile``/``median``/``nanmedian`` and ``rankdata``.

Each function validates and normalises its arguments once (backend, device, dtype, axis,
flags), moves the axis to the end and calls one backend method of
:class:`xback.backends.Backend` with clean arguments. Every answer is derived from xback's
stable sort: NaN after every number in both directions, ``-0.0 == 0.0``, ties in input order,
complex numbers in NumPy's order. See ``docs/semantics-sort-family.md``.
"""

from __future__ import annotations

import math
import operator
from typing import Any, NamedTuple

import numpy as np

from xback._dispatch import prepare, prepare1, trace_constant
from xback._dtypes import BOOL, COMPLEX, FLOAT, SIGNED, UNSIGNED
from xback._sorting import normalize_axis
from xback.backends import Backend
from xback.backends._family_generic import QUANTILE_METHODS

__all__ = [
    "TopKResult",
    "UniqueAllResult",
    "UniqueCountsResult",
    "UniqueInverseResult",
    "median",
    "nanmedian",
    "nanquantile",
    "quantile",
    "rankdata",
    "searchsorted",
    "top_k",
    "unique_all",
    "unique_counts",
    "unique_inverse",
    "unique_values",
]

#: (unions keep the lazy bfloat16 of FLOAT; a difference would drop it)
_REAL: frozenset[np.dtype[Any]] = BOOL | SIGNED | UNSIGNED | FLOAT
_SORTABLE: frozenset[np.dtype[Any]] = _REAL | COMPLEX
_SUPPORTED = (
    "bool, int8, int16, int32, int64, uint8, uint16, uint32, uint64, float16, float32, "
    "float64, bfloat16, complex64, complex128"
)
_F32, _F64, _I64 = np.dtype(np.float32), np.dtype(np.float64), np.dtype(np.int64)
_RANK_METHODS = ("average", "min", "max", "dense", "ordinal")
_NAN_POLICIES = ("propagate", "omit", "raise")


class TopKResult(NamedTuple):
    """Result of :func:`top_k`: ``values`` and their ``int64`` ``indices`` along the axis.

    Examples
    --------
    >>> import numpy as np, xback
    >>> values, indices = xback.top_k(np.array([3, 1, 2]), 2)
    >>> values, indices
    (array([3, 2]), array([0, 2]))
    """

    values: Any
    indices: Any


class UniqueAllResult(NamedTuple):
    """Result of :func:`unique_all` (the Array API's tuple).

    Examples
    --------
    >>> import numpy as np, xback
    >>> xback.unique_all(np.array([2, 2])).counts
    array([2])
    """

    values: Any
    indices: Any
    inverse_indices: Any
    counts: Any


class UniqueCountsResult(NamedTuple):
    """Result of :func:`unique_counts` (the Array API's tuple).

    Examples
    --------
    >>> import numpy as np, xback
    >>> values, counts = xback.unique_counts(np.array([1, 1, 4]))
    >>> counts
    array([2, 1])
    """

    values: Any
    counts: Any


class UniqueInverseResult(NamedTuple):
    """Result of :func:`unique_inverse` (the Array API's tuple).

    Examples
    --------
    >>> import numpy as np, xback
    >>> xback.unique_inverse(np.array([4, 1, 4])).inverse_indices
    array([1, 0, 1])
    """

    values: Any
    inverse_indices: Any


class _Default:
    """A default argument value, distinguishable from the same value given explicitly (so
    that ``axis=..., dim=...`` is the documented TypeError)."""

    __slots__ = ("value",)

    def __init__(self, value: Any) -> None:
        self.value = value

    def __repr__(self) -> str:
        return repr(self.value)


_LAST: Any = _Default(-1)
_NONE: Any = _Default(None)


# -- validation ----------------------------------------------------------------------------
def _axis(axis: Any, dim: Any, ndim: int, fname: str) -> int | None:
    """The axis (non-negative) or None: the rule of :func:`xback.sort`
    (:func:`xback._sorting.normalize_axis`), with this function's default."""
    given = not isinstance(axis, _Default)
    return normalize_axis(axis, dim, ndim, fname, given=given,
                          default=None if given else axis.value)


def _flag(value: Any, name: str, fname: str) -> bool:
    if value is True or value is False:
        return value
    if isinstance(value, np.bool_):
        return bool(value)
    raise TypeError(f"{fname}(): {name} must be a bool, got {type(value).__name__} {value!r}")


def _dtype(b: Backend, x: Any, fname: str, allowed: frozenset[np.dtype[Any]] = _SORTABLE,
           names: str = _SUPPORTED) -> np.dtype[Any]:
    return _dtype_rule(b, x.dtype, fname, allowed, names)  # x: the backend's array


@trace_constant  # NumPy dtype objects: decided outside torch.compile's trace
def _dtype_rule(b: Backend, native: Any, fname: str, allowed: frozenset[np.dtype[Any]],
                names: str) -> np.dtype[Any]:
    """:func:`_dtype` for an array whose library dtype object is ``native``."""
    try:
        d = b.numpy_dtype(native)
    except TypeError:
        d = None
    return _dtype_checked(d, native, fname, allowed, names)


def _dtype_checked(d: np.dtype[Any] | None, shown: Any, fname: str,
                   allowed: frozenset[np.dtype[Any]], names: str) -> np.dtype[Any]:
    if d is not None and not d.isnative:
        d = d.newbyteorder("=")
    if d is None or d not in allowed:
        what = str(d) if d is not None else str(shown)
        raise TypeError(f"{fname}() does not support dtype {what}; supported dtypes: {names}")
    return d


@trace_constant  # NumPy dtype objects: looked up outside torch.compile's trace
def _native(b: Backend, d: np.dtype[Any]) -> Any:
    """The backend's own dtype object for NumPy dtype ``d`` (what :meth:`Backend.astype`
    takes in traced code too)."""
    return b.native_dtype(d)


def _choice(value: Any, name: str, allowed: tuple[str, ...], fname: str) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(
            f"{fname}(): {name} must be one of {', '.join(map(repr, allowed))}, got {value!r}"
        )
    return value


def _last_axis(b: Backend, x: Any, ax: int | None) -> tuple[Any, Any, int]:
    """``(namespace, x with the axis moved last (None: flattened), that axis)``."""
    xp = b.namespace(x)
    if ax is None:
        return xp, b.reshape(x, (-1,)), 0
    if ax != x.ndim - 1:
        x = _move(xp, x, ax, -1)
    return xp, x, ax


def _move(xp: Any, x: Any, src: int, dst: int) -> Any:
    """``moveaxis`` as a ``permute_dims`` (torch.func's ``vmap`` has no batching rule for
    torch's ``moveaxis``)."""
    order = list(range(x.ndim))
    order.insert(dst % x.ndim, order.pop(src % x.ndim))
    return xp.permute_dims(x, tuple(order))


def _restore(xp: Any, r: Any, ax: int, ndim: int) -> Any:
    return _move(xp, r, -1, ax) if ax != ndim - 1 else r


# -- top_k -----------------------------------------------------------------------------------
def top_k(
    x: Any,
    k: int,
    /,
    *,
    axis: int | None = _LAST,
    largest: bool = True,
    backend: str | None = None,
    device: Any = None,
    dim: int | None = None,
) -> TopKResult:
    """The ``k`` largest (or smallest) elements along ``axis``, with their indices.

    By definition the first ``k`` of xback's stable sort in that direction, bit for bit:
    ``values == sort(x, axis=axis, descending=largest)[..., :k]`` (along ``axis``) and
    likewise the indices. NaN comes last in both directions (taken only when fewer than
    ``k`` numbers remain), ties keep their input order, ``-0.0 == 0.0``. It costs a selection
    (a partition, or ``torch.topk``) plus a sort of the ``k`` selected, not a full sort.

    Parameters
    ----------
    x : array_like
        Any dtype :func:`xback.sort` takes.
    k : int
        How many, ``0 <= k <= n`` (``n``: the length of ``axis``); a NumPy integer is fine.
    axis : int or None, optional
        Axis to select along (default -1); ``None`` flattens ``x`` first.
    largest : bool, optional
        The largest (default) or the smallest ``k``.
    backend, device : optional
        As for :func:`xback.sort`.
    dim : int, optional
        Alias of ``axis`` (the torch spelling).

    Returns
    -------
    TopKResult
        ``(values, indices)``: ``x``'s dtype and ``int64``, the length of ``axis`` cut to
        ``k``. Torch values stay differentiable.

    Raises
    ------
    TypeError
        ``k`` not an integer (a bool too), bad ``axis``/``largest`` type, unsupported dtype.
    ValueError
        ``k`` outside ``0..n``; ``axis`` out of range (``numpy.exceptions.AxisError``).

    Examples
    --------
    >>> import numpy as np, xback
    >>> xback.top_k(np.array([1.0, np.nan, 3.0, 3.0, np.nan, 2.0]), 3)
    TopKResult(values=array([3., 3., 2.]), indices=array([2, 3, 5]))
    >>> xback.top_k(np.array([5, 1, 5, 5, 0, 5]), 3).indices
    array([0, 2, 3])
    """
    b, x = prepare1(x, backend, device)
    _dtype(b, x, "top_k")
    ax = _axis(axis, dim, x.ndim, "top_k")
    largest = _flag(largest, "largest", "top_k")
    if isinstance(k, (bool, np.bool_)):
        raise TypeError(f"top_k(): k must be an int, got the bool {k!r}")
    try:
        kk = operator.index(k)
    except TypeError:
        raise TypeError(f"top_k(): k must be an int, got {type(k).__name__} {k!r}") from None
    xp, xm, ax = _last_axis(b, x, ax)
    n = xm.shape[-1]
    if not 0 <= kk <= n:
        raise ValueError(
            f"top_k(): k must be in 0..n where n = {n} is the length of the axis, got k={kk}"
        )
    v, i = b.top_k(xm, kk, largest)
    return TopKResult(_restore(xp, v, ax, xm.ndim), _restore(xp, i, ax, xm.ndim))


# -- searchsorted ----------------------------------------------------------------------------
@trace_constant  # NumPy dtype objects and host scalars: decided outside torch.compile's trace
def _promote(d1: np.dtype[Any], d2: Any) -> np.dtype[Any]:
    """NumPy's promotion (Python scalars weakly); bfloat16 through float32 when ml_dtypes
    has no rule."""
    try:
        return np.result_type(d1, d2)
    except (TypeError, OverflowError, ValueError):
        pass
    kinds = {getattr(d, "kind", "") for d in (d1, d2) if isinstance(d, np.dtype)}
    if isinstance(d2, np.dtype) and "V" in kinds:
        a = _F32 if d1.kind == "V" else d1
        c = _F32 if d2.kind == "V" else d2
        return np.result_type(a, c)
    return np.result_type(d1, np.asarray(d2).dtype)


def searchsorted(
    x1: Any,
    x2: Any,
    /,
    *,
    side: str = "left",
    sorter: Any = None,
    backend: str | None = None,
    device: Any = None,
) -> Any:
    """Indices where the elements of ``x2`` would be inserted into sorted ``x1``.

    ``x1`` is 1-D and sorted in xback's ascending order (NaN last), or a batch ``(..., n)``
    with ``x2`` of shape ``(..., m)`` and the same leading shape (as in torch). The Array
    API's index condition holds (``left``: ``x1[i-1] < v <= x1[i]``; ``right``:
    ``x1[i-1] <= v < x1[i]``) with NaN ordered as by :func:`xback.sort`: a NaN query goes
    before the first NaN of ``x1`` (``left``) or after the last (``right``), on every
    backend. Both inputs are compared in their promoted dtype. Whether ``x1`` is sorted is
    not checked: an unsorted ``x1`` gives unspecified (but in-range) indices.

    Parameters
    ----------
    x1 : array_like
        Sorted values (1-D), or a batch of sorted rows.
    x2 : array_like or scalar
        Query values; a Python scalar gives a 0-d result.
    side : {"left", "right"}, optional
        Which of equal positions to return.
    sorter : array_like of int, optional
        Indices that sort ``x1`` (along its last axis), e.g. from :func:`xback.argsort`.
    backend, device : optional
        As for :func:`xback.sort`.

    Returns
    -------
    array
        ``int64``, of ``x2``'s shape.

    Raises
    ------
    ValueError
        Bad ``side``; ``x1`` 0-d; batch shapes that do not match (naming both); ``sorter``
        of another shape than ``x1``.
    TypeError
        Unsupported dtype; ``sorter`` not integer.

    Examples
    --------
    >>> import numpy as np, xback
    >>> xback.searchsorted(np.array([1.0, 2.0, 3.0, np.nan]), np.array([np.nan, 2.0]))
    array([3, 1])
    >>> xback.searchsorted(np.array([1, 2, 2, 3]), 2, side="right")
    array(3)
    """
    if side != "left" and side != "right":
        raise ValueError(f"searchsorted(): side must be 'left' or 'right', got {side!r}")
    scalar = isinstance(x2, (bool, int, float, complex))
    args = (x1, x2) if sorter is None else (x1, x2, sorter)
    b, _, arrs = prepare(backend, device, *args)
    x1, x2 = arrs[0], arrs[1]
    d1 = _dtype(b, x1, "searchsorted")
    d2 = _dtype(b, x2, "searchsorted")
    if x1.ndim == 0:
        raise ValueError("searchsorted(): x1 must be 1-D, or a batch (..., n); got a 0-d x1")
    shape2 = tuple(x2.shape)
    if x1.ndim > 1 and (x2.ndim != x1.ndim or tuple(x2.shape[:-1]) != tuple(x1.shape[:-1])):
        raise ValueError(
            f"searchsorted(): a batch x1 of shape {tuple(x1.shape)} needs x2 of shape "
            f"(..., m) with the same leading shape {tuple(x1.shape[:-1])}; got x2 of shape "
            f"{shape2}"
        )
    srt = None
    if sorter is not None:
        srt = arrs[2]
        ds = _dtype(b, srt, "searchsorted", SIGNED | UNSIGNED, "integer dtypes (for sorter)")
        if tuple(srt.shape) != tuple(x1.shape):
            raise ValueError(
                f"searchsorted(): sorter must have x1's shape {tuple(x1.shape)}, got "
                f"{tuple(srt.shape)}"
            )
        if ds != _I64:
            srt = b.astype(srt, _native(b, _I64))
    c1, c2 = _compare_in(b, d1, d2, x2 if scalar else d2)
    if c1 is not None:
        x1 = b.astype(x1, c1)
    if c2 is not None:
        x2 = b.astype(x2, c2)
    if x1.ndim == 1 and x2.ndim != 1:
        x2 = b.reshape(x2, (-1,))
    r = b.searchsorted(x1, x2, side == "right", srt)
    return b.reshape(r, shape2) if tuple(r.shape) != shape2 else r


@trace_constant  # NumPy dtype objects: decided outside torch.compile's trace
def _compare_in(b: Backend, d1: np.dtype[Any], d2: np.dtype[Any], other: Any) -> tuple[Any, Any]:
    """The casts of searchsorted's ``x1`` and ``x2`` (dtypes ``d1``, ``d2``; ``other``: ``d2``
    or the Python scalar ``x2`` was) to the dtype they are compared in, as the backend's
    dtype objects (None: no cast): NumPy's promotion, or ``x1``'s dtype where the backend
    cannot hold the promoted one (e.g. a library without float64)."""
    dt = _promote(d1, other)
    if not b.can_hold(dt):
        dt = d1
    return (None if d1 == dt else b.native_dtype(dt), None if d2 == dt else b.native_dtype(dt))


# -- unique ----------------------------------------------------------------------------------
def _unique(
    x: Any, backend: Any, device: Any, equal_nan: Any, fname: str, idx: bool, inv: bool,
    cnt: bool,
) -> tuple[Any, Any, Any, Any]:
    b, x = prepare1(x, backend, device)
    _dtype(b, x, fname)
    equal_nan = _flag(equal_nan, "equal_nan", fname)
    shape = tuple(x.shape)
    flat = b.reshape(x, (-1,)) if x.ndim != 1 else x
    v, i, r, c = b.unique(flat, equal_nan, idx, inv, cnt)
    if r is not None and tuple(r.shape) != shape:
        r = b.reshape(r, shape)
    return v, i, r, c


_UNIQUE_DOC = """

    Values are sorted in xback's ascending order (NaN last); ``-0.0`` and ``0.0`` are one
    value; NaNs are distinct, as in the Array API, unless ``equal_nan=True`` (then all NaNs,
    complex ones included, are one value). Each value is the first occurrence of its group in
    ``x`` (C order). Works for every dtype :func:`xback.sort` takes, on every backend; a
    torch ``meta`` tensor raises ``ValueError`` (the result's size depends on the data).

    Parameters
    ----------
    x : array_like
        Input (flattened).
    equal_nan : bool, optional
        Count every NaN as one value.
    backend, device : optional
        As for :func:`xback.sort`.
"""


def unique_values(
    x: Any, /, *, equal_nan: bool = False, backend: str | None = None, device: Any = None
) -> Any:
    return _unique(x, backend, device, equal_nan, "unique_values", False, False, False)[0]


def unique_counts(
    x: Any, /, *, equal_nan: bool = False, backend: str | None = None, device: Any = None
) -> UniqueCountsResult:
    v, _, _, c = _unique(x, backend, device, equal_nan, "unique_counts", False, False, True)
    return UniqueCountsResult(v, c)


def unique_inverse(
    x: Any, /, *, equal_nan: bool = False, backend: str | None = None, device: Any = None
) -> UniqueInverseResult:
    v, _, r, _ = _unique(x, backend, device, equal_nan, "unique_inverse", False, True, False)
    return UniqueInverseResult(v, r)


def unique_all(
    x: Any, /, *, equal_nan: bool = False, backend: str | None = None, device: Any = None
) -> UniqueAllResult:
    v, i, r, c = _unique(x, backend, device, equal_nan, "unique_all", True, True, True)
    return UniqueAllResult(v, i, r, c)


unique_values.__doc__ = (
    """The distinct values of ``x``, sorted (1-D)."""
    + _UNIQUE_DOC
    + """
    Returns
    -------
    array
        1-D, ``x``'s dtype.

    Examples
    --------
    >>> import numpy as np, xback
    >>> xback.unique_values(np.array([2.0, np.nan, -0.0, 0.0, np.nan, 2.0]))
    array([-0.,  2., nan, nan])
    >>> xback.unique_values(np.array([np.nan, 1.0, np.nan]), equal_nan=True)
    array([ 1., nan])
    """
)
unique_counts.__doc__ = (
    """The distinct values of ``x`` and how often each occurs."""
    + _UNIQUE_DOC
    + """
    Returns
    -------
    UniqueCountsResult
        ``(values, counts)``; counts are ``int64``.

    Examples
    --------
    >>> import numpy as np, xback
    >>> xback.unique_counts(np.array([3, 1, 3, 3]))
    UniqueCountsResult(values=array([1, 3]), counts=array([1, 3]))
    """
)
unique_inverse.__doc__ = (
    """The distinct values of ``x`` and, for each element of ``x``, the index of its value."""
    + _UNIQUE_DOC
    + """
    Returns
    -------
    UniqueInverseResult
        ``(values, inverse_indices)``: ``values[inverse_indices]`` equals ``x`` (``int64``,
        ``x``'s shape).

    Examples
    --------
    >>> import numpy as np, xback
    >>> xback.unique_inverse(np.array([[3, 1], [3, 2]]))
    UniqueInverseResult(values=array([1, 2, 3]), inverse_indices=array([[2, 0],
           [2, 1]]))
    """
)
unique_all.__doc__ = (
    """The distinct values of ``x``, their first indices, the inverse and the counts."""
    + _UNIQUE_DOC
    + """
    Returns
    -------
    UniqueAllResult
        ``(values, indices, inverse_indices, counts)``: ``indices`` are the first
        occurrences (into the flattened ``x``), ``inverse_indices`` has ``x``'s shape; all
        three ``int64``.

    Examples
    --------
    >>> import numpy as np, xback
    >>> r = xback.unique_all(np.array([2, 1, 2]))
    >>> r.values, r.indices, r.inverse_indices, r.counts
    (array([1, 2]), array([1, 0]), array([1, 0, 1]), array([1, 2]))
    """
)


# -- quantile / median -------------------------------------------------------------------------
@trace_constant  # a host value: decided outside torch.compile's trace
def _q_vector(q: Any, fname: str) -> tuple[np.ndarray[Any, Any], bool]:
    """``q`` as a float64 host vector, and whether it was a scalar."""
    if isinstance(q, (bool, np.bool_)):
        raise TypeError(f"{fname}(): q must be a number or a 1-D array of numbers, got {q!r}")
    if isinstance(q, (int, float)):
        a = np.asarray(float(q))
    else:
        try:
            from xback._convert import to_numpy

            a = to_numpy(q) if not isinstance(q, (list, tuple)) else np.asarray(q)
        except (TypeError, ValueError):
            a = np.asarray(q)
        if a.dtype.kind not in "iuf" and a.dtype.kind != "V":
            raise TypeError(
                f"{fname}(): q must be a number or a 1-D array of numbers, got dtype "
                f"{a.dtype}"
            )
        a = a.astype(np.float64)
    if a.ndim > 1:
        raise ValueError(f"{fname}(): q must be a scalar or 1-D, got q of shape {a.shape}")
    if not ((a >= 0) & (a <= 1)).all():
        raise ValueError(f"{fname}(): q must be in [0, 1], got q={q!r}")
    return a.reshape(-1), a.ndim == 0


def _reduce_prep(
    x: Any, backend: Any, device: Any, axis: Any, dim: Any, keepdims: Any, fname: str
) -> tuple[Backend, Any, Any, int | None, bool, np.dtype[Any], tuple[int, ...]]:
    b, x = prepare1(x, backend, device)
    d = _dtype(b, x, fname, _REAL, _SUPPORTED.replace(", complex64, complex128", ""))
    ax = _axis(axis, dim, x.ndim, fname)
    keepdims = _flag(keepdims, "keepdims", fname)
    out, work = _reduce_dtypes(d)
    if _differ(work, d):
        x = b.astype(x, _native(b, work))
    return b, x, out, ax, keepdims, work, tuple(x.shape)


@trace_constant  # NumPy dtype objects: decided outside torch.compile's trace
def _reduce_dtypes(d: np.dtype[Any]) -> tuple[np.dtype[Any], np.dtype[Any]]:
    """``(output dtype, working dtype)`` of the quantile family for input dtype ``d``:
    floats keep their dtype (float16/bfloat16 computed in float32), the rest give float64."""
    out = d if d.kind in "fV" else _F64
    return out, (_F32 if d.itemsize == 2 and out is d else out)


@trace_constant  # NumPy dtype objects: compared outside torch.compile's trace
def _differ(a: np.dtype[Any], b: np.dtype[Any]) -> bool:
    return bool(a != b)


def _finish(b: Backend, xp: Any, r: Any, out: np.dtype[Any], work: np.dtype[Any],
            ax: int | None, keepdims: bool, shape: tuple[int, ...], lead: bool) -> Any:
    """``r`` (``(..., nq)`` if ``lead`` else ``(...)``) in the output dtype and layout."""
    if _differ(out, work):
        r = b.astype(r, _native(b, out))
    if keepdims:
        tail = (r.shape[-1],) if lead else ()
        # ax: the reduced axis comes back in place (before the q axis)
        r = b.reshape(r, (1,) * len(shape) + tail) if ax is None else xp.expand_dims(r, axis=ax)
    if lead:
        r = _move(xp, r, -1, 0)
    return xp.asarray(r)  # NumPy's 0-d arithmetic gives scalars: arrays, as elsewhere


def _quantile(x: Any, q: Any, axis: Any, dim: Any, keepdims: Any, method: Any, backend: Any,
              device: Any, skipna: bool, fname: str) -> Any:
    _choice(method, "method", QUANTILE_METHODS, fname)
    qv, scalar = _q_vector(q, fname)
    b, x, out, ax, keepdims, work, shape = _reduce_prep(
        x, backend, device, axis, dim, keepdims, fname
    )
    xp, xm, _ = _last_axis(b, x, ax)
    r = b.quantile(xm, qv, method, skipna)
    if scalar:
        r = r[..., 0]
    return _finish(b, xp, r, out, work, ax, keepdims, shape, not scalar)


_Q_DOC = """
    Every method of :func:`numpy.quantile` (the nine Hyndman-Fan methods and ``lower``,
    ``higher``, ``midpoint``, ``nearest``) gives NumPy's numbers on every backend, to float
    rounding. The cost is a selection (a partition) where the backend has one (NumPy, torch
    through ``kthvalue``, Dask through its sample sort), else one sort; no size limit.

    Parameters
    ----------
    x : array_like
        Real input (bool, integers, floats; complex is a ``TypeError``).
    q : float or 1-D array_like
        Quantile(s) in [0, 1]; a 1-D ``q`` adds a leading axis to the result, as in NumPy.
    axis : int or None, optional
        The axis to reduce (an int; tuples are not supported), or None (default) for the
        flattened array.
    keepdims : bool, optional
        Keep the reduced axis (axes, for None) with length one.
    method : str, optional
        One of NumPy's 13 method names (default ``"linear"``).
    backend, device : optional
        As for :func:`xback.sort`.
    dim : int, optional
        Alias of ``axis`` (the torch spelling).

    Returns
    -------
    array
        float64 for integer and bool input; float dtypes are kept (float16 and bfloat16 are
        computed in float32).

    Raises
    ------
    ValueError
        ``q`` outside [0, 1] or more than 1-D; unknown ``method``; ``axis`` out of range.
    TypeError
        Unsupported dtype; both ``axis`` and ``dim``.
"""


def quantile(
    x: Any,
    q: Any,
    /,
    *,
    axis: int | None = _NONE,
    keepdims: bool = False,
    method: str = "linear",
    backend: str | None = None,
    device: Any = None,
    dim: int | None = None,
) -> Any:
    return _quantile(x, q, axis, dim, keepdims, method, backend, device, False, "quantile")


def nanquantile(
    x: Any,
    q: Any,
    /,
    *,
    axis: int | None = _NONE,
    keepdims: bool = False,
    method: str = "linear",
    backend: str | None = None,
    device: Any = None,
    dim: int | None = None,
) -> Any:
    return _quantile(x, q, axis, dim, keepdims, method, backend, device, True, "nanquantile")


quantile.__doc__ = (
    """The ``q``-th quantile(s) of ``x`` along ``axis``; NaN for a slice holding a NaN.
"""
    + _Q_DOC
    + """
    Examples
    --------
    >>> import numpy as np, xback
    >>> xback.quantile(np.array([1, 2, 3, 4]), 0.5)
    array(2.5)
    >>> xback.quantile(np.array([[1.0, 5.0, 2.0], [4.0, np.nan, 0.0]]), [0.0, 1.0], axis=1)
    array([[ 1., nan],
           [ 5., nan]])
    """
)
nanquantile.__doc__ = (
    """The ``q``-th quantile(s) of ``x`` along ``axis``, skipping NaNs (NaN for a slice of
    only NaN).
"""
    + _Q_DOC
    + """
    Examples
    --------
    >>> import numpy as np, xback
    >>> xback.nanquantile(np.array([1.0, np.nan, 3.0]), 0.5, method="lower")
    array(1.)
    """
)


def _median(x: Any, axis: Any, dim: Any, keepdims: Any, backend: Any, device: Any,
            skipna: bool, fname: str) -> Any:
    b, x, out, ax, keepdims, work, shape = _reduce_prep(
        x, backend, device, axis, dim, keepdims, fname
    )
    xp, xm, _ = _last_axis(b, x, ax)
    r = b.median(xm, skipna)
    return _finish(b, xp, r, out, work, ax, keepdims, shape, False)


_M_DOC = """
    The middle value, or the mean of the two middle values (``[1, 2, 3, 4]`` gives 2.5, not
    torch's lower middle 2.0), computed by a selection where the backend has one.

    Parameters
    ----------
    x : array_like
        Real input (bool, integers, floats).
    axis : int or None, optional
        The axis to reduce (an int), or None (default) for the flattened array.
    keepdims : bool, optional
        Keep the reduced axis with length one.
    backend, device : optional
        As for :func:`xback.sort`.
    dim : int, optional
        Alias of ``axis``.

    Returns
    -------
    array
        float64 for integer and bool input; float dtypes kept.
"""


def median(
    x: Any,
    /,
    *,
    axis: int | None = _NONE,
    keepdims: bool = False,
    backend: str | None = None,
    device: Any = None,
    dim: int | None = None,
) -> Any:
    return _median(x, axis, dim, keepdims, backend, device, False, "median")


def nanmedian(
    x: Any,
    /,
    *,
    axis: int | None = _NONE,
    keepdims: bool = False,
    backend: str | None = None,
    device: Any = None,
    dim: int | None = None,
) -> Any:
    return _median(x, axis, dim, keepdims, backend, device, True, "nanmedian")


median.__doc__ = (
    """The median of ``x`` along ``axis``; NaN for a slice holding a NaN.
"""
    + _M_DOC
    + """
    Examples
    --------
    >>> import numpy as np, xback
    >>> xback.median(np.array([1, 2, 3, 4]))
    array(2.5)
    """
)
nanmedian.__doc__ = (
    """The median of ``x`` along ``axis``, skipping NaNs (NaN for a slice of only NaN).
"""
    + _M_DOC
    + """
    Examples
    --------
    >>> import numpy as np, xback
    >>> xback.nanmedian(np.array([[1.0, np.nan, 4.0], [np.nan, np.nan, np.nan]]), axis=1)
    array([2.5, nan])
    """
)


# -- rankdata --------------------------------------------------------------------------------
def rankdata(
    x: Any,
    /,
    *,
    method: str = "average",
    axis: int | None = _LAST,
    nan_policy: str = "propagate",
    backend: str | None = None,
    device: Any = None,
    dim: int | None = None,
) -> Any:
    """Ranks of ``x`` along ``axis``, as :func:`scipy.stats.rankdata` (SciPy >= 1.11).

    Ties get the ``method``'s rank: ``average`` (float64), ``min``, ``max``, ``dense``,
    ``ordinal`` (the order of xback's stable sort; int64). NaN: ``propagate`` makes every
    rank of a slice holding NaN NaN, ``omit`` gives NaNs a NaN rank and ranks the others
    among themselves, ``raise`` raises ``ValueError``. As in SciPy, the result is float64
    whenever ``x`` holds a NaN (on Dask this is computed at the call; a torch ``meta``
    tensor counts as NaN-free).

    Parameters
    ----------
    x : array_like
        Any dtype :func:`xback.sort` takes.
    method : str, optional
        ``"average"`` (default), ``"min"``, ``"max"``, ``"dense"`` or ``"ordinal"``.
    axis : int or None, optional
        Axis to rank along (default -1); ``None`` ranks the flattened array (1-D result).
    nan_policy : str, optional
        ``"propagate"`` (default), ``"omit"`` or ``"raise"``.
    backend, device : optional
        As for :func:`xback.sort`.
    dim : int, optional
        Alias of ``axis``.

    Returns
    -------
    array
        Ranks starting at 1, of ``x``'s shape (1-D for ``axis=None``).

    Raises
    ------
    ValueError
        Unknown ``method`` or ``nan_policy``; NaN with ``nan_policy="raise"``.

    Examples
    --------
    >>> import numpy as np, xback
    >>> xback.rankdata(np.array([10, 20, 20, 5]))
    array([2. , 3.5, 3.5, 1. ])
    >>> xback.rankdata(np.array([1.0, np.nan, 2.0, 2.0]), method="min", nan_policy="omit")
    array([ 1., nan,  2.,  2.])
    """
    _choice(method, "method", _RANK_METHODS, "rankdata")
    _choice(nan_policy, "nan_policy", _NAN_POLICIES, "rankdata")
    b, x = prepare1(x, backend, device)
    d = _dtype(b, x, "rankdata")
    ax = _axis(axis, dim, x.ndim, "rankdata")
    xp, xm, ax = _last_axis(b, x, ax)
    if d.kind in "fcV" and b.traced(xm):
        # traced (torch.compile, torch.func, jax.jit): values cannot be read, so the NaN
        # rule is applied without looking (exact when there is no NaN); the result is then
        # float64 for every method, the dtype eager gives when a NaN is present
        if nan_policy == "raise":
            raise ValueError(
                "rankdata(): nan_policy='raise' reads the values, which traced code "
                "(torch.compile, torch.func, jax.jit) cannot; use 'propagate' or 'omit' there"
            )
        nan = True
    else:
        nan = d.kind in "fcV" and b.has_nan(xm)
    if nan and nan_policy == "raise":
        raise ValueError("rankdata(): the input contains nan values (nan_policy='raise')")
    r = b.rankdata(xm, method)
    if nan:
        if method != "average":
            r = b.astype(r, _native(b, _F64))
        isn = xp.isnan(xm)
        if nan_policy == "propagate":
            isn = xp.any(isn, axis=-1, keepdims=True)
        r = xp.where(isn, xp.asarray(math.nan, dtype=r.dtype, device=_dev(xp, r)), r)
    return _restore(xp, r, ax, xm.ndim)


def _dev(xp: Any, x: Any) -> Any:
    from xback.backends._family_generic import device_of

    return device_of(x)
