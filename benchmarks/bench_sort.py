"""Benchmark of ``xback.sort`` against the raw calls with the same guarantee.

Run ``python benchmarks/bench_sort.py [--quick]``. Reusable core::

    from benchmarks.bench_sort import run
    rows = run(quick=False)   # list[dict], one dict per case, see below

``run(quick: bool = False) -> list[dict]`` measures, in one process, candidates interleaved
round-robin (each repeat runs every candidate once, so machine noise hits all alike) and keeps
the median of the repeats. Each row is a dict:

* ``kind="sort"``: ``backend`` ("numpy"/"torch"), ``dtype``, ``shape``, ``raw_s`` (median
  seconds of ``np.sort(kind="stable")`` / ``torch.sort(stable=True)``), ``xback_s``
  (``xback.sort`` ascending), ``desc_s`` (``xback.sort(descending=True)``), ``ratio``
  (xback / raw, ascending; target <= 1.05) and ``desc_ratio`` (descending / ascending;
  target <= 1.3).
* ``kind="overhead"``: ``backend``, ``op`` ("sort"/"argsort"), ``raw_us`` and ``xback_us``
  (median microseconds per call on a 16-element float64 input, measured as this thread's CPU
  time so that other processes on a shared machine do not drown the difference) and
  ``overhead_us`` (target <= 1).

``quick=True`` uses 1e5 elements and (100, 1000) instead of 1e6, 1e7 and (1000, 10000).
"""

from __future__ import annotations

import statistics
import sys
import time
import timeit
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

import xback
from xback.bench import Candidate, measure

__all__ = ["main", "run"]


def _median_times(cands: dict[str, Callable[[], Any]], repeats: int) -> dict[str, float]:
    """Median wall time of each candidate: the shared harness of ``xback bench``
    (warm-up excluded, candidates interleaved round-robin)."""
    rows = measure(
        [Candidate(k, f) for k, f in cands.items()], repeat=repeats, sample_time=0.0
    )
    return {r["candidate"]: r["median_s"] for r in rows}


def _median_us(cands: dict[str, Callable[[], Any]], number: int, repeats: int) -> dict[str, float]:
    """Median microseconds per call for tiny inputs (timeit loops, round-robin)."""
    times: dict[str, list[float]] = {k: [] for k in cands}
    for _ in range(repeats):
        for k, f in cands.items():
            # CPU time of this thread: on a shared machine, wall time mostly measures the
            # other processes (a 16-element sort never runs on a second thread)
            timer = timeit.Timer(f, timer=time.thread_time)
            times[k].append(timer.timeit(number=number) / number * 1e6)
    return {k: statistics.median(v) for k, v in times.items()}


def _backends() -> list[str]:
    try:
        import torch  # noqa: F401
    except ImportError:  # pragma: no cover - torch is optional
        return ["numpy"]
    return ["numpy", "torch"]


def run(quick: bool = False) -> list[dict[str, Any]]:
    """Measure; return one dict per case (see the module docstring)."""
    shapes: list[tuple[int, ...]] = (
        [(10**5,), (100, 1000)] if quick else [(10**6,), (10**7,), (1000, 10000)]
    )
    rng = np.random.default_rng(0)
    rows: list[dict[str, Any]] = []
    backends = _backends()
    torch: Any = sys.modules.get("torch")
    for shape in shapes:
        n = int(np.prod(shape))
        repeats = 3 if quick else (5 if n >= 10**7 else 9)
        for dtype in ("float32", "float64"):
            a = rng.standard_normal(shape).astype(dtype)
            for backend in backends:
                if backend == "numpy":
                    x: Any = a

                    def raw(x: Any = x) -> Any:
                        return np.sort(x, kind="stable")
                else:
                    x = torch.from_numpy(a)

                    def raw(x: Any = x) -> Any:
                        return torch.sort(x, stable=True)[0]

                med = _median_times(
                    {
                        "raw": raw,
                        "xback": partial(xback.sort, x),
                        "desc": partial(xback.sort, x, descending=True),
                    },
                    repeats,
                )
                rows.append(
                    {
                        "kind": "sort",
                        "backend": backend,
                        "dtype": dtype,
                        "shape": shape,
                        "raw_s": med["raw"],
                        "xback_s": med["xback"],
                        "desc_s": med["desc"],
                        "ratio": med["xback"] / med["raw"],
                        "desc_ratio": med["desc"] / med["xback"],
                    }
                )
    small = rng.standard_normal(16)
    for backend in backends:
        if backend == "numpy":
            cands: dict[str, Callable[[], Any]] = {
                "raw sort": partial(np.sort, small, kind="stable"),
                "xback sort": partial(xback.sort, small),
                "raw argsort": partial(np.argsort, small, kind="stable"),
                "xback argsort": partial(xback.argsort, small),
            }
        else:
            t = torch.from_numpy(small.copy())
            cands = {
                "raw sort": partial(torch.sort, t, stable=True),
                "xback sort": partial(xback.sort, t),
                "raw argsort": partial(torch.argsort, t, stable=True),
                "xback argsort": partial(xback.argsort, t),
            }
        us = _median_us(cands, number=2000 if quick else 20000, repeats=5 if quick else 15)
        rows.extend(
            {
                "kind": "overhead",
                "backend": backend,
                "op": op,
                "raw_us": us[f"raw {op}"],
                "xback_us": us[f"xback {op}"],
                "overhead_us": us[f"xback {op}"] - us[f"raw {op}"],
            }
            for op in ("sort", "argsort")
        )
    return rows


def main(argv: list[str] | None = None) -> None:
    """Print the table of :func:`run`."""
    args = sys.argv[1:] if argv is None else argv
    rows = run(quick="--quick" in args)
    print(f"numpy {np.__version__}", end="")
    torch = sys.modules.get("torch")
    print(f", torch {torch.__version__}" if torch is not None else "")
    print("sort, median seconds; ratio = xback/raw (asc, target <= 1.05);")
    print("desc/asc = xback descending / xback ascending (target <= 1.3)")
    header = f"{'backend':7} {'dtype':8} {'shape':>13} {'raw':>9} {'xback':>9} {'desc':>9}"
    print(header + f" {'ratio':>6} {'desc/asc':>8}")
    raw_by: dict[tuple[str, Any], float] = {}
    for r in rows:
        if r["kind"] != "sort":
            continue
        raw_by[(r["backend"], (r["dtype"], r["shape"]))] = r["raw_s"]
        print(
            f"{r['backend']:7} {r['dtype']:8} {r['shape']!s:>13} {r['raw_s']:9.4f} "
            f"{r['xback_s']:9.4f} {r['desc_s']:9.4f} {r['ratio']:6.3f} {r['desc_ratio']:8.3f}"
        )
    pairs = [(k, raw_by[("numpy", k)], v) for (b, k), v in raw_by.items() if b == "torch"]
    if pairs:
        print("raw torch.sort / raw np.sort (< 1: torch faster on this machine):")
        for (dtype, shape), np_s, t_s in pairs:
            print(f"  {dtype:8} {shape!s:>13} {t_s / np_s:6.3f}")
    print("16-element float64 input, median microseconds per call:")
    for r in rows:
        if r["kind"] == "overhead":
            print(
                f"  {r['backend']:7} {r['op']:8} raw {r['raw_us']:6.3f}  xback "
                f"{r['xback_us']:6.3f}  overhead {r['overhead_us']:+6.3f} (target <= 1)"
            )


if __name__ == "__main__":
    main()
