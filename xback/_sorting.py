"""``sort`` and ``argsort``: one exact contract on every backend.

The front layer validates and normalises every argument once (axis, dtype, flags) and hands
clean arguments to the backend's ``sort`` / ``argsort`` (see :class:`xback.backends.Backend`).

The contract, identical on NumPy, torch CPU, torch meta and CUDA:

* stable by default, in ascending **and** descending order (equal elements keep their input
  order; a descending sort is not a reversed ascending one);
* NaN after every number in both directions, NaNs in input order; ``-0.0 == 0.0``;
* complex numbers lexicographically (real part, then imaginary part), with NumPy's NaN rule:
  ``R + Rj`` < ``R + nanj`` < ``nan + Rj`` < ``nan + nanj``; in descending order the numbers
  within each of these groups are reversed and the groups keep their order (NaN last);
* values keep the input dtype, indices are always ``int64``; results are fresh arrays.
"""

from __future__ import annotations

import functools
import math
import operator
import types
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal, TypeVar, cast, overload

import numpy as np

from xback._dispatch import prepare1, reraise_layout, trace_constant, tracing
from xback._dtypes import BOOL, COMPLEX, FLOAT, SIGNED, UNSIGNED
from xback._routing import back, kernel_target, plans_of, there
from xback.backends import Backend

if TYPE_CHECKING:  # static types only: importing xback never imports torch
    import numpy.typing as npt
    import torch
    from typing_extensions import Unpack

    from xback._typing import NativeArray, SortOptions

__all__ = ["argsort", "normalize_axis", "sort"]

_SORTABLE: frozenset[np.dtype[Any]] = BOOL | SIGNED | UNSIGNED | FLOAT | COMPLEX

#: the most dimensions an array sorted along an axis is handed to the backend with: NumPy's
#: sorts raise beyond 32 (its arrays may have 64); a sort along an axis of an array with more
#: is computed on a 3-D view (before, axis, after)
MAX_AXIS_NDIM = 32
_SUPPORTED_NAMES = (
    "bool, int8, int16, int32, int64, uint8, uint16, uint32, uint64, float16, float32, "
    "float64, bfloat16, complex64, complex128"
)


class _DefaultAxis(int):
    """The default ``axis=-1``, distinguishable from an explicit ``axis=-1`` (so that
    ``axis=-1, dim=0`` is the documented TypeError). Equal to -1 and printed as -1."""

    __slots__ = ()


_AXIS_DEFAULT: Any = _DefaultAxis(-1)


def normalize_axis(
    axis: Any, dim: Any, ndim: int, fname: str, *, given: bool = True, default: Any = -1
) -> int | None:
    """The rule of ``axis=`` and its alias ``dim=`` for every function that takes an axis
    (sorts and the sort family): the non-negative axis, or None (flatten), else the
    documented error. ``given``: whether ``axis`` was passed (else ``default`` applies);
    giving both ``axis`` and ``dim`` is a ``TypeError``."""
    name = "axis"
    if dim is not None:
        if given:
            raise TypeError(
                f"{fname}() got both axis={axis!r} and dim={dim!r}: dim is an alias of axis "
                f"(the torch spelling); pass only one of them"
            )
        axis, name = dim, "dim"
    elif not given:
        axis = default
    if axis is None:
        return None
    if isinstance(axis, (bool, np.bool_)):
        raise TypeError(f"{fname}(): {name} must be an int or None, got the bool {axis!r}")
    try:
        ax = operator.index(axis)
    except TypeError:
        raise TypeError(
            f"{fname}(): {name} must be an int or None, got {type(axis).__name__} {axis!r}"
        ) from None
    if -ndim <= ax < ndim:
        return ax + ndim if ax < 0 else ax
    hint = (
        "a 0-d array takes only axis=None"
        if ndim == 0
        else f"valid {'axes' if name == 'axis' else 'dims'} are {-ndim}..{ndim - 1}, or None "
        f"for the flattened array"
    )
    raise np.exceptions.AxisError(
        f"{fname}(): {name} {ax} is out of bounds for an array of dimension {ndim} "
        f"(ndim={ndim}); {hint}"
    )


def _slow_axis(axis: Any, dim: Any, ndim: int, fname: str) -> int | None:
    """:func:`normalize_axis` for the sorts (default ``axis=-1``)."""
    return normalize_axis(axis, dim, ndim, fname, given=axis is not _AXIS_DEFAULT)


def _slow_flag(value: Any, name: str, fname: str) -> bool:
    if isinstance(value, np.bool_):
        return bool(value)
    raise TypeError(f"{fname}(): {name} must be a bool, got {type(value).__name__} {value!r}")


class _ByIdentity:
    """A set of dtype objects by identity, for libraries whose dtype ``==`` is Python code
    (array-api-strict: about 0.4 us, a new dtype object for every array). Each object is kept,
    so its id is never reused while cached; bounded."""

    __slots__ = ("_ids",)
    max_size = 256

    def __init__(self) -> None:
        self._ids: dict[int, Any] = {}

    def __contains__(self, dtype: Any) -> bool:
        return id(dtype) in self._ids

    def add(self, dtype: Any) -> None:
        if len(self._ids) >= self.max_size:
            self._ids.clear()
        self._ids[id(dtype)] = dtype

    def __len__(self) -> int:
        return len(self._ids)


#: backend -> its own dtype objects (np.dtype, torch.dtype...) seen to be sortable. One
#: container per backend: dtype objects of different libraries may hash alike
#: (array-api-strict's like NumPy's), and comparing those is slow (array-api-strict warns).
_SORTABLE_SEEN: dict[Backend, set[Any] | _ByIdentity] = {}
#: read with ``.get(b, _NONE)``: a missing key is not created while torch.compile traces
_NONE: frozenset[Any] = frozenset()


def _dtype_ok(b: Backend, x: Any) -> bool:
    """Whether ``x``'s dtype is sortable (a dtype object not seen before); cached."""
    # not cached while torch.compile traces: its guards read the cache as it was
    return _sortable(b, x.dtype, not tracing())


@trace_constant  # NumPy dtypes: decided outside torch.compile's trace
def _sortable(b: Backend, dt: Any, remember: bool) -> bool:
    try:
        d = b.numpy_dtype(dt)
    except TypeError:
        return False
    # non-native byte order (NumPy) sorts like the native dtype
    ok = d in _SORTABLE or (not d.isnative and d.newbyteorder("=") in _SORTABLE)
    if ok and remember:
        seen = _SORTABLE_SEEN.setdefault(b, set())
        if type(seen) is set and not seen and isinstance(type(dt).__eq__, types.FunctionType):
            seen = _SORTABLE_SEEN[b] = _ByIdentity()  # first sight of this backend's dtypes
        seen.add(dt)
    return ok


def _bad_dtype(b: Backend, x: Any, fname: str) -> TypeError:
    try:
        what = str(b.dtype_of(x))
    except TypeError:
        what = str(getattr(x, "dtype", type(x).__name__))
    return TypeError(
        f"{fname}() does not support dtype {what}; supported dtypes: {_SUPPORTED_NAMES}"
    )


def _validate(
    b: Backend, x: Any, axis: Any, dim: Any, descending: Any, stable: Any, fname: str
) -> tuple[int | None, bool, bool]:
    """Checked ``(axis, descending, stable)``; raises before any work is done."""
    ndim: int = x.ndim
    if dim is None and axis is _AXIS_DEFAULT:
        if ndim == 0:
            _slow_axis(-1, None, 0, fname)  # raises the axis error
        ax: int | None = ndim - 1
    elif dim is None and type(axis) is int and -ndim <= axis < ndim:
        ax = axis + ndim if axis < 0 else axis
    else:
        ax = _slow_axis(axis, dim, ndim, fname)
    if descending is not True and descending is not False:
        descending = _slow_flag(descending, "descending", fname)
    if stable is not True and stable is not False:
        stable = _slow_flag(stable, "stable", fname)
    if x.dtype not in _SORTABLE_SEEN.get(b, _NONE) and not _dtype_ok(b, x):
        raise _bad_dtype(b, x, fname)
    return ax, descending, stable


def _collapsed(b: Backend, op: str, x: Any, ax: int, descending: bool, stable: bool) -> Any:
    """Sort along ``ax`` of an array of more than :data:`MAX_AXIS_NDIM` dimensions, viewed
    as 3-D ``(before, n, after)`` (NumPy's sorts stop at 32 dimensions)."""
    shape = tuple(x.shape)
    reshape = getattr(x, "reshape", None)
    if reshape is None:  # an Array API library without the method (array-api-strict)
        raise ValueError(
            f"{op}(): x has {len(shape)} dimensions; sorting along an axis supports at most "
            f"{MAX_AXIS_NDIM} on the {b.name} backend; reshape x first, or flatten with "
            f"axis=None"
        )
    three = (math.prod(shape[:ax]), shape[ax], math.prod(shape[ax + 1 :]))
    return getattr(b, op)(reshape(three), 1, descending, stable).reshape(shape)


def _layout(x: Any, ax: int | None) -> str:
    """Shape class of a sort for the routing table: one array, or rows of a stack."""
    ndim: int = x.ndim
    if ax is None or ndim == 1:
        return "1d"
    return "rows" if ax == ndim - 1 else "axis"


def _routed(
    b: Backend, kb: Any, op: str, x: Any, ax: int | None, descending: bool, stable: bool
) -> Any:
    """Sort on ``kb``'s kernel (:func:`xback._routing.kernel_target`'s answer, not None;
    zero-copy there and back); on ``b`` if sharing fails or ``kb`` is not a library (the
    fused kernel computes no sort)."""
    shared = there(b, kb, x) if isinstance(kb, Backend) else None
    if shared is None:
        return getattr(b, op)(x, ax, descending, stable)
    return back(b, kb, kb.routed(getattr(kb, op), shared[0], ax, descending, stable))


_F = TypeVar("_F", bound=Callable[..., Any])

#: the routing cases of the common call (last axis): one array, rows of a stack
_FAST_CASES = {"sort": ("sort/rows", "sort/1d"), "argsort": ("argsort/rows", "argsort/1d")}


def _one_body(documented: _F) -> _F:
    """:func:`sort` or :func:`argsort` (named by ``documented``, the public signature and
    docstring) as the one body they share. The operation is a closure constant, so a call
    runs this body directly, with no wrapper frame (a tiny sort pays for every call)."""
    op = documented.__name__
    cases = _FAST_CASES[op]
    slot = 2 if op == "argsort" else 0  # in Backend.last_axis_sorts' tuples

    def fn(
        x: Any,
        /,
        *,
        axis: Any = _AXIS_DEFAULT,
        descending: Any = False,
        stable: Any = True,
        backend: Any = None,
        device: Any = None,
        dim: Any = None,
    ) -> Any:
        # choose the backend, check the arguments (the common call's checks first, the full
        # ones otherwise), route, run
        b, x = prepare1(x, backend, device)
        try:
            if axis is _AXIS_DEFAULT and dim is None and (descending is False
                                                          or descending is True):
                if (  # the common call: the backend's direct kernel, nothing routed
                    stable is True
                    and not plans_of(b, True)
                    and (k := b.last_axis_sorts.get(x.dtype)) is not None
                    and 0 < x.ndim <= MAX_AXIS_NDIM
                ):
                    return k[slot + descending](x)
                if (stable is True or stable is False) and (
                    (dt := x.dtype) in _SORTABLE_SEEN.get(b, _NONE) or _dtype_ok(b, x)
                ):
                    ndim: int = x.ndim
                    if 0 < ndim <= MAX_AXIS_NDIM:  # last axis, flags as bools, a dtype seen
                        # before; only stable sorts are routed (their result is unique)
                        kb = (kernel_target(cases[ndim == 1], b, x, dt)
                              if stable and plans_of(b, True) else None)
                        if kb is None:
                            return getattr(b, op)(x, ndim - 1, descending, stable)
                        return _routed(b, kb, op, x, ndim - 1, descending, stable)
            ax, descending, stable = _validate(b, x, axis, dim, descending, stable, op)
            if ax is not None and x.ndim > MAX_AXIS_NDIM:
                return _collapsed(b, op, x, ax, descending, stable)
            kb = kernel_target(f"{op}/{_layout(x, ax)}", b, x) if stable else None
            if kb is None:
                return getattr(b, op)(x, ax, descending, stable)
            return _routed(b, kb, op, x, ax, descending, stable)
        except Exception as exc:
            reraise_layout(b, exc, x=x)  # a sparse or nested tensor: the error names it
            raise

    return cast(_F, functools.update_wrapper(fn, documented))  # its name, doc, signature


@overload
def sort(x: NativeArray, /, *, backend: None = ..., **kw: Unpack[SortOptions]) -> NativeArray: ...
@overload
def sort(
    x: np.generic, /, *, backend: None = ..., **kw: Unpack[SortOptions]
) -> npt.NDArray[Any]: ...
@overload
def sort(
    x: Any, /, *, backend: Literal["numpy"], **kw: Unpack[SortOptions]
) -> npt.NDArray[Any]: ...
@overload
def sort(x: Any, /, *, backend: Literal["torch"], **kw: Unpack[SortOptions]) -> torch.Tensor: ...
@overload
def sort(x: Any, /, *, backend: str | None = ..., **kw: Unpack[SortOptions]) -> Any: ...
@_one_body
def sort(
    x: Any,
    /,
    *,
    axis: int | None = _AXIS_DEFAULT,
    descending: bool = False,
    stable: bool = True,
    backend: str | None = None,
    device: Any = None,
    dim: int | None = None,
) -> Any:
    """Sorted copy of ``x`` along ``axis``, with one exact contract on every backend.

    Parameters
    ----------
    x : array_like
        A NumPy array or scalar, a ``torch.Tensor``, or a Python scalar/list/tuple. Dtypes:
        bool, int8..int64, uint8..uint64, float16/32/64, bfloat16 (torch or ``ml_dtypes``),
        complex64/128.
    axis : int or None, optional
        Axis to sort along (default -1, the last); negative counts from the end. ``None``
        sorts the flattened array (C order) and returns a 1-D array.
    descending : bool, optional
        Sort in descending order. NaN still comes last, and equal elements keep their
        input order when ``stable`` (a descending sort is not a reversed ascending one).
    stable : bool, optional
        Keep equal elements in input order (default True). ``False`` may be faster; the
        result is still correctly ordered.
    backend : str, optional
        A registered backend's name (:data:`xback.backends.KNOWN_BACKENDS`, e.g. ``"numpy"``,
        ``"torch"``, ``"dask"``, ``"array_api_strict"``); see the backend rule below.
    device : str or torch.device, optional
        Device to run on (``"cpu"``, ``"cuda"``, ``"meta"``...).
    dim : int, optional
        Alias of ``axis`` (the torch spelling); give at most one of the two.

    Returns
    -------
    array
        Sorted values: same dtype as ``x``, the chosen backend's array on the chosen device,
        a fresh array (``x`` is never modified). Torch results stay differentiable.

    Raises
    ------
    TypeError
        Both ``axis`` and ``dim`` given; ``axis`` not an int or None; ``descending`` or
        ``stable`` not a bool; unsupported dtype (object, str, float8...).
    numpy.exceptions.AxisError
        ``axis`` out of range (also for an int axis on a 0-d input); it is both a
        ``ValueError`` and an ``IndexError``.

    Notes
    -----
    NaN sorts after every number in both directions (ascending ``[-inf, 1, 2, nan]``,
    descending ``[2, 1, -inf, nan]``), NaNs in input order; ``-0.0`` and ``0.0`` are equal.
    Complex numbers sort by real part, then imaginary part, with NumPy's NaN order.
    Backend: ``backend=`` > ``xback.use`` > the input's kind > numpy; device likewise.

    Examples
    --------
    >>> import numpy as np, xback
    >>> xback.sort(np.array([2.0, np.nan, -np.inf, 1.0]), descending=True)
    array([  2.,   1., -inf,  nan])
    >>> xback.sort(np.array([[3, 1, 2], [0, 5, 4]]), axis=0)
    array([[0, 1, 2],
           [3, 5, 4]])
    """


@overload
def argsort(
    x: NativeArray, /, *, backend: None = ..., **kw: Unpack[SortOptions]
) -> NativeArray: ...
@overload
def argsort(
    x: np.generic, /, *, backend: None = ..., **kw: Unpack[SortOptions]
) -> npt.NDArray[Any]: ...
@overload
def argsort(
    x: Any, /, *, backend: Literal["numpy"], **kw: Unpack[SortOptions]
) -> npt.NDArray[Any]: ...
@overload
def argsort(x: Any, /, *, backend: Literal["torch"], **kw: Unpack[SortOptions]) -> torch.Tensor: ...
@overload
def argsort(x: Any, /, *, backend: str | None = ..., **kw: Unpack[SortOptions]) -> Any: ...
@_one_body
def argsort(
    x: Any,
    /,
    *,
    axis: int | None = _AXIS_DEFAULT,
    descending: bool = False,
    stable: bool = True,
    backend: str | None = None,
    device: Any = None,
    dim: int | None = None,
) -> Any:
    """Indices that sort ``x`` along ``axis``, with one exact contract on every backend.

    Parameters
    ----------
    x : array_like
        A NumPy array or scalar, a ``torch.Tensor``, or a Python scalar/list/tuple. Dtypes:
        bool, int8..int64, uint8..uint64, float16/32/64, bfloat16 (torch or ``ml_dtypes``),
        complex64/128.
    axis : int or None, optional
        Axis to sort along (default -1, the last); negative counts from the end. ``None``
        sorts the flattened array (C order) and returns 1-D indices into it.
    descending : bool, optional
        Sort in descending order. NaN still comes last, and equal elements keep their
        input order when ``stable``.
    stable : bool, optional
        Keep equal elements in input order (default True). ``False`` may be faster; the
        result still orders the values correctly.
    backend : str, optional
        A registered backend's name (:data:`xback.backends.KNOWN_BACKENDS`, e.g. ``"numpy"``,
        ``"torch"``, ``"dask"``, ``"array_api_strict"``); see the backend rule below.
    device : str or torch.device, optional
        Device to run on (``"cpu"``, ``"cuda"``, ``"meta"``...).
    dim : int, optional
        Alias of ``axis`` (the torch spelling); give at most one of the two.

    Returns
    -------
    array
        ``int64`` indices, the chosen backend's array on the chosen device (never requiring
        grad).

    Raises
    ------
    TypeError
        Both ``axis`` and ``dim`` given; ``axis`` not an int or None; ``descending`` or
        ``stable`` not a bool; unsupported dtype (object, str, float8...).
    numpy.exceptions.AxisError
        ``axis`` out of range (also for an int axis on a 0-d input); it is both a
        ``ValueError`` and an ``IndexError``.

    Notes
    -----
    Same order as :func:`sort`. Backend: ``backend=`` > ``xback.use`` > the input's kind >
    numpy; device likewise.

    Examples
    --------
    >>> import numpy as np, xback
    >>> xback.argsort(np.array([1.0, np.nan, 2.0, 1.0]), descending=True)
    array([2, 0, 3, 1])
    """
