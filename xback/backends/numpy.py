"""The NumPy backend: host memory only (device ``"cpu"``)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from xback.backends import (
    FINITE_LIST_MAX,
    HostBackend,
    _linalg_generic,
    _numpy_family,
    _numpy_sort,
    finite_values,
)

__all__ = ["BACKEND", "NumpyBackend", "blas_fork_safe", "blas_threads"]

#: the most entries :meth:`NumpyBackend.norm_bounded` reads as Python numbers
SMALL_VALUES_MAX = 64
#: dtype char -> a Frobenius norm below which no singular value can overflow in that dtype
#: (half its largest finite value)
_NORM_LIMIT: dict[str, float] = {c: float(np.finfo(c).max) / 2 for c in "fdFD"}


# -- NumPy's BLAS (threadpoolctl, imported when first asked) --------------------------------
#: threadpoolctl's controller of NumPy's BLAS, once inspected (False: none, or unknown)
_blas_controller: Any = None


def blas_threads() -> int | None:
    """The thread limit of NumPy's BLAS right now (``threadpoolctl``), or None if unknown.

    Examples
    --------
    >>> from xback.backends.numpy import blas_threads
    >>> n = blas_threads()
    >>> n is None or n >= 1
    True
    """
    global _blas_controller
    if _blas_controller is None:
        try:
            from threadpoolctl import ThreadpoolController

            ctl = ThreadpoolController().select(user_api="blas")
            _blas_controller = ctl.lib_controllers[0] if ctl.lib_controllers else False
        except Exception:  # threadpoolctl missing or unable to inspect: unknown
            _blas_controller = False
    if _blas_controller is False:
        return None
    n: int = _blas_controller.get_num_threads()
    return n


def blas_fork_safe() -> bool:
    """Whether NumPy's BLAS restarts its threads in a forked child: OpenBLAS built with
    pthreads (it registers fork handlers), or a sequential one. An OpenMP-threaded or
    unknown BLAS: no.

    Examples
    --------
    >>> from xback.backends.numpy import blas_fork_safe
    >>> isinstance(blas_fork_safe(), bool)
    True
    """
    blas_threads()  # inspects the BLAS once (threadpoolctl)
    ctl = _blas_controller
    if not ctl:
        return False
    layer = str(getattr(ctl, "threading_layer", "")).lower()
    api = str(getattr(ctl, "internal_api", "")).lower()
    return layer in ("sequential", "disabled") or (api == "openblas" and layer == "pthreads")


class NumpyBackend(HostBackend):
    """Backend for :class:`numpy.ndarray` and NumPy scalars."""

    name = "numpy"
    respects_readonly = True

    def owns(self, tp: type) -> bool:
        if issubclass(tp, np.ma.MaskedArray):
            raise TypeError(
                "numpy masked arrays (np.ma.MaskedArray) are not supported: their mask would "
                "be ignored, a wrong answer; pass a.filled(value) or a.compressed()"
            )
        return issubclass(tp, (np.ndarray, np.generic))

    def converts(self, tp: type) -> bool:
        # np.matrix (whose flattening stays 2-D), np.memmap and other subclasses: computed on
        # as, and returned as, plain ndarrays
        return tp is not np.ndarray and issubclass(tp, np.ndarray)

    def plain(self, x: Any) -> Any:
        return np.asarray(x)  # a base-class view: no copy

    def is_array(self, x: Any) -> bool:
        return type(x) is np.ndarray  # numpy scalars and ndarray subclasses become arrays

    def to_numpy(self, x: Any, copy: bool | None) -> np.ndarray[Any, Any]:
        if copy:
            return np.array(x, copy=True)
        if type(x) is np.ndarray:
            return x
        return np.asarray(x)  # numpy scalar -> 0-d array; ndarray subclass -> base view

    def from_numpy(self, a: np.ndarray[Any, Any], device: str, copy: bool | None) -> Any:
        return a.copy() if copy else a

    def routable(self, x: Any) -> bool:
        return type(x) is np.ndarray

    def cpu_threads(self) -> int | None:
        # no import statement here: routing asks on every routed call, where one was
        # measurable (docs/benchmarks.md#routed-calls-per-call)
        return blas_threads()

    def fork_safe(self, op: str) -> bool:
        # the sorts are single-threaded (always safe); BLAS and LAPACK only where the BLAS
        # restarts its threads in a child
        if op in ("sort", "argsort"):
            return True
        return blas_fork_safe()

    def astype(self, x: Any, dtype: np.dtype[Any]) -> Any:
        return np.asarray(x).astype(dtype)

    def copy(self, x: Any) -> Any:
        return np.array(x, copy=True)

    # -- sorting (xback._sorting; implemented in xback.backends._numpy_sort) --------------
    # plain functions (no self): one call frame less on the hot path
    sort = staticmethod(_numpy_sort.sort)
    argsort = staticmethod(_numpy_sort.argsort)
    last_axis_sorts = _numpy_sort.last_axis_sorts

    # -- linear algebra (xback._linalg; defaults in _linalg_generic) ----------------------
    # Fast paths only: the shared math is the Backend defaults.
    def svd(self, x: Any, full_matrices: bool, canonical_signs: bool) -> tuple[Any, Any, Any]:
        U, S, Vh = np.linalg.svd(x, full_matrices=full_matrices)
        # S's shape is read only when needed: attribute reads cost most after LAPACK
        if canonical_signs and (k := S.shape[-1]):
            # the convention of _linalg_generic.canonical_phases with NumPy's C methods (its
            # namespace spelling costs ~20 µs at 4x3: docs/benchmarks.md#canonical-signs);
            # U and Vh are fresh arrays: normalised in place
            Uk = U[..., :k]
            idx = np.abs(Uk).argmax(axis=-2)  # (..., k): the first entry of largest |u|
            if Uk.ndim == 2:
                piv = Uk[idx, np.arange(k)]
            else:
                piv = np.take_along_axis(Uk, idx[..., None, :], axis=-2)[..., 0, :]
            if U.dtype.kind == "c":
                ph = _linalg_generic.phases_of(self, np, piv)
                Uk *= ph.conj()[..., None, :]
            else:
                ph = np.copysign(1.0, piv)  # +-1 by the sign bit (never 0)
                Uk *= ph[..., None, :]
            Vh[..., :k, :] *= ph[..., :, None]
        return U, S, Vh

    def svdvals(self, x: Any) -> Any:
        return np.linalg.svd(x, compute_uv=False)

    def all_finite(self, x: Any) -> bool:
        if x.ndim == 1 and x.size <= FINITE_LIST_MAX and x.dtype.char in "efdFD":
            return finite_values(x.tolist())  # docs/benchmarks.md#finiteness-checks
        return bool(np.isfinite(x).all())

    def norm_bounded(self, x: Any) -> bool:
        c = x.dtype.char  # read once: each read counts right before LAPACK
        limit = _NORM_LIMIT.get(c)
        if limit is None:
            return False
        if x.size <= SMALL_VALUES_MAX:  # as Python numbers: one C call, no temporary array
            v = x.ravel().tolist()
            if c in "FD":  # complex: the norm of the real and imaginary parts
                v = [p for z in v for p in (z.real, z.imag)]
            return math.hypot(*v) < limit  # False for NaN and inf
        if x.flags.c_contiguous:
            # the sum of squares in one BLAS call, in x's precision: finite only when every
            # entry is and the norm is below the square root of the largest value
            v = x.reshape(-1)
            return math.isfinite(abs(np.vdot(v, v)))
        return False

    def lstsq_grad(self, A: Any, x: Any, y: Any, method: str) -> Any:
        if A.ndim == 2 and x.ndim == 1 and A.dtype.kind == "f":
            # the common case: the two BLAS calls, in place, nothing else to decide
            r = A @ x
            r -= y  # 2-D A: the front layer checked that y has r's shape
            g = A.T @ r
            g *= 2
            return g
        return super().lstsq_grad(A, x, y, method)

    # -- the sort family (xback._sortfamily; native paths in _numpy_family) ---------------
    def namespace(self, x: Any) -> Any:
        return np

    def gather_rows(self, s: Any, idx: Any) -> Any:
        return np.take_along_axis(s, idx, -1)

    top_k = staticmethod(_numpy_family.top_k)
    searchsorted = staticmethod(_numpy_family.searchsorted)
    unique = staticmethod(_numpy_family.unique)
    order_statistics = staticmethod(_numpy_family.order_statistics)


BACKEND = NumpyBackend()
