"""Benchmark of the sort family (top_k, median/quantile, searchsorted, unique) against the
raw library calls, on the issue's sizes (1e7 elements; searchsorted 1e6 into 1e6).

Run ``python benchmarks/bench_sort_family.py [--quick]`` (the same measurement as
``xback bench sort-family``): candidates are timed interleaved round-robin and the median of
the repeats is kept; the printed ratios are the issue's targets (top_k: full sort / top_k
>= 10 and xback / torch.topk <= 1.2; the others: xback / the fastest raw call <= 1.1).
"""

from __future__ import annotations

import sys

from xback.bench import BenchConfig
from xback.bench.sort_family import run

__all__ = ["main"]


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    quick = "--quick" in args
    try:
        import torch  # noqa: F401

        backends = ["numpy", "torch"]
    except ImportError:  # pragma: no cover - the test requirements install torch
        backends = ["numpy"]
    res = run(BenchConfig(backends=backends, quick=quick))
    for row in res.rows:
        print(f"{row['case']:>12} n={row['size']:.0e} {row['backend']:>5} {row['impl']:>16} "
              f"median {row['median_s'] * 1e3:9.3f} ms")
    for s in res.summary:
        print(f"{s['name']}: {s['value']:.2f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
