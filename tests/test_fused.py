"""Tests of the fused one-pass ``lstsq_grad`` kernel (:mod:`xback._fused`, issue 10).

The kernel tests skip cleanly when Numba is not installed; the tests of the behaviour
without Numba (the error message, "auto" falling back) run everywhere.
"""

from __future__ import annotations

import os
import pickle
import stat
import subprocess
import sys
import textwrap
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from threadpoolctl import threadpool_limits

import xback
from xback import _fused, _routing
from xback._linalg import _lstsq_grad_on  # the front layer's call, past its checks
from xback.backends.numpy import BACKEND as NP

from .conftest import HAS_TORCH, Target, requires_torch, torch

HAS_NUMBA = _fused.available()
requires_numba = pytest.mark.skipif(not HAS_NUMBA, reason="numba is not installed")

EPS = {np.float32: float(np.finfo(np.float32).eps), np.float64: float(np.finfo(np.float64).eps)}


@pytest.fixture(scope="module")
def numba() -> Any:
    return pytest.importorskip("numba")


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> None:
    """Chunks of one block of 8 rows: many chunks (and threads) on small inputs."""
    monkeypatch.setattr(_fused, "BLOCK_ROWS", 8)
    monkeypatch.setattr(_fused, "CHUNK_BYTES", 1)


def _data(m: int, n: int, k: int | None, dtype: Any, seed: int = 0) -> tuple[Any, Any, Any]:
    rng = np.random.default_rng(seed)
    A = rng.standard_normal((m, n)).astype(dtype)
    shape_x = (n,) if k is None else (n, k)
    shape_y = (m,) if k is None else (m, k)
    return A, rng.standard_normal(shape_x).astype(dtype), rng.standard_normal(shape_y).astype(dtype)


def _reference(A: Any, x: Any, y: Any) -> tuple[Any, Any]:
    """(gradient in extended precision, componentwise error scale 2|A|ᵀ(|A||x| + |y|)).

    float32 inputs: float64 arithmetic is exact enough; float64 inputs: long double.
    """
    wide = np.float64 if A.dtype == np.float32 else np.longdouble
    Aw, xw, yw = (np.asarray(a, dtype=wide) for a in (A, x, y))
    ref = 2 * np.dot(Aw.T, np.dot(Aw, xw) - yw)
    scale = 2 * np.dot(np.abs(Aw).T, np.dot(np.abs(Aw), np.abs(xw)) + np.abs(yw))
    return ref, scale


def _check_bound(g: Any, A: Any, x: Any, y: Any) -> float:
    """Assert the componentwise bound ``|g - ref| <= (n + BLOCK_ROWS + 4) eps * scale`` and
    return the normwise relative error."""
    ref, scale = _reference(A, x, y)
    eps = EPS[A.dtype.type]
    n = A.shape[1]
    err = np.abs(np.asarray(g, dtype=ref.dtype) - ref)
    bound = (n + _fused.BLOCK_ROWS + 4) * eps * scale
    assert np.all(err <= bound), float(np.max(err / np.maximum(bound, 1e-300)))
    return float(np.max(err) / max(float(np.max(scale)), 1e-300))


# -- accuracy -------------------------------------------------------------------------------
@requires_numba
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(
    ("m", "n", "k"),
    [
        (1, 1, None),
        (1, 5, None),
        (5, 1, None),
        (2, 3, 1),
        (3, 2, 4),
        (257, 7, None),  # m not a multiple of the block
        (1000, 37, None),
        (1000, 37, 1),
        (1000, 37, 3),
        (513, 300, 2),
        (3001, 64, 5),
        (1030, 600, None),  # 4-row steps (rows of UNROLL_MIN_BYTES or more) and a tail
        (1030, 600, 3),  # the same with 3 columns of x
    ],
)
def test_accuracy_bound(numba: Any, dtype: Any, m: int, n: int, k: int | None) -> None:
    A, x, y = _data(m, n, k, dtype)
    g = _fused.lstsq_grad(A, x, y)
    assert g.dtype == dtype
    assert g.shape == x.shape
    _check_bound(g, A, x, y)


@requires_numba
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("m", "n", "k"), [(4000, 256, None), (4000, 256, 2), (20000, 16, None)])
def test_accuracy_within_blas(numba: Any, dtype: Any, m: int, n: int, k: int | None) -> None:
    """The normwise error is within a small multiple of float BLAS's (here NumPy's) error."""
    A, x, y = _data(m, n, k, dtype, seed=1)
    g = _fused.lstsq_grad(A, x, y)
    err = _check_bound(g, A, x, y)
    ref, scale = _reference(A, x, y)
    blas = 2 * (A.T @ (A @ x - y))
    err_blas = float(np.max(np.abs(blas - ref)) / np.max(scale))
    assert err <= 2 * err_blas + 4 * EPS[dtype], (err, err_blas)


@requires_numba
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize(("k", "lines"), [(None, 64), (None, 66), (3, 66)])
def test_every_alignment_of_A(numba: Any, dtype: Any, k: int | None, lines: int) -> None:
    """A at every item offset from a 64-byte boundary (the kernel peels the first columns
    to align its vector loads), rows of 64 cache lines (4-row steps whose update segments
    cover an aligned row exactly) and 66 (segments and a remainder), 4-row steps with and
    without prefetching (the last ones) and single rows: within the bound at each offset,
    and the offsets differ by rounding only."""
    isz = np.dtype(dtype).itemsize
    m, n = 39, lines * 64 // isz
    assert n * isz >= _fused.UNROLL_MIN_BYTES
    assert (lines % _fused.PREFETCH_SEGMENT_LINES == 0) == (lines == 64)
    A0, x, y = _data(m, n, k, dtype, seed=5)
    buf = np.empty(A0.nbytes + 128, dtype=np.uint8)
    first = (-buf.ctypes.data) % 64
    results = []
    for off in range(0, 64, isz):
        A = buf[first + off : first + off + A0.nbytes].view(dtype).reshape(m, n)
        A[...] = A0
        assert _fused._peel(A) == ((64 - off) % 64) // isz
        g = _fused.lstsq_grad(A, x, y)
        _check_bound(g, A0, x, y)
        results.append(g)
    ref = results[0]
    for g in results[1:]:
        np.testing.assert_allclose(g, ref, rtol=0, atol=float(np.abs(ref).max()) * n * EPS[dtype])


@requires_numba
def test_prefetch_intrinsic(numba: Any) -> None:
    """The kernels' ``_prefetch`` is ``llvm.prefetch`` once built (a hint: no value, no fault
    past the data), and only 1-D arrays with an integer index are accepted."""
    _fused._build()
    pf = _fused._prefetch

    @numba.njit
    def touch(a: Any, i: Any) -> Any:  # pragma: no cover - compiled
        pf(a, i)
        return a[0]

    a = np.arange(64.0)
    assert touch(a, np.uint64(8)) == 0.0
    assert touch(a, 10**9) == 0.0  # far past the end: a prefetch never faults
    ir = touch.inspect_llvm(touch.signatures[0])
    assert "llvm.prefetch" in ir
    with pytest.raises(numba.core.errors.TypingError):
        touch(np.zeros((2, 2)), 0)


def test_peel() -> None:
    """No peeling when the rows do not share one alignment or the data is misaligned."""
    A = np.zeros((4, 17))  # 136-byte rows
    assert _fused._peel(A) == 0
    raw = np.zeros(8 * 16 + 1, dtype=np.uint8)[1:].view(np.float64).reshape(2, 8)
    assert not raw.flags.aligned and _fused._peel(raw) == 0


@requires_numba
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_many_chunks_and_threads(numba: Any, small_chunks: None, dtype: Any) -> None:
    """Chunks of 8 rows (m not a multiple): the result does not depend on the threads."""
    A, x, y = _data(203, 17, None, dtype, seed=2)
    g1 = _fused.lstsq_grad(A, x, y, threads=1)
    _check_bound(g1, A, x, y)
    for t in (2, 3, 8):
        np.testing.assert_array_equal(_fused.lstsq_grad(A, x, y, threads=t), g1)
    A, x, y = _data(203, 17, 3, dtype, seed=2)
    g1 = _fused.lstsq_grad(A, x, y, threads=1)
    _check_bound(g1, A, x, y)
    np.testing.assert_array_equal(_fused.lstsq_grad(A, x, y, threads=2), g1)


@requires_numba
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [None, 1, 3])
@pytest.mark.parametrize("m", [203, 36, 7])
def test_four_row_steps_across_chunks_and_threads(
    numba: Any, small_chunks: None, dtype: Any, k: int | None, m: int
) -> None:
    """Rows of 1 KB or more (4-row steps, prefetching the next rows): chunks of 8 rows end
    mid-step and the last rows of A have no next rows to prefetch; m below 8 and not a
    multiple of 4. Within the bound, and bitwise the same for any thread count."""
    n = 300  # 1200 / 2400-byte rows
    A, x, y = _data(m, n, k, dtype, seed=3)
    assert n * A.itemsize >= _fused.UNROLL_MIN_BYTES
    g1 = _fused.lstsq_grad(A, x, y, threads=1)
    _check_bound(g1, A, x, y)
    for t in (2, 3):
        np.testing.assert_array_equal(_fused.lstsq_grad(A, x, y, threads=t), g1)


@requires_numba
@given(
    m=st.integers(1, 300),
    n=st.integers(1, 40),
    k=st.one_of(st.none(), st.integers(1, 4)),
    f32=st.booleans(),
    seed=st.integers(0, 2**32 - 1),
    scale=st.sampled_from([1e-20, 1.0, 1e20]),
    threads=st.integers(1, 4),
)
def test_property_bound_and_threads(
    m: int, n: int, k: int | None, f32: bool, seed: int, scale: float, threads: int
) -> None:
    """Any shape, scale and thread count: within the error bound; threads do not matter."""
    dtype = np.float32 if f32 else np.float64
    A, x, y = _data(m, n, k, dtype, seed=seed)
    A *= dtype(scale if not f32 else min(scale, 1e10))
    g = _fused.lstsq_grad(A, x, y, threads=threads)
    assert g.shape == x.shape and g.dtype == dtype
    _check_bound(g, A, x, y)
    np.testing.assert_array_equal(g, _fused.lstsq_grad(A, x, y, threads=1))


@requires_numba
def test_nan_and_inf_propagate(numba: Any) -> None:
    A, x, y = _data(40, 6, None, np.float64)
    A[3, 2] = np.nan
    g = _fused.lstsq_grad(A, x, y)
    assert np.isnan(g).all()  # row 3's residual is NaN and reaches every component
    A, x, y = _data(40, 6, None, np.float32)
    y[0] = np.inf
    g = _fused.lstsq_grad(A, x, y)
    assert not np.isfinite(g).any()


@requires_numba
def test_inputs_not_mutated_and_read_only_inputs(numba: Any) -> None:
    A, x, y = _data(300, 20, 2, np.float32)
    copies = [a.copy() for a in (A, x, y)]
    g = _fused.lstsq_grad(A, x, y)
    for a, c in zip((A, x, y), copies):
        np.testing.assert_array_equal(a, c)
    for a in (A, x, y):
        a.flags.writeable = False
    np.testing.assert_array_equal(_fused.lstsq_grad(A, x, y), g)
    assert not any(np.shares_memory(g, a) for a in (A, x, y))


@requires_numba
def test_strided_x_and_y(numba: Any) -> None:
    """x and y of any strides (only A must be C-contiguous)."""
    A, x, y = _data(100, 10, 3, np.float64)
    xf, yf = np.asfortranarray(x), np.asfortranarray(y)
    np.testing.assert_array_equal(_fused.lstsq_grad(A, xf, yf), _fused.lstsq_grad(A, x, y))
    xb = np.broadcast_to(x[:, :1], (10, 3))
    yb = np.broadcast_to(y[:, :1], (100, 3))
    g = _fused.lstsq_grad(A, xb, yb)
    np.testing.assert_allclose(g, 2 * (A.T @ (A @ xb - yb)), rtol=1e-12, atol=1e-12)


def test_supports() -> None:
    A, x, y = _data(6, 3, None, np.float64)
    assert _fused.supports(A, x, y)
    assert _fused.supports(A, x[:, None], y[:, None])
    assert not _fused.supports(np.asfortranarray(A), x, y)
    assert not _fused.supports(A[:, :2], x[:2], y)
    assert not _fused.supports(A.astype(np.complex128), x.astype(complex), y.astype(complex))
    assert not _fused.supports(A.astype(np.float16), x.astype(np.float16), y.astype(np.float16))
    assert not _fused.supports(A, x.astype(np.float32), y)
    assert not _fused.supports(A[None], x, y)
    assert not _fused.supports(A[:0], x, y[:0])
    assert not _fused.supports(A, x[:, None], y)


@requires_numba
def test_unsupported_raises(numba: Any) -> None:
    A, x, y = _data(6, 3, None, np.float64)
    with pytest.raises(ValueError, match="C-contiguous float32/float64"):
        _fused.lstsq_grad(np.asfortranarray(A), x, y)


# -- threads --------------------------------------------------------------------------------
@requires_numba
def test_num_threads_follows_the_libraries(numba: Any) -> None:
    t = _fused.num_threads()
    assert 1 <= t <= (os.cpu_count() or 1)
    with threadpool_limits(1):
        assert _fused.num_threads() == 1
    assert _fused.num_threads() == t
    old = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        assert _fused.num_threads() == 1
    finally:
        numba.set_num_threads(old)
    if HAS_TORCH:
        old = torch.get_num_threads()
        torch.set_num_threads(1)
        try:
            assert _fused.num_threads() == 1
        finally:
            torch.set_num_threads(old)


@requires_numba
def test_thread_count_respected(
    numba: Any, small_chunks: None, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The kernel runs on ``num_threads()`` threads: the caller plus ``t - 1`` pool tasks."""
    submitted: list[int] = []
    pool = _fused._pool()

    class Spy:
        def submit(self, *a: Any) -> Any:
            submitted.append(1)
            return pool.submit(*a)

    monkeypatch.setattr(_fused, "_pool", lambda: Spy())
    A, x, y = _data(200, 9, None, np.float64)
    with threadpool_limits(1):
        _fused.lstsq_grad(A, x, y)
    assert submitted == []
    monkeypatch.setattr(_fused, "num_threads", lambda: 3)
    _fused.lstsq_grad(A, x, y)
    assert len(submitted) == 2
    submitted.clear()
    _fused.lstsq_grad(A[:8], x, y[:8])  # one chunk: one thread
    assert submitted == []


@requires_numba
def test_concurrent_calls(numba: Any, small_chunks: None) -> None:
    from concurrent.futures import ThreadPoolExecutor

    A, x, y = _data(400, 30, None, np.float64)
    want = _fused.lstsq_grad(A, x, y, threads=1)
    with ThreadPoolExecutor(4) as ex:
        outs = list(ex.map(lambda _: _fused.lstsq_grad(A, x, y, threads=2), range(8)))
    for g in outs:
        np.testing.assert_array_equal(g, want)


# -- compile info, lazy import, cache ------------------------------------------------------
@requires_numba
def test_compile_info(numba: Any) -> None:
    info = _fused.warmup((np.float64,))
    assert info["available"] and info["imported"]
    assert info["numba_version"] == numba.__version__
    assert info["import_seconds"] >= 0
    assert info["threads"] == _fused.num_threads()
    kernels = {c["kernel"] for c in info["compiled"] if "float64" in c["signature"]}
    assert kernels == {"_grad", "_finish"}
    for c in info["compiled"]:
        assert c["seconds"] > 0
        assert c["source"] in ("compiled", "disk cache")


def test_import_xback_does_not_import_numba() -> None:
    code = textwrap.dedent(
        """
        import sys
        import numpy as np
        import xback
        A = np.ones((4, 3)); x = np.ones(3); y = np.ones(4)
        xback.lstsq_grad(A, x, y)
        xback.lstsq_grad(A, x, y, method="explicit")
        assert "numba" not in sys.modules, "numba imported"
        print("ok")
        """
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "ok"


@requires_numba
def test_cache_dir_env(numba: Any, tmp_path: Any) -> None:
    """``XBACK_CACHE_DIR`` receives the on-disk cache; a second process loads from it."""
    code = textwrap.dedent(
        """
        import numpy as np
        from xback import _fused, _routing
        A = np.ones((4, 3)); x = np.ones(3); y = np.ones(4)
        assert (_fused.lstsq_grad(A, x, y) == 2 * (A.T @ (A @ x - y))).all()
        info = _fused.compile_info()
        print(info["cache_dir"], info["compiled"][0]["source"].replace(" ", "-"))
        """
    )
    env = dict(os.environ, XBACK_CACHE_DIR=str(tmp_path))
    outs = []
    for _ in range(2):
        r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
        assert r.returncode == 0, r.stderr
        outs.append(r.stdout.split())
    assert outs[0][0].startswith(str(tmp_path))
    assert outs[1][1] == "disk-cache"
    assert any(p.suffix == ".nbi" for p in tmp_path.rglob("*"))


# -- the private compiled-code cache (issue 18) ---------------------------------------------
def shared_cache(factory: pytest.TempPathFactory) -> Path:
    """An ``XBACK_CACHE_DIR`` the child processes of this session's tests share (the first
    one to need a kernel compiles it, the others load it)."""
    path = factory.getbasetemp() / "xback-cache"
    path.mkdir(mode=0o700, exist_ok=True)
    return path


@pytest.fixture
def fresh_kernel(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fresh kernel state (nothing built, compiled or warned), the process's restored
    afterwards; the next fused call builds and compiles again."""
    monkeypatch.setattr(_fused, "_state", {})
    monkeypatch.setattr(_fused, "_compiled", {})
    monkeypatch.setattr(_fused, "_ready", set())
    monkeypatch.setattr(_fused, "_cache_warned", False)
    monkeypatch.setattr(_fused, "_prefetch", _fused._prefetch)  # restored after the build


class _Plant:
    """Unpickling this creates the directory ``marker`` (the code a planted file runs)."""

    def __init__(self, marker: Path) -> None:
        self.marker = str(marker)

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.mkdir, (self.marker,))


def _plant_index(numba: Any, cache_dir: Path, marker: Path) -> list[Path]:
    """Plant a malicious index file where Numba, with ``cache_dir`` as its cache directory,
    looks for the kernels' index (``<cache_dir>/<subfolder>/<kernel>-<line>.pyXY.nbi``)."""
    old = numba.config.CACHE_DIR
    numba.config.CACHE_DIR = str(cache_dir)
    try:
        paths = [
            Path(numba.njit(cache=True)(f)._cache._cache_file._index_path)
            for f in (_fused._chunks, _fused._finish)
        ]
    finally:
        numba.config.CACHE_DIR = old
    for p in paths:
        assert cache_dir in p.parents and p.suffix == ".nbi"
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(pickle.dumps(_Plant(marker)))
    return paths


def _cache_warnings(record: Any) -> list[Any]:
    """The warnings about the compiled-code cache folder among ``record``."""
    return [w for w in record if "compiled-code cache" in str(w.message)]


def _private_folder(base: Path) -> Path:
    uid = _fused._uid()
    return base / ("numba" if uid is None else f"numba-{uid}")


@requires_numba
def test_planted_index_in_the_cache_dir_is_not_loaded(
    numba: Any, fresh_kernel: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pickle planted where Numba would look in ``$XBACK_CACHE_DIR`` (and in
    ``$NUMBA_CACHE_DIR``) is never loaded: the compiled code lives in the private folder
    ``numba-<uid>`` (created 0700), which a second build loads from."""
    base, other = tmp_path / "cache", tmp_path / "numba-cache"
    marker = tmp_path / "pwned"
    planted = _plant_index(numba, base, marker) + _plant_index(numba, other, marker)
    monkeypatch.setenv("XBACK_CACHE_DIR", str(base))
    monkeypatch.setattr(numba.config, "CACHE_DIR", str(other))
    A, x, y = _data(300, 20, None, np.float64)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        g = xback.lstsq_grad(A, x, y, method="fused")
    assert _cache_warnings(record) == []  # the private folder is fine
    _check_bound(g, A, x, y)
    assert not marker.exists(), "a planted cache file ran code"
    folder, problem = _fused.private_cache_dir()
    assert problem is None and Path(folder) == _private_folder(base)
    if hasattr(os, "getuid"):
        assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    info = _fused.compile_info()
    assert info["cache"] and info["cache_problem"] is None
    assert Path(info["cache_dir"]).parent == Path(folder)
    assert any(p.suffix == ".nbi" for p in Path(folder).rglob("*"))
    numba_dir = numba.config.CACHE_DIR
    assert numba_dir == str(other)  # Numba's own setting is left as it was
    # a new build (as in a new process) loads from the private folder, nothing else
    monkeypatch.setattr(_fused, "_state", {})
    monkeypatch.setattr(_fused, "_compiled", {})
    monkeypatch.setattr(_fused, "_ready", set())
    np.testing.assert_array_equal(xback.lstsq_grad(A, x, y, method="fused"), g)
    assert {c["source"] for c in _fused.compile_info()["compiled"]} == {"disk cache"}
    assert not marker.exists()
    pickle.loads(planted[0].read_bytes())  # the planted file does run code when loaded
    assert marker.is_dir()


@requires_numba
@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX owners and modes")
def test_unsafe_cache_folder_auto_and_fused(
    numba: Any,
    fresh_kernel: None,
    table: Any,
    kernel_calls: list[tuple[int, ...]],
    tmp_path: Path,
) -> None:
    """A private folder that others can write (group-writable here) is refused even when it
    holds the kernels' index: "auto" (routed to the kernel) and "fused" compute the right
    result without a disk cache, one warning names the folder and the reason (at the
    caller's line), and the planted pickle is never loaded."""
    A, x, y = _data(400, 100, None, np.float64)
    table(fused_table(A.size))  # XBACK_CACHE_DIR is tmp_path
    folder = _private_folder(tmp_path)
    folder.mkdir(mode=0o700)
    folder.chmod(0o770)
    marker = tmp_path / "pwned"
    _plant_index(numba, folder, marker)
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        g = xback.lstsq_grad(A, x, y)  # "auto"
        assert kernel_calls == [A.shape]
        g2 = xback.lstsq_grad(A, x, y, method="fused")
    _check_bound(g, A, x, y)
    np.testing.assert_array_equal(g, g2)
    assert not marker.exists(), "a planted cache file ran code"
    (w,) = _cache_warnings(record)
    assert str(folder) in str(w.message) and "0770" in str(w.message)
    assert "XBACK_CACHE_DIR" in str(w.message)
    assert w.category is RuntimeWarning and w.filename == __file__  # at the caller's code
    info = _fused.compile_info()
    assert not info["cache"] and info["cache_dir"] is None and str(folder) in info["cache_problem"]


def _readonly_dir(p: Path) -> Path:
    p.mkdir(mode=0o700)
    p.chmod(0o500)
    return p


@pytest.mark.parametrize(
    "case",
    ["file", "under_a_file", "proc", "group_writable", "world_writable", "other_owner",
     "symlink", "parent_group_writable", "not_writable"],
)
@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX owners and modes")
def test_private_cache_dir_checks(
    case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each unusable folder is refused with a reason naming the problem (no compile here:
    :func:`test_unusable_cache_folders_build_without_cache` builds for each)."""
    base, reason = _unusable(case, tmp_path, monkeypatch)
    monkeypatch.setenv("XBACK_CACHE_DIR", str(base))
    folder, problem = _fused.private_cache_dir()
    assert folder == os.path.join(os.path.abspath(base), f"numba-{_fused._uid()}")
    assert problem is not None and reason in problem, problem


def _unusable(case: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, str]:
    """(XBACK_CACHE_DIR, a part of the reason) for each kind of unusable folder."""
    uid = os.getuid()
    if case == "file":
        (tmp_path / "f").write_text("")
        return tmp_path / "f", "is not a directory"
    if case == "under_a_file":
        (tmp_path / "f").write_text("")
        return tmp_path / "f" / "cache", "cannot be created"
    if case == "proc":
        if not os.path.isdir("/proc/self"):
            pytest.skip("no /proc")
        return Path("/proc/self/xback-cache"), "cannot be created"
    if case in ("group_writable", "world_writable"):
        folder = tmp_path / f"numba-{uid}"
        folder.mkdir(mode=0o700)
        folder.chmod(0o770 if case == "group_writable" else 0o777)
        return tmp_path, "group or others have access"
    if case == "other_owner":  # a folder of another user: this user seen as uid + 1
        monkeypatch.setattr(_fused, "_uid", lambda: uid + 1)
        return tmp_path, f"owned by uid {uid}, not by the current user ({uid + 1})"
    if case == "symlink":
        (tmp_path / "elsewhere").mkdir(mode=0o700)
        (tmp_path / f"numba-{uid}").symlink_to(tmp_path / "elsewhere")
        return tmp_path, "symbolic link"
    if case == "parent_group_writable":  # a group with other members
        monkeypatch.setattr(_fused, "_private_group", lambda gid, uid: False)
        (tmp_path / "shared").mkdir()
        (tmp_path / "shared").chmod(0o770)
        return tmp_path / "shared", "writable by group or others"
    assert case == "not_writable"
    if uid == 0:
        pytest.skip("root writes anywhere")
    return _readonly_dir(tmp_path / "ro"), "cannot be created"


@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX owners and modes")
def test_private_cache_dir_accepts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The folder is created 0700 whatever the umask; a parent writable by others with the
    sticky bit (as /tmp), or writable by the user's own group only, is fine."""
    old = os.umask(0)
    try:
        for parent, mode in (("sticky", 0o1777), ("own-group", 0o770)):
            base = tmp_path / parent
            base.mkdir()
            base.chmod(mode)
            monkeypatch.setenv("XBACK_CACHE_DIR", str(base))
            monkeypatch.setattr(_fused, "_private_group", lambda gid, uid: True)
            folder, problem = _fused.private_cache_dir()
            assert problem is None, problem
            assert stat.S_IMODE(os.lstat(folder).st_mode) == 0o700
    finally:
        os.umask(old)
    monkeypatch.setenv("XBACK_CACHE_DIR", "relative-dir")
    monkeypatch.chdir(tmp_path)
    assert _fused.private_cache_dir() == (str(_private_folder(tmp_path / "relative-dir")), None)
    monkeypatch.delenv("XBACK_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert _fused.cache_base() == str(tmp_path / "xdg" / "xback")


@requires_numba
@pytest.mark.parametrize(
    "case",
    ["file", "under_a_file", "proc", "world_writable", "other_owner", "symlink",
     "parent_group_writable"],
)
@pytest.mark.skipif(not hasattr(os, "getuid"), reason="POSIX owners and modes")
def test_unusable_cache_folders_build_without_cache(
    numba: Any,
    fresh_kernel: None,
    case: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Each unusable folder: the build (dispatchers, no compile) warns once, naming the
    folder and the reason, and turns the disk cache off; the next build does not warn.
    Issue 18: ``XBACK_CACHE_DIR`` a file, or a path under one or under ``/proc``, made every
    first fused call (also from ``method="auto"``) raise ``os.makedirs``'s error here."""
    base, reason = _unusable(case, tmp_path, monkeypatch)
    monkeypatch.setenv("XBACK_CACHE_DIR", str(base))
    with pytest.warns(RuntimeWarning, match="compiled-code cache") as record:
        st = _fused._build()
    (w,) = _cache_warnings(record)
    assert reason in str(w.message) and os.path.abspath(base) in str(w.message)
    assert st["cache"] is False and st["cache_dir"] is None
    monkeypatch.setattr(_fused, "_state", {})
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert _fused._build()["cache"] is False  # once per process


@requires_numba
def test_pool_shut_down_runs_on_the_caller(numba: Any, small_chunks: None) -> None:
    """Issue 18: when the pool takes no work (shut down, as at interpreter exit) the
    calling thread computes every chunk, with the same bits; the next call has a pool."""
    A, x, y = _data(400, 30, None, np.float64)
    want = _fused.lstsq_grad(A, x, y, threads=1)
    pool = _fused._pool()
    pool.shutdown()
    np.testing.assert_array_equal(_fused.lstsq_grad(A, x, y, threads=3), want)
    assert _fused._pool() is not pool
    np.testing.assert_array_equal(_fused.lstsq_grad(A, x, y, threads=3), want)


@requires_numba
def test_fused_after_the_main_thread_ended(
    numba: Any, tmp_path_factory: pytest.TempPathFactory
) -> None:
    """Issue 18: a thread still making fused calls after the main thread has ended (the
    interpreter shutting down its pools) raised "cannot schedule new futures after
    shutdown"; it now computes on the calling thread."""
    code = textwrap.dedent(
        """
        import concurrent.futures.thread as cft
        import threading, time
        import numpy as np
        from xback import _fused
        _fused.BLOCK_ROWS, _fused.CHUNK_BYTES = 8, 1
        rng = np.random.default_rng(0)
        A, x, y = rng.standard_normal((400, 30)), rng.standard_normal(30), rng.standard_normal(400)
        want = _fused.lstsq_grad(A, x, y, threads=2)

        def late():
            threading.main_thread().join()
            deadline = time.monotonic() + 30
            while not cft._shutdown and time.monotonic() < deadline:
                time.sleep(0.01)
            g = _fused.lstsq_grad(A, x, y, threads=2)
            print("shutdown" if cft._shutdown else "running", (g == want).all(), flush=True)

        threading.Thread(target=late).start()
        """
    )
    env = dict(os.environ, XBACK_CACHE_DIR=str(shared_cache(tmp_path_factory)))
    r = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=240
    )
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["shutdown", "True"], r.stdout + r.stderr


# -- backends and the front layer -----------------------------------------------------------
def _to(target: Target, a: Any) -> Any:
    return xback.from_numpy(a, backend=target.backend, device=target.device, copy=True)


@requires_numba
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("k", [None, 1, 3])
def test_backend_fused_equals_explicit(data_target: Target, dtype: Any, k: int | None) -> None:
    if data_target.backend not in ("numpy", "torch"):
        pytest.skip("the Numba kernel serves NumPy arrays and CPU tensors only")
    from xback._dispatch import load_backend

    b = load_backend(data_target.backend)
    A, x, y = _data(700, 40, k, dtype, seed=3)
    An, xn, yn = (_to(data_target, a) for a in (A, x, y))
    before = [data_target.numpy(a) for a in (An, xn, yn)]
    g = _fused.TARGET.grad(b, An, xn, yn)
    data_target.check(g)
    gn = data_target.numpy(g)
    assert gn.dtype == dtype and gn.shape == x.shape
    # the same memory (the rounding depends on A's offset from a 64-byte boundary)
    same = [xback.to_numpy(a, copy=False) for a in (An, xn, yn)]
    np.testing.assert_array_equal(gn, _fused.lstsq_grad(*same))
    _check_bound(gn, A, x, y)
    e = data_target.numpy(b.lstsq_grad(An, xn, yn, "explicit"))
    rtol = 1e-4 if dtype == np.float32 else 1e-12
    np.testing.assert_allclose(gn, e, rtol=rtol, atol=rtol * float(np.abs(e).max()))
    for a, c in zip((An, xn, yn), before):
        np.testing.assert_array_equal(data_target.numpy(a), c)


@requires_numba
def test_front_layer_method_fused(target: Target) -> None:
    A, x, y = _data(50, 6, None, np.float64)
    g = xback.lstsq_grad(_to(target, A), _to(target, x), _to(target, y), method="fused")
    target.check(g)
    assert tuple(g.shape) == (6,)
    if target.has_data:
        np.testing.assert_allclose(target.numpy(g), 2 * (A.T @ (A @ x - y)), rtol=1e-12)
    # dtypes the kernel does not cover go through the explicit formula, same result dtype
    Ai = (A * 10).astype(np.int32)
    g = xback.lstsq_grad(_to(target, Ai), _to(target, x), _to(target, y), method="fused")
    assert xback.to_numpy(g).dtype == np.float64 if target.has_data else True
    Ac = A.astype(np.complex128)
    g = xback.lstsq_grad(_to(target, Ac), _to(target, x), _to(target, y), method="fused")
    if target.has_data:
        np.testing.assert_allclose(target.numpy(g), 2 * (A.T @ (A @ x - y)), rtol=1e-12)


@requires_numba
def test_fused_falls_back_for_layouts_and_batches() -> None:
    A, x, y = _data(60, 5, None, np.float64)
    want = 2 * (A.T @ (A @ x - y))
    for Al in (np.asfortranarray(A), A[::-1][::-1], np.stack([A, A])[1]):
        np.testing.assert_allclose(_lstsq_grad_on(NP, Al, x, y, "fused"), want, rtol=1e-12)
    Ab = np.stack([A, 2 * A])
    assert _fused.TARGET.grad(NP, Ab, x[:, None], y[:, None]) is None
    g = _lstsq_grad_on(NP, Ab, x[:, None], y[:, None], "fused")
    assert g.shape == (2, 5, 1)
    np.testing.assert_allclose(g[0, :, 0], want, rtol=1e-12)


@requires_torch
@requires_numba
def test_torch_autograd_is_kept() -> None:
    """With grad mode on and an input requiring grad, "fused" and "auto" take the
    differentiable explicit formula; under no_grad the fused kernel."""
    from xback.backends.torch import BACKEND as TB

    A, x, y = _data(80, 7, 1, np.float64)
    At, yt = torch.from_numpy(A), torch.from_numpy(y)
    xt = torch.from_numpy(x).requires_grad_(True)
    g = _lstsq_grad_on(TB, At, xt, yt, "fused")
    assert g.requires_grad and g.grad_fn is not None
    g.sum().backward()
    assert xt.grad is not None
    with torch.no_grad():
        g2 = _lstsq_grad_on(TB, At, xt, yt, "fused")
    assert not g2.requires_grad
    np.testing.assert_array_equal(g2.numpy(), _fused.lstsq_grad(A, x, y))


@requires_torch
@requires_numba
def test_torch_tensors_numpy_cannot_view_take_the_formula() -> None:
    """Tensors NumPy cannot view (negative-bit views, sparse, meta) or the kernel does not
    cover (non-contiguous) get the BLAS formula from the torch backend's "fused"."""
    from xback.backends.torch import BACKEND as TB

    A, x, y = _data(40, 6, None, np.float64)
    At, xt, yt = (torch.from_numpy(a) for a in (A, x, y))
    want = 2 * (A.T @ (A @ x - y))
    cases = [
        (At._neg_view(), xt, yt, 2 * (-A.T @ (-A @ x - y))),
        (At, xt._neg_view(), yt, 2 * (A.T @ (A @ -x - y))),
        (At, xt, yt._neg_view(), 2 * (A.T @ (A @ x + y))),
        (At.T.contiguous().T, xt, yt, want),  # column-major
        (At.to_sparse(), xt, yt, want),
    ]
    for Ac, xc, yc, ref in cases:
        g = _lstsq_grad_on(TB, Ac, xc, yc, "fused")
        np.testing.assert_allclose(g.numpy(), ref, rtol=1e-12)
    assert _fused.grad_torch(At.to("meta"), xt.to("meta"), yt.to("meta")) is None
    assert _fused.grad_torch(At._neg_view(), xt, yt) is None


def fused_table(
    from_size: int, *, dtypes: tuple[str, ...] = ("float32", "float64"), fused: bool = True
) -> dict[str, Any]:
    """A routing table for ``lstsq_grad/vec`` in which the fused kernel is 10x faster than
    both libraries from ``from_size`` elements of ``A`` on (even below), or has no column."""
    entries = []
    for dt in dtypes:
        for size, fast in ((from_size // 2, False), (from_size, True)):
            secs = {"numpy": 1e-3, "torch": 1e-3}
            if fused:
                secs["fused"] = 1e-4 if fast else 1e-3
            entries.append(
                {
                    "op": "lstsq_grad",
                    "layout": "vec",
                    "dtype": dt,
                    "shape": [size],
                    "size": size,
                    "arrays": 4,
                    "seconds": secs,
                }
            )
    return {
        "format": _routing.TABLE_FORMAT,
        "created": "test",
        "machine": {},
        "libraries": {"numpy": np.__version__, "torch": "test"},
        "threads": {},
        "convert_seconds": 0.0,
        "entries": entries,
    }


@pytest.fixture
def kernel_calls(monkeypatch: pytest.MonkeyPatch) -> list[tuple[int, ...]]:
    """The shapes of ``A`` each call of the kernel received."""
    seen: list[tuple[int, ...]] = []
    orig = _fused.lstsq_grad

    def spy(A: Any, *args: Any, **kw: Any) -> Any:
        seen.append(A.shape)
        return orig(A, *args, **kw)

    monkeypatch.setattr(_fused, "lstsq_grad", spy)
    return seen


def test_auto_applies() -> None:
    """The kernel's own limits on top of the table: Numba, and rows of AUTO_MIN_N columns."""
    f32, f64 = np.dtype(np.float32), np.dtype(np.float64)
    assert _fused.auto_applies(_fused.AUTO_MIN_N[f32], f32) is HAS_NUMBA
    assert not _fused.auto_applies(_fused.AUTO_MIN_N[f32] - 1, f32)
    assert _fused.auto_applies(_fused.AUTO_MIN_N[f64], f64) is HAS_NUMBA
    assert not _fused.auto_applies(10**6, np.dtype(np.complex128))


@requires_numba
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_auto_follows_the_table(
    data_target: Target, dtype: Any, table: Any, kernel_calls: list[tuple[int, ...]]
) -> None:
    """ "auto" takes the kernel exactly where the table measured it faster, for NumPy arrays
    and CPU tensors alike, with the kernel's bits; below that size, with routing off, or
    for rows shorter than AUTO_MIN_N, the BLAS formula."""
    if data_target.backend not in ("numpy", "torch"):
        pytest.skip("the Numba kernel serves NumPy arrays and CPU tensors only")
    n = _fused.AUTO_MIN_N[np.dtype(dtype)]
    A, x, y = _data(4 * n, n, None, dtype, seed=4)
    table(fused_table(A.size))
    args = [_to(data_target, a) for a in (A, x, y)]
    g = xback.lstsq_grad(*args)
    assert kernel_calls == [A.shape]
    data_target.check(g)
    assert g.dtype == args[0].dtype
    same = [xback.to_numpy(a, copy=False) for a in args]  # the same memory: same rounding
    np.testing.assert_array_equal(data_target.numpy(g), _fused.lstsq_grad(*same))
    kernel_calls.clear()
    # a matrix x of at most AUTO_MAX_K columns too; more columns: BLAS
    for k, used in ((2, True), (_fused.AUTO_MAX_K + 1, False)):
        _, xk, yk = _data(4 * n, n, k, dtype, seed=5)
        gk = xback.lstsq_grad(args[0], _to(data_target, xk), _to(data_target, yk))
        assert kernel_calls == ([A.shape] if used else [])
        kernel_calls.clear()
        _check_bound(data_target.numpy(gk), A, xk, yk)
    with xback.use(route=False):
        g0 = xback.lstsq_grad(*args)
    assert kernel_calls == []
    _check_bound(data_target.numpy(g0), A, x, y)
    half = [_to(data_target, a) for a in (A[: 2 * n], x, y[: 2 * n])]  # below the size
    xback.lstsq_grad(*half)
    narrow = [_to(data_target, a) for a in (A[:, 1:].copy(), x[1:], y)]  # n < AUTO_MIN_N
    xback.lstsq_grad(*narrow)
    xback.lstsq_grad(*args, method="explicit")
    assert kernel_calls == []


@requires_numba
def test_auto_without_a_fused_column_never_uses_it(
    table: Any, kernel_calls: list[tuple[int, ...]]
) -> None:
    A, x, y = _data(400, 100, None, np.float64)
    for t in (fused_table(1, fused=False), fused_table(1, dtypes=("float32",)), None):
        table(t)
        np.testing.assert_allclose(xback.lstsq_grad(A, x, y), 2 * (A.T @ (A @ x - y)), rtol=1e-12)
    assert kernel_calls == []


def test_fused_route_must_be_confirmed(table: Any) -> None:
    """``xback tune`` also times the fused route as "auto" calls it (front-layer checks, the
    backend's "fused" path) against the caller's own call: a route it found no faster by the
    margin is dropped for that source only; a confirmed one is kept."""
    t = fused_table(1 << 20)
    for e in t["entries"]:
        e["confirmed"] = {
            "numpy": {"own": 1e-3, "fused": 1e-3 / _routing.MARGIN},  # not faster as called
            "torch": {"own": 1e-3, "fused": 0.5e-3},
        }
    table(t)
    assert _routing.plan_summary("numpy") == []
    rows = _routing.plan_summary("torch")
    assert {r[2] for r in rows} == {"float32", "float64"}
    assert all(r[3] == 1 << 20 and r[4] is None and r[5] == "fused" for r in rows)


@requires_numba
@pytest.mark.parametrize("name", ["numpy", "torch"])
def test_tune_confirms_the_fused_route(
    numba: Any, monkeypatch: pytest.MonkeyPatch, name: str
) -> None:
    """The tune's confirmation of a fused route times the kernel's target object (what
    "auto" runs; for torch through its NumPy views) against the backend's own formula, on
    the same memory, for inputs of either library."""
    if name == "torch" and not HAS_TORCH:
        pytest.skip("torch is not installed")
    from xback._dispatch import load_backend
    from xback.bench import tune

    calls: list[str] = []
    b = load_backend(name)
    real = type(b).lstsq_grad

    def spy(self: Any, A: Any, x: Any, y: Any, method: str) -> Any:
        calls.append(method)
        return real(self, A, x, y, method)

    monkeypatch.setattr(type(b), "lstsq_grad", spy)
    real_grad = _fused.FusedTarget.grad

    def grad_spy(self: Any, b: Any, A: Any, x: Any, y: Any) -> Any:
        calls.append("fused")
        return real_grad(self, b, A, x, y)

    monkeypatch.setattr(_fused.FusedTarget, "grad", grad_spy)
    A, x, y = _data(64, 8, None, np.float64)
    case = next(c for c in tune.cases(True) if c.op == "lstsq_grad")
    secs = {"numpy": 1e-3, "torch": 1e-3, "fused": 1e-4}
    out = tune._confirm(case, [b], [A, x, y], secs, 0.0, repeat=2, warm_s=0.0)
    assert set(out) == {name} and set(out[name]) == {"own", "fused"}
    assert set(calls) == {"auto", "fused"}
    g = tune._fused_call(b, [A, x, y])()
    np.testing.assert_allclose(xback.to_numpy(g), 2 * (A.T @ (A @ x - y)), rtol=1e-12)
    # the fused path ran the kernel, not the BLAS fallback
    np.testing.assert_array_equal(xback.to_numpy(g), _fused.lstsq_grad(A, x, y))


@requires_torch
@requires_numba
def test_auto_keeps_autograd_and_layouts(table: Any, kernel_calls: list[tuple[int, ...]]) -> None:
    """Where the table picks the kernel but it cannot serve the call (autograd must see it,
    a non-contiguous A), "auto" computes the BLAS formula, differentiable on torch."""
    A, x, y = _data(400, 100, None, np.float64)
    table(fused_table(1))
    At, yt = torch.from_numpy(A), torch.from_numpy(y)
    for leaf in ("A", "x"):
        xt = torch.from_numpy(x.copy())
        Al = At.clone().requires_grad_(True) if leaf == "A" else At
        if leaf == "x":
            xt.requires_grad_(True)
        g = xback.lstsq_grad(Al, xt, yt)
        assert g.requires_grad and g.grad_fn is not None
        np.testing.assert_allclose(g.detach().numpy(), 2 * (A.T @ (A @ x - y)), rtol=1e-12)
    At_f = np.asfortranarray(A)
    np.testing.assert_allclose(xback.lstsq_grad(At_f, x, y), 2 * (A.T @ (A @ x - y)), rtol=1e-12)
    assert kernel_calls == []


def test_route_decision_counts_the_kernels_conversions() -> None:
    """The fused column is measured on NumPy arrays: torch inputs pay the conversions."""
    times = {"numpy": 1.0, "torch": 1.0, "fused": 0.9}
    assert _routing.decide(times, "numpy", 0.05) == "fused"
    assert _routing.decide(times, "torch", 0.1) is None  # (0.9 + 0.1) * 1.05 > 1
    assert _routing.decide(times, "torch", 0.0) == "fused"
    assert _routing.decide({"numpy": 1.0, "torch": 0.5, "fused": 0.6}, "numpy", 0.0) == "torch"


def test_without_numba(monkeypatch: pytest.MonkeyPatch) -> None:
    """Numba missing: "fused" is a ValueError with the pip command; "auto" falls back."""
    monkeypatch.setattr(_fused, "_available", False)
    A, x, y = _data(50, 6, None, np.float64)
    for a in ((A, x, y),) + (
        ((torch.from_numpy(A), torch.from_numpy(x), torch.from_numpy(y)),) if HAS_TORCH else ()
    ):
        with pytest.raises(ValueError, match=r"pip install 'xback\[fast\]'"):
            xback.lstsq_grad(*a, method="fused")
    assert not _fused.auto_applies(1000, np.dtype(np.float64))  # "auto": never the kernel
    np.testing.assert_allclose(xback.lstsq_grad(A, x, y), 2 * (A.T @ (A @ x - y)), rtol=1e-12)
    if "_grad" not in _fused._state:
        with pytest.raises(ValueError, match="pip install"):
            _fused.lstsq_grad(A, x, y)


def test_info_names_the_kernel_and_says_when_it_is_inert(
    table: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``xback info`` lists routes to the fused kernel as such, and says when Numba is
    missing (the table's fused ranges then never run)."""
    from xback.cli import _routing_rows, info_dict

    table(fused_table(1 << 20))
    rows = dict(_routing_rows(info_dict()["routing"]))
    assert "xback's fused kernel" in rows["routes for numpy input"]
    assert ("inert" in rows["routes for numpy input"]) is not HAS_NUMBA
    monkeypatch.setattr(_fused, "_available", False)
    rows = dict(_routing_rows(info_dict()["routing"]))
    assert "inert: Numba is not installed" in rows["routes for torch input"]
