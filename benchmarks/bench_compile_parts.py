"""Benchmark: what each xback call adds to the compiled model of ``xback bench compile``.

The model of :mod:`xback.bench.compile` (a top-8 by a descending sort, ``svdvals``,
``lstsq_grad``, arithmetic) is compiled with ``torch.compile(fullgraph=True)`` (inductor) in
variants that take one part from xback and the rest from raw torch, plus the all-raw and
all-xback models, and two raw-torch spellings of the traced finiteness rule of ``svdvals``
(the one xback's torch backend uses, and ``nan_to_num`` with a sum of ``x - x``), and raw
torch with xback's whole contract written by hand (``model_raw_contract``). All are
timed interleaved, round after round, in one process. Prints each variant's median and
minimum per call and its median over the all-raw model's.

Run: ``python -u benchmarks/bench_compile_parts.py [--n 1024] [--threads N] [--rounds 15]``
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from typing import Any

import numpy as np


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=1024)
    p.add_argument("--threads", type=int)
    p.add_argument("--rounds", type=int, default=15)
    a = p.parse_args()

    import torch

    import xback
    from xback.bench.compile import TOP_K, model_raw_contract

    if a.threads:
        torch.set_num_threads(a.threads)
    n, k = a.n, max(2, a.n // 16)
    rng = np.random.default_rng(0)

    def t(*shape: int) -> Any:
        return torch.from_numpy(rng.standard_normal(shape).astype("float32"))

    args = (t(n), t(max(2, n // 8), k), t(n, k), t(k), t(n))

    def rule_xback(M: Any) -> Any:  # the torch backend's traced rule, written out
        ok = torch.isfinite(M).all(dim=(-2, -1))
        s = torch.linalg.svdvals(torch.where(ok[..., None, None], M, torch.zeros_like(M)))
        return torch.where(ok.reshape(*ok.shape, 1), s, torch.full_like(s, float("nan")))

    def rule_nan_to_num(M: Any) -> Any:
        bad = (M - M).sum(dim=(-2, -1))  # 0 for a finite matrix, NaN otherwise
        s = torch.linalg.svdvals(torch.nan_to_num(M, nan=0.0, posinf=0.0, neginf=0.0))
        return s + bad[..., None]

    def model(sort: bool, svd: Callable[[Any], Any] | None, grad: bool) -> Callable[..., Any]:
        def f(v: Any, M: Any, A: Any, x: Any, y: Any) -> Any:
            top = (xback.sort(v, descending=True) if sort
                   else torch.sort(v, descending=True, stable=True)[0])[:TOP_K]
            s = svd(M) if svd is not None else torch.linalg.svdvals(M)
            g = xback.lstsq_grad(A, x, y) if grad else 2 * (A.mT @ (A @ x - y))
            return top.sum() * 0.5 + s[0] / (s[-1] + 1.0) - (g * g).sum().sqrt() * 1e-3

        return f

    variants = {
        "raw": model(False, None, False),
        "xback sort": model(True, None, False),
        "xback svdvals": model(False, xback.svdvals, False),
        "xback lstsq_grad": model(False, None, True),
        "xback (all)": model(True, xback.svdvals, True),
        "raw + rule as xback": model(False, rule_xback, False),
        "raw + rule nan_to_num": model(False, rule_nan_to_num, False),
        "raw, xback's contract": model_raw_contract,  # NaN-last sort and the rule, by hand
    }
    compiled = {}
    for name, f in variants.items():
        f(*args)
        c = torch.compile(f, fullgraph=True)
        for _ in range(3):
            c(*args)
        compiled[name] = c
    times: dict[str, list[float]] = {name: [] for name in compiled}
    for _ in range(a.rounds):
        for name, c in compiled.items():
            t0 = time.perf_counter()
            for _ in range(20):
                c(*args)
            times[name].append((time.perf_counter() - t0) / 20)
    ref = statistics.median(times["raw"])
    print(f"n = {n}, torch threads = {torch.get_num_threads()}, {a.rounds} rounds of 20 calls")
    for name, ts in times.items():
        med = statistics.median(ts)
        print(f"{name:24s} median {med * 1e6:9.1f} µs  min {min(ts) * 1e6:9.1f} µs  "
              f"/ raw {med / ref:.3f}")


if __name__ == "__main__":
    main()
