"""Benchmark of xback's linear algebra against the raw library calls (issue 4).

The seed's experiment: the gradient of ``||y - A x||²`` with ``A`` of shape ``(10d, d)``,
``x`` of shape ``(d,)``, for ``d`` in {256, 512, 1024, 2048}, float32 and float64. Candidates,
interleaved round-robin (A B C A B C ...), each reported as the median per-call time over the
repeats, as a multiple of the memory-bandwidth floor (the time to read ``A`` once: the faster
of NumPy's and torch's ``A.sum()``) and of the best raw formula on the same backend:

* raw NumPy explicit ``2 * (A.T @ (A @ x - y))`` and the literal ``2 * A.T @ (A @ x - y)``
  (which parses as ``(2 * A.T) @ ...`` and copies A); raw torch explicit; raw torch autograd;
* the single-pass blocked gradient of each backend (rows of A in cache-sized blocks:
  ``r_b = A_b x - y_b``, ``g += A_bᴴ r_b``);
* ``xback.lstsq_grad`` per backend and method (``explicit``, ``autograd``, ``auto``);
* the reusable form ``g = xback.lstsq_grad_fn(A, y)``: per call over 100 calls (its one-off
  setup is reported separately, and amortised over the 100 calls).

Then ``svd`` of ``(10d, d)`` with ``full_matrices=False``: ``np.linalg.svd`` and
``torch.linalg.svd`` against ``xback.svd`` on each backend.

Functions importable by ``xback bench`` (they return plain rows, one dict per candidate)::

    run_lstsq_grad(sizes=(256, 512, 1024, 2048), dtypes=("float32", "float64"),
                   repeat=7, quick=False) -> list[dict]
    run_svd(sizes=(256, 512, 1024), dtypes=("float32", "float64"),
            repeat=5, quick=False) -> list[dict]

Row keys: ``bench`` ("lstsq_grad" or "svd"), ``d``, ``dtype``, ``candidate``, ``backend``,
``median_s`` (per call), ``min_s``, ``x_floor`` (lstsq_grad: multiple of the floor),
``x_best_raw`` (multiple of the best raw call on the same backend), and ``setup_s`` for the
reusable form. ``quick=True`` uses small sizes and fewer repeats (a smoke run).

Run: ``python -u benchmarks/bench_linalg.py [--quick] [--sizes 256 512] [--dtypes float64]
[--repeat 7] [--svd-sizes 256 512] [--threads 1]``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

import xback

try:
    import torch
except ImportError:  # pragma: no cover - torch is optional
    torch = None

__all__ = ["run_lstsq_grad", "run_svd"]

#: minimum duration of one timed sample; fast calls are repeated inside a sample
SAMPLE_S = 0.02
REUSE_CALLS = 100


def _calls_per_sample(fn: Callable[[], Any]) -> int:
    fn()  # warm-up (excluded)
    t = time.perf_counter()
    fn()
    dt = time.perf_counter() - t
    return max(1, min(REUSE_CALLS, int(SAMPLE_S / max(dt, 1e-7))))


def _measure(cands: dict[str, Callable[[], Any]], repeat: int) -> dict[str, list[float]]:
    """Per-call times of every candidate, samples taken round-robin."""
    calls = {k: _calls_per_sample(f) for k, f in cands.items()}
    times: dict[str, list[float]] = {k: [] for k in cands}
    for _ in range(repeat):
        for k, f in cands.items():
            n = calls[k]
            t = time.perf_counter()
            for _ in range(n):
                f()
            times[k].append((time.perf_counter() - t) / n)
    return times


def _backend_of(name: str) -> str:
    return "torch" if "torch" in name else "numpy"


def _rows(
    bench: str, d: int, dtype: str, times: dict[str, list[float]], floor_keys: Sequence[str]
) -> list[dict[str, Any]]:
    med = {k: statistics.median(v) for k, v in times.items()}
    floor = min((med[k] for k in floor_keys), default=None)
    best_raw = {
        b: min(
            (
                v
                for k, v in med.items()
                if k.startswith("raw") and _backend_of(k) == b and "literal" not in k
            ),
            default=None,
        )
        for b in ("numpy", "torch")
    }
    rows = []
    for k, v in med.items():
        b = _backend_of(k)
        raw = best_raw[b]
        rows.append(
            {
                "bench": bench,
                "d": d,
                "dtype": dtype,
                "candidate": k,
                "backend": b,
                "median_s": v,
                "min_s": min(times[k]),
                "x_floor": v / floor if floor else None,
                "x_best_raw": v / raw if raw else None,
            }
        )
    return rows


def _numpy_blocked(A: Any, x: Any, y: Any, block_bytes: int = 1024 * 1024) -> Any:
    """The single-pass blocked gradient on NumPy (2-D ``x`` and ``y``): each block of rows of
    ``A`` (``block_bytes``) is read while it is still in cache, so ``A`` streams from memory
    once. An experiment only: it never beat the two BLAS calls with the default threads, so
    xback's NumPy backend does not have it (torch's has its own, ``_lstsq_grad_blocked``)."""
    m, n = A.shape
    rows = max(8, block_bytes // max(1, n * A.itemsize))
    g = np.zeros((n, x.shape[1]), dtype=A.dtype)
    for s in range(0, m, rows):
        Ab = A[s : s + rows]
        r = Ab @ x
        r -= y[s : s + rows]
        g += (Ab.T @ r.conj()).conj() if A.dtype.kind == "c" else Ab.T @ r
    g *= 2
    return g


def _lstsq_candidates(
    A: Any, x: Any, y: Any, setup: dict[str, float]
) -> dict[str, Callable[[], Any]]:
    """Timed callables of one lstsq_grad table (fills ``setup`` with lstsq_grad_fn setups)."""
    x2, y2 = x[:, None], y[:, None]
    g_np = xback.lstsq_grad_fn(A, y)
    c: dict[str, Callable[[], Any]] = {
        "floor numpy A.sum()": A.sum,
        "raw numpy explicit 2*(A.T@(A@x-y))": lambda: 2 * (A.T @ (A @ x - y)),
        "numpy blocked single pass": lambda: _numpy_blocked(A, x2, y2),
        "xback numpy explicit": lambda: xback.lstsq_grad(A, x, y, method="explicit"),
        "xback numpy auto": lambda: xback.lstsq_grad(A, x, y),
        "xback numpy lstsq_grad_fn per call": lambda: g_np(x),
    }
    if A.shape[1] <= 1024:  # the trap: (2 * A.T) copies A (335 MB at d=2048 float64)
        c["raw numpy literal 2*A.T@(A@x-y)"] = lambda: 2 * A.T @ (A @ x - y)
    setup["numpy"] = _time_once(lambda: xback.lstsq_grad_fn(A, y))
    if torch is None:
        return c
    from xback.backends import torch as xt

    T, xv, yv = (torch.from_numpy(a) for a in (A, x, y))
    xv2, yv2 = xv[:, None], yv[:, None]

    def autograd() -> Any:
        xl = xv.detach().requires_grad_(True)
        return torch.autograd.grad((yv - T @ xl).pow(2).sum(), xl)[0]

    g_t = xback.lstsq_grad_fn(T, yv)
    c["floor torch A.sum()"] = T.sum
    c["raw torch explicit 2*(A.T@(A@x-y))"] = lambda: 2 * (T.mT @ (T @ xv - yv))
    c["raw torch autograd"] = autograd
    c["torch blocked single pass"] = lambda: xt._lstsq_grad_blocked(T, xv2, yv2)
    c["xback torch explicit"] = lambda: xback.lstsq_grad(T, xv, yv, method="explicit")
    c["xback torch autograd"] = lambda: xback.lstsq_grad(T, xv, yv, method="autograd")
    c["xback torch auto"] = lambda: xback.lstsq_grad(T, xv, yv)
    c["xback torch lstsq_grad_fn per call"] = lambda: g_t(xv)
    setup["torch"] = _time_once(lambda: xback.lstsq_grad_fn(T, yv))
    return c


def run_lstsq_grad(
    sizes: Sequence[int] = (256, 512, 1024, 2048),
    dtypes: Sequence[str] = ("float32", "float64"),
    repeat: int = 7,
    quick: bool = False,
) -> list[dict[str, Any]]:
    """The seed's lstsq-gradient experiment; one row per (d, dtype, candidate)."""
    if quick:
        sizes, repeat = [s for s in sizes if s <= 512] or [128], min(repeat, 3)
    rows: list[dict[str, Any]] = []
    rng = np.random.default_rng(0)
    for dtype in dtypes:
        for d in sizes:
            A = rng.standard_normal((10 * d, d)).astype(dtype)
            x = rng.standard_normal(d).astype(dtype)
            y = rng.standard_normal(10 * d).astype(dtype)
            setup: dict[str, float] = {}
            c = _lstsq_candidates(A, x, y, setup)
            times = _measure(c, repeat)
            new = _rows("lstsq_grad", d, dtype, times, [k for k in c if k.startswith("floor")])
            for r in new:
                if "lstsq_grad_fn" in r["candidate"]:
                    r["setup_s"] = setup[r["backend"]]
                    r["amortised_s"] = setup[r["backend"]] / REUSE_CALLS + r["median_s"]
            rows.extend(new)
            del A, x, y, c
    return rows


def _time_once(fn: Callable[[], Any]) -> float:
    fn()
    ts = []
    for _ in range(3):
        t = time.perf_counter()
        fn()
        ts.append(time.perf_counter() - t)
    return min(ts)


def _svd_candidates(A: Any) -> dict[str, Callable[[], Any]]:
    c: dict[str, Callable[[], Any]] = {
        "raw numpy np.linalg.svd": lambda: np.linalg.svd(A, full_matrices=False),
        "xback numpy svd": lambda: xback.svd(A, full_matrices=False),
        "xback numpy svd canonical_signs": lambda: xback.svd(
            A, full_matrices=False, canonical_signs=True
        ),
    }
    if torch is not None:
        T = torch.from_numpy(A)
        c["raw torch torch.linalg.svd"] = lambda: torch.linalg.svd(T, full_matrices=False)
        c["xback torch svd"] = lambda: xback.svd(T, full_matrices=False)
        c["xback torch svd canonical_signs"] = lambda: xback.svd(
            T, full_matrices=False, canonical_signs=True
        )
    return c


def run_svd(
    sizes: Sequence[int] = (256, 512, 1024),
    dtypes: Sequence[str] = ("float32", "float64"),
    repeat: int = 5,
    quick: bool = False,
) -> list[dict[str, Any]]:
    """svd of (10d, d), full_matrices=False: raw call against xback per backend."""
    if quick:
        sizes, repeat = [s for s in sizes if s <= 256] or [64], min(repeat, 3)
    rows: list[dict[str, Any]] = []
    rng = np.random.default_rng(1)
    for dtype in dtypes:
        for d in sizes:
            A = rng.standard_normal((10 * d, d)).astype(dtype)
            rows.extend(_rows("svd", d, dtype, _measure(_svd_candidates(A), repeat), []))
    return rows


def _print(rows: list[dict[str, Any]]) -> None:
    last = None
    for r in rows:
        key = (r["bench"], r["d"], r["dtype"])
        if key != last:
            print(f"\n== {r['bench']} d={r['d']} {r['dtype']} (A: {10 * r['d']} x {r['d']})")
            print(f"{'candidate':44s} {'median ms':>10s} {'x floor':>8s} {'x best raw':>10s}")
            last = key
        xf = "" if r["x_floor"] is None else f"{r['x_floor']:.2f}"
        xr = "" if r["x_best_raw"] is None else f"{r['x_best_raw']:.3f}"
        extra = ""
        if "setup_s" in r:
            extra = (
                f"  setup {r['setup_s'] * 1e3:.2f} ms, amortised {r['amortised_s'] * 1e3:.3f} ms"
            )
        print(f"{r['candidate']:44s} {r['median_s'] * 1e3:10.3f} {xf:>8s} {xr:>10s}{extra}")


def main(argv: Sequence[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024, 2048])
    p.add_argument("--svd-sizes", type=int, nargs="*", default=[256, 512, 1024])
    p.add_argument("--dtypes", nargs="+", default=["float32", "float64"])
    p.add_argument("--repeat", type=int, default=7)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--threads", type=int, default=None, help="limit BLAS/OpenMP and torch threads")
    a = p.parse_args(argv)
    if a.threads is not None:
        from threadpoolctl import threadpool_limits

        threadpool_limits(a.threads)
        if torch is not None:
            torch.set_num_threads(a.threads)
    if torch is not None:
        print(
            f"torch {torch.__version__}, {torch.get_num_threads()} threads; numpy {np.__version__}"
        )
    _print(run_lstsq_grad(a.sizes, a.dtypes, a.repeat, a.quick))
    if a.svd_sizes:
        _print(run_svd(a.svd_sizes, a.dtypes, max(3, a.repeat // 2), a.quick))


if __name__ == "__main__":
    main()
