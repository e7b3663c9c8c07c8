"""Odd inputs over every public function: the correct answer (against a NumPy reference) or a
clear ``TypeError``/``ValueError`` naming the argument, never another exception type, never
a mutated input, and results of the documented kind (plain ndarrays for NumPy input, native
byte order for linear algebra).

The sweep (:func:`test_sweep`) runs each odd input through each public function; the tests
after it pin the individual defects of issue 18 (items 9, 12-15, 17).
"""

from __future__ import annotations

import re
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import xback as xb
from tests.conftest import HAS_TORCH, requires_dask, requires_strict, requires_torch

if HAS_TORCH:
    import torch

M, N = 4, 3
#: distinct values (no ties: argsort has one answer), well conditioned
BASE = np.array([[4.0, -1.5, 0.25], [2.5, 3.0, -2.0], [-0.75, 1.0, 5.5], [1.25, -3.5, 0.5]])
X = np.array([0.5, -1.0, 2.0])
Y = np.array([1.0, 0.0, -1.0, 2.0])


@dataclass
class Odd:
    """An odd input: ``make(tmp_path)`` returns the object; ``plain`` is the NumPy array it
    stands for (None: it must be rejected); ``reject`` is the pattern the TypeError or
    ValueError of a rejection must match; ``limit`` marks inputs that may be rejected with a
    ValueError naming a dimension limit (and must otherwise be right)."""

    name: str
    make: Callable[[Path], Any]
    plain: np.ndarray | None
    reject: str = ""
    limit: bool = False
    torch_only: bool = False


def _memmap(tmp: Path) -> Any:
    mm = np.memmap(tmp / "a.dat", dtype=np.float64, mode="w+", shape=BASE.shape)
    mm[:] = BASE
    return mm


def _unaligned(tmp: Path) -> Any:
    buf = bytearray(BASE.nbytes + 1)
    a = np.frombuffer(buf, dtype=np.float64, offset=1, count=BASE.size).reshape(BASE.shape)
    a[:] = BASE
    assert not a.flags.aligned
    return a


def _readonly(tmp: Path) -> Any:
    a = BASE.copy()
    a.setflags(write=False)
    return a


def _strided(tmp: Path) -> Any:
    big = np.zeros((M, 2 * N))
    big[:, ::2] = BASE
    return big[:, ::2]


def _negative(tmp: Path) -> Any:
    return BASE[::-1, ::-1].copy()[::-1, ::-1]


HIGH = (1,) * 62 + BASE.shape  # 64 dimensions, NumPy's maximum

ODD: list[Odd] = [
    Odd("matrix", lambda t: np.matrix(BASE), BASE),
    Odd("memmap", _memmap, BASE),
    Odd("big-endian", lambda t: BASE.astype(">f8"), BASE),
    Odd("unaligned", _unaligned, BASE),
    Odd("read-only", _readonly, BASE),
    Odd("non-contiguous", _strided, BASE),
    Odd("negative-strides", _negative, BASE),
    Odd("zero-size", lambda t: np.empty((0, N)), np.empty((0, N))),
    Odd("64-d", lambda t: BASE.reshape(HIGH), BASE.reshape(HIGH), limit=True),
    Odd(
        "masked",
        lambda t: np.ma.masked_array(BASE, mask=BASE < 0),
        None,
        reject=r"np\.ma.*(filled|compressed)",
    ),
    Odd(
        "sparse-coo",
        lambda t: torch.from_numpy(BASE).to_sparse(),
        BASE,
        reject=r"sparse_coo.*to_dense\(\)",
        torch_only=True,
    ),
    Odd(
        "sparse-csr",
        lambda t: torch.from_numpy(BASE).to_sparse_csr(),
        BASE,
        reject=r"sparse_csr.*to_dense\(\)",
        torch_only=True,
    ),
    Odd(
        "nested",
        lambda t: torch.nested.nested_tensor([torch.ones(2, N), torch.ones(3, N)]),
        None,
        reject=r"nested.*(to_padded_tensor|unbind)",
        torch_only=True,
    ),
    Odd(
        "nested-jagged",
        lambda t: torch.nested.nested_tensor(
            [torch.ones(2, N), torch.ones(3, N)], layout=torch.jagged
        ),
        None,
        reject=r"nested.*(to_padded_tensor|unbind)",
        torch_only=True,
    ),
    Odd(
        "quantized",
        lambda t: torch.quantize_per_tensor(torch.from_numpy(BASE).float(), 0.25, 0, torch.qint8),
        None,
        reject=r"quantized.*dequantize\(\)",
        torch_only=True,
    ),
]


def _np(r: Any) -> np.ndarray:
    return np.asarray(r) if isinstance(r, np.ndarray) else xb.to_numpy(r, copy=True)


def _ref_sort(p: np.ndarray, axis: int, descending: bool = False, arg: bool = False) -> Any:
    """NumPy's sort along ``axis`` on a 2-D view (NumPy's own sorts stop at 32 dimensions)."""
    q = np.moveaxis(p, axis, -1)
    flat = q.reshape(int(np.prod(q.shape[:-1])), q.shape[-1])
    key = -flat if descending else flat
    r = np.argsort(key, axis=-1, kind="stable") if arg else np.sort(key, axis=-1)
    if descending and not arg:
        r = -r
    return np.moveaxis(r.reshape(q.shape), -1, axis)


def _svd_check(p: np.ndarray, r: Any) -> None:
    U, S, Vh = (_np(v) for v in r)
    np.testing.assert_allclose(S, np.linalg.svd(p, compute_uv=False), atol=1e-10)
    k = S.shape[-1]
    rec = (U[..., :k] * S[..., None, :]) @ Vh[..., :k, :]
    np.testing.assert_allclose(rec, p, atol=1e-10)


def _grad(A: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    r = A @ x - y  # (..., m) for a stack A and vectors x, y
    return 2 * (np.swapaxes(A, -1, -2) @ r[..., None])[..., 0]


#: (name, call on the odd object, check of the result against the plain array); a check
#: of None compares to_numpy(result) with the given reference function
FUNCS: list[tuple[str, Callable[[Any], Any], Callable[[np.ndarray, Any], None]]] = [
    ("sort", xb.sort, lambda p, r: np.testing.assert_array_equal(_np(r), _ref_sort(p, -1))),
    (
        "sort-axis0-desc",
        lambda o: xb.sort(o, axis=0, descending=True),
        lambda p, r: np.testing.assert_array_equal(_np(r), _ref_sort(p, 0, descending=True)),
    ),
    (
        "sort-flat",
        lambda o: xb.sort(o, axis=None),
        lambda p, r: np.testing.assert_array_equal(_np(r), np.sort(p, axis=None)),
    ),
    (
        "argsort-flat",
        lambda o: xb.argsort(o, axis=None),
        lambda p, r: np.testing.assert_array_equal(
            _np(r), np.argsort(p, axis=None, kind="stable")
        ),
    ),
    (
        "argsort-desc",
        lambda o: xb.argsort(o, descending=True),
        lambda p, r: np.testing.assert_array_equal(
            _np(r), _ref_sort(p, -1, descending=True, arg=True)
        ),
    ),
    ("svd", lambda o: xb.svd(o, canonical_signs=True), _svd_check),
    (
        "svd-thin",
        lambda o: xb.svd(o, full_matrices=False),
        _svd_check,
    ),
    (
        "svdvals",
        xb.svdvals,
        lambda p, r: np.testing.assert_allclose(
            _np(r), np.linalg.svd(p, compute_uv=False), atol=1e-10
        ),
    ),
    (
        "lstsq_grad",
        lambda o: xb.lstsq_grad(o, _like(o, X), _like(o, Y[: _rows(o)])),
        lambda p, r: np.testing.assert_allclose(
            _np(r), _grad(p, X, Y[: p.shape[-2]]), rtol=1e-12, atol=1e-12
        ),
    ),
    (
        "lstsq_grad_fn",
        lambda o: xb.lstsq_grad_fn(o, _like(o, Y[: _rows(o)]))(_like(o, X)),
        lambda p, r: np.testing.assert_allclose(
            _np(r), _grad(p, X, Y[: p.shape[-2]]), rtol=1e-10, atol=1e-10
        ),
    ),
    ("asarray", xb.asarray, lambda p, r: np.testing.assert_array_equal(_np(r), p)),
    (
        "asarray-copy",
        lambda o: xb.asarray(o, copy=True),
        lambda p, r: np.testing.assert_array_equal(_np(r), p),
    ),
    ("to_numpy", xb.to_numpy, lambda p, r: np.testing.assert_array_equal(r, p)),
    ("from_numpy", xb.from_numpy, lambda p, r: np.testing.assert_array_equal(_np(r), p)),
    (
        "to_device",
        lambda o: xb.to_device(o, "cpu"),
        lambda p, r: np.testing.assert_array_equal(_np(r), p),
    ),
    ("backend_of", xb.backend_of, lambda p, r: None),
    ("device", xb.device, lambda p, r: None),
]


#: functions that hand a tensor of its own backend back without computing on it (a sparse,
#: nested or quantized tensor comes back as it is)
_PASSTHROUGH = ("asarray", "asarray-copy", "to_device", "backend_of", "device")


def _rows(o: Any) -> int:
    try:
        return int(o.shape[-2])
    except Exception:  # nested tensors have no (integer) shape
        return M


def _like(o: Any, v: np.ndarray) -> Any:
    """``v`` as an array of the odd object's own kind (a torch tensor for torch objects)."""
    if HAS_TORCH and isinstance(o, torch.Tensor):
        return torch.from_numpy(v.copy()).to(torch.float64)
    return v.copy()


def _snapshot(o: Any) -> Any:
    if HAS_TORCH and isinstance(o, torch.Tensor):
        return o.clone()
    if isinstance(o, np.ma.MaskedArray):
        return np.ma.copy(o)
    return np.array(o, copy=True)


def _unchanged(o: Any, before: Any) -> bool:
    if HAS_TORCH and isinstance(o, torch.Tensor):
        if o.is_nested:
            return all(torch.equal(a, b) for a, b in zip(o.unbind(), before.unbind()))
        if o.is_quantized:
            return bool(torch.equal(o.int_repr(), before.int_repr()))
        if o.layout is not torch.strided:
            return bool(torch.equal(o.to_dense(), before.to_dense()))
        return bool(torch.equal(o, before))
    if isinstance(o, np.ma.MaskedArray):
        return bool(np.array_equal(o.data, before.data) and np.array_equal(o.mask, before.mask))
    return bool(np.array_equal(np.asarray(o), before))


def _check_result_kind(odd: Odd, fname: str, r: Any) -> None:
    """Plain ndarrays for NumPy-kind input (np.matrix and np.memmap included), native byte
    order for the linear algebra."""
    for part in r if isinstance(r, tuple) else (r,):
        if isinstance(part, np.ndarray):
            assert type(part) is np.ndarray, (odd.name, fname, type(part))
            if fname.startswith(("svd", "lstsq")):
                assert part.dtype.isnative, (odd.name, fname, part.dtype)


@pytest.mark.parametrize(
    "backend",
    [
        None,
        pytest.param("torch", marks=requires_torch),
        pytest.param("array_api_strict", marks=requires_strict),
        pytest.param("dask", marks=requires_dask),
    ],
)
@pytest.mark.parametrize("odd", ODD, ids=[o.name for o in ODD])
def test_sweep(odd: Odd, backend: str | None, tmp_path: Path) -> None:
    """Every public function on one odd input: right, or a clear TypeError/ValueError."""
    if odd.torch_only and not HAS_TORCH:
        pytest.skip("torch is not installed")
    if odd.torch_only and backend is not None:
        pytest.skip("torch objects are swept on their own backend")
    failures = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's nested/sparse "prototype" warnings
        obj = odd.make(tmp_path)
    for fname, call, check in FUNCS:
        o = obj
        before = _snapshot(obj)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                if backend is None:
                    r = call(o)
                else:
                    with xb.use(backend):
                        r = call(o)
        except (TypeError, ValueError) as exc:
            msg = str(exc)
            if fname == "from_numpy" and HAS_TORCH and isinstance(obj, torch.Tensor):
                if "from_numpy takes a NumPy array" not in msg:
                    failures.append(f"{fname}: unclear rejection of a tensor: {msg!r}")
            elif odd.reject:
                if not re.search(odd.reject, msg, re.S):
                    failures.append(f"{fname}: rejection without the fix: {msg!r}")
            elif odd.limit and "dimensions" in msg and re.search(r"\b(32|64)\b", msg):
                pass  # the documented dimension limit, named
            else:
                failures.append(f"{fname}: unexpected {type(exc).__name__}: {msg}")
        except Exception as exc:  # any other type is a defect
            failures.append(f"{fname}: raw {type(exc).__name__}: {exc}")
        else:
            if odd.plain is None and fname not in _PASSTHROUGH:
                failures.append(f"{fname}: accepted an input it must reject")
            elif odd.plain is not None and not (odd.reject and fname in _PASSTHROUGH):
                try:
                    check(odd.plain, r)
                    if backend is None:
                        _check_result_kind(odd, fname, r)
                except AssertionError as exc:
                    failures.append(f"{fname}: wrong answer: {exc}")
        if not _unchanged(obj, before):
            failures.append(f"{fname}: mutated its input")
    assert not failures, f"{odd.name} (backend={backend}):\n" + "\n".join(failures)


# -- the defects, one by one -----------------------------------------------------------------
@pytest.mark.filterwarnings("ignore:the matrix subclass:PendingDeprecationWarning")
def test_matrix_is_a_plain_array() -> None:
    """Item 9: np.matrix flattens to 1-D like an ndarray (it used to come back unsorted),
    and every result is a plain ndarray."""
    m = np.matrix([[3.0, 1.0], [2.0, 0.0]])
    s = xb.sort(m, axis=None)
    assert type(s) is np.ndarray and s.tolist() == [0.0, 1.0, 2.0, 3.0]
    assert xb.argsort(m, axis=None).tolist() == [3, 1, 2, 0]
    g = xb.lstsq_grad(m, np.ones(2), np.ones(2))
    assert type(g) is np.ndarray and g.shape == (2,)
    gf = xb.lstsq_grad_fn(m, np.ones(2))(np.ones(2))
    assert gf.shape == (2,)
    np.testing.assert_allclose(gf, g)
    U, S, Vh = xb.svd(m, canonical_signs=True)
    assert type(U) is np.ndarray
    assert xb.backend_of(m) == "numpy" and xb.device(m) == "cpu"
    a = xb.asarray(m)
    assert type(a) is np.ndarray and np.shares_memory(a, m)  # a view, no copy
    assert type(xb.to_numpy(m)) is np.ndarray


def test_memmap_results_are_plain(tmp_path: Path) -> None:
    """Item 9: sort of a memmap returns an ndarray in both directions (it returned a memmap
    ascending and an ndarray descending)."""
    mm = np.memmap(tmp_path / "m.dat", dtype=np.float64, mode="w+", shape=(4,))
    mm[:] = [3.0, 1.0, 2.0, 0.0]
    for desc in (False, True):
        r = xb.sort(mm, descending=desc)
        assert type(r) is np.ndarray
        assert r.tolist() == sorted(r.tolist(), reverse=desc)
    assert type(xb.to_device(mm, "cpu")) is np.ndarray
    assert mm.tolist() == [3.0, 1.0, 2.0, 0.0]


def test_masked_arrays_rejected_naming_the_fix() -> None:
    ma = np.ma.masked_array([1.0, 2.0], mask=[0, 1])
    for fn in (xb.sort, xb.svdvals, xb.asarray, xb.to_numpy, xb.from_numpy, xb.backend_of):
        with pytest.raises(TypeError, match=r"np\.ma\.MaskedArray.*filled"):
            fn(ma)


def test_big_endian_linalg() -> None:
    """Item 12: non-native byte order is computed like the native dtype; results native."""
    a = np.array([[3.0, 1.0], [2.0, 0.5], [1.0, 1.0]])
    be = a.astype(">f8")
    np.testing.assert_allclose(xb.svdvals(be), np.linalg.svd(a, compute_uv=False))
    U, S, Vh = xb.svd(be, canonical_signs=True)
    assert U.dtype == np.float64 and U.dtype.isnative and S.dtype.isnative
    np.testing.assert_allclose(U, xb.svd(a, canonical_signs=True).U)
    x, y = np.array([1.0, -1.0], ">f8"), np.array([1.0, 2.0, 3.0], ">f4")
    g = xb.lstsq_grad(be, x, y)
    assert g.dtype == np.float64 and g.dtype.isnative
    np.testing.assert_allclose(g, 2 * a.T @ (a @ [1.0, -1.0] - [1.0, 2.0, 3.0]))
    gf = xb.lstsq_grad_fn(be, y)(x)
    assert gf.dtype.isnative
    np.testing.assert_allclose(gf, g)
    assert xb.svdvals(a.astype(">f4")).dtype == np.float32
    assert xb.svdvals(a.astype(">i8")).dtype == np.float64
    assert be.dtype == np.dtype(">f8")  # untouched
    with pytest.raises(TypeError, match="does not support x of dtype >M8"):
        xb.svdvals(np.zeros((2, 2), ">M8[s]"))


@requires_torch
def test_sparse_and_nested_tensors_name_the_fix() -> None:
    """Item 13: a TypeError naming the layout and the fix, never torch's raw errors."""
    dense = torch.tensor([[1.0, 0.0], [0.0, 2.0]])
    for sp, layout in (
        (dense.to_sparse(), "sparse_coo"),
        (dense.to_sparse_csr(), "sparse_csr"),
        (dense.to_sparse_csc(), "sparse_csc"),
        (dense.to_sparse_bsr((1, 1)), "sparse_bsr"),
    ):
        for fn in (xb.sort, xb.argsort, xb.svd, xb.svdvals, xb.to_numpy):
            with pytest.raises(TypeError, match=rf"x is a torch\.{layout} tensor.*x\.to_dense"):
                fn(sp)
        with pytest.raises(TypeError, match=r"A is a torch\.sparse.*A\.to_dense"):
            xb.lstsq_grad_fn(sp, torch.ones(2))
    # where torch can compute on a sparse A, the answer is right
    np.testing.assert_allclose(
        xb.lstsq_grad(dense.to_sparse(), torch.ones(2), torch.ones(2)).numpy(), [0.0, 4.0]
    )
    with pytest.raises(TypeError, match=r"A is a torch\.sparse_bsr"):
        xb.lstsq_grad(dense.to_sparse_bsr((1, 1)), torch.ones(2), torch.ones(2))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        nested = torch.nested.nested_tensor([torch.ones(2, 2), torch.ones(3, 2)])
    for fn in (
        xb.sort,
        xb.svd,
        xb.to_numpy,
        lambda t: xb.asarray(t, backend="numpy"),
        lambda t: xb.to_device(t, "meta"),
        lambda t: xb.sort(t, device="meta"),
    ):
        with pytest.raises(TypeError, match=r"nested tensor.*to_padded_tensor"):
            fn(nested)
    q = torch.quantize_per_tensor(torch.rand(3, 3), 0.1, 10, torch.quint8)
    for fn in (xb.sort, xb.svdvals, xb.to_numpy, lambda t: xb.asarray(t, device="meta")):
        with pytest.raises(TypeError, match=r"quantized tensor.*dequantize\(\)"):
            fn(q)


@requires_torch
@pytest.mark.filterwarnings("ignore:'mkldnn' is no longer used:UserWarning")
@pytest.mark.parametrize(
    "dev",
    ["xpu", "hpu", "mtia", "mkldnn", "lazy", "xla", "ipu", "vulkan", "privateuseone", "xpu:1"],
)
def test_unusable_torch_devices_rejected_at_the_call_naming_them(dev: str) -> None:
    """Item 14: devices torch knows but this build cannot use: the documented ValueError,
    at use(...), per-call device= and to_device."""
    kind = dev.split(":")[0]
    if getattr(getattr(torch, kind, None), "is_available", lambda: False)():
        pytest.skip(f"{kind} is available here")
    with pytest.raises(ValueError, match=rf"device '{dev}'.*cannot use it"):
        xb.use("torch", device=dev)
    with pytest.raises(ValueError, match=rf"device '{dev}'"):
        xb.sort(torch.ones(3), device=dev)
    with pytest.raises(ValueError, match=rf"device '{dev}'"):
        xb.to_device(torch.ones(3), torch.device(dev))


@requires_torch
def test_usable_devices_keep_their_meaning() -> None:
    assert xb.device(xb.asarray([1.0], backend="torch", device="meta")) == "meta"
    with xb.use("torch", device="cpu"):
        assert xb.get_device() == "cpu"
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="CUDA is not available"):
            xb.use("torch", device="cuda")


def test_dimension_limits_are_named() -> None:
    """Item 15: NumPy arrays have at most 64 dimensions, and several NumPy functions at most
    32: past them, a ValueError naming the limit; the last axis sorts at any count."""
    a = np.arange(6.0)[::-1].reshape((1,) * 62 + (2, 3))
    np.testing.assert_array_equal(xb.sort(a).reshape(2, 3), [[3, 4, 5], [0, 1, 2]])
    np.testing.assert_array_equal(xb.sort(a, axis=None), np.arange(6.0))
    high = np.arange(24.0)[::-1].reshape((2,) + (1,) * 60 + (3, 4))
    want = np.sort(high.reshape(2, 3, 4), axis=1).reshape(high.shape)
    np.testing.assert_array_equal(xb.sort(high, axis=-2), want)  # NumPy's own sort raises
    np.testing.assert_array_equal(
        xb.argsort(high, axis=0).reshape(2, 12), np.argsort(high.reshape(2, 12), axis=0)
    )
    with pytest.raises(ValueError, match=r"svd: x has 64 dimensions; at most 32"):
        xb.svd(a)
    with pytest.raises(ValueError, match=r"svdvals: x has 64 dimensions; at most 32"):
        xb.svdvals(a)
    A = np.ones((1,) * 33 + (2, 2))
    with pytest.raises(ValueError, match=r"lstsq_grad: A has 35 dimensions; at most 32"):
        xb.lstsq_grad(A, np.ones((2, 1)), np.ones((2, 1)))
    with pytest.raises(ValueError, match=r"lstsq_grad: A has 35 dimensions; at most 32"):
        xb.lstsq_grad(A, np.ones(2), np.ones(2))
    with pytest.raises(ValueError, match=r"lstsq_grad_fn: A has 35 dimensions; at most 32"):
        xb.lstsq_grad_fn(A, np.ones(2))
    with pytest.raises(ValueError, match=r"lstsq_grad: x has 34 dimensions; at most 32"):
        xb.lstsq_grad(np.ones((2, 2)), np.ones((1,) * 32 + (2, 1)), np.ones((2, 1)))
    b = np.ones((1,) * 30 + (2, 2))
    assert xb.svd(b).S.shape == (1,) * 30 + (2,)  # at the limit: works
    assert xb.sort(b, axis=0).shape == b.shape


@requires_torch
def test_tensor_with_more_dimensions_than_numpy() -> None:
    t = torch.ones((1,) * 70)
    assert xb.sort(t).shape == t.shape  # torch itself has no such limit
    with pytest.raises(ValueError, match=r"70 dimensions, NumPy arrays at most 64"):
        xb.to_numpy(t)


def test_axis_error_says_axes() -> None:
    """Item 17: "valid axes are", "valid dims are"."""
    with pytest.raises(np.exceptions.AxisError, match=r"valid axes are -2\.\.1"):
        xb.sort(np.ones((2, 2)), axis=5)
    with pytest.raises(np.exceptions.AxisError, match=r"valid dims are -2\.\.1"):
        xb.sort(np.ones((2, 2)), dim=5)


class _ArrayLike:
    """A foreign container NumPy converts (what pandas and xarray objects look like)."""

    def __init__(self, values: list[float]) -> None:
        self.values = np.array(values)

    def __array__(self, dtype: Any = None, copy: bool | None = None) -> np.ndarray:
        if copy is False:
            raise ValueError("cannot share")
        return np.array(self.values, dtype=dtype, copy=True)


def test_asarray_accepts_objects_numpy_converts() -> None:
    """Item 17: asarray takes array_like objects (``__array__``), through np.asarray."""
    obj = _ArrayLike([3.0, 1.0])
    a = xb.asarray(obj)
    assert type(a) is np.ndarray and a.tolist() == [3.0, 1.0]
    assert xb.asarray(obj, dtype="float32").dtype == np.float32
    assert xb.to_numpy(obj).tolist() == [3.0, 1.0]
    assert not np.shares_memory(xb.asarray(obj, copy=True), obj.values)
    with pytest.raises(ValueError, match="copy=False"):
        xb.asarray(obj, copy=False)
    iface = type("Iface", (), {"__array_interface__": obj.values.__array_interface__})()
    assert xb.asarray(iface).tolist() == [3.0, 1.0]
    if HAS_TORCH:
        t = xb.asarray(obj, backend="torch")
        assert isinstance(t, torch.Tensor) and t.tolist() == [3.0, 1.0]
    with pytest.raises(TypeError, match="unsupported array type"):
        xb.asarray(object())
    with pytest.raises(TypeError, match="unsupported array type"):
        xb.sort(obj)  # the operations take arrays: asarray first


def test_route_warning_points_at_the_users_code(tmp_path: Path) -> None:
    """Item 17: the XBACK_ROUTE warning names the user's line, not xback's: the line that
    first uses xback (``import xback`` loads its core on first use of a public name)."""
    import os
    import subprocess
    import sys

    script = tmp_path / "user_code.py"
    script.write_text("import warnings\nwarnings.simplefilter('always')\nimport xback\n"
                      "print(xback.sort([2, 1]))\n")
    env = {**os.environ, "XBACK_ROUTE": "maybe"}
    out = subprocess.run(
        [sys.executable, str(script)], env=env, capture_output=True, text=True, timeout=120
    )
    assert out.returncode == 0, out.stderr
    assert f"{script}:4: RuntimeWarning: XBACK_ROUTE='maybe'" in out.stderr, out.stderr


def test_bench_help_shows_the_extra() -> None:
    """Item 17: rich markup no longer eats ``[plot]``."""
    pytest.importorskip("typer")
    from typer.testing import CliRunner

    from xback.cli import app

    res = CliRunner().invoke(app, ["bench", "--help"], env={"COLUMNS": "200"})
    assert res.exit_code == 0
    assert "xback[plot]" in res.output
