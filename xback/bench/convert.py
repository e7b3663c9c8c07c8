"""``convert``: NumPy <-> torch conversion time against array size.

Zero-copy (``xback.to_numpy``, ``xback.from_numpy(..., backend="torch")`` and the raw
``Tensor.numpy``/``torch.from_numpy``) against copying conversions (``np.array(t)``,
``torch.tensor(a)``) for 1e2 .. 1e8 elements. Zero-copy must be flat in the size; the ratio
copy / zero-copy grows with it.
"""

from __future__ import annotations

from functools import partial

import numpy as np

import xback
from xback.bench._common import np_dtype, torch_for
from xback.bench._harness import BenchConfig, BenchResult, Candidate, Progress, measure

__all__ = ["DEFAULT_SIZES", "QUICK_SIZES", "run"]

DEFAULT_SIZES = [10**k for k in range(2, 9)]
QUICK_SIZES = [10**2, 10**4, 10**6]


def run(cfg: BenchConfig, progress: Progress | None = None) -> BenchResult:
    res = BenchResult(
        name="convert",
        title="NumPy <-> torch conversion: zero-copy against copy",
        columns=["direction", "size", "dtype", "candidate", "copies"],
        x_key="size",
        x_label="elements",
    )
    torch = torch_for(cfg)
    if torch is None:
        res.notes.append("convert needs the torch backend (--backends torch): nothing measured.")
        return res
    if cfg.device != "cpu":
        res.notes.append(
            f"convert measures CPU conversion (zero-copy exists only on the CPU); "
            f"--device {cfg.device} is ignored here."
        )
    sizes = cfg.sizes or (QUICK_SIZES if cfg.quick else DEFAULT_SIZES)
    dtypes = cfg.dtypes or ["float64"]
    rng = np.random.default_rng(0)
    for dtype in dtypes:
        dt = np_dtype(dtype)
        for n in sizes:
            a = rng.random(n).astype(dt, copy=False)
            t = torch.from_numpy(a.copy())
            base = {"size": n, "dtype": dtype}
            repeat = cfg.repeats(default_full=7 if n < 10**8 else 5)
            tables: list[tuple[str, list[Candidate], str]] = []
            to_np = [
                Candidate(
                    "xback.to_numpy(t)",
                    partial(xback.to_numpy, t),
                    {"impl": "xback", "copies": False},
                ),
                Candidate("t.numpy()", t.numpy, {"impl": "raw", "copies": False}),
                Candidate("np.array(t)", partial(np.array, t), {"impl": "copy", "copies": True}),
            ]
            tables.append(("torch -> numpy", to_np, "np.array(t)"))
            to_t = [
                Candidate(
                    'xback.from_numpy(a, backend="torch")',
                    partial(xback.from_numpy, a, backend="torch"),
                    {"impl": "xback", "copies": False},
                ),
                Candidate(
                    "torch.from_numpy(a)",
                    partial(torch.from_numpy, a),
                    {"impl": "raw", "copies": False},
                ),
                Candidate(
                    "torch.tensor(a)", partial(torch.tensor, a), {"impl": "copy", "copies": True}
                ),
            ]
            tables.append(("numpy -> torch", to_t, "torch.tensor(a)"))
            for direction, cands, baseline in tables:
                if progress is not None:
                    progress.add(repeat * len(cands), f"convert {direction} n={n:.0e}")
                rows = measure(
                    cands,
                    repeat=repeat,
                    sample_time=cfg.sample_time,
                    progress=progress,
                    base={"direction": direction, **base},
                    baseline=baseline,
                )
                copy_med = next(r["median_s"] for r in rows if r["candidate"] == baseline)
                for r in rows:
                    r["speedup_vs_copy"] = copy_med / r["median_s"] if r["median_s"] else None
                res.rows.extend(rows)
                zc = rows[0]
                res.summary.append(
                    {
                        "name": f"{direction} n={n} {dtype}: copy / {zc['candidate']}",
                        "value": copy_med / zc["median_s"],
                    }
                )
            del a, t
    # flatness of zero-copy: largest median over smallest median across sizes
    for direction in ("torch -> numpy", "numpy -> torch"):
        zc_rows = [r for r in res.rows if r["direction"] == direction and r["impl"] == "xback"]
        if len(zc_rows) >= 2:
            meds = [r["median_s"] for r in zc_rows]
            res.summary.append(
                {
                    "name": f"{direction}: xback zero-copy max/min median across sizes (flat = ~1)",
                    "value": max(meds) / min(meds),
                }
            )
    return res


