"""xback.namespace: the choice rule, the errors, device-bound creation, xback's functions in
the namespace (against array-api-strict and the raw libraries) and the guide's algorithms on
every backend."""

from __future__ import annotations

import inspect
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import xback
from xback import _namespace

from .conftest import HAS_CUDA, Target, requires_cuda, requires_dask, requires_strict

torch = pytest.importorskip("torch")

ROOT = Path(__file__).resolve().parent.parent


# -- the choice --------------------------------------------------------------------------
def test_the_inputs_kind_and_device_choose() -> None:
    xp = xback.namespace(np.zeros(3))
    assert (xp.backend, xp.device) == ("numpy", "cpu")
    assert xp.__name__ == "xback.namespace[numpy, cpu]"
    xt = xback.namespace(torch.zeros(3))
    assert (xt.backend, xt.device) == ("torch", "cpu")
    xm = xback.namespace(torch.zeros(3, device="meta"), [1.0, 2.0])  # lists are neutral
    assert (xm.backend, xm.device) == ("torch", "meta")
    assert xback.namespace() is xp  # no arrays: NumPy
    assert xback.namespace([1, 2], 3.0) is xp  # neutral inputs only: NumPy


def test_one_cached_object_per_backend_and_device() -> None:
    assert xback.namespace(np.zeros(3)) is xback.namespace(np.ones((2, 2)))
    assert xback.namespace(torch.zeros(1)) is xback.namespace(torch.ones(5))
    assert xback.namespace(torch.zeros(1)) is not xback.namespace(torch.zeros(1, device="meta"))


def test_explicit_choice_and_context() -> None:
    x = np.zeros(3)
    assert xback.namespace(x, backend="torch").backend == "torch"
    assert xback.namespace(x, backend="torch", device="meta").device == "meta"
    with xback.use("torch", device="meta"):
        xp = xback.namespace(x)
        assert (xp.backend, xp.device) == ("torch", "meta")
        assert xback.namespace() is xp
        # per-call backend= wins; the context's device travels with its backend only
        assert xback.namespace(x, backend="numpy").device == "cpu"
        with xback.use("numpy"):
            assert xback.namespace(torch.zeros(1)).backend == "numpy"
    with xback.use(device="meta"):  # a device alone applies to the inputs' kind
        assert xback.namespace(torch.zeros(1)).device == "meta"
    with xback.use(route=False):  # chooses neither backend nor device
        assert xback.namespace(torch.zeros(1)).device == "cpu"
    meta = torch.zeros(1, device="meta")
    assert xback.namespace(meta, backend="torch").device == "meta"  # the input's device
    assert xback.namespace(meta, backend="numpy").device == "cpu"
    with xback.use("torch", device="meta"):
        assert xback.namespace(torch.zeros(1), backend="torch").device == "meta"
    with xback.use("numpy"):
        assert xback.namespace(meta, backend="torch").device == "meta"
    with xback.use(device="meta"):  # a device alone does not travel to an explicit backend
        assert xback.namespace(torch.zeros(1), backend="torch").device == "cpu"
    # several inputs: the first array's kind, lists neutral, one device
    assert xback.namespace([1.0], meta, 2.0, meta).device == "meta"


def _error(fn: Any, *args: Any) -> BaseException:
    with pytest.raises((TypeError, ValueError)) as info:
        fn(*args)
    return info.value


def test_mixed_kinds_raise_xbacks_type_error() -> None:
    a, t = np.ones((3, 2)), torch.ones(2, dtype=torch.float64)
    y = np.zeros(3)
    ns_err = _error(xback.namespace, a, t, y)
    fn_err = _error(xback.lstsq_grad, a, t, y)
    assert type(ns_err) is type(fn_err) is TypeError
    assert str(ns_err) == str(fn_err)
    assert "numpy" in str(ns_err) and "torch" in str(ns_err)
    # an explicit choice resolves it, with the same rule as the functions
    assert xback.namespace(a, t, y, backend="torch").backend == "torch"
    with xback.use("numpy"):
        assert xback.namespace(a, t, y).backend == "numpy"


def test_mixed_devices_raise_xbacks_value_error() -> None:
    a, b = torch.ones(2), torch.ones(2, device="meta")
    ns_err = _error(xback.namespace, a, b)
    fn_err = _error(xback.lstsq_grad, torch.ones(2, 2), a, b)
    assert type(ns_err) is type(fn_err) is ValueError
    assert str(ns_err) == str(fn_err)
    assert "cpu" in str(ns_err) and "meta" in str(ns_err)
    assert xback.namespace(a, b, device="meta").device == "meta"


def test_bad_choices_raise_before_any_work() -> None:
    with pytest.raises(ValueError, match="unknown backend 'nope'"):
        xback.namespace(backend="nope")
    with pytest.raises(ValueError, match="CPU only"):
        xback.namespace(np.zeros(2), device="meta")
    with pytest.raises(TypeError, match="unsupported array type"):
        xback.namespace(object())
    with pytest.raises(TypeError, match="device must be"):
        xback.namespace(torch.zeros(1), device=3)


# -- device-bound creation ---------------------------------------------------------------
def _creations(t: Any) -> dict[str, Any]:
    """Every creation function with arguments (``t``: an array for the ``*_like`` ones)."""
    return {
        "asarray": lambda xp: xp.asarray([1.0, 2.0]),
        "asarray(array)": lambda xp: xp.asarray(np.ones(2)),
        "zeros": lambda xp: xp.zeros((2, 3)),
        "ones": lambda xp: xp.ones(3, dtype=xp.int32),
        "empty": lambda xp: xp.empty(4),
        "full": lambda xp: xp.full((2,), 7.0),
        "arange": lambda xp: xp.arange(5),
        "linspace": lambda xp: xp.linspace(0.0, 1.0, 5),
        "eye": lambda xp: xp.eye(3, 2, k=1),
        "zeros_like": lambda xp: xp.zeros_like(t),
        "ones_like": lambda xp: xp.ones_like(t),
        "empty_like": lambda xp: xp.empty_like(t),
        "full_like": lambda xp: xp.full_like(t, 2.0),
        "from_dlpack": lambda xp: xp.from_dlpack(t),
        "fft.fftfreq": lambda xp: xp.fft.fftfreq(4),
        "fft.rfftfreq": lambda xp: xp.fft.rfftfreq(4),
    }


CREATION_CASES = list(_creations(None))


@pytest.mark.parametrize("case", CREATION_CASES)
def test_every_creation_function_lands_on_the_meta_device(case: str) -> None:
    cpu = torch.ones(3)
    make = _creations(cpu)[case]
    with xback.use("torch", device="meta"):
        xp = xback.namespace()
        inside = make(xp)
    assert inside.device.type == "meta"
    assert make(xp).device.type == "meta"  # the namespace keeps its device outside the block
    # on the input's device otherwise
    xm = xback.namespace(torch.zeros(1, device="meta"))
    assert make(xm).device.type == "meta"
    assert make(xback.namespace(cpu)).device.type == "cpu"


def test_explicit_device_wins_and_info_reports_the_device() -> None:
    with xback.use("torch", device="meta"):
        xp = xback.namespace(np.ones(2))
    assert xp.zeros(2, device="cpu").device.type == "cpu"
    assert xp.asarray([1.0], device=torch.device("cpu")).device.type == "cpu"
    info = xp.__array_namespace_info__()
    assert info.default_device() == torch.device("meta")
    assert "float64" in info.dtypes()  # the rest of the library's info
    with pytest.raises(ValueError, match="copy=False"):
        xp.from_dlpack(torch.ones(2), copy=False)  # on the CPU, and no copy allowed


def test_creation_keeps_the_standard_signatures() -> None:
    xp = xback.namespace(torch.zeros(1, device="meta"))
    lib = xp.__dict__["_library"]
    for name in ("asarray", "zeros", "arange", "linspace", "from_dlpack"):
        assert inspect.signature(getattr(xp, name)) == inspect.signature(getattr(lib, name))


@requires_strict
def test_array_api_strict_devices() -> None:
    import array_api_strict as xs

    x = xs.asarray([3.0, 1.0], device=xs.Device("device1"))
    xp = xback.namespace(x)
    assert (xp.backend, xp.device) == ("array_api_strict", "device1")
    for make in _creations(x).values():
        assert make(xp).device == xs.Device("device1")
    assert xp.sort(x).device == xs.Device("device1")
    assert xp.__array_namespace_info__().default_device() == xs.Device("device1")


@requires_cuda
def test_cuda_creation() -> None:  # pragma: no cover - needs a GPU
    with xback.use("torch", device="cuda"):
        xp = xback.namespace(np.ones(2))
    for make in _creations(torch.ones(3)).values():
        assert make(xp).device.type == "cuda"


# -- the namespace is array-api-compat's, with xback's functions ---------------------------
def test_it_is_array_api_compats_namespace() -> None:
    import array_api_compat

    for x in (np.zeros(2), torch.zeros(2)):
        xp, lib = xback.namespace(x), array_api_compat.array_namespace(x)
        assert xp.__array_api_version__ == lib.__array_api_version__ >= "2024.12"
        assert xp.mean is lib.mean and xp.take_along_axis is lib.take_along_axis
        assert xp.linalg.qr is lib.linalg.qr
        assert xp.sort is not lib.sort and xp.linalg.svd is not lib.linalg.svd
    # the pitfalls of the arrays' own methods are gone
    xt = xback.namespace(torch.zeros(1))
    assert xt.mean(xt.asarray([1.0, 2.0])) == 1.5
    assert xt.std(xt.asarray([1.0, 3.0])) == 1.0  # ddof=0, as NumPy
    assert xt.max(xt.asarray([[1, 5], [3, 2]]), axis=0).tolist() == [3, 5]


def test_array_api_signatures_of_xbacks_functions() -> None:
    xp = xback.namespace(np.zeros(1))
    sig = inspect.signature
    assert str(sig(xp.sort)) == "(x: 'Any', /, *, axis: 'int' = -1, descending: 'bool' = False, stable: 'bool' = True) -> 'Any'"  # noqa: E501
    assert sig(xp.argsort).parameters.keys() == sig(xp.sort).parameters.keys()
    assert str(sig(xp.linalg.svd)) == "(x: 'Any', /, *, full_matrices: 'bool' = True) -> 'Any'"
    assert str(sig(xp.linalg.svdvals)) == "(x: 'Any', /) -> 'Any'"


def test_extension_table_takes_what_xback_has(monkeypatch: pytest.MonkeyPatch) -> None:
    """Names of the tables are taken from xback when xback defines them (a function added
    later, such as ``top_k``, appears without touching the namespace), bound to the backend."""
    seen: list[Any] = []

    def fake_ext(x: Any, k: int = 1, /, *, backend: str | None = None) -> Any:
        seen.append(backend)
        return x

    table = _namespace.XBACK_FUNCTIONS | _namespace.XBACK_EXTENSIONS
    present = {n for n, src in table.items() if hasattr(xback, src)}
    assert {"lstsq_grad", "lstsq_grad_fn"} <= present
    _namespace.clear_cache()
    try:
        xp = xback.namespace(torch.zeros(1))
        for name in present:
            assert getattr(xp, name).__wrapped__ is getattr(xback, table[name])
        for name in set(table) - present:  # not in xback (yet): the library's, or absent
            assert getattr(xp, name, None) is getattr(xp.__dict__["_library"], name, None)
        # a name of the table that xback defines later is taken, bound to the backend
        monkeypatch.setitem(_namespace.XBACK_EXTENSIONS, "fake_ext", "fake_ext")
        assert not hasattr(xp, "fake_ext")
        monkeypatch.setattr(xback, "fake_ext", fake_ext, raising=False)
        _namespace.clear_cache()
        xp = xback.namespace(torch.zeros(1))
        xp.fake_ext(np.ones(3))
        assert seen == ["torch"]  # a NumPy input: computed on the namespace's backend
        xp.fake_ext(torch.ones(3))
        assert seen == ["torch", None]  # xback's rule already gives torch: its fast path
        xp.fake_ext(np.ones(3), 2)
        xp.fake_ext(np.ones(3), backend="numpy")  # an explicit choice still wins
        assert seen == ["torch", None, "torch", "numpy"]
    finally:
        monkeypatch.undo()
        _namespace.clear_cache()


def test_extensions_compute_on_the_namespaces_backend() -> None:
    A, x, y = np.ones((4, 2)), np.ones(2), np.zeros(4)
    g = xback.namespace(torch.zeros(1)).lstsq_grad(A, x, y)
    assert isinstance(g, torch.Tensor)
    np.testing.assert_allclose(g.numpy(), xback.lstsq_grad(A, x, y))
    grad = xback.namespace(torch.zeros(1)).lstsq_grad_fn(A, y)
    assert isinstance(grad(torch.ones(2, dtype=torch.float64)), torch.Tensor)


# -- property tests: xback's functions in the namespace ----------------------------------
_SORT_DTYPES = st.sampled_from(["float64", "float32", "int64", "int16", "uint8", "bool"])


@st.composite
def _arrays(draw: Any, min_dims: int = 1) -> np.ndarray:
    dtype = np.dtype(draw(_SORT_DTYPES))
    shape = draw(hnp.array_shapes(min_dims=min_dims, max_dims=3, min_side=0, max_side=6))
    if dtype.kind == "f":
        elements = st.sampled_from([0.0, -0.0, 1.0, -1.5, 2.0, np.inf, -np.inf, np.nan])
        return draw(hnp.arrays(dtype, shape, elements=elements))
    return draw(hnp.arrays(dtype, shape, elements=st.integers(0, 3) if dtype.kind != "b" else None))


def _stable_argsort(a: np.ndarray, axis: int, descending: bool) -> np.ndarray:
    """Independent reference: Python's stable sort, NaN last in both directions."""
    moved = np.moveaxis(a, axis, -1)
    out = np.empty(moved.shape, dtype=np.int64)
    for idx in np.ndindex(moved.shape[:-1]):
        row = moved[idx].tolist()

        def key(i: int, row: list[Any] = row) -> tuple[bool, Any]:
            v = row[i]
            isnan = v != v
            return (isnan, 0 if isnan else (-v if descending else v))

        out[idx] = sorted(range(len(row)), key=key)
    return np.moveaxis(out, -1, axis)


@settings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(a=_arrays(), descending=st.booleans(), data=st.data())
def test_sort_and_argsort_match_references(
    target: Target, a: np.ndarray, descending: bool, data: Any
) -> None:
    axis = data.draw(st.integers(-a.ndim, a.ndim - 1))
    x = target.make(a)
    xp = xback.namespace(x)
    assert (xp.backend, xp.device) == (target.backend, target.device)
    idx = xp.argsort(x, axis=axis, descending=descending)
    vals = xp.sort(x, axis=axis, descending=descending)
    if not target.has_data:
        assert tuple(idx.shape) == tuple(vals.shape) == a.shape
        return
    ref = _stable_argsort(a, axis, descending)
    np.testing.assert_array_equal(target.numpy(idx), ref)
    np.testing.assert_array_equal(target.numpy(vals), np.take_along_axis(a, ref, axis))
    direct = xback.sort(x, axis=axis, descending=descending)
    np.testing.assert_array_equal(target.numpy(vals), xback.to_numpy(direct))


@requires_strict
@settings(max_examples=40)
@given(a=_arrays(), descending=st.booleans())
def test_sort_matches_array_api_strict_and_the_raw_libraries(
    a: np.ndarray, descending: bool
) -> None:
    """Where the libraries agree with the standard (no NaN), they agree with the namespace."""
    import array_api_strict as xs

    if a.dtype.kind == "f":
        a = np.nan_to_num(a, nan=0.5)  # the standard leaves NaN's place unspecified
    elif a.dtype.kind == "b":
        a = a.astype(np.uint8)  # array-api-strict sorts real numbers only
    expected_idx = xs.argsort(xs.asarray(a), descending=descending, stable=True)
    expected_vals = xs.sort(xs.asarray(a), descending=descending, stable=True)
    for x in (a, torch.asarray(a), xs.asarray(a)):
        xp = xback.namespace(x)
        np.testing.assert_array_equal(
            xback.to_numpy(xp.argsort(x, descending=descending)), np.asarray(expected_idx)
        )
        np.testing.assert_array_equal(
            xback.to_numpy(xp.sort(x, descending=descending)), np.asarray(expected_vals)
        )
    # the raw libraries' stable ascending sorts
    np.testing.assert_array_equal(
        xback.namespace(a).argsort(a), np.argsort(a, axis=-1, kind="stable")
    )
    t = torch.asarray(a)
    if not descending:
        np.testing.assert_array_equal(
            xback.namespace(t).argsort(t).numpy(), torch.argsort(t, dim=-1, stable=True).numpy()
        )


@st.composite
def _matrices(draw: Any) -> np.ndarray:
    dtype = draw(st.sampled_from(["float64", "float32"]))
    shape = draw(hnp.array_shapes(min_dims=2, max_dims=3, min_side=0, max_side=5))
    return draw(hnp.arrays(dtype, shape, elements=st.floats(-4, 4, width=32)))


@settings(max_examples=15, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(a=_matrices(), full_matrices=st.booleans())
def test_svd_follows_the_standard(target: Target, a: np.ndarray, full_matrices: bool) -> None:
    target.require_svd(a.shape, full_matrices)
    x = target.make(a)
    xp = xback.namespace(x)
    res = xp.linalg.svd(x) if full_matrices else xp.linalg.svd(x, full_matrices=False)
    U, S, Vh = res
    assert (res.U, res.S, res.Vh) == (U, S, Vh)
    m, n = a.shape[-2:]
    k = min(m, n)
    assert tuple(U.shape) == a.shape[:-2] + ((m, m) if full_matrices else (m, k))
    assert tuple(Vh.shape) == a.shape[:-2] + ((n, n) if full_matrices else (k, n))
    sv = xp.linalg.svdvals(x)
    assert tuple(S.shape) == tuple(sv.shape) == (*a.shape[:-2], k)
    if not target.has_data:
        return
    rtol = 1e-4 if a.dtype == np.float32 else 1e-10
    expected = np.linalg.svd(a, compute_uv=False)
    np.testing.assert_allclose(target.numpy(S), expected, rtol=rtol, atol=rtol * 10)
    np.testing.assert_allclose(target.numpy(sv), expected, rtol=rtol, atol=rtol * 10)
    Un, Sn, Vhn = target.numpy(U), target.numpy(S), target.numpy(Vh)
    np.testing.assert_allclose((Un[..., :, :k] * Sn[..., None, :]) @ Vhn[..., :k, :], a,
                               rtol=rtol, atol=rtol * 40)


@requires_strict
@settings(max_examples=25)
@given(a=_matrices())
def test_svdvals_matches_array_api_strict_and_the_raw_libraries(a: np.ndarray) -> None:
    import array_api_strict as xs

    expected = np.asarray(xs.linalg.svdvals(xs.asarray(a)))
    rtol = 1e-4 if a.dtype == np.float32 else 1e-10
    t = torch.asarray(a)
    np.testing.assert_allclose(xback.namespace(a).linalg.svdvals(a), expected, rtol=rtol, atol=rtol)
    np.testing.assert_allclose(xback.namespace(t).linalg.svdvals(t).numpy(),
                               torch.linalg.svdvals(t).numpy(), rtol=rtol, atol=rtol)
    xsa = xs.asarray(a)
    np.testing.assert_allclose(np.asarray(xback.namespace(xsa).linalg.svdvals(xsa)), expected,
                               rtol=rtol, atol=rtol)


def test_xbacks_errors_in_the_namespace() -> None:
    """The exact functions keep xback's errors on every backend (the library's differ)."""
    for x in (np.array([1.0, np.inf]).reshape(1, 2), torch.tensor([[1.0, float("nan")]])):
        xp = xback.namespace(x)
        with pytest.raises(ValueError, match="NaN or inf"):
            xp.linalg.svdvals(x)
        with pytest.raises(TypeError, match="descending must be a bool"):
            xp.sort(x, descending=1)


# -- the guide's algorithms on every backend ---------------------------------------------
def _guide_functions() -> dict[str, Any]:
    """The first ``python`` block of docs/guide.md: pca, knn_classify, ridge_gd."""
    text = (ROOT / "docs" / "guide.md").read_text()
    block = re.search(r"^```python\n(.*?)^```", text, re.M | re.S)
    assert block is not None
    scope: dict[str, Any] = {}
    exec(compile(block.group(1), "guide.md", "exec"), scope)
    return scope


GUIDE = _guide_functions()


def test_guide_algorithms_on_every_backend(target: Target) -> None:
    rng = np.random.default_rng(1)
    X = rng.normal(size=(24, 3)) * np.array([4.0, 2.0, 0.5])
    labels = (X[:, 0] > 0).astype(np.int64) + (X[:, 1] > 0).astype(np.int64)
    A = rng.normal(size=(30, 4))
    y = A @ np.array([1.0, -2.0, 3.0, 0.5])
    target.require_svd((24, 3), False)
    pca, knn, ridge = GUIDE["pca"], GUIDE["knn_classify"], GUIDE["ridge_gd"]
    scores, S = pca(target.make(X), 2)
    pred = knn(target.make(X[:18]), target.make(labels[:18]), target.make(X[18:]), n_classes=3)
    coef = ridge(target.make(A), target.make(y), steps=50)
    if not target.has_data:
        assert tuple(scores.shape) == (24, 2) and tuple(pred.shape) == (6,)
        assert tuple(coef.shape) == (4,)
        assert {xback.device(r) for r in (scores, S, pred, coef)} == {target.device}
        return
    ref_scores, ref_S = pca(X, 2)
    np.testing.assert_allclose(target.numpy(S), ref_S, rtol=1e-10)
    np.testing.assert_allclose(np.abs(target.numpy(scores)), np.abs(ref_scores), atol=1e-9)
    np.testing.assert_array_equal(target.numpy(pred), knn(X[:18], labels[:18], X[18:], n_classes=3))
    np.testing.assert_allclose(target.numpy(coef), ridge(A, y, steps=50), rtol=1e-9)


def test_guide_algorithms_inside_use_meta() -> None:
    rng = np.random.default_rng(2)
    X, A, y = rng.normal(size=(10, 3)), rng.normal(size=(12, 2)), rng.normal(size=12)
    labels = np.arange(10) % 3
    with xback.use("torch", device="meta"):
        results = [
            *GUIDE["pca"](X, 2),
            GUIDE["knn_classify"](X[:6], labels[:6], X[6:], n_classes=3),
            GUIDE["ridge_gd"](A, y, steps=3),
        ]
    assert all(isinstance(r, torch.Tensor) and r.device.type == "meta" for r in results)


# -- dask, compiled code, lazy import ----------------------------------------------------
@requires_dask
def test_dask_namespace() -> None:
    import dask.array as da

    d = da.from_array(np.array([3.0, np.nan, 1.0, 2.0]), chunks=2)
    xp = xback.namespace(d)
    assert (xp.backend, xp.device) == ("dask", "cpu")
    assert xp.__name__ == "xback.namespace[dask, cpu]"
    np.testing.assert_array_equal(xp.sort(d).compute(), [1.0, 2.0, 3.0, np.nan])
    assert isinstance(xp.zeros(3), da.Array)


def test_namespace_closed_over_in_torch_compile() -> None:
    xp = xback.namespace(torch.zeros(1))

    @torch.compile(fullgraph=True, backend="eager")
    def standardize(x: Any) -> Any:
        return (x - xp.mean(x, axis=0)) / xp.std(x, axis=0)

    x = torch.arange(12.0).reshape(4, 3)
    torch.testing.assert_close(standardize(x), (x - x.mean(0)) / x.std(0, unbiased=False))


def test_import_xback_loads_no_library_until_namespace() -> None:
    code = (
        "import sys, numpy as np, xback\n"
        "libs = ('torch', 'array_api_compat', 'array_api_strict', 'dask', 'jax')\n"
        "loaded = lambda: sorted(m for m in sys.modules if m.split('.')[0] in libs)\n"
        "assert not loaded(), loaded()\n"
        "xp = xback.namespace(np.zeros(2))\n"
        "assert 'torch' not in sys.modules and 'dask' not in sys.modules, loaded()\n"
        "assert 'array_api_compat.numpy' in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


@pytest.mark.skipif(HAS_CUDA, reason="checks the message without CUDA")
def test_cuda_without_cuda_is_a_clear_error() -> None:
    with pytest.raises(ValueError):
        xback.namespace(np.zeros(1), backend="torch", device="cuda")
