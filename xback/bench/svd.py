"""``svd``: thin SVD (``full_matrices=False``) of the seed's (10d, d) matrices, xback against
the raw call on each backend (``np.linalg.svd``, ``torch.linalg.svd``)."""

from __future__ import annotations

from functools import partial

import numpy as np

import xback
from xback.bench._common import np_dtype, pair_ratios, sync_for, torch_for
from xback.bench._harness import (
    BenchConfig,
    BenchResult,
    Candidate,
    Progress,
    measure,
    warm_seconds,
)

__all__ = ["DEFAULT_SIZES", "QUICK_SIZES", "run"]

DEFAULT_SIZES = [16, 64, 256]
QUICK_SIZES = [8, 32]


def run(cfg: BenchConfig, progress: Progress | None = None) -> BenchResult:
    res = BenchResult(
        name="svd",
        title="svd of A (10d, d), full_matrices=False: xback against the raw call",
        columns=["d", "dtype", "backend", "impl", "vs_raw"],
        x_key="d",
        x_label="d (A has shape (10d, d))",
    )
    torch = torch_for(cfg)
    svd = xback.svd
    sizes = cfg.sizes or (QUICK_SIZES if cfg.quick else DEFAULT_SIZES)
    dtypes = cfg.dtypes or ["float64"]
    rng = np.random.default_rng(0)
    for dtype in dtypes:
        for d in sizes:
            A = rng.standard_normal((10 * d, d)).astype(np_dtype(dtype))
            cands: list[Candidate] = []
            for backend in cfg.backends:
                if backend == "numpy":
                    cands.append(Candidate(
                        "np.linalg.svd", partial(np.linalg.svd, A, full_matrices=False),
                        {"backend": "numpy", "impl": "raw"}))
                    cands.append(Candidate(
                        "xback.svd (numpy)", partial(svd, A, full_matrices=False),
                        {"backend": "numpy", "impl": "xback"}))
                else:
                    T = torch.from_numpy(A.copy()).to(cfg.device)
                    s = sync_for(torch, cfg.device)
                    cands.append(Candidate(
                        "torch.linalg.svd",
                        partial(torch.linalg.svd, T, full_matrices=False),
                        {"backend": "torch", "impl": "raw"}, s))
                    cands.append(Candidate(
                        "xback.svd (torch)", partial(svd, T, full_matrices=False),
                        {"backend": "torch", "impl": "xback"}, s))
            repeat = cfg.repeats(default_full=7, default_quick=3)
            if progress is not None:
                progress.add(repeat * len(cands), f"svd d={d} {dtype}")
            rows = measure(
                cands, repeat=repeat, sample_time=cfg.sample_time, progress=progress,
                base={"d": d, "shape": [10 * d, d], "dtype": dtype, "device": cfg.device},
                warm_s=warm_seconds("svd", 10 * d * d * np.dtype(dtype).itemsize),
            )
            pair_ratios(rows, ("backend",))
            res.rows.extend(rows)
            meds = {(r["backend"], r["impl"]): r["median_s"] for r in rows}
            if ("numpy", "raw") in meds and ("torch", "raw") in meds:
                res.summary.append({
                    "name": f"svd d={d} {dtype}: raw NumPy / raw torch",
                    "value": meds[("numpy", "raw")] / meds[("torch", "raw")],
                })
            for r in rows:
                if r.get("vs_raw") is not None:
                    res.summary.append({
                        "name": f"svd d={d} {dtype} {r['backend']}: xback / raw",
                        "value": r["vs_raw"],
                    })
    return res
