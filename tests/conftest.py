"""Shared test machinery: every public function is tested on every backend with the same
test, parametrised over :data:`TARGETS`."""

from __future__ import annotations

import importlib.util
import math
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, settings

import xback
from xback import _machine, _routing
from xback.backends import KNOWN_BACKENDS

# Profiles (HYPOTHESIS_PROFILE=...; see docs/testing.md):
# - "ci" (the default, and what .ci/run uses): derandomized, no example database. Each test
#   draws the same examples on every run and machine, so a submission can only fail for a
#   case its own change broke; a case found elsewhere becomes an explicit test.
# - "dev": fewer examples, random draws, with the local database replaying past failures.
# - "thorough": many random examples; run it before a submission, never in CI.
settings.register_profile(
    "ci",
    max_examples=60,
    deadline=None,
    derandomize=True,
    database=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("dev", max_examples=30, deadline=None)
settings.register_profile(
    "thorough",
    max_examples=1000,
    deadline=None,
    print_blob=True,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

try:
    import torch

    HAS_TORCH = True
    HAS_CUDA = bool(torch.cuda.is_available())
except ImportError:  # pragma: no cover - the test requirements install torch
    torch = None
    HAS_TORCH = False
    HAS_CUDA = False

try:
    import array_api_strict  # noqa: F401

    HAS_STRICT = True
except ImportError:  # pragma: no cover - the test requirements install it
    HAS_STRICT = False

try:  # in the test requirements (CPU); the tests that need it are marked "jax"
    import jax

    # the shared tests use float64 and int64: JAX holds them only with x64 on, here and in
    # the tests' subprocesses (JAX's default, 32-bit only, is tested in
    # tests/test_array_api.py::test_jax_without_x64_keeps_32_bit)
    jax.config.update("jax_enable_x64", True)
    os.environ["JAX_ENABLE_X64"] = "1"
    HAS_JAX = True
except ImportError:
    HAS_JAX = False

# found, not imported: dispatch must never import dask unless the caller did (test_dask.py)
HAS_DASK = importlib.util.find_spec("dask") is not None and (
    importlib.util.find_spec("dask.array") is not None
)
requires_dask = pytest.mark.skipif(not HAS_DASK, reason="dask[array] is not installed")
requires_strict = pytest.mark.skipif(not HAS_STRICT, reason="array-api-strict is not installed")
requires_jax = pytest.mark.skipif(not HAS_JAX, reason="jax is not installed")
#: the jax target of the shared backend matrix (every test of TARGETS on JAX arrays) runs
#: only with XBACK_TEST_JAX_MATRIX=1: JAX compiles each new operation and shape, which made
#: the matrix the slowest target by far (docs/testing.md); the "jax" marked tests always run
JAX_MATRIX = HAS_JAX and os.environ.get("XBACK_TEST_JAX_MATRIX") == "1"
requires_jax_matrix = pytest.mark.skipif(
    not JAX_MATRIX, reason="the jax target of the matrix runs with XBACK_TEST_JAX_MATRIX=1"
)
requires_torch = pytest.mark.skipif(not HAS_TORCH, reason="torch is not installed")
requires_cuda = pytest.mark.skipif(not HAS_CUDA, reason="CUDA is not available")


@dataclass(frozen=True)
class Target:
    """A backend and a device a test runs on."""

    backend: str
    device: str
    #: chunked backends (dask): arrays made by :meth:`make` have small chunks (see
    #: :func:`small_chunks`), so that every multi-chunk path runs
    chunked: bool = False

    @property
    def has_data(self) -> bool:
        """False for torch's ``meta`` device: shapes and dtypes only."""
        return self.device != "meta"

    def supports(self, dtype: Any) -> bool:
        """Whether this target's library holds ``dtype`` (array-api-strict has no float16)."""
        from xback._dispatch import load_backend
        from xback._dtypes import normalize_dtype

        return load_backend(self.backend).can_hold(normalize_dtype(dtype))

    def supports_svd(self, shape: tuple[int, ...], full_matrices: bool) -> bool:
        """Whether ``svd`` of an array of ``shape`` made by :meth:`make` is exact here: on
        every target but the chunked ones, where a 2-D matrix split into row blocks is
        decomposed by TSQR: tall matrices only, and full factors only when square (the dask
        backend raises ValueError otherwise, tested in test_dask.py)."""
        if not self.chunked or len(shape) != 2 or small_chunks(shape)[0] >= shape[0]:
            return True
        m, n = shape
        return m >= n and not (full_matrices and m > n)

    def require_svd(self, shape: tuple[int, ...], full_matrices: bool) -> None:
        """Skip the test when :meth:`supports_svd` says no."""
        if not self.supports_svd(shape, full_matrices):
            pytest.skip(
                f"{self}: svd of a {shape} matrix split into row blocks is TSQR (tall, thin "
                f"factors unless square); full_matrices={full_matrices}"
            )

    def make(self, a: Any, dtype: Any = None) -> Any:
        """A fresh array of this target holding ``a`` (via NumPy, copied).

        Skips the test when the target cannot hold the dtype (see :meth:`supports`).
        """
        arr = np.asarray(a) if dtype is None else np.asarray(a, dtype=dtype)
        if not self.supports(arr.dtype):
            pytest.skip(f"{self} has no {arr.dtype}")
        if self.chunked:
            return xback.from_numpy(
                arr, backend=self.backend, device=self.device, copy=True,
                chunks=small_chunks(arr.shape),
            )
        return xback.from_numpy(arr, backend=self.backend, device=self.device, copy=True)

    def dtype_of(self, x: Any) -> np.dtype:
        """NumPy dtype equivalent to the dtype of ``x`` (an array of this target; meta too)."""
        from xback._dispatch import load_backend

        return load_backend(self.backend).dtype_of(x)

    def check(self, x: Any) -> None:
        """Assert that ``x`` is an array of this target."""
        assert xback.backend_of(x) == self.backend, (xback.backend_of(x), self.backend)
        assert xback.device(x) == self.device, (xback.device(x), self.device)

    def numpy(self, x: Any) -> np.ndarray:
        """``x`` checked to be of this target, as a NumPy array (copied)."""
        self.check(x)
        return xback.to_numpy(x, copy=True)

    def __str__(self) -> str:
        return f"{self.backend}-{self.device}" + ("-chunked" if self.chunked else "")


def c_stdio_output(capfd: pytest.CaptureFixture[str]) -> str:
    """What was written on stdout and stderr so far, C's buffered stdio included (LAPACK
    prints with it): flushed, then read at the file-descriptor level."""
    import ctypes

    ctypes.CDLL(None).fflush(None)
    out, err = capfd.readouterr()
    return out + err


def small_chunks(shape: tuple[int, ...]) -> tuple[int, ...]:
    """Chunks of the chunked targets: axes cut in two (lengths 2 and up), never across a
    matrix (how the dask backend's linear algebra takes its input): 1-D arrays along their
    axis, 2-D arrays by rows, stacks along their batch axes."""
    whole = {len(shape) - 1} if len(shape) == 2 else set(range(len(shape) - 2, len(shape)))
    if len(shape) == 1:
        whole = set()
    return tuple(max(1, n if d in whole else math.ceil(n / 2)) for d, n in enumerate(shape))


def _installed(package: str) -> bool:
    return importlib.util.find_spec(package) is not None


#: what the tests add to a registered backend's CPU target: its id, other devices (with
#: their marks) and its own marks; a backend missing here gets one CPU target, skipped
#: while its package is not installed
_TARGET_TRAITS: dict[str, dict[str, Any]] = {
    "torch": {"extra": [(Target("torch", "meta"), "torch-meta", []),
                        (Target("torch", "cuda:0"), "torch-cuda", [requires_cuda])]},
    "array_api_strict": {"id": "strict"},
    "jax": {"marks": [requires_jax_matrix]},
    "cupy": {"target": Target("cupy", "cuda:0"), "marks": [requires_cuda]},
    "dask": {"target": Target("dask", "cpu", chunked=True)},
}


def _targets() -> list[Any]:
    """One target per registered backend (:data:`xback.backends.KNOWN_BACKENDS`), in the
    registry's order, with the traits above."""
    out = []
    for name, (_module, package, _requirement) in KNOWN_BACKENDS.items():
        traits = _TARGET_TRAITS.get(name, {})
        need = pytest.mark.skipif(not _installed(package), reason=f"{package} is not installed")
        out.append(pytest.param(traits.get("target", Target(name, "cpu")),
                                id=traits.get("id", name), marks=[need, *traits.get("marks", [])]))
        for target, ident, marks in traits.get("extra", []):
            out.append(pytest.param(target, id=ident, marks=[need, *marks]))
    return out


_ALL = _targets()
TARGETS = _ALL
DATA_TARGETS = [p for p in _ALL if p.id != "torch-meta"]


@pytest.fixture(params=TARGETS)
def target(request: pytest.FixtureRequest) -> Target:
    """Every backend and device, meta included (check shapes/dtypes when not has_data)."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture(params=DATA_TARGETS)
def data_target(request: pytest.FixtureRequest) -> Target:
    """Every backend and device that holds data (numpy, torch CPU, CUDA when present)."""
    return request.param  # type: ignore[no-any-return]


@pytest.fixture
def table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[..., Path]]:
    """Install a table (as the user's tuned table, in a private cache directory); one
    without a ``fingerprint`` gets this machine's (as this process has it now)."""
    monkeypatch.setenv("XBACK_CACHE_DIR", str(tmp_path))

    def install(t: dict[str, Any] | None) -> Path:
        path = _routing.user_table_path()
        if t is None:
            path.unlink(missing_ok=True)
            monkeypatch.setattr(_routing, "default_table_path", lambda: tmp_path / "none.json")
            _routing.reload()
            return path
        if "fingerprint" not in t:  # a test's table describes this machine unless it says
            t = {**t, "fingerprint": _machine.fingerprint()}
        return _routing.save_table(t)

    yield install
    monkeypatch.undo()
    _routing.reload()
