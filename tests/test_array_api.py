"""The generic Array API backend, checked on array-api-strict (dispatch, devices, conversion).

The operation tests (sort, svd, lstsq_grad) run on it through the shared ``target``
fixtures of ``conftest.py``.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings

import ml_dtypes
import numpy as np
import pytest

import xback

xps = pytest.importorskip("array_api_strict")
BF16 = np.dtype(ml_dtypes.bfloat16)


def test_kind_and_name() -> None:
    x = xps.asarray([1.0, 2.0])
    assert xback.backend_of(x) == "array_api_strict"
    assert xback.device(x) == "cpu"
    y = xps.asarray([1.0], device=xps.Device("device1"))
    assert xback.device(y) == "device1"


def test_dispatch_never_imports_an_unimported_library() -> None:
    code = (
        "import sys, numpy as np, xback\n"
        "xback.asarray(np.zeros(2)); xback.to_numpy([1.0])\n"
        "assert 'array_api_strict' not in sys.modules\n"
        "assert 'jax' not in sys.modules and 'cupy' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_use_array_api_strict() -> None:
    a = np.arange(3.0)
    with xback.use("array_api_strict"):
        x = xback.asarray(a)
        assert xback.backend_of(x) == "array_api_strict"
    with xback.use("array_api_strict", device="device2"):
        assert xback.device(xback.asarray([1.0, 2.0])) == "device2"
    with pytest.raises(ValueError, match=r"not a device of array_api_strict.*device1"):
        xback.use("array_api_strict", device="cuda")


def test_to_numpy_shares_memory() -> None:
    a = np.arange(4.0)
    x = xback.from_numpy(a, backend="array_api_strict")
    back = xback.to_numpy(x)
    assert np.shares_memory(back, a)
    c = xback.to_numpy(x, copy=True)
    assert not np.shares_memory(c, a)


def test_from_numpy_copy_true_is_fresh() -> None:
    a = np.arange(4.0)
    x = xback.from_numpy(a, backend="array_api_strict", copy=True)
    a[0] = 100.0
    assert xback.to_numpy(x)[0] == 0.0


def test_no_float64_device_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="no_float64"):
        xback.asarray(np.zeros(2), backend="array_api_strict", device="no_float64")
    x = xback.asarray(np.zeros(2, np.float32), backend="array_api_strict", device="no_float64")
    assert xback.device(x) == "no_float64"


def test_mixed_with_numpy_needs_a_choice() -> None:
    from xback._dispatch import prepare

    with pytest.raises(TypeError, match=r"array_api_strict.*numpy"):
        prepare(None, None, xps.asarray([1.0]), np.zeros(1))
    b, dev, (p, q) = prepare("numpy", None, xps.asarray([1.0]), np.zeros(1))
    assert type(p) is np.ndarray


def test_index_dtype_is_int64_where_the_device_has_it() -> None:
    b = xback._dispatch.load_backend("array_api_strict")
    x = xps.asarray([3, 1, 2], dtype=xps.int32, device=xps.Device("no_float64"))
    idx = b.argsort(x, 0, False, True)
    assert idx.dtype == xps.int64
    assert xback.to_numpy(idx).tolist() == [1, 2, 0]
    assert b.argsort(x, 0, True, True).dtype == xps.int64


def test_sort_never_compares_dtypes_across_libraries() -> None:
    # array-api-strict's dtypes hash like NumPy's: a cache keyed by dtype value would compare
    # them (slow, and array-api-strict warns on every such comparison)
    xback.sort(np.array([2.0, 1.0]))
    xback.argsort(np.array([2, 1]))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        for v in (xps.asarray([2.0, 1.0]), xps.asarray([2, 1])):
            assert xback.to_numpy(xback.sort(v)).tolist() == [1, 2]
            assert xback.to_numpy(xback.argsort(v, axis=0, descending=True)).tolist() == [0, 1]


_JAX_32_BIT = """
import numpy as np, jax, jax.numpy as jnp, xback
assert not jax.config.jax_enable_x64  # JAX's default: 32-bit types only
x = jnp.asarray([3, 1, 3, 1], dtype=jnp.int32)
i = xback.argsort(x, descending=True)  # no int64 here: JAX's default index dtype
assert i.dtype == jnp.int32 and np.asarray(i).tolist() == [0, 2, 1, 3], i
f = jnp.asarray([2.0, float("nan"), 1.0, 2.0])
assert np.asarray(xback.argsort(f, descending=True)).tolist() == [0, 3, 2, 1]
assert xback.sort(f).dtype == jnp.float32
try:
    xback.from_numpy(np.zeros(2), backend="jax")
except TypeError as exc:
    assert "float64" in str(exc) and "astype('float32')" in str(exc), exc
else:
    raise AssertionError("float64 was silently narrowed")
for call in (
    lambda: xback.sort(np.array([2.0, 1.0]), backend="jax"),  # NumPy input brought to JAX
    lambda: xback.use("jax")(xback.sort)([2.0, 1.0]),  # Python floats are float64
):
    try:
        call()
    except TypeError as exc:
        assert "float64" in str(exc), exc
    else:
        raise AssertionError("float64 was silently narrowed")
"""


@pytest.mark.jax
def test_jax_without_x64_keeps_32_bit() -> None:
    pytest.importorskip("jax")
    env = {k: v for k, v in os.environ.items() if k != "JAX_ENABLE_X64"}
    subprocess.run([sys.executable, "-c", _JAX_32_BIT], check=True, env=env)


@pytest.mark.jax
def test_jax_host_views_are_read_only() -> None:
    jnp = pytest.importorskip("jax.numpy")
    x = jnp.asarray([3.0, 1.0, 2.0])
    a = xback.to_numpy(x)  # shares JAX's buffer, which must stay immutable
    assert not a.flags.writeable
    c = xback.to_numpy(x, copy=True)
    assert c.flags.writeable and not np.shares_memory(a, c)
    b16 = xback.asarray(np.array([2.0, 1.0], dtype=BF16), backend="jax")
    assert xback.to_numpy(xback.sort(b16)).tolist() == [1.0, 2.0]  # no DLPack: host copy
    with pytest.raises(ValueError, match=r"copy=False.*bfloat16"):
        xback.to_numpy(b16, copy=False)
