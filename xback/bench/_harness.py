"""Shared timing harness of ``xback bench``: interleaved candidates, medians, environment.

Every table of a benchmark is one :func:`measure` call: its candidates are warmed up, the
number of calls per sample is calibrated for each of them, then samples are taken
round-robin (A B C A B C ...) so that machine drift (another process waking up, frequency
changes, a stalled BLAS thread) hits every candidate alike. Warm-up is excluded; each
candidate reports the median, the minimum and the spread of its per-call times.
"""

from __future__ import annotations

import datetime as _dt
import math
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "BenchConfig",
    "BenchResult",
    "Candidate",
    "Progress",
    "cpu_name",
    "environment",
    "load_average",
    "measure",
    "thread_limits",
    "warm_seconds",
]


@dataclass
class Candidate:
    """One timed callable of a table.

    ``fn`` takes no argument and does the whole work once; ``sync`` (optional) waits for
    asynchronous devices (CUDA) and is called after each sample, inside the timed region.
    ``params`` is recorded as is in the results (backend, method, ...).
    """

    name: str
    fn: Callable[[], Any]
    params: dict[str, Any] = field(default_factory=dict)
    sync: Callable[[], Any] | None = None


@dataclass
class BenchConfig:
    """The options of one ``xback bench`` run, already validated by the command line."""

    sizes: list[int] | None = None
    dtypes: list[str] | None = None
    backends: list[str] = field(default_factory=lambda: ["numpy", "torch"])
    repeat: int | None = None
    threads: int | None = None
    device: str = "cpu"
    quick: bool = False

    def repeats(self, default_full: int = 7, default_quick: int = 3) -> int:
        if self.repeat is not None:
            return self.repeat
        return default_quick if self.quick else default_full

    @property
    def sample_time(self) -> float:
        """Target duration of one sample (seconds): calls are batched up to this."""
        return 0.002 if self.quick else 0.02

    def to_json(self) -> dict[str, Any]:
        return {
            "sizes": self.sizes,
            "dtypes": self.dtypes,
            "backends": self.backends,
            "repeat": self.repeat,
            "threads": self.threads,
            "device": self.device,
            "quick": self.quick,
        }


@dataclass
class BenchResult:
    """What one benchmark returns: flat result rows, notes, and how to read them."""

    name: str
    title: str
    rows: list[dict[str, Any]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    #: columns of ``rows`` (besides the timings) shown in the table, in order
    columns: list[str] = field(default_factory=list)
    #: key of the x axis of the plot (a column of ``rows``) and its label
    x_key: str = "size"
    x_label: str = "size"
    #: ``{"name": str, "value": float}`` per derived quantity (ratios), free form
    summary: list[dict[str, Any]] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "title": self.title,
            "columns": self.columns,
            "x_key": self.x_key,
            "x_label": self.x_label,
            "results": self.rows,
            "summary": self.summary,
            "notes": self.notes,
        }


class Progress(Protocol):
    """Progress protocol: ``add`` announces samples to come, ``advance`` counts one done.
    The command line plugs a rich progress bar in."""

    def add(self, total: int, description: str) -> None: ...

    def advance(self, n: int = 1) -> None: ...


_timer = time.perf_counter


#: a first call at least this long is not repeated before sampling (cheaper first calls are:
#: a compiled function's first call after a recompilation is no guide to the next ones)
_ONE_WARMUP_S = 1.0


def _calibrate(c: Candidate, target: float) -> tuple[int, float]:
    """Warm the candidate up (excluded) and choose how many calls make one sample."""
    t0 = _timer()
    c.fn()
    if c.sync is not None:
        c.sync()
    first = _timer() - t0
    if first >= 10 * target and first >= _ONE_WARMUP_S:
        return 1, first  # an expensive call: one warm-up is enough, one call per sample
    # second warm-up call: the first one pays for lazy imports, allocations, caches, a
    # (re)compilation; only the second one says what a call costs
    t0 = _timer()
    c.fn()
    if c.sync is not None:
        c.sync()
    once = max(_timer() - t0, 1e-9)
    if once >= target:
        return 1, once
    while True:
        number = max(1, min(int(target / once), 1_000_000))
        t0 = _timer()
        fn = c.fn
        for _ in range(number):
            fn()
        if c.sync is not None:
            c.sync()
        elapsed = _timer() - t0
        once = max(elapsed / number, 1e-9)
        if elapsed >= target * 0.5 or number >= 1_000_000:
            return number, once


def _sample(c: Candidate, number: int) -> float:
    fn = c.fn
    sync = c.sync
    t0 = _timer()
    for _ in range(number):
        fn()
    if sync is not None:
        sync()
    return (_timer() - t0) / number


#: BLAS/LAPACK-bound cases from this many bytes of input are timed in their steady state
WARM_MIN_BYTES = {"lstsq_grad": 1 << 20, "svd": 32 << 10}
#: ... after this long untimed (longer than OpenBLAS's idle threads spin after a call)
WARM_SECONDS = 0.12


def warm_seconds(op: str, nbytes: int) -> float:
    """Untimed running before each block of samples (:func:`measure`'s ``warm_s``) for an
    operation (``"svd"``, ``"svdvals"``, ``"lstsq_grad"``...) on ``nbytes`` of input whose
    candidates use every core: measured here, interleaving them put torch's LAPACK in the
    wake of OpenBLAS's spinning threads (up to 50x slower) and flipped decisions from one
    run to the next; in blocks, two runs agree within ~10%. Sorting is single-threaded in
    NumPy and needs none."""
    least = WARM_MIN_BYTES.get("svd" if op == "svdvals" else op)
    return WARM_SECONDS if least is not None and nbytes >= least else 0.0


def _warm(c: Candidate, seconds: float) -> None:
    """Call ``c`` untimed until ``seconds`` have passed (at least once)."""
    end = _timer() + seconds
    fn = c.fn
    while True:
        fn()
        if c.sync is not None:
            c.sync()
        if _timer() >= end:
            return


def measure(
    candidates: Sequence[Candidate],
    *,
    repeat: int,
    sample_time: float,
    progress: Progress | None = None,
    base: dict[str, Any] | None = None,
    baseline: str | None = None,
    warm_s: float = 0.0,
) -> list[dict[str, Any]]:
    """Time ``candidates`` interleaved round-robin and return one row per candidate.

    ``warm_s > 0``: the samples are taken in blocks instead, each candidate's block after
    ``warm_s`` seconds of untimed calls, so that it is timed in its steady state, as in a
    loop of its own calls, and not in the wake of the previous candidate: OpenBLAS's idle
    threads keep spinning on a core for about 0.1 s after a call, which on two cores
    halves a two-thread kernel timed right after it (and made torch's LAPACK up to 50x
    slower here). Two rounds, the second in reverse order, so that slow drift of the
    machine affects every candidate alike.

    Each row holds ``base`` (the table's parameters), the candidate's ``params``, and
    ``median_s``, ``min_s``, ``max_s``, ``spread`` (interquartile range / median),
    ``number`` (calls per sample), ``repeat`` and ``samples_s``; and ``ratio`` (median
    over the baseline's median) when ``baseline`` names a candidate.
    """
    load_before = load_average()
    numbers = [_calibrate(c, sample_time)[0] for c in candidates]
    samples: list[list[float]] = [[] for _ in candidates]
    if warm_s > 0:
        order = list(range(len(candidates)))
        for rnd, block in enumerate((repeat - repeat // 2, repeat // 2)):
            for i in order if rnd == 0 else order[::-1]:
                if block:
                    _warm(candidates[i], warm_s)
                for _ in range(block):
                    samples[i].append(_sample(candidates[i], numbers[i]))
                    if progress is not None:
                        progress.advance(1)
    else:
        for _ in range(repeat):
            for i, c in enumerate(candidates):
                samples[i].append(_sample(c, numbers[i]))
                if progress is not None:
                    progress.advance(1)
    load_after = load_average()
    rows: list[dict[str, Any]] = []
    for c, number, ts in zip(candidates, numbers, samples, strict=True):
        med = statistics.median(ts)
        if len(ts) >= 4:
            q = statistics.quantiles(ts, n=4)
            iqr = q[2] - q[0]
        else:
            iqr = max(ts) - min(ts)
        row: dict[str, Any] = dict(base or {})
        row.update(c.params)
        row.update(
            candidate=c.name,
            median_s=med,
            min_s=min(ts),
            max_s=max(ts),
            spread=iqr / med if med > 0 else math.nan,
            number=number,
            repeat=repeat,
            samples_s=ts,
            # a sample more than twice the fastest: the machine (another process, a stalled
            # BLAS thread) interfered; reported, not hidden
            unstable=max(ts) > 2 * min(ts),
            load_before=load_before,
            load_after=load_after,
        )
        rows.append(row)
    if baseline is not None:
        ref = next((r["median_s"] for r in rows if r["candidate"] == baseline), None)
        for r in rows:
            r["ratio"] = r["median_s"] / ref if ref else None
    return rows


def time_once(fn: Callable[[], Any], repeat: int = 1) -> float:
    """Best of ``repeat`` single calls (for expensive one-off setup costs)."""
    best = math.inf
    for _ in range(repeat):
        t0 = _timer()
        fn()
        best = min(best, _timer() - t0)
    return best


# -- environment --------------------------------------------------------------------------
def load_average() -> list[float] | None:
    """The 1, 5 and 15 minute load averages, or None where the OS has none (Windows)."""
    try:
        return [round(v, 2) for v in os.getloadavg()]
    except (OSError, AttributeError):
        return None


def _torch_module() -> Any:
    return sys.modules.get("torch")


@contextmanager
def thread_limits(threads: int | None) -> Iterator[None]:
    """Limit BLAS/OpenMP threads (threadpoolctl) and torch's intra-op threads to ``threads``
    for the duration of the block; restore them afterwards. ``None`` changes nothing."""
    if threads is None:
        yield
        return
    from threadpoolctl import threadpool_limits

    torch = _torch_module()
    old = torch.get_num_threads() if torch is not None else None
    with threadpool_limits(limits=threads):
        if torch is not None:
            torch.set_num_threads(threads)
        try:
            yield
        finally:
            if torch is not None and old is not None:
                torch.set_num_threads(old)


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def blas_info() -> list[dict[str, Any]]:
    """threadpoolctl's view of the native thread pools loaded in this process."""
    try:
        from threadpoolctl import threadpool_info
    except ImportError:
        return []
    keep = ("user_api", "internal_api", "prefix", "version", "num_threads", "threading_layer",
            "architecture", "filepath")
    return [{k: d.get(k) for k in keep if k in d} for d in threadpool_info()]


def _source_commit() -> str | None:
    """The git commit of the xback source tree when it is a checkout (editable install)."""
    import subprocess

    here = os.path.dirname(os.path.abspath(__file__))
    try:
        out = subprocess.run(
            ["git", "-C", here, "rev-parse", "--short", "HEAD"],
            capture_output=True, text=True, timeout=2, check=True,
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def environment(device: str = "cpu") -> dict[str, Any]:
    """Everything that decides a timing: versions, CPU, threads, BLAS, load, env variables."""
    import numpy as np

    import xback

    env: dict[str, Any] = {
        "timestamp_utc": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "python": platform.python_version(),
        "implementation": platform.python_implementation(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": cpu_name(),
        "cpu_count": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "load_average": load_average(),
        "xback": xback.__version__,
        "xback_commit": _source_commit(),
        "numpy": np.__version__,
        "env_vars": {
            k: os.environ.get(k)
            for k in (
                "OPENBLAS_CORETYPE",
                "OPENBLAS_L2_SIZE",
                "OPENBLAS_NUM_THREADS",
                "OMP_NUM_THREADS",
                "MKL_NUM_THREADS",
            )
        },
        "device": device,
    }
    torch = _torch_module()
    if torch is not None:
        env["torch"] = torch.__version__
        env["torch_threads"] = torch.get_num_threads()
        env["torch_interop_threads"] = torch.get_num_interop_threads()
        env["cuda_available"] = bool(torch.cuda.is_available())
        if device.startswith("cuda") and torch.cuda.is_available():
            env["cuda_device"] = torch.cuda.get_device_name(device)
    env["blas"] = blas_info()
    return env


def machine_line(env: dict[str, Any]) -> str:
    """One line describing the machine, for table captions and plot titles."""
    blas = next((b for b in env.get("blas", []) if b.get("user_api") == "blas"), None)
    blas_s = (
        f"{blas.get('internal_api')} {blas.get('version')} x{blas.get('num_threads')}"
        if blas
        else "BLAS ?"
    )
    torch_s = f"torch {env['torch']} x{env.get('torch_threads')}" if "torch" in env else "no torch"
    load = env.get("load_average")
    load_s = f"load {load[0]:.2f}" if load else ""
    parts = [
        f"{env.get('cpu', '?')} ({env.get('cpu_count')} CPUs)",
        f"NumPy {env.get('numpy')} / {blas_s}",
        torch_s,
        f"device {env.get('device', 'cpu')}",
        load_s,
    ]
    return ", ".join(p for p in parts if p)
