"""``sort``: ``sort``/``argsort``, ascending and descending, stable and not, per backend,
xback against the raw call that gives the same guarantee.

Raw baselines: NumPy ``np.sort``/``np.argsort`` with ``kind="stable"`` (``"quicksort"`` when
not stable); descending on NumPy < 2.5 (no ``descending=``) is the usual idiom on negated
data, ``-np.sort(-a)`` / ``np.argsort(-a)``, which is what callers write today (and which is
wrong for NaN and unsigned integers — xback is not). torch: ``torch.sort``/``torch.argsort``
with ``descending=`` and ``stable=``.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

import xback
from xback.bench._common import np_dtype, pair_ratios, sync_for, torch_for
from xback.bench._harness import BenchConfig, BenchResult, Candidate, Progress, measure

__all__ = ["DEFAULT_SIZES", "QUICK_SIZES", "run"]

DEFAULT_SIZES = [10**3, 10**4, 10**5, 10**6]
QUICK_SIZES = [10**3, 10**5]

_NUMPY_HAS_DESCENDING = "descending" in (np.sort.__doc__ or "")


def _raw_numpy(op: str, desc: bool, stable: bool, a: np.ndarray[Any, Any]) -> Callable[[], Any]:
    kind: Any = "stable" if stable else "quicksort"
    if desc and _NUMPY_HAS_DESCENDING:  # pragma: no cover - NumPy >= 2.5
        f: Any = np.sort if op == "sort" else np.argsort
        return lambda: f(a, kind=kind, descending=True)
    if op == "sort":
        if desc:
            return lambda: -np.sort(-a, kind=kind)
        return lambda: np.sort(a, kind=kind)
    if desc:
        return lambda: np.argsort(-a, kind=kind)
    return lambda: np.argsort(a, kind=kind)


def _raw_torch(torch: Any, op: str, desc: bool, stable: bool, t: Any) -> Callable[[], Any]:
    if op == "sort":
        return lambda: torch.sort(t, descending=desc, stable=stable).values
    return lambda: torch.argsort(t, descending=desc, stable=stable)


def run(cfg: BenchConfig, progress: Progress | None = None) -> BenchResult:
    res = BenchResult(
        name="sort",
        title="sort / argsort: xback against the raw call with the same guarantee",
        columns=["op", "size", "dtype", "backend", "order", "stable", "impl", "vs_raw"],
        x_key="size",
        x_label="elements",
    )
    torch = torch_for(cfg)
    sizes = cfg.sizes or (QUICK_SIZES if cfg.quick else DEFAULT_SIZES)
    dtypes = cfg.dtypes or ["float64"]
    xs = {"sort": xback.sort, "argsort": xback.argsort}
    rng = np.random.default_rng(0)
    for dtype in dtypes:
        for n in sizes:
            a = rng.standard_normal(n).astype(np_dtype(dtype))
            t = torch.from_numpy(a.copy()).to(cfg.device) if torch is not None else None
            sync = sync_for(torch, cfg.device)
            repeat = cfg.repeats(default_full=7 if n < 10**7 else 3)
            for op in ("sort", "argsort"):
                cands: list[Candidate] = []
                for backend in cfg.backends:
                    for desc in (False, True):
                        for stable in (True, False):
                            params = {
                                "backend": backend,
                                "order": "desc" if desc else "asc",
                                "stable": stable,
                            }
                            label = f"{backend} {params['order']} {'stable' if stable else 'any'}"
                            x: Any
                            if backend == "numpy":
                                raw, x, s = _raw_numpy(op, desc, stable, a), a, None
                            else:
                                raw, x, s = _raw_torch(torch, op, desc, stable, t), t, sync
                            cands.append(
                                Candidate(f"raw {label}", raw, {**params, "impl": "raw"}, s)
                            )
                            f = xs[op]
                            cands.append(
                                Candidate(
                                    f"xback {label}",
                                    partial(f, x, descending=desc, stable=stable),
                                    {**params, "impl": "xback"},
                                    s,
                                )
                            )
                if progress is not None:
                    progress.add(repeat * len(cands), f"sort {op} n={n:.0e} {dtype}")
                rows = measure(
                    cands,
                    repeat=repeat,
                    sample_time=cfg.sample_time,
                    progress=progress,
                    base={"op": op, "size": n, "dtype": dtype,
                          "device": cfg.device},
                )
                pair_ratios(rows, ("backend", "order", "stable"))
                res.rows.extend(rows)
                _summarise(res, rows, op, n, dtype, cfg.backends)
            del a, t
    return res


def _summarise(
    res: BenchResult, rows: list[dict[str, Any]], op: str, n: int, dtype: str, backends: list[str]
) -> None:
    def med(backend: str, order: str, stable: bool, impl: str) -> float | None:
        for r in rows:
            if (r["backend"], r["order"], r["stable"], r["impl"]) == (backend, order, stable, impl):
                return float(r["median_s"])
        return None

    if "numpy" in backends and "torch" in backends:
        npt = med("numpy", "asc", True, "raw")
        tt = med("torch", "asc", True, "raw")
        if npt and tt:
            res.summary.append(
                {"name": f"{op} n={n} {dtype}: raw NumPy / raw torch (asc, stable)",
                 "value": npt / tt}
            )
    for backend in backends:
        asc = med(backend, "asc", True, "xback")
        desc = med(backend, "desc", True, "xback")
        if asc and desc:
            res.summary.append(
                {"name": f"{op} n={n} {dtype} {backend}: xback desc / asc (stable)",
                 "value": desc / asc}
            )
