"""Sorting 1e8 float64 along a chunked axis on a ``LocalCluster``: correct, stable, and no
task holding more than a few chunks.

Run: ``python benchmarks/bench_dask_sort.py [elements] [chunk length] [--exact]``
(needs ``xback[dask]``; default 1e8 elements in chunks of 1e6 = 8 MB, 2 worker processes
with one thread each). The data are generated lazily (``dask.array.random``), rounded to
2 decimals (about 1000 distinct values: ~1e5 ties each, so stability shows) with 0.01 %
NaN. Prints:

* the time of the ``argsort`` and ``sort`` calls (splitters and bucket counts are computed
  at the call: two passes over the data), then of one computation running both sorts and
  every check (nothing persisted);
* checks over all elements, computed on the cluster as lazy reductions: ``sort`` is in the
  contract's order (NaN last) and equals the data at ``argsort``'s indices; ties and NaNs
  keep increasing indices (stable); the indices sum (and their squares sum, modulo 2**64) as a
  permutation's do;
* the largest total input of one task of the sort (the scheduler knows every result's
  size), per kind of task, against the chunk size;
* the peak memory of each worker process (sampled every 0.2 s).

``--exact`` also gathers both results and compares them with the NumPy backend exactly
(needs ~4 GB in the client for 1e8 elements).
"""

from __future__ import annotations

import sys
import threading
import time
from typing import Any

import dask.array as da
import distributed
import numpy as np
from distributed.diagnostics.plugin import SchedulerPlugin

import xback


class TaskInputs(SchedulerPlugin):
    """Records, for each task of the sort, the total size of its inputs when it starts."""

    name = "xback-task-inputs"

    def __init__(self) -> None:
        self.largest: dict[str, int] = {}

    def transition(self, key: Any, start: str, finish: str, *args: Any, **kw: Any) -> None:
        if finish != "processing":
            return
        name = key[0] if isinstance(key, tuple) else key
        if not str(name).startswith("xback-sort"):
            return
        kind = str(name).rsplit("-", 1)[0]  # drop the token
        ts = self.scheduler.tasks[key]
        size = sum(d.nbytes for d in ts.dependencies)
        self.largest[kind] = max(self.largest.get(kind, 0), size)

    async def start(self, scheduler: Any) -> None:
        self.scheduler = scheduler


def _largest(dask_scheduler: Any) -> dict[str, int]:
    return dict(dask_scheduler.plugins[TaskInputs.name].largest)


def _worker_memory(dask_scheduler: Any) -> dict[str, int]:
    return {w.address: w.memory.process for w in dask_scheduler.workers.values()}


class PeakMemory:
    """Peak process memory of each worker, polled from the scheduler."""

    def __init__(self, client: distributed.Client) -> None:
        self.client, self._stop = client, threading.Event()
        self.peak: dict[str, int] = {}
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def _poll(self) -> None:
        while not self._stop.is_set():
            for w, b in self.client.run_on_scheduler(_worker_memory).items():
                self.peak[w] = max(self.peak.get(w, 0), b)
            self._stop.wait(0.2)

    def __enter__(self) -> PeakMemory:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def _sum_of_squares(n: int) -> int:
    """``0**2 + 1**2 + ... + (n - 1)**2``."""
    return (n - 1) * n * (2 * n - 1) // 6


def _checks(v: Any, s: Any, i: Any) -> dict[str, Any]:
    """Lazy checks over all elements (reductions: nothing large reaches the client)."""
    s0, s1, i0, i1 = s[:-1], s[1:], i[:-1], i[1:]
    n0, n1 = da.isnan(s0), da.isnan(s1)
    tie = (s1 == s0) | (n0 & n1)
    ordered = (s1 > s0) | (n1 & ~n0) | tie
    n = v.shape[0]
    return {
        "sort in the contract's order (NaN last)": ordered.all(),
        "ties and NaNs keep increasing indices (stable)": (~tie | (i1 > i0)).all(),
        "indices sum to n(n-1)/2": i.sum() == n * (n - 1) // 2,
        # exact: uint64 arithmetic wraps modulo 2**64 on both sides
        "sum of squared indices (mod 2**64)": (i.astype(np.uint64) ** 2).sum(dtype=np.uint64)
        == np.uint64(_sum_of_squares(n) % 2**64),
        "NaN count matches": da.isnan(s).sum() == da.isnan(v).sum(),
    }


def main() -> None:
    args = [a for a in sys.argv[1:] if not a.startswith("--")]
    n = int(float(args[0])) if args else 10**8
    chunk = int(float(args[1])) if len(args) > 1 else 10**6
    exact = "--exact" in sys.argv
    with distributed.LocalCluster(
        n_workers=2, threads_per_worker=1, memory_limit="6GB", host="127.0.0.1",
        dashboard_address=":0",
    ) as cluster, distributed.Client(cluster) as client:
        client.register_plugin(TaskInputs())
        workers0 = set(client.scheduler_info()["workers"])
        rng = da.random.default_rng(0)
        v = da.round(rng.standard_normal(n, chunks=chunk), 2)
        v = da.where(rng.random(n, chunks=chunk) < 1e-4, np.nan, v)
        print(f"{n:.0e} float64 = {v.nbytes / 1e9:.1f} GB in {v.numblocks[0]} chunks of "
              f"{chunk * 8 / 1e6:.0f} MB; 2 worker processes x 1 thread")
        pos = np.sort(np.random.default_rng(1).choice(n, 10_000, replace=False))
        with PeakMemory(client) as mem:
            t = time.perf_counter()
            i = xback.argsort(v)
            t_i_call = time.perf_counter() - t
            t = time.perf_counter()
            s = xback.sort(v)
            t_s_call = time.perf_counter() - t
            # one graph: both sorts, every check, and the sampled positions; nothing is
            # persisted, so the peak memory is the sort's (plus the data's generation)
            t = time.perf_counter()
            lazy = _checks(v, s, i)
            *got, ip, sp = client.compute([*lazy.values(), i[pos], s[pos]], sync=True)
            t_run = time.perf_counter() - t
        results = dict(zip(lazy, got))
        vp = v[ip].compute()  # the data at argsort's indices, for the sampled positions
        largest = client.run_on_scheduler(_largest)
        workers1 = set(client.scheduler_info()["workers"])
        print(f"argsort call (splitters, counts: two passes): {t_i_call:.1f} s; sort call: "
              f"{t_s_call:.1f} s; both sorts and all checks computed: {t_run:.1f} s")
        for k, r in results.items():
            print(f"  {k}: {bool(r)}")
        print(f"  sort == data[argsort] at 10000 sampled positions (bitwise): "
              f"{vp.tobytes() == sp.tobytes()}")
        cb = chunk * 8
        print(f"largest total input of one task (chunk = {cb / 1e6:.0f} MB):")
        for k, b in sorted(largest.items()):
            print(f"  {k}: {b / 1e6:.1f} MB = {b / cb:.2f} chunks")
        print("peak process memory per worker (MB): "
              + ", ".join(f"{b / 1e6:.0f}" for b in mem.peak.values()))
        print(f"workers restarted: {workers0 != workers1}")
        if exact:
            t = time.perf_counter()
            a = v.compute()
            same_i = np.array_equal(i.compute(), xback.argsort(a))
            same_s = xback.sort(a).tobytes() == s.compute().tobytes()
            print(f"exact against the NumPy backend: argsort {same_i}, sort {same_s} "
                  f"({time.perf_counter() - t:.0f} s)")


if __name__ == "__main__":
    main()
