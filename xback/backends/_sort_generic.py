"""``sort`` and ``argsort`` of :class:`xback.backends.Backend`, written once against the
Array API namespace of the backend's arrays (``b.namespace(x)``): the defaults that the
generic Array API backend (array-api-strict, JAX, CuPy) and any new backend inherit; NumPy,
torch and Dask override them with their native kernels.

The contract (:meth:`Backend.sort`) with standard functions only: stable descending is
computed as a stable *ascending* sort (of ``-x`` for real floats; of the reversed array for
integers and bools, indices mapped back), never as a reversed ascending sort; NaN is moved
last by a stable partition when present (and only where the library's own sort does not
already put it last: probed once per backend); complex numbers are ordered by three stable
passes (imaginary, real, NaN group), NumPy's order. Indices are ``int64`` where the library
(and device) has it, else the library's default index dtype (array-api-strict's ``no_x64``
device: ``int32``).

Costs: ascending sorts (and descending float sorts, through ``-x``) are the library's own
call; otherwise ``sort`` gathers values with ``take_along_axis`` after ``argsort`` (one extra
pass), and NaN handling, for a library whose sort does not put NaN last, adds one ``isnan``
pass and, only when NaNs are present, a stable sort of the NaN mask.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from xback.backends import Backend

__all__ = ["argsort", "nan_last", "sort"]


class _State:
    """What a backend's sorts learnt once about its library."""

    __slots__ = ("index_dtypes", "index_is_default", "info", "nan_last")

    def __init__(self, xp: Any) -> None:
        self.info: Any = xp.__array_namespace_info__()
        self.nan_last: bool | None = None
        self.index_dtypes: dict[Any, Any] = {}
        self.index_is_default = _default_index_is_wanted(self.info)


#: backend -> what its sorts learnt (created on the backend's first sort)
_STATES: dict[Any, _State] = {}


def _state(b: Backend, xp: Any) -> _State:
    try:
        return _STATES[b]
    except KeyError:
        st = _STATES[b] = _State(xp)
        return st


def _wanted_index_dtype(info: Any, dev: Any) -> Any:
    """``int64`` where device ``dev`` has it, else the library's default index dtype."""
    dt = info.dtypes(device=dev)
    return dt["int64"] if "int64" in dt else info.default_dtypes(device=dev)["indexing"]


def _default_index_is_wanted(info: Any) -> bool:
    """Whether, on every device, the library's default index dtype (the dtype of its
    ``argsort``, by the standard) is the one the contract wants: then no index needs a cast
    and none is checked."""
    try:
        return all(
            _wanted_index_dtype(info, d) == info.default_dtypes(device=d)["indexing"]
            for d in info.devices()
        )
    except Exception:  # an incomplete inspection API: check every result instead
        return False


def _as_index_dtype(b: Backend, xp: Any, st: _State, idx: Any, x: Any) -> Any:
    """``idx`` (indices into ``x``) in the index dtype the contract wants."""
    if st.index_is_default:
        return idx
    try:
        dev = x.device  # the standard's attribute
    except AttributeError:  # pragma: no cover - older libraries
        import array_api_compat

        dev = array_api_compat.device(x)
    try:
        want = st.index_dtypes[dev]
    except (KeyError, TypeError):
        want = _wanted_index_dtype(st.info, dev)
        try:
            st.index_dtypes[dev] = want
        except TypeError:  # unhashable device object: no cache
            pass
    got = idx.dtype
    return idx if (got is want or got == want) else xp.astype(idx, want)


def nan_last(b: Backend, xp: Any) -> bool:
    """Whether the library's own stable ``sort``/``argsort`` already put NaN last in input
    order (checked once per backend; the standard leaves NaN's place to the library)."""
    st = _state(b, xp)
    known = st.nan_last
    if known is not None:
        return known
    nan = float("nan")
    try:
        with b.eager():  # also when first asked inside jax.jit
            v = xp.asarray([nan, 1.0, nan, 0.0, 1.0])
            vals = b.to_numpy(xp.sort(v, stable=True), None)
            idx = b.to_numpy(xp.argsort(v, stable=True), None)
        known = bool(np.isnan(vals[3:]).all()) and idx.tolist() == [3, 1, 4, 0, 2]
    except Exception:  # any failure: take the always-correct path
        known = False
    st.nan_last = known
    return known


def _argsort_real(b: Backend, xp: Any, k: Any, axis: int, stable: bool, kind: str = "f") -> Any:
    """Ascending argsort of real keys ``k`` (NumPy dtype kind ``kind``) with NaN last, in
    input order."""
    if kind == "b":
        k = xp.astype(k, xp.uint8)
    idx = xp.argsort(k, axis=axis, stable=stable)
    if kind in "fV" and not nan_last(b, xp):
        nan = xp.isnan(xp.take_along_axis(k, idx, axis=axis))
        # traced: partitioned without looking (a no-op without NaN)
        if b.traced(k) or bool(xp.any(nan)):
            step = xp.argsort(xp.astype(nan, xp.uint8), axis=axis, stable=True)
            idx = xp.take_along_axis(idx, step, axis=axis)
    return idx


def _argsort_desc_reversed(b: Backend, xp: Any, x: Any, axis: int, kind: str) -> Any:
    """Stable descending argsort of integers/bools: ascending on the reversed array."""
    n = x.shape[axis]
    p = _argsort_real(b, xp, xp.flip(x, axis=axis), axis, True, kind)
    q = xp.flip(p, axis=axis)
    # ascending on reversed x then reversed: descending, ties in input order
    return (n - 1) - q


def argsort(b: Backend, x: Any, axis: int | None, descending: bool, stable: bool) -> Any:
    """:meth:`Backend.argsort` on the namespace."""
    xp = b.namespace(x)
    if axis is None:
        x, axis = xp.reshape(x, (-1,)), 0
    kind = b.dtype_of(x).kind
    st = _state(b, xp)
    if not descending and (
        kind in "iu" or (kind in "fV" and (st.nan_last or nan_last(b, xp)))
    ):
        # the library's own (stable) argsort is the contract's answer
        idx = xp.argsort(x, axis=axis, stable=stable)
        return idx if st.index_is_default else _as_index_dtype(b, xp, st, idx, x)
    if kind == "c":
        if descending:
            x = -x
        re, im = xp.real(x), xp.imag(x)
        perm = _argsort_real(b, xp, im, axis, True)
        step = _argsort_real(b, xp, xp.take_along_axis(re, perm, axis=axis), axis, True)
        perm = xp.take_along_axis(perm, step, axis=axis)
        group = xp.astype(xp.isnan(re), xp.uint8) * 2 + xp.astype(xp.isnan(im), xp.uint8)
        step = xp.argsort(xp.take_along_axis(group, perm, axis=axis), axis=axis, stable=True)
        idx = xp.take_along_axis(perm, step, axis=axis)
    elif not descending:
        idx = _argsort_real(b, xp, x, axis, stable, kind)
    elif kind in "fV":
        idx = _argsort_real(b, xp, -x, axis, stable)  # exact; NaN stays NaN, -0.0 == 0.0
    else:
        idx = _argsort_desc_reversed(b, xp, x, axis, kind)
    return _as_index_dtype(b, xp, st, idx, x)


def sort(b: Backend, x: Any, axis: int | None, descending: bool, stable: bool) -> Any:
    """:meth:`Backend.sort` on the namespace."""
    xp = b.namespace(x)
    if axis is None:
        x, axis = xp.reshape(x, (-1,)), 0
    kind = b.dtype_of(x).kind
    # Direct value sorts where the library's own sort gives the contract's answer.
    if kind in "iu":  # equal integers are indistinguishable: order of ties is moot
        v = xp.sort(x, axis=axis, stable=stable)
        return xp.flip(v, axis=axis) if descending else v
    # -x keeps NaN last and ties (-0.0, 0.0) stable
    if kind == "f" and (_state(b, xp).nan_last or nan_last(b, xp)):
        return -xp.sort(-x, axis=axis, stable=stable) if descending else xp.sort(
            x, axis=axis, stable=stable
        )
    return xp.take_along_axis(x, argsort(b, x, axis, descending, stable), axis=axis)
