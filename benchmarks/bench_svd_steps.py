"""Where the per-call time of a tiny ``xback.svd`` goes: the front layer's steps added one at
a time to a loop of raw calls.

Each variant runs the raw ``svd`` of a float64 matrix (4x3 unless ``--shape``) plus a prefix of what
``xback.svd`` does (choose the backend; check and cast the input; the traced rule's test;
the routing lookup; the finiteness check; the result tuple), then the public call itself.
The variants are timed interleaved, one block of calls each per round, and the best block is
kept. Inside such a loop every step costs several times what it costs alone: the LAPACK call
before it leaves the caches cold, and the Python code before the next LAPACK call makes that
call slower too. One thread (set before NumPy is imported).

Run: ``python benchmarks/bench_svd_steps.py [--backend numpy|torch] [--shape 4x3] [--rounds 9]``;
``--program`` runs each variant inside a program of 25 Procrustes fits of 8x3 point sets
(``--calls`` then counts programs); ``--checks`` times ways of checking torch's ``S`` after
the raw call instead; ``--after``
times the same Python loop (10 and 100 steps of float arithmetic) after torch's svd, after
NumPy's and alone: what the LAPACK call adds to Python code run after it.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import cmath  # noqa: E402
import functools  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
import timeit  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

import xback  # noqa: E402
from xback import _linalg  # noqa: E402
from xback._dispatch import prepare1  # noqa: E402
from xback._routing import kernel_target, plans_of, there  # noqa: E402
from xback.backends import Backend  # noqa: E402
from xback.bench._harness import cpu_name, load_average  # noqa: E402


def variants(
    backend: str, shape: tuple[int, int], program: bool = False
) -> dict[str, Callable[[], Any]]:
    """Label -> a call: the raw svd with more and more of xback's steps before/after it;
    with ``program``, each inside a program of 25 Procrustes fits of 8x3 point sets (the
    program of ``bench_peers.py``), with the raw library's own input check as one more row."""
    M = np.random.default_rng(0).standard_normal(shape)
    if backend == "torch":
        import torch

        torch.set_num_threads(1)
        X: Any = torch.from_numpy(M)
        raw: Callable[..., Any] = torch.linalg.svd
    else:
        X, raw = M, np.linalg.svd
    b, _ = prepare1(X, None, None)

    def steps(n: int) -> Callable[[Any], Any]:
        def call(X: Any) -> Any:  # the steps of xback._linalg._svd_call, in its order
            kb, x = prepare1(X, None, None)
            if n >= 2:
                nd = x.ndim
                if not 2 <= nd <= _linalg.MAX_NDIM:
                    raise ValueError(nd)
                cdt = _linalg._svd_cast(kb, x.dtype, "svd")
                if cdt is not None:
                    x = kb.astype(x, cdt)
            if n >= 3:
                kb.traced(x)
            if n >= 4 and nd == 2 and plans_of(kb, True):
                m, k = x.shape
                layout = "tall" if m >= 2 * k else "square" if m >= k else "wide"
                t = kernel_target(f"svd/thin-{layout}", kb, x)
                if isinstance(t, Backend) and (shared := there(kb, t, x)) is not None:
                    kb, x = t, shared[0]
            # the input check where the kernel needs one (NumPy), else S is checked after
            first = n >= 5 and "thin" in kb.svd_checked_first
            checked = first and kb.norm_bounded(x)
            if first and not checked:
                kb.all_finite(x)  # not proven: the backend's check
            out = kb.svd(x, False, False) if n >= 6 else raw(x, full_matrices=False)
            if n >= 5 and not checked and not kb.singular_values_finite(out[1]):
                raise ValueError("non-finite")
            return _linalg._new_result(out) if n >= 6 else out

        return call

    fns: dict[str, Callable[[Any], Any]] = {
        "raw svd": lambda x: raw(x, full_matrices=False),
        "+ choose the backend (prepare1)": steps(1),
        "+ check and cast x": steps(2),
        "+ the traced test": steps(3),
        "+ the routing lookup": steps(4),
        "+ the finiteness check": steps(5),
        "+ the backend method, SVDResult": steps(6),
        "xback.svd": lambda x: xback.svd(x, full_matrices=False),
    }
    if not program:
        return {k: functools.partial(f, X) for k, f in fns.items()}

    def raw_checked(x: Any) -> Any:  # the raw library's own spelling of the contract
        if not bool((torch.isfinite(x) if backend == "torch" else np.isfinite(x)).all()):
            raise ValueError("non-finite")
        return raw(x, full_matrices=False)

    fns["raw svd, input checked with isfinite(x).all()"] = raw_checked
    rng = np.random.default_rng(1)
    pairs = [(rng.standard_normal((8, 3)), rng.standard_normal((8, 3))) for _ in range(25)]
    if backend == "torch":
        pairs = [(torch.from_numpy(a), torch.from_numpy(b)) for a, b in pairs]

    def in_program(svd: Callable[[Any], Any]) -> Callable[[], Any]:
        def run() -> Any:
            errs = []
            for A, B in pairs:
                U, S, Vh = svd(A.T @ B)
                D = A @ (U @ Vh) - B
                errs.append(float((D * D).sum()))
            return errs

        return run

    return {k: in_program(f) for k, f in fns.items()}


def check_variants(shape: tuple[int, int]) -> dict[str, Callable[[], Any]]:
    """Label -> the raw torch svd followed by one way of checking that ``S`` is finite."""
    import torch

    torch.set_num_threads(1)
    X = torch.from_numpy(np.random.default_rng(0).standard_normal(shape))
    svd = torch.linalg.svd
    isfinite = cmath.isfinite
    three = [1.0, 2.0, 3.0]

    def after(check: Callable[[Any], Any]) -> Callable[[], Any]:
        def call() -> Any:
            out = svd(X, full_matrices=False)
            check(out[1])
            return out

        return call

    return {
        "raw svd": lambda: svd(X, full_matrices=False),
        "S as Python numbers (xback)": after(lambda S: all(map(isfinite, S.tolist()))),
        "sum of S as a Python number": after(lambda S: math.isfinite(sum(S.tolist()))),
        "S.max().item()": after(lambda S: math.isfinite(S.max().item())),
        "S.sum().item()": after(lambda S: math.isfinite(S.sum().item())),
        "isfinite(S).all()": after(lambda S: bool(torch.isfinite(S).all())),
        # the floor of Python work right after the LAPACK call: no tensor read at all
        "S's data pointer (one attribute)": after(lambda S: S.data_ptr()),
        "3 constant floats checked (no read of S)": after(lambda S: all(map(isfinite, three))),
    }


def after_variants(shape: tuple[int, int]) -> dict[str, Callable[[], Any]]:
    """Label -> a raw svd (or nothing) followed by a Python loop that reads no array."""
    import torch

    torch.set_num_threads(1)
    M = np.random.default_rng(0).standard_normal(shape)
    X = torch.from_numpy(M.copy())
    floats = [1.0, 2.0, 3.0]

    def work(n: int) -> float:
        s = 0.0
        for i in range(n):
            s += floats[i % 3] * 1.5
        return s

    def then(first: Callable[[], Any], n: int) -> Callable[[], Any]:
        def call() -> Any:
            first()
            return work(n)

        return call

    firsts: dict[str, Callable[[], Any]] = {
        "nothing": lambda: None,
        "NumPy svd": lambda: np.linalg.svd(M, full_matrices=False),
        "torch svd": lambda: torch.linalg.svd(X, full_matrices=False),
    }
    return {f"{name}, then {n} steps": then(f, n)
            for n in (0, 10, 100) for name, f in firsts.items()}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--backend", choices=["numpy", "torch"], default="torch")
    p.add_argument("--rounds", type=int, default=9)
    p.add_argument("--calls", type=int, default=2000, help="calls per block")
    p.add_argument("--shape", default="4x3", help="the matrix, MxN (default 4x3)")
    p.add_argument("--checks", action="store_true",
                   help="instead: ways of checking torch's S after the raw svd")
    p.add_argument("--program", action="store_true",
                   help="each variant inside a program of 25 Procrustes fits (8x3)")
    p.add_argument("--after", action="store_true",
                   help="instead: a Python loop after torch's svd, NumPy's, or nothing")
    a = p.parse_args(argv)
    m, n = (int(v) for v in a.shape.split("x"))
    vs = (after_variants((m, n)) if a.after else check_variants((m, n)) if a.checks
          else variants(a.backend, (m, n), a.program))
    best = {k: float("inf") for k in vs}
    for _ in range(a.rounds):
        for k, f in vs.items():
            best[k] = min(best[k], min(timeit.repeat(f, number=a.calls, repeat=3)) / a.calls)
    la = load_average()
    lib = "torch" if a.checks else "NumPy and torch" if a.after else a.backend
    if a.program:
        lib += ", in a program of 25 Procrustes fits of 8x3 point sets"
        m = n = 3  # the svd's input, A.T @ B
    print(f"CPU: {cpu_name()}; {lib}, {m}x{n} float64, one thread; best of {a.rounds} "
          f"rounds of {a.calls}-call blocks; load average {la[0] if la else 'n/a'}")
    print()
    if a.after:  # the loop's own time: each variant less the same first call alone
        print("| first | µs per call | 10 steps after it | 100 steps after it |")
        print("|---|---|---|---|")
        for first in ("nothing", "NumPy svd", "torch svd"):
            t0 = best[f"{first}, then 0 steps"]
            cells = [f"{(best[f'{first}, then {k} steps'] - t0) * 1e6:.2f}" for k in (10, 100)]
            print(f"| {first} | {t0 * 1e6:.2f} | " + " | ".join(cells) + " |")
        return 0
    per = 25 if a.program else 1  # µs per fit of the program (one svd each)
    print(f"| variant | µs per {'fit' if a.program else 'call'} | over raw |")
    print("|---|---|---|")
    r = best["raw svd"]
    for k, t in best.items():
        print(f"| {k} | {t * 1e6 / per:.2f} | {(t - r) * 1e6 / per:+.2f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
