"""Benchmark of the fused one-pass ``lstsq_grad`` kernel (issue 10, ``xback._fused``).

``A`` of shape ``(10d, d)``, ``x`` of shape ``(d,)``, ``y`` of shape ``(10d,)``, for ``d``
in {256, 512, 1024, 2048}, float32 and float64. Candidates in blocks, each reported as min
and median per-call time: NumPy, ``xback-auto``, torch, ``xback-auto-torch``, ``fused``,
``floor-read``, ``floor-read4``, ``floor-sum`` (and ``c-ref``), each alone, in that order;
each block after ``--settle`` seconds (default 0.2) of untimed calls of its own candidates.
After a call, NumPy's OpenBLAS worker thread keeps spinning for ~100 ms (measured here:
0.8-1.2 cores busy for 100 ms after one ``A @ x``), taking one of this machine's two cores
from whatever runs next: interleaving the fused kernel, or torch, with NumPy would time it
against a busy core (interleaved, NumPy's and torch's two-thread calls here took a 4 ms
scheduler tick instead of 0.4 ms). Each candidate is thus timed back to back with calls like
its own, as in an iterative solver's loop; the warm-up is calls, not a sleep (after an idle
pause of 50 ms, a 2-thread call here took up to 2x longer: the second vCPU has to be woken):

* ``fused``: ``xback._fused.lstsq_grad`` (Numba, one pass over ``A``);
* ``numpy``: raw NumPy ``2 * (A.T @ (A @ x - y))`` (two BLAS passes);
* ``torch``: raw torch ``2 * (A.T @ (A @ x - y))`` on zero-copy views of the same memory;
* ``floor-sum``: ``A.sum()`` (NumPy's streaming read of ``A`` once);
* ``floor-read``: a Numba read-only kernel (vectorised sum of ``A``, its loads aligned to
  64 bytes like the fused kernel's) on the same chunks and threads as the fused kernel: the
  one-read floor;
* ``floor-read4``: the same, reading 4 rows at a time (four streams, as the fused kernel's
  first pass does; on the Intel machine this read float32 A of d = 2048 18 % faster than one
  stream, so a floor of one stream alone would flatter the kernel);
* ``c-ref`` (``--cref``): ``benchmarks/fused_ref.c``, the kernel's loop as it was before
  the prefetching was added, hand-written with AVX-512 intrinsics, on the same chunks and
  threads (it showed that Numba's code was not the limit);
* ``xback-auto`` / ``xback-auto-torch``: ``xback.lstsq_grad(A, x, y)`` on the NumPy arrays
  / the torch tensors (what ``"auto"`` routes to; the time includes the front layer).

The floor is the fastest of ``floor-sum``, ``floor-read`` and ``floor-read4`` (per
statistic). Ratios printed:
``fused / floor`` (target <= 1.2 at d >= 1024), ``best raw / fused`` (target >= 1.5) and
``xback-auto / best raw`` and ``xback-auto / own library`` (the worse of NumPy input over raw
NumPy and torch input over raw torch): ``"auto"`` never slower, <= 1 up to noise and the
front layer.

Before the timings: ``import numba`` time, compile (or disk-cache load) time of each kernel
signature (:func:`xback._fused.compile_info`), and the first-call latency (a fresh process:
import + compile/load + first run) with the cache off (``--cold``: a temporary
``XBACK_CACHE_DIR``) and on.

The machine may be shared: each table line ends with ``others=`` (CPU cores used by other
processes while it was measured, from ``/proc/stat``; ``n/a`` elsewhere) and the load
average. With ``--rounds R`` the whole measurement is repeated and a summary gives, per size,
the median over the quiet rounds (others below ``--quiet`` cores) of each round's ratios.

Run: ``python benchmarks/bench_fused.py [--sizes 256 512 1024 2048] [--dtypes float32 float64]
[--repeat 15] [--rounds 1] [--settle 0.2] [--quiet 0.2] [--cold] [--cref] [--threads N]``.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import xback
from xback import _fused

try:
    import torch
except ImportError:  # pragma: no cover - torch is optional
    torch = None

_FIRST_CALL = """
import time, numpy as np
t0 = time.perf_counter()
import xback._fused as F
A = np.ones((64, 8), dtype="{dt}")
F.lstsq_grad(A, np.ones((8, 1), dtype="{dt}"), np.ones((64, 1), dtype="{dt}"))
t1 = time.perf_counter()
info = F.compile_info()
c = info["compiled"][0]
print(t1 - t0, info["import_seconds"], c["seconds"], c["source"].replace(" ", "-"))
"""


def first_call(dtype: str, cache_dir: str | None) -> tuple[float, float, float, str]:
    """(first-call latency, import numba, compile/load, source) in a fresh process."""
    env = dict(os.environ)
    if cache_dir is not None:
        env["XBACK_CACHE_DIR"] = cache_dir
    out = subprocess.run(
        [sys.executable, "-c", _FIRST_CALL.format(dt=dtype)],
        env=env,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.split()
    return float(out[0]), float(out[1]), float(out[2]), out[3]


_FLOORS = ("floor-sum", "floor-read", "floor-read4")
_read_kernels: list[Any] = []


def _read_kernel() -> Any:
    """A Numba nogil kernel summing the rows of ``A`` (vectorised, the same 64-byte alignment
    peel as the fused kernel), ``streams`` (its second argument) rows at a time: 1 (one
    sequential stream) or 4 (four streams, as the fused kernel's first pass reads them; on
    the Intel machine that read float32 A of d = 2048 18 % faster than one stream)."""
    if _read_kernels:
        return _read_kernels[0]
    import numba

    @numba.njit(fastmath={"reassoc", "contract", "nsz", "arcp"}, nogil=True, cache=True)
    def read(  # pragma: no cover - compiled
        A: Any, streams: int, y: Any, c0: int, c1: int, rows: int, block: int, parts: Any,
        p: int,
    ) -> None:
        m, n = A.shape
        up = np.uint64(p)
        L = np.uint64(n - p)
        z = A[0, 0] - A[0, 0]
        for c in range(c0, c1):
            s0, s1, s2, s3 = z, z, z, z
            hi = min(c * rows + rows, m)
            i = c * rows
            while i < hi:
                if streams == 1:
                    a = A[i]
                    for j in range(p):
                        s0 += a[j]
                    for jj in range(L):
                        s0 += a[up + jj]
                    i += 1
                    continue
                a0 = A[i]
                a1 = A[min(i + 1, hi - 1)]  # the last rows re-read (in cache) when m % 4
                a2 = A[min(i + 2, hi - 1)]
                a3 = A[min(i + 3, hi - 1)]
                for j in range(p):
                    s0 += a0[j]
                    s1 += a1[j]
                    s2 += a2[j]
                    s3 += a3[j]
                for jj in range(L):
                    j = up + jj
                    s0 += a0[j]
                    s1 += a1[j]
                    s2 += a2[j]
                    s3 += a3[j]
                i += 4
            parts[c, 0] = s0 + s1 + s2 + s3

    _read_kernels.append(read)
    return read


def _floor_read(streams: int = 1) -> Callable[[Any, int], Any]:
    """The one-read floor: :func:`_read_kernel` reading ``streams`` rows at a time, run on
    the same chunks and threads as the fused kernel (``xback._fused._run_parallel``)."""
    kern = _read_kernel()

    def run(A: Any, t: int) -> Any:
        n = A.shape[1]
        br = _fused.BLOCK_ROWS
        rows = br * max(1, _fused.CHUNK_BYTES // (br * n * A.itemsize))
        nchunks = -(-A.shape[0] // rows)
        parts = np.zeros((nchunks, 1))
        tail = (rows, br, parts, _fused._peel(A))
        if t == 1:
            kern(A, streams, None, 0, nchunks, *tail)
        else:
            _fused._run_parallel(kern, (A, streams, None), tail, nchunks, min(t, nchunks))
        return parts.sum()

    return run


def _aligned_copy(a: np.ndarray[Any, Any], skip: int) -> np.ndarray[Any, Any]:
    """Read-only C-contiguous copy of ``a`` (1-D or 2-D) whose first row has its byte
    ``skip`` on a 64-byte boundary (so has every row when the row length is a multiple of
    64 bytes, as :func:`_peel` requires for ``skip > 0``)."""
    isz = a.itemsize
    flat = np.empty(a.size + 64 // isz, dtype=a.dtype)
    o = ((-(flat.ctypes.data + skip)) % 64) // isz
    out: np.ndarray[Any, Any] = flat[o : o + a.size].reshape(a.shape)
    out[...] = a
    out.flags.writeable = False
    return out


def _c_reference(path: str) -> Callable[[Any, Any, Any, int], Any]:
    """``benchmarks/fused_ref.c`` built into ``path`` (a directory) and wrapped to run on the
    same chunks and threads as the fused kernel (ctypes releases the GIL)."""
    import ctypes

    src = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fused_ref.c")
    lib_path = os.path.join(path, "libfused_ref.so")
    cc = os.environ.get("CC", "cc")
    subprocess.run(
        [cc, "-O3", "-march=native", "-shared", "-fPIC", src, "-o", lib_path], check=True
    )
    lib = ctypes.CDLL(lib_path)
    P, L = ctypes.c_void_p, ctypes.c_long
    fns = {np.dtype(np.float64): lib.fused_f64, np.dtype(np.float32): lib.fused_f32}
    for f in fns.values():
        f.argtypes = [P, L, L, P, P, L, L, L, L, P, L]
        f.restype = None

    def kern(
        A: Any, x: Any, y: Any, c0: int, c1: int, rows: int, blk: int, parts: Any, p: int
    ) -> None:
        m, n = A.shape
        ptrs = (A.ctypes.data, x.ctypes.data, y.ctypes.data, parts.ctypes.data)
        fns[A.dtype](ptrs[0], m, n, ptrs[1], ptrs[2], c0, c1, rows, blk, ptrs[3], p)

    def run(A: Any, x: Any, y: Any, t: int) -> Any:
        m, n = A.shape
        p = _fused._peel(A)
        xr = _aligned_copy(x, p * A.itemsize)
        br = _fused.BLOCK_ROWS
        rows = br * max(1, _fused.CHUNK_BYTES // (br * n * A.itemsize))
        nchunks = -(-m // rows)
        parts = np.zeros((nchunks, n))
        tail = (rows, br, parts, p)
        if min(t, nchunks) == 1:
            kern(A, xr, y, 0, nchunks, *tail)
        else:
            _fused._run_parallel(kern, (A, xr, y), tail, nchunks, min(t, nchunks))
        return np.multiply(parts.sum(axis=0), 2, dtype=A.dtype)

    return run


def _busy_seconds() -> float | None:
    """CPU seconds used by all processes since boot (``/proc/stat``), or None."""
    try:
        with open("/proc/stat") as f:
            v = [int(a) for a in f.readline().split()[1:]]
    except OSError:  # pragma: no cover - not Linux
        return None
    return (sum(v) - v[3] - v[4]) / os.sysconf("SC_CLK_TCK")


def _time(
    groups: list[dict[str, Callable[[], Any]]], repeat: int, settle: float = 0.2
) -> tuple[dict[str, list[float]], Any]:
    """Per-call times: each group in its own block, after ``settle`` seconds of untimed
    calls of its candidates (round-robin, at least one each), its candidates interleaved;
    and the CPU cores other processes used meanwhile."""
    ts: dict[str, list[float]] = {k: [] for g in groups for k in g}
    b0, c0, w0 = _busy_seconds(), os.times(), time.perf_counter()
    for g in groups:
        # warm up (page faults, thread pools, compile) for longer than the previous block's
        # BLAS worker threads spin: a sleep instead would leave the vCPUs idle, and the first
        # calls after it run up to 2x slower (the second vCPU has to be woken)
        end = time.perf_counter() + settle
        while True:
            for f in g.values():
                f()
            if time.perf_counter() >= end:
                break
        for _ in range(repeat):
            for k, f in g.items():
                t0 = time.perf_counter()
                f()
                ts[k].append(time.perf_counter() - t0)
    b1, c1, w1 = _busy_seconds(), os.times(), time.perf_counter()
    others = None
    if b0 is not None and b1 is not None:
        own = (c1.user - c0.user) + (c1.system - c0.system)
        others = max(0.0, (b1 - b0) - own) / (w1 - w0)
    return ts, others


def _candidates(
    A: Any, x: Any, y: Any, t: int, reads: dict[str, Any], cref: Any = None
) -> list[dict[str, Callable[[], Any]]]:
    """Groups timed in separate blocks: each raw library on its own (NumPy's BLAS worker
    thread keeps spinning for ~100 ms after a call, taking a core from whatever runs next:
    interleaved, each library's two-thread calls waited for a 4 ms scheduler tick behind the
    other's spinning threads), then the fused kernel, the floors and ``xback.lstsq_grad``
    (which takes the fused kernel where the routing table measured it faster)."""
    libs: dict[str, Callable[[], Any]] = {"numpy": lambda: 2 * (A.T @ (A @ x - y))}
    kernels: dict[str, Callable[[], Any]] = {
        "fused": lambda: _fused.lstsq_grad(A, x, y),
        **{name: (lambda read=read: read(A, t)) for name, read in reads.items()},
        "floor-sum": lambda: A.sum(),
    }
    # "auto" may run any library's BLAS or the kernel: a block of its own, like the libraries
    groups = [libs, {"xback-auto": lambda: xback.lstsq_grad(A, x, y)}]
    if torch is not None:
        At, xt, yt = (torch.from_numpy(a) for a in (A, x, y))
        groups.append({"torch": lambda: 2 * (At.T @ (At @ xt - yt))})
        groups.append({"xback-auto-torch": lambda: xback.lstsq_grad(At, xt, yt)})
    if cref is not None:
        kernels["c-ref"] = lambda: cref(A, x, y, t)
    # every kernel in a block of its own too, like the libraries (and the harness's rule for
    # multi-threaded cases): interleaved with each other they measured ~0.1 higher ratios
    # to the floor than each in a loop of its own calls
    return [*groups, *({k: f} for k, f in kernels.items())]


def run(
    sizes: list[int],
    dtypes: list[str],
    repeat: int,
    rounds: int = 1,
    settle: float = 0.2,
    cref: Any = None,
) -> list[dict[str, Any]]:
    """One row per (round, dtype, d, candidate); the arrays are made once."""
    rows: list[dict[str, Any]] = []
    rng = np.random.default_rng(0)
    reads = {"floor-read": _floor_read(1), "floor-read4": _floor_read(4)}
    data = {}
    for dt in dtypes:
        for d in sizes:
            A = rng.standard_normal((10 * d, d)).astype(dt)
            x = rng.standard_normal(d).astype(dt)
            y = rng.standard_normal(10 * d).astype(dt)
            data[dt, d] = (A, x, y)
    for rnd in range(rounds):
        for (dt, d), (A, x, y) in data.items():
            t = _fused.num_threads()
            ts, others = _time(_candidates(A, x, y, t, reads, cref), repeat, settle)
            stat = {k: (min(v), statistics.median(v)) for k, v in ts.items()}
            floor = tuple(min(stat[k][i] for k in _FLOORS) for i in (0, 1))
            raw = tuple(min(stat[k][i] for k in ("numpy", "torch") if k in stat) for i in (0, 1))
            f = stat["fused"]
            for k, (mn, med) in stat.items():
                rows.append(
                    {
                        "round": rnd,
                        "d": d,
                        "dtype": dt,
                        "candidate": k,
                        "min_ms": mn * 1e3,
                        "median_ms": med * 1e3,
                        "x_floor_median": med / floor[1],
                        "raw_over_fused_median": raw[1] / f[1],
                        "auto_over_raw_median": stat["xback-auto"][1] / raw[1],
                        "auto_over_own_median": max(
                            stat["xback-auto"][1] / stat["numpy"][1],
                            stat["xback-auto-torch"][1] / stat["torch"][1]
                            if "torch" in stat
                            else 0.0,
                        ),
                        "threads": t,
                        "others": others,
                    }
                )
            busy = "n/a" if others is None else f"{others:.2f}"
            print(
                f"{dt:8s} d={d:5d} threads={t}  "
                + "  ".join(f"{k}={v[0] * 1e3:.2f}/{v[1] * 1e3:.2f}" for k, v in stat.items())
                + f"  | fused/floor min {f[0] / floor[0]:.2f} med {f[1] / floor[1]:.2f}"
                + f"  raw/fused min {raw[0] / f[0]:.2f} med {raw[1] / f[1]:.2f}"
                + f"  auto/raw med {stat['xback-auto'][1] / raw[1]:.2f}"
                + f"  auto/own med {rows[-1]['auto_over_own_median']:.2f}"
                + f"  | others={busy} load={os.getloadavg()[0]:.2f}",
                flush=True,
            )
    return rows


def summary(rows: list[dict[str, Any]], quiet: float) -> None:
    """Per (dtype, d): medians over the quiet rounds of the per-round median ratios."""
    keys = sorted({(r["dtype"], r["d"]) for r in rows})
    for dt, d in keys:
        fused = [r for r in rows if (r["dtype"], r["d"], r["candidate"]) == (dt, d, "fused")]
        calm = [r for r in fused if r["others"] is not None and r["others"] < quiet]
        if not calm:
            print(f"{dt:8s} d={d:5d}: no round with others < {quiet} cores (of {len(fused)})")
            continue
        xf = sorted(r["x_floor_median"] for r in calm)
        rf = sorted(r["raw_over_fused_median"] for r in calm)
        af = sorted(r["auto_over_raw_median"] for r in calm)
        ao = sorted(r["auto_over_own_median"] for r in calm)
        print(
            f"{dt:8s} d={d:5d}: {len(calm)}/{len(fused)} quiet rounds: fused/floor median "
            f"{statistics.median(xf):.2f} [{xf[0]:.2f}-{xf[-1]:.2f}], raw/fused median "
            f"{statistics.median(rf):.2f} [{rf[0]:.2f}-{rf[-1]:.2f}], xback-auto/raw median "
            f"{statistics.median(af):.2f} [{af[0]:.2f}-{af[-1]:.2f}], xback-auto/own library "
            f"median {statistics.median(ao):.2f} [{ao[0]:.2f}-{ao[-1]:.2f}]"
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024, 2048])
    p.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    p.add_argument("--repeat", type=int, default=15)
    p.add_argument("--rounds", type=int, default=1, help="repeat the whole measurement")
    p.add_argument(
        "--settle", type=float, default=0.2, help="seconds of untimed calls before each block"
    )
    p.add_argument(
        "--quiet", type=float, default=0.2, help="others' CPU cores below which a round counts"
    )
    p.add_argument("--cold", action="store_true", help="also time a cold (uncached) compile")
    p.add_argument(
        "--cref",
        action="store_true",
        help="also time benchmarks/fused_ref.c (AVX-512 intrinsics; needs a C compiler)",
    )
    p.add_argument(
        "--threads",
        type=int,
        default=None,
        help="limit every library to N threads (threadpoolctl, torch.set_num_threads)",
    )
    a = p.parse_args()
    if a.threads is not None:
        from threadpoolctl import threadpool_limits

        threadpool_limits(a.threads)
        if torch is not None:
            torch.set_num_threads(a.threads)
    print(f"load average before: {os.getloadavg()}  cpus: {os.cpu_count()}")
    print("times in ms as min/median over repeats, each candidate in a warm block")
    for dt in a.dtypes:
        if a.cold:
            with tempfile.TemporaryDirectory() as tmp:
                lat, imp, comp, src = first_call(dt, tmp)
            print(
                f"first call {dt}, cold cache: {lat:.2f} s (import numba {imp:.2f} s, "
                f"kernel {comp:.2f} s, {src})"
            )
        lat, imp, comp, src = first_call(dt, None)
        print(
            f"first call {dt}, warm cache: {lat:.2f} s (import numba {imp:.2f} s, "
            f"kernel {comp:.2f} s, {src})"
        )
    info = _fused.warmup()
    print(
        f"in-process: import numba {info['import_seconds']:.2f} s; threads "
        f"{info['threads']}; cache dir {info['cache_dir']}"
    )
    for c in info["compiled"]:
        print(f"  {c['kernel']} [{c['signature']}]: {c['seconds']:.2f} s ({c['source']})")
    with tempfile.TemporaryDirectory() as tmp:
        cref = _c_reference(tmp) if a.cref else None
        rows = run(a.sizes, a.dtypes, a.repeat, a.rounds, a.settle, cref)
    if a.rounds > 1:
        print("summary (ratios of medians, per round):")
        summary(rows, a.quiet)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
