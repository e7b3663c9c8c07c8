"""Linear algebra: :func:`svd`, :func:`svdvals`, :func:`lstsq_grad`, :func:`lstsq_grad_fn`.

The front layer validates and normalises every argument once (dimensions, the dtype table,
shapes, ``method``), then calls the backend with clean arguments (see
:class:`xback.backends.Backend`).

Dtype table of :func:`svd` and :func:`svdvals`, the same on every backend:

============================  ==========================================
input                         computed and returned in
============================  ==========================================
float32 / float64             float32 / float64 (``S`` real, same precision)
complex64 / complex128        complex64 / complex128 (``S`` float32 / float64)
bool, int8..64, uint8..64     float64
float16, bfloat16             float32
anything else                 ``TypeError`` naming the dtype
============================  ==========================================

Sign convention of ``svd(..., canonical_signs=True)`` (scikit-learn's ``svd_flip`` with
``u_based_decision=True``, extended to complex phases): for each of the first
``K = min(M, N)`` columns ``u_j`` of ``U``, let ``i`` be the index of its entry of largest
absolute value (the first one on exact ties) and ``p = u_ij / |u_ij|`` its sign (phase);
then ``u_j <- u_j * conj(p)`` (so ``u_ij`` becomes real positive) and row ``j`` of ``Vh`` is
multiplied by ``p``, which leaves ``U @ diag(S) @ Vh`` unchanged. ``U`` is the normalised
factor: ``a`` and ``-a`` get the same ``U`` (and opposite ``Vh``). The extra columns of ``U``
(rows of ``Vh``) that ``full_matrices=True`` adds span a subspace and are not unique; they are
returned as the library computed them.

``SVDResult`` is a :class:`typing.NamedTuple` generic in the array type for type checkers
(and at run time from Python 3.11 on; on 3.10, which cannot combine ``NamedTuple`` and
``Generic``, ``SVDResult[T]`` is accepted and returns the plain class).
"""

from __future__ import annotations

import functools
import sys
import types
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Generic, Literal, NamedTuple, TypeVar, overload

import numpy as np

from xback import _fused  # imports no Numba
from xback._dispatch import (
    cached_kind,
    layout_error,
    nothing_chosen,
    prepare,
    prepare1,
    reraise_layout,
    trace_constant,
    tracing,
)
from xback._dtypes import BOOL, COMPLEX, FLOAT, SIGNED, UNSIGNED, bfloat16, learn_lazy
from xback._routing import back, kernel_target, plans_of, there
from xback.backends import Backend

if TYPE_CHECKING:  # static types only: importing xback never imports torch
    import numpy.typing as npt
    import torch
    from typing_extensions import Unpack

    from xback._typing import DeviceOption, LstsqOptions, NativeArray, SvdOptions

__all__ = ["SVDResult", "lstsq_grad", "lstsq_grad_fn", "svd", "svdvals"]


_A = TypeVar("_A")

_SVD_DOC = """Result of :func:`svd`: ``x == U @ diag(S) @ Vh`` (``Vh``, not ``V``).

A named tuple, generic in the array type for type checkers
(``SVDResult[np.ndarray]``, ``SVDResult[torch.Tensor]``). Fields: ``U`` (left singular
vectors, ``(..., M, M)`` or ``(..., M, K)``), ``S`` (singular values, real, descending,
``(..., K)``, ``K = min(M, N)``), ``Vh`` (right singular vectors, conjugate-transposed,
``(..., N, N)`` or ``(..., K, N)``).

Examples
--------
>>> import numpy as np, xback
>>> U, S, Vh = xback.svd(np.diag([3.0, 4.0]))
>>> S
array([4., 3.])
>>> xback.svd(np.eye(2)).S
array([1., 1.])
"""

if TYPE_CHECKING or sys.version_info >= (3, 11):

    class SVDResult(NamedTuple, Generic[_A]):
        U: _A
        S: _A
        Vh: _A

else:  # Python 3.10 cannot subclass NamedTuple and Generic together
    SVDResult = NamedTuple("SVDResult", [("U", Any), ("S", Any), ("Vh", Any)])  # noqa: UP014
    SVDResult.__class_getitem__ = classmethod(lambda cls, item: cls)  # SVDResult[T] works

SVDResult.__doc__ = _SVD_DOC


#: ``_new_result((U, S, Vh))`` is ``SVDResult(U, S, Vh)`` without its Python-level ``__new__``
_new_result: Callable[[tuple[Any, Any, Any]], SVDResult[Any]] = functools.partial(
    tuple.__new__, SVDResult
)


_F16 = np.dtype(np.float16)
_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)
_C64 = np.dtype(np.complex64)
_C128 = np.dtype(np.complex128)
_INTEGRAL = BOOL | SIGNED | UNSIGNED

#: input dtype -> dtype the SVD is computed and returned in
_SVD_DTYPE: dict[np.dtype[Any], np.dtype[Any]] = {
    _F32: _F32,
    _F64: _F64,
    _C64: _C64,
    _C128: _C128,
    _F16: _F32,
    **{d: _F64 for d in _INTEGRAL},
}
#: the same for ml_dtypes' dtypes, by name (learnt into _SVD_DTYPE on first sight)
_SVD_DTYPE_LAZY: dict[str, np.dtype[Any]] = {"bfloat16": _F32}
_SVD_ALLOWED = "float32, float64, complex64, complex128, float16, bfloat16, bool and integers"

#: the most dimensions an input may have: NumPy's broadcasting of batch shapes
#: (``np.broadcast_shapes``) and its SVD gufuncs fail beyond 32 and 61 (arrays may have 64)
MAX_NDIM = 32

_METHODS = ("auto", "explicit", "autograd", "fused")
_LSTSQ_ALLOWED = _INTEGRAL | FLOAT | COMPLEX
#: backend -> its dtype object (np.dtype, torch.dtype) -> whether it is float32/float64: the
#: dtypes of lstsq_grad's fast path, learnt on first sight by the full path (per backend, so
#: that dtype objects of different libraries are never compared)
_VEC_FAST: dict[Backend, dict[Any, bool]] = {}
#: (dtypes of the inputs) -> (result dtype, compute dtype)
_PROMOTED: dict[tuple[np.dtype[Any], ...], tuple[np.dtype[Any], np.dtype[Any]]] = {}


# -- dispatch -------------------------------------------------------------------------------
def _prepare3(backend: str | None, device: Any, A: Any, x: Any, y: Any) -> tuple[Backend, Any]:
    """:func:`xback._dispatch.prepare` for three inputs, with a fast path (no explicit or
    context choice, three arrays of one kind on one device: returned as they are)."""
    if backend is None and device is None and nothing_chosen():
        k = cached_kind(type(A))
        if (
            k is not None
            and cached_kind(type(x)) is k
            and cached_kind(type(y)) is k
            and k.same_device(A, x, y)
        ):
            return k, (A, x, y)
    b, _, out = prepare(backend, device, A, x, y)
    return b, out


# -- svd ------------------------------------------------------------------------------------
def _svd_ndim_error(fname: str, shape: Any) -> ValueError:
    """The error for an input of fewer than 2 or more than ``MAX_NDIM`` dimensions."""
    nd = len(shape)
    if nd < 2:
        return ValueError(
            f"{fname} needs a matrix or a stack of matrices (..., M, N): x has shape "
            f"{tuple(shape)}"
        )
    return ValueError(_too_many_dims(fname, "x", nd))


#: backend -> its dtype object -> :func:`_svd_cast`'s answer, for the libraries whose dtype
#: objects hash and compare in C (array-api-strict's compare in Python: not kept)
_SVD_CAST: dict[Backend, dict[Any, Any]] = {}


@trace_constant  # NumPy dtypes: decided outside torch.compile's trace
def _svd_cast(b: Backend, native: Any, fname: str) -> Any:
    """The backend's dtype object to cast an input of dtype ``native`` to (the dtype
    table), or None when it is computed as it is; cached."""
    try:
        return _SVD_CAST[b][native]
    except KeyError:
        pass
    dt = b.numpy_dtype(native)
    cdt: np.dtype[Any] | None
    try:
        cdt = _SVD_DTYPE[dt]
    except KeyError:
        # non-native byte order (NumPy '>f8'): computed in the native dtype (a native copy)
        cdt = (learn_lazy(_SVD_DTYPE, dt, _SVD_DTYPE_LAZY) if dt.isnative
               else _SVD_DTYPE.get(dt.newbyteorder("=")))
    if cdt is None:
        raise TypeError(
            f"{fname} does not support x of dtype {dt}; supported: {_SVD_ALLOWED} "
            f"(cast with astype, e.g. to float64)"
        )
    out = None if cdt == dt else b.native_dtype(cdt)
    if not isinstance(type(native).__eq__, types.FunctionType):
        _SVD_CAST.setdefault(b, {})[native] = out
    return out


#: (variant, layout) -> the routing case of an SVD (built once, not per call)
_SVD_CASES = {
    (v, lay): f"svd/{v}-{lay}"
    for v in ("full", "thin", "vals")
    for lay in ("tall", "square", "wide")
}


def _too_many_dims(fname: str, name: str, nd: int) -> str:
    return (
        f"{fname}: {name} has {nd} dimensions; at most {MAX_NDIM} are supported (NumPy's "
        f"limit for batched linear algebra): reshape the batch dimensions into fewer"
    )


def _nonfinite(fname: str) -> ValueError:
    return ValueError(
        f"{fname}: x contains non-finite values (NaN or inf); the singular value "
        f"decomposition is only defined for finite input"
    )


def _nonfinite_result(b: Backend, x: Any, fname: str) -> ValueError:
    """The error when the singular values of ``x`` are not all finite: NaN or inf in ``x``
    makes them NaN; else they overflowed."""
    if not b.all_finite(x):
        return _nonfinite(fname)
    return ValueError(
        f"{fname}: the singular values overflowed although x is finite; scale x down"
    )


def _raise_nonfinite(b: Backend, x: Any, fname: str, exc: Exception) -> None:
    """On a failed SVD: NumPy raises LinAlgError and torch a RuntimeError for NaN input,
    raised here as the one ``ValueError``; other failures are left to the caller."""
    if not b.all_finite(x):
        raise _nonfinite(fname) from exc


def _svd_call(
    fname: str, x: Any, backend: str | None, device: Any, variant: str,
    canonical_signs: bool = False,
) -> tuple[Any, ...]:
    """The one body of :func:`svd` and :func:`svdvals` (``variant`` ``"full"``, ``"thin"``
    or ``"vals"``): choose the backend, check and cast ``x``, route, compute, and keep the
    finiteness contract. Returns ``(U, S, Vh)``, or ``(S,)`` for ``"vals"``."""
    b, x = prepare1(x, backend, device)
    try:  # in one frame, reading little: each step costs most after LAPACK
        nd: int = x.ndim
        if nd < 2 or nd > MAX_NDIM:
            raise _svd_ndim_error(fname, x.shape)
        cdt = _svd_cast(b, x.dtype, fname)
        if cdt is not None:
            x = b.astype(x, cdt)
        if b.traced(x):  # values cannot be read: non-finite input gives NaN factors
            if variant == "vals":
                return b.nan_where_nonfinite(x, lambda a: (b.svdvals_traced(a),))
            full = variant == "full"
            return b.nan_where_nonfinite(x, lambda a: b.svd(a, full, canonical_signs))
        kb, kx = b, x
        if nd == 2 and plans_of(b, True):  # a single matrix may be routed (tall: M >= 2N;
            m, n = x.shape  # square-ish: N <= M < 2N)
            layout = "tall" if m >= 2 * n else "square" if m >= n else "wide"
            t = kernel_target(_SVD_CASES[variant, layout], b, x)
            if isinstance(t, Backend) and (shared := there(b, t, x)) is not None:
                kb, kx = t, shared[0]
        checked = False  # x proven finite, with a norm no singular value can overflow
        if variant in b.svd_checked_first or (kb is not b and variant in kb.svd_checked_first):
            # checked first where the input's backend or the kernel's asks for it
            # (Backend.svd_checked_first): LAPACK's gesdd can loop forever on inf (observed
            # with NumPy 2.4 / OpenBLAS, and through array-api-strict, on a 6x3 matrix
            # holding one inf), and prints on stdout for some inf input. Where the backend
            # proves the norm bounded, S needs no check after
            # (docs/benchmarks.md#finiteness-checks).
            checked = b.norm_bounded(x)
            if not checked and not b.all_finite(x):
                raise _nonfinite(fname)
        try:
            if kb is b:
                out = (
                    (kb.svdvals(kx),) if variant == "vals"
                    else kb.svd(kx, variant == "full", canonical_signs)
                )
            else:  # routed
                out = (
                    (kb.routed(kb.svdvals, kx),) if variant == "vals"
                    else kb.routed(kb.svd, kx, variant == "full", canonical_signs)
                )
        except Exception as exc:
            _raise_nonfinite(kb, kx, fname, exc)
            raise
        if kb is not b:
            out = tuple(back(b, kb, r) for r in out)
        # S checked: NaN or inf anywhere in a matrix makes its singular values NaN
        if not checked and not b.singular_values_finite(out[len(out) // 2]):
            raise _nonfinite_result(b, x, fname)
        return out
    except Exception as exc:  # a sparse, nested or quantized tensor: the error names it
        reraise_layout(b, exc, x=x)
        raise


@overload
def svd(
    x: NativeArray, /, *, backend: None = ..., **kw: Unpack[SvdOptions]
) -> SVDResult[NativeArray]: ...
@overload
def svd(
    x: np.generic, /, *, backend: None = ..., **kw: Unpack[SvdOptions]
) -> SVDResult[npt.NDArray[Any]]: ...
@overload
def svd(
    x: Any, /, *, backend: Literal["numpy"], **kw: Unpack[SvdOptions]
) -> SVDResult[npt.NDArray[Any]]: ...
@overload
def svd(
    x: Any, /, *, backend: Literal["torch"], **kw: Unpack[SvdOptions]
) -> SVDResult[torch.Tensor]: ...
@overload
def svd(x: Any, /, *, backend: str | None = ..., **kw: Unpack[SvdOptions]) -> SVDResult[Any]: ...
def svd(
    x: Any,
    /,
    *,
    full_matrices: bool = True,
    canonical_signs: bool = False,
    backend: str | None = None,
    device: Any = None,
) -> SVDResult[Any]:
    """Singular value decomposition ``x = U @ diag(S) @ Vh`` of a matrix or a stack.

    Parameters
    ----------
    x : array, shape (..., M, N)
        NumPy array, torch tensor or nested list. Dtypes: see the table in
        :mod:`xback._linalg` (float16/bfloat16 -> float32, bool/integers -> float64).
    full_matrices : bool, default True
        ``True``: ``U`` is ``(..., M, M)`` and ``Vh`` ``(..., N, N)``; ``False``: ``U`` is
        ``(..., M, K)`` and ``Vh`` ``(..., K, N)`` with ``K = min(M, N)`` (as in NumPy and
        the Array API).
    canonical_signs : bool, default False
        Fix the sign (phase, for complex input) of each singular-vector pair so that every
        backend returns the same ``U`` and ``Vh`` (first ``K`` vectors, distinct singular
        values): the entry of largest absolute value of each column of ``U`` is made real
        positive and ``Vh`` adjusted (scikit-learn's ``svd_flip`` convention).
    backend, device : optional
        Backend/device rule of :func:`xback.use`: per-call > ``use(...)`` > the input's own.

    Returns
    -------
    SVDResult
        Named tuple ``(U, S, Vh)``; ``S`` real, descending, at ``x``'s precision
        (complex64 gives float32 ``S``). On torch the results stay differentiable.

    Raises
    ------
    ValueError
        ``x`` has fewer than 2 dimensions, or contains NaN or inf (on every backend).
    TypeError
        Unsupported dtype (named in the message).

    Examples
    --------
    >>> import numpy as np, xback
    >>> U, S, Vh = xback.svd(np.array([[3.0, 0.0], [0.0, -4.0]]), canonical_signs=True)
    >>> S
    array([4., 3.])
    >>> U
    array([[0., 1.],
           [1., 0.]])
    >>> bool(np.allclose(U @ np.diag(S) @ Vh, [[3.0, 0.0], [0.0, -4.0]]))
    True
    """
    return _new_result(  # SVDResult(U, S, Vh) without its Python __new__
        _svd_call("svd", x, backend, device, "full" if full_matrices else "thin",
                  bool(canonical_signs))
    )


@overload
def svdvals(
    x: NativeArray, /, *, backend: None = ..., **kw: Unpack[DeviceOption]
) -> NativeArray: ...
@overload
def svdvals(
    x: np.generic, /, *, backend: None = ..., **kw: Unpack[DeviceOption]
) -> npt.NDArray[Any]: ...
@overload
def svdvals(
    x: Any, /, *, backend: Literal["numpy"], **kw: Unpack[DeviceOption]
) -> npt.NDArray[Any]: ...
@overload
def svdvals(
    x: Any, /, *, backend: Literal["torch"], **kw: Unpack[DeviceOption]
) -> torch.Tensor: ...
@overload
def svdvals(x: Any, /, *, backend: str | None = ..., **kw: Unpack[DeviceOption]) -> Any: ...
def svdvals(x: Any, /, *, backend: str | None = None, device: Any = None) -> Any:
    """Singular values of a matrix or a stack, descending.

    Parameters
    ----------
    x : array, shape (..., M, N)
        Same dtype table as :func:`svd`.
    backend, device : optional
        Backend/device rule of :func:`xback.use`: per-call > ``use(...)`` > the input's own.

    Returns
    -------
    array, shape (..., min(M, N))
        Real, at ``x``'s precision; differentiable on torch.

    Raises
    ------
    ValueError
        ``x`` has fewer than 2 dimensions, or contains NaN or inf.
    TypeError
        Unsupported dtype.

    Examples
    --------
    >>> import numpy as np, xback
    >>> xback.svdvals(np.array([[3, 0], [0, -4]]))
    array([4., 3.])
    """
    return _svd_call("svdvals", x, backend, device, "vals")[0]


# -- lstsq_grad -----------------------------------------------------------------------------
def _promote(fname: str, names: tuple[str, ...], dts: tuple[np.dtype[Any], ...]) -> tuple[
    np.dtype[Any], np.dtype[Any]
]:
    """(result dtype, compute dtype) for the inputs' dtypes; cached.

    NumPy's promotion of the dtypes; bool/integers only -> float64; float16 and bfloat16
    are computed in float32 and returned in their own dtype (bfloat16 with float16 gives
    float32, as in torch).
    """
    try:
        return _PROMOTED[dts]
    except KeyError:
        pass
    key = dts
    # non-native byte order (NumPy '>f8') computes like the native dtype: the inputs are cast
    # (a native copy) and the result is in native order
    dts = tuple(d if d.isnative else d.newbyteorder("=") for d in dts)
    for name, d in zip(names, dts):
        if d not in _LSTSQ_ALLOWED:
            raise TypeError(
                f"{fname} does not support {name} of dtype {d}; supported: bool, integers, "
                f"float16, bfloat16, float32, float64, complex64, complex128"
            )
    bf16 = bfloat16()  # None while ml_dtypes is not imported: then no input is bfloat16
    if bf16 is not None and bf16 in dts:
        r = np.result_type(*(_F16 if d == bf16 else d for d in dts))
        if r == _F16:
            r = _F32 if _F16 in dts else bf16
    else:
        r = np.result_type(*dts)
    if r in _INTEGRAL:
        r = _F64
    out = (r, _F32 if r == _F16 or (bf16 is not None and r == bf16) else r)
    _PROMOTED[key] = out
    return out


def _shape_error(**shapes: Any) -> str:
    return ", ".join(f"{k} has shape {tuple(v)}" for k, v in shapes.items())


def _check_A(A: Any, fname: str) -> None:
    if len(A.shape) < 2:
        raise ValueError(
            f"{fname}: A must be a matrix or a stack of matrices (..., m, n), "
            f"but A has shape {tuple(A.shape)}"
        )
    if len(A.shape) > MAX_NDIM:
        raise ValueError(_too_many_dims(fname, "A", len(A.shape)))


def _check_y(A: Any, y: Any, vector: bool, k: int | None) -> None:
    """Check ``y`` against ``A`` (and ``k``, the columns of ``x``, when known)."""
    m = A.shape[-2]
    if vector:
        if len(y.shape) != 1 or y.shape[0] != m:
            raise ValueError(
                f"A has shape {tuple(A.shape)} but y has shape {tuple(y.shape)}: with a "
                f"vector x, y must have shape ({m},)"
            )
        return
    if len(y.shape) < 2 or y.shape[-2] != m or (k is not None and y.shape[-1] != k):
        want = f"(..., {m}, {'k' if k is None else k})"
        raise ValueError(
            f"A has shape {tuple(A.shape)} but y has shape {tuple(y.shape)}: with x of "
            f"shape (..., n, k), y must have shape {want}"
        )


def _check_x(A: Any, x: Any, fname: str) -> bool:
    """Check ``x`` against ``A``; return whether ``x`` is a vector (1-D)."""
    n = A.shape[-1]
    nd = len(x.shape)
    if nd == 1:
        if x.shape[0] != n:
            raise ValueError(
                f"A has shape {tuple(A.shape)} but x has shape {tuple(x.shape)}: x must have "
                f"shape ({n},) or (..., {n}, k)"
            )
        return True
    if nd == 0 or x.shape[-2] != n:
        raise ValueError(
            f"A has shape {tuple(A.shape)} but x has shape {tuple(x.shape)}: x must have "
            f"shape ({n},) or (..., {n}, k)"
        )
    return False


def _check_batch(fname: str = "lstsq_grad", **shapes: Any) -> None:
    for name, s in shapes.items():
        if len(s) > MAX_NDIM:
            raise ValueError(_too_many_dims(fname, name, len(s)))
    try:
        np.broadcast_shapes(*(tuple(s[:-2]) for s in shapes.values()))
    except ValueError:
        raise ValueError(
            f"batch dimensions do not broadcast: {_shape_error(**shapes)}"
        ) from None


def _check_method(method: Any, b: Backend, fname: str) -> None:
    if method not in _METHODS or not isinstance(method, str):
        raise ValueError(
            f"{fname}: method must be one of 'auto', 'explicit', 'autograd', 'fused', "
            f"got {method!r}"
        )
    if method == "fused" and not _fused.available():
        raise ValueError(
            f"{fname}: method='fused' needs Numba, which is not installed: "
            f"{_fused.INSTALL_HINT}"
        )
    if method == "autograd" and not b.has_autograd:
        raise ValueError(
            f"{fname}: method='autograd' needs a backend with automatic differentiation "
            f"(torch); the {b.name!r} backend supports method='auto', 'explicit' and "
            f"'fused'"
        )


@overload
def lstsq_grad(
    A: NativeArray, x: NativeArray, y: NativeArray, /, *, backend: None = ...,
    **kw: Unpack[LstsqOptions],
) -> NativeArray: ...
@overload
def lstsq_grad(
    A: Any, x: Any, y: Any, /, *, backend: Literal["numpy"], **kw: Unpack[LstsqOptions]
) -> npt.NDArray[Any]: ...
@overload
def lstsq_grad(
    A: Any, x: Any, y: Any, /, *, backend: Literal["torch"], **kw: Unpack[LstsqOptions]
) -> torch.Tensor: ...
@overload
def lstsq_grad(
    A: Any, x: Any, y: Any, /, *, backend: str | None = ..., **kw: Unpack[LstsqOptions]
) -> Any: ...
def lstsq_grad(
    A: Any,
    x: Any,
    y: Any,
    /,
    *,
    method: str = "auto",
    backend: str | None = None,
    device: Any = None,
) -> Any:
    """Gradient with respect to ``x`` of ``||y - A x||²₂``: ``2 Aᴴ (A x - y)``.

    ``Aᴴ`` is the conjugate transpose (for complex ``x`` this is what torch autograd
    returns). Evaluated as ``2 * (Aᴴ @ (A @ x - y))``, never forming a scaled or conjugated
    copy of ``A``; on the torch CPU backend ``"auto"`` streams tall ``A`` once, in row blocks.

    Parameters
    ----------
    A : array, shape (..., m, n)
    x : array, shape (n,) or (..., n, k)
        A vector only when 1-D (then ``y`` is ``(m,)``); otherwise a stack of matrices
        (NumPy >= 2 ``linalg.solve`` rule). Batch dimensions of ``A``, ``x``, ``y`` broadcast.
    y : array, shape (m,) or (..., m, k)
    method : {"auto", "explicit", "autograd", "fused"}, default "auto"
        ``"explicit"``: the closed form, every backend. ``"autograd"``: torch autograd on
        private leaves (works under ``torch.no_grad()``; the caller's ``requires_grad`` and
        ``.grad`` are untouched; the result is not differentiable). ``"fused"``: the
        one-pass Numba kernel of :mod:`xback._fused` (needs ``pip install 'xback[fast]'``;
        ``ValueError`` without Numba), which reads ``A`` once instead of twice; it applies
        to a 2-D C-contiguous real float32/float64 ``A`` on the CPU (NumPy arrays and torch
        CPU tensors when autograd need not see the call); other inputs (complex, batched,
        other layouts or devices, torch inputs requiring grad) get the ``"auto"`` BLAS
        formula. Compiled on first use (the cost: docs/benchmarks.md#compiling-the-fused-kernel),
        then cached on disk in the private folder ``numba-<uid>`` of the user cache directory
        (``$XBACK_CACHE_DIR``, else ``~/.cache/xback``; mode 0700, never to be shared, see
        docs/routing.md). ``"auto"``: the fastest exact method
        measured for the dtype and size by the routing cost table (``xback tune``,
        :mod:`xback._routing`): the fused kernel where it beat both libraries' BLAS (Numba
        installed, ``A`` with at least
        :data:`xback._fused.AUTO_MIN_N` columns, ``x`` with at most ``AUTO_MAX_K``), else
        the faster library's BLAS formula; with routing off (``use(route=False)``,
        ``XBACK_ROUTE=0``) always the backend's own BLAS formula.
    backend, device : optional
        Backend/device rule of :func:`xback.use`: per-call > ``use(...)`` > the inputs' own.

    Returns
    -------
    array, shape (..., n) or (..., n, k)
        In NumPy's promotion of the three dtypes (bool/integers -> float64; float16 and
        bfloat16 computed in float32), the same dtype on every backend. Differentiable on
        torch with ``"explicit"`` (and ``"auto"``).

    Raises
    ------
    ValueError
        ``A`` has fewer than 2 dimensions; mismatched or non-broadcasting shapes (named as
        Python tuples); unknown ``method``; ``method="autograd"`` on numpy.
    TypeError
        Unsupported dtype; inputs of two kinds with no ``backend=``.

    Notes
    -----
    NaN and inf propagate (IEEE arithmetic) rather than raise: checking would cost a
    second pass over ``A``, doubling the time of this memory-bound operation.

    Examples
    --------
    >>> import numpy as np, xback
    >>> A = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    >>> xback.lstsq_grad(A, np.array([1.0, 1.0]), np.array([0.0, 0.0, 0.0]))
    array([ 6., 12.])
    """
    b, (A, x, y) = _prepare3(backend, device, A, x, y)
    try:
        if method == "auto":  # fast path: a matrix, two vectors of one real float dtype
            sA, sx, sy = A.shape, x.shape, y.shape
            if len(sA) == 2 and len(sx) == 1 and len(sy) == 1 and sA[1] == sx[0] and sA[0] == sy[0]:
                dt = A.dtype
                fast = _VEC_FAST.get(b)
                if fast is not None and x.dtype == dt and y.dtype == dt and fast.get(dt, False):
                    return _lstsq_grad_on(b, A, x, y, "auto", dt)
        _check_method(method, b, "lstsq_grad")
        _check_A(A, "lstsq_grad")
        vector = _check_x(A, x, "lstsq_grad")
        _check_y(A, y, vector, None if vector else x.shape[-1])
        if not vector and (len(A.shape) > 2 or len(x.shape) > 2 or len(y.shape) > 2):
            _check_batch(A=A.shape, x=x.shape, y=y.shape)
        # not cached while torch.compile traces: its guards read the caches as they were
        rdt, cdt, (cA, cx, cy), _ = _lstsq_plan(
            b, (A.dtype, x.dtype, y.dtype), ("A", "x", "y"), "lstsq_grad", not tracing()
        )
        if cA:
            A = b.astype(A, cdt)
        if cx:
            x = b.astype(x, cdt)
        if cy:
            y = b.astype(y, cdt)
        g = _lstsq_grad_on(b, A, x, y, method)
        return g if rdt is None else b.astype(g, rdt)
    except Exception as exc:  # the clear error for sparse and nested tensors
        err = layout_error(b, A=A, x=x, y=y)
        if err is not None:
            raise err from exc
        raise


@trace_constant  # NumPy dtypes: decided outside torch.compile's trace
def _lstsq_plan(
    b: Backend, natives: tuple[Any, ...], names: tuple[str, ...], fname: str, remember: bool
) -> tuple[Any, Any, tuple[bool, ...], str]:
    """The dtype rule of :func:`lstsq_grad` for inputs of the backend's dtype objects
    ``natives``: ``(result dtype or None when it is the compute dtype, compute dtype, which
    inputs to cast, the result dtype's name)``, dtypes as the backend's own objects.
    ``remember``: record the inputs' dtype for the fast path of :func:`lstsq_grad`."""
    dts = tuple(b.numpy_dtype(d) for d in natives)
    rdt, cdt = _promote(fname, names, dts)
    if remember and len(dts) == 3 and dts[0] == dts[1] == dts[2] == cdt:
        # remember the backend's dtype object for the fast path
        _VEC_FAST.setdefault(b, {})[natives[0]] = cdt in (_F32, _F64)
    native_c = b.native_dtype(cdt)
    return (
        None if rdt == cdt else b.native_dtype(rdt),
        native_c,
        tuple(d != cdt for d in dts),
        str(rdt),
    )


def _lstsq_grad_on(b: Backend, A: Any, x: Any, y: Any, method: str, dtype: Any = None) -> Any:
    """``b.lstsq_grad`` on clean inputs. ``"fused"``: the fused kernel
    (:data:`xback._fused.TARGET`) where it covers the inputs, else the ``"auto"`` formula.
    ``"auto"`` with a matrix ``A`` (the measured layout ``"lstsq_grad/vec"``): what the cost
    table picks at this size: the fused kernel (also for ``x`` of at most
    :data:`xback._fused.AUTO_MAX_K` columns, within its own limits), or, for a vector
    ``x``, the faster library's BLAS (zero-copy there, the result back on ``b``)."""
    if method == "fused":
        g = _fused.TARGET.grad(b, A, x, y)
        return g if g is not None else b.lstsq_grad(A, x, y, "auto")
    if method != "auto" or A.ndim != 2 or not plans_of(b, True):  # nothing routed from b
        return b.lstsq_grad(A, x, y, method)
    vector = x.ndim == 1
    if not vector and (x.ndim > 2 or y.ndim > 2 or x.shape[-1] > _fused.AUTO_MAX_K):
        return b.lstsq_grad(A, x, y, "auto")  # batched or wide right-hand sides: BLAS
    kb = kernel_target("lstsq_grad/vec", b, A, dtype)
    if kb is None:
        return b.lstsq_grad(A, x, y, "auto")
    if not isinstance(kb, Backend):  # the fused kernel, within its own limits
        g = kb.grad(b, A, x, y) if kb.auto_applies(A.shape[1], b.dtype_of(A)) else None
        return g if g is not None else b.lstsq_grad(A, x, y, "auto")
    shared = there(b, kb, A, x, y) if vector else None
    if shared is None:
        return b.lstsq_grad(A, x, y, "auto")
    kA, kx, ky = shared
    return back(b, kb, kb.routed(kb.lstsq_grad, kA, kx, ky, "auto"))


def lstsq_grad_fn(
    A: Any, y: Any, /, *, backend: str | None = None, device: Any = None
) -> Callable[[Any], Any]:
    """Reusable :func:`lstsq_grad` for fixed ``A`` and ``y``: returns ``g`` with
    ``g(x) == lstsq_grad(A, x, y)``.

    ``AᴴA`` and ``Aᴴy`` are computed once, so each call costs ``O(n² k)`` instead of
    ``O(m n k)`` (about ``m / n`` times less work: 10x for the seed's ``m = 10 n``).

    Parameters
    ----------
    A : array, shape (..., m, n)
    y : array, shape (m,) or (..., m, k)
        A vector ``y`` means ``g`` takes vectors ``x`` of shape ``(n,)``; otherwise ``g``
        takes ``x`` of shape ``(..., n, k)``.
    backend, device : optional
        Chosen once, here (per-call > ``use(...)`` > the inputs' own); ``g`` brings each
        ``x`` to that backend and device.

    Returns
    -------
    callable
        ``g(x)`` with the shape and dtype rules of :func:`lstsq_grad`. ``A`` and ``y`` are
        kept by reference and never modified; ``AᴴA`` and ``Aᴴy`` reflect their values at
        creation (build a new ``g`` after changing them). An ``x`` of a wider dtype (e.g.
        complex with real ``A``) forms ``AᴴA`` again in that dtype, once.

    Raises
    ------
    ValueError, TypeError
        As :func:`lstsq_grad`, for ``A`` and ``y`` here and for ``x`` when ``g`` is called.

    Notes
    -----
    Accuracy: the Gram form computes ``AᴴA x - Aᴴy``, whose rounding error grows with
    ``cond(A)²`` instead of ``cond(A)``; for ill-conditioned ``A`` (``cond(A)`` beyond about
    ``1e4`` in float32, ``1e8`` in float64) prefer :func:`lstsq_grad`. Near the minimiser the
    gradient is a small difference of large terms and loses relative accuracy in both forms.

    Examples
    --------
    >>> import numpy as np, xback
    >>> A = np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]])
    >>> g = xback.lstsq_grad_fn(A, np.zeros(3))
    >>> g(np.array([1.0, 1.0]))
    array([ 6., 12.])
    """
    b, dev, (A, y) = prepare(backend, device, A, y)
    err = layout_error(b, A=A, y=y)
    if err is not None:
        raise err
    _check_A(A, "lstsq_grad_fn")
    vector = len(y.shape) == 1
    _check_y(A, y, vector, None)
    if not vector and (len(A.shape) > 2 or len(y.shape) > 2):
        _check_batch("lstsq_grad_fn", A=A.shape, y=y.shape)
    names = ("A", "x", "y")
    _, cdt0, (cA0, cy0), base = _lstsq_plan(
        b, (A.dtype, y.dtype), ("A", "y"), "lstsq_grad_fn", False
    )
    #: compute dtype (the backend's object) -> (AᴴA, Aᴴy) in it
    cache: dict[Any, tuple[Any, Any]] = {}

    def gram(cdt: Any, cast_A: bool, cast_y: bool) -> tuple[Any, Any]:
        try:
            return cache[cdt]
        except KeyError:
            pass
        Ac = b.astype(A, cdt) if cast_A else A
        yc = b.astype(y, cdt) if cast_y else y
        cache[cdt] = out = b.gram(Ac, yc)
        return out

    gram(cdt0, cA0, cy0)
    name, n = b.name, A.shape[-1]

    def g(x: Any) -> Any:
        _, _, (xc,) = prepare(name, dev, x)
        if b.layout_problem(xc) is not None:
            raise layout_error(b, x=xc)  # type: ignore[misc]
        if vector:
            if len(xc.shape) != 1 or xc.shape[0] != n:
                raise ValueError(
                    f"A has shape {tuple(A.shape)} but x has shape {tuple(xc.shape)}: with "
                    f"a vector y, x must have shape ({n},)"
                )
        else:
            _check_x(A, xc, "lstsq_grad_fn")
            if len(xc.shape) < 2 or xc.shape[-1] != y.shape[-1]:
                raise ValueError(
                    f"y has shape {tuple(y.shape)} but x has shape {tuple(xc.shape)}: x must "
                    f"have shape (..., {n}, {y.shape[-1]})"
                )
            if len(xc.shape) > 2:
                _check_batch("lstsq_grad_fn", A=A.shape, x=xc.shape, y=y.shape)
        rdt, cdt, (cA, cx, cy), _ = _lstsq_plan(
            b, (A.dtype, xc.dtype, y.dtype), names, "lstsq_grad_fn", False
        )
        G, c = gram(cdt, cA, cy)
        if cx:
            xc = b.astype(xc, cdt)
        out = b.gram_grad(G, c, xc)
        return out if rdt is None else b.astype(out, rdt)

    g.__doc__ = (
        f"Gradient of ||y - A x||² for fixed A of shape {tuple(A.shape)} ({base}); "
        f"see xback.lstsq_grad_fn."
    )
    return g
