"""Benchmark: xback inside ``torch.compile(fullgraph=True)`` (issue 21).

A small model-like function (sort-based top-k, ``svdvals``, ``lstsq_grad``, arithmetic)
written with xback and with raw torch; both compiled with inductor, the eager versions timed
beside them, interleaved in one run (:mod:`xback.bench.compile`). Reports compiled xback /
compiled raw (target: at most 1.02), eager xback / eager raw, and the graph breaks counted
by ``torch._dynamo.explain`` (0 for both).

Run: ``python -u benchmarks/bench_compile.py [--quick] [--sizes 1024 4096]
[--dtypes float32] [--repeat 15] [--threads 1]`` (the same as ``xback bench compile``).
"""

from __future__ import annotations

import argparse

from rich.console import Console

from xback.bench import BenchConfig, run_all
from xback.bench._report import render


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="Dynamo's eager backend, small sizes")
    p.add_argument("--sizes", type=int, nargs="+")
    p.add_argument("--dtypes", nargs="+", choices=["float32", "float64"])
    p.add_argument("--repeat", type=int)
    p.add_argument("--threads", type=int)
    p.add_argument("--device", default="cpu")
    a = p.parse_args()
    cfg = BenchConfig(
        sizes=a.sizes, dtypes=a.dtypes, backends=["torch"], repeat=a.repeat,
        threads=a.threads, device=a.device, quick=a.quick,
    )  # fmt: skip
    render(run_all(["compile"], cfg), Console())


if __name__ == "__main__":
    main()
