"""``lstsq-grad``: the seed's experiment — the gradient of ||y - A x||² with A of shape (10d, d).

Candidates, interleaved in one table per (d, dtype):

* the memory-bandwidth floor: reading A once (``A.sum()`` on NumPy and on torch; the faster
  of the two is the floor every other time is divided by);
* raw NumPy explicit ``2 * (A.T @ (A @ x - y))``, raw torch explicit, raw torch autograd
  (``torch.autograd.grad`` of the loss);
* ``xback.lstsq_grad`` per backend and method (``"explicit"``, ``"autograd"``, ``"auto"``);
* the reusable form ``g = xback.lstsq_grad_fn(A, y)``, ``g(x)`` per call (its one-off setup,
  forming AᴴA and Aᴴy, is timed separately and reported amortised over 100 calls).
"""

from __future__ import annotations

from functools import partial
from typing import Any

import numpy as np

import xback
from xback.bench._common import np_dtype, sync_for, torch_for
from xback.bench._harness import (
    BenchConfig,
    BenchResult,
    Candidate,
    Progress,
    measure,
    time_once,
    warm_seconds,
)

__all__ = ["DEFAULT_SIZES", "QUICK_SIZES", "run"]

DEFAULT_SIZES = [256, 512, 1024, 2048]
QUICK_SIZES = [32, 128]
AMORTISE_CALLS = 100


def _candidates(
    cfg: BenchConfig, torch: Any, A: np.ndarray[Any, Any], x: np.ndarray[Any, Any],
    y: np.ndarray[Any, Any], setups: dict[str, float],
) -> list[Candidate]:
    grad = xback.lstsq_grad
    grad_fn = xback.lstsq_grad_fn
    cands: list[Candidate] = []
    if "numpy" in cfg.backends:
        cands.append(Candidate("floor: read A once (NumPy A.sum())", A.sum,
                               {"backend": "numpy", "impl": "floor"}))
    if torch is not None:
        T = torch.from_numpy(A).to(cfg.device)
        xt = torch.from_numpy(x).to(cfg.device)
        yt = torch.from_numpy(y).to(cfg.device)
        s = sync_for(torch, cfg.device)
        cands.append(Candidate("floor: read A once (torch A.sum())", T.sum,
                               {"backend": "torch", "impl": "floor"}, s))
    if "numpy" in cfg.backends:
        cands.append(Candidate("raw NumPy explicit", lambda: 2 * (A.T @ (A @ x - y)),
                               {"backend": "numpy", "impl": "raw", "method": "explicit"}))
    if torch is not None:
        cands.append(Candidate("raw torch explicit", lambda: 2 * (T.mT @ (T @ xt - yt)),
                               {"backend": "torch", "impl": "raw", "method": "explicit"}, s))

        def autograd() -> Any:
            xv = xt.detach().requires_grad_(True)
            loss = (yt - T @ xv).pow(2).sum()
            return torch.autograd.grad(loss, xv)[0]

        cands.append(Candidate("raw torch autograd", autograd,
                               {"backend": "torch", "impl": "raw", "method": "autograd"}, s))
    if "numpy" in cfg.backends:
        cands.extend(
            Candidate(f"xback numpy {m}", partial(grad, A, x, y, method=m),
                      {"backend": "numpy", "impl": "xback", "method": m})
            for m in ("explicit", "auto")
        )
    if torch is not None:
        cands.extend(
            Candidate(f"xback torch {m}", partial(grad, T, xt, yt, method=m),
                      {"backend": "torch", "impl": "xback", "method": m}, s)
            for m in ("explicit", "autograd", "auto")
        )
    if "numpy" in cfg.backends:
        setups["numpy"] = time_once(lambda: grad_fn(A, y))
        g_np = grad_fn(A, y)
        cands.append(Candidate("xback lstsq_grad_fn numpy, per call", lambda: g_np(x),
                               {"backend": "numpy", "impl": "reusable", "method": "fn"}))
    if torch is not None:
        setups["torch"] = time_once(lambda: (grad_fn(T, yt), s() if s else None))
        g_t = grad_fn(T, yt)
        cands.append(Candidate("xback lstsq_grad_fn torch, per call", lambda: g_t(xt),
                               {"backend": "torch", "impl": "reusable", "method": "fn"}, s))
    return cands


def run(cfg: BenchConfig, progress: Progress | None = None) -> BenchResult:
    res = BenchResult(
        name="lstsq-grad",
        title="Gradient of ||y - A x||², A of shape (10d, d): time and multiple of reading A once",
        columns=["d", "dtype", "candidate", "x_floor"],
        x_key="d",
        x_label="d (A has shape (10d, d))",
    )
    torch = torch_for(cfg)
    sizes = cfg.sizes or (QUICK_SIZES if cfg.quick else DEFAULT_SIZES)
    dtypes = cfg.dtypes or (["float64"] if cfg.quick else ["float64", "float32"])
    rng = np.random.default_rng(0)
    for dtype in dtypes:
        dt = np_dtype(dtype)
        for d in sizes:
            A = rng.standard_normal((10 * d, d)).astype(dt)
            x = rng.standard_normal(d).astype(dt)
            y = rng.standard_normal(10 * d).astype(dt)
            setups: dict[str, float] = {}
            cands = _candidates(cfg, torch, A, x, y, setups)
            repeat = cfg.repeats(default_full=7, default_quick=3)
            if progress is not None:
                progress.add(repeat * len(cands), f"lstsq-grad d={d} {dtype}")
            rows = measure(
                cands, repeat=repeat, sample_time=cfg.sample_time, progress=progress,
                base={"d": d, "shape": [10 * d, d], "dtype": dtype, "device": cfg.device,
                      "A_bytes": int(A.nbytes)},
                warm_s=warm_seconds("lstsq_grad", int(A.nbytes)),
            )
            floors = [r["median_s"] for r in rows if r["impl"] == "floor"]
            floor = min(floors) if floors else None
            for r in rows:
                r["x_floor"] = r["median_s"] / floor if floor else None
            for r in rows:
                if r["impl"] == "reusable":
                    setup = setups.get(r["backend"])
                    r["setup_s"] = setup
                    if setup is not None:
                        r["amortised_s"] = setup / AMORTISE_CALLS + r["median_s"]
            res.rows.extend(rows)
            _summarise(res, rows, d, dtype, floor, int(A.nbytes))
            del A, x, y, cands
    res.notes.append(
        f"lstsq_grad_fn: the table shows the per-call time of g(x); 'amortised_s' adds the "
        f"one-off setup (AᴴA, Aᴴy) spread over {AMORTISE_CALLS} calls."
    )
    return res


def _summarise(
    res: BenchResult, rows: list[dict[str, Any]], d: int, dtype: str, floor: float | None,
    nbytes: int,
) -> None:
    med = {r["candidate"]: r["median_s"] for r in rows}
    tag = f"d={d} {dtype}"
    if floor:
        res.summary.append({"name": f"{tag}: read bandwidth (GB/s, A.nbytes / floor)",
                            "value": nbytes / floor / 1e9})
    npe = med.get("raw NumPy explicit")
    for other in ("raw torch explicit", "raw torch autograd"):
        if npe and med.get(other):
            res.summary.append({"name": f"{tag}: raw NumPy explicit / {other}",
                                "value": npe / med[other]})
    for backend in ("numpy", "torch"):
        raws = [r["median_s"] for r in rows if r["backend"] == backend and r["impl"] == "raw"]
        best_raw = min(raws) if raws else None
        for r in rows:
            if r["backend"] != backend or not best_raw:
                continue
            if r["impl"] == "xback":
                res.summary.append({"name": f"{tag}: {r['candidate']} / best raw {backend}",
                                    "value": r["median_s"] / best_raw})
            elif r["impl"] == "reusable":
                res.summary.append({"name": f"{tag}: best raw {backend} / {r['candidate']}",
                                    "value": best_raw / r["median_s"]})
                if r.get("amortised_s"):
                    res.summary.append({
                        "name": f"{tag}: best raw {backend} / lstsq_grad_fn {backend} amortised "
                                f"over {AMORTISE_CALLS} calls",
                        "value": best_raw / r["amortised_s"],
                    })
