"""Per-call overhead of xback and its peers over the raw library call, on tiny inputs.

The table of issue 19: for each call, the raw NumPy/torch call and the same call through
xback, autoray (``autoray.do``) and array-api-compat (``array_namespace(x)`` then the
namespace's function, what a library author writes with it), with the same guarantees
(stable sorts, ``full_matrices=False``); the canonical-signs rows compare with the plain raw
svd (no peer fixes the signs), so they show the cost of the convention too. Every cell is
the median per-call time minus the raw call's, in µs.

* Inputs are tiny (16 float64 values, a 4x3 matrix) so that the time is dispatch, not work;
  the conversions use 1e6 float64 values (all zero-copy).
* One thread each: the BLAS/OpenMP environment variables are set to 1 before NumPy is
  imported, and ``torch.set_num_threads(1)``.
* The candidates of a row run interleaved (A B C D A B C D ..., order rotated every round),
  each sample a short loop of calls (``--sample-ms``); the medians of the rounds are
  compared, so machine load hits every candidate alike. A second table compares the best
  samples, which a busy machine disturbs less (short samples are often not preempted at
  all). ``-``: the peer has no such call.
* ``+1 call``: the raw call behind one more Python function that does nothing else, the
  floor of any layer written in Python (every peer adds at least that).
* The later rows give every candidate xback's answer where the first rows' raw call and
  peers give another: ``svd``/``svdvals`` raising ``ValueError`` on NaN or inf (the input
  checked first with the library's own ``isfinite``/``all``), and a descending sort with
  NaN last (``-sort(-x)``), each spelled as a library author would with that library.
* The ``program`` rows time a whole program around such calls, once per candidate: 25
  orthogonal Procrustes fits of 8x3 point sets (the svd of ``A.T @ B``, the rotation, the
  residual as a Python float) and the fits ranked by ``argsort``; their cells are µs per
  program (25 svd calls and one argsort among 150 operations of the user's own).

Benchmark-only dependencies: ``pip install "xback[bench,torch]"`` (autoray; array-api-compat
is a dependency of xback)::

    python benchmarks/bench_peers.py              # 101 rounds of 0.5 ms samples
    python benchmarks/bench_peers.py --rounds 11  # a first look
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ[_var] = "1"

import argparse  # noqa: E402
import functools  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from collections.abc import Callable  # noqa: E402
from typing import Any  # noqa: E402

import numpy as np  # noqa: E402

import xback  # noqa: E402
from xback.bench._harness import cpu_name, load_average  # noqa: E402

PEERS = ("xback", "autoray", "array-api-compat", "+1 call")

#: row label -> {"raw": call, peer: call or None (no such call)}, plus a note per peer
Row = dict[str, Callable[[], Any] | None]


def _rows() -> tuple[dict[str, Row], dict[tuple[str, str], str], dict[str, str]]:
    import torch
    from array_api_compat import array_namespace

    try:
        import autoray
    except ImportError:  # a column of "-"
        autoray = None
    import array_api_compat.torch as compat_torch

    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    a = rng.standard_normal(16)
    t = torch.from_numpy(a.copy())
    M = rng.standard_normal((4, 3))
    T = torch.from_numpy(M.copy())
    big = rng.standard_normal(10**6)
    bigt = torch.from_numpy(big.copy())
    do = autoray.do if autoray is not None else None
    ns = array_namespace

    rows: dict[str, Row] = {
        "argsort, 16 float64, NumPy": {
            "raw": lambda: np.argsort(a, kind="stable"),
            "xback": lambda: xback.argsort(a),
            "autoray": (lambda: do("argsort", a, kind="stable")) if do else None,
            "array-api-compat": lambda: ns(a).argsort(a, stable=True),
        },
        "argsort, 16 float64, torch": {
            "raw": lambda: torch.argsort(t, stable=True),
            "xback": lambda: xback.argsort(t),
            "autoray": (lambda: do("argsort", t, stable=True)) if do else None,
            "array-api-compat": lambda: ns(t).argsort(t, stable=True),
        },
        "sort descending, 16, torch": {
            "raw": lambda: torch.sort(t, descending=True, stable=True).values,
            "xback": lambda: xback.sort(t, descending=True),
            "autoray": None,  # autoray's sort has no descending order
            "array-api-compat": lambda: ns(t).sort(t, descending=True, stable=True),
        },
        "svd 4x3, NumPy": {
            "raw": lambda: np.linalg.svd(M, full_matrices=False),
            "xback": lambda: xback.svd(M, full_matrices=False),
            "autoray": (lambda: do("linalg.svd", M, full_matrices=False)) if do else None,
            "array-api-compat": lambda: ns(M).linalg.svd(M, full_matrices=False),
        },
        "svd 4x3, torch": {
            "raw": lambda: torch.linalg.svd(T, full_matrices=False),
            "xback": lambda: xback.svd(T, full_matrices=False),
            "autoray": (lambda: do("linalg.svd", T, full_matrices=False)) if do else None,
            "array-api-compat": lambda: ns(T).linalg.svd(T, full_matrices=False),
        },
        "svd 4x3 canonical signs, NumPy": {  # no peer fixes signs: raw is the plain svd
            "raw": lambda: np.linalg.svd(M, full_matrices=False),
            "xback": lambda: xback.svd(M, full_matrices=False, canonical_signs=True),
            "autoray": None,
            "array-api-compat": None,
        },
        "svd 4x3 canonical signs, torch": {
            "raw": lambda: torch.linalg.svd(T, full_matrices=False),
            "xback": lambda: xback.svd(T, full_matrices=False, canonical_signs=True),
            "autoray": None,
            "array-api-compat": None,
        },
        "svdvals 4x3, NumPy": {
            "raw": lambda: np.linalg.svd(M, compute_uv=False),
            "xback": lambda: xback.svdvals(M),
            "autoray": (lambda: do("linalg.svdvals", M)) if do else None,
            "array-api-compat": lambda: ns(M).linalg.svdvals(M),
        },
        "svdvals 4x3, torch": {
            "raw": lambda: torch.linalg.svdvals(T),
            "xback": lambda: xback.svdvals(T),
            "autoray": (lambda: do("linalg.svdvals", T)) if do else None,
            "array-api-compat": lambda: ns(T).linalg.svdvals(T),
        },
        "to_numpy, 1e6 float64 (torch)": {
            "raw": bigt.numpy,
            "xback": lambda: xback.to_numpy(bigt),
            "autoray": (lambda: autoray.to_numpy(bigt)) if autoray is not None else None,
            "array-api-compat": None,  # no conversion to NumPy
        },
        "from_numpy, 1e6 float64 (to torch)": {
            "raw": lambda: torch.from_numpy(big),
            "xback": lambda: xback.from_numpy(big, backend="torch"),
            "autoray": (lambda: do("asarray", big, like="torch")) if do else None,
            "array-api-compat": lambda: compat_torch.asarray(big),
        },
    }
    rows.update(_same_answer_rows(M, T, t, do, ns))
    rows.update(_program_rows(do, ns))
    for row in rows.values():  # the floor of any Python layer: one function, no work in it
        row["+1 call"] = _one_call_more(row["raw"])
    notes = {("sort descending, 16, torch", "array-api-compat"): "NaN first"}
    versions = {
        "numpy": np.__version__,
        "torch": torch.__version__,
        "autoray": getattr(autoray, "__version__", "not installed") if autoray else "missing",
        "array-api-compat": sys.modules["array_api_compat"].__version__,
    }
    return rows, notes, versions


Fn = Callable[[Any], Any]


def _raising(all_finite: Fn, svd: Fn) -> Fn:
    """``svd`` that first raises ``ValueError`` where ``all_finite(x)`` is false: xback's
    finiteness contract, spelled with another library's calls."""

    def call(x: Any) -> Any:
        if not all_finite(x):
            raise ValueError("x contains non-finite values")
        return svd(x)

    return call


def _finite_checks(do: Any, ns: Any) -> dict[str, Any]:
    """Each spelling of "every entry of x is finite": NumPy's, torch's, autoray's (None when
    it is not installed) and array-api-compat's."""
    import torch

    def ns_all(x: Any) -> bool:
        xp = ns(x)
        return bool(xp.all(xp.isfinite(x)))

    return {
        "numpy": lambda x: bool(np.isfinite(x).all()),
        "torch": lambda x: bool(torch.isfinite(x).all()),
        "autoray": (lambda x: bool(do("all", do("isfinite", x)))) if do else None,
        "array-api-compat": ns_all,
    }


def _same_answer_rows(M: Any, T: Any, t: Any, do: Any, ns: Any) -> dict[str, Row]:
    """The rows above whose raw call and peers give a different answer than xback, with each
    spelling written to give xback's answer, as a library author would write it with that
    library: ``svd``/``svdvals`` that raise ``ValueError`` on NaN or inf input (the input
    checked first, which NumPy needs: its LAPACK can hang on inf), and a descending sort
    with NaN last (negated, sorted ascending, negated back). autoray's torch ``sort`` takes
    no ``stable=``, and an unstable sort may order -0.0 and 0.0 differently: ``-``."""
    import torch

    checked = _raising
    fin = _finite_checks(do, ns)
    np_all, torch_all, ar_all, ns_all = (
        fin["numpy"], fin["torch"], fin["autoray"], fin["array-api-compat"])

    def thin(svd: Callable[..., Any]) -> Callable[[Any], Any]:
        return lambda x: svd(x, full_matrices=False)

    np_svd, t_svd = thin(np.linalg.svd), thin(torch.linalg.svd)
    libs = (
        ("NumPy", M, np_all, np_svd, lambda x: np.linalg.svd(x, compute_uv=False)),
        ("torch", T, torch_all, t_svd, torch.linalg.svdvals),
    )
    # label -> (the input, the bad inputs, candidate -> a function of the input or None)
    cases: dict[str, tuple[Any, list[Any], dict[str, Fn | None]]] = {}
    for lib, X, fin, svd, vals in libs:
        bad = [X * np.nan, X * np.inf]
        cases[f"svd 4x3 raising on NaN/inf, {lib}"] = (X, bad, {
            "raw": checked(fin, svd),
            "xback": thin(xback.svd),
            "autoray": checked(ar_all, thin(functools.partial(do, "linalg.svd"))) if do else None,
            "array-api-compat": checked(
                ns_all, lambda x: ns(x).linalg.svd(x, full_matrices=False)),
        })
        cases[f"svdvals 4x3 raising on NaN/inf, {lib}"] = (X, bad, {
            "raw": checked(fin, vals),
            "xback": xback.svdvals,
            "autoray": checked(ar_all, functools.partial(do, "linalg.svdvals")) if do else None,
            "array-api-compat": checked(ns_all, lambda x: ns(x).linalg.svdvals(x)),
        })
    cases["sort descending NaN last, 16, torch"] = (t, [], {
        "raw": lambda x: -torch.sort(-x, stable=True).values,
        "xback": functools.partial(xback.sort, descending=True),
        "autoray": None,  # no stable= for torch's sort (see the docstring)
        "array-api-compat": lambda x: -ns(x).sort(-x, stable=True),
    })
    v = torch.tensor([0.0, np.nan, -0.0, 2.0, -np.inf, 0.0, np.nan], dtype=torch.float64)
    _check_same_answers(cases, v)
    return {label: {k: None if f is None else functools.partial(f, x) for k, f in fns.items()}
            for label, (x, _, fns) in cases.items()}


def _program_rows(do: Any, ns: Any) -> dict[str, Row]:
    """Whole programs (see the module docstring), checked like the same-answer rows: every
    candidate ranks the fits alike and raises ``ValueError`` when a point set holds NaN."""
    import torch

    rng = np.random.default_rng(1)
    pairs = [(rng.standard_normal((8, 3)), rng.standard_normal((8, 3))) for _ in range(25)]

    def program(svd: Fn, argsort: Fn, asarray: Fn) -> Fn:
        def run(data: list[tuple[Any, Any]]) -> Any:
            errs = []
            for A, B in data:
                U, S, Vh = svd(A.T @ B)
                D = A @ (U @ Vh) - B
                errs.append(float((D * D).sum()))
            return argsort(asarray(errs))

        return run

    checked = _raising
    fin = _finite_checks(do, ns)
    ns_finite, ar_finite = fin["array-api-compat"], fin["autoray"]

    xb_svd = functools.partial(xback.svd, full_matrices=False)
    libs: dict[str, tuple[list[tuple[Any, Any]], dict[str, Fn | None]]] = {
        "NumPy": (pairs, {
            "raw": program(checked(fin["numpy"],
                                   functools.partial(np.linalg.svd, full_matrices=False)),
                           functools.partial(np.argsort, kind="stable"), np.asarray),
            "xback": program(xb_svd, xback.argsort, np.asarray),
            "autoray": program(
                checked(ar_finite, functools.partial(do, "linalg.svd", full_matrices=False)),
                functools.partial(do, "argsort", kind="stable"), np.asarray) if do else None,
            "array-api-compat": program(
                checked(ns_finite, lambda x: ns(x).linalg.svd(x, full_matrices=False)),
                lambda e: ns(e).argsort(e, stable=True), np.asarray),
        }),
    }
    t_pairs = [(torch.from_numpy(a), torch.from_numpy(b)) for a, b in pairs]

    def t_asarray(e: list[float]) -> Any:
        return torch.tensor(e, dtype=torch.float64)

    libs["torch"] = (t_pairs, {
        "raw": program(checked(fin["torch"],
                               functools.partial(torch.linalg.svd, full_matrices=False)),
                       functools.partial(torch.argsort, stable=True), t_asarray),
        "xback": program(xb_svd, xback.argsort, t_asarray),
        "autoray": program(
            checked(ar_finite, functools.partial(do, "linalg.svd", full_matrices=False)),
            functools.partial(do, "argsort", stable=True), t_asarray) if do else None,
        "array-api-compat": program(
            checked(ns_finite, lambda x: ns(x).linalg.svd(x, full_matrices=False)),
            lambda e: ns(e).argsort(e, stable=True), t_asarray),
    })
    rows: dict[str, Row] = {}
    for lib, (data, fns) in libs.items():
        xb = fns["xback"]
        assert xb is not None
        want = np.asarray(xb(data))
        bad = [(A * np.nan if i == 3 else A, B) for i, (A, B) in enumerate(data)]
        for name, f in fns.items():
            if f is None:
                continue
            if not np.array_equal(np.asarray(f(data)), want):
                raise AssertionError(f"program, {lib}: {name} ranks the fits differently")
            try:
                f(bad)
            except ValueError:
                pass
            else:
                raise AssertionError(f"program, {lib}: {name} does not raise on NaN")
        rows[f"program: 25 Procrustes fits 8x3, {lib} (µs per program)"] = {
            k: None if f is None else functools.partial(f, data) for k, f in fns.items()
        }
    return rows


def _check_same_answers(cases: dict[str, tuple[Any, list[Any], dict[str, Any]]], v: Any) -> None:
    """Refuse to time a same-answer row whose candidates do not all give xback's answer: the
    svds raise ``ValueError`` on every bad input and give xback's singular values of the
    row's input; the sorts agree with xback bit for bit on ``v`` (NaN, -0.0, ties)."""
    import torch

    for label, (x, bad, fns) in cases.items():
        for name, f in fns.items():
            if f is None:
                continue
            for b in bad:
                try:
                    f(b)
                except ValueError:
                    continue
                raise AssertionError(f"{label}: {name} does not raise ValueError on {b!r}")
            if not bad:  # the sort: xback's bits on a vector of NaN, -0.0 and ties
                got, want = f(v), fns["xback"](v)
                if not torch.equal(got.view(torch.int64), want.view(torch.int64)):
                    raise AssertionError(f"{label}: {name} gives {got}, xback {want}")
                continue
            got, want = f(x), fns["xback"](x)  # the singular values of the finite input
            if isinstance(want, tuple):
                got, want = got[1], want[1]
            if not np.allclose(np.asarray(got), np.asarray(want), rtol=1e-12, atol=0):
                raise AssertionError(f"{label}: {name} gives {got}, xback {want}")


def _one_call_more(raw: Callable[[], Any] | None) -> Callable[[], Any]:
    """``raw`` behind one more Python function that does nothing else."""
    assert raw is not None

    def forward() -> Any:
        return raw()

    return forward


def _per_call(fn: Callable[[], Any], n: int) -> float:
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return (time.perf_counter() - t0) / n


def _loops(fn: Callable[[], Any], target_s: float) -> int:
    """Calls per sample so that one sample takes about ``target_s``."""
    for _ in range(50):  # warm up (first calls fill xback's caches, compile paths)
        fn()
    one = _per_call(fn, 200)
    return max(20, int(target_s / max(one, 1e-9)))


def measure_row(row: Row, rounds: int, target_s: float) -> dict[str, list[float]]:
    """Per-call seconds of each candidate of ``row``, one sample per round, interleaved in
    rotated order."""
    cands = {k: f for k, f in row.items() if f is not None}
    loops = {k: _loops(f, target_s) for k, f in cands.items()}
    samples: dict[str, list[float]] = {k: [] for k in cands}
    names = list(cands)
    for r in range(rounds):
        for k in names[r % len(names) :] + names[: r % len(names)]:
            samples[k].append(_per_call(cands[k], loops[k]))
    return samples


def _load() -> str:
    la = load_average()
    return " ".join(f"{v:.2f}" for v in la) if la else "n/a"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=101, help="interleaved rounds per row")
    parser.add_argument("--sample-ms", type=float, default=0.5, help="time of one sample")
    args = parser.parse_args(argv)

    rows, notes, versions = _rows()
    load_before = _load()
    results = {label: measure_row(row, args.rounds, args.sample_ms / 1e3)
               for label, row in rows.items()}
    print(f"CPU: {cpu_name()}, {os.cpu_count()} CPUs, one thread each; "
          f"load average {load_before} before, {_load()} after")
    print(", ".join(f"{k} {v}" for k, v in versions.items())
          + f"; {args.rounds} interleaved rounds of {args.sample_ms} ms samples")
    for stat, fn in (("median", statistics.median), ("best", min)):
        print()
        print(f"µs over the raw library call, {stat} samples (raw: its {stat} per call)")
        print()
        print("| call | raw µs | " + " | ".join(PEERS) + " |")
        print("|---|---|" + "---|" * len(PEERS))
        for label, samples in results.items():
            t = {k: fn(v) for k, v in samples.items()}
            cells = []
            for peer in PEERS:
                if peer not in t:
                    cells.append("-")
                    continue
                cell = f"{(t[peer] - t['raw']) * 1e6:+.2f}"
                if (label, peer) in notes:
                    cell += f" ({notes[label, peer]})"
                cells.append(cell)
            print(f"| {label} | {t['raw'] * 1e6:.2f} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
