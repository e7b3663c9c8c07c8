"""``programs``: whole programs with routing on and off (``use(route=False)``).

Routing is decided per call, but users run programs: their own NumPy or torch calls run
between xback's, and a routed call can cost the next of them more than it saved (the other
library's threads still awake, a pool in the way). So each program here is a realistic loop
that mixes xback calls with the user's own array work, and is timed whole, with routing on
and with ``use(route=False)``, the two interleaved in one run (medians), with the default
threads:

* ``numpy gradient descent``: 40 steps of ``g = xback.lstsq_grad(A, x, y)`` with ``A`` of
  shape (4000, 500) float64, then the user's own ``B @ g`` and ``A @ x``;
* ``numpy pipeline``: int64 argsorts and sorts, ``svdvals`` and the user's own gathers,
  cumulative sums and matrix products;
* ``numpy dedup and rank``: sorting int64 ids to drop duplicates, ranking float scores;
* ``torch training loop``: per step a sort of the scores, ``lstsq_grad`` and the user's own
  torch products (torch input);
* ``numpy batch PCA``: per batch of (640, 64) float32 rows, ``xback.svd``, then the user's
  own Gram matrix of the batch and its projection onto the first 8 right singular vectors
  (BLAS right after the SVD: where the other library's threads, left spinning, cost most);
* ``fused-size gradient``: ``lstsq_grad`` on a float32 ``A`` of 32 MB, the sizes where
  xback's fused kernel can win (only when Numba is installed).

``routed_calls`` counts the calls of one run that routing sent elsewhere (a program with
none runs exactly as with routing off: its ratio shows the machine's noise). ``ratio`` is
each program's median with routing on over its median with routing off: the
target is at most 1.02 for every program (routing never slows a program), on any machine,
with the shipped table or a tuned one. Which table was active, and the CPU it was measured
on, is in the notes.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

import xback
from xback import _routing
from xback.bench._harness import BenchConfig, BenchResult, Candidate, Progress, environment, measure

__all__ = ["PROGRAMS", "TARGET_RATIO", "run"]

#: routing on may take at most this multiple of routing off, for every program
TARGET_RATIO = 1.02

Program = Callable[[], Any]


def _gradient_descent(quick: bool) -> Program:
    rng = np.random.default_rng(1)
    m, n, steps = (400, 50, 5) if quick else (4000, 500, 40)
    A = rng.standard_normal((m, n))
    y = rng.standard_normal(m)
    B = rng.standard_normal((n, n)) / n
    x0 = np.zeros(n)

    def program() -> Any:
        x = x0.copy()
        for _ in range(steps):
            g = xback.lstsq_grad(A, x, y)
            step = B @ g  # the user's own BLAS between xback's calls
            r = A @ x
            x -= 1e-5 * step
        return x, r

    return program


def _pipeline(quick: bool) -> Program:
    rng = np.random.default_rng(2)
    n, d, rounds = (20_000, 20, 2) if quick else (400_000, 120, 4)
    keys = rng.integers(-(10**9), 10**9, size=n)
    vals = rng.standard_normal(n)
    M = rng.standard_normal((10 * d, d))

    def program() -> Any:
        total = 0.0
        for _ in range(rounds):
            order = xback.argsort(keys)
            ranked = np.cumsum(vals[order])  # the user's own array work
            s = xback.svdvals(M)
            G = M.T @ M
            top = xback.sort(keys)[-10:]
            total += float(ranked[-1]) + float(s[0]) + float(G[0, 0]) + float(top[0])
        return total

    return program


def _dedup_rank(quick: bool) -> Program:
    rng = np.random.default_rng(3)
    n = 20_000 if quick else 1_000_000
    ids = rng.integers(0, n // 2, size=n)
    scores = rng.standard_normal(n).astype(np.float32)

    def program() -> Any:
        s = xback.sort(ids)
        uniq = s[np.concatenate(([True], s[1:] != s[:-1]))]
        rank = xback.argsort(scores)
        return uniq.size, rank[:5]

    return program


def _torch_loop(quick: bool) -> Program:
    import torch

    g = torch.Generator().manual_seed(4)
    m, n, k, steps = (400, 40, 10_000, 4) if quick else (4000, 200, 200_000, 20)
    A = torch.randn(m, n, generator=g)
    y = torch.randn(m, generator=g)
    scores = torch.randint(-(10**9), 10**9, (k,), generator=g)
    w0 = torch.zeros(n)

    def program() -> Any:
        w = w0.clone()
        for i in range(steps):
            order = xback.argsort(scores + i)  # the batch order of this step
            grad = xback.lstsq_grad(A, w, y)
            w = w - 1e-5 * grad
            h = torch.relu(A @ w)  # the user's own torch work
        return w, h, order[:3]

    return program


def _batch_pca(quick: bool) -> Program:
    rng = np.random.default_rng(6)
    m, n, k, batches = (160, 16, 4, 3) if quick else (640, 64, 8, 10)
    X = [rng.standard_normal((m, n), dtype=np.float32) for _ in range(batches)]

    def program() -> Any:
        total = 0.0
        for Xb in X:
            _, S, Vh = xback.svd(Xb, full_matrices=False)
            G = Xb.T @ Xb  # the user's own BLAS right after: the batch's Gram matrix,
            Z = Xb @ Vh[:k].T  # the projection onto the leading directions
            total += float(S[0]) + float(G[0, 0]) + float(Z[0, 0])
        return total

    return program


def _fused_size(quick: bool) -> Program:
    rng = np.random.default_rng(5)
    m, n, steps = (640, 64, 2) if quick else (8192, 1024, 8)
    A = rng.standard_normal((m, n), dtype=np.float32)
    y = rng.standard_normal(m, dtype=np.float32)
    x0 = np.zeros(n, dtype=np.float32)

    def program() -> Any:
        x = x0.copy()
        for _ in range(steps):
            g = xback.lstsq_grad(A, x, y)
            x -= np.float32(1e-6) * g
        return float(x @ x)

    return program


#: name -> (builder of the program, input library it needs, needs Numba)
PROGRAMS: dict[str, tuple[Callable[[bool], Program], str, bool]] = {
    "numpy gradient descent": (_gradient_descent, "numpy", False),
    "numpy pipeline": (_pipeline, "numpy", False),
    "numpy dedup and rank": (_dedup_rank, "numpy", False),
    "torch training loop": (_torch_loop, "torch", False),
    "numpy batch PCA": (_batch_pca, "numpy", False),
    "fused-size gradient": (_fused_size, "numpy", True),
}


def _with_routing(program: Program, on: bool) -> Program:
    def run() -> Any:
        with xback.use(route=on):
            return program()

    return run


_OPS = ("sort", "argsort", "svd", "svdvals", "lstsq_grad")


def routes_taken(program: Program, library: str) -> dict[str, int]:
    """Run ``program`` once with routing on and count the calls that did not run on its own
    ``library``: ``{"numpy" | "torch": calls routed there, "fused": calls on the fused
    kernel}`` (a program whose count is empty ran exactly as with routing off).

    Examples
    --------
    >>> from xback.bench.programs import routes_taken
    >>> routes_taken(lambda: None, "numpy")
    {}
    """
    from xback import _fused
    from xback._dispatch import load_backend

    counts: dict[str, int] = {}
    # the libraries already imported (routing never sends a call to one that is not)
    backends = [load_backend(n) for n in ("numpy", "torch") if n == library or n in sys.modules]
    saved: list[tuple[Any, str]] = []

    def spy(obj: Any, op: str, key: str | None) -> None:
        orig = getattr(obj, op)

        def counted(*args: Any) -> Any:
            out = orig(*args)
            # the fused kernel counts where it computed (None: it left the call to BLAS)
            if key is not None and (key != "fused" or out is not None):
                counts[key] = counts.get(key, 0) + 1
            return out

        saved.append((obj, op))
        setattr(obj, op, counted)

    try:
        for b in backends:
            for op in _OPS:
                spy(b, op, None if b.name == library else b.name)
        spy(_fused.TARGET, "grad", "fused")
        _with_routing(program, True)()
    finally:
        for obj, op in saved:
            delattr(obj, op)  # the class's method again
    return counts


def _table_note(cpu: str) -> str:
    d = _routing.describe()
    machine = d.get("machine") or {}
    table_cpu = machine.get("cpu") if isinstance(machine, dict) else None
    same = "the same CPU model as" if table_cpu == cpu else "another CPU model than"
    extra = "; ".join(f"{k}: {v}" for k, v in d.items()
                      if "match" in k or "fingerprint" in k or (k == "problem" and v))
    return (f"routing table: {d['source']} ({d['path']}), measured on {table_cpu!r}: "
            f"{same} this machine ({cpu!r})" + (f"; {extra}" if extra else ""))


def run(cfg: BenchConfig, progress: Progress | None = None) -> BenchResult:
    res = BenchResult(
        name="programs",
        title="whole programs, routing on against routing off (CPU, default threads)",
        columns=["program", "routing", "routed_calls", "ratio"],
        x_key="program",
        x_label="program",
    )
    if cfg.device != "cpu":
        res.notes.append("routing is for CPU data: run with --device cpu")
        return res
    res.notes.append(_table_note(str(environment("cpu")["cpu"])))
    repeat = cfg.repeats(default_full=7, default_quick=3)
    have_numba = importlib.util.find_spec("numba") is not None
    for name, (build, library, numba) in PROGRAMS.items():
        if library not in cfg.backends:
            res.notes.append(f"{name}: skipped (needs the {library} backend)")
            continue
        if numba and not have_numba:
            res.notes.append(f"{name}: skipped (needs Numba: pip install 'xback[fast]')")
            continue
        program = build(cfg.quick)
        routed = routes_taken(program, library)
        cands = [Candidate(f"{name}, routing on", _with_routing(program, True),
                           {"program": name, "routing": "on"}),
                 Candidate(f"{name}, routing off", _with_routing(program, False),
                           {"program": name, "routing": "off"})]
        if progress is not None:
            progress.add(repeat * len(cands), f"programs: {name}")
        rows = measure(cands, repeat=repeat, sample_time=cfg.sample_time, progress=progress,
                       baseline=f"{name}, routing off")
        taken = ", ".join(f"{n} on {k}" for k, n in sorted(routed.items())) or "none"
        for r in rows:
            r["routed_calls"] = taken if r["routing"] == "on" else "-"
        ratio = rows[0]["ratio"]
        met = ratio is not None and ratio <= TARGET_RATIO
        rows[0]["target_met"] = met
        res.summary.append({
            "name": f"{name}: routing on / routing off" + ("" if met else "  (target missed)"),
            "value": ratio,
        })
        res.rows.extend(rows)
    return res
