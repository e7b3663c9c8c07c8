"""The sort family on the NumPy backend (the contract: :mod:`xback._sortfamily`).

* ``top_k``: ``argpartition`` at ``k`` (``O(n)``) on exact order keys (``-x`` for a largest
  float selection, ``~x`` for integers: NaN stays last), then a stable sort of the ``k``
  selected by (key, index). The partition may choose any of several elements equal to the
  k-th: when the ``(k+1)``-th key equals the k-th (or both are NaN), those rows are selected
  again by a mask (everything below the k-th key, then the EARLIEST equal ones).
* ``searchsorted``: ``np.searchsorted`` (its NaN order is the sort's); many queries into a
  long ``x1`` in sorted order (an argsort of the queries: cache-friendly searches); a batch
  row by row.
* ``unique``: one sort and a neighbour comparison (values/counts: unstable for integers and
  bools, whose equal values are indistinguishable; stable otherwise, so that a value is its
  first occurrence); indices and inverse from one stable argsort.
* quantiles: ``np.partition`` at one order statistic at a time (a SIMD selection; several
  indices at once take a slower one), ``min``/``max`` of the part above for the next one and
  the largest.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from xback.backends import _family_generic, _numpy_sort

__all__ = ["order_statistics", "searchsorted", "top_k", "unique"]

_I64 = np.dtype(np.int64)
_F32 = np.dtype(np.float32)


def _asc_keys(x: Any, largest: bool) -> Any:
    """Keys whose ascending order (NaN last) is the contract's order in that direction."""
    k = x.dtype.kind
    if k == "V":
        x, k = x.astype(_F32), "f"
    elif k == "b":
        x, k = x.view(np.uint8), "u"
    if not largest:
        return x
    return np.negative(x) if k == "f" else np.invert(x)


def _boundary_rows(keys: Any, vk: Any, k: int, need_fix: Any) -> Any:
    """Selection of the rows ``need_fix`` of 2-D ``keys``: every key below the k-th ``vk``,
    then the earliest keys equal to it, ``k`` in all, in index order."""
    K = keys[need_fix]
    v = vk[need_fix][:, None]
    if K.dtype.kind == "f":
        vnan = np.isnan(v)
        knan = np.isnan(K)
        lt = np.where(vnan, ~knan, v > K)
        eq = np.where(vnan, knan, v == K)
    else:
        lt, eq = v > K, v == K
    need = k - lt.sum(axis=1, keepdims=True)
    m = lt | (eq & (np.cumsum(eq, axis=1) <= need))
    return np.nonzero(m)[1].reshape(-1, k)


def _top_k_1d(x: Any, k: int, largest: bool) -> Any:
    """Indices of a 1-D top_k through a value partition (cheaper than ``argpartition``): the
    k-th key bounds the candidates (every element at least as good, ties included, in index
    order), a stable sort of the candidates picks the first ``k``. None when NaN may be among
    the answer (the caller's general path then decides)."""
    n = x.shape[0]
    if largest:
        thr = np.partition(x, n - k)[n - k]
        cand = np.flatnonzero(x >= thr)  # NaN never a candidate
    else:
        thr = np.partition(x, k - 1)[k - 1]
        cand = np.flatnonzero(x <= thr)
    if cand.shape[0] < k:  # NaN took places above the threshold
        return None
    return cand[_numpy_sort.argsort(x[cand], 0, largest, True)[:k]]


def top_k(x: Any, k: int, largest: bool) -> tuple[Any, Any]:
    n = x.shape[-1]
    lead = x.shape[:-1]
    if k == 0 or k == n or x.dtype.kind == "c" or x.size == 0:
        idx = _numpy_sort.argsort(x, x.ndim - 1, largest, True)[..., :k]
        return np.take_along_axis(x, idx, -1), idx
    if x.ndim == 1 and x.dtype.kind in "iuf":
        i1 = _top_k_1d(x, k, largest)
        if i1 is not None:
            i1 = i1 if i1.dtype == _I64 else i1.astype(_I64)
            return x[i1], i1
    keys = _asc_keys(x, largest).reshape(-1, n)
    part = np.argpartition(keys, k, axis=-1)
    sel = part[:, :k]
    kv = np.take_along_axis(keys, sel, -1)
    vk = kv.max(axis=-1)  # NaN when one is selected
    nxt = np.take_along_axis(keys, part[:, k : k + 1], -1)[:, 0]
    clean = vk < nxt  # no tie across the boundary (NaN: the k-th a number, the next NaN)
    if keys.dtype.kind == "f":
        clean |= np.isnan(nxt) & ~np.isnan(vk)
    if not clean.all():
        sel = sel.copy()
        bad = ~clean
        sel[bad] = _boundary_rows(keys, vk, k, bad)
    sel.sort(axis=-1)
    o = np.argsort(np.take_along_axis(keys, sel, -1), axis=-1, kind="stable")
    idx = np.take_along_axis(sel, o, -1)
    idx = (idx if idx.dtype == _I64 else idx.astype(_I64)).reshape(*lead, k)
    return np.take_along_axis(x, idx, -1), idx


#: searchsorted sorts the queries first from these sizes on (measured faster: the binary
#: searches then walk ``x1`` in order, see docs/benchmarks.md)
_SORT_QUERIES_M = 10_000
_SORT_QUERIES_N = 1_000


def _search_row(a: Any, q: Any, side: Any, sorter: Any) -> Any:
    """``np.searchsorted`` of the 1-D queries ``q`` into the row ``a``: many queries into a
    long row are searched in sorted order (one argsort of the queries, a scatter back)."""
    if q.shape[0] >= _SORT_QUERIES_M and a.shape[0] >= _SORT_QUERIES_N:
        o = np.argsort(q)
        out = np.empty(q.shape[0], dtype=_I64)
        out[o] = np.searchsorted(a, q[o], side=side, sorter=sorter)
        return out
    r = np.searchsorted(a, q, side=side, sorter=sorter)
    return r if r.dtype == _I64 else r.astype(_I64)


def searchsorted(x1: Any, x2: Any, right: bool, sorter: Any) -> Any:
    if x1.dtype.kind == "V":  # bfloat16: exact float32 keys
        x1, x2 = x1.astype(_F32), x2.astype(_F32)
    side: Any = "right" if right else "left"
    if x1.ndim == 1:
        if x2.ndim != 1:
            return _search_row(x1, x2.reshape(-1), side, sorter).reshape(x2.shape)
        return _search_row(x1, x2, side, sorter)
    n, m = x1.shape[-1], x2.shape[-1]
    rows = int(np.prod(x1.shape[:-1]))
    a, q = x1.reshape(rows, n), x2.reshape(rows, m)
    s = None if sorter is None else sorter.reshape(rows, n)
    out = np.empty(q.shape, dtype=_I64)
    for i in range(a.shape[0]):
        out[i] = _search_row(a[i], q[i], side, None if s is None else s[i])
    return out.reshape(x2.shape)


def unique(
    x: Any, equal_nan: bool, want_indices: bool, want_inverse: bool, want_counts: bool
) -> tuple[Any, Any, Any, Any]:
    from xback.backends.numpy import BACKEND

    kind = x.dtype.kind
    if kind == "V":  # bfloat16: the generic path on exact keys
        return _family_generic.unique(
            BACKEND, x, equal_nan, want_indices, want_inverse, want_counts
        )
    n = x.shape[0]
    if want_indices or want_inverse:
        perm = _numpy_sort.argsort(x, 0, False, True)
        s = x[perm]
    else:
        perm = None
        s = x.copy()
        s.sort(kind="stable" if kind in "fc" else None)
    new = np.empty(n, dtype=bool)
    if n:
        new[0] = True
        np.not_equal(s[1:], s[:-1], out=new[1:])
        if equal_nan and kind in "fc":
            nn = np.isnan(s)
            new[1:] &= ~(nn[1:] & nn[:-1])
    starts = np.flatnonzero(new)
    values = s[starts]
    first = inverse = counts = None
    if want_counts:
        counts = np.diff(starts, append=n).astype(_I64, copy=False)
    if perm is not None:
        first = perm[starts]
        if want_inverse:
            inverse = np.empty(n, dtype=_I64)
            inverse[perm] = np.cumsum(new) - 1
    return values, (first if want_indices else None), inverse, counts


def _next_min(s: Any, start: int) -> Any:
    """Order statistic ``start`` of the 2-D rows ``s`` partitioned at ``start - 1``: the
    smallest of ``s[:, start:]``; where that is NaN (NaN sorts last, but ``min`` propagates
    it), the segment is partitioned instead."""
    seg = s[:, start:]
    m = seg.min(axis=-1)
    if m.dtype.kind in "fc":
        bad = np.isnan(m)
        if bad.any():
            m[bad] = np.partition(seg[bad], 0, axis=-1)[:, 0]
    return m


def order_statistics(x: Any, kth: list[int]) -> Any:
    """``(..., len(kth))``: the order statistics ``kth`` (sorted, 0-based, NaN last).

    NumPy's partition at ONE index is much faster than at several (a SIMD selection), so
    the statistics are taken one at a time: a partition at the first, then each next one
    by a partition of the part above the last partitioned index, except ``k + 1`` after
    ``k`` (the smallest of the part above) and ``n - 1`` (the largest: ``max`` propagates
    NaN, which sorts last)."""
    n = x.shape[-1]
    lead = x.shape[:-1]
    x2 = x.reshape(-1, n)
    out = np.empty((x2.shape[0], len(kth)), dtype=x.dtype)
    s: Any = None
    last = -1  # the last index s is partitioned at
    for j, k in enumerate(kth):
        if s is None and k == n - 1:
            out[:, j] = x2.max(axis=-1)
        elif s is None:
            s = np.partition(x2, k, axis=-1)
            last = k
            out[:, j] = s[:, k]
        elif k == n - 1:
            out[:, j] = s[:, last + 1 :].max(axis=-1)
        elif k == last + 1:
            out[:, j] = _next_min(s, k)
        else:
            s[:, last + 1 :].partition(k - last - 1, axis=-1)
            last = k
            out[:, j] = s[:, k]
    return out.reshape(*lead, len(kth))
