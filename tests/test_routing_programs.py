"""Routing in whole programs: the switching penalty in the cost table, and the programs
benchmark (``xback bench programs``).

Every test installs its own table (the ``table`` fixture). No test asserts a timing.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from xback import _routing
from xback._dispatch import load_backend
from xback.bench import tune as tune_mod

from .test_routing import make_table

torch = pytest.importorskip("torch")


def _with_penalty(penalty: Any, gain: float = 2.0) -> dict[str, Any]:
    """Every case routes NumPy input to torch from 4096 elements on, confirmed ``gain``
    times faster than NumPy's own call, with ``penalty`` (seconds, or None) measured for
    the caller's next calls."""
    t = make_table("torch", from_size=4096)
    for e in t["entries"]:
        e["confirmed"] = {"numpy": {"own": 1e-3, "torch": 1e-3 / gain}}
        e["penalty_seconds"] = {"numpy": penalty}
    return t


def _routed_cases(t: dict[str, Any]) -> int:
    return len({(e["op"], e["layout"], e["dtype"]) for e in t["entries"]})


def test_route_whose_penalty_exceeds_its_gain_is_dropped(table: Callable[..., Path]) -> None:
    # gain 0.5 ms per call, but the caller's next calls pay 0.6 ms: the program is slower
    t = _with_penalty(0.6e-3)
    table(t)
    assert _routing.plan_summary("numpy") == []
    b = load_backend("numpy")
    assert _routing.kernel_target("sort/1d", b, np.arange(10_000)) is None
    # a penalty within the gain (less the margin) keeps the route
    t = _with_penalty(0.2e-3)
    table(t)
    assert len(_routing.plan_summary("numpy")) == _routed_cases(t)
    assert _routing.kernel_target("sort/1d", b, np.arange(10_000)) is load_backend("torch")


def test_penalty_just_past_the_margin_drops(table: Callable[..., Path]) -> None:
    routed = 1e-3 / 2.0
    edge = 1e-3 - routed * _routing.MARGIN  # the largest penalty the route could afford
    table(_with_penalty(edge * 1.01))
    assert _routing.plan_summary("numpy") == []
    table(_with_penalty(edge * 0.99))
    assert _routing.plan_summary("numpy")


def test_unmeasurable_penalty_means_no_route(table: Callable[..., Path]) -> None:
    table(_with_penalty(None))
    assert _routing.plan_summary("numpy") == []


def test_penalty_of_another_source_does_not_apply(table: Callable[..., Path]) -> None:
    t = make_table("torch", from_size=4096)
    for e in t["entries"]:
        e["penalty_seconds"] = {"torch": None}  # torch input is not routed here anyway
    table(t)
    assert len(_routing.plan_summary("numpy")) == _routed_cases(t)


def test_penalty_without_confirmation_uses_the_kernel_times(table: Callable[..., Path]) -> None:
    # make_table: the other library 10x faster (1 ms against 10 ms), no confirmed times
    t = make_table("torch", from_size=4096)
    for e in t["entries"]:
        e["penalty_seconds"] = {"numpy": 9.5e-3}
    table(t)
    assert _routing.plan_summary("numpy") == []
    for e in t["entries"]:
        e["penalty_seconds"] = {"numpy": 1e-3}
    table(t)
    assert _routing.plan_summary("numpy")


@pytest.mark.parametrize(("op", "layout", "shape"), [("sort", "1d", (4096,)),
                                                     ("lstsq_grad", "vec", (400, 40))])
def test_tune_measures_the_penalty(op: str, layout: str, shape: tuple[int, ...]) -> None:
    """``switching_penalty`` times the confirmed routes in a loop with the caller's next
    calls and gives seconds (>= 0) or None per source that has a route."""
    case = tune_mod.Case(op, layout, "float64", shape, 2)
    data = tune_mod._data(case, np.random.default_rng(1))
    backends = [load_backend("numpy"), load_backend("torch")]
    confirmed = {"numpy": {"own": 1.0, "torch": 0.1}, "torch": {"own": 1.0, "numpy": 0.1},
                 # a route the confirmation dropped is not measured
                 }
    pen = tune_mod.switching_penalty(case, backends, data, confirmed, repeat=3)
    assert set(pen) == {"numpy", "torch"}
    assert all(p is None or p >= 0 for p in pen.values())
    dropped = {"numpy": {"own": 1.0, "torch": 1.0}}
    assert tune_mod.switching_penalty(case, backends, data, dropped, repeat=3) == {}


# -- the programs benchmark ------------------------------------------------------------------
def test_programs_benchmark_quick(table: Callable[..., Path]) -> None:
    """Every program runs with routing on and off (interleaved), with a ratio each, and the
    notes say which table was active and whether it was measured on this CPU model."""
    from xback.bench import BenchConfig, programs

    table(make_table("torch", from_size=4096))  # routes every case: both settings differ
    res = programs.run(BenchConfig(quick=True, repeat=1))
    names = {r["program"] for r in res.rows}
    expected = {n for n, (_b, _lib, numba) in programs.PROGRAMS.items()
                if not numba or _have_numba()}
    assert names == expected and len(names) >= 4
    for name in names:
        rows = {r["routing"]: r for r in res.rows if r["program"] == name}
        assert set(rows) == {"on", "off"}
        assert rows["off"]["ratio"] == 1.0 and rows["on"]["ratio"] > 0
        assert rows["on"]["median_s"] > 0
    assert len(res.summary) == len(names)
    assert any(n.startswith("routing table: user") and "another CPU model" in n
               for n in res.notes), res.notes


def test_programs_benchmark_numpy_only() -> None:
    from xback.bench import BenchConfig, programs

    res = programs.run(BenchConfig(quick=True, repeat=1, backends=["numpy"]))
    assert "torch training loop" not in {r["program"] for r in res.rows}
    assert any("torch training loop: skipped" in n for n in res.notes)


def _have_numba() -> bool:
    import importlib.util

    return importlib.util.find_spec("numba") is not None


def test_routes_taken_counts_the_calls_sent_elsewhere(table: Callable[..., Path]) -> None:
    from xback.bench import programs

    table(make_table("torch", from_size=4096))
    prog = programs._pipeline(True)
    taken = programs.routes_taken(prog, "numpy")
    assert taken.get("torch", 0) >= 4  # the int64 argsorts and sorts of 20,000 values
    b = load_backend("numpy")
    assert "sort" not in vars(b)  # the spies are gone
    table(make_table("numpy", from_size=4096))  # nothing routed for NumPy input
    assert programs.routes_taken(prog, "numpy") == {}


def test_torch_input_blas_work_never_goes_to_a_spinning_openblas(
    table: Callable[..., Path],
) -> None:
    """Torch input's lstsq_grad and svd are not routed to NumPy's multi-threaded BLAS (its
    threads keep spinning after the call, against the torch caller's next operations);
    sorts (single-threaded in NumPy) still are, and NumPy input's routes are unchanged."""
    t = make_table("numpy")
    table(t)
    threads = t["fingerprint"].get("blas_threads")
    ops = {(op, target) for op, _, _, _, _, target in _routing.plan_summary("torch")}
    assert ("sort", "numpy") in ops and ("argsort", "numpy") in ops
    blas_to_numpy = {op for op, target in ops if target == "numpy"} & {"lstsq_grad", "svd"}
    assert blas_to_numpy == (set() if threads is None or threads > 1 else {"lstsq_grad", "svd"})
    table(make_table("torch"))  # NumPy input: its BLAS routes to torch are kept
    assert {op for op, *_ in _routing.plan_summary("numpy")} >= {"lstsq_grad", "svd", "sort"}


@pytest.mark.parametrize(("threads", "left_out"), [(1, set()), (2, {"numpy"}),
                                                   (None, {"numpy"})])
def test_spinning_pools_rule(threads: int | None, left_out: set[str]) -> None:
    t = {"fingerprint": {"blas_threads": threads}}
    assert _routing._spinning_pools(t, "torch") == left_out
    assert _routing._spinning_pools(t, "numpy") == set()


def test_routes_taken_counts_the_fused_kernel_where_it_computed() -> None:
    import xback
    from xback.bench import programs

    pytest.importorskip("numba")
    rng = np.random.default_rng(0)
    A = rng.standard_normal((64, 8))
    x, y = rng.standard_normal(8), rng.standard_normal(64)
    fused = lambda: xback.lstsq_grad(A, x, y, method="fused")  # noqa: E731
    assert programs.routes_taken(fused, "numpy") == {"fused": 1}
    # a complex A is not the kernel's: the call computes the BLAS formula, not counted
    Ac = A.astype(complex)
    assert programs.routes_taken(lambda: xback.lstsq_grad(Ac, x, y, method="fused"),
                                 "numpy") == {}
