"""The linear algebra of :class:`xback.backends.Backend`, written once against the Array API
namespace of the backend's arrays (``b.namespace(x)``: array-api-compat's wrapper where the
library needs one).

Every function takes the backend ``b`` first: the :class:`~xback.backends.Backend` defaults
call them, and a backend that overrides a method for a measured fast path calls the default
(``super()``) for the rest. Two rules live here and nowhere else:

* the **vector / batch shape rule** of :meth:`Backend.lstsq_grad` and
  :meth:`Backend.gram_grad`: a vector ``x`` (``(n,)``) with a batched ``A`` (or ``G``) is
  computed as the ``(n, 1)`` matrix and the column taken back (:func:`vector_as_column`);
* the **canonical-sign convention** of ``svd(..., canonical_signs=True)`` (documented in
  :mod:`xback._linalg`): :func:`canonical_phases` (the pivot of each column of ``U`` and its
  phase, a zero pivot giving phase 1) and :func:`apply_phases`.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from xback.backends import Backend

__all__ = [
    "adjoint_matmul",
    "all_finite",
    "apply_phases",
    "canonical_phases",
    "gram",
    "gram_grad",
    "linalg",
    "lstsq_grad",
    "nan_where_nonfinite",
    "phases_of",
    "svd",
    "svdvals",
    "vector_as_column",
]


def linalg(b: Backend, xp: Any) -> Any:
    """The ``linalg`` extension of namespace ``xp``, or a ``TypeError`` naming the fix."""
    la = getattr(xp, "linalg", None)
    if la is None or not hasattr(la, "svd"):
        raise TypeError(
            f"the {b.name} namespace has no linalg extension: svd is not available for its "
            f"arrays; convert with xback.asarray(x, backend='numpy')"
        )
    return la


def _is_complex(b: Backend, x: Any) -> bool:
    return b.dtype_of(x).kind == "c"


# -- the canonical-sign convention ------------------------------------------------------------
def phases_of(b: Backend, xp: Any, piv: Any) -> Any:
    """The phase ``p = piv / |piv|`` of each pivot (``sign(piv)`` for real dtypes), never 0:
    a zero pivot (a zero column, which finite input cannot give: ``U``'s columns are unit
    vectors) gets 1 (real: +-1 by its sign bit, one operation where ``sign`` and a guard
    took three)."""
    if _is_complex(b, piv):
        a = abs(piv)
        zero = a == 0
        ph = piv / xp.astype(xp.where(zero, xp.ones_like(a), a), piv.dtype)
        return xp.where(zero, xp.ones_like(ph), ph)
    return xp.copysign(xp.ones_like(piv), piv)


def canonical_phases(b: Backend, xp: Any, Uk: Any) -> Any:
    """``(..., 1, k)``: the phase of each column of ``Uk`` (the first ``k`` columns of
    ``U``) at its entry of largest absolute value, the first one on ties (the convention of
    :mod:`xback._linalg`)."""
    idx = xp.argmax(abs(Uk), axis=-2, keepdims=True)
    return phases_of(b, xp, xp.take_along_axis(Uk, idx, axis=-2))


def apply_phases(
    b: Backend, xp: Any, U: Any, Vh: Any, ph: Any, k: int, inplace: bool = False
) -> tuple[Any, Any]:
    """``U``'s first ``k`` columns times ``conj(ph)`` and ``Vh``'s first ``k`` rows times
    ``ph`` (``ph``: ``(..., 1, k)``), which leaves ``U @ diag(S) @ Vh`` unchanged.
    ``inplace``: ``U`` and ``Vh`` are fresh arrays the library lets us write (NumPy);
    otherwise new arrays (torch's svd backward saves ``U`` and ``Vh``)."""
    phc = xp.conj(ph) if _is_complex(b, ph) else ph
    phT = xp.matrix_transpose(ph)
    if inplace:
        U[..., :k] *= phc
        Vh[..., :k, :] *= phT
        return U, Vh
    Uk = U[..., :k] * phc
    Vk = Vh[..., :k, :] * phT
    U = Uk if U.shape[-1] == k else xp.concat([Uk, U[..., k:]], axis=-1)
    Vh = Vk if Vh.shape[-2] == k else xp.concat([Vk, Vh[..., k:, :]], axis=-2)
    return U, Vh


# -- svd, svdvals, finiteness -----------------------------------------------------------------
def svd(b: Backend, x: Any, full_matrices: bool, canonical_signs: bool) -> tuple[Any, Any, Any]:
    """:meth:`Backend.svd` through ``xp.linalg.svd``, then the canonical signs."""
    xp = b.namespace(x)
    U, S, Vh = linalg(b, xp).svd(x, full_matrices=full_matrices)
    k = S.shape[-1]
    if canonical_signs and k:
        U, Vh = apply_phases(b, xp, U, Vh, canonical_phases(b, xp, U[..., :k]), k)
    return U, S, Vh


def svdvals(b: Backend, x: Any) -> Any:
    """:meth:`Backend.svdvals`: ``xp.linalg.svdvals``, else ``S`` of :meth:`Backend.svd`."""
    la = linalg(b, b.namespace(x))
    fn = getattr(la, "svdvals", None)
    return fn(x) if fn is not None else b.svd(x, False, False)[1]


def all_finite(b: Backend, x: Any) -> bool:
    """:meth:`Backend.all_finite`: ``all(isfinite(x))``."""
    xp = b.namespace(x)
    return bool(xp.all(xp.isfinite(x)))


def nan_where_nonfinite(
    b: Backend, x: Any, fn: Callable[[Any], tuple[Any, ...]]
) -> tuple[Any, ...]:
    """:meth:`Backend.nan_where_nonfinite`: one flag per matrix, no value read."""
    xp = b.namespace(x)
    ok = xp.all(xp.isfinite(x), axis=(-2, -1))  # (...,): one flag per matrix
    nd = ok.ndim
    outs = fn(xp.where(ok[..., None, None], x, xp.zeros_like(x)))
    return tuple(
        xp.where(
            xp.reshape(ok, (*ok.shape, *(1,) * (o.ndim - nd))),
            o,
            xp.full_like(o, float("nan")),
        )
        for o in outs
    )


# -- least squares ----------------------------------------------------------------------------
def vector_as_column(
    b: Backend, fn: Callable[..., Any], M: Any, v: Any, w: Any, *rest: Any
) -> Any:
    """The vector / batch shape rule, once: ``fn(M, v[:, None], w[..., None], *rest)[..., 0]``
    for a vector ``v`` (``(n,)``) with a batched ``M`` (``(..., a, n)``), whose batch
    dimensions a vector cannot carry; ``w`` is ``y`` (``(m,)``) or ``c`` (``(..., n)``)."""
    xp = b.namespace(M)
    return fn(M, xp.expand_dims(v, axis=-1), xp.expand_dims(w, axis=-1), *rest)[..., 0]


def adjoint_matmul(b: Backend, xp: Any, A: Any, r: Any) -> Any:
    """``Aᴴ @ r`` without a conjugated copy of ``A`` (``conj(Aᵀ conj(r))`` for complex)."""
    At = xp.matrix_transpose(A)
    if _is_complex(b, A):
        return xp.conj(xp.matmul(At, xp.conj(r)))
    return xp.matmul(At, r)


def lstsq_grad(b: Backend, A: Any, x: Any, y: Any, method: str) -> Any:
    """:meth:`Backend.lstsq_grad` (``"auto"``/``"explicit"``): ``2 Aᴴ (A x - y)``."""
    if x.ndim == 1 and A.ndim > 2:
        return vector_as_column(b, b.lstsq_grad, A, x, y, method)
    xp = b.namespace(A)
    return 2 * adjoint_matmul(b, xp, A, xp.matmul(A, x) - y)


def gram(b: Backend, A: Any, y: Any) -> tuple[Any, Any]:
    """:meth:`Backend.gram`: ``(Aᴴ A, Aᴴ y)``."""
    xp = b.namespace(A)
    At = xp.matrix_transpose(A)
    if _is_complex(b, A):
        At = xp.conj(At)
    return xp.matmul(At, A), xp.matmul(At, y)


def gram_grad(b: Backend, G: Any, c: Any, x: Any) -> Any:
    """:meth:`Backend.gram_grad`: ``2 (G x - c)``."""
    if x.ndim == 1 and G.ndim > 2:
        return vector_as_column(b, lambda G1, x1, c1: b.gram_grad(G1, c1, x1), G, x, c)
    xp = b.namespace(G)
    return 2 * (xp.matmul(G, x) - c)
