"""The Dask backend: lazy, chunked :class:`dask.array.Array` (chunks are NumPy arrays).

Loaded only when the caller has imported dask (or asked for ``backend="dask"``). Results stay
lazy dask arrays; nothing is computed except where a Python value is needed (documented per
method: :meth:`DaskBackend.to_numpy`, :meth:`DaskBackend.all_finite`, :meth:`DaskBackend.gram`).

* Sorting: along an axis held in ONE chunk, per block with the NumPy backend's kernels (the
  full contract: NaN last, stable descending, every dtype, int64 indices). Along an axis
  split into several chunks (and ``axis=None`` over several chunks): the stable sample sort
  of :mod:`xback.backends._dask_sort`, which never gathers the axis (it computes its
  splitters and bucket sizes first: two passes over ``x``); same results.
* ``lstsq_grad``: ``A`` chunked by rows (columns rechunked to one chunk, rows never), one task
  per row block computes ``2 A_bᴴ(A_b x - y_b)``, the partial gradients are summed by a tree
  reduction: one pass over ``A``, memory per task bounded by one block.
* ``gram``: ``A_bᴴ [A_b, y_b]`` per row block, tree-summed (one pass), then persisted.
* ``svd``/``svdvals``: matrices held in one chunk (small matrices, stacks chunked along the
  batch axes only): per block with NumPy, exactly as the NumPy backend. Tall-and-skinny 2-D
  ``A`` (one chunk across the columns): Dask's TSQR ``dask.array.linalg.svd`` (thin factors
  only). Other layouts: ``ValueError`` saying how to rechunk. ``S`` is persisted (computed
  at the call): the front layer's finiteness check reads it; ``U`` and ``Vh`` stay lazy.
"""

from __future__ import annotations

import contextlib
import sys
import warnings
from collections.abc import Iterator
from typing import Any

import numpy as np

from xback.backends import (
    HostBackend,
    _dask_chunks,
    _dask_family,
    _dask_sort,
    _linalg_generic,
    _numpy_sort,
)
from xback.backends.numpy import BACKEND as _NP_BACKEND

__all__ = ["BACKEND", "DaskBackend"]

_INT64 = np.dtype(np.int64)
#: fan-in of the tree reductions (partial gradients summed per task)
_SPLIT_EVERY = 8

_da: Any = None


def _dask_array() -> Any:
    """The ``dask.array`` module (imported here only once the dask backend is in use)."""
    global _da
    if _da is None:
        import dask.array

        _da = dask.array
    return _da


def _real_dtype(dt: np.dtype[Any]) -> np.dtype[Any]:
    return np.dtype(np.float32) if dt == np.complex64 else (
        np.dtype(np.float64) if dt == np.complex128 else dt
    )


# -- per-block kernels (run on the workers; plain NumPy) --------------------------------------
def _block_grad(A: Any, y: Any, x: Any) -> Any:
    """``2 A_bᴴ (A_b x - y_b)`` for one row block, with a leading axis of length 1."""
    r = A @ x
    r -= y
    At = A.T
    g = (At @ r.conj()).conj() if A.dtype.kind == "c" else At @ r
    g *= 2
    return g[None]


def _block_gram(A: Any, y: Any) -> Any:
    """``A_bᴴ [A_b, y_b]`` for one row block (shape ``(1, n, n + k)``): one pass over A_b."""
    Y = y[:, None] if y.ndim == 1 else y
    Ah = A.conj().T if A.dtype.kind == "c" else A.T
    return (Ah @ np.concatenate([A, Y], axis=1))[None]


def _svd_block(x: Any, full_matrices: bool, canonical_signs: bool) -> tuple[Any, Any, Any]:
    return _NP_BACKEND.svd(x, full_matrices, canonical_signs)


def _svdvals_block(x: Any) -> Any:
    # a block holding NaN or inf gets NaN singular values without LAPACK, whose scaling
    # prints on stdout for some inf input (docs/benchmarks.md#finiteness-checks); the front
    # layer's check of S then raises
    if not _NP_BACKEND.all_finite(x):
        return np.full((*x.shape[:-2], min(x.shape[-2:])), np.nan, np.finfo(x.dtype).dtype)
    return np.linalg.svd(x, compute_uv=False)


class _Shared:
    """A NumPy array seen by :func:`dask.array.from_array` as a plain array-like: no ``copy``
    method, so dask slices it lazily instead of copying it whole first."""

    __slots__ = ("a", "dtype", "ndim", "shape")

    def __init__(self, a: np.ndarray[Any, Any]) -> None:
        self.a, self.shape, self.dtype, self.ndim = a, a.shape, a.dtype, a.ndim

    def __getitem__(self, key: Any) -> Any:
        return self.a[key]


def _wrap(a: np.ndarray[Any, Any], copy: bool | None, chunks: Any) -> Any:
    """A lazy dask array over ``a`` (copied first when ``copy``)."""
    # dask.array.from_array copies every NumPy array it is given; a copy-less wrapper keeps
    # copy=None/False zero-copy (and copy=True one copy). name=False: a random graph key
    # instead of hashing all of ``a`` (an O(n) pass).
    return _dask_array().from_array(_Shared(a.copy() if copy else a), chunks=chunks, name=False)


@contextlib.contextmanager
def _meta_casts() -> Iterator[None]:
    """Silences dask's spurious ComplexWarning when it builds the meta arrays of complex
    decompositions (the singular values are real: a harmless cast, not the caller's doing)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", np.exceptions.ComplexWarning)
        yield


def _tsqr_svd(da: Any, x: Any) -> Any:
    """``dask.array.linalg.svd`` (TSQR)."""
    with _meta_casts():
        return da.linalg.svd(x)


class DaskBackend(HostBackend):
    """Backend for :class:`dask.array.Array` (device ``"cpu"``: the chunks are NumPy arrays)."""

    name = "dask"
    respects_readonly = True  # dask never writes into the arrays it wraps
    has_chunks = True
    # singular values alone are checked after: a check first would compute the input once
    # more (each block is checked before its LAPACK call instead, see _svdvals_block)
    svd_checked_first = frozenset({"full", "thin"})

    # -- kinds, devices, dtypes ------------------------------------------------------------
    def owns(self, tp: type) -> bool:
        # dask.array is looked up, never imported: a dask array cannot exist without it
        m = sys.modules.get("dask.array")
        return m is not None and issubclass(tp, m.Array)

    # -- conversion ------------------------------------------------------------------------
    def to_numpy(self, x: Any, copy: bool | None) -> np.ndarray[Any, Any]:
        """Compute ``x`` (runs its whole task graph) into a NumPy array.

        ``copy=False`` raises ``ValueError``: a lazy array has no memory to share.
        """
        if copy is False:
            raise ValueError(
                "to_numpy(copy=False) is impossible for a dask array: it is lazy, so "
                "converting it computes its task graph into a new NumPy array (a copy); "
                "pass copy=None or copy=True"
            )
        out = np.asarray(x.compute())
        # a single-chunk array wrapping a NumPy array may compute to that very array
        return np.array(out, copy=True) if copy else out

    def from_numpy(self, a: np.ndarray[Any, Any], device: str, copy: bool | None) -> Any:
        """A lazy dask array over ``a`` (shared unless ``copy``: writing into ``a`` before
        the array is computed changes the result), automatic chunks."""
        return _wrap(a, copy, "auto")

    def normalize_chunks(
        self, chunks: Any, shape: tuple[int, ...], dtype: np.dtype[Any]
    ) -> tuple[tuple[int, ...], ...]:
        return _dask_chunks.normalize_chunks(chunks, shape, dtype)

    def from_numpy_chunked(
        self, a: np.ndarray[Any, Any], copy: bool | None, chunks: tuple[tuple[int, ...], ...]
    ) -> Any:
        """:meth:`from_numpy` with the given chunks."""
        return _wrap(a, copy, chunks)

    def astype(self, x: Any, dtype: np.dtype[Any]) -> Any:
        return x.astype(dtype)

    def copy(self, x: Any) -> Any:
        return x.map_blocks(np.copy, dtype=x.dtype)

    # -- sorting ---------------------------------------------------------------------------
    @staticmethod
    def _sample_sorted(x: Any, axis: int | None) -> bool:
        """Whether sorting along ``axis`` (``None``: the flattened array) needs the sample
        sort: data split into several chunks along it."""
        if not x.size:
            return False
        return (_flat_blocks(x) if axis is None else x.numblocks[axis]) > 1

    @staticmethod
    def _sort_input(x: Any, axis: int | None) -> tuple[Any, int]:
        """``x`` and the axis to sort block by block: the axis is in one chunk, or ``x``
        holds no data (its empty blocks sort to empty blocks: its chunks are kept);
        ``axis=None``: ``x`` flattened (one chunk, or no data)."""
        if axis is None:
            if not x.size:
                # dask cannot reshape (or rechunk) zero-length axes split into several
                # empty chunks: the flattening of no data is one empty chunk
                return _dask_array().from_array(x._meta.reshape(0), chunks=(0,)), 0
            return x.reshape(-1), 0
        return x, axis

    def sort(self, x: Any, axis: int | None, descending: bool, stable: bool) -> Any:
        if self._sample_sorted(x, axis):
            return _dask_sort.sample_sort(x, axis, descending, want_indices=False)
        x, axis = self._sort_input(x, axis)
        return x.map_blocks(
            _numpy_sort.sort, axis, descending, stable, dtype=x.dtype, meta=x._meta
        )

    def argsort(self, x: Any, axis: int | None, descending: bool, stable: bool) -> Any:
        if self._sample_sorted(x, axis):
            return _dask_sort.sample_sort(x, axis, descending, want_indices=True)
        x, axis = self._sort_input(x, axis)
        return x.map_blocks(
            _numpy_sort.argsort,
            axis,
            descending,
            stable,
            dtype=_INT64,
            meta=np.empty((0,) * x.ndim, dtype=_INT64),
        )

    # -- linear algebra --------------------------------------------------------------------
    def svd(self, x: Any, full_matrices: bool, canonical_signs: bool) -> tuple[Any, Any, Any]:
        if not x.size:  # no data, whatever its chunks (zero-length axes split or not)
            return tuple(
                _wrap(r, False, r.shape)
                for r in _svd_block(np.empty(x.shape, x.dtype), full_matrices, canonical_signs)
            )
        da = _dask_array()
        dt = x.dtype
        rdt = _real_dtype(dt)
        m, n = x.shape[-2:]
        if x.numblocks[-2] == 1 and x.numblocks[-1] == 1:
            k = min(m, n)
            with _meta_casts():
                U, S, Vh = da.apply_gufunc(
                    _svd_block,
                    "(i,j)->(i,p),(k),(q,j)",
                    x,
                    full_matrices=full_matrices,
                    canonical_signs=canonical_signs,
                    output_dtypes=(dt, rdt, dt),
                    output_sizes={
                        "p": m if full_matrices else k,
                        "k": k,
                        "q": n if full_matrices else k,
                    },
                )
            return U, S.persist(), Vh
        self._check_tall_skinny(x, "svd")
        if full_matrices and m > n:
            raise ValueError(
                f"svd on the dask backend: x of shape {tuple(x.shape)} is chunked by rows "
                f"{x.chunks[0]}, and the TSQR algorithm that handles it gives the thin "
                f"factors only (U of shape ({m}, {n})); pass full_matrices=False, or rechunk "
                f"x into one chunk (x.rechunk(-1)) if it fits in memory"
            )
        U, S, Vh = _tsqr_svd(da, x)
        if canonical_signs and n:
            U, Vh = self._canonical_signs(da, U, Vh)
        # S persisted (computed now, or held on the cluster): the front layer's finiteness
        # check reads it anyway; U and Vh stay lazy
        return U, S.persist(), Vh

    def svdvals(self, x: Any) -> Any:
        if not x.size:
            S = _svdvals_block(np.empty(x.shape, x.dtype))
            return _wrap(S, False, S.shape)
        da = _dask_array()
        if x.numblocks[-2] == 1 and x.numblocks[-1] == 1:
            with _meta_casts():
                S = da.apply_gufunc(
                    _svdvals_block,
                    "(i,j)->(k)",
                    x,
                    output_dtypes=_real_dtype(x.dtype),
                    output_sizes={"k": min(x.shape[-2:])},
                )
            return S.persist()
        self._check_tall_skinny(x, "svdvals")
        # persisted: the front layer's finiteness check reads S; computed once, not twice
        return _tsqr_svd(da, x)[1].persist()

    def _canonical_signs(self, da: Any, U: Any, Vh: Any) -> tuple[Any, Any]:
        """The sign convention (:func:`xback.backends._linalg_generic.phases_of`) on lazy
        thin TSQR factors: the pivot of each column of ``U`` found across its row chunks
        (``take_along_axis`` does not cross chunks in dask)."""
        idx = da.argmax(abs(U), axis=0)  # first maximum, across chunks too
        rows = da.arange(U.shape[0], chunks=(U.chunks[0],))
        piv = da.where(rows[:, None] == idx[None, :], U, 0).sum(axis=0)  # exact: one term
        xp = self.namespace(U)
        ph = _linalg_generic.phases_of(self, xp, piv[None, :])
        return _linalg_generic.apply_phases(self, xp, U, Vh, ph, U.shape[1])

    @staticmethod
    def _check_tall_skinny(x: Any, fname: str) -> None:
        """Raise unless ``x`` is 2-D, tall (m >= n) and held in one chunk across columns."""
        shape, chunks = tuple(x.shape), x.chunks
        if x.ndim > 2:
            raise ValueError(
                f"{fname} on the dask backend: the stack x of shape {shape} has its matrices "
                f"split across chunks {chunks[-2:]}; each matrix must be one chunk: "
                f"x.rechunk({{{x.ndim - 2}: -1, {x.ndim - 1}: -1}})"
            )
        m, n = shape
        if x.numblocks[1] > 1 or m < n:
            raise ValueError(
                f"{fname} on the dask backend is exact for tall-and-skinny matrices only "
                f"(m >= n, chunked by rows, ONE chunk across the columns); x has shape "
                f"{shape} and chunks {chunks}: rechunk with x.rechunk({{1: -1}}) when "
                f"m >= n, decompose x.T for a short-and-wide x (svd(x.T) = (V, S, Uᴴ) "
                f"conjugated), or rechunk x into one chunk (x.rechunk(-1)) if it fits in "
                f"memory; an approximate randomized method "
                f"(dask.array.linalg.svd_compressed) is not used implicitly"
            )

    def all_finite(self, x: Any) -> bool:
        """Computes ``isfinite(x).all()`` (runs ``x``'s task graph)."""
        da = _dask_array()
        try:
            return bool(da.isfinite(x).all().compute())
        except np.linalg.LinAlgError:
            # ``x`` is a lazy result (e.g. singular values) whose computation failed: LAPACK
            # fails this way on NaN/inf input; the front layer then checks the input itself
            return False

    def lstsq_grad(self, A: Any, x: Any, y: Any, method: str) -> Any:
        da = _dask_array()
        if x.ndim == 1 and A.ndim > 2:  # the vector/batch rule of the default
            return super().lstsq_grad(A, x, y, method)
        if A.ndim > 2 or x.ndim > 2 or y.ndim > 2:
            # batched: the default's lazy expression on aligned chunks (no one-pass guarantee)
            x, y = _batch_like(x, A, ((A.shape[-1],), (x.shape[-1],))), _batch_like(
                y, A, (A.chunks[-2], (y.shape[-1],))
            )
            return super().lstsq_grad(A, x, y, method)
        A, y, x = _row_aligned(A, y), _rows_like(y, A), x.rechunk(-1)
        if x.ndim == 1:
            parts = da.blockwise(
                _block_grad, "ij", A, "ij", y, "i", x, "j",
                adjust_chunks={"i": 1}, dtype=A.dtype, meta=np.empty((0, 0), A.dtype),
            )
        else:
            parts = da.blockwise(
                _block_grad, "ijk", A, "ij", y, "ik", x, "jk",
                adjust_chunks={"i": 1}, dtype=A.dtype, meta=np.empty((0, 0, 0), A.dtype),
            )
        return parts.sum(axis=0, split_every=_SPLIT_EVERY)

    def gram(self, A: Any, y: Any) -> tuple[Any, Any]:
        """One pass over ``A`` for ``(AᴴA, Aᴴy)``, then persisted (computed now, or kept on
        the cluster with a distributed client) so that each gradient call is local."""
        da = _dask_array()
        if A.ndim > 2 or y.ndim > 2:
            vec = y.ndim == 1
            y = y[:, None] if vec else y
            y = _batch_like(y, A, (A.chunks[-2], (y.shape[-1],)))
            Ah = da.swapaxes(A, -1, -2)
            if A.dtype.kind == "c":
                Ah = Ah.conj()
            G, c = Ah @ A, Ah @ y
            if vec:
                c = c[..., 0]  # (..., n), as the protocol says for a vector y
        else:
            A, y = _row_aligned(A, y), _rows_like(y, A)
            n = A.shape[1]
            if y.ndim == 1:
                parts = da.blockwise(
                    _block_gram, "ijk", A, "ij", y, "i",
                    new_axes={"k": n + 1}, adjust_chunks={"i": 1},
                    dtype=A.dtype, meta=np.empty((0, 0, 0), A.dtype),
                )
            else:
                parts = da.blockwise(
                    _block_gram, "ijk", A, "ij", y, "ik",
                    adjust_chunks={"i": 1, "k": lambda c: n + c},
                    dtype=A.dtype, meta=np.empty((0, 0, 0), A.dtype),
                )
            P = parts.sum(axis=0, split_every=_SPLIT_EVERY)
            G = P[:, :n]
            c = P[:, n] if y.ndim == 1 else P[:, n:]
        G, c = sys.modules["dask"].persist(G, c)
        return G, c

    def gram_grad(self, G: Any, c: Any, x: Any) -> Any:
        if x.ndim > 1 and (G.ndim > 2 or x.ndim > 2):
            x = _batch_like(x, G, ((G.shape[-1],), (x.shape[-1],)))
        return super().gram_grad(G, c, x)

    # -- the sort family (xback._sortfamily; chunked algorithms in _dask_family) ----------
    def concrete(self, x: Any) -> bool:
        return False

    def reshape(self, x: Any, shape: tuple[int, ...]) -> Any:
        if not x.size:  # dask cannot reshape zero-length axes split into empty chunks
            a = np.empty(x.shape, dtype=x.dtype).reshape(shape)
            return _wrap(a, False, a.shape)
        return x.reshape(shape)

    def has_nan(self, x: Any) -> bool:
        """Computes ``isnan(x).any()`` (runs ``x``'s task graph)."""
        return bool(_dask_array().isnan(x).any().compute())

    top_k = staticmethod(_dask_family.top_k)
    searchsorted = staticmethod(_dask_family.searchsorted)
    unique = staticmethod(_dask_family.unique)
    gather_rows = staticmethod(_dask_family.gather_rows)
    rankdata = staticmethod(_dask_family.rankdata)

    def order_statistics(self, x: Any, kth: list[int]) -> Any:
        return _dask_family.order_statistics(self, x, kth)


def _batch_like(v: Any, A: Any, last: tuple[tuple[int, ...], tuple[int, ...]]) -> Any:
    """``v`` (a stack of matrices) rechunked like ``A`` on the batch axes they share (aligned
    from the right, as they broadcast), its last two axes to ``last``."""
    bv, bA, off = v.shape[:-2], A.shape[:-2], A.ndim - v.ndim
    chunks = tuple(
        A.chunks[i + off] if 0 <= i + off < len(bA) and bA[i + off] == bv[i] else (bv[i],)
        for i in range(len(bv))
    )
    want = (*chunks, *last)
    return v if v.chunks == want else v.rechunk(want)


def _row_aligned(A: Any, y: Any) -> Any:
    """``A`` with its columns in one chunk (rows never rechunked)."""
    return A if A.numblocks[1] == 1 else A.rechunk({1: -1})


def _rows_like(y: Any, A: Any) -> Any:
    """``y`` rechunked to ``A``'s row chunks (``y`` is small next to ``A``)."""
    want = (A.chunks[0], *((s,) for s in y.shape[1:]))
    return y if y.chunks == want else y.rechunk(want)


def _flat_blocks(x: Any) -> int:
    return int(np.prod(x.numblocks)) if x.ndim else 1



BACKEND = DaskBackend()
