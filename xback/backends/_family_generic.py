"""Generic implementations of the sort family (top_k, searchsorted, unique, quantile,
rankdata), written once in terms of a backend's own stable ``sort``/``argsort`` (which carry
the order contract: NaN last, ``-0.0 == 0.0``, complex NumPy order) and standard Array API
functions of the array's namespace. :class:`xback.backends.Backend` uses them as the default
of every backend; backends override them with native paths where those are faster.

Every function works along the LAST axis of its input (the front layer moves the axis there)
and receives clean arguments.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

__all__ = [
    "QUANTILE_METHODS",
    "device_of",
    "gather_rows",
    "median",
    "order_statistics",
    "quantile",
    "quantile_indices",
    "rankdata",
    "searchsorted",
    "top_k",
    "unique",
]

#: every method of :func:`numpy.quantile`
QUANTILE_METHODS = (
    "inverted_cdf",
    "averaged_inverted_cdf",
    "closest_observation",
    "interpolated_inverted_cdf",
    "hazen",
    "weibull",
    "linear",
    "median_unbiased",
    "normal_unbiased",
    "lower",
    "higher",
    "midpoint",
    "nearest",
)
#: continuous Hyndman-Fan methods: ``(alpha, beta)`` of the virtual index
_ALPHA_BETA = {
    "interpolated_inverted_cdf": (0.0, 1.0),
    "hazen": (0.5, 0.5),
    "weibull": (0.0, 0.0),
    "median_unbiased": (1 / 3.0, 1 / 3.0),
    "normal_unbiased": (3 / 8.0, 3 / 8.0),
}


def _cumsum(xp: Any, a: Any, axis: int) -> Any:
    """``xp.cumulative_sum(a, axis=axis)``; the library's own ``cumsum`` where the namespace
    has one (NumPy, torch): array-api-compat's wrapper looks the namespace up again on
    every call, which ``torch.compile`` warns about."""
    cumsum = getattr(xp, "cumsum", None)
    return cumsum(a, axis) if cumsum is not None else xp.cumulative_sum(a, axis=axis)


def device_of(x: Any) -> Any:
    """``x``'s device: its ``device`` attribute where it has one (NumPy 2, torch, JAX,
    array-api-strict; read directly, which ``torch.compile`` traces without a warning),
    else array-api-compat's ``device``."""
    d = getattr(x, "device", None)
    if d is not None and not callable(d):
        return d
    import array_api_compat

    return array_api_compat.device(x)


def _last(x: Any) -> int:
    return int(x.ndim) - 1


# -- top_k -------------------------------------------------------------------------------------
def top_k(b: Any, x: Any, k: int, largest: bool) -> tuple[Any, Any]:
    """The first ``k`` of the stable sort along the last axis: a full argsort, then a slice
    (the Array API has no partition)."""
    xp = b.namespace(x)
    idx = b.argsort(x, _last(x), largest, True)[..., :k]
    return xp.take_along_axis(x, idx, axis=-1), idx


# -- searchsorted ------------------------------------------------------------------------------
def searchsorted(b: Any, x1: Any, x2: Any, right: bool, sorter: Any) -> Any:
    """Insertion points of ``x2`` (``(..., m)``) into ``x1`` (``(..., n)``, same leading shape)
    by one stable sort of their concatenation: for ``left`` the queries come first (ties
    place them before equal elements of ``x1``), for ``right`` last. The answer for a query
    is the number of ``x1`` elements before it in the merged order."""
    xp = b.namespace(x1)
    if sorter is not None:
        x1 = xp.take_along_axis(x1, sorter, axis=-1)
    n, m = x1.shape[-1], x2.shape[-1]
    dev, i64 = device_of(x1), xp.int64
    one, zero = xp.ones((n,), dtype=i64, device=dev), xp.zeros((m,), dtype=i64, device=dev)
    if right:
        c, flag = xp.concat((x1, x2), axis=-1), xp.concat((one, zero))
    else:
        c, flag = xp.concat((x2, x1), axis=-1), xp.concat((zero, one))
    perm = b.argsort(c, _last(c), False, True)
    f = xp.take_along_axis(xp.broadcast_to(flag, c.shape), perm, axis=-1)
    before = _cumsum(xp, f, -1)  # x1 elements up to each merged position
    inv = b.argsort(perm, _last(perm), False, False)  # merged position of each element
    pos = inv[..., n:] if right else inv[..., :m]
    return xp.astype(xp.take_along_axis(before, pos, axis=-1), i64)


# -- unique ------------------------------------------------------------------------------------
def unique(
    b: Any, x: Any, equal_nan: bool, want_indices: bool, want_inverse: bool, want_counts: bool
) -> tuple[Any, Any, Any, Any]:
    """``(values, indices, inverse, counts)`` of a 1-D ``x`` (``None`` where not wanted), by
    one stable argsort: equal neighbours (``!=``: NaNs distinct, ``-0.0 == 0.0``) form a
    group, represented by its first occurrence."""
    xp = b.namespace(x)
    n = x.shape[0]
    dev, i64 = device_of(x), xp.int64
    perm = xp.astype(b.argsort(x, 0, False, True), i64)
    if n == 0:
        z = xp.zeros((0,), dtype=i64, device=dev)
        return x, z, (z if want_inverse else None), (z if want_counts else None)
    s = xp.take(x, perm)
    new = s[1:] != s[:-1]
    if equal_nan and b.dtype_of(x).kind in "fcV":
        nn = xp.isnan(s)
        new = new & ~(nn[1:] & nn[:-1])
    new = xp.concat((xp.ones((min(n, 1),), dtype=xp.bool, device=dev), new))
    starts = xp.astype(xp.nonzero(new)[0], i64)
    first = xp.take(perm, starts)
    values = xp.take(x, first)
    counts = inverse = None
    if want_counts:
        ends = xp.concat((starts[1:], xp.asarray([n], dtype=i64, device=dev)))
        counts = ends - starts
    if want_inverse:
        gid = _cumsum(xp, xp.astype(new, i64), 0) - 1
        inv = b.argsort(perm, 0, False, False)
        inverse = xp.take(gid, inv)
    return values, (first if want_indices else None), inverse, counts


# -- quantile ----------------------------------------------------------------------------------
def quantile_indices(xp: Any, n: Any, q: Any, method: str) -> tuple[Any, Any, Any]:
    """NumPy's ``(previous, next, gamma)`` for sample sizes ``n`` and quantiles ``q`` (arrays of
    the namespace ``xp``, broadcast together, float64): the value is ``lerp(sorted[previous],
    sorted[next], gamma)``; ``gamma`` is ``None`` for the discrete methods (``previous``
    then). Indices are int64, clipped into ``[0, n - 1]``; -1 where ``n == 0``."""
    floor, i64 = xp.floor, xp.int64
    nm1 = n - 1
    if method in ("inverted_cdf", "closest_observation"):
        v = n * q - 1 if method == "inverted_cdf" else n * q - 1.5
        prev = floor(v)
        g = v - prev
        if method == "inverted_cdf":
            take_prev = g == 0
        else:
            take_prev = (g == 0) & (prev - 2 * floor(prev / 2) == 1)
        idx = xp.where(take_prev, prev, prev + 1)
        idx = xp.clip(idx, 0.0, None)
        idx = xp.where(idx > nm1, nm1, idx)
        return xp.astype(idx, i64), None, None
    if method in ("lower", "higher", "nearest"):
        v = nm1 * q
        idx = floor(v) if method == "lower" else xp.ceil(v) if method == "higher" else xp.round(v)
        return xp.astype(idx, i64), None, None
    if method == "linear":
        v = nm1 * q
    elif method == "averaged_inverted_cdf":
        v = n * q - 1
    elif method == "midpoint":
        v = 0.5 * (floor(nm1 * q) + xp.ceil(nm1 * q))
    else:
        alpha, beta = _ALPHA_BETA[method]
        v = n * q + (alpha + q * (1 - alpha - beta)) - 1
    prev = floor(v)
    above, below = v >= nm1, v < 0
    # NumPy marks the clipped indices -1 (the last) or 0 and takes gamma against that mark
    prev_mark = xp.where(above, -1.0, xp.where(below, 0.0, prev))
    g = v - prev_mark
    if method == "averaged_inverted_cdf":
        g = xp.where(g == 0, 0.5, 1.0)
    elif method == "midpoint":
        g = xp.where(v - floor(v) == 0, 0.0, 0.5)
    p = xp.where(above, nm1, xp.where(below, 0.0, prev))
    nx = xp.where(above, nm1, xp.where(below, 0.0, prev + 1))
    return xp.astype(p, i64), xp.astype(nx, i64), g


def lerp(xp: Any, a: Any, c: Any, t: Any) -> Any:
    """NumPy's ``_lerp``: ``a + (c - a) t``, or ``c - (c - a)(1 - t)`` where ``t >= 0.5``."""
    d = c - a
    return xp.where(t >= 0.5, c - d * (1 - t), a + d * t)


def order_statistics(b: Any, x: Any, kth: list[int]) -> Any:
    """``(..., len(kth))``: the order statistics ``kth`` (0-based, NaN last) along the last
    axis. Default: one sort, then a gather."""
    xp = b.namespace(x)
    s = b.sort(x, _last(x), False, True)
    idx = xp.asarray(kth, dtype=xp.int64, device=device_of(x))
    return xp.take(s, idx, axis=-1)


def gather_rows(b: Any, s: Any, idx: Any) -> Any:
    """``take_along_axis(s, idx, -1)`` for sorted rows ``s``."""
    return b.namespace(s).take_along_axis(s, idx, axis=-1)


def _float(xp: Any, x: Any, v: Any) -> Any:
    return xp.asarray(v, dtype=x.dtype, device=device_of(x))


def quantile(b: Any, x: Any, q: np.ndarray[Any, Any], method: str, skipna: bool) -> Any:
    """Quantiles ``q`` (float64, 1-D, host) of the float array ``x`` along its last axis: an
    array ``(..., len(q))`` of ``x``'s dtype. NaN where a row holds NaN (``skipna``: where it
    holds only NaN) or is empty."""
    xp = b.namespace(x)
    n = x.shape[-1]
    dev, f64 = device_of(x), xp.float64 if hasattr(xp, "float64") else None
    isn = xp.isnan(x) if skipna else None
    nan = _float(xp, x, math.nan)
    # traced (values unreadable): the sort path below, branch-free; the host arithmetic of
    # the uniform path would be traced as well
    concrete = b.concrete(x) and not b.traced(x)
    uniform = concrete and (not skipna or not bool(xp.any(isn)))
    if uniform:  # one set of order statistics for every row: a selection
        p, nx, g = quantile_indices(np, np.asarray(float(n)), q, method)
        if n == 0:
            return xp.full((*x.shape[:-1], q.shape[0]), math.nan, dtype=x.dtype, device=dev)
        kth = sorted({*p.tolist(), *(nx.tolist() if nx is not None else [])})
        if not skipna:
            kth = sorted({*kth, n - 1})
        pos = {k: i for i, k in enumerate(kth)}
        st = b.order_statistics(x, kth)
        a = xp.take(st, xp.asarray([pos[k] for k in p.tolist()], device=dev), axis=-1)
        if nx is None:
            r = a
        else:
            c = xp.take(st, xp.asarray([pos[k] for k in nx.tolist()], device=dev), axis=-1)
            r = lerp(xp, a, c, xp.asarray(g, dtype=x.dtype, device=dev))
        if not skipna:  # NaN sorts last: a row holds NaN iff its largest is NaN
            r = xp.where(xp.isnan(st[..., pos[n - 1] : pos[n - 1] + 1]), nan, r)
        return r
    if isn is None:  # not skipna, traced: every element counts, a NaN row is NaN below
        nv = xp.full((*x.shape[:-1], 1), n, dtype=xp.int64, device=dev)
    else:
        nv = n - xp.sum(xp.astype(isn, xp.int64), axis=-1, keepdims=True)
    qa = xp.asarray(q, dtype=f64, device=dev)
    p, nx, g = quantile_indices(xp, xp.astype(nv, f64), qa, method)
    s = b.sort(x, _last(x), False, True)
    p = xp.clip(p, 0, max(n - 1, 0))
    a = b.gather_rows(s, p)
    if nx is None:
        r = a
    else:
        r = lerp(xp, a, b.gather_rows(s, xp.clip(nx, 0, max(n - 1, 0))), xp.astype(g, x.dtype))
    r = xp.where(nv == 0, nan, r)
    if not skipna and n:  # NaN sorts last: a row holds NaN iff its largest is NaN
        r = xp.where(xp.isnan(s[..., -1:]), nan, r)
    return r


def median(b: Any, x: Any, skipna: bool) -> Any:
    """NumPy's median of the float array ``x`` along its last axis (shape ``(...,)``): the
    middle value, or the mean of the two middle values; NaN where a row holds NaN
    (``skipna``: only NaN) or is empty."""
    xp = b.namespace(x)
    n = x.shape[-1]
    dev = device_of(x)
    nan = _float(xp, x, math.nan)
    if n == 0:
        return xp.full(x.shape[:-1], math.nan, dtype=x.dtype, device=dev)
    isn = xp.isnan(x) if skipna else None
    if not skipna or (b.concrete(x) and not b.traced(x) and not bool(xp.any(isn))):
        lo, hi = (n - 1) // 2, n // 2
        kth = sorted({lo, hi, n - 1})
        st = b.order_statistics(x, kth)
        a, c = st[..., kth.index(lo)], st[..., kth.index(hi)]
        r = a if lo == hi else (a + c) / _float(xp, x, 2.0)
        return r if skipna else xp.where(xp.isnan(st[..., -1]), nan, r)
    nv = n - xp.sum(xp.astype(isn, xp.int64), axis=-1, keepdims=True)
    s = b.sort(x, _last(x), False, True)
    lo = xp.clip((nv - 1) // 2, 0, n - 1)
    hi = xp.clip(nv // 2, 0, n - 1)
    a, c = b.gather_rows(s, lo)[..., 0], b.gather_rows(s, hi)[..., 0]
    r = xp.where((lo == hi)[..., 0], a, (a + c) / _float(xp, x, 2.0))
    return xp.where(nv[..., 0] == 0, nan, r)


# -- rankdata ----------------------------------------------------------------------------------
def rankdata(b: Any, x: Any, method: str) -> Any:
    """SciPy's ranks (1-based) along the last axis, NaNs ranked last as by the sort (the front
    layer applies the NaN policy): float64 for ``average``, int64 otherwise."""
    xp = b.namespace(x)
    dev, i64 = device_of(x), xp.int64
    n = x.shape[-1]
    perm = xp.astype(b.argsort(x, _last(x), False, True), i64)
    if n == 0 or math.prod(x.shape) == 0:  # torch: x.size is a method
        dt = xp.float64 if method == "average" else i64
        return xp.zeros(x.shape, dtype=dt, device=dev)
    inv = xp.astype(b.argsort(perm, _last(perm), False, False), i64)
    if method == "ordinal":
        return inv + 1
    s = xp.take_along_axis(x, perm, axis=-1)
    lead = x.shape[:-1]
    first = xp.ones((*lead, 1), dtype=xp.bool, device=dev)
    new = xp.concat((first, s[..., 1:] != s[..., :-1]), axis=-1)
    if method == "dense":
        return xp.take_along_axis(_cumsum(xp, xp.astype(new, i64), -1), inv, axis=-1)
    # group starts and ends through the flat positions of the group starts
    flat = xp.reshape(new, (-1,))
    size = flat.shape[0]
    starts = xp.astype(xp.nonzero(flat)[0], i64)
    gid = _cumsum(xp, xp.astype(flat, i64), 0) - 1
    pos = xp.arange(size, dtype=i64, device=dev)
    row0 = xp.reshape(pos - pos % max(n, 1), new.shape)  # flat position of each row's start
    lo = xp.reshape(xp.take(starts, gid), new.shape) - row0 + 1
    ends = xp.concat((starts[1:], xp.asarray([size], dtype=i64, device=dev)))
    hi = xp.reshape(xp.take(ends, gid), new.shape) - row0
    r = lo if method == "min" else hi if method == "max" else xp.astype(lo + hi, xp.float64) / 2
    return xp.take_along_axis(r, inv, axis=-1)
