"""``xback tune``: measure this machine's cost table for routing (:mod:`xback._routing`).

For every routed case (operation, layout, dtype, size) the backends' own implementations —
exactly what a routed call runs, ``Backend.sort(x, axis, descending, stable)`` and so on —
are timed on the same data, shared zero-copy, interleaved round-robin (lower quartiles).
``lstsq_grad`` has a third column when Numba is installed: xback's fused one-pass kernel
(:mod:`xback._fused`, compiled before it is timed), which ``method="auto"`` takes for the
sizes where it beats both libraries' BLAS. The conversion round trip is timed too: routing
only pays off when the gain exceeds it. Every route this predicts is then timed as it really
runs, against the source library's own call (:func:`_confirm`), and kept only if it still
wins by the margin.

The full table takes under two minutes on a 2-core machine (``--quick``: a few seconds,
fewer sizes); sizes beyond the largest measured one take the largest one's decision.
"""

from __future__ import annotations

import os
import platform
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from xback import _fused
from xback._dispatch import load_backend
from xback._machine import fingerprint
from xback._routing import (
    FUSED,
    MARGIN,
    TABLE_FORMAT,
    back,
    decide,
    now_iso,
    route_allowed,
    there,
)
from xback.backends import Backend
from xback.backends.numpy import blas_threads
from xback.bench._harness import Candidate, Progress, cpu_name, measure, warm_seconds

__all__ = ["Case", "cases", "switching_penalty", "tune"]

SORT_DTYPES = ("float32", "float64", "int32", "int64")
LINALG_DTYPES = ("float32", "float64")
SORT_SIZES = tuple(1 << k for k in (10, 12, 14, 16, 18, 20))
SORT_SIZES_QUICK = tuple(1 << k for k in (10, 14))
SVD_TALL = (8, 16, 32, 64, 128)  # A of shape (10d, d)
SVD_SQUARE = (16, 32, 64, 128, 256)
SVD_QUICK = (8, 16)
# A of shape (10d, d), one d per power of two of A's size: up to 335 MB (float64), far past
# the caches, where the fused kernel's single read of A pays off
LSTSQ_D = (16, 32, 64, 128, 256, 362, 512, 724, 1024, 1448, 2048)
LSTSQ_QUICK = (16, 64)


@dataclass(frozen=True)
class Case:
    """One measured case: ``run(backend, arrays)`` computes it on ``backend``."""

    op: str
    layout: str
    dtype: str
    shape: tuple[int, ...]
    arrays: int  # conversions a routed call makes (inputs + outputs)

    @property
    def size(self) -> int:
        """The size the table is keyed by (elements of the main input)."""
        return int(np.prod(self.shape))


def cases(quick: bool = False) -> Iterator[Case]:
    """Every case ``xback tune`` measures, small to large within each group."""
    for op in ("sort", "argsort"):
        for dt in SORT_DTYPES:
            for n in SORT_SIZES_QUICK if quick else SORT_SIZES:
                yield Case(op, "1d", dt, (n,), 2)
                r = 1 << (n.bit_length() // 2)  # a square-ish stack of rows
                yield Case(op, "rows", dt, (r, n // r), 2)
    for dt in LINALG_DTYPES:
        for variant, arrays in (("thin", 4), ("full", 4), ("vals", 2)):
            for d in SVD_QUICK if quick else SVD_TALL:
                yield Case("svd", f"{variant}-tall", dt, (10 * d, d), arrays)
            for d in SVD_QUICK if quick else SVD_SQUARE:
                yield Case("svd", f"{variant}-square", dt, (d, d), arrays)
        for d in LSTSQ_QUICK if quick else LSTSQ_D:
            yield Case("lstsq_grad", "vec", dt, (10 * d, d), 4)


def _data(case: Case, rng: np.random.Generator) -> list[np.ndarray[Any, Any]]:
    if case.op in ("sort", "argsort"):
        if case.dtype.startswith("int"):
            hi = np.iinfo(case.dtype).max // 2
            return [rng.integers(-hi, hi, size=case.shape, dtype=case.dtype)]
        return [rng.standard_normal(case.shape).astype(case.dtype)]
    A = rng.standard_normal(case.shape).astype(case.dtype)
    if case.op == "svd":
        return [A]
    m, n = case.shape
    return [A, rng.standard_normal(n).astype(case.dtype), rng.standard_normal(m).astype(case.dtype)]


def _call(case: Case, b: Backend, xs: list[Any]) -> Callable[[], Any]:
    if case.op in ("sort", "argsort"):
        f = getattr(b, case.op)
        x = xs[0]
        ax = x.ndim - 1
        return lambda: f(x, ax, False, True)
    if case.op == "svd":
        variant = case.layout.split("-")[0]
        x = xs[0]
        if variant == "vals":
            return lambda: b.svdvals(x)
        full = variant == "full"
        return lambda: b.svd(x, full, False)
    A, v, y = xs
    return lambda: b.lstsq_grad(A, v, y, "auto")


def _shared(b: Backend, data: list[Any]) -> list[Any]:
    """``data`` as arrays of ``b`` sharing its memory: every candidate reads the same bytes."""
    return [b.from_numpy(a, "cpu", False) for a in data]


def _candidates(case: Case, backends: list[Backend], data: list[Any]) -> list[Candidate]:
    """One candidate per library on the same memory; for ``lstsq_grad`` also the fused
    kernel (on the NumPy arrays; compiled here, before it is timed) when Numba is there."""
    cands = [Candidate(b.name, _call(case, b, _shared(b, data))) for b in backends]
    if case.op == "lstsq_grad" and _fused.available():
        A, v, y = data
        _fused.warmup((A.dtype,))
        cands.append(Candidate(FUSED, lambda: _fused.lstsq_grad(A, v, y)))
    return cands


def _routed_call(case: Case, b: Backend, kb: Backend, data: list[Any]) -> Callable[[], Any]:
    """The whole routed call as the front layer makes it: the checks it makes only for a
    route (:func:`xback._routing.route_allowed`: the input routable, the thread limits, which
    reads the BLAS setting through ctypes), ``b``'s arrays shared with ``kb`` (new wrappers
    every call), ``kb`` computes, the results shared back to ``b``. Right after a large call
    these few Python steps run with cold caches: measured between torch calls on 5 MB, the
    checks cost 5-13 µs where a loop of them alone takes 1 µs."""
    xs = _shared(b, data)

    def call() -> Any:
        route_allowed(b, kb, xs[0])  # the front layer's checks, timed (the answer aside)
        shared = there(b, kb, *xs)
        assert shared is not None  # the tune's arrays are all shareable
        out = kb.routed(_call(case, kb, list(shared)))
        if isinstance(out, tuple):
            return tuple(back(b, kb, o) for o in out)
        return back(b, kb, out)

    return call


def _fused_call(b: Backend, data: list[Any]) -> Callable[[], Any]:
    """The fused kernel as ``method="auto"`` calls it for ``b``'s arrays: the front layer's
    checks (:func:`xback._routing.route_allowed`, the kernel's shape limits
    :func:`xback._fused.auto_applies`), then the kernel's target object
    (:meth:`xback._fused.FusedTarget.grad`; for torch: zero-copy NumPy views, the kernel,
    the result wrapped back)."""
    A, v, y = _shared(b, data)
    n, dt = data[0].shape[1], data[0].dtype
    target = _fused.TARGET

    def call() -> Any:
        route_allowed(b, target, A)  # the front layer's checks, timed with the call
        target.auto_applies(n, dt)
        return target.grad(b, A, v, y)

    return call


def _confirm(
    case: Case,
    backends: list[Backend],
    data: list[Any],
    seconds: dict[str, float],
    extra_s: float,
    repeat: int,
    warm_s: float,
) -> dict[str, dict[str, float]]:
    """Time each route the kernels' times predict as it really runs (:func:`_routed_call`,
    :func:`_fused_call`) against the source library's own call, in warm blocks of their own:
    ``{source: {"own": s, target: s}}``.

    The prediction adds a fixed cost per conversion (a small array's round trip), but a
    routed call also computes on fresh tensor wrappers and brings fresh results back
    (measured here: 5-8 µs over the same torch matrix-vector product of 2.6 MB on reused
    tensors); :func:`xback._routing._plans` keeps a route only where the confirmed time
    beats the own one by the margin.
    """
    out: dict[str, dict[str, float]] = {}
    by_name = {b.name: b for b in backends}
    for b in backends:
        target = decide(seconds, b.name, extra_s)
        if target == FUSED:
            routed = _fused_call(b, data)
        elif target is not None and target in by_name:
            routed = _routed_call(case, b, by_name[target], data)
        else:
            continue  # no route
        cands = [Candidate("own", _call(case, b, _shared(b, data))), Candidate(target, routed)]
        rows = measure(cands, repeat=repeat, sample_time=0.003, warm_s=warm_s)
        out[b.name] = {r["candidate"]: _lower_quartile(r["samples_s"]) for r in rows}
    return out


#: the caller's own next calls that :func:`switching_penalty` times after each call: a
#: matrix-vector product (BLAS, every core) of this shape, float64, the Gram matrix
#: ``Q.T @ Q`` (a threaded matrix-matrix product, where a spinning thread costs most) of a
#: float64 ``Q`` of the second shape, and a stable sort (float64) of this many elements
PROBE_BLAS = (2048, 512)
PROBE_GEMM = (640, 64)
PROBE_SORT = 1 << 15


def _probes(b: Backend, rng: np.random.Generator) -> Callable[[], Any]:
    """The caller's own library's next calls after a routed one: two BLAS calls and a sort,
    on ``b``'s own arrays."""
    P = b.from_numpy(rng.standard_normal(PROBE_BLAS), "cpu", False)
    v = b.from_numpy(rng.standard_normal(PROBE_BLAS[1]), "cpu", False)
    Q = b.from_numpy(rng.standard_normal(PROBE_GEMM), "cpu", False)
    s = b.from_numpy(rng.standard_normal(PROBE_SORT), "cpu", False)
    sort = b.sort

    def probe() -> Any:
        P @ v
        Q.T @ Q
        return sort(s, 0, False, True)

    return probe


def switching_penalty(
    case: Case,
    backends: list[Backend],
    data: list[Any],
    confirmed: dict[str, dict[str, float]],
    repeat: int,
) -> dict[str, float | None]:
    """The switching penalty of each confirmed route: what taking it costs the caller's
    own *next* calls, ``{source: seconds or None}``.

    After a routed call the other library's threads stay awake for a while (libgomp's
    OpenMP workers spin before they sleep, OpenBLAS's idle threads too) and compete with
    the caller's next BLAS call; the other way round the caller's threads, still spinning,
    slow the routed call down. Neither shows when each call is timed on its own. So the
    route and the caller's own call are each timed in the loop of a program: the call, then
    the caller's own library's next BLAS call and next sort (:func:`_probes`), again and
    again (interleaved samples of that loop, no warm-up blocks: the switching is what is
    measured). The penalty is how much less the route gains in that loop than alone (the
    confirmed times), at least 0: ``(loop_routed - loop_own) - (routed - own)``.

    ``None`` where it cannot be measured reliably: the loops' noise (the larger of their
    interquartile ranges) exceeds the route's gain in the loop. :func:`xback._routing._plans`
    takes a route only where ``routed * MARGIN + penalty < own``, and never where the
    penalty is ``None``.

    Examples
    --------
    >>> from xback.bench.tune import Case, switching_penalty
    >>> switching_penalty(Case("sort", "1d", "float64", (8,), 2), [], [], {}, repeat=3)
    {}
    """
    out: dict[str, float | None] = {}
    by_name = {b.name: b for b in backends}
    rng = np.random.default_rng(7)
    for src, times in confirmed.items():
        target = next((t for t in times if t != "own"), None)
        if target is None or src not in by_name or not times[target] * MARGIN < times["own"]:
            continue  # no route, or one the confirmation dropped already
        b = by_name[src]
        if target == FUSED:
            routed = _fused_call(b, data)
        elif target in by_name:
            routed = _routed_call(case, b, by_name[target], data)
        else:
            continue
        own = _call(case, b, _shared(b, data))
        probe = _probes(b, rng)

        def loop(f: Callable[[], Any] = own, p: Callable[[], Any] = probe) -> Any:
            f()
            return p()

        def loop_routed(f: Callable[[], Any] = routed, p: Callable[[], Any] = probe) -> Any:
            f()
            return p()

        rows = measure([Candidate("own", loop), Candidate("routed", loop_routed)],
                       repeat=max(repeat, 5), sample_time=0.004)
        lq = {r["candidate"]: _lower_quartile(r["samples_s"]) for r in rows}
        noise = max(_iqr(r["samples_s"]) for r in rows)
        gain = lq["own"] - lq["routed"]
        if gain <= noise:
            out[src] = None
            continue
        out[src] = max(0.0, (times["own"] - times[target]) - gain)
    return out


def _iqr(samples: list[float]) -> float:
    s = sorted(samples)
    return s[(3 * len(s)) // 4] - s[len(s) // 4]


def _convert_seconds(backends: list[Backend]) -> float:
    """Slowest zero-copy round trip between two of ``backends`` for a small array."""
    a = np.zeros(16)
    worst = 0.0
    for b in backends:
        x = b.from_numpy(a, "cpu", None)
        for kb in backends:
            if kb is b:
                continue

            def trip(b: Backend = b, kb: Backend = kb, x: Any = x) -> Any:
                y = kb.from_numpy(b.to_numpy(x, False), "cpu", False)
                return b.from_numpy(kb.to_numpy(y, None), "cpu", None)

            [row] = measure([Candidate("trip", trip)], repeat=5, sample_time=0.002)
            worst = max(worst, row["median_s"] / 2)  # one conversion = half a round trip
    return worst


def _versions(names: list[str]) -> dict[str, str]:
    import importlib

    out = {}
    for n in names:
        out[n] = str(getattr(importlib.import_module(n), "__version__", "?"))
    return out


def tune(
    libraries: tuple[str, ...] = ("numpy", "torch"),
    *,
    quick: bool = False,
    repeat: int = 5,
    progress: Progress | None = None,
) -> dict[str, Any]:
    """Measure the routing cost table of this machine and return it (not saved).

    Parameters
    ----------
    libraries : tuple of str
        Backends to compare (each must be installed; torch is imported).
    quick : bool
        Fewer sizes (a few seconds): for tests and a first look.
    repeat : int
        Interleaved samples per case (medians).
    progress : optional
        Receives ``advance(1)`` per sample.

    Returns
    -------
    dict
        The table (``format``, ``fingerprint``, ``created``, ``machine``, ``libraries``,
        ``threads``, ``convert_seconds``, ``entries``), ready for
        :func:`xback._routing.save_table`. ``fingerprint`` (:func:`xback._machine.fingerprint`:
        CPU model, cores, instruction sets, library versions, thread settings) decides where
        the table applies.

    Examples
    --------
    >>> from xback.bench.tune import cases
    >>> sum(1 for _ in cases(quick=True)) > 0
    True
    """
    backends = [load_backend(n) for n in libraries]
    t0 = time.perf_counter()
    convert_s = _convert_seconds(backends)
    rng = np.random.default_rng(20261122)
    entries = []
    for case in cases(quick):
        data = _data(case, rng)
        cands = _candidates(case, backends, data)
        warm_s = _warm_seconds(case)
        rows = measure(cands, repeat=repeat, sample_time=0.003, progress=progress,
                       warm_s=warm_s)
        # lower quartile of the samples: robust to the other processes of a busy machine
        # (they only ever add time) without trusting one lucky sample
        seconds = {r["candidate"]: _lower_quartile(r["samples_s"]) for r in rows}
        entry: dict[str, Any] = {
            "op": case.op,
            "layout": case.layout,
            "dtype": case.dtype,
            "shape": list(case.shape),
            "size": case.size,
            "arrays": case.arrays,
            "seconds": seconds,
        }
        confirmed = _confirm(case, backends, data, seconds, case.arrays * convert_s,
                             repeat, warm_s)
        if confirmed:
            entry["confirmed"] = confirmed
            penalty = switching_penalty(case, backends, data, confirmed, repeat)
            if penalty:
                entry["penalty_seconds"] = penalty
        entries.append(entry)
    threads: dict[str, Any] = {"blas": blas_threads()}
    torch = sys.modules.get("torch")
    if torch is not None:
        threads["torch"] = torch.get_num_threads()
    return {
        "format": TABLE_FORMAT,
        # what the table applies to: a machine (or process) whose fingerprint differs never
        # uses it (xback._routing); torch is imported here, so its fields are read too
        "fingerprint": fingerprint(),
        "created": now_iso(),
        "tune_seconds": round(time.perf_counter() - t0, 1),
        "quick": quick,
        "machine": {
            "cpu": cpu_name(),
            "cores": os.cpu_count(),
            "platform": platform.platform(),
            "python": platform.python_version(),
        },
        "libraries": _versions(list(libraries)),
        # the fused kernel's column, when measured: what compiled it and with how many threads
        "fused": _fused_info(),
        "threads": threads,
        "convert_seconds": convert_s,
        "entries": entries,
    }


def _warm_seconds(case: Case) -> float:
    return warm_seconds(case.op, case.size * np.dtype(case.dtype).itemsize)


def _fused_info() -> dict[str, Any] | None:
    if not _fused.available():
        return None
    info = _fused.compile_info()
    return {"numba": info["numba_version"], "threads": info["threads"]}


def _lower_quartile(samples: list[float]) -> float:
    return sorted(samples)[len(samples) // 4]


def n_samples(quick: bool = False, repeat: int = 5, libraries: int = 2) -> int:
    """Number of samples :func:`tune` takes (for a progress bar)."""
    fused = _fused.available()
    per_case = [libraries + (fused and c.op == "lstsq_grad") for c in cases(quick)]
    return sum(per_case) * repeat
