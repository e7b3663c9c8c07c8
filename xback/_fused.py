"""Fused one-pass ``lstsq_grad`` kernel (optional, needs Numba: ``pip install 'xback[fast]'``).

At large sizes the gradient ``2 Aᵀ (A x - y)`` is memory-bound: BLAS evaluates it in two
passes over ``A`` (``A @ x``, then ``Aᵀ @ r``), so it costs at least twice the time to read
``A`` once. This kernel reads ``A`` once: the rows are cut into chunks, each thread takes
chunks and, for each row ``a_i`` (still in cache), computes ``r_i = a_i · x - y_i`` and
accumulates ``g += a_i r_i`` into the chunk's partial gradient; the partials are summed at
the end (4 rows per step for rows of at least ``UNROLL_MIN_BYTES``, prefetching the next 4
rows while the update runs; vector loads aligned to 64 bytes; see the kernel section).

Speed: ``benchmarks/bench_fused.py`` times it against the fastest one-pass read of ``A`` and
against NumPy's and torch's two passes; the measured numbers, and the machines they come
from, are in docs/benchmarks.md ("The fused one-pass kernel", "Implementation notes").

Why Numba (and not a C extension): it is one optional wheel (``xback[fast]``) on every
platform NumPy supports, needs no compiler on the user's machine and no per-platform
wheels of xback itself (a C extension would turn xback from pure Python into a compiled
package, with builds for each OS/CPU/Python), and it compiles for the host CPU (AVX-512
here) where a portable C wheel targets a baseline ISA. The costs are Numba's import and the
compile (docs/benchmarks.md#compiling-the-fused-kernel), paid on first use only:
``import xback`` never imports Numba.

Scope: real float32/float64, ``A`` 2-D C-contiguous ``(m, n)``, ``x`` ``(n, k)``, ``y``
``(m, k)`` (``x``/``y`` of any strides; ``k`` small: the kernel computes the ``k`` columns
from one read of each row). Everything else (complex, batched ``A``, other layouts) is left
to the backend's BLAS formula by the front layer (:func:`supports`).

Accuracy: each residual ``r_i`` is a dot product in the input precision (vectorised, so
summed in SIMD lanes as BLAS does, error ``<~ n eps``); the gradient is accumulated in the
input precision over blocks of at most :data:`BLOCK_ROWS` rows only and those block sums
are added in float64, so the accumulation error is ``<~ BLOCK_ROWS eps`` instead of the
``m eps`` of a straight sum (float32 stays within float32 BLAS's error; see
``tests/test_fused.py``). ``fastmath`` is limited to reassociation and contraction (FMA):
no ``nnan``/``ninf`` assumptions, so NaN and inf propagate as in BLAS.

Threads: ``min(CPUs, numba.get_num_threads(), threadpoolctl's limits of the loaded
BLAS/OpenMP libraries, torch.get_num_threads() when torch is imported)`` (:func:`num_threads`),
so ``threadpool_limits(1)``, ``torch.set_num_threads(1)`` or ``numba.set_num_threads(1)``
make it single-threaded. The threads are the caller and a small pool of xback's own
(the kernels release the GIL), not Numba's threading layer; no BLAS runs at the same time,
so the process never runs more compute threads than the libraries allow. Rows are cut into
chunks of about :data:`CHUNK_BYTES` of ``A``, handed out dynamically in ranges of a
``1 / (2 t)`` share of what is left (few kernel calls, small last ones: robust on a loaded
machine); the chunk partials are summed in chunk order, so the result is bitwise independent
of the number of threads (it may differ by rounding with ``A``'s offset from a 64-byte
boundary).

Compilation: on first use (Numba is imported then, never by ``import xback``), cached on
disk in a private folder of xback's: ``numba-<uid>`` (``numba`` on Windows) inside the user
cache directory (``$XBACK_CACHE_DIR``, else ``$XDG_CACHE_HOME/xback``, else
``~/.cache/xback``; ``%LOCALAPPDATA%\\xback`` on Windows), created with mode 0700. Numba
reads its cache files with ``pickle``, so loading them runs whatever they contain: the folder
must never be shared or writable by anyone else. Before each process points Numba at it, the
folder is checked (POSIX): a real directory (not a symbolic link), owned by the current user,
mode 0700 (no access for group or others), inside a directory that only its owner (the user
or root) and the user's own group can change (or that has the sticky bit, as ``/tmp``). A
folder that fails a check or cannot be created (``$XBACK_CACHE_DIR`` a file, a path under
``/proc``, no write permission) is not used: the kernels compile without a disk cache (again
in every process) and one ``RuntimeWarning`` names the folder and the reason. Numba's own
settings (``$NUMBA_CACHE_DIR``, ``__pycache__``) are not used for these kernels.
:func:`compile_info` reports the folder, the import and compile (or cache-load) times;
:func:`warmup` compiles ahead of time.

Fork: a process may fork while another thread compiles the kernels. ``os.fork`` then waits
(at most :data:`FORK_WAIT_SECONDS`) for the compile to finish, so that the child starts with
a consistent compiler; a child forked mid-compile all the same (the wait ran out) never
compiles: for the dtypes the parent had not finished it computes ``2 Aᵀ (A x - y)`` with
NumPy (BLAS), since the compiler's locks and state may be held by a thread that does not
exist in the child. The child starts its own thread pool. When the pool cannot take work
(the interpreter is shutting down: the main thread has ended) the calling thread computes
every chunk.
"""

from __future__ import annotations

import os
import stat
import sys
import threading
import time
import warnings
from typing import Any

import numpy as np

__all__ = [
    "AUTO_MAX_K",
    "AUTO_MIN_N",
    "BLOCK_ROWS",
    "FORK_WAIT_SECONDS",
    "INSTALL_HINT",
    "TARGET",
    "FusedTarget",
    "auto_applies",
    "available",
    "cache_base",
    "compile_info",
    "grad_numpy",
    "grad_torch",
    "lstsq_grad",
    "num_threads",
    "private_cache_dir",
    "supports",
    "warmup",
]

_F32 = np.dtype(np.float32)
_F64 = np.dtype(np.float64)

#: rows accumulated in the input precision before a float64 add (bounds float32 error)
BLOCK_ROWS = 256
#: rows of at least this many bytes go 4 at a time (measured faster from rows of 1 KB, slower
#: for 512-byte rows: docs/benchmarks.md#fused-kernel-design-measurements)
UNROLL_MIN_BYTES = 1024
#: cache lines of a row updated per prefetched line of each next row: while the update
#: (from cache) of 4 rows runs, the first ``1 / PREFETCH_SEGMENT_LINES`` of the next 4 rows
#: is prefetched
PREFETCH_SEGMENT_LINES = 4
#: bytes of A per chunk (a multiple of BLOCK_ROWS rows), the unit of work of one thread
CHUNK_BYTES = 1 << 20

# -- method="auto" ---------------------------------------------------------------------------
# Where "auto" takes the kernel is measured, not assumed: ``xback tune`` times it beside
# NumPy's and torch's BLAS for each dtype and size of A (the "fused" column of the routing
# table, :mod:`xback._routing`), and "auto" takes it for the sizes where it beat both. The
# kernel's own limits below apply on top: the table measures A of shape (10 n, n), so these
# keep "auto" off shapes it did not measure and where the kernel is known to lose. Measured
# single-threaded (min ms, A of 32-335 MB, fused / NumPy): float32 n=32 7.97/2.64 (slower:
# per-row overhead), n=64 3.31/6.75, n=128 2.52/5.24; float64 n=16 14.7/15.5 (even), n=32
# 6.37/15.6; more right-hand sides than AUTO_MAX_K: BLAS's gemm amortises the extra dot
# products per row better.
#: smallest n (columns of A) for which "auto" uses the fused kernel, per dtype
AUTO_MIN_N: dict[np.dtype[Any], int] = {_F32: 128, _F64: 64}
#: largest k (columns of x) for which "auto" uses the fused kernel
AUTO_MAX_K: int = 4

INSTALL_HINT = "pip install 'xback[fast]' (or: pip install numba)"

#: seconds ``os.fork`` waits for a compile in another thread to finish (module docstring)
FORK_WAIT_SECONDS: float = 10.0

# RLocks: a thread that forks while it holds one (the before-fork handler takes both) does
# not wait for itself. Both are replaced in a forked child (_after_fork_child).
_lock = threading.RLock()  # compiling (_compile)
_build_lock = threading.RLock()  # importing Numba, creating the dispatchers (_build)
_state: dict[str, Any] = {}
_compiled: dict[tuple[Any, ...], dict[str, Any]] = {}
_ready: set[np.dtype[Any]] = set()
_available: bool | None = None
# set in a child forked while a compile ran in another thread: why it must not compile
_no_compile: str | None = None
_cache_warned = False  # the unusable-cache warning is given once per process


def available() -> bool:
    """Whether Numba is installed (checked once, without importing it)."""
    global _available
    if _available is None:
        import importlib.util  # once, on first use: keeps ``import xback`` light

        _available = importlib.util.find_spec("numba") is not None
    return _available


def supports(A: np.ndarray[Any, Any], x: np.ndarray[Any, Any], y: np.ndarray[Any, Any]) -> bool:
    """Whether the kernel computes ``2 Aᵀ (A x - y)`` for these NumPy arrays.

    ``A`` 2-D C-contiguous float32/float64 ``(m, n)`` with ``m, n >= 1``, and either
    ``x (n,)``, ``y (m,)`` or ``x (n, k)``, ``y (m, k)`` with ``k >= 1``, of ``A``'s dtype.
    """
    dt = A.dtype
    if not (dt in (_F32, _F64) and A.ndim == 2 and A.flags.c_contiguous):
        return False
    m, n = A.shape
    if m == 0 or n == 0 or x.dtype != dt or y.dtype != dt:
        return False
    if x.ndim == 1:
        return bool(x.shape == (n,) and y.shape == (m,))
    return bool(x.ndim == 2 and x.shape[0] == n and x.shape[1] > 0 and y.shape == (m, x.shape[1]))


def auto_applies(n: int, dtype: np.dtype[Any]) -> bool:
    """Whether ``method="auto"`` may take the kernel for an ``A`` with ``n`` columns of
    ``dtype`` where the cost table measured it faster: Numba installed and ``n`` at least
    :data:`AUTO_MIN_N` (the size itself is the table's decision, :mod:`xback._routing`)."""
    min_n = AUTO_MIN_N.get(dtype)
    return min_n is not None and n >= min_n and available()


def _need_numba() -> None:
    if not available():
        raise ValueError(
            "lstsq_grad: method='fused' needs Numba, which is not installed: " + INSTALL_HINT
        )


def grad_numpy(A: Any, x: Any, y: Any) -> Any:
    """For NumPy input (:meth:`FusedTarget.grad`): ``2 Aᵀ (A x - y)`` by the kernel, or
    ``None`` for inputs it does not cover (complex, not float32/float64, batched or
    non-C-contiguous ``A``): the front layer then takes the backend's BLAS formula.

    Raises ``ValueError`` when Numba is not installed.
    """
    _need_numba()
    return lstsq_grad(A, x, y) if supports(A, x, y) else None


def grad_torch(A: Any, x: Any, y: Any) -> Any:
    """For torch input (:meth:`FusedTarget.grad`): as :func:`grad_numpy` on zero-copy
    NumPy views of CPU tensors, the result wrapped back with ``torch.from_numpy``; ``None``
    (the BLAS formula) whenever autograd must see the operation (grad mode on and an input
    requires grad: the result then stays differentiable) and for tensors NumPy cannot view
    (other devices, sparse layouts, negative- or conjugate-bit views, dtypes NumPy lacks)
    or the kernel does not cover (:func:`supports`).

    Taking the views is the check: ``Tensor.numpy`` refuses exactly the tensors it cannot
    view, and those that require grad; only then are grad mode and ``requires_grad`` read.
    Each call into torch is dear right after a large call (the caches are cold then), so
    the common case makes four: three views and the result's wrapper."""
    _need_numba()
    torch = sys.modules["torch"]  # the torch backend is loaded, so torch is imported
    try:
        An, xn, yn = A.numpy(), x.numpy(), y.numpy()
    except (TypeError, RuntimeError):  # requires grad, or not a tensor NumPy can view
        if torch.is_grad_enabled() and (A.requires_grad or x.requires_grad or y.requires_grad):
            return None
        try:
            An, xn, yn = A.detach().numpy(), x.detach().numpy(), y.detach().numpy()
        except (TypeError, RuntimeError):
            return None
    return torch.from_numpy(g) if (g := grad_numpy(An, xn, yn)) is not None else None


class FusedTarget:
    """The fused kernel as a routing target (:data:`TARGET`): what
    :func:`xback._routing.kernel_target` returns where the cost table picked it, and what
    the front layer calls for ``method="fused"`` (:func:`xback._linalg.lstsq_grad`). It
    owns its rules: :meth:`applies` (may a call hand it ``b``'s input), :meth:`auto_applies`
    (its own limits for ``method="auto"``) and :meth:`grad` (the gradient, or ``None``
    where it does not cover the inputs: the caller computes the backend's formula then).
    No backend knows about it.

    Examples
    --------
    >>> from xback import _fused
    >>> _fused.TARGET
    <xback fused kernel>
    """

    #: its column in the routing table (:data:`xback._routing.FUSED`)
    name = "fused"

    def applies(self, b: Any, A: Any) -> bool:
        """Whether a call of backend ``b`` may hand its input ``A`` to the kernel once the
        table names it: ``A`` routable (CPU memory NumPy can share, no autograd to record,
        not traced: :meth:`xback.backends.Backend.routable`)."""
        return bool(b.routable(A))

    def auto_applies(self, n: int, dtype: np.dtype[Any]) -> bool:
        """:func:`auto_applies`: Numba installed and ``n`` columns at least
        :data:`AUTO_MIN_N` for ``dtype``."""
        return auto_applies(n, dtype)

    def grad(self, b: Any, A: Any, x: Any, y: Any) -> Any:
        """``2 Aᵀ (A x - y)`` as an array of backend ``b`` by the kernel, or ``None`` for
        inputs it does not cover: backends whose memory it cannot read (only NumPy arrays
        and torch CPU tensors, :func:`grad_numpy`, :func:`grad_torch`), traced inputs
        (``torch.compile``, ``torch.func``), and what :func:`supports` refuses.

        Raises ``ValueError`` when Numba is not installed (for NumPy and torch inputs)."""
        fn = _GRAD_BY_BACKEND.get(b.name)
        if fn is None or b.traced(A):  # traced: never handed to NumPy
            return None
        return fn(A, x, y)

    def __repr__(self) -> str:
        return "<xback fused kernel>"


#: the backends whose arrays the kernel reads zero-copy, and how
_GRAD_BY_BACKEND = {"numpy": grad_numpy, "torch": grad_torch}
#: the fused kernel's routing target
TARGET = FusedTarget()


# -- kernel ---------------------------------------------------------------------------------
# Plain serial kernels (compiled with nogil=True) over a range of row chunks; the threads are
# xback's own (see _run_parallel), not Numba's threading layer: Numba's OpenMP layer ran a
# one-chunk prange several times slower than the same serial code (contention with the
# BLAS/torch OpenMP pools), and its workqueue layer aborts on concurrent launches from two
# threads.
# Chunk c covers rows [c * rows, min((c + 1) * rows, m)) and writes its partial gradient
# to parts[c]; the partials are summed in chunk order, so the result does not depend on the
# number of threads or on which thread ran which chunk.
#
# Alignment: NumPy's data pointers are usually 16 bytes past a 64-byte boundary, so every
# 64-byte (AVX-512) load of a row would straddle two cache lines, which was measured slower
# in L2 and from memory. The first ``p`` columns of each row
# (``p`` from :func:`_peel`, 0 when rows of A do not all share one alignment) are done
# separately, the rest of the row from its first 64-byte boundary; ``x`` is copied so that
# ``x[p]`` is on a 64-byte boundary as well, and so is the kernel's own ``gb[p]``. The
# column index of the vector loops is unsigned (``np.uint64``): with signed indices Numba's
# negative-index wraparound turns the offset loops into gathers.
#
# Prefetch: one core's memory bandwidth is what its outstanding misses allow, and the
# hardware prefetchers follow the misses. While the update of 4 rows runs from L1/L2 there
# are no misses, so nothing is fetched and the stream pauses.
# Before each segment of PREFETCH_SEGMENT_LINES lines of the update, one line of each of the
# next 4 rows is prefetched (``llvm.prefetch``, into L2 and L1), so the first quarter of the
# next rows arrives during the update and the stream does not pause. Tried and not kept
# (docs/benchmarks.md#fused-kernel-design-measurements has the numbers): half of the next rows
# (as good), all of them (worse); software pipelining (the next rows' dot products inside the
# update loop), which helped only while A fitted in the last-level cache; 2- and 8-row steps;
# 512-bit vectors.


def _prefetch(a: Any, i: Any) -> None:  # pragma: no cover - replaced before compiling
    """Hint the CPU to bring the cache line of ``a[i]`` (1-D array) into L2 and L1; in the
    compiled kernels this is ``llvm.prefetch`` (:func:`_prefetch_intrinsic`, installed by
    :func:`_build`), which never faults and never waits; in Python a no-op."""


def _prefetch_intrinsic() -> Any:
    """A Numba intrinsic ``(array, index) -> None`` emitting ``llvm.prefetch`` (read, locality
    2: ``prefetcht1`` on x86, into L2 and L1) of ``&array[index]``."""
    from llvmlite import ir
    from numba.core import types
    from numba.extending import intrinsic

    i32 = ir.IntType(32)
    i8p = ir.IntType(8).as_pointer()
    # the intrinsic is overloaded on its pointer type: "p0" with opaque pointers (LLVM >= 15
    # in llvmlite), "p0i8" with typed ones
    name = "llvm.prefetch.p0" if str(i8p) == "ptr" else "llvm.prefetch.p0i8"
    fnty = ir.FunctionType(ir.VoidType(), [i8p, i32, i32, i32])

    def typer(typingctx: Any, arr: Any, idx: Any) -> Any:
        if not (isinstance(arr, types.Array) and arr.ndim == 1 and isinstance(idx, types.Integer)):
            return None
        sig = types.void(arr, idx)

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            ary = context.make_array(signature.args[0])(context, builder, args[0])
            ptr = builder.bitcast(builder.gep(ary.data, [args[1]]), i8p)
            mod = builder.module
            fn = mod.globals.get(name) or ir.Function(mod, fnty, name)
            rw, locality, data = ir.Constant(i32, 0), ir.Constant(i32, 2), ir.Constant(i32, 1)
            builder.call(fn, [ptr, rw, locality, data])
            return context.get_dummy_value()

        return sig, codegen

    typer.__name__ = "xback_prefetch"
    return intrinsic(typer)


def _finish(parts: Any, out: Any) -> None:
    """``out[j] = 2 * sum_c parts[c, j]``, the chunk partials summed in chunk order (so the
    result does not depend on the threads), in float64, then rounded to ``out``'s dtype."""
    nc, length = parts.shape
    acc = np.zeros(length)
    for c in range(nc):
        for j in range(length):
            acc[j] += parts[c, j]
    for j in range(length):
        out[j] = 2 * acc[j]


def _chunks(
    A: Any, xk: Any, y: Any, c0: int, c1: int, rows: int, block: int, parts: Any, p: int
) -> None:
    """``xk (n, k)``, ``y (m, k)`` (a vector ``x`` is ``(n, 1)``); ``parts[c, q]`` is
    ``sum_i a_i (a_i . x[:, q] - y[i, q])`` over chunk ``c``'s rows, in float64.

    4 rows per step (rows of ``UNROLL_MIN_BYTES`` or more): per column ``q`` of ``x`` one
    loop of dot products over the 4 rows (independent sums sharing the loads of ``x``; the
    rows come from memory in the first column's loop, from cache after) and one update loop
    of ``gb[q]`` from the 4 rows (``gb`` loaded and stored once per 4 rows), the next 4 rows
    prefetched during the first column's update. Measured with k = 1, this one kernel ran as
    fast as a kernel written for k = 1 alone (docs/benchmarks.md)."""
    m, n = A.shape
    k = xk.shape[1]
    isz = A.itemsize
    gbuf = np.zeros((k, n + 64 // isz), dtype=A.dtype)
    o = ((64 - (gbuf.ctypes.data + p * isz) % 64) % 64) // isz
    gb = gbuf[:, o : o + n]  # gb[0, p] on a 64-byte boundary (every gb[q, p] when rows of
    # n + 64 // isz items are a whole number of 64-byte lines)
    xtb = np.empty((k, n + 64 // isz), dtype=A.dtype)
    o = ((64 - (xtb.ctypes.data + p * isz) % 64) % 64) // isz
    xt = xtb[:, o : o + n]  # x transposed, xt[q, p] aligned as gb's
    for q in range(k):
        for j in range(n):
            xt[q, j] = xk[j, q]
    rs = np.zeros((k, 4), dtype=A.dtype)  # the residuals of the 4 rows, per column of x
    z = rs[0, 0] - rs[0, 0]
    up = np.uint64(p)
    L = np.uint64(n - p)
    zero = np.uint64(0)
    line = np.uint64(64 // isz)
    seg = line * np.uint64(PREFETCH_SEGMENT_LINES)
    nseg = L // seg
    for c in range(c0, c1):
        pc = parts[c]
        lo = c * rows
        hi = min(lo + rows, m)
        for b0 in range(lo, hi, block):
            b1 = min(b0 + block, hi)
            gb[:, :] = 0
            i = b0
            while n * isz >= UNROLL_MIN_BYTES and i + 4 <= b1:
                a0 = A[i]
                a1 = A[i + 1]
                a2 = A[i + 2]
                a3 = A[i + 3]
                for q in range(k):
                    xq = xt[q]
                    s0 = z
                    s1 = z
                    s2 = z
                    s3 = z
                    for j in range(p):
                        xj = xq[j]
                        s0 += a0[j] * xj
                        s1 += a1[j] * xj
                        s2 += a2[j] * xj
                        s3 += a3[j] * xj
                    for jj in range(L):
                        j = up + jj
                        xj = xq[j]
                        s0 += a0[j] * xj
                        s1 += a1[j] * xj
                        s2 += a2[j] * xj
                        s3 += a3[j] * xj
                    rs[q, 0] = s0 - y[i, q]
                    rs[q, 1] = s1 - y[i + 1, q]
                    rs[q, 2] = s2 - y[i + 2, q]
                    rs[q, 3] = s3 - y[i + 3, q]
                for q in range(k):
                    r0 = rs[q, 0]
                    r1 = rs[q, 1]
                    r2 = rs[q, 2]
                    r3 = rs[q, 3]
                    gq = gb[q]
                    for j in range(p):
                        gq[j] += a0[j] * r0 + a1[j] * r1 + a2[j] * r2 + a3[j] * r3
                    done = zero
                    if q == 0 and i + 8 <= m:
                        e0 = A[i + 4]
                        e1 = A[i + 5]
                        e2 = A[i + 6]
                        e3 = A[i + 7]
                        for t in range(nseg):
                            ln = t * line
                            _prefetch(e0, ln)
                            _prefetch(e1, ln)
                            _prefetch(e2, ln)
                            _prefetch(e3, ln)
                            j0 = up + t * seg
                            for jj in range(seg):
                                j = j0 + jj
                                gq[j] += a0[j] * r0 + a1[j] * r1 + a2[j] * r2 + a3[j] * r3
                        done = nseg * seg
                    for jj in range(done, L):
                        j = up + jj
                        gq[j] += a0[j] * r0 + a1[j] * r1 + a2[j] * r2 + a3[j] * r3
                i += 4
            while i < b1:
                a = A[i]
                for q in range(k):
                    xq = xt[q]
                    s = z
                    for j in range(p):
                        s += a[j] * xq[j]
                    for jj in range(L):
                        j = up + jj
                        s += a[j] * xq[j]
                    rs[q, 0] = s - y[i, q]
                for q in range(k):
                    rq = rs[q, 0]
                    gq = gb[q]
                    for j in range(p):
                        gq[j] += a[j] * rq
                    for jj in range(L):
                        j = up + jj
                        gq[j] += a[j] * rq
                i += 1
            for q in range(k):
                for j in range(n):
                    pc[q, j] += gb[q, j]


def _build() -> dict[str, Any]:
    """Import Numba and create the (lazily compiled, disk-cached) dispatchers; once."""
    global _fork_registered_last
    st = _state
    if "_grad" in st:
        return st
    if _no_compile is not None:
        raise RuntimeError(f"the fused lstsq_grad kernel cannot be built here: {_no_compile}")
    # the modules the build and the pool import that register fork handlers (stdlib's), before
    # _build_lock is taken: a fork waiting for the build (_before_fork) would run the after-
    # fork handlers of a module registered meanwhile, whose before-fork handler did not run
    import concurrent.futures.thread  # noqa: F401
    import logging  # noqa: F401

    if not _fork_registered_last:
        # once more, now after theirs: before-fork handlers run in the reverse order of
        # registration, so _before_fork may wait for a compile before they take their locks
        _fork_registered_last = True
        _register_fork_handlers()
    with _build_lock:
        if "_grad" in st:  # another thread built it meanwhile
            return st
        return _build_locked(st)


def _build_locked(st: dict[str, Any]) -> dict[str, Any]:
    if not available():
        raise ValueError(
            f"the fused lstsq_grad kernel needs Numba, which is not installed: {INSTALL_HINT}"
        )
    t0 = time.perf_counter()
    import numba

    st["import_seconds"] = time.perf_counter() - t0
    # the kernels' ``_prefetch`` (a global, resolved when they compile) becomes the intrinsic
    globals()["_prefetch"] = _prefetch_intrinsic()
    # reassociation (SIMD reductions) and FMA contraction only: NaN/inf keep IEEE semantics
    flags = {"reassoc", "contract", "nsz", "arcp"}
    folder, problem = private_cache_dir()
    kern = fin = None
    if problem is None:
        config: Any = numba.config
        old_dir = config.CACHE_DIR
        config.CACHE_DIR = folder
        try:
            kern = numba.njit(fastmath=flags, cache=True, nogil=True)(_chunks)
            fin = numba.njit(cache=True, nogil=True)(_finish)
        except (RuntimeError, OSError) as exc:  # Numba found no usable location
            problem = f"Numba cannot cache there ({exc})"
        finally:
            config.CACHE_DIR = old_dir
        if problem is None:
            # Numba takes another location (``__pycache__``, its user-wide folder) when the
            # one given is not writable: only the checked folder may hold code it loads
            for disp in (kern, fin):
                where = getattr(getattr(disp, "_cache", None), "cache_path", None)
                if not (isinstance(where, str) and _inside(where, folder)):
                    problem = f"Numba chose another cache location ({where!r})"
                    break
    cache_dir = None
    if problem is None:
        cache_dir = getattr(getattr(kern, "_cache", None), "cache_path", None)
    else:
        _warn_cache(folder, problem)
        kern = numba.njit(fastmath=flags, nogil=True)(_chunks)
        fin = numba.njit(nogil=True)(_finish)
    st.update(
        numba=numba,
        numba_version=numba.__version__,
        _grad=kern,
        _finish=fin,
        cache=problem is None,
        cache_dir=cache_dir,
        cache_problem=None if problem is None else f"{folder}: {problem}",
    )
    return st


# -- the compiled-code cache ----------------------------------------------------------------
def _uid() -> int | None:
    """The current user's id; ``None`` where there are none (Windows)."""
    getuid = getattr(os, "getuid", None)
    return None if getuid is None else int(getuid())


def cache_base() -> str:
    """The user cache directory, absolute: ``$XBACK_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/xback`` (``%LOCALAPPDATA%\\xback`` on Windows), else ``~/.cache/xback``
    (the folder of ``xback tune``'s routing table as well)."""
    base = os.environ.get("XBACK_CACHE_DIR")
    if not base:
        xdg = os.environ.get("XDG_CACHE_HOME") or (
            os.environ.get("LOCALAPPDATA") if sys.platform == "win32" else None
        )
        base = (
            os.path.join(xdg, "xback")
            if xdg
            else os.path.join(os.path.expanduser("~"), ".cache", "xback")
        )
    return os.path.abspath(os.path.expanduser(base))


def private_cache_dir() -> tuple[str, str | None]:
    """The folder for the kernels' compiled code and whether it may be used.

    Returns ``(folder, None)`` when the folder (``numba-<uid>`` inside :func:`cache_base`,
    created with mode 0700 if missing) passes the checks of the module docstring, else
    ``(folder, reason)``: then nothing is read from or written to it.
    """
    base = cache_base()
    uid = _uid()
    folder = os.path.join(base, "numba" if uid is None else f"numba-{uid}")
    try:
        if os.path.lexists(base) and not os.path.isdir(base):
            return folder, f"{base} is not a directory"
        os.makedirs(base, mode=0o700, exist_ok=True)
        try:
            os.mkdir(folder, 0o700)
        except FileExistsError:
            pass
        info = os.lstat(folder)
        parent = os.stat(base)
    except OSError as exc:
        return folder, f"it cannot be created ({type(exc).__name__}: {exc.strerror or exc})"
    if stat.S_ISLNK(info.st_mode):
        return folder, "it is a symbolic link"
    if not stat.S_ISDIR(info.st_mode):
        return folder, "it is not a directory"
    if uid is not None:  # POSIX owners and modes (on Windows the per-user folder's ACLs)
        if info.st_uid != uid:
            return folder, f"it is owned by uid {info.st_uid}, not by the current user ({uid})"
        mode = stat.S_IMODE(info.st_mode)
        if mode & 0o077:
            return folder, (
                f"its mode is {mode:04o}: group or others have access (it must be 0700; "
                f"`chmod 700 {folder}` if only you ever had access)"
            )
        if parent.st_uid not in (uid, 0):
            return folder, f"its parent directory is owned by uid {parent.st_uid}"
        # others who may write to the parent could swap the folder between the check and
        # Numba's reads; the sticky bit stops them (/tmp), and a group of the user alone
        # (a "user private group", umask 002) has no others
        pmode = parent.st_mode
        shared = pmode & 0o002 or (pmode & 0o020 and not _private_group(parent.st_gid, uid))
        if shared and not pmode & stat.S_ISVTX:
            return folder, (
                f"its parent directory is writable by group or others (mode "
                f"{stat.S_IMODE(pmode):04o}) without the sticky bit"
            )
    if not os.access(folder, os.W_OK | os.X_OK):
        return folder, "it is not writable"
    return folder, None


def _private_group(gid: int, uid: int) -> bool:
    """Whether group ``gid`` is the user's own: their primary group, of their name, with no
    other members listed."""
    try:
        import grp
        import pwd

        user = pwd.getpwuid(uid)
        group = grp.getgrgid(gid)
    except (ImportError, KeyError):
        return False
    return bool(
        gid == user.pw_gid
        and group.gr_name == user.pw_name
        and set(group.gr_mem) <= {user.pw_name}
    )


def _inside(path: str, folder: str) -> bool:
    path, folder = os.path.abspath(path), os.path.abspath(folder)
    return path == folder or path.startswith(folder.rstrip(os.sep) + os.sep)


def _warn_cache(folder: str, problem: str) -> None:
    """Warn (once per process) that the kernels compile without a disk cache, pointing at
    the caller's code outside xback."""
    global _cache_warned
    if _cache_warned:
        return
    _cache_warned = True
    msg = (
        f"xback: the fused lstsq_grad kernel does not use the compiled-code cache folder "
        f"{folder}: {problem}; it compiles without a disk cache (again in every process). "
        f"Set XBACK_CACHE_DIR to a directory of your own (the folder {os.path.basename(folder)} "
        f"inside it is created with mode 0700)."
    )
    warnings.warn(msg, RuntimeWarning, stacklevel=_outside_stacklevel())


def _outside_stacklevel() -> int:
    """``stacklevel`` for ``warnings.warn`` called by the caller of this function: the first
    frame outside the xback package."""
    here = os.path.dirname(os.path.abspath(__file__)) + os.sep
    level = 2
    f = sys._getframe(2)
    while f is not None and os.path.abspath(f.f_code.co_filename).startswith(here):
        f = f.f_back  # type: ignore[assignment]
        level += 1
    return level


def _compile(st: dict[str, Any], name: str, args: tuple[Any, ...]) -> None:
    """Compile (or load from the disk cache) ``name`` for the types of ``args``, timed."""
    numba = st["numba"]
    disp = st[name]
    sig = tuple(numba.typeof(a) for a in args)
    key = (name, *sig)
    if key in _compiled:
        return
    hits = sum(disp.stats.cache_hits.values())
    t0 = time.perf_counter()
    disp.compile(sig)
    dt = time.perf_counter() - t0
    loaded = sum(disp.stats.cache_hits.values()) > hits
    _compiled[key] = {
        "kernel": name,
        "signature": ", ".join(str(s) for s in sig),
        "seconds": dt,
        "source": "disk cache" if loaded else "compiled",
    }


# -- threads --------------------------------------------------------------------------------
_CPUS = os.cpu_count() or 1  # read once: os.cpu_count() is not free per call


def _controller() -> Any:
    ctl = _state.get("controller")
    if ctl is None:
        try:
            from threadpoolctl import ThreadpoolController

            ctl = ThreadpoolController()
        except Exception:  # pragma: no cover - threadpoolctl is a dependency
            ctl = False
        _state["controller"] = ctl
    return ctl


def _numba_threads(numba: Any) -> int:
    """``numba.get_num_threads()`` without starting Numba's threading layer for it: until the
    layer is launched (``numba.set_num_threads`` launches it) the answer is the configured
    ``NUMBA_NUM_THREADS``."""
    par = sys.modules.get("numba.np.ufunc.parallel")
    if par is not None and not getattr(par, "_is_initialized", True):
        return int(numba.config.NUMBA_NUM_THREADS)
    return int(numba.get_num_threads())


def num_threads() -> int:
    """Worker threads the kernel uses now.

    ``min(CPUs, numba.get_num_threads(), the thread limits of the BLAS/OpenMP libraries that
    threadpoolctl sees (so ``threadpool_limits(...)`` applies), torch.get_num_threads()
    when torch is imported)``, at least 1. Imports Numba.
    """
    if "_grad" not in _state and _no_compile is not None:
        t = _CPUS  # a forked child that must not import Numba: the other limits only
    else:
        t = min(_CPUS, _numba_threads(_build()["numba"]))
    ctl = _controller()
    if ctl:
        for lib in ctl.lib_controllers:
            n = lib.num_threads
            if n is not None and 0 < n < t:
                t = n
    torch = sys.modules.get("torch")
    if torch is not None:
        t = min(t, int(torch.get_num_threads()))
    return max(1, t)


# -- public entry ---------------------------------------------------------------------------
def lstsq_grad(
    A: np.ndarray[Any, Any],
    x: np.ndarray[Any, Any],
    y: np.ndarray[Any, Any],
    *,
    threads: int | None = None,
) -> np.ndarray[Any, Any]:
    """``2 Aᵀ (A x - y)`` in one pass over ``A`` (the arrays must satisfy :func:`supports`).

    Parameters
    ----------
    A : ndarray, shape (m, n), float32 or float64, C-contiguous
    x : ndarray, shape (n,) or (n, k), A's dtype
    y : ndarray, shape (m,) or (m, k), A's dtype
    threads : int, optional
        Threads (the caller and ``threads - 1`` pool threads); default
        :func:`num_threads`. Never more than the number of row chunks.

    Returns
    -------
    ndarray, shape (n,) or (n, k), A's dtype
        A new array; the inputs are not modified.

    Raises
    ------
    ValueError
        Numba is not installed (the message has the pip command), or the arrays are not
        supported (see :func:`supports`).

    Notes
    -----
    The first call for a dtype compiles the kernels (seconds), or loads them from the
    compiled-code cache: the private folder ``numba-<uid>`` of the user cache directory
    (``$XBACK_CACHE_DIR``, else ``~/.cache/xback``; :func:`private_cache_dir`), mode 0700,
    checked before use and never to be shared (Numba loads it with ``pickle``). A folder
    that fails the checks is not used (one ``RuntimeWarning``; compiled in each process).
    In a process forked while another thread compiled, dtypes not compiled by then are
    computed with NumPy's BLAS (module docstring).
    """
    if not supports(A, x, y):
        raise ValueError(
            "the fused lstsq_grad kernel needs a C-contiguous float32/float64 A of shape "
            f"(m, n) with x (n,) and y (m,), or x (n, k) and y (m, k), of A's dtype; got "
            f"A {A.dtype} {tuple(A.shape)}, x {x.dtype} {tuple(x.shape)}, "
            f"y {y.dtype} {tuple(y.shape)}"
        )
    if _no_compile is not None and A.dtype not in _ready:
        return _blas_grad(A, x, y)  # a child forked mid-compile: the compiler is not safe
    st = _build()
    m, n = A.shape
    vector = x.ndim == 1
    xs, ys = (x[:, None], y[:, None]) if vector else (x, y)
    k = xs.shape[1]
    # read-only C-contiguous views: one compiled signature per dtype whatever the caller's
    # flags, and the kernel cannot write to the caller's arrays (it aligns its own copy of x)
    p = _peel(A)
    Ar, xr, yr = _readonly(A), _readonly(xs), _readonly(ys)
    rows = BLOCK_ROWS * max(1, CHUNK_BYTES // (BLOCK_ROWS * n * A.itemsize))
    nchunks = -(-m // rows)
    parts = np.zeros((nchunks, k * n), dtype=np.float64)  # chunk c's (k, n) partial, flat
    out: np.ndarray[Any, Any] = np.empty(k * n, dtype=A.dtype)
    kern = st["_grad"]
    tail = (rows, BLOCK_ROWS, parts.reshape(nchunks, k, n), p)
    if A.dtype not in _ready:
        with _lock:
            _compile(st, "_grad", (Ar, xr, yr, 0, 0, *tail))
            _compile(st, "_finish", (parts, out))
            _ready.add(A.dtype)
    t = num_threads() if threads is None else max(1, int(threads))
    t = min(t, nchunks)
    if t == 1:
        kern(Ar, xr, yr, 0, nchunks, *tail)
    else:
        _run_parallel(kern, (Ar, xr, yr), tail, nchunks, t)
    st["_finish"](parts, out)  # 2 * the partials summed in chunk order: thread-independent
    if vector:
        return out
    return out[:, None] if k == 1 else out.reshape(k, n).T


def _blas_grad(
    A: np.ndarray[Any, Any], x: np.ndarray[Any, Any], y: np.ndarray[Any, Any]
) -> np.ndarray[Any, Any]:
    """``2 Aᵀ (A x - y)`` with NumPy (two BLAS passes), a new array of A's dtype."""
    g: np.ndarray[Any, Any] = np.matmul(A.T, np.matmul(A, x) - y)
    g *= 2
    return g


def _peel(A: np.ndarray[Any, Any]) -> int:
    """Columns before the first 64-byte boundary of every row of ``A``; 0 when the rows do
    not all start at the same offset from a boundary (row length not a multiple of 64
    bytes) or the data is not aligned to its item size."""
    isz = A.itemsize
    addr = int(A.ctypes.data)
    n = int(A.shape[1])
    if (n * isz) % 64 or addr % isz:
        return 0
    return min(((-addr) % 64) // isz, n)


class _Job:
    """Chunk ranges handed out to the caller and ``t - 1`` pool threads, largest first."""

    __slots__ = ("args", "done", "error", "event", "lock", "nchunks", "next", "t", "tail")

    def __init__(self, args: tuple[Any, ...], tail: tuple[Any, ...], nchunks: int, t: int):
        self.args = args
        self.tail = tail
        self.nchunks = nchunks
        self.t = t
        self.next = 0
        self.done = 0
        self.error: BaseException | None = None
        self.lock = threading.Lock()
        self.event = threading.Event()

    def take(self) -> tuple[int, int]:
        """The next range of chunks: a ``1 / (2 t)`` share of what is left (at least one),
        so there are few kernel calls (each costs a few microseconds) and the last ones are
        small (the threads finish together even when one of them was descheduled)."""
        with self.lock:
            c0 = self.next
            c1 = min(self.nchunks, c0 + max(1, (self.nchunks - c0) // (2 * self.t)))
            self.next = c1
        return c0, c1


def _work(kern: Any, job: _Job) -> None:
    A, x, y = job.args
    while True:
        c0, c1 = job.take()
        if c0 >= c1:
            return
        try:
            kern(A, x, y, c0, c1, *job.tail)
        except BaseException as exc:  # pragma: no cover - the kernel does not raise
            job.error = exc
        with job.lock:
            job.done += c1 - c0
            if job.done == job.nchunks:
                job.event.set()


def _pool() -> Any:
    pool = _state.get("pool")
    if pool is None:
        from concurrent.futures import ThreadPoolExecutor

        workers = max(1, _CPUS - 1)
        pool = _state["pool"] = ThreadPoolExecutor(workers, thread_name_prefix="xback-fused")
    return pool


def _numba_compiler_lock() -> Any:
    """Numba's global compiler lock (an ``RLock``) when Numba is imported, else ``None``."""
    mod = sys.modules.get("numba.core.compiler_lock")
    lock = getattr(getattr(mod, "global_compiler_lock", None), "_lock", None)
    return lock if hasattr(lock, "acquire") and hasattr(lock, "release") else None


# per forking thread (two threads may fork at once): the locks _before_fork took, to release
# after the fork, and whether it took them all (read by the child)
_forks: dict[int, tuple[list[Any], bool]] = {}
_fork_registered_last = False  # _register_fork_handlers ran from _build


def _before_fork() -> None:
    """Hold the kernels' build and compile locks and Numba's compiler lock across the
    fork, so that the child starts between compiles, with Numba's and LLVM's state
    consistent: waiting (at most FORK_WAIT_SECONDS in all) for a compile in another thread
    once the handlers are registered after those of the modules the compile uses
    (:func:`_register_fork_handlers`: their before-fork handlers, which take locks the
    compile may need, e.g. ``logging``'s, run after this one), else only trying."""
    me = threading.get_ident()
    if me in _forks:  # the second registration, same fork
        return
    wait = FORK_WAIT_SECONDS if _fork_registered_last else 0.0
    deadline = time.monotonic() + wait
    clean = True
    held: list[Any] = []
    for lock in (_build_lock, _lock, _numba_compiler_lock()):
        if lock is None:
            continue
        if lock.acquire(timeout=max(0.0, deadline - time.monotonic())):
            held.append(lock)
        else:
            clean = False
    _forks[me] = (held, clean)


def _after_fork_parent() -> None:
    held, _ = _forks.pop(threading.get_ident(), ((), True))
    for lock in reversed(held):
        lock.release()


def _after_fork_child() -> None:
    """The child has only the forking thread: fresh locks and a new pool when needed; and
    when a compile (or an import of Numba) was under way in another thread at the fork, no
    compiling in this process (the compiler's locks and LLVM's state belong to a thread that
    does not exist here): the dtypes not compiled by then are computed with NumPy."""
    global _lock, _build_lock, _no_compile
    me = threading.get_ident()
    if me not in _forks:  # the second registration, same fork
        return
    held, clean = _forks[me]
    _forks.clear()  # the entries of other forking threads belong to the parent
    numba_lock = _numba_compiler_lock()
    if numba_lock is not None and numba_lock in held:
        try:
            numba_lock.release()
        except RuntimeError:  # pragma: no cover - the forking thread owns it here
            pass
    _lock = threading.RLock()
    _build_lock = threading.RLock()
    _state.pop("pool", None)  # its threads do not exist here: a new pool when needed
    mod = sys.modules.get("numba")
    importing = mod is not None and getattr(getattr(mod, "__spec__", None), "_initializing", False)
    if not clean:
        _no_compile = (
            "this process was forked while another thread compiled the fused kernel or ran "
            "Numba's compiler; NumPy computes the dtypes not compiled before the fork"
        )
    elif importing:
        _no_compile = "this process was forked while another thread imported Numba"


def _register_fork_handlers() -> None:
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(
            before=_before_fork,
            after_in_parent=_after_fork_parent,
            after_in_child=_after_fork_child,
        )


_register_fork_handlers()  # at import: a child always gets fresh locks and pool


def _run_parallel(
    kern: Any, args: tuple[Any, ...], tail: tuple[Any, ...], nchunks: int, t: int
) -> None:
    """Run ``kern(*args, c0, c1, *tail)`` over the chunks on the calling thread and ``t - 1``
    pool threads (nogil kernels).

    The caller waits for the chunks, not for the pool tasks: a task that starts late
    (the pool busy with another call) finds no chunk left and returns.
    """
    job = _Job(args, tail, nchunks, t)
    pool = _pool()
    try:
        for _ in range(t - 1):
            pool.submit(_work, kern, job)
    except RuntimeError:  # shut down (the interpreter exits): the caller does the rest
        if _state.get("pool") is pool:
            _state.pop("pool", None)
    _work(kern, job)  # takes every chunk no pool thread took
    job.event.wait()
    if job.error is not None:  # pragma: no cover
        raise job.error


def _readonly(a: np.ndarray[Any, Any]) -> np.ndarray[Any, Any]:
    v: np.ndarray[Any, Any] = np.ascontiguousarray(a).view()
    v.flags.writeable = False
    return v


def warmup(dtypes: tuple[Any, ...] = (np.float32, np.float64)) -> dict[str, Any]:
    """Compile (or load from the disk cache) the kernels for ``dtypes`` now; returns
    :func:`compile_info`. Raises ``ValueError`` when Numba is not installed."""
    for dt in dtypes:
        d = np.dtype(dt)
        A = np.zeros((2, 2), dtype=d)
        lstsq_grad(A, np.zeros(2, d), np.zeros(2, d), threads=1)
    return compile_info()


def compile_info() -> dict[str, Any]:
    """What has been compiled and how long it took.

    Returns
    -------
    dict
        ``available`` (Numba installed), ``imported`` (Numba imported by xback),
        ``numba_version``, ``import_seconds`` (``import numba``), ``cache`` (on-disk
        caching on), ``cache_dir`` (where Numba keeps the files, inside the private
        folder of :func:`private_cache_dir`), ``cache_problem`` (why that folder is not
        used, else ``None``), ``no_compile`` (in a child forked mid-compile: why it does not
        compile, else ``None``), ``threads`` (:func:`num_threads` now) and ``compiled``: one
        entry per kernel signature with ``seconds`` and ``source`` (``"compiled"`` or
        ``"disk cache"``).
    """
    st = _state
    info: dict[str, Any] = {
        "available": available(),
        "imported": "_grad" in st,
        "numba_version": st.get("numba_version"),
        "import_seconds": st.get("import_seconds"),
        "cache": st.get("cache"),
        "cache_dir": st.get("cache_dir"),
        "cache_problem": st.get("cache_problem"),
        "no_compile": _no_compile,
        "threads": num_threads() if "_grad" in st else None,
        "compiled": [dict(v) for v in _compiled.values()],
    }
    return info
