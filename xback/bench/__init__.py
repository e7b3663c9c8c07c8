"""Benchmarks behind ``xback bench``: shared by the command line, ``benchmarks/`` and the docs.

Each benchmark is a module with ``run(cfg, progress=None) -> BenchResult``; they share the
timing harness in :mod:`xback.bench._harness` (interleaved round-robin candidates, warm-up
excluded, median/min/spread, environment record). Nothing here is imported by
``import xback``; torch is imported only when a benchmark runs with the torch backend.

Examples
--------
>>> from xback.bench import BENCHMARKS
>>> list(BENCHMARKS)
['lstsq-grad', 'convert', 'sort', 'svd', 'overhead', 'route', 'compile', 'sort-family', 'programs']
"""

from __future__ import annotations

import importlib
from typing import Any

from xback.bench._harness import (
    BenchConfig,
    BenchResult,
    Candidate,
    Progress,
    environment,
    machine_line,
    measure,
    thread_limits,
)

__all__ = [
    "BENCHMARKS",
    "BenchConfig",
    "BenchResult",
    "Candidate",
    "Progress",
    "environment",
    "machine_line",
    "measure",
    "run",
    "run_all",
    "thread_limits",
]

#: benchmark name on the command line -> module implementing ``run``
BENCHMARKS: dict[str, str] = {
    "lstsq-grad": "xback.bench.lstsq_grad",
    "convert": "xback.bench.convert",
    "sort": "xback.bench.sort",
    "svd": "xback.bench.svd",
    "overhead": "xback.bench.overhead",
    "route": "xback.bench.route",
    "compile": "xback.bench.compile",
    "sort-family": "xback.bench.sort_family",
    "programs": "xback.bench.programs",
}


def run(name: str, cfg: BenchConfig, progress: Progress | None = None) -> BenchResult:
    """Run the benchmark ``name`` (a key of :data:`BENCHMARKS`) with ``cfg``."""
    try:
        module = BENCHMARKS[name]
    except KeyError:
        raise ValueError(
            f"unknown benchmark {name!r}; choose from {', '.join([*BENCHMARKS, 'all'])}"
        ) from None
    result: BenchResult = importlib.import_module(module).run(cfg, progress)
    return result


def run_all(
    names: list[str], cfg: BenchConfig, progress: Progress | None = None
) -> dict[str, Any]:
    """Run ``names`` under ``cfg.threads`` and return the JSON document of the run:
    ``{"environment": ..., "config": ..., "benchmarks": {name: result}}``."""
    if "torch" in cfg.backends:
        importlib.import_module("torch")  # so that the environment records torch's threads
    with thread_limits(cfg.threads):
        env_before = environment(cfg.device)
        results = {name: run(name, cfg, progress).to_json() for name in names}
        env_after = environment(cfg.device)
    env_before["load_average_after"] = env_after.get("load_average")
    env_before["threads_requested"] = cfg.threads
    return {
        "schema": "xback-bench/1",
        "environment": env_before,
        "config": cfg.to_json(),
        "benchmarks": results,
    }
