"""Backend and device choice, the context manager, thread and asyncio isolation."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import threading

import numpy as np
import pytest

import xback
from xback._dispatch import prepare

from .conftest import HAS_CUDA, Target, requires_cuda, requires_torch

torch = pytest.importorskip("torch")


def test_import_does_not_import_torch() -> None:
    code = (
        "import sys, numpy as np, xback\n"
        "xback.asarray([1.0]); xback.to_numpy(np.zeros(2)); xback.from_numpy(np.zeros(2))\n"
        "with xback.use('numpy'): xback.asarray([1])\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_default_backend_is_numpy() -> None:
    assert xback.get_backend() == "numpy"
    assert xback.get_device() is None
    assert type(xback.asarray([1.0, 2.0])) is np.ndarray


def test_backend_of_kinds() -> None:
    assert xback.backend_of(np.zeros(2)) == "numpy"
    assert xback.backend_of(np.float32(1)) == "numpy"
    assert xback.backend_of(torch.zeros(2)) == "torch"
    assert xback.backend_of(torch.nn.Parameter(torch.zeros(2))) == "torch"
    for neutral in (1, 1.5, [1, 2], (1,), True, 1j):
        with pytest.raises(TypeError, match="no backend of its own"):
            xback.backend_of(neutral)


def test_unknown_kind_lists_supported() -> None:
    class Foo:
        pass

    with pytest.raises(TypeError, match=r"registered backends \(numpy, torch, .*dask\)"):
        xback.asarray(Foo())
    with pytest.raises(TypeError, match="unsupported array type"):
        xback.backend_of("a string")


def test_masked_array_rejected() -> None:
    with pytest.raises(TypeError, match="masked"):
        xback.asarray(np.ma.masked_array([1.0, 2.0], mask=[0, 1]))


def test_unknown_backend_lists_available() -> None:
    with pytest.raises(ValueError, match=r"unknown backend 'tensorflow'.*numpy.*torch"):
        xback.use("tensorflow")
    with pytest.raises(ValueError, match="available backends"):
        xback.asarray([1], backend="nope")
    with pytest.raises(TypeError, match="backend must be a str"):
        xback.asarray([1], backend=3)  # type: ignore[arg-type]


def test_missing_package_gives_pip_command(monkeypatch: pytest.MonkeyPatch) -> None:
    from xback import _dispatch
    from xback.backends import KNOWN_BACKENDS

    entry = ("xback.backends.fake", "no_such_pkg_xb", "fakepkg")
    monkeypatch.setitem(KNOWN_BACKENDS, "fake", entry)
    with pytest.raises(ImportError, match='pip install "fakepkg"'):
        _dispatch.load_backend("fake")


def test_precedence_per_call_over_context_over_kind() -> None:
    a = np.arange(3.0)
    t = torch.arange(3.0)
    assert xback.backend_of(xback.asarray(t)) == "torch"  # kind
    with xback.use("numpy"):
        assert xback.backend_of(xback.asarray(t)) == "numpy"  # context over kind
        assert xback.backend_of(xback.asarray(a, backend="torch")) == "torch"  # per call
    with xback.use("torch"):
        assert xback.backend_of(xback.asarray(a)) == "torch"
        assert xback.backend_of(xback.asarray([1, 2])) == "torch"  # neutral takes choice


def test_mixed_kinds_need_a_choice() -> None:
    a, t = np.zeros(2), torch.zeros(2)
    with pytest.raises(TypeError, match=r"numpy.*torch.*backend=.*xback\.use"):
        prepare(None, None, a, t)
    b, dev, (x, y) = prepare("torch", None, a, t)
    assert b.name == "torch" and dev == "cpu"
    assert isinstance(x, torch.Tensor) and y is t
    with xback.use("numpy"):
        b, dev, (x, y) = prepare(None, None, a, t)
        assert x is a and type(y) is np.ndarray


def test_neutral_inputs_do_not_count_as_a_kind() -> None:
    t = torch.zeros(2)
    b, _, (x, y) = prepare(None, None, t, [1.0, 2.0])
    assert b.name == "torch" and y.dtype == torch.float64  # NumPy inference on every backend


def test_device_rules_meta() -> None:
    a = np.arange(4.0)
    with xback.use("torch", device="meta"):
        assert xback.get_device() == "meta"
        assert xback.device(xback.asarray(a)) == "meta"
        # device travels with its backend: numpy inside runs on the CPU
        assert xback.device(xback.asarray(a, backend="numpy")) == "cpu"
        with xback.use("numpy"):
            assert xback.get_device() is None
            assert type(xback.asarray([1])) is np.ndarray
        with xback.use(device="cpu"):
            assert xback.get_backend() == "torch"
            assert xback.device(xback.asarray(a)) == "cpu"
        # per-call device wins
        assert xback.device(xback.asarray(a, device="cpu")) == "cpu"
    with xback.use("torch"), xback.use(device="meta"):
        assert xback.get_backend() == "torch"
        assert xback.device(xback.asarray([1.0])) == "meta"


def test_device_only_context_applies_to_inputs_kind() -> None:
    with xback.use(device="meta"):
        assert xback.device(xback.asarray(torch.zeros(2))) == "meta"
        with pytest.raises(ValueError, match="numpy backend runs on the CPU only"):
            xback.asarray(np.zeros(2))


def test_inputs_common_device_and_mismatch() -> None:
    m = torch.zeros(2, device="meta")
    c = torch.zeros(2)
    b, dev, _ = prepare(None, None, m, m)
    assert dev == "meta"
    with pytest.raises(ValueError, match=r"different devices: cpu, meta"):
        prepare(None, None, m, c)
    b, dev, (x, y) = prepare(None, "meta", m, c)
    assert dev == "meta" and xback.device(y) == "meta"
    # numpy input joins the torch inputs' device
    b, dev, (x, y) = prepare("torch", None, m, np.zeros(2))
    assert dev == "meta" and xback.device(y) == "meta"


def test_same_device_is_free(monkeypatch: pytest.MonkeyPatch) -> None:
    t = torch.zeros(3)

    def boom(*args: object, **kwargs: object) -> None:
        raise AssertionError(".to() must not be called")

    monkeypatch.setattr(torch.Tensor, "to", boom)
    assert xback.to_device(t, "cpu") is t
    assert xback.asarray(t, device="cpu") is t
    assert xback.asarray(t, device=torch.device("cpu")) is t
    b, _, (x,) = prepare("torch", "cpu", t)
    assert x is t


def test_numpy_backend_accepts_only_cpu() -> None:
    with pytest.raises(ValueError, match=r"CPU only.*'meta'"):
        xback.use("numpy", device="meta")
    with pytest.raises(ValueError, match="CPU only"):
        xback.to_device(np.zeros(2), "cuda")
    assert xback.to_device(np.zeros(2), "cpu") is not None


@pytest.mark.skipif(HAS_CUDA, reason="checks the error raised when CUDA is absent")
def test_cuda_absent_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="CUDA is not available"):
        xback.use("torch", device="cuda")
    with pytest.raises(ValueError, match="CUDA is not available"):
        xback.asarray([1.0], backend="torch", device="cuda:0")
    with pytest.raises(ValueError, match="CUDA is not available"):
        xback.to_device(torch.zeros(1), torch.device("cuda"))
    with pytest.raises(ValueError, match="not a device torch knows"):
        xback.asarray([1.0], backend="torch", device="gpu")


def test_device_argument_type() -> None:
    with pytest.raises(TypeError, match="device must be a str"):
        xback.asarray([1.0], device=3)


@requires_cuda
def test_cuda_device_routing() -> None:  # pragma: no cover - needs a GPU
    with xback.use("torch", device="cuda"):
        x = xback.asarray(np.arange(3.0))
        assert xback.device(x) == "cuda:0"
        assert np.array_equal(xback.to_numpy(x), np.arange(3.0))
    assert xback.to_device(x, "cuda") is x


def test_device_normalisation() -> None:
    assert xback.device(torch.zeros(1)) == "cpu"
    assert xback.device(torch.zeros(1, device="meta")) == "meta"
    assert xback.device(np.zeros(1)) == "cpu"
    assert xback.device(np.float64(1)) == "cpu"


def test_use_is_exception_safe_and_nestable() -> None:
    with pytest.raises(RuntimeError), xback.use("torch", device="meta"), xback.use("numpy"):
        raise RuntimeError
    assert xback.get_backend() == "numpy" and xback.get_device() is None
    u = xback.use("torch")
    with u:
        with u:  # re-entrant
            assert xback.get_backend() == "torch"
        assert xback.get_backend() == "torch"
    assert xback.get_backend() == "numpy"


def test_use_as_decorator() -> None:
    @xback.use("torch", device="meta")
    def f() -> tuple[str, str | None]:
        return xback.get_backend(), xback.get_device()

    assert f() == ("torch", "meta")
    assert xback.get_backend() == "numpy"
    assert f.__name__ == "f"


def test_use_decorator_async_holds_while_running() -> None:
    @xback.use("torch")
    async def f() -> list[str]:
        seen = [xback.get_backend()]
        await asyncio.sleep(0)
        seen.append(xback.get_backend())
        return seen

    coro = f()  # created outside: the choice must hold while it runs
    assert xback.get_backend() == "numpy"
    assert asyncio.run(coro) == ["torch", "torch"]


def test_asyncio_task_isolation() -> None:
    async def worker(name: str | None, out: dict[str, list[str]], key: str) -> None:
        if name is None:
            for _ in range(5):
                out[key].append(xback.get_backend())
                await asyncio.sleep(0)
            return
        with xback.use(name):
            for _ in range(5):
                out[key].append(xback.get_backend())
                await asyncio.sleep(0)

    async def main() -> dict[str, list[str]]:
        out: dict[str, list[str]] = {"a": [], "b": [], "c": []}
        await asyncio.gather(
            worker("torch", out, "a"), worker("numpy", out, "b"), worker(None, out, "c")
        )
        return out

    out = asyncio.run(main())
    assert out == {"a": ["torch"] * 5, "b": ["numpy"] * 5, "c": ["numpy"] * 5}


def test_thread_isolation() -> None:
    barrier = threading.Barrier(3)
    seen: dict[str, list[str]] = {}

    def run(name: str | None) -> None:
        key = str(name)
        seen[key] = []
        if name is None:
            barrier.wait()
            for _ in range(50):
                seen[key].append(xback.get_backend())
            return
        with xback.use(name):
            barrier.wait()
            for _ in range(50):
                seen[key].append(xback.get_backend())

    with xback.use("torch"):  # the main thread's choice does not leak into threads
        threads = [threading.Thread(target=run, args=(n,)) for n in ("torch", "numpy", None)]
        for th in threads:
            th.start()
        for th in threads:
            th.join()
    assert seen == {"torch": ["torch"] * 50, "numpy": ["numpy"] * 50, "None": ["numpy"] * 50}


def test_decorated_function_called_from_threads() -> None:
    @xback.use("torch")
    def f(barrier: threading.Barrier) -> str:
        barrier.wait()
        return xback.get_backend()

    barrier = threading.Barrier(4)
    results: list[str] = []
    threads = [threading.Thread(target=lambda: results.append(f(barrier))) for _ in range(4)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    assert results == ["torch"] * 4
    assert xback.get_backend() == "numpy"


@requires_torch
def test_target_fixture_roundtrip(target: Target) -> None:
    x = target.make([3.0, 1.0])
    target.check(x)
    if target.has_data:
        assert np.array_equal(target.numpy(x), [3.0, 1.0])
