"""``route``: xback with routing on and off, against the faster of raw NumPy and raw torch.

For each operation, dtype and size, six candidates run interleaved in one table (in warm
blocks for the multi-threaded SVD and ``lstsq_grad`` on larger inputs, as ``xback tune``
times them: :func:`xback.bench._harness.warm_seconds`): the raw
NumPy call, the raw torch call (each with the guarantee xback gives: stable sort, thin SVD,
the explicit gradient), and xback on NumPy input and on torch input, routed and
``use(route=False)``. ``routed_to`` says where each routed candidate's call actually ran
(``"torch"``, ``"numpy"``, ``"fused"``, or ``"own"``: its input's own library, because the
table routes nothing there or a check kept it home), found by running it once with
:func:`xback.bench.programs.routes_taken`. ``vs_best`` is each xback median over the faster
raw median: where a route is taken and the work exceeds 100 µs, the target is <= 1.05 (a
routed call is as fast as the faster library). ``over_own_us`` is xback's median minus the
raw call of the input's own library (target: <= 0.5 µs below 100 µs, routed or not: what
the routing checks cost).
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

import xback
from xback import _routing
from xback.bench._harness import (
    BenchConfig,
    BenchResult,
    Candidate,
    Progress,
    measure,
    warm_seconds,
)
from xback.bench.programs import routes_taken

__all__ = ["DEFAULT_SIZES", "QUICK_SIZES", "run"]

#: per case: sizes (elements for sorts, d for the (10d, d) matrices)
DEFAULT_SIZES: dict[str, list[int]] = {
    "sort": [1_000, 100_000, 1_000_000],
    "argsort": [1_000, 100_000, 1_000_000],
    "svd": [16, 64, 128],
    "svdvals": [16, 64, 128],
    "lstsq_grad": [64, 256, 1024],
}
QUICK_SIZES: dict[str, list[int]] = {
    "sort": [1_000, 100_000],
    "argsort": [1_000, 100_000],
    "svd": [8, 32],
    "svdvals": [8, 32],
    "lstsq_grad": [16, 128],
}
TARGET_RATIO = 1.05
TARGET_OVER_US = 0.5
LARGE_S = 100e-6


def _raw(op: str, torch: Any) -> tuple[Callable[..., Any], Callable[..., Any]]:
    """(raw NumPy, raw torch) callables with xback's guarantee, for NaN-free input."""
    if op == "sort":
        return (lambda a: np.sort(a, kind="stable"),
                lambda t: torch.sort(t, stable=True).values)
    if op == "argsort":
        return (lambda a: np.argsort(a, kind="stable"),
                lambda t: torch.argsort(t, stable=True))
    if op == "svd":
        return (lambda a: np.linalg.svd(a, full_matrices=False),
                lambda t: torch.linalg.svd(t, full_matrices=False))
    if op == "svdvals":
        return (lambda a: np.linalg.svd(a, compute_uv=False), torch.linalg.svdvals)
    return (lambda A, x, y: 2 * (A.T @ (A @ x - y)),
            lambda A, x, y: 2 * (A.mT @ (A @ x - y)))


def _xback(op: str) -> Callable[..., Any]:
    if op == "svd":
        return lambda a: xback.svd(a, full_matrices=False)
    fn: Callable[..., Any] = getattr(xback, op)
    return fn


def _unrouted(f: Callable[..., Any], *args: Any) -> Callable[[], Any]:
    """``f(*args)`` under ``use(route=False)``, entered once (in a private context) so that
    the per-call cost is a context switch (~0.1 µs), not a ``with`` block."""
    ctx = contextvars.copy_context()
    ctx.run(xback.use(route=False).__enter__)
    return partial(ctx.run, f, *args)


def _data(op: str, size: int, dtype: str, rng: np.random.Generator) -> list[Any]:
    if op in ("sort", "argsort"):
        if dtype.startswith("int"):
            return [rng.integers(-(10**9), 10**9, size=size, dtype=dtype)]
        return [rng.standard_normal(size).astype(dtype)]
    A = rng.standard_normal((10 * size, size)).astype(dtype)
    if op in ("svd", "svdvals"):
        return [A]
    return [A, rng.standard_normal(size).astype(dtype),
            rng.standard_normal(10 * size).astype(dtype)]


def run(cfg: BenchConfig, progress: Progress | None = None) -> BenchResult:
    res = BenchResult(
        name="route",
        title="xback routed and unrouted against the faster raw library (CPU)",
        columns=["op", "size", "dtype", "input", "impl", "routed_to", "vs_best", "over_own_us"],
        x_key="size",
        x_label="elements (sorts) or d (A is (10d, d))",
    )
    if "torch" not in cfg.backends or "numpy" not in cfg.backends or cfg.device != "cpu":
        res.notes.append("routing compares NumPy and torch on the CPU: run with both backends "
                         "and --device cpu")
        return res
    import torch

    rng = np.random.default_rng(0)
    repeat = cfg.repeats(default_full=7, default_quick=3)
    table = _routing.describe()
    res.notes.append(
        f"routing table: {table['source']} ({table['path']}); routing "
        f"{'on' if table['enabled'] else 'off'} by default"
    )
    for op, sizes in (QUICK_SIZES if cfg.quick else DEFAULT_SIZES).items():
        dtypes = list(cfg.dtypes or ["float32", "float64"])
        if op in ("sort", "argsort") and cfg.dtypes is None:
            dtypes.append("int64")
        for dtype in dtypes:
            for size in cfg.sizes or sizes:
                data = _data(op, size, dtype, rng)
                tdata = [torch.from_numpy(a.copy()) for a in data]
                raw_np, raw_t = _raw(op, torch)
                xf = _xback(op)
                went = {lib: routes_taken(partial(xf, *d), lib)
                        for lib, d in (("numpy", data), ("torch", tdata))}
                cands = [
                    Candidate("raw numpy", partial(raw_np, *data),
                              {"input": "numpy", "impl": "raw"}),
                    Candidate("raw torch", partial(raw_t, *tdata),
                              {"input": "torch", "impl": "raw"}),
                    Candidate("xback(numpy)", partial(xf, *data),
                              {"input": "numpy", "impl": "routed"}),
                    Candidate("xback(numpy) route=False", _unrouted(xf, *data),
                              {"input": "numpy", "impl": "unrouted"}),
                    Candidate("xback(torch)", partial(xf, *tdata),
                              {"input": "torch", "impl": "routed"}),
                    Candidate("xback(torch) route=False", _unrouted(xf, *tdata),
                              {"input": "torch", "impl": "unrouted"}),
                ]
                if progress is not None:
                    progress.add(repeat * len(cands), f"route {op} {size} {dtype}")
                rows = measure(cands, repeat=repeat, sample_time=cfg.sample_time,
                               progress=progress, base={"op": op, "size": size, "dtype": dtype},
                               warm_s=warm_seconds(op, data[0].nbytes))
                raw = {r["input"]: r["median_s"] for r in rows if r["impl"] == "raw"}
                best = min(raw.values())
                for r in rows:
                    if r["impl"] == "raw":
                        continue
                    r["vs_best"] = r["median_s"] / best
                    r["over_own_us"] = (r["median_s"] - raw[r["input"]]) * 1e6
                    if r["impl"] != "routed":
                        continue
                    r["routed_to"] = ", ".join(sorted(went[r["input"]])) or "own"
                    large = best >= LARGE_S
                    if large and r["routed_to"] == "own":
                        r["target_met"] = None  # no route taken: the per-call target is moot
                        continue
                    met = (r["vs_best"] <= TARGET_RATIO if large
                           else r["over_own_us"] <= TARGET_OVER_US)
                    r["target_met"] = met
                    res.summary.append({
                        "name": f"{op} {size} {dtype} {r['input']} input"
                        + (f", routed to {r['routed_to']}: xback / best raw" if large
                           else ": µs over own raw")
                        + ("" if met else (
                            f"  (missed the target <= {TARGET_RATIO}x)" if large
                            else f"  (missed the target <= +{TARGET_OVER_US} µs)")),
                        "value": r["vs_best"] if large else r["over_own_us"],
                    })
                res.rows.extend(rows)
    return res
