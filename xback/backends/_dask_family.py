"""The sort family on the dask backend (the contract: :mod:`xback._sortfamily`).

Along an axis held in one chunk, every function runs block by block with the NumPy
backend's kernels (the same answers). Along an axis split into several chunks:

* ``top_k``: a per-chunk ``top_k`` (global indices) followed by a tree merge: the candidates
  (at most ``k`` per chunk) are regrouped :data:`SPLIT_EVERY` chunks at a time and selected
  again until one chunk remains. Candidates keep chunk order, so equal keys stay in index
  order and the merge is exact. The axis is never gathered (each task holds at most
  ``SPLIT_EVERY * k`` candidates per row).
* ``quantile``/``median``: exact. The rows are sorted by the distributed stable sample sort
  of :mod:`xback.backends._dask_sort` (which never gathers the axis) and the order statistics
  are read at their ranks: fixed ranks by slicing; ranks that differ per row (nan-variants)
  by a masked sum over the sorted rows (one selected element per row, no gather).
* ``searchsorted`` into a 1-D ``x1`` split into chunks: the answer is the sum over ``x1``'s
  chunks of the per-chunk answers (each chunk is sorted, so the elements before a query in
  ``x1`` are those before it in each chunk). A batch ``x1`` is rechunked to one chunk along
  its last axis (rows, aligned with ``x2``).
* ``rankdata`` along a split axis: the axis is rechunked to one chunk (not distributed).
* ``unique_*``: the result's size depends on the data, so it is computed at the call (the
  NumPy kernels on the computed array) and returned as dask arrays.
* ``has_nan`` (rankdata's NaN policy and result dtype) is computed at the call.
"""

from __future__ import annotations

import string
from typing import Any

import numpy as np

from xback.backends import _family_generic, _numpy_family

__all__ = [
    "SPLIT_EVERY",
    "gather_rows",
    "order_statistics",
    "rankdata",
    "searchsorted",
    "top_k",
    "unique",
]

#: candidate chunks merged per task in top_k's tree
SPLIT_EVERY = 8
_I64 = np.dtype(np.int64)


def _da() -> Any:
    import dask.array

    return dask.array


def _np_backend() -> Any:
    from xback.backends.numpy import BACKEND

    return BACKEND


# -- top_k -------------------------------------------------------------------------------------
def _blk_topk_vals(v: Any, k: int, largest: bool) -> Any:
    return _numpy_family.top_k(v, min(k, v.shape[-1]), largest)[0]


def _blk_topk_idx(v: Any, k: int, largest: bool, block_info: Any = None) -> Any:
    off = block_info[0]["array-location"][-1][0] if block_info else 0
    return _numpy_family.top_k(v, min(k, v.shape[-1]), largest)[1] + off


def _blk_take(v: Any, p: Any) -> Any:
    return np.take_along_axis(v, p, -1)


def _cut(chunks: tuple[tuple[int, ...], ...], k: int) -> tuple[tuple[int, ...], ...]:
    return (*chunks[:-1], tuple(min(k, c) for c in chunks[-1]))


def top_k(x: Any, k: int, largest: bool) -> tuple[Any, Any]:
    da = _da()
    if k == 0:  # no data (dask cannot merge zero-length chunks)
        shape = (*x.shape[:-1], 0)
        return x[..., :0], da.from_array(np.empty(shape, dtype=_I64), chunks=shape)
    chunks = _cut(x.chunks, k)
    meta_i = np.empty((0,) * x.ndim, dtype=_I64)
    vals = x.map_blocks(_blk_topk_vals, k, largest, chunks=chunks, dtype=x.dtype, meta=x._meta)
    idx = x.map_blocks(_blk_topk_idx, k, largest, chunks=chunks, dtype=_I64, meta=meta_i)
    if x.numblocks[-1] == 1 or x.size == 0:
        if x.size == 0:
            return vals.rechunk({x.ndim - 1: -1}), idx.rechunk({x.ndim - 1: -1})
        return vals, idx
    while vals.numblocks[-1] > 1:
        # regroup the candidates SPLIT_EVERY chunks at a time (chunk order kept)
        sizes = vals.chunks[-1]
        groups = [sum(sizes[i : i + SPLIT_EVERY]) for i in range(0, len(sizes), SPLIT_EVERY)]
        want = (*vals.chunks[:-1], tuple(groups))
        vals, idx = vals.rechunk(want), idx.rechunk(want)
        out = _cut(vals.chunks, k)
        pos = vals.map_blocks(
            lambda v: _numpy_family.top_k(v, min(k, v.shape[-1]), largest)[1],
            chunks=out, dtype=_I64, meta=meta_i,
        )
        vals = da.map_blocks(_blk_take, vals, pos, chunks=out, dtype=x.dtype, meta=x._meta)
        idx = da.map_blocks(_blk_take, idx, pos, chunks=out, dtype=_I64, meta=meta_i)
    return vals, idx


# -- searchsorted -------------------------------------------------------------------------------
def _blk_search(q: Any, a: Any, right: bool) -> Any:
    return _numpy_family.searchsorted(a, q, right, None).reshape(q.shape)


def _blk_search_rows(q: Any, a: Any, s: Any, right: bool = False) -> Any:
    return _numpy_family.searchsorted(a, q, right, s)


def searchsorted(x1: Any, x2: Any, right: bool, sorter: Any) -> Any:
    da = _da()
    if x1.ndim == 1:
        if sorter is not None:
            x1 = x1[sorter]
        total = None
        ind = string.ascii_lowercase[: x2.ndim]
        for j in range(x1.numblocks[0]):
            part = da.blockwise(
                _blk_search, ind, x2, ind, x1.blocks[j], "z", concatenate=True,
                right=right, dtype=_I64, meta=np.empty((0,) * x2.ndim, _I64),
            )
            total = part if total is None else total + part
        if total is None:  # x1 of no chunks cannot happen; an empty x1 has one
            return da.zeros(x2.shape, dtype=_I64, chunks=x2.chunks)
        return total
    lead = x2.chunks[:-1]
    x1 = x1.rechunk((*lead, (x1.shape[-1],)))
    ind = string.ascii_lowercase[: x1.ndim - 1]
    if sorter is None:
        return da.blockwise(
            _blk_search_rows, ind + "m", x2, ind + "m", x1, ind + "n", None, None,
            right=right, concatenate=True, dtype=_I64, meta=np.empty((0,) * x2.ndim, _I64),
        )
    s = sorter.rechunk(x1.chunks)
    return da.blockwise(
        _blk_search_rows, ind + "m", x2, ind + "m", x1, ind + "n", s, ind + "n",
        right=right, concatenate=True, dtype=_I64, meta=np.empty((0,) * x2.ndim, _I64),
    )


# -- unique ----------------------------------------------------------------------------------
def unique(
    x: Any, equal_nan: bool, want_indices: bool, want_inverse: bool, want_counts: bool
) -> tuple[Any, Any, Any, Any]:
    """Computed at the call (the result's size depends on the data)."""
    da = _da()
    a = np.asarray(x.compute())
    res = _numpy_family.unique(a, equal_nan, want_indices, want_inverse, want_counts)
    out: list[Any] = []
    for i, r in enumerate(res):
        if r is None:
            out.append(None)
        else:
            chunks = x.chunks[0] if i == 2 else (r.shape[0],)
            out.append(da.from_array(r, chunks=chunks))
    return out[0], out[1], out[2], out[3]


# -- quantile ----------------------------------------------------------------------------------
def _blk_os(v: Any, kth: list[int]) -> Any:
    return _numpy_family.order_statistics(v, kth)


def order_statistics(b: Any, x: Any, kth: list[int]) -> Any:
    if x.numblocks[-1] == 1:
        chunks = (*x.chunks[:-1], (len(kth),))
        return x.map_blocks(_blk_os, kth, chunks=chunks, dtype=x.dtype, meta=x._meta)
    s = b.sort(x, x.ndim - 1, False, True)  # the distributed sample sort
    return s[..., kth]


def gather_rows(s: Any, idx: Any) -> Any:
    """``take_along_axis(s, idx, -1)`` for ``idx`` of shape ``(..., j)`` (j small): a masked
    sum per column of ``idx`` (one selected element per row; no gather of the axis)."""
    da = _da()
    n = s.shape[-1]
    pos = da.arange(n, chunks=(s.chunks[-1],), dtype=_I64)
    zero = np.zeros((), dtype=s.dtype)
    cols = [
        da.where(pos == idx[..., j : j + 1], s, zero).sum(axis=-1, dtype=s.dtype)
        for j in range(idx.shape[-1])
    ]
    return da.stack(cols, axis=-1)


# -- rankdata ----------------------------------------------------------------------------------
def _blk_rank(v: Any, method: str) -> Any:
    return _family_generic.rankdata(_np_backend(), v, method)


def rankdata(x: Any, method: str) -> Any:
    if x.numblocks[-1] > 1:
        x = x.rechunk({x.ndim - 1: -1})
    dt = np.dtype(np.float64) if method == "average" else _I64
    return x.map_blocks(_blk_rank, method, dtype=dt, meta=np.empty((0,) * x.ndim, dt))
