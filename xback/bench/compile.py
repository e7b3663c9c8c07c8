"""``compile``: a small model-like function written with xback and with raw torch, both
compiled by ``torch.compile(fullgraph=True)``, the eager versions timed beside them.

The function: a sort-based top-k of a vector, the singular values of a small matrix, the
least-squares gradient of a tall system, and some arithmetic joining them into one number
(what a loss or a feature layer does). The candidates are interleaved round-robin in one run:
compiled xback, compiled raw torch, compiled raw torch with xback's contract written by hand
(:func:`model_raw_contract`: NaN last in the descending sort, the traced finiteness rule of
``svdvals``), eager xback, eager raw torch. The summary reports compiled xback / compiled raw
(the target is at most 1.02: xback adds nothing to a compiled graph), compiled xback /
compiled raw with the same contract (what the dispatch layer adds, apart from the contract's
own work), eager xback / eager raw, and the graph breaks that ``torch._dynamo.explain``
counts in each.

The compiler is inductor (torch's default); ``--quick`` uses Dynamo's ``"eager"`` backend
(the traced graph run by the eager kernels: the graph is the same, code generation is
skipped), which keeps a smoke run to a few seconds. Only the torch backend is timed (the
benchmark is about ``torch.compile``); ``--device`` chooses the device.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from xback.bench._common import sync_for
from xback.bench._harness import BenchConfig, BenchResult, Candidate, Progress, measure

__all__ = [
    "DEFAULT_SIZES",
    "QUICK_SIZES",
    "TOP_K",
    "model_raw",
    "model_raw_contract",
    "model_xback",
    "run",
]

#: n: the vector has n elements, the matrix is (n // 8, n // 16), A is (n, n // 16)
DEFAULT_SIZES = [1024, 4096]
QUICK_SIZES = [256]
TOP_K = 8


def model_xback(v: Any, M: Any, A: Any, x: Any, y: Any) -> Any:
    """The model written with xback."""
    import xback

    top = xback.sort(v, descending=True)[:TOP_K]
    s = xback.svdvals(M)
    g = xback.lstsq_grad(A, x, y)
    return top.sum() * 0.5 + s[0] / (s[-1] + 1.0) - (g * g).sum().sqrt() * 1e-3


def model_raw(v: Any, M: Any, A: Any, x: Any, y: Any) -> Any:
    """The same model written with raw torch calls."""
    import torch

    top = torch.sort(v, descending=True, stable=True)[0][:TOP_K]
    s = torch.linalg.svdvals(M)
    g = 2 * (A.mT @ (A @ x - y))
    return top.sum() * 0.5 + s[0] / (s[-1] + 1.0) - (g * g).sum().sqrt() * 1e-3


def model_raw_contract(v: Any, M: Any, A: Any, x: Any, y: Any) -> Any:
    """The same model in raw torch with xback's contract written by hand: the descending sort
    puts NaN last (an ascending sort of ``-v``: ``torch.sort(descending=True)`` puts NaN
    first), and ``svdvals`` follows xback's traced finiteness rule (NaN singular values for a
    matrix holding NaN or inf, the kernel never seeing them). What xback itself adds to a
    compiled graph is the difference between this and ``model_xback``."""
    import torch

    top = -torch.sort(-v, stable=True)[0][:TOP_K]
    ok = torch.isfinite(M).all()
    s = torch.linalg.svdvals(torch.where(ok, M, torch.zeros_like(M)))
    s = torch.where(ok, s, torch.full_like(s, float("nan")))
    g = 2 * (A.mT @ (A @ x - y))
    return top.sum() * 0.5 + s[0] / (s[-1] + 1.0) - (g * g).sum().sqrt() * 1e-3


def graph_breaks(fn: Callable[..., Any], *args: Any) -> int:
    """Graph breaks of ``fn(*args)`` counted by ``torch._dynamo.explain``."""
    import torch._dynamo

    return int(torch._dynamo.explain(fn)(*args).graph_break_count)


def run(cfg: BenchConfig, progress: Progress | None = None) -> BenchResult:
    res = BenchResult(
        name="compile",
        title="torch.compile(fullgraph=True) of a model-like function: xback against raw torch",
        columns=["n", "dtype", "compiler", "impl", "mode", "vs_raw", "vs_contract"],
        x_key="n",
        x_label="n (vector length; A is (n, n/16))",
    )
    if "torch" not in cfg.backends:
        res.notes.append("compile: times torch.compile only; add --backends torch")
        return res
    import torch
    import torch._dynamo

    compiler = "eager" if cfg.quick else "inductor"
    sizes = cfg.sizes or (QUICK_SIZES if cfg.quick else DEFAULT_SIZES)
    dtypes = cfg.dtypes or ["float32"]
    rng = np.random.default_rng(0)
    sync = sync_for(torch, cfg.device)
    for dtype in dtypes:
        for n in sizes:
            k = max(2, n // 16)

            def t(*shape: int, dtype: str = dtype) -> Any:
                a = rng.standard_normal(shape).astype(dtype)
                return torch.from_numpy(a).to(cfg.device)

            args = (t(n), t(max(2, n // 8), k), t(n, k), t(k), t(n))
            model_xback(*args)  # xback's caches filled first: no re-trace while timed
            # counted before the timed functions are compiled: torch._dynamo.explain leaves
            # compiled functions to recompile on their next calls, which made the
            # calibration give compiled xback one call per sample (docs/benchmarks.md)
            breaks = {"xback": graph_breaks(model_xback, *args),
                      "raw": graph_breaks(model_raw, *args),
                      "raw-contract": graph_breaks(model_raw_contract, *args)}  # fmt: skip
            torch._dynamo.reset()
            cx = torch.compile(model_xback, fullgraph=True, backend=compiler)
            cr = torch.compile(model_raw, fullgraph=True, backend=compiler)
            cc = torch.compile(model_raw_contract, fullgraph=True, backend=compiler)
            want = model_raw(*args)
            for f in (cx, cr, cc):  # compiles; checks the answers agree
                for _ in range(3):
                    torch.testing.assert_close(f(*args), want, rtol=1e-4, atol=1e-4)
            cands = [
                Candidate("compiled xback", partial(cx, *args),
                          {"impl": "xback", "mode": "compiled"}, sync),
                Candidate("compiled raw torch", partial(cr, *args),
                          {"impl": "raw", "mode": "compiled"}, sync),
                Candidate("compiled raw torch, xback's contract", partial(cc, *args),
                          {"impl": "raw-contract", "mode": "compiled"}, sync),
                Candidate("eager xback", partial(model_xback, *args),
                          {"impl": "xback", "mode": "eager"}, sync),
                Candidate("eager raw torch", partial(model_raw, *args),
                          {"impl": "raw", "mode": "eager"}, sync),
            ]  # fmt: skip
            repeat = cfg.repeats(default_full=15, default_quick=3)
            if progress is not None:
                progress.add(repeat * len(cands), f"compile n={n} {dtype}")
            rows = measure(
                cands, repeat=repeat, sample_time=cfg.sample_time, progress=progress,
                base={"n": n, "dtype": dtype, "device": cfg.device, "compiler": compiler},
            )  # fmt: skip
            meds = {(r["impl"], r["mode"]): r["median_s"] for r in rows}
            contract = meds[("raw-contract", "compiled")]
            for r in rows:
                ref = meds[("raw", r["mode"])]
                r["vs_raw"] = r["median_s"] / ref if r["impl"] != "raw" and ref else None
                r["vs_contract"] = (r["median_s"] / contract
                                    if r["impl"] == "xback" and r["mode"] == "compiled"
                                    else None)  # fmt: skip
                r["graph_breaks"] = breaks[r["impl"]]
            res.rows.extend(rows)
            for mode in ("compiled", "eager"):
                res.summary.append({
                    "name": f"compile n={n} {dtype} ({compiler}): {mode} xback / {mode} raw",
                    "value": meds[("xback", mode)] / meds[("raw", mode)],
                })  # fmt: skip
            res.summary.append({
                "name": f"compile n={n} {dtype} ({compiler}): compiled xback / compiled raw "
                        f"with xback's contract",
                "value": meds[("xback", "compiled")] / contract,
            })  # fmt: skip
            res.summary.append({
                "name": f"compile n={n} {dtype}: compiled raw / eager raw",
                "value": meds[("raw", "compiled")] / meds[("raw", "eager")],
            })  # fmt: skip
            for impl, count in breaks.items():
                res.summary.append(
                    {"name": f"compile n={n} {dtype}: graph breaks ({impl})", "value": count}
                )
    return res
