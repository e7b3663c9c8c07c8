"""Dask backend throughput against the NumPy backend on data that fits in memory.

Run: ``python benchmarks/bench_dask.py [m] [n]`` (needs ``xback[dask]``). Prints seconds and
GB/s of ``A`` streamed for ``lstsq_grad`` and ``svdvals`` (TSQR), and the time of the sample
sort of 1e7 float64 along a chunked axis against ``xback.sort`` on NumPy. The threaded local
scheduler is used (no cluster).
"""

from __future__ import annotations

import sys
import time

import dask.array as da
import numpy as np

import xback


def _best(fn, repeat: int = 3) -> float:  # type: ignore[no-untyped-def]
    best = float("inf")
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def main() -> None:
    m = int(sys.argv[1]) if len(sys.argv) > 1 else 200_000
    n = int(sys.argv[2]) if len(sys.argv) > 2 else 256
    rng = np.random.default_rng(0)
    A = rng.standard_normal((m, n))
    x, y = rng.standard_normal(n), rng.standard_normal(m)
    gb = A.nbytes / 1e9
    dA = da.from_array(A, chunks=(max(1, m // 16), n))
    dx, dy = da.from_array(x), da.from_array(y, chunks=dA.chunks[0])
    t_np = _best(lambda: xback.lstsq_grad(A, x, y))
    t_da = _best(lambda: xback.lstsq_grad(dA, dx, dy).compute())
    print(f"lstsq_grad A=({m}, {n}) {gb:.2f} GB: numpy {t_np:.3f} s ({gb / t_np:.1f} GB/s), "
          f"dask 16 row chunks {t_da:.3f} s ({gb / t_da:.1f} GB/s)")
    t_np = _best(lambda: xback.svdvals(A), 1)
    t_da = _best(lambda: xback.svdvals(dA).compute(), 1)
    print(f"svdvals: numpy {t_np:.3f} s, dask TSQR {t_da:.3f} s (incl. finiteness checks)")
    v = rng.standard_normal(10_000_000)
    dv = da.from_array(v, chunks=1_000_000)
    t_np = _best(lambda: xback.argsort(v), 1)
    t_da = _best(lambda: xback.argsort(dv).compute(), 1)
    print(f"argsort 1e7 float64: numpy {t_np:.3f} s, dask sample sort 10 chunks {t_da:.3f} s")


if __name__ == "__main__":
    main()
