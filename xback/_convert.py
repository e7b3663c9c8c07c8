"""Conversion between backends and devices: ``asarray``, ``to_numpy``, ``from_numpy``,
``to_device``.

``copy`` follows the Array API: ``None`` copies only when it must, ``True`` always copies,
``False`` never copies and raises ``ValueError`` when a copy is unavoidable.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Literal, TypeVar, overload

import numpy as np

from xback._dispatch import (
    cached_kind,
    choose,
    kind_of,
    neutral_to_numpy,
    normalize_device,
    nothing_chosen,
    owner,
)
from xback._dtypes import cast_hint, normalize_dtype
from xback.backends import Backend

if TYPE_CHECKING:  # static types only: importing xback never imports torch or dask
    import dask.array
    import numpy.typing as npt
    import torch
    from typing_extensions import Unpack

    from xback._typing import AsarrayOptions, FromNumpyOptions, NativeArray

    _G = TypeVar("_G", bound=np.generic)

__all__ = ["asarray", "from_numpy", "to_device", "to_numpy"]


_NO_KINDS: list[Backend | None] = []


def _check_copy(copy: Any) -> None:
    if copy is not None and copy is not True and copy is not False:
        raise TypeError(f"copy must be None, True or False, got {copy!r}")


_ARRAY_PROTOCOLS = ("__array__", "__array_interface__", "__array_struct__")


def _resolve_array_like(x: Any) -> tuple[Backend | None, Any, bool]:
    """:func:`xback._dispatch.owner`, also accepting objects of other libraries that NumPy
    converts (pandas, xarray: ``__array__`` and the array interfaces). Returns (backend or
    None, x, whether x is such an object, to be converted with ``np.asarray``)."""
    try:
        k, x = owner(x)
    except TypeError:
        if isinstance(x, np.ndarray) or not any(hasattr(type(x), p) for p in _ARRAY_PROTOCOLS):
            raise  # masked arrays (whose mask np.asarray would drop), unsupported types
        return None, x, True
    return k, x, False


def _foreign_to_numpy(
    obj: Any, dtype: np.dtype[Any] | None, copy: bool | None
) -> np.ndarray[Any, Any]:
    """NumPy array from an object with ``__array__`` (``np.asarray``: may copy, and does
    when ``copy=True``; ``copy=False`` raises ``ValueError`` when NumPy must copy)."""
    try:
        a = np.asarray(obj, dtype=dtype, copy=copy)
    except ValueError as exc:
        if copy is False:
            raise ValueError(
                f"copy=False but converting this {type(obj).__name__} to an array copies"
            ) from exc
        raise ValueError(f"cannot make an array from this {type(obj).__name__}: {exc}") from exc
    except TypeError as exc:
        raise TypeError(
            f"cannot make an array from this {type(obj).__name__}: {exc}"
        ) from exc
    if type(a) is not np.ndarray:
        a = np.asarray(a)  # np.matrix and other subclasses: plain
    kind_of(a)  # rejects masked arrays
    return a


_NARROWER = {
    "i": ("int64", "int32", "int16", "int8"),
    "u": ("uint64", "uint32", "uint16", "uint8"),
    "f": ("float64", "float32", "float16"),
    "c": ("complex128", "complex64"),
}


def _check_holdable(b: Backend, a: np.ndarray[Any, Any]) -> None:
    dt = a.dtype
    if not b.can_hold(dt):
        hint = cast_hint(dt)
        # a width this library lacks (JAX without x64, longdouble): the widest narrower one
        for name in _NARROWER.get(dt.kind, ()):
            narrower = np.dtype(name)
            if narrower.itemsize < dt.itemsize and b.can_hold(narrower):
                hint = f"a.astype('{name}')"
                break
        raise TypeError(
            f"the {b.name} backend cannot hold NumPy dtype {dt}; convert first, e.g. {hint}"
        )


def to_numpy(x: Any, /, *, copy: bool | None = None) -> npt.NDArray[Any]:
    """Convert an array of any supported kind to a NumPy array, zero-copy where possible.

    Parameters
    ----------
    x : array_like
        A NumPy array or scalar, a ``torch.Tensor``, a Python scalar, list or tuple, or an
        object NumPy converts (``__array__``, e.g. pandas): converted with ``np.asarray``,
        which may copy (and does with ``copy=True``).
    copy : bool, optional
        ``None`` (default) shares memory when possible; ``True`` always copies; ``False``
        never copies and raises ``ValueError`` when a copy is unavoidable.

    Returns
    -------
    numpy.ndarray
        NumPy input is returned as is (``np.matrix`` and ``np.memmap`` as plain ndarray
        views). CPU tensors share memory (tensors that require grad
        are detached; the caller's tensor is untouched); bfloat16/float8 tensors become
        ``ml_dtypes`` arrays sharing memory; GPU tensors are copied to the host;
        conjugate/negative-bit views are resolved (a copy).

    Raises
    ------
    ValueError
        ``copy=False`` when a copy is needed; meta tensors (they hold no data).
    TypeError
        Sparse tensors (use ``.to_dense()``), unsupported types.

    Examples
    --------
    >>> import numpy as np, xback
    >>> a = np.arange(3.0)
    >>> xback.to_numpy(a) is a
    True
    >>> xback.to_numpy([1, 2])
    array([1, 2])
    """
    k = cached_kind(type(x))
    if k is not None:  # the hot path: an array of a type seen before
        return k.to_numpy(x, copy)
    # a Python object, or a type not seen yet or converted first
    k, x, foreign = _resolve_array_like(x)
    if foreign:
        _check_copy(copy)
        return _foreign_to_numpy(x, None, copy)
    if k is not None:
        return k.to_numpy(x, copy)
    _check_copy(copy)
    if copy is False:
        raise ValueError(f"copy=False but making an array from a {type(x).__name__} copies")
    return neutral_to_numpy(x)


@overload
def from_numpy(
    a: npt.NDArray[Any] | np.generic, /, *, backend: Literal["numpy"],
    **kw: Unpack[FromNumpyOptions],
) -> npt.NDArray[Any]: ...
@overload
def from_numpy(
    a: npt.NDArray[Any] | np.generic, /, *, backend: Literal["torch"],
    **kw: Unpack[FromNumpyOptions],
) -> torch.Tensor: ...
@overload
def from_numpy(
    a: npt.NDArray[Any] | np.generic, /, *, backend: Literal["dask"], chunks: Any = ...,
    **kw: Unpack[FromNumpyOptions],
) -> dask.array.Array: ...
@overload
def from_numpy(
    a: npt.NDArray[Any] | np.generic, /, *, backend: str | None = ..., chunks: Any = ...,
    **kw: Unpack[FromNumpyOptions],
) -> Any: ...
def from_numpy(
    a: Any,
    /,
    *,
    backend: str | None = None,
    device: Any = None,
    copy: bool | None = None,
    chunks: Any = None,
) -> Any:
    """Bring a NumPy array into the chosen backend and device, zero-copy on the CPU.

    The backend follows xback's rule (per-call ``backend=`` > ``xback.use`` > ``"numpy"``):
    outside any context a NumPy array comes back as is.

    Parameters
    ----------
    a : numpy.ndarray or NumPy scalar
        The data. Read-only arrays are copied when the target cannot mark memory read-only
        (torch) unless ``copy=False``, which shares them (writing through the tensor is then
        the caller's responsibility).
    backend : str, optional
        A registered backend's name (:data:`xback.backends.KNOWN_BACKENDS`, e.g. ``"numpy"``,
        ``"torch"``, ``"dask"``, or an Array API library's: ``"array_api_strict"``...).
    device : str or torch.device, optional
        Where the result lives (``"cpu"``, ``"cuda"``, ``"meta"``...).
    copy : bool, optional
        Array API semantics (see :func:`to_numpy`).
    chunks : optional
        Chunked backends (dask) only: how the array is split. ``None`` (default) or
        ``"auto"``: automatic chunks; a size such as ``"64MiB"``: automatic chunks of about
        that many bytes; an int: the chunk length along every axis (``-1``: whole axes); a
        tuple with one entry per axis (an int, ``-1``, ``"auto"``, or the tuple of that
        axis's chunk lengths; for a 1-D array, the chunk lengths themselves); a dict
        ``{axis: entry}`` (other axes automatic). Validated before any work.

    Returns
    -------
    array
        An array of the chosen backend. To torch, contiguous arrays, 0-d arrays and NumPy
        scalars share memory (positive-stride views too); ``ml_dtypes`` bfloat16 arrays
        become bfloat16 tensors sharing memory. Negative strides and non-native byte order
        are copied. To dask, a lazy array whose chunks are views of ``a`` (no copy unless
        ``copy=True``: writing into ``a`` before computing changes the result).

    Raises
    ------
    TypeError
        ``a`` is not a NumPy array or scalar, or its dtype cannot be held by the backend
        (the message names a cast that works); ``chunks`` given for a backend without
        chunks, or of a type that cannot describe chunks.
    ValueError
        ``copy=False`` when a copy is unavoidable; a device the backend cannot use;
        invalid ``chunks`` (lengths not adding up to the axis, axes that do not exist...).

    Examples
    --------
    >>> import numpy as np, xback
    >>> a = np.arange(3.0)
    >>> xback.from_numpy(a) is a
    True
    >>> d = xback.from_numpy(np.arange(10.0), backend="dask", chunks=4)
    >>> d.chunks
    ((4, 4, 2),)
    >>> xback.to_numpy(xback.sort(d, descending=True))[:3]  # sorted across the chunks
    array([9., 8., 7.])
    """
    if type(a) is not np.ndarray:
        if not isinstance(a, (np.ndarray, np.generic)):
            raise TypeError(
                f"from_numpy takes a NumPy array or scalar, got {type(a).__name__}; "
                f"use xback.asarray for other inputs"
            )
        kind_of(a)  # rejects masked arrays
        a = np.asarray(a)
    if copy is not None and copy is not True and copy is not False:
        _check_copy(copy)
    b, dev = choose(backend, device, _NO_KINDS, ())
    if chunks is not None:
        if not b.has_chunks:
            raise TypeError(
                f"from_numpy(chunks=...) is for chunked backends (dask); the {b.name} "
                f"backend's arrays have no chunks: drop chunks=, or pass backend='dask'"
            )
        chunks = b.normalize_chunks(chunks, a.shape, a.dtype)
    if not b.can_hold(a.dtype):
        _check_holdable(b, a)
    if copy is None and not b.respects_readonly and not a.flags.writeable:
        copy = True  # a writable tensor must not alias read-only memory
    if chunks is not None:
        return b.from_numpy_chunked(a, copy, chunks)
    return b.from_numpy(a, dev or "cpu", copy)


@overload
def to_device(x: torch.Tensor, device: Any, /) -> torch.Tensor: ...
@overload
def to_device(x: npt.NDArray[Any], device: Any, /) -> npt.NDArray[Any]: ...
@overload
def to_device(x: _G, device: Any, /) -> _G: ...
def to_device(x: Any, device: Any, /) -> Any:
    """Move an array to ``device`` within its own backend; free when it is already there.

    Parameters
    ----------
    x : array
        A NumPy array or ``torch.Tensor``.
    device : str or torch.device
        The target device.

    Returns
    -------
    array
        ``x`` itself when it is already on ``device`` (no copy, no ``.to()`` call),
        otherwise a copy on ``device``.

    Raises
    ------
    TypeError
        ``x`` is not an array (Python lists and scalars have no device: use
        ``xback.asarray(obj, device=...)``), or ``device`` is neither a str nor a
        ``torch.device``.
    ValueError
        A device the backend cannot use (NumPy: anything but ``"cpu"``; torch: e.g.
        ``"cuda"`` without CUDA).

    Examples
    --------
    >>> import numpy as np, xback
    >>> a = np.zeros(2)
    >>> xback.to_device(a, "cpu") is a
    True
    """
    b = cached_kind(type(x))
    if b is None:
        b, x = owner(x)
    if b is None:
        raise TypeError(
            f"to_device takes an array, got a {type(x).__name__}; use xback.asarray(obj, "
            f"device=...)"
        )
    dev = normalize_device(b, device)
    if b.device_of(x) == dev:
        return x
    return b.to_device(x, dev)


@overload
def asarray(
    obj: NativeArray, /, *, backend: None = ..., **kw: Unpack[AsarrayOptions]
) -> NativeArray: ...
@overload
def asarray(
    obj: np.generic, /, *, backend: None = ..., **kw: Unpack[AsarrayOptions]
) -> npt.NDArray[Any]: ...
@overload
def asarray(
    obj: Any, /, *, backend: Literal["numpy"], **kw: Unpack[AsarrayOptions]
) -> npt.NDArray[Any]: ...
@overload
def asarray(
    obj: Any, /, *, backend: Literal["torch"], **kw: Unpack[AsarrayOptions]
) -> torch.Tensor: ...
@overload
def asarray(obj: Any, /, *, backend: str | None = ..., **kw: Unpack[AsarrayOptions]) -> Any: ...
def asarray(
    obj: Any,
    /,
    *,
    dtype: Any = None,
    backend: str | None = None,
    device: Any = None,
    copy: bool | None = None,
) -> Any:
    """Bring any supported input into the chosen backend and device.

    The entry point of a backend-agnostic function: call it at the top, then use xback's
    operations. The backend follows xback's rule (per-call ``backend=`` > ``xback.use`` >
    the input's own kind > ``"numpy"``), and so does the device.

    Parameters
    ----------
    obj : array_like
        NumPy array or scalar, ``torch.Tensor``, Python scalar, list or tuple, or an object
        NumPy converts (``__array__`` or the array interface: pandas, xarray...). Python
        numbers follow NumPy's inference on every backend (floats become float64). Such
        objects are converted with ``np.asarray``, which may copy (it does for pandas data
        of mixed dtypes; ``copy=True`` always copies, ``copy=False`` raises ``ValueError``
        when NumPy must copy). ``np.matrix`` and ``np.memmap`` become plain ndarrays.
    dtype : dtype, optional
        NumPy dtype, dtype name (``"float32"``, ``"bfloat16"``) or ``torch.dtype``.
    backend : str, optional
        A registered backend's name (:data:`xback.backends.KNOWN_BACKENDS`, e.g. ``"numpy"``,
        ``"torch"``, ``"dask"``, ``"array_api_strict"``).
    device : str or torch.device, optional
        Where the result lives.
    copy : bool, optional
        Array API semantics: ``None`` copies only when it must, ``True`` always,
        ``False`` never (``ValueError`` if it must).

    Returns
    -------
    array
        An array of the chosen backend on the chosen device.

    Raises
    ------
    TypeError
        Unsupported input type or dtype.
    ValueError
        ``copy=False`` when a copy is needed; unusable device.

    Examples
    --------
    >>> import xback
    >>> xback.asarray([1.0, 2.0])
    array([1., 2.])
    >>> xback.asarray([1, 2], dtype="float32")
    array([1., 2.], dtype=float32)
    """
    k = cached_kind(type(obj))
    if k is None:
        k, obj, foreign = _resolve_array_like(obj)
        if foreign:  # pandas, xarray...: through NumPy, then as a NumPy array
            _check_copy(copy)
            dt = None if dtype is None else normalize_dtype(dtype)
            obj = _foreign_to_numpy(obj, dt, copy)
            if copy:
                copy = None  # np.asarray(copy=True) made the one copy asked for
            k = kind_of(obj)
    if (
        k is not None
        and dtype is None
        and backend is None
        and device is None
        and copy is None
        and nothing_chosen()
        and k.is_array(obj)
    ):
        return obj  # fast path: already an array of its own backend, nothing asked
    _check_copy(copy)
    dt = None if dtype is None else normalize_dtype(dtype)
    b, dev = choose(backend, device, [k], (obj,))
    if dev is None:
        dev = b.device_of(obj) if k is b else "cpu"
    if k is None:
        if copy is False:
            raise ValueError(
                f"copy=False but making an array from a {type(obj).__name__} copies"
            )
        a = neutral_to_numpy(obj, dt)
        _check_holdable(b, a)
        return b.from_numpy(a, dev, None)
    if k is not b:
        a = obj if type(obj) is np.ndarray else k.to_numpy(obj, False if copy is False else None)
        if dt is not None and a.dtype != dt:
            if copy is False:
                raise ValueError(f"copy=False but casting {a.dtype} to {dt} copies")
            a, copy = a.astype(dt), None  # the cast made a fresh array
        if not b.can_hold(a.dtype):
            _check_holdable(b, a)
        if copy is None and not b.respects_readonly and not a.flags.writeable:
            copy = True
        return b.from_numpy(a, dev, copy)
    # same backend
    moved = False
    x = obj
    if b.device_of(x) != dev:
        if copy is False:
            raise ValueError(
                f"copy=False but moving from {b.device_of(x)} to {dev} copies"
            )
        x, moved = b.to_device(x, dev), True
    if dt is not None and b.dtype_of(x) != dt:
        if copy is False:
            raise ValueError(f"copy=False but casting {b.dtype_of(x)} to {dt} copies")
        return b.astype(x, dt)
    if copy and not moved:
        return b.copy(x)
    return x if b.is_array(x) else b.from_numpy(np.asarray(x), dev, None)

