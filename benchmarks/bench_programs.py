"""Whole programs with routing on and off (issue 20): the same as ``xback bench programs``.

Each program of :mod:`xback.bench.programs` (a NumPy gradient-descent loop with the user's
own BLAS between xback's calls, a NumPy pipeline of sorts, ``svdvals`` and the user's own
array work, a NumPy dedup-and-rank step, a torch training-style loop, and a program at the
fused kernel's sizes when Numba is installed) is timed whole, with routing on and with
``use(route=False)``, interleaved in one run, with the default threads; each program's
``routing on / routing off`` ratio of medians is printed (target: at most 1.02 for every
program).

The active routing table decides (the notes say which one, and on which CPU it was
measured); to run with another table, point ``XBACK_CACHE_DIR`` at a directory holding it
as ``routing-table.json`` (e.g. one written by ``xback tune --output DIR/routing-table.json``).

Run: ``python -u benchmarks/bench_programs.py [--quick] [--repeat 7] [--json out.json]
[--plot plots/]``.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from xback.bench import BenchConfig, run_all
from xback.bench._report import plot, render, write_json


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small programs, few repeats")
    p.add_argument("--repeat", type=int, default=None, help="samples per program and setting")
    p.add_argument("--json", type=Path, default=None, help="write the results here")
    p.add_argument("--plot", type=Path, default=None, help="write programs.png here")
    args = p.parse_args(argv)
    from importlib.util import find_spec

    backends = ["numpy"] + (["torch"] if find_spec("torch") is not None else [])
    cfg = BenchConfig(backends=backends, repeat=args.repeat, quick=args.quick)
    doc = run_all(["programs"], cfg)
    render(doc, Console(width=160))
    if args.json is not None:
        write_json(doc, args.json)
    if args.plot is not None:
        plot(doc, args.plot)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
