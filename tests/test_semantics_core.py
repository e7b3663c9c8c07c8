"""The xback column of the conversion, dtypes and devices tables in ``docs/semantics.md``.

Each test is named in the table row it backs and runs on every backend (numpy, torch CPU,
torch ``meta``, and CUDA when present) through the ``target`` / ``data_target`` fixtures.
Rows that are about torch input by nature (autograd, conjugate bits, sparse, meta) run on
the torch targets and say so.
"""

from __future__ import annotations

import asyncio
import threading
from typing import Any

import ml_dtypes
import numpy as np
import pytest

import xback as xb
from tests.conftest import HAS_CUDA, HAS_TORCH, Target, requires_torch
from xback._dispatch import load_backend

if HAS_TORCH:
    import torch

#: backends whose memory sharing with NumPy these tests check (others: values only)
SHARING = ("numpy", "torch")

ALL_DTYPES = [
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64", "complex64", "complex128", "bfloat16",
]


def _np_dtype(name: str) -> np.dtype[Any]:
    return np.dtype(getattr(ml_dtypes, name)) if name == "bfloat16" else np.dtype(name)


def _writes_through(x: Any, a: np.ndarray) -> bool:
    """Whether writing into ``x`` (of any backend, on the CPU) is seen in ``a``."""
    before = a.copy()
    kind = xb.backend_of(x)
    assert kind in SHARING, kind
    if kind == "numpy":
        x[...] = 7
    else:
        x.fill_(7)
    seen = bool(np.all(a == 7))
    a[...] = before
    return seen


# -- conversion ---------------------------------------------------------------------------
def test_conv_zero_copy_on_cpu(target: Target) -> None:
    """from_numpy/asarray share memory with a contiguous array on the CPU; on other devices
    the result is placed there; to_numpy of a CPU result shares memory back."""
    a = np.arange(6.0).reshape(2, 3)
    x = xb.from_numpy(a, backend=target.backend, device=target.device)
    y = xb.asarray(a, backend=target.backend, device=target.device)
    for r in (x, y):
        target.check(r)
        assert tuple(r.shape) == (2, 3)
        if target.has_data:
            assert xb.to_numpy(r).dtype == np.float64
    if target.device == "cpu" and target.backend in SHARING:
        assert _writes_through(x, a) and _writes_through(y, a)
        back = xb.to_numpy(x)
        assert np.shares_memory(back, a)


def test_conv_zero_d_and_scalars(target: Target) -> None:
    """0-d arrays share memory (torch.asarray copies them); NumPy scalars are accepted by
    from_numpy (torch.from_numpy raises TypeError) and give 0-d arrays of their dtype."""
    z = np.array(1.5)
    x = xb.from_numpy(z, backend=target.backend, device=target.device)
    target.check(x)
    assert tuple(x.shape) == ()
    if target.device == "cpu" and target.backend in SHARING:
        assert _writes_through(x, z)
    s = xb.from_numpy(np.float32(2.5), backend=target.backend, device=target.device)
    target.check(s)
    assert tuple(s.shape) == ()
    if target.has_data:
        got = xb.to_numpy(s)
        assert got.dtype == np.float32 and got[()] == 2.5


def test_conv_negative_strides(target: Target) -> None:
    """Reversed views: torch raises ValueError (and torch.from_dlpack aborts the process);
    xback gives the values on every backend, copying only where the backend needs it, and
    copy=False raises ValueError only when a copy is unavoidable."""
    a = np.arange(5.0)
    r = a[::-1]
    x = xb.from_numpy(r, backend=target.backend, device=target.device)
    target.check(x)
    if target.has_data:
        np.testing.assert_array_equal(xb.to_numpy(x), [4.0, 3.0, 2.0, 1.0, 0.0])
    if target.backend == "numpy":
        assert xb.from_numpy(r, backend="numpy", copy=False) is r
    elif target.backend == "torch" and target.device == "cpu":
        with pytest.raises(ValueError, match="negative strides"):
            xb.from_numpy(r, backend=target.backend, copy=False)
    np.testing.assert_array_equal(a, np.arange(5.0))  # the caller's array is untouched


def test_conv_non_native_byte_order(target: Target) -> None:
    """Big-endian arrays: torch raises ValueError; xback converts them (values exact; NumPy
    keeps the array as is, torch gets a native-order copy)."""
    be = np.arange(4.0).astype(">f8")
    x = xb.asarray(be, backend=target.backend, device=target.device)
    target.check(x)
    if target.has_data:
        got = xb.to_numpy(x)
        np.testing.assert_array_equal(got, [0.0, 1.0, 2.0, 3.0])
        assert got.dtype.newbyteorder("=") == np.float64  # '>f8' kept by numpy
    if target.backend == "numpy":
        assert x is be


def test_conv_readonly_arrays(target: Target, recwarn: pytest.WarningsRecorder) -> None:
    """Read-only arrays: torch.from_numpy shares them with a UserWarning (a writable tensor over
    read-only memory); xback never lets a writable result alias read-only memory: numpy keeps
    the read-only array, torch gets a silent copy; copy=False shares on request."""
    ro = np.arange(3.0)
    ro.flags.writeable = False
    x = xb.from_numpy(ro, backend=target.backend, device=target.device)
    target.check(x)
    if target.backend == "numpy":
        assert x is ro and not x.flags.writeable
    elif target.backend == "torch" and target.device == "cpu":
        x.fill_(9)
        np.testing.assert_array_equal(ro, [0.0, 1.0, 2.0])
        shared = xb.from_numpy(ro, backend="torch", copy=False)
        assert np.shares_memory(xb.to_numpy(shared), ro)
    assert not [w for w in recwarn if issubclass(w.category, UserWarning)]


@pytest.mark.parametrize(
    "dtype", ["object", "U3", "S3", "datetime64[s]", "timedelta64[s]", "longdouble", "V8"]
)
def test_conv_unholdable_dtypes(target: Target, dtype: str) -> None:
    """dtypes torch cannot hold: torch raises TypeError listing its dtypes; xback raises
    TypeError naming the dtype and a cast that works, before any work; NumPy keeps them."""
    a = np.zeros(2, dtype=dtype)
    if target.backend == "numpy":
        assert xb.from_numpy(a, backend="numpy") is a
        return
    if target.backend != "torch":
        pytest.skip("the message checked here is the torch backend's")
    if dtype == "longdouble" and np.finfo(np.longdouble).bits <= 64:
        pytest.skip("longdouble is float64 on this platform")
    with pytest.raises(TypeError, match=r"dtype .*(astype|field|numeric)"):
        xb.from_numpy(a, backend=target.backend, device=target.device)
    with pytest.raises(TypeError, match="dtype"):
        xb.asarray(a, backend=target.backend, device=target.device)


@requires_torch
def test_conv_requires_grad_to_numpy() -> None:
    """torch input. Tensor.numpy() and np.asarray raise RuntimeError on a tensor that requires
    grad; xback.to_numpy shares memory (detached) and leaves the caller's tensor untouched."""
    t = torch.arange(3.0, requires_grad=True)
    a = xb.to_numpy(t)
    assert t.requires_grad and t.grad is None and t.grad_fn is None
    np.testing.assert_array_equal(a, [0.0, 1.0, 2.0])
    with torch.no_grad():
        t[0] = 5.0
    assert a[0] == 5.0


@requires_torch
@pytest.mark.parametrize("name", ["bfloat16", "float8_e4m3fn", "float8_e5m2"])
def test_conv_bfloat16_and_float8(name: str) -> None:
    """torch input and output. Tensor.numpy() raises TypeError on bfloat16 and np.from_dlpack
    RuntimeError; xback maps them to ml_dtypes arrays sharing memory, both ways."""
    tdt = getattr(torch, name)
    t = torch.tensor([1.0, 2.0, -0.5]).to(tdt)
    a = xb.to_numpy(t)
    assert a.dtype == np.dtype(getattr(ml_dtypes, name))
    np.testing.assert_array_equal(a.astype(np.float32), [1.0, 2.0, -0.5])
    back = xb.from_numpy(a, backend="torch")
    assert back.dtype == tdt
    assert back.data_ptr() == t.data_ptr()


@requires_torch
@pytest.mark.parametrize("which", ["conj", "neg"])
def test_conv_conj_and_neg_bits(which: str) -> None:
    """torch input. Tensor.numpy() raises on conjugate/negative-bit views and np.from_dlpack
    silently drops the sign of x.conj().imag; xback resolves them (a copy, right values), and
    copy=False raises ValueError."""
    c = torch.tensor([1 + 2j, 3 - 4j])
    v = c.conj() if which == "conj" else c.conj().imag
    expected = np.array([1 - 2j, 3 + 4j]) if which == "conj" else np.array([-2.0, 4.0])
    np.testing.assert_array_equal(xb.to_numpy(v), expected)
    np.testing.assert_array_equal(xb.asarray(v, backend="numpy"), expected)
    with pytest.raises(ValueError, match="copy"):
        xb.to_numpy(v, copy=False)


@requires_torch
def test_conv_meta_and_sparse() -> None:
    """torch input. meta tensors: torch raises TypeError, xback ValueError (no data); sparse
    tensors: TypeError suggesting .to_dense() on both."""
    with pytest.raises(ValueError, match="meta"):
        xb.to_numpy(torch.ones(2, device="meta"))
    with pytest.raises(TypeError, match="to_dense"):
        xb.to_numpy(torch.eye(2).to_sparse())


def test_conv_copy_argument(target: Target) -> None:
    """Array API copy=: None shares when possible, True always copies, False never copies and
    raises ValueError when it must (from a list, or across devices)."""
    a = np.arange(4.0)
    fresh = xb.asarray(a, backend=target.backend, device=target.device, copy=True)
    target.check(fresh)
    if target.device == "cpu" and target.backend in SHARING:
        assert not _writes_through(fresh, a)
        same = xb.asarray(a, backend=target.backend, device=target.device, copy=False)
        assert _writes_through(same, a)
        assert not np.shares_memory(xb.to_numpy(fresh, copy=True), xb.to_numpy(fresh))
    elif target.device != "cpu":
        with pytest.raises(ValueError, match="copy=False"):
            xb.asarray(a, backend=target.backend, device=target.device, copy=False)
    with pytest.raises(ValueError, match="copy=False"):
        xb.asarray([1.0, 2.0], backend=target.backend, device=target.device, copy=False)
    with pytest.raises(TypeError, match="copy"):
        xb.asarray(a, copy="yes")  # type: ignore[call-overload]


@requires_torch
def test_conv_mixed_kinds_raise(target: Target) -> None:
    """NumPy ufuncs accept tensors and return tensors (np.greater(t, 1) is uint8) and t + a is
    a tensor; xback raises TypeError naming both kinds and how to choose; an explicit
    backend= (here, the target's) brings every input over."""
    from xback._dispatch import prepare

    a, t = np.ones(2), torch.ones(2)
    with pytest.raises(TypeError, match=r"numpy.*torch.*backend="):
        prepare(None, None, a, t)
    b, dev, (ca, ct) = prepare(target.backend, target.device, a, t)
    assert b.name == target.backend and dev == target.device
    target.check(ca)
    target.check(ct)


# -- dtypes -------------------------------------------------------------------------------
def test_dtype_python_scalars_follow_numpy(target: Target) -> None:
    """Python floats: NumPy float64, torch float32 (its default dtype); complex: complex128 vs
    complex64. xback follows NumPy's inference on every backend; ints are int64, bools bool."""
    cases: list[tuple[Any, Any]] = [
        (1.5, np.float64), ([1.5, 2.0], np.float64), (1j, np.complex128),
        ([1j, 2.0], np.complex128), (3, np.int64), ([1, 2], np.int64), (True, np.bool_),
        ([True, False], np.bool_),
    ]
    for obj, expected in cases:
        x = xb.asarray(obj, backend=target.backend, device=target.device)
        target.check(x)
        assert _dtype(x) == np.dtype(expected), obj


def _dtype(x: Any) -> np.dtype[Any]:
    from xback._dispatch import kind_of

    b = kind_of(x)
    assert b is not None
    return b.dtype_of(x)


@pytest.mark.parametrize("name", ALL_DTYPES)
def test_dtype_round_trip_exact(target: Target, name: str) -> None:
    """Every bool/int/uint (8..64)/float16/32/64/complex/bfloat16 dtype goes to every backend
    and back with the same dtype and the same values (torch has uint16..64 since 2.3 but few
    operations on them; NumPy has no bfloat16 of its own: ml_dtypes provides it)."""
    dt = _np_dtype(name)
    if not load_backend(target.backend).can_hold(dt):
        pytest.skip(f"the {target.backend} backend does not hold {dt}")
    a = np.array([0, 1, 2, 3], dtype=np.int8).astype(dt)
    x = xb.from_numpy(a, backend=target.backend, device=target.device)
    target.check(x)
    assert _dtype(x) == dt
    if target.has_data:
        back = xb.to_numpy(x)
        assert back.dtype == dt
        np.testing.assert_array_equal(back.view(np.uint8), a.view(np.uint8))


def test_dtype_spellings(target: Target) -> None:
    """dtype=: NumPy rejects torch.float32 and torch rejects "float32"; xback accepts a NumPy
    dtype, a name (including "bfloat16") or a torch.dtype on every backend, and raises
    TypeError for anything else."""
    spellings: list[Any] = [np.float32, np.dtype("float32"), "float32", "f4"]
    if HAS_TORCH:
        spellings.append(torch.float32)
    for sp in spellings:
        x = xb.asarray([1, 2], dtype=sp, backend=target.backend, device=target.device)
        assert _dtype(x) == np.float32, sp
    if load_backend(target.backend).can_hold(np.dtype(ml_dtypes.bfloat16)):
        x = xb.asarray([1, 2], dtype="bfloat16", backend=target.backend, device=target.device)
        assert _dtype(x) == np.dtype(ml_dtypes.bfloat16)
    with pytest.raises(TypeError, match="dtype"):
        xb.asarray([1, 2], dtype="float33", backend=target.backend, device=target.device)


def test_dtype_big_python_ints(target: Target) -> None:
    """A Python int above int64's range: NumPy gives uint64 (its ulonglong type), torch raises
    an overflow error; xback follows NumPy on every backend and keeps the value."""
    x = xb.asarray([2**63], backend=target.backend, device=target.device)
    target.check(x)
    assert _dtype(x) == np.uint64
    if target.has_data:
        assert int(xb.to_numpy(x)[0]) == 2**63


# -- devices ------------------------------------------------------------------------------
def test_device_strings(target: Target) -> None:
    """NumPy's a.device is the string "cpu", torch's t.device a torch.device whose str may lack
    an index ("cuda"); xback.device returns one normalised string: "cpu", "cuda:0", "meta"."""
    x = target.make([1.0, 2.0])
    d = xb.device(x)
    assert isinstance(d, str) and d == target.device
    assert d in ("cpu", "meta") or d.startswith("cuda:")


@requires_torch
def test_device_accepts_torch_device(target: Target) -> None:
    """device= takes a string or a torch.device, on every backend that has the device."""
    if target.backend not in SHARING:
        pytest.skip("torch.device is for the numpy and torch backends")
    x = xb.asarray([1.0], backend=target.backend, device=torch.device(target.device))
    target.check(x)


def test_device_same_device_is_free(target: Target) -> None:
    """Moving to the device the data is on returns the array itself (no copy, no .to())."""
    x = target.make([1.0, 2.0])
    assert xb.to_device(x, target.device) is x
    assert xb.asarray(x, device=target.device) is x


def test_device_unavailable_raises_valueerror(target: Target) -> None:
    """CUDA absent: torch raises AssertionError ("Torch not compiled with CUDA enabled"); an
    unknown name: RuntimeError; NumPy off the CPU: ValueError. xback raises ValueError that
    says which device and why, on every backend, before any work."""
    bad = ["gpu", "cuda:99"] if HAS_CUDA else ["gpu", "cuda", "cuda:1"]
    if target.backend == "numpy":
        bad = [*bad, "meta"]
    x = target.make([1.0])
    for dev in bad:
        with pytest.raises(ValueError, match=repr(dev)[1:-1].split(":")[0]):
            xb.asarray([1.0], backend=target.backend, device=dev)
        with pytest.raises(ValueError):
            xb.to_device(x, dev)
        with pytest.raises(ValueError):
            xb.use(target.backend, device=dev)


@requires_torch
def test_device_mixed_devices_raise(target: Target) -> None:
    """Inputs on different devices: torch raises RuntimeError inside the operation; xback
    raises ValueError naming the devices, unless device= chooses one."""
    from xback._dispatch import prepare

    x = target.make([1.0])
    other = torch.ones(1, device="meta" if target.device != "meta" else "cpu")
    if target.backend != "torch":
        with pytest.raises(TypeError):  # two kinds: a TypeError comes first
            prepare(None, None, x, other)
        return
    with pytest.raises(ValueError, match="different devices"):
        prepare(None, None, x, other)
    # device= chooses: both inputs go there (to meta: data cannot come back from meta)
    _, dev, (a, b) = prepare(None, "meta", x, other)
    assert dev == "meta" and xb.device(a) == "meta" and xb.device(b) == "meta"


def test_device_travels_with_backend(target: Target) -> None:
    """A device chosen by use(...) applies to that use's backend only: an inner use("numpy")
    or backend="numpy" runs on the CPU; use(device=...) alone keeps the outer backend."""
    with xb.use(target.backend, device=target.device):
        target.check(xb.asarray([1.0]))
        with xb.use("numpy"):
            assert xb.device(xb.asarray([1.0])) == "cpu"
        assert xb.backend_of(xb.asarray([1.0], backend="numpy")) == "numpy"
        with xb.use(device="cpu"):
            assert xb.backend_of(xb.asarray([1.0])) == target.backend
            assert xb.device(xb.asarray([1.0])) == "cpu"
        target.check(xb.asarray([1.0]))


def test_device_context_thread_and_task_local(target: Target) -> None:
    """torch's `with torch.device(...)` is thread-local but leaks across interleaved asyncio
    tasks; xback.use is local to each thread and each asyncio task."""
    seen: dict[str, Any] = {}

    def worker() -> None:
        seen["thread"] = (xb.get_backend(), xb.get_device())

    async def inside() -> tuple[str, str | None]:
        with xb.use(target.backend, device=target.device):
            await asyncio.sleep(0.01)
            return xb.get_backend(), xb.get_device()

    async def outside() -> tuple[str, str | None]:
        await asyncio.sleep(0.005)  # runs while `inside` holds its choice
        return xb.get_backend(), xb.get_device()

    async def main() -> list[tuple[str, str | None]]:
        return list(await asyncio.gather(inside(), outside()))

    with xb.use(target.backend, device=target.device):
        th = threading.Thread(target=worker)
        th.start()
        th.join()
    assert seen["thread"] == ("numpy", None)
    assert asyncio.run(main()) == [(target.backend, target.device), ("numpy", None)]


# -- regression: non-finite input to svd ---------------------------------------------------
_SVD_INF = """
import numpy as np, xback as xb
a = np.random.default_rng(0).standard_normal((6, 3)); a[0, 0] = np.inf
try:
    xb.svd(a, backend={backend!r}, device={device!r})
except ValueError as e:
    print("ValueError", e)
"""


def test_svd_inf_raises_without_hanging(target: Target) -> None:
    """NumPy's np.linalg.svd of a 6x3 matrix holding one inf did not return within 20 s on
    this machine (LAPACK gesdd loops); torch returns all-NaN singular values. xback.svd raises
    ValueError on every backend, in a child process so that a regression fails, not hangs."""
    import subprocess
    import sys

    if not target.has_data:
        pytest.skip("meta tensors hold no values to check")
    code = _SVD_INF.format(backend=target.backend, device=target.device)
    proc = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("ValueError") and "non-finite" in proc.stdout, proc.stdout
