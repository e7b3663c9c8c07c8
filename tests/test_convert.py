"""Conversion: zero-copy verified by mutation, Array API ``copy=`` rules, dtypes, devices."""

from __future__ import annotations

import warnings

import ml_dtypes
import numpy as np
import pytest

import xback

from .conftest import Target

torch = pytest.importorskip("torch")

ROUNDTRIP_DTYPES = [
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64", "complex64", "complex128",
]  # fmt: skip


def _sample(dtype: str, n: int = 7) -> np.ndarray:
    rng = np.random.default_rng(0)
    dt = np.dtype(dtype)
    if dt.kind == "b":
        return rng.integers(0, 2, n).astype(bool)
    if dt.kind in "iu":
        info = np.iinfo(dt)
        return np.array([info.min, info.max, 0, 1, info.max - 1, info.min + 1, 3], dtype=dt)[:n]
    if dt.kind == "c":
        return (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(dt)
    v = rng.standard_normal(n).astype(dt)
    v[:3] = [np.inf, -0.0, np.nan]
    return v


# -- to_numpy ---------------------------------------------------------------------------------
def test_to_numpy_numpy_is_identity() -> None:
    a = np.arange(3.0)
    assert xback.to_numpy(a) is a
    assert xback.to_numpy(a, copy=False) is a
    c = xback.to_numpy(a, copy=True)
    assert c is not a and not np.shares_memory(a, c)


def test_to_numpy_cpu_tensor_shares_memory() -> None:
    t = torch.arange(4.0)
    a = xback.to_numpy(t)
    a[0] = 42.0
    assert t[0].item() == 42.0
    t[1] = -1.0
    assert a[1] == -1.0
    a2 = xback.to_numpy(t, copy=False)
    assert np.shares_memory(a, a2)
    c = xback.to_numpy(t, copy=True)
    c[2] = 99.0
    assert t[2].item() == 2.0


def test_to_numpy_requires_grad_shares_and_leaves_caller_untouched() -> None:
    t = torch.arange(3.0, requires_grad=True)
    a = xback.to_numpy(t, copy=False)
    assert t.requires_grad and t.grad is None
    with torch.no_grad():
        t[0] = 7.0
    assert a[0] == 7.0


@pytest.mark.parametrize("which", ["conj", "neg"])
def test_to_numpy_resolves_conj_and_neg_bits(which: str) -> None:
    z = torch.tensor([1 + 2j, 3 - 4j])
    v = z.conj() if which == "conj" else z.conj().imag
    assert (v.is_conj() if which == "conj" else v.is_neg())
    expected = np.conj(z.numpy()) if which == "conj" else -z.numpy().imag
    a = xback.to_numpy(v)
    assert np.array_equal(a, expected)  # the sign is not silently dropped
    assert not np.shares_memory(a, z.numpy())
    with pytest.raises(ValueError, match=r"copy=False.*(conjugate|negative)"):
        xback.to_numpy(v, copy=False)


def test_to_numpy_bfloat16_and_float8_share_memory() -> None:
    t = torch.tensor([1.0, 2.5, -3.0], dtype=torch.bfloat16)
    a = xback.to_numpy(t)
    assert a.dtype == ml_dtypes.bfloat16
    assert np.array_equal(a.astype(np.float32), [1.0, 2.5, -3.0])
    a[0] = 8.0
    assert t[0].item() == 8.0
    f8 = torch.tensor([0.5, -2.0]).to(torch.float8_e4m3fn)
    b = xback.to_numpy(f8)
    assert b.dtype == ml_dtypes.float8_e4m3fn
    assert np.array_equal(b.astype(np.float32), [0.5, -2.0])


def test_to_numpy_meta_and_sparse_errors() -> None:
    with pytest.raises(ValueError, match="meta tensors have no data"):
        xback.to_numpy(torch.zeros(2, device="meta"))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        s = torch.eye(3).to_sparse()
    with pytest.raises(TypeError, match=r"to_dense\(\)"):
        xback.to_numpy(s)


def test_to_numpy_neutral() -> None:
    assert np.array_equal(xback.to_numpy([1, 2]), np.array([1, 2]))
    assert xback.to_numpy(2.5).dtype == np.float64
    with pytest.raises(ValueError, match="copy=False"):
        xback.to_numpy([1, 2], copy=False)
    with pytest.raises(TypeError, match="copy must be"):
        xback.to_numpy([1, 2], copy="yes")  # type: ignore[arg-type]


def test_to_numpy_scalar_and_0d() -> None:
    t = torch.tensor(3.5)
    a = xback.to_numpy(t)
    assert a.shape == () and a.dtype == np.float32
    a[()] = 1.0
    assert t.item() == 1.0


# -- from_numpy -------------------------------------------------------------------------------
def test_from_numpy_outside_context_is_identity() -> None:
    a = np.arange(3.0)
    assert xback.from_numpy(a) is a
    c = xback.from_numpy(a, copy=True)
    assert not np.shares_memory(a, c)


@pytest.mark.parametrize("dtype", ROUNDTRIP_DTYPES)
def test_from_numpy_torch_roundtrip_exact_and_shared(dtype: str) -> None:
    a = _sample(dtype)
    t = xback.from_numpy(a, backend="torch")
    assert isinstance(t, torch.Tensor)
    back = xback.to_numpy(t)
    assert back.dtype == a.dtype
    assert np.array_equal(back, a, equal_nan=a.dtype.kind in "fc")
    assert np.shares_memory(back, a)  # zero-copy both ways


def test_from_numpy_mutation_visible_both_ways() -> None:
    a = np.zeros((3, 4))
    t = xback.from_numpy(a, backend="torch")
    t[1, 2] = 5.0
    assert a[1, 2] == 5.0
    a[0, 0] = -1.0
    assert t[0, 0].item() == -1.0


def test_from_numpy_views_share() -> None:
    a = np.arange(24.0).reshape(4, 6)
    for view in (a[:, ::2], a.T, a[1:3]):
        t = xback.from_numpy(view, backend="torch")
        assert np.array_equal(t.numpy(), view)
        t[0, 0] = 1000.0
        assert view[0, 0] == 1000.0


def test_from_numpy_0d_and_scalars() -> None:
    z = np.array(2.0)
    t = xback.from_numpy(z, backend="torch")
    assert t.shape == () and t.dtype == torch.float64
    t.fill_(3.0)
    assert z[()] == 3.0
    s = xback.from_numpy(np.float32(1.5), backend="torch")
    assert s.shape == () and s.dtype == torch.float32 and s.item() == 1.5
    assert xback.from_numpy(np.int8(3)).shape == ()


def test_from_numpy_bfloat16_shares() -> None:
    a = np.array([1.0, -2.0, 0.5], dtype=ml_dtypes.bfloat16)
    t = xback.from_numpy(a, backend="torch")
    assert t.dtype == torch.bfloat16
    t[0] = 4.0
    assert float(a[0]) == 4.0


@pytest.mark.parametrize("make", ["negative_stride", "big_endian"])
def test_from_numpy_copies_what_torch_cannot_share(make: str) -> None:
    base = np.arange(6.0)
    a = base[::-1] if make == "negative_stride" else base.astype(">f8")
    t = xback.from_numpy(a, backend="torch")
    assert np.array_equal(t.numpy(), a)
    assert not np.shares_memory(t.numpy(), base)
    with pytest.raises(ValueError, match="copy=False"):
        xback.from_numpy(a, backend="torch", copy=False)


def test_from_numpy_readonly_is_copied_without_warning() -> None:
    a = np.arange(4.0)
    a.flags.writeable = False
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        t = xback.from_numpy(a, backend="torch")
        t[0] = 9.0  # safe: the tensor owns its memory
        assert a[0] == 0.0
        shared = xback.from_numpy(a, backend="torch", copy=False)  # explicit: shared
    assert np.shares_memory(shared.numpy(), a)


@pytest.mark.parametrize(
    ("dtype", "hint"),
    [
        ("O", "astype"),
        ("U3", "numeric"),
        ("S3", "numeric"),
        ("datetime64[s]", "int64"),
        ("timedelta64[s]", "int64"),
        ("V8", "field"),
    ],
)
def test_from_numpy_unholdable_dtypes(dtype: str, hint: str) -> None:
    a = np.zeros(2, dtype=dtype)
    with pytest.raises(TypeError, match=rf"cannot hold NumPy dtype .*{hint}"):
        xback.from_numpy(a, backend="torch")


@pytest.mark.skipif(
    np.finfo(np.longdouble).nmant <= np.finfo(np.float64).nmant,
    reason="longdouble is float64 here",
)
def test_from_numpy_longdouble() -> None:
    with pytest.raises(TypeError, match="float64"):
        xback.from_numpy(np.zeros(2, np.longdouble), backend="torch")


def test_from_numpy_rejects_non_numpy() -> None:
    with pytest.raises(TypeError, match="asarray"):
        xback.from_numpy([1, 2])  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="asarray"):
        xback.from_numpy(torch.zeros(2))  # type: ignore[arg-type]


def test_from_numpy_device_placement(target: Target) -> None:
    a = np.arange(3.0)
    x = xback.from_numpy(a, backend=target.backend, device=target.device)
    target.check(x)
    if target.device not in ("cpu",):
        with pytest.raises(ValueError, match="copy=False"):
            xback.from_numpy(a, backend=target.backend, device=target.device, copy=False)


def test_from_numpy_follows_context() -> None:
    a = np.arange(3.0)
    with xback.use("torch", device="meta"):
        t = xback.from_numpy(a)
        assert t.device.type == "meta"
    with xback.use("torch"):
        t = xback.from_numpy(a)
        assert isinstance(t, torch.Tensor) and np.shares_memory(t.numpy(), a)


# -- asarray ----------------------------------------------------------------------------------
def test_asarray_every_target(target: Target) -> None:
    for obj in ([1.0, 2.0], np.arange(2.0), torch.arange(2.0, dtype=torch.float64), 3.0):
        x = xback.asarray(obj, backend=target.backend, device=target.device)
        target.check(x)
        assert xback.to_numpy(x).dtype == np.float64 if target.has_data else True


def test_asarray_python_numbers_follow_numpy_inference() -> None:
    t = xback.asarray([1.0, 2.0], backend="torch")
    assert t.dtype == torch.float64
    assert xback.asarray([1, 2], backend="torch").dtype == torch.int64
    assert xback.asarray(True, backend="torch").dtype == torch.bool
    assert xback.asarray(1j, backend="torch").dtype == torch.complex128


def test_asarray_dtype_forms() -> None:
    for dt in ("float32", np.float32, np.dtype("float32"), torch.float32):
        assert xback.asarray([1, 2], dtype=dt).dtype == np.float32
        assert xback.asarray([1, 2], dtype=dt, backend="torch").dtype == torch.float32
    assert xback.asarray([1.5], dtype="bfloat16", backend="torch").dtype == torch.bfloat16
    assert xback.asarray([1.5], dtype=torch.bfloat16).dtype == ml_dtypes.bfloat16
    with pytest.raises(TypeError, match="dtype 'nonsense' is not understood"):
        xback.asarray([1], dtype="nonsense")


def test_asarray_copy_rules() -> None:
    a = np.arange(3.0)
    assert xback.asarray(a) is a
    assert xback.asarray(a, copy=False) is a
    assert not np.shares_memory(xback.asarray(a, copy=True), a)
    t = torch.arange(3.0)
    assert xback.asarray(t) is t
    c = xback.asarray(t, copy=True)
    c[0] = 5
    assert t[0].item() == 0
    with pytest.raises(ValueError, match="copy=False"):
        xback.asarray([1, 2], copy=False)
    with pytest.raises(ValueError, match="copy=False but casting"):
        xback.asarray(a, dtype="float32", copy=False)
    with pytest.raises(ValueError, match="copy=False but moving"):
        xback.asarray(t, device="meta", copy=False)
    shared = xback.asarray(a, backend="torch")
    shared[0] = 11.0
    assert a[0] == 11.0
    back = xback.asarray(t, backend="numpy")
    assert np.shares_memory(back, t.numpy())


def test_asarray_cross_backend_cast() -> None:
    t = torch.arange(3)
    a = xback.asarray(t, backend="numpy", dtype="float32")
    assert a.dtype == np.float32 and np.array_equal(a, [0, 1, 2])
    assert t.dtype == torch.int64


def test_asarray_never_mutates_or_aliases_unexpectedly() -> None:
    a = np.arange(3.0)
    before = a.copy()
    x = xback.asarray(a, dtype="float32", backend="torch")
    x[0] = 100
    assert np.array_equal(a, before)


def test_to_device_meta() -> None:
    t = torch.arange(3.0)
    m = xback.to_device(t, "meta")
    assert xback.device(m) == "meta" and m.shape == t.shape
    with pytest.raises(TypeError, match="to_device takes an array"):
        xback.to_device([1, 2], "cpu")


def test_zero_copy_large() -> None:
    a = np.ones(10**6, dtype=np.float32)
    t = xback.from_numpy(a, backend="torch")
    back = xback.to_numpy(t)
    assert back.ctypes.data == a.ctypes.data
