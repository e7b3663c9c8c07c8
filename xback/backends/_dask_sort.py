"""Stable distributed sample sort for the dask backend: sorting along an axis split into
several chunks (or the flattened array) without ever gathering that axis into one chunk.

The array is cut into independent **groups**. For ``axis=k`` a group is one block index over
the other axes: its blocks are the chunks along ``k``, each holding the same ``rows`` lines
(the axis moved last) of length ``n = x.shape[k]``. For ``axis=None`` one group holds every
block, as a single line of length ``x.size`` whose positions are C-order flat indices. In a
group every element has the composite key ``(row, key, position)``, ``key`` from
:func:`_keys` (the contract's order: NaN last, ``-0.0 == 0.0``, descending by an exact
order-reversing bijection). It is a total order, and an element's rank in it is its place in
the group's output (row-major): sorting by it is the stable sort.

Per group (all groups at once):

1. **sample** (computed at the call): up to :data:`SAMPLES_PER_BLOCK` elements of each block at
   pseudo-random positions; the client orders them by composite key and takes ``p - 1``
   splitters at regular ranks (``p``: blocks in the group). Bucket ``j`` holds the elements from
   splitter ``j - 1`` (included) to splitter ``j``.
2. **count** (computed at the call): per block, the elements of each bucket (each element is
   binary-searched among the splitters: ``O(len log p)``, no sort).
3. **lazy graph**: each block is split into one piece per bucket it meets, in block order; each
   bucket task sorts its pieces by composite key (the only sort of the data) and cuts the
   result into the pieces of the output blocks it meets; each output block concatenates its
   pieces. The splitters only balance the buckets (about one block each): the result is exact
   whatever they are.

No task holds more than its block, its bucket, or its output block (plus ``int64`` positions).
"""

from __future__ import annotations

import itertools
import math
import operator
import sys
import uuid
from typing import Any

import numpy as np

__all__ = ["sample_sort"]

#: elements sampled from each block to choose the splitters
SAMPLES_PER_BLOCK = 128
_INT64 = np.dtype(np.int64)


def _keys(v: Any, descending: bool) -> Any:
    """Keys whose ascending NumPy order (sort and searchsorted alike) is the contract's order
    of ``v``: NaN last, ``-0.0 == 0.0``; descending by an exact order-reversing bijection."""
    k = v.dtype.kind
    if k == "V":  # bfloat16: exact float32 keys
        v = v.astype(np.float32)
        k = "f"
    if not descending:
        return v
    return np.negative(v) if k in "fc" else np.invert(v)


# -- per-block kernels (run on the workers; plain NumPy) --------------------------------------
def _lines(v: Any, axis: int | None, rows: int) -> Any:
    """A block as ``(rows, len)`` lines: the sort axis moved last (``axis=None``: one line in
    C order)."""
    if axis is None:
        return v.reshape(1, -1)
    return np.moveaxis(v, axis, -1).reshape(rows, v.shape[axis])


def _block_positions(q: Any, v: Any, n: int) -> Any:
    """Positions along the line of a block's ``n`` columns: ``q`` is the first one (the block
    is contiguous along the line) or, for an ``axis=None`` block that is not contiguous in C
    order, ``(starts, array shape)``: its C-order flat indices."""
    if isinstance(q, int):
        return np.arange(q, q + n, dtype=_INT64)
    starts, shape = q
    idx = np.zeros((), _INT64)
    for s, b, size in zip(starts, v.shape, shape):
        idx = idx[..., None] * size + np.arange(s, s + b, dtype=_INT64)
    return idx.reshape(-1)


def _within_row(k: Any, q: Any, sk: Any, sq: Any) -> Any:
    """For each element (key ``k``, position ``q``) of one line, the number of that line's
    splitters (keys ``sk``, positions ``sq``, in composite order) before it."""
    lo = np.searchsorted(sk, k, side="left")
    hi = np.searchsorted(sk, k, side="right")
    t = np.flatnonzero(hi > lo)  # keys equal to splitter keys: ties broken by position
    if t.size:
        g = lo[t]
        o = np.argsort(g, kind="stable")
        t, g = t[o], g[o]
        cuts = np.flatnonzero(g[1:] != g[:-1]) + 1
        for a, b in itertools.pairwise([0, *cuts.tolist(), len(t)]):
            s0, s1 = g[a], hi[t[a]]
            lo[t[a:b]] += np.searchsorted(sq[s0:s1], q[t[a:b]], side="left")
    return lo


def _bucket_ids(K: Any, Q: Any, spl: tuple[Any, Any, Any]) -> Any:
    """Bucket of each element of a block (keys ``K`` of shape ``(rows, len)``, positions ``Q``
    of its columns): the number of splitters ``(row, key, position)`` before it."""
    sr, sk, sq = spl
    ids = np.empty(K.shape, dtype=np.intp)
    ids[...] = np.searchsorted(sr, np.arange(K.shape[0]), side="left")[:, None]
    for r in np.unique(sr).tolist():  # the rows holding splitters
        a, b = np.searchsorted(sr, r, side="left"), np.searchsorted(sr, r, side="right")
        ids[r] += _within_row(K[r], Q, sk[a:b], sq[a:b])
    return ids


def _sample_block(
    v: Any, axis: int | None, rows: int, q: Any, descending: bool, seed: int
) -> tuple[Any, Any, Any]:
    """``(rows, keys, positions)`` of up to :data:`SAMPLES_PER_BLOCK` elements of a block."""
    L = _lines(v, axis, rows)
    size, n = L.size, L.shape[1]
    if size > SAMPLES_PER_BLOCK:
        pick = np.unique(np.random.default_rng(seed).integers(0, size, SAMPLES_PER_BLOCK))
    else:
        pick = np.arange(size)
    r, c = np.divmod(pick, n)
    return r, _keys(L.reshape(-1)[pick], descending), _block_positions(q, v, n)[c]


def _count_block(
    v: Any, axis: int | None, rows: int, q: Any, descending: bool, spl: Any, nb: int
) -> Any:
    L = _lines(v, axis, rows)
    ids = _bucket_ids(_keys(L, descending), _block_positions(q, v, L.shape[1]), spl)
    return np.bincount(ids.reshape(-1), minlength=nb)


def _small_uint(top: int) -> np.dtype[Any]:
    """The smallest unsigned dtype holding ``0..top`` (NumPy radix-sorts 8/16-bit keys)."""
    return np.min_scalar_type(max(top, 0))


def _partition_block(
    v: Any,
    axis: int | None,
    rows: int,
    q: Any,
    descending: bool,
    spl: Any,
    nb: int,
    buckets: list[int],
    with_q: bool,
) -> tuple[tuple[Any, Any, Any], ...]:
    """A block cut into one piece ``(values, positions or None, rows or None)`` per bucket of
    ``buckets`` (those it meets), each piece in block (row-major) order."""
    L = _lines(v, axis, rows)
    n = L.shape[1]
    Q = _block_positions(q, v, n)
    ids = _bucket_ids(_keys(L, descending), Q, spl).reshape(-1)
    order = np.argsort(ids.astype(_small_uint(nb - 1)), kind="stable")
    ends = np.cumsum(np.bincount(ids, minlength=nb))
    V = L.reshape(-1)[order]
    P = Q[order % n] if with_q else None
    R = (order // n).astype(_small_uint(rows - 1)) if rows > 1 else None
    out = []
    for j in buckets:
        a, b = int(ends[j - 1]) if j else 0, int(ends[j])
        out.append((V[a:b], None if P is None else P[a:b], None if R is None else R[a:b]))
    return tuple(out)


def _span(v: Any, lo: int, hi: int) -> Any:
    return v[lo : max(lo, hi)]


def _cut(v: Any, start: int, n: int, a: int, b: int) -> Any:
    """The elements of ``v`` (flat positions ``start, start + 1, ...`` of row-major lines of
    length ``n``) in columns ``a:b``, in row-major order."""
    end = start + len(v)
    r0, r1 = start // n, (end - 1) // n
    first = _span(v, max(start, r0 * n + a) - start, min(end, r0 * n + b) - start)
    if r0 == r1:
        return first
    mid = v[(r0 + 1) * n - start : r1 * n - start].reshape(-1, n)[:, a:b].reshape(-1)
    last = _span(v, r1 * n + a - start, min(end, r1 * n + b) - start)
    return np.concatenate([first, mid, last])


def _merge_bucket(
    pieces: list[tuple[Any, Any, Any]],
    descending: bool,
    in_order: bool,
    want_indices: bool,
    start: int,
    n: int,
    cols: list[tuple[int, int]],
) -> tuple[Any, ...]:
    """Sort one bucket by composite key and cut it into the pieces of the output blocks whose
    columns ``cols`` it meets. Pieces come in block order; when the blocks' positions are in
    that order too (``in_order``), a stable sort of the keys keeps ties by position."""
    V = np.concatenate([p[0] for p in pieces])
    K = _keys(V, descending)
    if in_order:
        perm = np.argsort(K, kind="stable")
    else:
        perm = np.argsort(np.concatenate([p[1] for p in pieces]), kind="stable")
        perm = perm[np.argsort(K[perm], kind="stable")]
    if pieces[0][2] is not None:
        R = np.concatenate([p[2] for p in pieces])
        perm = perm[np.argsort(R[perm], kind="stable")]
    out = (np.concatenate([p[1] for p in pieces]) if want_indices else V)[perm]
    return tuple(_cut(out, start, n, a, b) for a, b in cols)


def _assemble(pieces: list[Any], shape: tuple[int, ...], axis: int | None, dtype: Any) -> Any:
    """One output block from its pieces (row-major lines, the sort axis last)."""
    if not pieces:
        return np.empty(shape, dtype=dtype)
    out = np.concatenate(pieces) if len(pieces) > 1 else pieces[0]
    if out.dtype != dtype:  # np.concatenate gives native byte order
        out = out.astype(dtype)
    if axis is None:
        return out
    moved = (*shape[:axis], *shape[axis + 1 :], shape[axis])
    return np.moveaxis(out.reshape(moved), -1, axis)


# -- the graph (built on the client) -----------------------------------------------------------
class _Group:
    """Blocks of one independent sort problem and the layout of its output."""

    __slots__ = ("blocks", "in_order", "n", "offs", "out_shapes", "qs", "rows", "sizes")

    def __init__(
        self,
        blocks: list[Any],
        qs: list[Any],
        sizes: list[int],
        rows: int,
        n: int,
        offs: list[int],
        out_shapes: list[tuple[int, ...]],
        in_order: bool,
    ) -> None:
        self.blocks, self.qs, self.sizes = blocks, qs, sizes
        self.rows, self.n, self.offs = rows, n, offs
        self.out_shapes, self.in_order = out_shapes, in_order


def _block_starts(chunks: tuple[tuple[int, ...], ...]) -> list[list[int]]:
    return [[0, *itertools.accumulate(c)] for c in chunks]


def _axis_groups(x: Any, axis: int, xkeys: Any) -> tuple[list[_Group], list[Any]]:
    """One group per block index over the axes other than ``axis``."""
    chunks = x.chunks
    offs = _block_starts(chunks)[axis]
    others = [d for d in range(x.ndim) if d != axis]
    groups, index = [], []
    for bi in itertools.product(*(range(x.numblocks[d]) for d in others)):
        shape_o = [chunks[d][i] for d, i in zip(others, bi)]
        rows = math.prod(shape_o)
        keys_, shapes = [], []
        for c, length in enumerate(chunks[axis]):
            full = list(bi)
            full.insert(axis, c)
            keys_.append(tuple(full))
            shp = list(shape_o)
            shp.insert(axis, length)
            shapes.append(tuple(shp))
        groups.append(
            _Group(
                [xkeys[k] for k in keys_], offs[:-1], [rows * s for s in chunks[axis]],
                rows, x.shape[axis], offs, shapes, True,
            )
        )
        index.append(keys_)
    return groups, index


def _flat_group(x: Any, xkeys: Any) -> _Group:
    """``axis=None``: every block, as one line of C-order flat positions."""
    shape, starts = tuple(x.shape), _block_starts(x.chunks)
    blocks: list[Any] = []
    qs: list[Any] = []
    sizes: list[int] = []
    in_order = True
    for bi in itertools.product(*(range(nb) for nb in x.numblocks)):
        st = [starts[d][i] for d, i in enumerate(bi)]
        bs = [x.chunks[d][i] for d, i in enumerate(bi)]
        # contiguous in C order: ones, then one free axis, then whole axes
        free = next((d for d, b in enumerate(bs) if b != 1), len(bs))
        if not math.prod(bs):
            qs.append(0)  # holds nothing
        elif all(bs[d] == shape[d] for d in range(free + 1, len(bs))):
            qs.append(int(np.ravel_multi_index(st, shape)))
        else:
            qs.append((tuple(st), shape))
            in_order = False
        blocks.append(xkeys[bi])
        sizes.append(math.prod(bs))
    offs = [0, *itertools.accumulate(sizes)]
    return _Group(blocks, qs, sizes, 1, int(x.size), offs, [(s,) for s in sizes], in_order)


def _splitters(samples: list[tuple[Any, Any, Any]], p: int) -> tuple[Any, Any, Any]:
    """``p - 1`` (or fewer) splitters at regular ranks of the samples in composite order."""
    R = np.concatenate([s[0] for s in samples])
    K = np.concatenate([s[1] for s in samples])
    Q = np.concatenate([s[2] for s in samples])
    o = np.argsort(Q, kind="stable")
    o = o[np.argsort(K[o], kind="stable")]
    o = o[np.argsort(R[o], kind="stable")]
    pick = np.unique((np.arange(1, p) * len(o)) // p)
    pick = o[pick[(pick > 0) & (pick < len(o))]]
    return R[pick], K[pick], Q[pick]


def _columns(start: int, end: int, n: int, offs: list[int]) -> list[int]:
    """The output blocks (columns ``offs[c]:offs[c + 1]`` of every line) that the flat range
    ``start:end`` of row-major lines of length ``n`` meets."""
    p = len(offs) - 1
    r0, r1 = start // n, (end - 1) // n
    a, b = start - r0 * n, end - 1 - r1 * n  # first and last column

    def col(i: int) -> int:
        return int(np.searchsorted(offs, i, side="right")) - 1

    if r1 - r0 >= 2 or (r1 == r0 + 1 and b + 1 >= a):
        cs: list[int] = list(range(p))
    elif r0 == r1:
        cs = list(range(col(a), col(b) + 1))
    else:  # the end of one line, the start of the next: both may meet the same block
        cs = sorted({*range(0, col(b) + 1), *range(col(a), p)})
    return [c for c in cs if offs[c + 1] > offs[c]]


def _boxed(f: Any, *args: Any) -> Any:
    """``f(*args)`` in a 1-element object array: one block of :func:`_run`'s array."""
    out = np.empty(1, dtype=object)
    out[0] = f(*args)
    return out


def _run(name: str, tasks: list[tuple[Any, ...]], x: Any) -> list[Any]:
    """The results of ``tasks`` (reading ``x``'s blocks), computed with the current scheduler
    (a distributed client when one is active) as the blocks of an object array: through the
    array optimizations, like every other graph over ``x`` (the same keys, the same tasks)."""
    layer = {(name, i): (_boxed, *t) for i, t in enumerate(tasks)}
    da: Any = sys.modules["dask.array"]
    out = da.Array(_graph(name, layer, x), name, ((1,) * len(tasks),), meta=np.empty(0, object))
    return list(out.compute()) if tasks else []


def _graph(name: str, layer: dict[Any, Any], x: Any) -> Any:
    """A graph of the tasks ``layer`` on top of ``x``'s graph."""
    from dask.highlevelgraph import HighLevelGraph

    return HighLevelGraph.from_collections(name, layer, [x])


def sample_sort(x: Any, axis: int | None, descending: bool, want_indices: bool) -> Any:
    """Stable sort (values, or ``int64`` indices) of dask array ``x`` along ``axis`` (split
    into several chunks), or of its flattening (``axis=None``), never gathering the axis.

    The result has ``x``'s chunks (``axis=None``: one chunk per block of ``x``, in C order).
    Splitters and bucket counts are computed at the call (two passes over ``x``).
    """
    token = uuid.uuid4().hex
    xkeys = np.empty(x.numblocks, dtype=object)
    for bi in itertools.product(*(range(nb) for nb in x.numblocks)):
        xkeys[bi] = (x.name, *bi)
    groups, index = (
        ([_flat_group(x, xkeys)], None) if axis is None else _axis_groups(x, axis, xkeys)
    )
    with_q = want_indices or not all(g.in_order for g in groups)
    # (group, block) of every block holding data
    full = [(gi, c) for gi, g in enumerate(groups) for c, s in enumerate(g.sizes) if s]

    # 1. samples -> splitters (each group its own)
    tasks: list[tuple[Any, ...]] = [
        (_sample_block, groups[gi].blocks[c], axis, groups[gi].rows, groups[gi].qs[c],
         descending, k)
        for k, (gi, c) in enumerate(full)
    ]
    samples: list[list[Any]] = [[] for _ in groups]
    for (gi, _), smp in zip(full, _run(f"xback-sort-sample-{token}", tasks, x)):
        samples[gi].append(smp)
    spls = [_splitters(smp, len(g.blocks)) if smp else _NO_SPLITTERS for g, smp in
            zip(groups, samples)]
    # 2. bucket counts per block
    tasks = [
        (_count_block, groups[gi].blocks[c], axis, groups[gi].rows, groups[gi].qs[c],
         descending, spls[gi], len(spls[gi][0]) + 1)
        for gi, c in full
    ]
    counts = [np.zeros((len(g.blocks), len(spl[0]) + 1), np.int64) for g, spl in
              zip(groups, spls)]
    for (gi, c), cnt in zip(full, _run(f"xback-sort-count-{token}", tasks, x)):
        counts[gi][c] = cnt
    # 3. the lazy graph: partition -> pieces -> buckets -> cuts -> output blocks
    out_name = f"xback-sort-{token}"
    part, piece, bucket, cut = (f"xback-sort-{s}-{token}" for s in ("part", "piece", "bucket",
                                                                       "cut"))
    dtype = _INT64 if want_indices else x.dtype
    layer: dict[Any, Any] = {}
    for gi, (g, spl, C) in enumerate(zip(groups, spls, counts)):
        nb = len(spl[0]) + 1
        for c, row in enumerate(C):
            js = np.flatnonzero(row).tolist()
            if js:
                layer[part, gi, c] = (
                    _partition_block, g.blocks[c], axis, g.rows, g.qs[c], descending, spl, nb,
                    js, with_q,
                )
                for i, j in enumerate(js):
                    layer[piece, gi, c, j] = (operator.getitem, (part, gi, c), i)
        ends = np.cumsum(C.sum(axis=0)).tolist()
        to_out: list[list[Any]] = [[] for _ in g.out_shapes]
        for j in range(nb):
            start = ends[j - 1] if j else 0
            if ends[j] == start:
                continue
            cs = _columns(start, ends[j], g.n, g.offs)
            layer[bucket, gi, j] = (
                _merge_bucket, [(piece, gi, c, j) for c in range(len(C)) if C[c, j]],
                descending, g.in_order, want_indices, start, g.n,
                [(g.offs[c], g.offs[c + 1]) for c in cs],
            )
            for i, c in enumerate(cs):
                layer[cut, gi, j, c] = (operator.getitem, (bucket, gi, j), i)
                to_out[c].append((cut, gi, j, c))
        for c, (ps, shp) in enumerate(zip(to_out, g.out_shapes)):
            k = (c,) if index is None else index[gi][c]
            key = (out_name, *k)
            layer[key] = (_assemble, ps, shp, axis, dtype)
    chunks = (tuple(groups[0].sizes),) if axis is None else x.chunks
    da: Any = sys.modules["dask.array"]
    meta = np.empty((0,) * len(chunks), dtype)
    return da.Array(_graph(out_name, layer, x), out_name, chunks, meta=meta)


_NO_SPLITTERS = (np.zeros(0, np.intp), np.zeros(0), np.zeros(0, _INT64))
