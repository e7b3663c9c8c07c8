"""What a call routed to torch costs the NumPy caller's next call (the switching penalty).

Each program is 5 steps of: the SVD of a (640, 64) float32 NumPy matrix, then one call of
the user's own NumPy (a matrix product, another SVD, or a matrix-vector product). The SVD
runs as ``xback.svd`` with routing on (where the active table routes it to torch) and off
(``use(route=False)``), and, by hand, on torch with its own thread setting and on one torch
thread (``torch.set_num_threads(1)`` around the call, restored after it: what a routed call
does). Programs interleaved, default threads, medians of the samples; the ratios are over
the program with the SVD on NumPy.

Run with a table tuned on this machine to see routing on::

    XBACK_CACHE_DIR=DIR xback tune
    XBACK_CACHE_DIR=DIR python benchmarks/bench_switching.py
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np

import xback


def programs(next_call: str) -> dict[str, Callable[[], Any]]:
    """Label -> one program (5 steps) whose user's call after the SVD is ``next_call``."""
    import torch

    rng = np.random.default_rng(0)
    a = rng.standard_normal((640, 64)).astype(np.float32)
    b = rng.standard_normal((640, 64)).astype(np.float32)
    B = rng.standard_normal((2048, 512))
    v = rng.standard_normal(512)
    user: Callable[[], Any] = {
        "matmul": lambda: a.T @ b,
        "svd": lambda: np.linalg.svd(b, full_matrices=False),
        "matvec": lambda: B @ v,
    }[next_call]

    def on_torch(one_thread: bool) -> Any:
        n = torch.get_num_threads()
        if one_thread:
            torch.set_num_threads(1)
        try:
            U, S, Vh = torch.linalg.svd(torch.from_numpy(a), full_matrices=False)
        finally:
            torch.set_num_threads(n)
        return U.numpy(), S.numpy(), Vh.numpy()

    def steps(svd: Callable[[], Any], route: bool | None = None) -> Callable[[], Any]:
        def program() -> Any:
            with xback.use(route=route):
                for _ in range(5):
                    svd()
                    user()

        return program

    return {
        "NumPy's svd (the baseline)": steps(lambda: np.linalg.svd(a, full_matrices=False)),
        "xback.svd, routing on": steps(lambda: xback.svd(a, full_matrices=False), True),
        "xback.svd, routing off": steps(lambda: xback.svd(a, full_matrices=False), False),
        "torch by hand, its own threads": steps(lambda: on_torch(False)),
        "torch by hand, one thread": steps(lambda: on_torch(True)),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--rounds", type=int, default=45, help="interleaved samples per program")
    a = p.parse_args(argv)
    for next_call in ("matmul", "svd", "matvec"):
        progs = programs(next_call)
        for f in progs.values():
            f()  # warm up
        samples: dict[str, list[float]] = {k: [] for k in progs}
        names = list(progs)
        for r in range(a.rounds):
            for k in names[r % len(names):] + names[: r % len(names)]:
                t0 = time.perf_counter()
                progs[k]()
                samples[k].append(time.perf_counter() - t0)
        med = {k: statistics.median(v) for k, v in samples.items()}
        base = med[names[0]]
        print(f"\nthe user's next call: {next_call}")
        print("| program | ms (median) | / baseline |")
        print("|---|---|---|")
        for k in names:
            print(f"| {k} | {med[k] * 1e3:.2f} | {med[k] / base:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
