"""Routing never changes what a program may do: a forked child after routed calls.

A NumPy program whose calls were routed to torch must still be able to use a ``fork`` pool:
torch's OpenMP pool cannot run in a child once the parent has used it, so a child's calls
stay on their own library unless the target is fork-safe (:func:`xback._routing.fork_safe`).
Each scenario runs in a fresh process bounded by a timeout, so that a hang fails the test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import xback.backends.numpy as numpy_backend
from xback import _routing
from xback._dispatch import load_backend

from .test_routing import make_table

torch = pytest.importorskip("torch")

pytestmark = pytest.mark.skipif(
    not hasattr(os, "fork") or sys.platform == "darwin",
    reason="the fork start method (Linux)",
)

#: one program that uses both directions: NumPy int64 sorts and float32 linear algebra run on
#: torch (torch's OpenMP pool: a sort of this size is parallel), torch int32 sorts and
#: float64 linear algebra run on NumPy. Then a fork pool runs the same calls in children:
#: every child must return the unrouted answer and report where its sorts would run.
_SCRIPT = r"""
import multiprocessing as mp
import numpy as np, torch, xback
import xback.backends.numpy as numpy_backend
from xback import _routing
from xback._dispatch import load_backend

rng = np.random.default_rng(0)
PROGRAMS = {  # source library -> (sort dtype, linear algebra dtype)
    "numpy": ("int64", "float32"),
    "torch": ("int32", "float64"),
}
DATA = {}
for src, (sdt, ldt) in PROGRAMS.items():
    wrap = (lambda v: v) if src == "numpy" else torch.from_numpy
    a = rng.integers(-10**9, 10**9, size=400_000).astype(sdt)
    A = rng.standard_normal((300, 30)).astype(ldt)
    x, y = A[0].copy(), A[:, 0].copy()
    DATA[src] = (a, [wrap(v) for v in (a, A, x, y)])

def where(src):
    b = load_backend(src)
    t = _routing.kernel_target("sort/1d", b, DATA[src][1][0])
    return None if t is None else t.name

def work(src, blas=True):
    xa, xA, xx, xy = DATA[src][1]
    out = (xback.sort(xa), xback.argsort(xa))
    if blas:
        out += (xback.lstsq_grad(xA, xx, xy), xback.svdvals(xA))
    return [np.asarray(r) if src == "numpy" else r.numpy() for r in out]

def child(src):
    # torch's own BLAS in a child of a parent that used its OpenMP pool hangs with or without
    # xback (libgomp is not fork-safe), and xback never routes torch's BLAS work to NumPy's
    # multi-threaded OpenBLAS: the torch child sorts only
    return work(src, blas=src == "numpy"), where(src), _routing.in_forked_child()

if __name__ == "__main__":
    assert where("numpy") == "torch" and where("torch") == "numpy"
    routed = {src: work(src) for src in PROGRAMS}  # the parent uses both libraries' pools
    with xback.use(route=False):
        plain = {src: work(src) for src in PROGRAMS}
    with mp.get_context("fork").Pool(2) as pool:
        results = pool.map(child, ["numpy", "torch", "numpy", "torch"])
    for src, (got, target, forked) in zip(["numpy", "torch"] * 2, results):
        assert forked
        a = DATA[src][0]
        for r, p, q in zip(got, plain[src], routed[src]):
            assert r.dtype == p.dtype and r.shape == p.shape
            np.testing.assert_allclose(r, p, rtol=1e-4, atol=1e-4)
            np.testing.assert_allclose(q, p, rtol=1e-4, atol=1e-4)
        assert (got[0] == np.sort(a, kind="stable")).all()
        assert (got[1] == np.argsort(a, kind="stable")).all()
        print(src, "child sorts on", target)
"""


def _table() -> dict[str, Any]:
    to_torch, to_numpy = make_table("torch"), make_table("numpy")
    keep = {"int64", "float32"}
    entries = [e for e in to_torch["entries"] if e["dtype"] in keep]
    entries += [e for e in to_numpy["entries"] if e["dtype"] not in keep]
    return dict(to_torch, entries=entries)


def test_fork_pool_after_routed_calls_both_directions(tmp_path: Path) -> None:
    _routing.save_table(_table(), tmp_path / "routing-table.json")
    script = tmp_path / "fork_pool.py"
    script.write_text(_SCRIPT)
    env = {**os.environ, "XBACK_CACHE_DIR": str(tmp_path), "XBACK_ROUTE": "1"}
    # a session of its own: on a hang, the pool's children are killed with the parent
    proc = subprocess.Popen(
        [sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=env, cwd=str(tmp_path), start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        pytest.fail("a fork pool after routed calls hung")
    assert proc.returncode == 0, err[-3000:]
    # NumPy's calls stayed on NumPy in the children (torch's pool is not fork-safe); torch's
    # sorts still ran on NumPy (its sorts use no threads: fork-safe)
    assert out.count("numpy child sorts on None") == 2, out
    assert out.count("torch child sorts on numpy") == 2, out


# -- the decision itself, in this process ------------------------------------------------------
@pytest.fixture
def forked(monkeypatch: pytest.MonkeyPatch) -> None:
    """Pretend this process is a forked child."""
    monkeypatch.setitem(_routing._FORK, "child", True)


def test_child_never_routes_to_torch(table: Callable[..., Path], forked: None) -> None:
    table(make_table("torch"))
    b = load_backend("numpy")
    assert _routing.in_forked_child()
    assert _routing.kernel_target("sort/1d", b, np.arange(1000)) is None
    assert _routing.kernel_target("svd/vals-tall", b, np.ones((40, 4))) is None


def test_child_routes_to_numpy_where_fork_safe(
    table: Callable[..., Path], forked: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_routing, "_spinning_pools", lambda table, source: frozenset())
    table(make_table("numpy"))
    b, nb = load_backend("torch"), load_backend("numpy")
    t = torch.arange(1000)
    assert _routing.kernel_target("sort/1d", b, t) is nb  # NumPy's sorts: no threads
    m = torch.ones(40, 4, dtype=torch.float64)
    blas_ok = _routing.fork_safe("numpy", "svd/vals-tall")
    assert (_routing.kernel_target("svd/vals-tall", b, m) is nb) is blas_ok

    class OpenMPBlas:  # an OpenMP-threaded BLAS: not fork-safe
        internal_api, threading_layer = "openblas", "openmp"

        def get_num_threads(self) -> int:
            return 1

    monkeypatch.setattr(numpy_backend, "_blas_controller", OpenMPBlas())
    assert not _routing.fork_safe("numpy", "svd/vals-tall")
    assert _routing.kernel_target("svd/vals-tall", b, m) is None
    assert _routing.kernel_target("sort/1d", b, t) is nb


def test_fork_safe_table() -> None:
    assert _routing.fork_safe(_routing.FUSED, "lstsq_grad/vec")
    assert not _routing.fork_safe("torch", "sort/1d")
    assert not _routing.fork_safe("dask", "sort/1d")
    assert _routing.fork_safe("numpy", "argsort/rows")


def test_parent_is_not_a_child() -> None:
    assert not _routing.in_forked_child()
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        os.write(w, b"1" if _routing.in_forked_child() else b"0")
        os._exit(0)
    os.close(w)
    got: Any = os.read(r, 1)
    os.close(r)
    os.waitpid(pid, 0)
    assert got == b"1"
