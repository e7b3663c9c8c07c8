"""Out-of-core proof for the dask backend: ``lstsq_grad`` and tall-skinny ``svdvals`` on an
``A`` several times larger than each worker's ``memory_limit``, generated lazily.

Run: ``python benchmarks/bench_dask_outofcore.py [GB of A] [memory_limit per worker]``
(needs ``xback[dask]``; default 4 GB of A, 2 workers of 500 MB). Prints the time, the
throughput, the peak memory of the cluster (``distributed.diagnostics.MemorySampler``, sum
over workers) and whether any worker was restarted.
"""

from __future__ import annotations

import sys
import time

import dask.array as da
import distributed
import numpy as np
from distributed.diagnostics import MemorySampler

import xback


def main() -> None:
    gb = float(sys.argv[1]) if len(sys.argv) > 1 else 4.0
    limit = sys.argv[2] if len(sys.argv) > 2 else "500MB"
    n = 128
    m = int(gb * 1e9 / 8 / n)
    rows = 50_000  # 51 MB blocks
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, memory_limit=limit, host="127.0.0.1",
        dashboard_address=":0",
    ) as cluster, distributed.Client(cluster) as client:
        workers0 = set(client.scheduler_info()["workers"])
        A = da.random.default_rng(0).standard_normal((m, n), chunks=(rows, n))
        y = da.random.default_rng(1).standard_normal(m, chunks=rows)
        x = np.ones(n)
        ms = MemorySampler()
        with ms.sample("lstsq_grad"):
            t = time.perf_counter()
            g = xback.lstsq_grad(A, x, y, backend="dask").compute()
            t_g = time.perf_counter() - t
        with ms.sample("svdvals"):
            t = time.perf_counter()
            S = xback.svdvals(A).compute()
            t_s = time.perf_counter() - t
        peak = {k: max(b for _, b in v) / 1e6 for k, v in ms.samples.items()}
        workers1 = set(client.scheduler_info()["workers"])
        print(f"A = ({m}, {n}) float64 = {A.nbytes / 1e9:.1f} GB, 2 workers x {limit}")
        print(f"lstsq_grad: {t_g:.1f} s ({A.nbytes / 1e9 / t_g:.2f} GB/s), |g| = "
              f"{np.linalg.norm(g):.3e}")
        print(f"svdvals (TSQR): {t_s:.1f} s, S[0] = {S[0]:.3e}")
        print(f"peak cluster memory (MB): {peak}")
        print(f"workers restarted: {workers0 != workers1}")


if __name__ == "__main__":
    main()
