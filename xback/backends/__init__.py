"""The backend protocol and the registry of known backends.

A backend is one module, ``xback/backends/<name>.py``, that defines ``BACKEND``: an
instance of a :class:`Backend` subclass (or ``make_backend(name)``, for a module serving
several libraries, like the generic Array API backend). The front layer (``xback._dispatch`` and the
operation modules) validates and normalises every argument once; a backend receives clean
arguments only and computes:

* arrays are already of the backend's own kind and on the chosen device;
* ``axis`` is a non-negative ``int`` smaller than ``x.ndim`` (or ``None`` where documented);
* devices are normalised strings (``"cpu"``, ``"cuda:0"``, ``"meta"``);
* dtypes are :class:`numpy.dtype` objects (``ml_dtypes`` for bfloat16 and float8).

Adding a backend (CuPy, JAX, Dask) means one new module implementing this protocol and one
line in :data:`KNOWN_BACKENDS`.
"""

from __future__ import annotations

import cmath
import contextlib
from collections.abc import Callable, Mapping
from types import MappingProxyType
from typing import Any, ClassVar

import numpy as np

from xback.backends import _linalg_generic, _sort_generic

__all__ = ["FINITE_LIST_MAX", "KNOWN_BACKENDS", "Backend", "HostBackend", "finite_values"]

#: a CPU vector of at most this many elements is checked for NaN/inf as Python numbers
#: (``tolist``), cheaper than the libraries' own checks: docs/benchmarks.md#finiteness-checks
FINITE_LIST_MAX = 256


def finite_values(values: list[Any]) -> bool:
    """Whether every Python number (float or complex) of ``values`` is finite."""
    return all(map(cmath.isfinite, values))

#: name -> (module holding ``BACKEND``, top-level package it needs, pip requirement)
KNOWN_BACKENDS: dict[str, tuple[str, str, str]] = {
    "numpy": ("xback.backends.numpy", "numpy", "numpy"),
    "torch": ("xback.backends.torch", "torch", "xback[torch]"),
    # generic Array API backend (xback.backends.array_api), one instance per library
    "array_api_strict": ("xback.backends.array_api", "array_api_strict", "array-api-strict"),
    "jax": ("xback.backends.array_api", "jax", "jax"),
    "cupy": ("xback.backends.array_api", "cupy", "cupy"),
    "dask": ("xback.backends.dask", "dask", "xback[dask]"),
}


class Backend:
    """Base class of every backend: the protocol the front layer relies on.

    Subclasses override every method that raises ``NotImplementedError`` (kinds, devices,
    dtypes, conversion); sorting, the linear algebra and the sort family have defaults
    written once against the array's Array API namespace (:meth:`namespace`;
    :mod:`xback.backends._sort_generic`, :mod:`xback.backends._linalg_generic`,
    :mod:`xback.backends._family_generic`), which a backend overrides only for a measured
    fast path (calling ``super()`` for the rest).
    Methods receive clean arguments (see the module docstring) and never validate them
    again.
    """

    #: registry name, e.g. ``"numpy"``
    name: ClassVar[str] = ""
    #: False when the library cannot mark an array read-only (torch): the front layer then
    #: copies read-only NumPy arrays on explicit conversion instead of sharing them.
    respects_readonly: ClassVar[bool] = True

    # -- kinds, devices, dtypes ------------------------------------------------------------
    def owns(self, tp: type) -> bool:
        """Whether ``tp`` is this backend's array type (called once per type, then cached)."""
        raise NotImplementedError

    def is_array(self, x: Any) -> bool:
        """Whether ``x`` (owned by this backend) is an array rather than a scalar type."""
        return True

    def converts(self, tp: type) -> bool:
        """Whether instances of ``tp`` (a type this backend owns) are converted to the
        backend's plain array type before any operation (NumPy: ``np.matrix`` and
        ``np.memmap`` become ``np.ndarray`` views). Called once per type, then cached."""
        return False

    def plain(self, x: Any) -> Any:
        """``x`` (of a type :meth:`converts` accepts) as the plain array type, without
        copying its data."""
        return x

    def layout_problem(self, x: Any) -> str | None:
        """Why the operations cannot compute on ``x`` although its type is this backend's
        (a sparse or nested torch tensor), with the fix; ``None`` when they can.

        Names the argument as ``{name}`` (the front layer fills it in). Called where a check
        costs little against the operation, and on the error path of the others.
        """
        return None

    def normalize_device(self, device: str) -> str:
        """Validate a device string for this backend and return its canonical form.

        Raises ``ValueError`` (never a backend assertion) when the device does not exist
        here. Called once per distinct device string; the result is cached.
        """
        raise NotImplementedError

    def device_of(self, x: Any) -> str:
        """Canonical device string of an array of this backend."""
        raise NotImplementedError

    def same_device(self, *xs: Any) -> bool:
        """Whether the arrays ``xs`` (all of this backend) are on one device."""
        d = self.device_of(xs[0])
        return all(self.device_of(x) == d for x in xs[1:])

    def dtype_of(self, x: Any) -> np.dtype[Any]:
        """The NumPy dtype (``ml_dtypes`` for bfloat16/float8) equivalent to ``x``'s dtype.

        Raises ``TypeError`` for dtypes with no NumPy equivalent.
        """
        raise NotImplementedError

    def can_hold(self, dtype: np.dtype[Any]) -> bool:
        """Whether arrays of this backend can hold NumPy dtype ``dtype`` exactly."""
        raise NotImplementedError

    def numpy_dtype(self, dtype: Any) -> np.dtype[Any]:
        """:meth:`dtype_of` for the library's own dtype object ``dtype`` (as an array's
        ``.dtype`` reports it). Raises ``TypeError`` as :meth:`dtype_of` does."""
        return self.dtype_of(_DtypeCarrier(dtype))

    def dtype_from(self, dtype: Any) -> np.dtype[Any] | None:
        """The NumPy dtype for ``dtype`` if it is one of the library's own dtype objects given
        as a ``dtype=`` argument (a ``torch.dtype``), else ``None`` (also for library dtypes
        with no NumPy equivalent). Default: ``None`` (the library uses NumPy's dtypes)."""
        return None

    def native_dtype(self, dtype: np.dtype[Any]) -> Any:
        """The library's own dtype object (an array's ``.dtype``) for NumPy dtype ``dtype``,
        which the backend holds (:meth:`can_hold`); :meth:`astype` accepts it too."""
        return self.from_numpy(np.empty(0, dtype=dtype), "cpu", None).dtype

    def traced(self, x: Any) -> bool:
        """Whether ``x`` is a placeholder being traced or transformed (``torch.compile``,
        ``torch.func`` transforms, ``jax.jit``/``vmap``/``grad``): its values cannot be read
        without a graph break, a host round trip or an error. Front-layer checks that read
        values are then replaced by their traced rule (see :mod:`xback._linalg`)."""
        return False

    def nan_where_nonfinite(
        self, x: Any, fn: Callable[[Any], tuple[Any, ...]]
    ) -> tuple[Any, ...]:
        """``fn(x)`` (results computed from the matrix stack ``x``, each shaped ``(..., a, b)``
        or ``(..., a)`` with ``x``'s batch dimensions) with every matrix whose input has a NaN
        or inf replaced by NaN; ``fn`` sees zeros there (a kernel may fail on inf). The traced
        rule of the finiteness checks: no value is read (no host synchronisation, no
        data-dependent control flow)."""
        return _linalg_generic.nan_where_nonfinite(self, x, fn)

    def eager(self) -> contextlib.AbstractContextManager[Any]:
        """A context in which the library computes on values now, even inside its tracing
        (``jax.ensure_compile_time_eval``): for the backend's own one-off probes (where its
        sort puts NaN). Default: nothing to do."""
        return contextlib.nullcontext()

    def routable(self, x: Any) -> bool:
        """Whether another CPU library may compute on ``x`` in this backend's place
        (:mod:`xback._routing`): a plain array in CPU memory that the other library can read
        without a copy, whose result needs nothing this backend adds (autograd history,
        laziness, a transform's wrapper). Called only for large inputs. Default: False."""
        return False

    def cpu_threads(self) -> int | None:
        """The width of the CPU thread pool the library's parallel kernels run on, as the
        caller has set it now (NumPy: its BLAS's thread limit; torch:
        ``torch.get_num_threads()``), or ``None`` (unknown, or no pool of its own). A call is
        routed from one library to another only if the target's pool is no wider than the
        caller's (:mod:`xback._routing`). Default: ``None``."""
        return None

    def fork_safe(self, op: str) -> bool:
        """Whether the library can compute operation ``op`` (``"sort"``, ``"svd"``...) in a
        forked child, whatever the parent did with it (:func:`xback._routing.fork_safe`).
        Default: False (a child never routes there)."""
        return False

    #: the threads a call routed to this library computes with (:meth:`routed`), recorded
    #: in a table's fingerprint with the column (``xback tune`` times routes that way);
    #: ``None``: the library's own setting
    routed_threads: ClassVar[int | None] = None

    def routed(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)``: one of this backend's kernels computing a call routed here from
        another library (:mod:`xback._routing`; ``xback tune`` times routes through it),
        run so that it leaves none of this library's threads spinning for the caller's next
        calls. Default: as it is."""
        return fn(*args)

    # -- conversion ------------------------------------------------------------------------
    def to_device(self, x: Any, device: str) -> Any:
        """Move ``x`` to ``device`` (different from its current one)."""
        raise NotImplementedError

    def to_numpy(self, x: Any, copy: bool | None) -> np.ndarray[Any, Any]:
        """Host NumPy array for ``x``; shares memory unless a copy is needed or asked for.

        ``copy=False`` when a copy is unavoidable raises ``ValueError``.
        """
        raise NotImplementedError

    def from_numpy(self, a: np.ndarray[Any, Any], device: str, copy: bool | None) -> Any:
        """Array of this backend on ``device`` holding ``a``'s data.

        Shares memory when possible and ``copy`` is not True; ``copy=False`` when a copy is
        unavoidable raises ``ValueError``. ``a`` is always an ``np.ndarray`` (0-d for
        scalars) whose dtype the backend can hold (the front layer checked it).
        """
        raise NotImplementedError

    #: whether the backend's arrays are split into chunks that ``from_numpy(chunks=...)``
    #: chooses (dask); such a backend implements the two methods below
    has_chunks: ClassVar[bool] = False

    def normalize_chunks(
        self, chunks: Any, shape: tuple[int, ...], dtype: np.dtype[Any]
    ) -> tuple[tuple[int, ...], ...]:
        """Validate a ``chunks=`` argument (not ``None``) for an array of ``shape`` and
        ``dtype``; return the chunk lengths along every axis.

        Raises ``TypeError`` for a type that cannot describe chunks and ``ValueError`` for
        invalid values, naming the value and what is allowed (called before any work).
        """
        raise NotImplementedError

    def from_numpy_chunked(
        self, a: np.ndarray[Any, Any], copy: bool | None, chunks: tuple[tuple[int, ...], ...]
    ) -> Any:
        """:meth:`from_numpy` (on the CPU) with the chunks from :meth:`normalize_chunks`."""
        raise NotImplementedError

    def astype(self, x: Any, dtype: Any) -> Any:
        """``x`` cast to ``dtype`` (a new array; only called when the dtype differs): a NumPy
        dtype, or the backend's own dtype object from :meth:`native_dtype` (what traced code
        passes: ``torch.compile`` cannot look NumPy dtype objects up)."""
        raise NotImplementedError

    def copy(self, x: Any) -> Any:
        """A fresh copy of ``x`` on its device."""
        raise NotImplementedError

    # -- sorting (xback._sorting) ---------------------------------------------------------
    def sort(self, x: Any, axis: int | None, descending: bool, stable: bool) -> Any:
        """Sorted values of ``x`` along ``axis``: a fresh array of ``x``'s dtype.

        ``axis`` is a non-negative int smaller than ``x.ndim`` or ``None`` (sort the
        C-order flattening, return 1-D; ``x`` may then be 0-d). The dtype is one of bool,
        int8..64, uint8..64, float16/32/64, bfloat16, complex64/128 (already checked).
        Contract: stable when ``stable`` in both directions, NaN last in both directions
        (NaNs in input order), ``-0.0 == 0.0``, complex lexicographic with NumPy's NaN
        groups. ``x`` is never modified; torch results stay differentiable. Default: written
        once on the namespace (:mod:`xback.backends._sort_generic`).
        """
        return _sort_generic.sort(self, x, axis, descending, stable)

    def argsort(self, x: Any, axis: int | None, descending: bool, stable: bool) -> Any:
        """``int64`` indices that sort ``x`` along ``axis`` (same arguments and order as
        :meth:`sort`)."""
        return _sort_generic.argsort(self, x, axis, descending, stable)

    #: the common sort call's kernels: the backend's own dtype object -> ``(sort, sort
    #: descending, argsort, argsort descending)``, each ``f(x)`` the stable :meth:`sort` /
    #: :meth:`argsort` along the last axis of an ``x`` of 1 to 32 dimensions. Only for
    #: dtypes whose direct call skips the general method's steps (a tiny sort pays for
    #: each); every other call takes the methods. Default: none.
    last_axis_sorts: ClassVar[Mapping[Any, tuple[Callable[[Any], Any], ...]]] = (
        MappingProxyType({})
    )

    # -- linear algebra (xback._linalg) ---------------------------------------------------
    #: whether :meth:`lstsq_grad` accepts ``method="autograd"``
    has_autograd: ClassVar[bool] = False
    #: the variants (``"full"``, ``"thin"``: :meth:`svd`; ``"vals"``: :meth:`svdvals`) whose
    #: input the front layer checks for NaN and inf before the kernel; the singular values
    #: of the others are checked after it. Default: all, as the contract says ("raised
    #: before any work"): LAPACK's ``gesdd`` can loop forever on inf (NumPy with OpenBLAS,
    #: array-api-strict), and its scaling prints "On entry to DLASCL parameter number 4 had
    #: an illegal value" on stdout for some inf input, singular values alone included
    #: (NumPy, array-api-strict, JAX on the CPU)
    svd_checked_first: ClassVar[frozenset[str]] = frozenset({"full", "thin", "vals"})

    def svd(self, x: Any, full_matrices: bool, canonical_signs: bool) -> tuple[Any, Any, Any]:
        """``(U, S, Vh)`` of a stack ``x`` of shape ``(..., M, N)``, ``x`` already of a float32,
        float64, complex64 or complex128 dtype, finite-checked afterwards by the front layer.

        ``S`` is real, descending, at ``x``'s precision; shapes follow NumPy's
        ``full_matrices``; empty matrices work. With ``canonical_signs`` the first
        ``K = min(M, N)`` columns of ``U`` are normalised so that their entry of largest
        absolute value (the first such entry on ties) is real and positive, and the rows of
        ``Vh`` are multiplied by the conjugate factor, so that ``U @ diag(S) @ Vh`` is
        unchanged (see :mod:`xback._linalg`). Results stay differentiable where the library
        differentiates. Default: ``xp.linalg.svd`` of the array's namespace, the signs by
        :func:`xback.backends._linalg_generic.canonical_phases`.
        """
        return _linalg_generic.svd(self, x, full_matrices, canonical_signs)

    def svdvals(self, x: Any) -> Any:
        """Singular values of a stack ``x`` (same dtype rules as :meth:`svd`), descending.
        Default: the namespace's ``linalg.svdvals``, else ``S`` of :meth:`svd`."""
        return _linalg_generic.svdvals(self, x)

    def svdvals_traced(self, x: Any) -> Any:
        """:meth:`svdvals` inside tracing (``torch.compile``, ``torch.func`` transforms,
        ``jax.jit``), where a library may compute more than the values. Default:
        :meth:`svdvals`."""
        return self.svdvals(x)

    def singular_values_finite(self, S: Any) -> bool:
        """Whether the singular values ``S`` (shape ``(..., K)``, real, fresh from
        :meth:`svd` or :meth:`svdvals`) are all finite. ``S`` is small next to the
        decomposition that made it, so a backend may read it whole, at any length, as Python
        numbers. Default: :meth:`all_finite`."""
        return self.all_finite(S)

    def all_finite(self, x: Any) -> bool:
        """Whether every element of ``x`` is finite; ``True`` for an array with no values to
        read (torch's meta tensors). Lazy arrays (Dask) are computed."""
        return _linalg_generic.all_finite(self, x)

    def norm_bounded(self, x: Any) -> bool:
        """Whether ``x`` is cheaply known to have finite entries and a Frobenius norm far
        from overflow in its dtype (never called on a traced array). ``True`` lets
        ``svd``/``svdvals`` skip their finiteness checks before and after LAPACK: no singular
        value exceeds the norm. ``False`` says nothing (the checks run). Default: ``False``;
        NumPy reads a small matrix as Python numbers and a larger contiguous one by one dot
        product, and the generic Array API backend does the same on a host array's memory
        (docs/benchmarks.md#finiteness-checks)."""
        return False

    def lstsq_grad(self, A: Any, x: Any, y: Any, method: str) -> Any:
        """``2 Aᴴ (A x - y)`` for ``A (..., m, n)`` and either ``x (n,)``, ``y (m,)`` (result
        ``(..., n)``) or ``x (..., n, k)``, ``y (..., m, k)`` (result ``(..., n, k)``).

        The three inputs share one floating or complex dtype (the front layer cast them) and
        their batch dimensions broadcast. ``method`` is ``"auto"`` (the backend's fastest
        exact BLAS formula for the shape; whether the fused kernel runs instead is the front
        layer's decision, from the cost table), ``"explicit"``, ``"autograd"`` (only when
        :attr:`has_autograd`; never touches the inputs' ``requires_grad`` or ``.grad``).
        ``method="autograd"`` on traced inputs (:meth:`traced`: inside ``torch.func``
        transforms or ``torch.compile``) computes the explicit formula, which is what
        autograd would differentiate. The fused kernel is not a method here: the front layer
        calls it (:data:`xback._fused.TARGET`). Default: the formula on the namespace, a
        vector ``x`` with batched ``A`` as a column
        (:func:`xback.backends._linalg_generic.vector_as_column`).
        """
        return _linalg_generic.lstsq_grad(self, A, x, y, method)

    def gram(self, A: Any, y: Any) -> tuple[Any, Any]:
        """``(Aᴴ A, Aᴴ y)`` for ``A (..., m, n)`` and ``y (m,)`` or ``(..., m, k)``, one dtype."""
        return _linalg_generic.gram(self, A, y)

    def gram_grad(self, G: Any, c: Any, x: Any) -> Any:
        """``2 (G x - c)``: the least-squares gradient from the output of :meth:`gram`.

        ``x`` is ``(n,)`` (then ``c`` is ``(..., n)`` from a vector ``y``) or ``(..., n, k)``.
        """
        return _linalg_generic.gram_grad(self, G, c, x)

    def __repr__(self) -> str:
        return f"<xback backend {self.name!r}>"

    # -- the sort family (xback._sortfamily) ----------------------------------------------
    # Defaults written once (xback.backends._family_generic) in terms of the backend's own
    # stable sort/argsort and the array's Array API namespace; every method works along the
    # LAST axis of its input (the front layer moves the axis there). Backends override them
    # with native paths where those are faster.
    def namespace(self, x: Any) -> Any:
        """The Array API namespace of ``x`` (array-api-compat's wrapper where needed)."""
        import array_api_compat

        return array_api_compat.array_namespace(x)

    def reshape(self, x: Any, shape: tuple[int, ...]) -> Any:
        """``x`` reshaped (C order) to ``shape`` (same size)."""
        return self.namespace(x).reshape(x, shape)

    def concrete(self, x: Any) -> bool:
        """Whether ``x``'s values can be read now (False: lazy or data-less arrays)."""
        return True

    def has_nan(self, x: Any) -> bool:
        """Whether ``x`` (a float or complex array) holds a NaN; False for data-less arrays.
        Lazy backends compute it (documented there)."""
        if not self.concrete(x):
            return False
        xp = self.namespace(x)
        return bool(xp.any(xp.isnan(x)))

    def top_k(self, x: Any, k: int, largest: bool) -> tuple[Any, Any]:
        """``(values, int64 indices)``: the first ``k`` (``0 <= k <= n``) of the stable sort
        of ``x`` along its last axis, descending when ``largest``, bit for bit (NaN last in
        both directions). Values stay differentiable (torch)."""
        from xback.backends import _family_generic

        return _family_generic.top_k(self, x, k, largest)

    def searchsorted(self, x1: Any, x2: Any, right: bool, sorter: Any) -> Any:
        """``int64`` insertion points of ``x2`` into ``x1`` along the last axis: ``x1`` is
        ``(n,)`` and ``x2`` ``(m,)``, or both ``(..., n)``/``(..., m)`` with one leading
        shape; one dtype; ``x1`` sorted in the contract's ascending order (NaN last), or
        ``sorter`` (int64, ``x1``'s shape) sorts it. ``left``: the number of ``x1`` elements
        before the query; ``right``: before or equal (a NaN query: before the first NaN,
        after the last)."""
        from xback.backends import _family_generic

        return _family_generic.searchsorted(self, x1, x2, right, sorter)

    def unique(
        self, x: Any, equal_nan: bool, want_indices: bool, want_inverse: bool, want_counts: bool
    ) -> tuple[Any, Any, Any, Any]:
        """``(values, indices, inverse, counts)`` of the 1-D ``x`` (``None`` where not
        wanted): values in ascending contract order, each the first occurrence of its group
        (``-0.0 == 0.0``; NaNs distinct unless ``equal_nan``); int64 indices, inverse and
        counts."""
        from xback.backends import _family_generic

        return _family_generic.unique(self, x, equal_nan, want_indices, want_inverse, want_counts)

    def order_statistics(self, x: Any, kth: list[int]) -> Any:
        """``(..., len(kth))``: the order statistics ``kth`` (sorted, distinct, 0-based; NaN
        largest) of the float array ``x`` along its last axis. Default: a sort; backends
        with a partition select."""
        from xback.backends import _family_generic

        return _family_generic.order_statistics(self, x, kth)

    def gather_rows(self, s: Any, idx: Any) -> Any:
        """``take_along_axis(s, idx, axis=-1)`` (``idx``: int64, ``(..., j)``)."""
        from xback.backends import _family_generic

        return _family_generic.gather_rows(self, s, idx)

    def quantile(self, x: Any, q: np.ndarray[Any, Any], method: str, skipna: bool) -> Any:
        """``(..., len(q))``: NumPy's quantiles ``q`` (a float64 host vector in [0, 1]) by
        ``method`` of the float array ``x`` along its last axis, in ``x``'s dtype; NaN for a
        row holding NaN (``skipna``: NaNs skipped, a row of only NaN gives NaN)."""
        from xback.backends import _family_generic

        return _family_generic.quantile(self, x, q, method, skipna)

    def median(self, x: Any, skipna: bool) -> Any:
        """``(...)``: the median of the float array ``x`` along its last axis (the mean of the
        two middle values for an even count), NaN rules of :meth:`quantile`."""
        from xback.backends import _family_generic

        return _family_generic.median(self, x, skipna)

    def rankdata(self, x: Any, method: str) -> Any:
        """SciPy's ranks along the last axis (``average``: float64; ``min``, ``max``,
        ``dense``, ``ordinal``: int64), NaNs ranked after every number (the front layer
        applies the NaN policy)."""
        from xback.backends import _family_generic

        return _family_generic.rankdata(self, x, method)


class _DtypeCarrier:
    """Stands for an array of dtype ``dtype`` in :meth:`Backend.numpy_dtype`."""

    __slots__ = ("dtype",)

    def __init__(self, dtype: Any) -> None:
        self.dtype = dtype


class HostBackend(Backend):
    """Base of backends whose arrays live in host memory only (device ``"cpu"``) and carry
    NumPy dtypes (NumPy, Dask)."""

    def normalize_device(self, device: str) -> str:
        if device == "cpu" or device == "cpu:0":
            return "cpu"
        raise ValueError(
            f"the {self.name} backend runs on the CPU only: device must be 'cpu', got "
            f"{device!r}; use backend='torch' for other devices"
        )

    def device_of(self, x: Any) -> str:
        return "cpu"

    def same_device(self, *xs: Any) -> bool:
        return True

    def dtype_of(self, x: Any) -> np.dtype[Any]:
        return x.dtype  # type: ignore[no-any-return]

    def can_hold(self, dtype: np.dtype[Any]) -> bool:
        return True

    def native_dtype(self, dtype: np.dtype[Any]) -> Any:
        return dtype

    def to_device(self, x: Any, device: str) -> Any:
        return x  # device is always "cpu", validated by the front layer
