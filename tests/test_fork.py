"""Fork tests of the fused ``lstsq_grad`` kernel (:mod:`xback._fused`, issue 18).

A ``multiprocessing`` fork pool after each kind of fused call, and forks while another
thread compiles the kernels for the first time. Each scenario runs in a child Python process
with a timeout (and every fork inside it is waited for with a timeout too), so that a hang
fails the test instead of hanging CI.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from xback import _fused

from .test_fused import shared_cache

pytestmark = [
    pytest.mark.skipif(not _fused.available(), reason="numba is not installed"),
    pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork"),
]

#: seconds a scenario may take: far more than a first compile needs, even on a loaded machine
TIMEOUT = 240

# helpers the scenarios share: data, a reference, and a fork whose child is waited for
# with a timeout (killed and reported as a hang past it)
PRELUDE = textwrap.dedent(
    """
    import os, sys, threading, time
    import numpy as np
    import xback
    from xback import _fused

    def data(m, n, dtype, seed=0):
        rng = np.random.default_rng(seed)
        return (rng.standard_normal((m, n)).astype(dtype), rng.standard_normal(n).astype(dtype),
                rng.standard_normal(m).astype(dtype))

    def close(g, A, x, y):
        ref = 2 * (A.T.astype(np.float64) @ (A.astype(np.float64) @ x - y))
        tol = 1e-3 if A.dtype == np.float32 else 1e-10
        return g.dtype == A.dtype and np.allclose(g, ref, rtol=tol, atol=tol * np.abs(ref).max())

    def forked(child, timeout):
        '''Run child() in a forked process; its exit code (0: passed), or "hang".'''
        pid = os.fork()
        if pid == 0:
            code = 1
            try:
                code = 0 if child() else 3
            finally:
                os._exit(code)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                return os.waitstatus_to_exitcode(status)
            time.sleep(0.01)
        os.kill(pid, 9)
        os.waitpid(pid, 0)
        return "hang"

    def held_elsewhere(lock):
        '''Whether another thread holds ``lock`` (an RLock: this thread's try would succeed).'''
        if lock.acquire(blocking=False):
            lock.release()
            return False
        return True
    """
)


def _run(code: str, cache: Path, timeout: float = TIMEOUT) -> str:
    """Run ``PRELUDE + code`` in a new Python process (its own process group, killed
    whole past ``timeout``); its stdout. Fails the test on a hang or a non-zero exit."""
    env = dict(os.environ, XBACK_CACHE_DIR=str(cache), PYTHONWARNINGS="ignore::DeprecationWarning")
    proc = subprocess.Popen(
        [sys.executable, "-c", PRELUDE + textwrap.dedent(code)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        start_new_session=True,
    )
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"hung for {timeout} s\nstdout:\n{out}\nstderr:\n{err}")
    assert proc.returncode == 0, f"stdout:\n{out}\nstderr:\n{err}"
    return out


def test_fork_pools_after_fused_calls(tmp_path_factory: pytest.TempPathFactory) -> None:
    """After fused calls of each kind (the kernel itself with its pool of threads, NumPy
    and torch input through ``xback.lstsq_grad``, a call from another thread), a
    ``multiprocessing`` fork pool and a plain fork compute the same bits; a forked child
    compiles (or loads from the disk cache) a dtype the parent never did; the parent goes
    on working."""
    out = _run(
        """
        import multiprocessing as mp
        try:
            import torch
        except ImportError:
            torch = None
        _fused.BLOCK_ROWS, _fused.CHUNK_BYTES = 8, 1  # many chunks: every call uses the pool
        A, x, y = data(400, 64, np.float64)
        want = _fused.lstsq_grad(A, x, y, threads=2)
        assert close(want, A, x, y)
        assert (xback.lstsq_grad(A, x, y, method="fused") == want).all()
        if torch is not None:
            gt = xback.lstsq_grad(*(torch.from_numpy(a) for a in (A, x, y)), method="fused")
            assert (gt.numpy() == want).all()
        t = threading.Thread(target=lambda: _fused.lstsq_grad(A, x, y, threads=2))
        t.start(); t.join()

        def kinds(_):
            gs = [_fused.lstsq_grad(A, x, y, threads=2),
                  xback.lstsq_grad(A, x, y, method="fused")]
            if torch is not None:
                gs.append(xback.lstsq_grad(*(torch.from_numpy(a) for a in (A, x, y)),
                                           method="fused").numpy())
            return all((g == want).all() for g in gs)

        with mp.get_context("fork").Pool(2) as pool:
            res = pool.map_async(kinds, range(4))
            assert res.get(timeout=120) == [True] * 4
        A32, x32, y32 = data(400, 64, np.float32, seed=1)
        assert forked(lambda: kinds(0) and close(_fused.lstsq_grad(A32, x32, y32, threads=2),
                                                 A32, x32, y32), 120) == 0
        assert (_fused.lstsq_grad(A, x, y, threads=2) == want).all()  # the parent still works
        print("ok")
        """,
        shared_cache(tmp_path_factory),
    )
    assert out.split()[-1] == "ok"


def test_fork_during_first_compile(tmp_path: Path) -> None:
    """A fork while another thread builds or compiles the kernels for the first time: the
    fork waits for that compile, and the child computes with the kernel (issue 18: the
    child blocked forever on the kernel's lock). Forked while another thread holds the
    compile lock or Numba's compiler lock all the same (the wait runs out), the child never
    compiles (it would wait for a lock of a thread that does not exist): NumPy computes the
    dtypes not compiled before the fork, the kernel the others; nothing blocks."""
    out = _run(
        """
        import numba.core.compiler_lock

        A, x, y = data(3000, 64, np.float64)
        A32, x32, y32 = data(3000, 64, np.float32, seed=1)

        # 1. a real first compile in a thread; the fork waits for it (however long it takes)
        _fused.FORK_WAIT_SECONDS = 600.0
        t = threading.Thread(target=lambda: _fused.lstsq_grad(A, x, y, threads=2))
        t.start()
        deadline = time.monotonic() + 60
        while not (held_elsewhere(_fused._build_lock) or held_elsewhere(_fused._lock)):
            assert time.monotonic() < deadline and t.is_alive(), "no compile seen"
            time.sleep(0.0005)

        def child_waited():
            info = _fused.compile_info()
            return info["no_compile"] is None and close(_fused.lstsq_grad(A, x, y), A, x, y)

        assert forked(child_waited, 120) == 0
        t.join()
        want = _fused.lstsq_grad(A, x, y)

        # 2. a fork while another thread holds the compile lock, then Numba's compiler lock
        # (a compile of the user's): the wait runs out, the child computes without compiling
        _fused.FORK_WAIT_SECONDS = 0.2

        def child_no_compile():
            g32 = _fused.lstsq_grad(A32, x32, y32, threads=2)  # never compiled: NumPy
            g = xback.lstsq_grad(A, x, y, method="fused")  # compiled before: the kernel
            info = _fused.compile_info()
            return (info["no_compile"] is not None and close(g32, A32, x32, y32)
                    and (g == want).all() and _fused.num_threads() >= 1)

        for lock in (_fused._lock, numba.core.compiler_lock.global_compiler_lock):
            taken, done = threading.Event(), threading.Event()

            def hold():
                with lock:
                    taken.set()
                    done.wait()

            h = threading.Thread(target=hold)
            h.start()
            taken.wait()
            code = forked(child_no_compile, 60)
            done.set()
            h.join()
            assert code == 0, code
        assert (_fused.lstsq_grad(A, x, y, threads=2) == want).all()  # the parent goes on
        print("ok")
        """,
        tmp_path,
    )
    assert out.split()[-1] == "ok"
