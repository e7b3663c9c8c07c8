"""``overhead``: per-call cost of xback over the raw library call, on tiny inputs.

For every public xback function that exists in this build (``asarray``, ``to_numpy``,
``from_numpy``, ``sort``, ``argsort``, ``svd``, ``svdvals``, ``lstsq_grad``) and every
backend, three candidates run interleaved: the raw call, the xback call, and — when
array-api-compat is installed — ``array_namespace(x)`` followed by the namespace's call
(what a library author writes with array-api-compat). Inputs are tiny (16 elements, 8x4
matrices) so that the time is dispatch, not work.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

import xback
from xback.bench._common import sync_for, torch_for
from xback.bench._harness import BenchConfig, BenchResult, Candidate, Progress, measure

__all__ = ["FUNCTIONS", "run"]

FUNCTIONS = (
    "asarray",
    "to_numpy",
    "from_numpy",
    "sort",
    "argsort",
    "svd",
    "svdvals",
    "lstsq_grad",
)


def _compat() -> Callable[..., Any] | None:
    try:
        from array_api_compat import array_namespace
    except ImportError:
        return None
    return array_namespace


def _numpy_calls(
    n: int, dtype: str, xp_of: Callable[..., Any] | None
) -> dict[str, tuple[Callable[[], Any], Callable[[], Any] | None, Callable[..., Any]]]:
    """name -> (raw call, array-api-compat call or None, xback call given xback's function)."""
    rng = np.random.default_rng(0)
    a = rng.random(n).astype(dtype)
    M = rng.random((8, 4)).astype(dtype)
    x = rng.random(4).astype(dtype)
    y = rng.random(8).astype(dtype)
    out: dict[str, tuple[Callable[[], Any], Callable[[], Any] | None, Callable[..., Any]]] = {}
    c = xp_of
    out["asarray"] = (
        lambda: np.asarray(a),
        (lambda: c(a).asarray(a)) if c else None,
        lambda f: lambda: f(a),
    )
    out["to_numpy"] = (lambda: np.asarray(a), None, lambda f: lambda: f(a))
    out["from_numpy"] = (lambda: np.asarray(a), None, lambda f: lambda: f(a))
    out["sort"] = (
        lambda: np.sort(a, kind="stable"),
        (lambda: c(a).sort(a, stable=True)) if c else None,
        lambda f: lambda: f(a),
    )
    out["argsort"] = (
        lambda: np.argsort(a, kind="stable"),
        (lambda: c(a).argsort(a, stable=True)) if c else None,
        lambda f: lambda: f(a),
    )
    out["svd"] = (
        lambda: np.linalg.svd(M, full_matrices=False),
        (lambda: c(M).linalg.svd(M, full_matrices=False)) if c else None,
        lambda f: lambda: f(M, full_matrices=False),
    )
    out["svdvals"] = (
        lambda: np.linalg.svdvals(M),
        (lambda: c(M).linalg.svdvals(M)) if c else None,
        lambda f: lambda: f(M),
    )

    def compat_grad() -> Any:
        xp = c(M, x, y)  # type: ignore[misc]
        return 2 * (xp.matrix_transpose(M) @ (M @ x - y))

    out["lstsq_grad"] = (
        lambda: 2 * (M.T @ (M @ x - y)),
        compat_grad if c else None,
        lambda f: lambda: f(M, x, y),
    )
    return out


def _torch_calls(
    torch: Any, device: str, n: int, dtype: str, xp_of: Callable[..., Any] | None
) -> dict[str, tuple[Callable[[], Any], Callable[[], Any] | None, Callable[..., Any]]]:
    rng = np.random.default_rng(0)
    a = rng.random(n).astype(dtype)
    t = torch.from_numpy(a.copy()).to(device)
    M = torch.from_numpy(rng.random((8, 4)).astype(dtype)).to(device)
    x = torch.from_numpy(rng.random(4).astype(dtype)).to(device)
    y = torch.from_numpy(rng.random(8).astype(dtype)).to(device)
    tc = torch.from_numpy(a.copy())  # CPU tensor for the conversions
    c = xp_of
    out: dict[str, tuple[Callable[[], Any], Callable[[], Any] | None, Callable[..., Any]]] = {}
    out["asarray"] = (
        lambda: torch.asarray(t),
        (lambda: c(t).asarray(t)) if c else None,
        lambda f: lambda: f(t),
    )
    out["to_numpy"] = (tc.numpy, None, lambda f: lambda: f(tc))
    out["from_numpy"] = (
        lambda: torch.from_numpy(a),
        None,
        lambda f: lambda: f(a, backend="torch"),
    )
    out["sort"] = (
        lambda: torch.sort(t, stable=True).values,
        (lambda: c(t).sort(t, stable=True)) if c else None,
        lambda f: lambda: f(t),
    )
    out["argsort"] = (
        lambda: torch.argsort(t, stable=True),
        (lambda: c(t).argsort(t, stable=True)) if c else None,
        lambda f: lambda: f(t),
    )
    out["svd"] = (
        lambda: torch.linalg.svd(M, full_matrices=False),
        (lambda: c(M).linalg.svd(M, full_matrices=False)) if c else None,
        lambda f: lambda: f(M, full_matrices=False),
    )
    out["svdvals"] = (
        lambda: torch.linalg.svdvals(M),
        (lambda: c(M).linalg.svdvals(M)) if c else None,
        lambda f: lambda: f(M),
    )

    def compat_grad() -> Any:
        xp = c(M, x, y)  # type: ignore[misc]
        return 2 * (xp.matrix_transpose(M) @ (M @ x - y))

    out["lstsq_grad"] = (
        lambda: 2 * (M.mT @ (M @ x - y)),
        compat_grad if c else None,
        lambda f: lambda: f(M, x, y),
    )
    return out


def run(cfg: BenchConfig, progress: Progress | None = None) -> BenchResult:
    res = BenchResult(
        name="overhead",
        title="Per-call overhead on tiny inputs: xback and array-api-compat over the raw call",
        columns=["function", "backend", "candidate", "overhead_us"],
        x_key="function",
        x_label="function",
    )
    xp_of = _compat()
    if xp_of is None:
        res.notes.append("array-api-compat is not installed: its column is missing.")
    n = (cfg.sizes or [16])[0]
    dtype = (cfg.dtypes or ["float64"])[0]
    torch = torch_for(cfg)
    repeat = cfg.repeats(default_full=9, default_quick=3)
    for backend in cfg.backends:
        if backend == "numpy":
            calls = _numpy_calls(n, dtype, xp_of)
            sync = None
            dev = "cpu"
        else:
            calls = _torch_calls(torch, cfg.device, n, dtype, xp_of)
            sync = sync_for(torch, cfg.device)
            dev = cfg.device
        for name in FUNCTIONS:
            fn = getattr(xback, name)
            raw, compat, make = calls[name]
            cands = [
                Candidate("raw", raw, {"impl": "raw"}, sync),
                Candidate(f"xback.{name}", make(fn), {"impl": "xback"}, sync),
            ]
            if compat is not None:
                cands.append(Candidate("array-api-compat", compat, {"impl": "compat"}, sync))
            if progress is not None:
                progress.add(repeat * len(cands), f"overhead {backend} {name}")
            rows = measure(
                cands,
                repeat=repeat,
                sample_time=cfg.sample_time,
                progress=progress,
                base={"function": name, "backend": backend, "device": dev, "size": n,
                      "dtype": dtype},
                baseline="raw",
            )
            raw_med = rows[0]["median_s"]
            for r in rows:
                r["overhead_us"] = (r["median_s"] - raw_med) * 1e6
            res.rows.extend(rows)
            xb = rows[1]
            res.summary.append(
                {"name": f"{backend} {name}: xback overhead (us)", "value": xb["overhead_us"]}
            )
            if compat is not None:
                res.summary.append(
                    {
                        "name": f"{backend} {name}: array-api-compat overhead (us)",
                        "value": rows[2]["overhead_us"],
                    }
                )
    return res
