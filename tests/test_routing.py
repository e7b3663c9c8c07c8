"""Routing (xback._routing): the faster CPU library computes, the caller sees no difference.

Every test installs its own table (the ``table`` fixture), so the results do not depend on
the machine's tuned or shipped table. The reference for every routed result is the same
call with ``route=False``, and for sorting also NumPy's stable sort.
"""

from __future__ import annotations

import concurrent.futures
import functools
import json
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import xback
from xback import _fused, _machine, _routing
from xback._dispatch import load_backend
from xback.bench import tune as tune_mod

from .conftest import c_stdio_output, requires_torch

torch = pytest.importorskip("torch")

SORT_DTYPES = ("float32", "float64", "int32", "int64")
OPS = ("sort", "argsort")


def make_table(faster: str, *, from_size: int = 1, ratio: float = 10.0) -> dict[str, Any]:
    """A table in which ``faster`` is ``ratio`` times faster for every case measured by
    ``xback tune`` at every size >= ``from_size`` (and slower below it)."""
    slower = "numpy" if faster == "torch" else "torch"
    entries = []
    seen = set()
    for case in tune_mod.cases(quick=True):
        if (case.op, case.layout, case.dtype) in seen:
            continue
        seen.add((case.op, case.layout, case.dtype))
        sizes = [(from_size, True)] if from_size == 1 else [(from_size // 2, False),
                                                             (from_size, True)]
        for size, fast in sizes:
            secs = {faster: 1e-3, slower: 1e-3 * ratio} if fast else {faster: 1e-3, slower: 1e-3}
            entries.append(
                {"op": case.op, "layout": case.layout, "dtype": case.dtype,
                 "shape": [size], "size": size, "arrays": case.arrays, "seconds": secs}
            )
    return {
        "format": _routing.TABLE_FORMAT,
        "created": "test",
        "machine": {"cpu": "test", "cores": 2},
        "fingerprint": _machine.fingerprint(),  # this machine, as this process has it
        "libraries": {"numpy": np.__version__, "torch": torch.__version__},
        "threads": {},
        "convert_seconds": 0.0,
        "entries": entries,
    }


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Counts the calls each backend's kernels receive (sort, argsort, svd, svdvals,
    lstsq_grad), to see where a call really ran."""
    counts: dict[str, int] = {}
    for name in ("numpy", "torch"):
        b = load_backend(name)
        for op in ("sort", "argsort", "svd", "svdvals", "lstsq_grad"):
            orig = getattr(b, op)

            def spy(*args: Any, _orig: Any = orig, _key: str = f"{name}.{op}") -> Any:
                counts[_key] = counts.get(_key, 0) + 1
                return _orig(*args)

            monkeypatch.setattr(b, op, spy)
        # the common sort call's direct kernels, counted as the method they stand for
        spied = {}
        for dt, kernels in b.last_axis_sorts.items():
            spied[dt] = tuple(
                functools.partial(_counted, counts, f"{name}.{'argsort' if i >= 2 else 'sort'}", f)
                for i, f in enumerate(kernels)
            )
        monkeypatch.setattr(b, "last_axis_sorts", spied)
    return counts


def _counted(counts: dict[str, int], key: str, fn: Any, *args: Any) -> Any:
    counts[key] = counts.get(key, 0) + 1
    return fn(*args)


def kind(backend: str, a: np.ndarray) -> Any:
    return a if backend == "numpy" else torch.from_numpy(a.copy())


def as_np(x: Any) -> np.ndarray:
    return x if isinstance(x, np.ndarray) else x.numpy()


def same(routed: Any, plain: Any) -> None:
    """Same kind, dtype, shape and bits."""
    assert type(routed) is type(plain)
    assert routed.dtype == plain.dtype
    assert tuple(routed.shape) == tuple(plain.shape)
    np.testing.assert_array_equal(as_np(routed), as_np(plain), strict=True)


OTHER = {"numpy": "torch", "torch": "numpy"}


# -- sorting: bit-identical --------------------------------------------------------------------
@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("op", OPS)
@pytest.mark.parametrize("dtype", SORT_DTYPES)
@pytest.mark.parametrize("descending", [False, True])
def test_routed_sort_is_bit_identical(
    table: Callable[..., Path], calls: dict[str, int], backend: str, op: str, dtype: str,
    descending: bool,
) -> None:
    table(make_table(OTHER[backend]))
    rng = np.random.default_rng(7)
    a = rng.integers(-5, 5, size=(6, 50)).astype(dtype)  # many ties
    if dtype.startswith("float"):
        a[0, :5] = np.nan
        a[1, :4] = [-0.0, 0.0, np.inf, -np.inf]
    x = kind(backend, a)
    for kwargs in ({}, {"axis": None}, {"axis": -1}):
        f = getattr(xback, op)
        routed = f(x, descending=descending, **kwargs)
        assert calls.get(f"{OTHER[backend]}.{op}", 0) > 0, "the call was not routed"
        calls.clear()
        with xback.use(route=False):
            plain = f(x, descending=descending, **kwargs)
        assert calls.get(f"{OTHER[backend]}.{op}", 0) == 0
        calls.clear()
        same(routed, plain)
    np.testing.assert_array_equal(as_np(x), a)  # the input is untouched


@requires_torch
@given(
    a=hnp.arrays(
        st.sampled_from([np.float32, np.float64, np.int32, np.int64]),
        hnp.array_shapes(min_dims=1, max_dims=2, min_side=1, max_side=40),
        elements={"allow_nan": True, "allow_infinity": True},
    ),
    backend=st.sampled_from(["numpy", "torch"]),
    descending=st.booleans(),
    op=st.sampled_from(OPS),
)
def test_routed_sort_property(
    a: np.ndarray, backend: str, descending: bool, op: str
) -> None:
    tab = make_table(OTHER[backend])
    old = _routing._active
    try:
        _routing._active = {"source": "user", "table": tab, "problem": None}
        _routing._PLANS.clear()
        x = kind(backend, a)
        f = getattr(xback, op)
        routed = f(x, descending=descending)
        with xback.use(route=False):
            plain = f(x, descending=descending)
        same(routed, plain)
        if not descending:  # and the independent reference: NumPy's stable sort, NaN last
            ref = (np.sort if op == "sort" else np.argsort)(a, axis=-1, kind="stable")
            np.testing.assert_array_equal(as_np(routed), ref)
    finally:
        _routing._active = old
        _routing._PLANS.clear()


# -- linear algebra: within rounding, same signs -------------------------------------------------
@pytest.fixture
def every_route(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every route a table names, torch input's BLAS work to a multi-threaded OpenBLAS too:
    for the tests of what a route computes (whether such a route is taken is
    tests/test_routing_programs.py's question)."""
    monkeypatch.setattr(_routing, "_spinning_pools", lambda table, source: frozenset())


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("shape", [(40, 4), (7, 6)])
def test_routed_svd_matches(
    table: Callable[..., Path], calls: dict[str, int], backend: str, dtype: str,
    shape: tuple[int, int], every_route: None,
) -> None:
    table(make_table(OTHER[backend]))
    a = np.random.default_rng(3).standard_normal(shape).astype(dtype)
    x = kind(backend, a)
    tol = 1e-4 if dtype == "float32" else 1e-12
    for full in (False, True):
        U, S, Vh = xback.svd(x, full_matrices=full, canonical_signs=True)
        assert calls.pop(f"{OTHER[backend]}.svd", 0) == 1
        with xback.use(route=False):
            U0, S0, Vh0 = xback.svd(x, full_matrices=full, canonical_signs=True)
        for r, p in ((U, U0), (S, S0), (Vh, Vh0)):
            assert type(r) is type(p) and r.dtype == p.dtype and r.shape == p.shape
        k = min(shape)
        np.testing.assert_allclose(as_np(S), as_np(S0), rtol=tol, atol=tol)
        # canonical signs: the first k singular vectors agree (the rest of a full U/Vh is
        # any orthonormal completion)
        np.testing.assert_allclose(as_np(U)[:, :k], as_np(U0)[:, :k], atol=tol * 10)
        np.testing.assert_allclose(as_np(Vh)[:k], as_np(Vh0)[:k], atol=tol * 10)
    s = xback.svdvals(x)
    assert calls.pop(f"{OTHER[backend]}.svdvals", 0) == 1
    with xback.use(route=False):
        s0 = xback.svdvals(x)
    assert type(s) is type(s0) and s.dtype == s0.dtype
    np.testing.assert_allclose(as_np(s), as_np(s0), rtol=tol, atol=tol)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
def test_routed_svd_still_rejects_nonfinite(
    table: Callable[..., Path], backend: str
) -> None:
    table(make_table(OTHER[backend]))
    a = np.random.default_rng(0).standard_normal((6, 3))
    a[2, 1] = np.inf
    with pytest.raises(ValueError, match="non-finite"):
        xback.svd(kind(backend, a))
    with pytest.raises(ValueError, match="non-finite"):
        xback.svdvals(kind(backend, a))


def test_routed_numpy_svdvals_checks_its_input_first(
    table: Callable[..., Path], calls: dict[str, int], every_route: None,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A NumPy input routed to torch keeps NumPy's rule (Backend.svd_checked_first): inf is
    refused before any kernel runs, so MKL prints nothing on stdout."""
    table(make_table("torch"))
    a = np.random.default_rng(0).standard_normal((6, 3))
    assert calls.pop("torch.svdvals", 0) == 0
    xback.svdvals(a)
    assert calls.pop("torch.svdvals", 0) == 1  # the route is taken
    a[:] = np.inf
    with pytest.raises(ValueError, match="non-finite"):
        xback.svdvals(a)
    assert calls == {}  # no kernel ran
    assert "LASCL" not in c_stdio_output(capfd)


@pytest.mark.parametrize("backend", ["numpy", "torch"])
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_routed_lstsq_grad_matches(
    table: Callable[..., Path], calls: dict[str, int], backend: str, dtype: str,
    every_route: None,
) -> None:
    table(make_table(OTHER[backend]))
    rng = np.random.default_rng(5)
    A, v, y = (rng.standard_normal(s).astype(dtype) for s in ((50, 5), (5,), (50,)))
    args = [kind(backend, t) for t in (A, v, y)]
    g = xback.lstsq_grad(*args)
    assert calls.pop(f"{OTHER[backend]}.lstsq_grad", 0) == 1
    with xback.use(route=False):
        g0 = xback.lstsq_grad(*args)
    assert type(g) is type(g0) and g.dtype == g0.dtype and g.shape == g0.shape
    ref = 2 * A.astype(np.float64).T @ (A.astype(np.float64) @ v - y)
    tol = 1e-4 if dtype == "float32" else 1e-12
    np.testing.assert_allclose(as_np(g), ref, rtol=tol, atol=tol * np.abs(ref).max())
    # an explicit method is the caller's choice: not routed
    xback.lstsq_grad(*args, method="explicit")
    assert calls.pop(f"{OTHER[backend]}.lstsq_grad", 0) == 0


# -- when routing must not happen --------------------------------------------------------------
def test_unstable_sorts_stay(table: Callable[..., Path], calls: dict[str, int]) -> None:
    # ties may come out in either order when stable=False: routing would change the answer
    table(make_table("torch"))
    a = np.array([3, 1, 2, 1, 3] * 20)
    xback.argsort(a, stable=False)
    xback.sort(a, stable=False, axis=0)
    assert calls == {"numpy.argsort": 1, "numpy.sort": 1}


def test_route_false_and_nesting(table: Callable[..., Path], calls: dict[str, int]) -> None:
    table(make_table("torch"))
    a = np.arange(100, 0, -1, dtype=np.int64)
    with xback.use(route=False):
        assert not _routing.enabled()
        xback.sort(a)
        with xback.use("numpy"):  # an inner use keeps the outer route choice
            assert not _routing.enabled()
            xback.sort(a)
        with xback.use(route=True):
            assert _routing.enabled()
            xback.sort(a)
    assert calls == {"numpy.sort": 2, "torch.sort": 1}
    assert _routing.enabled()
    assert repr(xback.use(route=False)) == "xback.use(None, device=None, route=False)"
    with pytest.raises(TypeError, match="route must be True, False or None"):
        xback.use(route="no")  # type: ignore[arg-type]


def test_autograd_and_transforms_stay_in_torch(
    table: Callable[..., Path], calls: dict[str, int]
) -> None:
    table(make_table("numpy"))
    t = torch.tensor([3.0, 1.0, 2.0], requires_grad=True)
    s = xback.sort(t)
    assert s.requires_grad and calls == {"torch.sort": 1}
    s.sum().backward()
    assert t.grad is not None
    calls.clear()

    A = torch.randn(20, 3, dtype=torch.float64, requires_grad=True)
    xback.lstsq_grad(A, torch.randn(3, dtype=torch.float64), torch.randn(20, dtype=torch.float64))
    assert calls == {"torch.lstsq_grad": 1}
    calls.clear()

    # inside torch.func transforms the tensors are wrappers NumPy cannot read
    out = torch.vmap(lambda r: xback.sort(r))(torch.tensor([[2.0, 1.0], [0.0, -1.0]]))
    assert out.tolist() == [[1.0, 2.0], [-1.0, 0.0]]
    assert "numpy.sort" not in calls

    # a subclass (nn.Parameter without grad) keeps its own semantics
    calls.clear()
    p = torch.nn.Parameter(torch.tensor([2.0, 1.0]), requires_grad=False)
    xback.sort(p)
    assert calls == {"torch.sort": 1}


def test_meta_device_and_non_last_axis_stay(
    table: Callable[..., Path], calls: dict[str, int]
) -> None:
    table(make_table("numpy"))
    m = torch.empty(10, 10, device="meta")
    xback.sort(m)
    assert calls == {"torch.sort": 1}
    calls.clear()
    table(make_table("torch"))
    a = np.random.default_rng(1).integers(0, 9, size=(10, 10))
    r = xback.sort(a, axis=0)  # not a measured layout
    assert calls == {"numpy.sort": 1}
    np.testing.assert_array_equal(r, np.sort(a, axis=0, kind="stable"))


def test_small_inputs_stay(table: Callable[..., Path], calls: dict[str, int]) -> None:
    table(make_table("torch", from_size=1024))
    small = np.arange(500, dtype=np.int64)[::-1].copy()
    big = np.arange(5000, dtype=np.int64)[::-1].copy()
    xback.sort(small)
    assert calls == {"numpy.sort": 1}
    calls.clear()
    xback.sort(big)
    assert calls == {"torch.sort": 1}


def test_gain_must_exceed_conversions_and_margin(table: Callable[..., Path]) -> None:
    t = make_table("torch", ratio=1.04)  # within the margin: not worth it
    table(t)
    assert _routing.plan_summary("numpy") == []
    t = make_table("torch", ratio=3.0)
    t["convert_seconds"] = 1.0  # conversions dearer than the whole call
    table(t)
    assert _routing.plan_summary("numpy") == []


def test_unshareable_input_stays(table: Callable[..., Path], calls: dict[str, int]) -> None:
    table(make_table("torch"))
    a = np.arange(50, dtype=np.int64)[::-1]  # negative strides: torch cannot share them
    r = xback.sort(a)
    assert calls == {"numpy.sort": 1}
    np.testing.assert_array_equal(r, np.arange(50))
    calls.clear()
    ro = np.arange(50, 0, -1, dtype=np.int64)
    ro.flags.writeable = False  # read-only: shared (never written), routed, untouched
    r = xback.sort(ro)
    assert calls == {"torch.sort": 1}
    assert type(r) is np.ndarray and r.flags.writeable
    np.testing.assert_array_equal(r, np.arange(1, 51))
    np.testing.assert_array_equal(ro, np.arange(50, 0, -1))


def test_threads_never_exceed_the_callers_limit(
    table: Callable[..., Path], calls: dict[str, int]
) -> None:
    """A route never computes on more threads than the caller allowed its own library:
    torch input with torch on one thread stays off NumPy's BLAS of two; NumPy input with
    BLAS on one thread may go to torch, which computes a routed call on one thread."""
    from threadpoolctl import threadpool_limits

    old = torch.get_num_threads()
    A = np.random.default_rng(0).standard_normal((60, 8))
    try:
        torch.set_num_threads(1)
        table(make_table("numpy"))
        with threadpool_limits(limits=2, user_api="blas"):
            xback.svdvals(torch.from_numpy(A))
        assert calls == {"torch.svdvals": 1}
        torch.set_num_threads(2)
        table(make_table("torch"))
        xback.svdvals(A)  # the plans are built with the settings the table was measured with
        with threadpool_limits(limits=1, user_api="blas"):
            xback.svdvals(A)  # then the caller limits its BLAS: torch computes on one thread
        assert calls == {"torch.svdvals": 3}
    finally:
        torch.set_num_threads(old)


def _threads_seen(monkeypatch: pytest.MonkeyPatch, seen: list[int], delay: float = 0.0) -> None:
    """torch's sort records ``torch.get_num_threads()`` as it computes (after ``delay``)."""
    tb = load_backend("torch")
    orig = tb.sort

    def spy(*args: Any) -> Any:
        if delay:
            time.sleep(delay)
        seen.append(torch.get_num_threads())
        return orig(*args)

    monkeypatch.setattr(tb, "sort", spy)


def test_a_routed_call_leaves_no_torch_threads_behind(
    table: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A call routed to torch computes on one torch thread (libgomp's workers would spin
    after it on the cores the caller's next calls need), and the caller's setting is back
    after it, also when the kernel raises; torch's own calls keep the caller's setting."""
    table(make_table("torch"))
    seen: list[int] = []
    _threads_seen(monkeypatch, seen)
    a = np.arange(100, 0, -1, dtype=np.int64)
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        np.testing.assert_array_equal(xback.sort(a, axis=0), np.arange(1, 101))
        assert seen == [1] and torch.get_num_threads() == 2
        xback.sort(torch.from_numpy(a), axis=0)  # torch's own call: not routed
        assert seen == [1, 2] and torch.get_num_threads() == 2

        def boom(*args: Any) -> Any:
            raise RuntimeError("boom")

        monkeypatch.setattr(load_backend("torch"), "sort", boom)
        with pytest.raises(RuntimeError, match="boom"):
            xback.sort(a, axis=0)
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(old)


def test_concurrent_routed_calls_restore_the_callers_threads(
    table: Callable[..., Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Routed calls overlapping in several threads each compute on one torch thread (the
    setting is the calling thread's), and afterwards the caller's setting holds: in this
    thread and for a thread started later (the setting is also the new threads' default).
    The threads have called torch before (a thread whose first torch call falls inside a
    routed call starts on one thread: docs/routing.md), and the plans are built first."""
    table(make_table("torch"))
    seen: list[int] = []
    a = np.arange(100, 0, -1, dtype=np.int64)
    old = torch.get_num_threads()
    try:
        torch.set_num_threads(2)
        xback.sort(a, axis=0)  # the plans, built with this thread's settings
        _threads_seen(monkeypatch, seen, delay=0.002)
        with concurrent.futures.ThreadPoolExecutor(4) as pool:
            ready = threading.Barrier(4)
            started = [pool.submit(lambda: (torch.get_num_threads(), ready.wait())[0])
                       for _ in range(4)]
            assert [f.result() for f in started] == [2] * 4  # every worker's own setting
            results = list(pool.map(lambda _: xback.sort(a, axis=0), range(40)))
        assert all((r == np.arange(1, 101)).all() for r in results)
        assert seen == [1] * 40 and torch.get_num_threads() == 2
        with concurrent.futures.ThreadPoolExecutor(1) as fresh:
            assert fresh.submit(torch.get_num_threads).result() == 2
    finally:
        torch.set_num_threads(old)


# -- the table: files, defaults, errors ----------------------------------------------------------
def test_broken_user_table_is_reported_and_skipped(
    table: Callable[..., Path], tmp_path: Path
) -> None:
    path = table(make_table("torch"))
    path.write_text("{not json")
    _routing.reload()
    with pytest.warns(RuntimeWarning, match="routing-table.json: not valid JSON"):
        act = _routing.active_table()
    assert act["source"] == "default" and "routing-table.json" in act["problem"]
    path.write_text(json.dumps({"format": "something else"}))
    _routing.reload()
    with pytest.warns(RuntimeWarning, match="not an xback routing table"):
        assert "not an xback routing table" in _routing.active_table()["problem"]


def test_no_table_routes_nothing(table: Callable[..., Path], calls: dict[str, int]) -> None:
    table(None)
    assert _routing.active_table()["source"] == "none"
    xback.sort(np.arange(10**5, 0, -1))
    assert calls == {"numpy.sort": 1}


def test_shipped_default_table_is_valid() -> None:
    t = _routing.load_table(_routing.default_table_path())
    assert set(t["libraries"]) == {"numpy", "torch"}
    ops = {e["op"] for e in t["entries"]}
    assert ops == {"sort", "argsort", "svd", "lstsq_grad"}
    for e in t["entries"]:  # the fused kernel's column: lstsq_grad only (Numba was there)
        extra = {"fused"} if e["op"] == "lstsq_grad" else set()
        assert set(e["seconds"]) == {"numpy", "torch"} | extra, e


def test_confirmed_route_must_still_win(table: Callable[..., Path]) -> None:
    """A route that the tune timed as it really runs (wrappers, conversions) and found no
    faster than the source's own call by the margin is dropped; a confirmed one is kept."""
    t = make_table("torch", from_size=4096)
    for e in t["entries"]:
        e["confirmed"] = {"numpy": {"own": 1e-3, "torch": 1e-3 / _routing.MARGIN}}
    table(t)
    assert _routing.plan_summary("numpy") == []
    for e in t["entries"]:
        e["confirmed"] = {"numpy": {"own": 1e-3, "torch": 0.5e-3}}
    table(t)
    assert len(_routing.plan_summary("numpy")) == len({(e["op"], e["layout"], e["dtype"])
                                                       for e in t["entries"]})


def test_plan_summary_ranges(table: Callable[..., Path]) -> None:
    table(make_table("torch", from_size=4096))
    rows = _routing.plan_summary("numpy")
    assert rows and all(r[3] == 4096 and r[4] is None and r[5] == "torch" for r in rows)
    assert _routing.plan_summary("torch") == []


# -- processes: the environment variable, and never importing torch ------------------------------
def _run(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
        env={**os.environ, **env},
    )


def _cache_with_table(tmp_path: Path) -> str:
    """A cache directory holding a table that routes NumPy input to torch, for a child."""
    _routing.save_table(make_table("torch"), tmp_path / "routing-table.json")
    return str(tmp_path)


def test_env_var_turns_routing_off(tmp_path: Path) -> None:
    cache = _cache_with_table(tmp_path)
    code = (
        "import numpy as np, torch, xback\n"
        "from xback import _routing\n"
        "from xback._dispatch import load_backend\n"
        "print(_routing.enabled(), "
        "_routing.kernel_target('sort/1d', load_backend('numpy'), np.arange(10)))\n"
    )
    off = _run(code, XBACK_CACHE_DIR=cache, XBACK_ROUTE="0")
    assert off.returncode == 0, off.stderr
    assert off.stdout.split() == ["False", "None"]
    on = _run(code, XBACK_CACHE_DIR=cache)
    assert on.stdout.split() == ["True", "<xback", "backend", "'torch'>"]


def test_env_var_values(monkeypatch: pytest.MonkeyPatch) -> None:
    for value, expected in (("0", False), ("off", False), ("False", False), ("no", False),
                            ("1", True), ("on", True), ("", True)):
        monkeypatch.setenv("XBACK_ROUTE", value)
        assert _routing._env_default() is expected
    monkeypatch.setenv("XBACK_ROUTE", "maybe")
    with pytest.warns(RuntimeWarning, match="XBACK_ROUTE='maybe' is not understood"):
        assert _routing._env_default() is True


def test_numpy_only_use_never_imports_torch(tmp_path: Path) -> None:
    cache = _cache_with_table(tmp_path)
    code = (
        "import sys, numpy as np, xback\n"
        "a = np.arange(10**5, 0, -1)\n"
        "r = xback.sort(a); xback.argsort(a); xback.svd(np.eye(40)[:, :4])\n"
        "xback.lstsq_grad(np.ones((50, 5)), np.ones(5), np.ones(50))\n"
        "assert (r == np.arange(1, 10**5 + 1)).all()\n"
        "print('torch' in sys.modules)\n"
    )
    out = _run(code, XBACK_CACHE_DIR=cache)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "False"


# -- xback tune / xback info -------------------------------------------------------------------
@pytest.mark.slow
def test_tune_quick_writes_a_usable_table(tmp_path: Path) -> None:
    out = tmp_path / "t.json"
    r = _run(
        "import sys; from xback.cli import main; sys.exit(main(['tune', '--quick', '-o', "
        f"{str(out)!r}]))",
        XBACK_CACHE_DIR=str(tmp_path / "cache"),
    )
    assert r.returncode == 0, r.stderr
    assert "routing table written to" in r.stdout
    t = _routing.load_table(out)
    assert t["quick"] is True and t["threads"]["torch"] >= 1
    # it records this machine's fingerprint: the table applies here
    assert t["format"] == _routing.TABLE_FORMAT
    assert _machine.mismatches(t["fingerprint"], _machine.fingerprint()) == []
    assert not (tmp_path / "cache" / "routing-table.json").exists()  # --output: not there
    assert all(v > 0 for e in t["entries"] for v in e["seconds"].values())
    for e in t["entries"]:  # routes timed as they run: the source's own call and the route
        for src, times in e.get("confirmed", {}).items():
            assert src in ("numpy", "torch"), e
            assert set(times) in ({"own", OTHER[src]}, {"own", "fused"}), e
    fused = {"fused" in e["seconds"] for e in t["entries"] if e["op"] == "lstsq_grad"}
    assert fused == {_fused.available()}  # the kernel is measured when Numba is installed
    assert (t["fused"] is not None) is _fused.available()
    assert t["tune_seconds"] > 0  # (no timing asserted: the machine may be loaded)


def test_info_reports_routing(table: Callable[..., Path]) -> None:
    from xback.cli import info_dict

    path = table(make_table("torch", from_size=4096))
    d = info_dict()["routing"]
    assert d["source"] == "user" and d["path"] == str(path) and d["enabled"]
    assert d["routes"]["numpy"] and not d["routes"]["torch"]
    assert d["routes"]["numpy"][0]["from_size"] == 4096


@requires_torch
@pytest.mark.parametrize(("op", "layout", "shape"), [("sort", "1d", (300,)),
                                                     ("argsort", "rows", (4, 50)),
                                                     ("svd", "thin-tall", (40, 6)),
                                                     ("svd", "vals-square", (7, 7)),
                                                     ("lstsq_grad", "vec", (40, 6))])
def test_tune_times_the_whole_routed_call(op: str, layout: str, shape: tuple[int, ...]) -> None:
    """What ``xback tune`` confirms a route with is the real routed call: the source's
    arrays in, the other library computes, the source's kind out, equal to its own call."""
    case = tune_mod.Case(op, layout, "float64", shape, 2)
    data = tune_mod._data(case, np.random.default_rng(1))
    for src, dst in (("numpy", "torch"), ("torch", "numpy")):
        b, kb = load_backend(src), load_backend(dst)
        got = tune_mod._routed_call(case, b, kb, data)()
        own = tune_mod._call(case, b, [b.from_numpy(a, "cpu", False) for a in data])()
        got_t = got if isinstance(got, tuple) else (got,)
        own_t = own if isinstance(own, tuple) else (own,)
        for g, o in zip(got_t, own_t, strict=True):
            assert type(g) is type(o)
            if op in ("sort", "argsort"):
                np.testing.assert_array_equal(as_np(g), as_np(o))
            elif layout.startswith("vals") or op == "lstsq_grad" or g.ndim == 1:
                np.testing.assert_allclose(as_np(g), as_np(o), rtol=1e-10, atol=1e-12)
            else:  # singular vectors: up to sign
                np.testing.assert_allclose(np.abs(as_np(g)), np.abs(as_np(o)), atol=1e-10)


def test_tune_measures_the_fused_kernel_only_with_numba(monkeypatch: pytest.MonkeyPatch) -> None:
    """The ``fused`` column: an ``lstsq_grad`` candidate when Numba is installed, never for
    other operations, and absent without Numba (such a table never picks the kernel)."""
    backends = [load_backend("numpy"), load_backend("torch")]
    rng = np.random.default_rng(0)
    lstsq = tune_mod.Case("lstsq_grad", "vec", "float64", (40, 4), 4)
    sort = tune_mod.Case("sort", "1d", "float64", (40,), 2)
    names = [c.name for c in tune_mod._candidates(lstsq, backends, tune_mod._data(lstsq, rng))]
    assert names == ["numpy", "torch"] + (["fused"] if _fused.available() else [])
    assert [c.name for c in tune_mod._candidates(sort, backends, tune_mod._data(sort, rng))] == [
        "numpy", "torch"]
    monkeypatch.setattr(_fused, "_available", False)
    names = [c.name for c in tune_mod._candidates(lstsq, backends, tune_mod._data(lstsq, rng))]
    assert names == ["numpy", "torch"]
    assert tune_mod._fused_info() is None
