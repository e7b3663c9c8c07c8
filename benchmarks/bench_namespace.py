"""Cost of ``xback.namespace(x)`` against ``array_api_compat.array_namespace(x)``.

Run ``python benchmarks/bench_namespace.py [--quick]``. On a warm cache (the namespace for the
backend and device already built), each case times ``array_namespace(x)`` (array-api-compat)
and ``xback.namespace(x)`` on the same input, interleaved round-robin by the shared harness of
``xback bench`` (:func:`xback.bench.measure`), and prints the medians and their difference
(target: ``xback.namespace`` at most 0.3 us over ``array_namespace``).

Cases: a NumPy array, a CPU tensor and a ``meta`` tensor (one input, nothing chosen: the hot
path); two NumPy arrays; one NumPy array inside ``xback.use("torch", device="meta")``; an
explicit ``backend="torch"``. array-api-compat has no context and no choice, so its call is
the same in every case (it answers the inputs' library); array-api-strict and Dask are timed
when installed.
"""

from __future__ import annotations

import contextlib
import sys
from typing import Any

import array_api_compat
import numpy as np

import xback
from xback.bench import Candidate, measure
from xback.bench._harness import load_average

__all__ = ["main", "run"]


def _cases() -> list[tuple[str, tuple[Any, ...], dict[str, Any], Any]]:
    """(name, inputs, namespace keyword arguments, context manager) per case."""
    a = np.zeros(16)
    cases: list[tuple[str, tuple[Any, ...], dict[str, Any], Any]] = [
        ("numpy", (a,), {}, None),
        ("numpy x2", (a, np.ones(3)), {}, None),
    ]
    try:
        import torch
    except ImportError:  # pragma: no cover - torch is a test requirement
        torch = None
    if torch is not None:
        cases += [
            ("torch cpu", (torch.zeros(16),), {}, None),
            ("torch meta", (torch.zeros(16, device="meta"),), {}, None),
            ("numpy in use(torch, meta)", (a,), {}, ("torch", "meta")),
            ("numpy, backend='torch'", (a,), {"backend": "torch"}, None),
        ]
    with contextlib.suppress(ImportError):
        import array_api_strict as xs

        cases.append(("array_api_strict", (xs.asarray(a),), {}, None))
    with contextlib.suppress(ImportError):
        import dask.array as da

        cases.append(("dask", (da.from_array(a, chunks=8),), {}, None))
    return cases


def run(quick: bool = False) -> list[dict[str, Any]]:
    """One row per case: ``compat_us``, ``xback_us`` (medians), ``extra_us`` (their
    difference) and ``extra_min_us`` (difference of the minima)."""
    rows: list[dict[str, Any]] = []
    repeat = 5 if quick else 15
    sample_time = 0.002 if quick else 0.02
    array_namespace, namespace = array_api_compat.array_namespace, xback.namespace
    for name, xs, kwargs, ctx in _cases():
        namespace(*xs, **kwargs)  # warm: the namespace for this backend and device is built
        array_namespace(*xs)
        if ctx is not None:
            with xback.use(ctx[0], device=ctx[1]):
                namespace(*xs, **kwargs)
        compat = Candidate("array_namespace", lambda xs=xs: array_namespace(*xs))
        if kwargs:
            ours = Candidate("xback", lambda xs=xs, kw=kwargs: namespace(*xs, **kw))
        elif len(xs) == 1:
            x = xs[0]
            ours = Candidate("xback", lambda x=x: namespace(x))
        else:
            ours = Candidate("xback", lambda xs=xs: namespace(*xs))
        with contextlib.ExitStack() as stack:
            if ctx is not None:
                stack.enter_context(xback.use(ctx[0], device=ctx[1]))
            got = measure([compat, ours], repeat=repeat, sample_time=sample_time)
        c, o = got
        rows.append(
            {
                "case": name,
                "compat_us": c["median_s"] * 1e6,
                "xback_us": o["median_s"] * 1e6,
                "extra_us": (o["median_s"] - c["median_s"]) * 1e6,
                "extra_min_us": (o["min_s"] - c["min_s"]) * 1e6,
                "load": o["load_after"],
            }
        )
    return rows


def main(argv: list[str]) -> None:
    quick = "--quick" in argv
    print(f"load average before: {load_average()}")
    print(
        f"{'case':28s} {'array_namespace us':>19s} {'namespace us':>13s} {'extra us':>9s} "
        f"{'(of minima)':>12s}"
    )
    for r in run(quick):
        print(
            f"{r['case']:28s} {r['compat_us']:19.3f} {r['xback_us']:13.3f} "
            f"{r['extra_us']:9.3f} {r['extra_min_us']:12.3f}"
        )
    print(f"load average after: {load_average()}")


if __name__ == "__main__":
    main(sys.argv[1:])
