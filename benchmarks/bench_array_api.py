"""Dispatch overhead of the generic Array API backend over the library's own call.

Run ``python benchmarks/bench_array_api.py [--quick]`` (needs array-api-strict; JAX is timed
too when it is installed). For 16-element float64 and int64 arrays (and a 4x3 float64
matrix for ``svd``/``svdvals``), each case times the library's own call that gives the same
guarantee as xback (stable, NaN last; for the svd, ``ValueError`` on NaN or inf input, the
input checked first) against the xback call, interleaved round-robin by the shared harness
of ``xback bench`` (:func:`xback.bench.measure`), and prints the medians and the overhead
(target for the sorts: <= 1 us).

Two inputs per case:

* ``same``: the same array on every call (what ``xback bench overhead`` does for NumPy and
  torch);
* ``fresh``: a different array on every call, cycling through 1000 of them. array-api-strict
  makes a new dtype object for every array, and its dtype ``==`` and ``hash`` are Python code
  (about 0.3-0.5 us per comparison): what a lookup by dtype costs shows here.

NumPy arrays are sorted first, as in a program that uses both.
"""

from __future__ import annotations

import itertools
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

import xback
from xback.bench import Candidate, measure
from xback.bench._harness import load_average

__all__ = ["main", "run"]

_POOL = 1000


def _same(f: Callable[[Any], Any], a: Any) -> Callable[[], Any]:
    return lambda: f(a)


def _cycling(f: Callable[[Any], Any], arrays: list[Any]) -> Callable[[], Any]:
    nxt = itertools.cycle(arrays).__next__
    return lambda: f(nxt())


def _raising(xp: Any, fn: Callable[[Any], Any]) -> Callable[[Any], Any]:
    """``fn`` that first raises ``ValueError`` on NaN or inf, spelled with ``xp``: xback's
    svd contract."""

    def call(v: Any) -> Any:
        if not bool(xp.all(xp.isfinite(v))):
            raise ValueError("v contains non-finite values")
        return fn(v)

    return call


def _cases(xp: Any) -> list[tuple[str, Callable[[Any], Any], Callable[[Any], Any], str]]:
    """(op, library call with xback's guarantee, xback call, input) per case."""
    return [
        ("sort", lambda v: xp.sort(v, stable=True), xback.sort, "float64"),
        ("argsort", lambda v: xp.argsort(v, stable=True), xback.argsort, "float64"),
        ("sort", lambda v: xp.sort(v, stable=True), xback.sort, "int64"),
        ("argsort", lambda v: xp.argsort(v, stable=True), xback.argsort, "int64"),
        # descending: xp.sort(descending=True) puts NaN first; -x keeps it last, stably
        (
            "argsort desc",
            lambda v: xp.argsort(-v, stable=True),
            lambda v: xback.argsort(v, descending=True),
            "float64",
        ),
        # the svd raises ValueError on NaN/inf input: the library call checks first
        (
            "svd",
            _raising(xp, lambda v: xp.linalg.svd(v, full_matrices=False)),
            lambda v: xback.svd(v, full_matrices=False),
            "4x3 f64",
        ),
        ("svdvals", _raising(xp, xp.linalg.svdvals), xback.svdvals, "4x3 f64"),
    ]


def _libraries() -> list[tuple[str, Any, Callable[[np.ndarray[Any, Any]], Any]]]:
    libs: list[tuple[str, Any, Callable[[np.ndarray[Any, Any]], Any]]] = []
    import array_api_strict as xps

    libs.append(("array_api_strict", xps, xps.asarray))
    try:
        import jax
    except ImportError:
        return libs
    jax.config.update("jax_enable_x64", True)  # float64 and int64 as in the other cases
    import jax.numpy as jnp

    libs.append(("jax", jnp, jnp.asarray))
    return libs


def run(quick: bool = False) -> list[dict[str, Any]]:
    """One row per (library, op, dtype, input): ``raw_us``, ``xback_us`` (medians),
    ``overhead_us`` (their difference) and ``overhead_min_us`` (difference of the minima)."""
    rng = np.random.default_rng(0)
    host = {
        "float64": rng.random(16),
        "int64": rng.integers(0, 8, 16),
        "4x3 f64": rng.standard_normal((4, 3)),
    }
    for a in host.values():  # a program that also sorts NumPy arrays (xback's caches hold both)
        xback.sort(a)
    rows: list[dict[str, Any]] = []
    repeat = 5 if quick else 15
    sample_time = 0.002 if quick else 0.02
    for lib, xp, make in _libraries():
        for op, raw, xb, dtype in _cases(xp):
            pool = [make(host[dtype]) for _ in range(_POOL)]
            for inp, (r, x) in (
                ("same", (_same(raw, pool[0]), _same(xb, pool[0]))),
                ("fresh", (_cycling(raw, pool), _cycling(xb, pool))),
            ):
                got = measure(
                    [Candidate("raw", r), Candidate("xback", x)],
                    repeat=repeat,
                    sample_time=sample_time,
                )
                raw_row, xb_row = got
                rows.append(
                    {
                        "library": lib,
                        "op": op,
                        "dtype": dtype,
                        "input": inp,
                        "raw_us": raw_row["median_s"] * 1e6,
                        "xback_us": xb_row["median_s"] * 1e6,
                        "overhead_us": (xb_row["median_s"] - raw_row["median_s"]) * 1e6,
                        "overhead_min_us": (xb_row["min_s"] - raw_row["min_s"]) * 1e6,
                        "load": xb_row["load_after"],
                    }
                )
    return rows


def main(argv: list[str]) -> None:
    quick = "--quick" in argv
    print(f"load average before: {load_average()}")
    print(
        f"{'library':17s} {'op':13s} {'dtype':8s} {'input':6s} {'raw us':>8s} {'xback us':>9s} "
        f"{'overhead us':>12s} {'(of minima)':>12s}"
    )
    for r in run(quick):
        print(
            f"{r['library']:17s} {r['op']:13s} {r['dtype']:8s} {r['input']:6s} "
            f"{r['raw_us']:8.2f} {r['xback_us']:9.2f} {r['overhead_us']:12.2f} "
            f"{r['overhead_min_us']:12.2f}"
        )
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    main(sys.argv[1:])
