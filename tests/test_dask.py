"""The dask backend (issue 9, first part): lazy results, the NumPy backend's answers.

Small chunks everywhere, so that every multi-chunk path runs. Sorting is compared with the
NumPy backend exactly (values bit for bit, indices equal), linear algebra to float tolerance.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import xback

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")

RNG = np.random.default_rng(1234)


def _lazy(r: Any) -> Any:
    """``r`` checked to be a lazy dask array of the dask backend, then computed."""
    assert isinstance(r, da.Array)
    assert xback.backend_of(r) == "dask"
    return r.compute()


def _same(got: Any, want: np.ndarray[Any, Any]) -> None:
    got = np.asarray(got)
    assert got.dtype == want.dtype
    assert got.shape == want.shape
    assert got.tobytes() == want.tobytes()  # bit for bit (NaN payloads, -0.0 included)


# -- sorting ----------------------------------------------------------------------------------
def _sort_data(dtype: str) -> np.ndarray[Any, Any]:
    shape = (6, 9)
    if dtype == "bool":
        return RNG.integers(0, 2, shape).astype(bool)
    if dtype.startswith(("int", "uint")):
        return RNG.integers(0, 4, shape).astype(dtype)  # many ties: stability shows
    if dtype.startswith("complex"):
        a = (RNG.integers(-2, 3, shape) + 1j * RNG.integers(-2, 3, shape)).astype(dtype)
        a[0, 1] = complex(np.nan, 0)
        a[2, 3] = complex(1, np.nan)
        return a
    if dtype == "bfloat16":
        ml_dtypes = pytest.importorskip("ml_dtypes")
        a = RNG.integers(-3, 4, shape).astype(np.float32)
        a[1, 2] = np.nan
        return a.astype(ml_dtypes.bfloat16)
    a = RNG.integers(-3, 4, shape).astype(dtype)
    a[0, 0] = a[3, 4] = np.nan
    a[1, 1], a[1, 2] = -0.0, 0.0
    a[2, 5] = -np.inf
    return a


DTYPES = ["float64", "float32", "float16", "int64", "int8", "uint16", "bool", "complex128",
          "bfloat16"]


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("descending", [False, True])
@pytest.mark.parametrize("axis", [0, 1, -1])
def test_sort_argsort_match_numpy_exactly(dtype: str, descending: bool, axis: int) -> None:
    a = _sort_data(dtype)
    ax = axis % a.ndim
    chunks = tuple(-1 if i == ax else 2 for i in range(a.ndim))  # other axis: 3+ chunks
    d = da.from_array(a, chunks=chunks)
    for stable in (True, False):
        want_i = xback.argsort(a, axis=axis, descending=descending, stable=True)
        got_i = _lazy(xback.argsort(d, axis=axis, descending=descending, stable=stable))
        assert got_i.dtype == np.int64
        want = xback.sort(a, axis=axis, descending=descending, stable=True)
        got = _lazy(xback.sort(d, axis=axis, descending=descending, stable=stable))
        if stable:
            _same(got_i, want_i)
            _same(got, want)
        else:  # ties (-0.0 and 0.0 included) in any order: equal values
            _equal(np.take_along_axis(a, got_i, ax), want)
            _equal(got, want)


def _equal(got: Any, want: Any) -> None:
    assert got.dtype == want.dtype and got.shape == want.shape
    wide = np.complex128 if want.dtype.kind == "c" else np.float64
    assert np.array_equal(got.astype(wide), want.astype(wide), equal_nan=True)


def test_sort_axis_none_and_0d() -> None:
    a = _sort_data("float64")
    _same(_lazy(xback.sort(da.from_array(a), axis=None)), xback.sort(a, axis=None))
    _same(
        _lazy(xback.argsort(da.from_array(a), axis=None, descending=True)),
        xback.argsort(a, axis=None, descending=True),
    )
    z = np.array(2.5)
    _same(_lazy(xback.sort(da.from_array(z), axis=None)), xback.sort(z, axis=None))


def test_sort_does_not_touch_input() -> None:
    a = _sort_data("float64")
    keep = a.copy()
    d = da.from_array(a, chunks=(2, -1))
    xback.sort(d, descending=True).compute()
    _same(a, keep)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("descending", [False, True])
def test_sample_sort_along_chunked_axis_matches_numpy(dtype: str, descending: bool) -> None:
    a = _sort_data(dtype).reshape(-1)
    a = np.concatenate([a, a[::-1], a[:7]])  # 115 elements, ties across chunks
    d = da.from_array(a, chunks=(13, 40, 1, 30, 31))
    for stable in (True, False):  # the sample sort is always stable
        got_i = xback.argsort(d, descending=descending, stable=stable)
        got = xback.sort(d, descending=descending, stable=stable)
        assert got_i.chunks == got.chunks == d.chunks
        _same(_lazy(got_i), xback.argsort(a, descending=descending))
        _same(_lazy(got), xback.sort(a, descending=descending))


@pytest.mark.parametrize("data", ["equal", "sorted", "reversed", "nan"])
def test_sample_sort_skewed_data(data: str) -> None:
    a = {
        "equal": np.full(200, 3.0),
        "sorted": np.arange(200.0),
        "reversed": np.arange(200.0)[::-1].copy(),
        "nan": np.where(np.arange(200) % 3 == 0, np.nan, np.arange(200.0) % 7),
    }[data]
    d = da.from_array(a, chunks=17)
    for desc in (False, True):
        _same(_lazy(xback.argsort(d, descending=desc)), xback.argsort(a, descending=desc))


def test_sample_sort_axis_none_of_chunked_matrix() -> None:
    a = _sort_data("float64")
    d = da.from_array(a, chunks=(2, 4))
    _same(_lazy(xback.sort(d, axis=None, descending=True)),
          xback.sort(a, axis=None, descending=True))
    _same(_lazy(xback.argsort(d, axis=None)), xback.argsort(a, axis=None))


def test_sort_empty_chunked_arrays() -> None:
    """No data: each empty block sorts to an empty block, the chunks are kept."""
    a = np.zeros((0, 5))
    d = da.from_array(a, chunks=(1, 2))
    for axis in (0, 1):
        got = xback.sort(d, axis=axis)
        assert got.chunks == d.chunks
        _same(_lazy(got), xback.sort(a, axis=axis))
    e = da.from_array(np.zeros((4, 0, 3)), chunks=(1, 1, 2))
    assert xback.argsort(e, axis=0).chunks == e.chunks
    _same(_lazy(xback.argsort(d, axis=None)), xback.argsort(a, axis=None))


# chunks along every axis, empty and one-element chunks included: every path of the sample sort
ND_LAYOUTS = [
    ((6, 9), ((1, 0, 3, 2), (4, 1, 0, 4))),
    ((3, 5, 8), ((2, 1), (1, 4), (3, 0, 5))),
]


def _nd_data(dtype: str, shape: tuple[int, ...]) -> np.ndarray[Any, Any]:
    a = _sort_data(dtype).reshape(-1)
    return np.resize(a, shape)  # repeats the data: ties across chunks and lines


def _check_sample_sort(a: np.ndarray[Any, Any], chunks: Any, descending: bool) -> None:
    d = da.from_array(a, chunks=chunks)
    for axis in [*range(a.ndim), None]:
        got_i = xback.argsort(d, axis=axis, descending=descending, stable=False)
        got = xback.sort(d, axis=axis, descending=descending)
        if axis is not None:
            assert got_i.chunks == got.chunks == d.chunks  # the input's chunks
        _same(_lazy(got_i), xback.argsort(a, axis=axis, descending=descending))
        _same(_lazy(got), xback.sort(a, axis=axis, descending=descending))


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("descending", [False, True])
def test_sample_sort_nd_chunked_axes_match_numpy(dtype: str, descending: bool) -> None:
    """Sorting along a chunked axis of an N-D array (and axis=None): the NumPy backend's
    values bit for bit and indices exactly (NaN last, stable both ways, -0.0 == 0.0)."""
    for shape, chunks in ND_LAYOUTS:
        _check_sample_sort(_nd_data(dtype, shape), chunks, descending)


@pytest.mark.parametrize("dtype", ["float64", "int8"])
def test_sample_sort_buckets_spanning_lines(dtype: str) -> None:
    """Many short lines per chunk: a bucket holds whole lines and parts of others."""
    _check_sample_sort(_nd_data(dtype, (40, 6)), (25, (1, 2, 3)), descending=True)


def test_sample_sort_bucket_wrapping_into_the_next_line() -> None:
    """A bucket holding the end of one line and the start of the next, both within the same
    output block's columns (found by a random layout search: that block's piece was cut
    twice)."""
    rng = np.random.default_rng(0)
    for _ in range(3):
        a = rng.integers(-2, 3, (1, 7, 7)).astype(np.float64)
        d = da.from_array(a, chunks=((1,), (3, 2, 1, 1), (2, 4, 1)))
        for fn in (xback.sort, xback.argsort):
            _same(_lazy(fn(d, axis=2)), fn(a, axis=2))


@st.composite
def _chunked_arrays(draw: st.DrawFn) -> tuple[np.ndarray[Any, Any], Any, int | None]:
    """A small float array with ties, NaN and -0.0, chunks of any lengths (zero-length
    included) along every axis, and an axis (or None)."""
    shape = tuple(draw(st.lists(st.integers(0, 7), min_size=1, max_size=3)))
    n = int(np.prod(shape))
    vals = draw(st.lists(st.sampled_from([-1.0, 0.0, -0.0, 1.0, 2.0, np.nan]), min_size=n,
                         max_size=n))
    a = np.array(vals, dtype=np.float64).reshape(shape)
    chunks = []
    for length in shape:
        cuts = sorted(draw(st.lists(st.integers(0, length), max_size=3)))
        chunks.append(tuple(np.diff([0, *cuts, length]).tolist()))
    axis = draw(st.one_of(st.none(), st.integers(0, len(shape) - 1)))
    return a, tuple(chunks), axis


@given(case=_chunked_arrays(), descending=st.booleans())
def test_sample_sort_any_layout_matches_numpy(case: Any, descending: bool) -> None:
    a, chunks, axis = case
    d = da.from_array(a, chunks=chunks)
    for fn in (xback.sort, xback.argsort):
        got = fn(d, axis=axis, descending=descending)
        if axis is not None:
            assert got.chunks == d.chunks
        _same(got.compute(scheduler="synchronous"), fn(a, axis=axis, descending=descending))


@pytest.mark.parametrize(
    ("shape", "chunks"),
    [
        ((0, 0, 0), ((0,), (0,), (0, 0))),  # the case a CI run once drew (issue 18)
        ((0,), ((0, 0),)),
        ((0, 3), ((0, 0), (3,))),
        ((0, 3), ((0,), (1, 2))),
        ((3, 0), ((3,), (0, 0))),
        ((0, 0), ((0, 0), (0, 0))),
        ((2, 0, 3), ((1, 1), (0, 0), (3,))),
    ],
)
def test_empty_arrays_with_zero_length_chunks_every_path(
    shape: tuple[int, ...], chunks: Any
) -> None:
    """No data, whatever the chunks: every operation answers as NumPy does on the same
    empty array (sorts along every axis and flattened, svd, svdvals, lstsq_grad)."""
    a = np.zeros(shape)
    d = da.from_array(a, chunks=chunks)
    for axis in (None, *range(a.ndim)):
        for fn in (xback.sort, xback.argsort):
            for descending in (False, True):
                _same(_lazy(fn(d, axis=axis, descending=descending)),
                      fn(a, axis=axis, descending=descending))
    if a.ndim >= 2:
        for full in (False, True):
            for got, want in zip(xback.svd(d, full_matrices=full, canonical_signs=True),
                                 xback.svd(a, full_matrices=full, canonical_signs=True)):
                _same(_lazy(got), want)
        _same(_lazy(xback.svdvals(d)), xback.svdvals(a))
    if a.ndim == 2:
        m, n = shape
        x, y = np.zeros(n), np.zeros(m)
        _same(_lazy(xback.lstsq_grad(d, da.from_array(x), da.from_array(y, chunks=chunks[0]))),
              xback.lstsq_grad(a, x, y))


def test_sample_sort_non_native_byte_order() -> None:
    a = _nd_data("float64", (7, 10)).astype(">f8")
    d = da.from_array(a, chunks=(3, 4))
    for axis in (1, None):
        _same(_lazy(xback.sort(d, axis=axis, descending=True)),
              xback.sort(a, axis=axis, descending=True))


def _largest_task_input(result: Any) -> int:
    """Compute ``result`` (synchronous scheduler); return the largest total size (bytes) of
    the inputs of one of its tasks (the final concatenation into one array excluded)."""
    from dask.callbacks import Callback
    from dask.sizeof import sizeof

    own = set(dict(result.__dask_graph__()))
    sizes = [0]

    def pretask(key: Any, dsk: Any, state: Any) -> None:
        if key in own:
            cache = state["cache"]
            sizes.append(sum(sizeof(cache[k]) for k in state["dependencies"][key]))

    with Callback(pretask=pretask):
        result.compute(scheduler="synchronous")
    return max(sizes)


@pytest.mark.parametrize("data", ["random", "equal"])
@pytest.mark.parametrize("axis", [0, 1, None])
def test_sample_sort_tasks_hold_a_few_chunks(data: str, axis: int | None) -> None:
    """No task of the sort reads more than a few chunks: no task depends on more than one
    input chunk, and the inputs of every task total at most 4 chunks' bytes (a bucket holds
    about one chunk of values plus their int64 positions), for random and all-equal data."""
    a = RNG.standard_normal((40, 3000)) if data == "random" else np.ones((40, 3000))
    d = da.from_array(a, chunks=(20, 250))  # 2 x 12 chunks of 40 kB
    chunk_bytes = 20 * 250 * 8
    s = xback.argsort(d, axis=axis)
    graph = dict(s.__dask_graph__())
    inputs = {k for k in graph if isinstance(k, tuple) and k[0] == d.name}
    assert len(inputs) == 24
    from dask.core import get_dependencies

    for key in graph:
        assert len(get_dependencies(graph, key) & inputs) <= 1, key
    assert chunk_bytes <= _largest_task_input(s) <= 4 * chunk_bytes
    _same(s.compute(), xback.argsort(a, axis=axis))


# -- conversion, dispatch, devices ------------------------------------------------------------
def test_to_numpy_computes_a_copy() -> None:
    a = np.arange(12.0).reshape(3, 4)
    d = da.from_array(a, chunks=(1, 4))
    with pytest.raises(ValueError, match=r"copy=False.*lazy"):
        xback.to_numpy(d, copy=False)
    out = xback.to_numpy(d)
    assert type(out) is np.ndarray
    _same(out, a)
    one = da.from_array(a, chunks=-1)
    c = xback.to_numpy(one, copy=True)
    assert not np.shares_memory(c, a)
    _same(c, a)


def test_from_numpy_and_use_bring_numpy_in() -> None:
    a = np.arange(10.0)
    d = xback.from_numpy(a, backend="dask")
    assert isinstance(d, da.Array) and xback.backend_of(d) == "dask"
    _same(d.compute(), a)
    c = xback.from_numpy(a, backend="dask", copy=True)
    a[0] = 99.0
    assert c[0].compute() == 0.0  # copied before wrapping
    assert d[0].compute() == 99.0  # shared (lazy view of the caller's array)
    with xback.use("dask"):
        _same(_lazy(xback.sort(np.array([3, 1, 2]))), np.array([1, 2, 3]))
    assert xback.device(d) == "cpu"


@pytest.mark.parametrize(
    ("chunks", "expected"),
    [
        (None, ((10,), (6,))),
        ("auto", ((10,), (6,))),
        ("1kB", ((10,), (6,))),
        (4, ((4, 4, 2), (4, 2))),
        (-1, ((10,), (6,))),
        ((3, -1), ((3, 3, 3, 1), (6,))),
        ([(5, 0, 5), (1, 5)], ((5, 0, 5), (1, 5))),
        ({0: 5}, ((5, 5), (6,))),
        ({-1: 2, 0: "auto"}, ((10,), (2, 2, 2))),
        ((np.int64(5), np.int8(3)), ((5, 5), (3, 3))),
    ],
)
def test_from_numpy_chunks(chunks: Any, expected: Any) -> None:
    a = np.arange(60.0).reshape(10, 6)
    d = xback.from_numpy(a, backend="dask", chunks=chunks)
    assert isinstance(d, da.Array) and d.chunks == expected
    _same(d.compute(), a)
    a[0, 0] = -1.0
    assert d[0, 0].compute() == -1.0  # zero-copy: chunks are views of the caller's array
    c = xback.from_numpy(a, backend="dask", chunks=chunks, copy=True)
    a[0, 0] = 0.0
    assert c[0, 0].compute() == -1.0
    with xback.use("dask"):
        assert xback.from_numpy(a, chunks=chunks).chunks == expected


def test_from_numpy_chunks_edge_shapes() -> None:
    assert xback.from_numpy(np.arange(10), backend="dask", chunks=(3, 3, 4)).chunks == (
        (3, 3, 4),
    )  # 1-D: the chunk lengths, as dask.array.from_array takes them
    assert xback.from_numpy(np.arange(10), backend="dask", chunks=(3,)).chunks == (
        (3, 3, 3, 1),
    )
    z = xback.from_numpy(np.float32(2.5), backend="dask", chunks=())
    assert z.chunks == () and z.compute() == 2.5
    assert xback.from_numpy(np.zeros((0, 3)), backend="dask", chunks=2).chunks == ((0,), (2, 1))


@pytest.mark.parametrize(
    ("chunks", "message"),
    [
        ((3,), r"1 entries for 2 axes"),
        (((5, 4), 6), r"add up to 9, not to its length 10"),
        (((5, -1, 6), 6), r"negative chunk lengths"),
        (0, r"chunk length 0; it must be >= 1, or -1"),
        ((2, -3), r"axis 1: chunk length -3"),
        ({2: 3}, r"axis 2 is out of bounds for 2 axes"),
        ({0: 2, -2: 3}, r"axis 0 is given twice"),
        (("x", 2), r"the only string per axis is 'auto'"),
        ("lots", r"Could not interpret 'lots'"),
    ],
)
def test_from_numpy_invalid_chunks_raise_valueerror(chunks: Any, message: str) -> None:
    a = np.zeros((10, 6))
    pattern = r"chunks=.* is not valid for an array of shape \(10, 6\): .*" + message
    with pytest.raises(ValueError, match=pattern + r".*'auto'"):
        xback.from_numpy(a, backend="dask", chunks=chunks)


@pytest.mark.parametrize(
    "chunks", [True, 2.5, object(), (None, 2), ((5, 5.0), 6), ((True, 9), 6), {"a": 1}]
)
def test_from_numpy_chunks_of_wrong_type_raise_typeerror(chunks: Any) -> None:
    with pytest.raises(TypeError, match=r"chunks|axes"):
        xback.from_numpy(np.zeros((10, 6)), backend="dask", chunks=chunks)


@pytest.mark.parametrize("backend", ["numpy", "torch", None])
def test_from_numpy_chunks_need_a_chunked_backend(backend: str | None) -> None:
    if backend == "torch":
        pytest.importorskip("torch")
    with pytest.raises(TypeError, match=r"chunked backends \(dask\).*backend='dask'"):
        xback.from_numpy(np.zeros(3), backend=backend, chunks=2)


def test_device_rules() -> None:
    d = da.from_array(np.arange(3.0))
    _same(_lazy(xback.sort(d, device="cpu")), np.arange(3.0))
    with pytest.raises(ValueError, match="CPU only"):
        xback.sort(d, device="cuda")


def test_dispatch_never_imports_dask() -> None:
    code = (
        "import sys, numpy as np, xback\n"
        "xback.sort(np.array([2.0, 1.0])); xback.lstsq_grad(np.eye(2), np.ones(2), np.ones(2))\n"
        "xback.svd(np.eye(2))\n"
        "try:\n    xback.sort(object())\nexcept TypeError:\n    pass\n"
        "assert 'dask' not in sys.modules, 'dask imported'\n"
        "assert 'xback.backends.dask' not in sys.modules\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


# -- lstsq_grad, lstsq_grad_fn ----------------------------------------------------------------
def _problem(m: int, n: int, k: int | None, dtype: str) -> tuple[Any, Any, Any]:
    def r(*shape: int) -> Any:
        z = RNG.standard_normal(shape)
        if dtype.startswith("complex"):
            z = z + 1j * RNG.standard_normal(shape)
        return z.astype(dtype)

    A = r(m, n)
    return (A, r(n), r(m)) if k is None else (A, r(n, k), r(m, k))


def _tol(dtype: str) -> dict[str, Any]:
    return {"rtol": 1e-4, "atol": 1e-3} if dtype in ("float32", "complex64") else {
        "rtol": 1e-10, "atol": 1e-10
    }


@pytest.mark.parametrize("dtype", ["float64", "float32", "complex128"])
@pytest.mark.parametrize("k", [None, 3])
@pytest.mark.parametrize("col_chunks", [-1, 2])
def test_lstsq_grad_matches_numpy(dtype: str, k: int | None, col_chunks: int) -> None:
    A, x, y = _problem(53, 5, k, dtype)
    dA = da.from_array(A, chunks=(7, col_chunks))
    dx = da.from_array(x)
    dy = da.from_array(y, chunks=(11,) + ((2,) if k else ()))  # unlike A's rows
    got = _lazy(xback.lstsq_grad(dA, dx, dy))
    want = xback.lstsq_grad(A, x, y)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_allclose(got, want, **_tol(dtype))
    g = xback.lstsq_grad_fn(dA, dy)
    np.testing.assert_allclose(_lazy(g(dx)), want, **_tol(dtype))


def test_lstsq_grad_mixed_inputs_and_edge_shapes() -> None:
    A, x, y = _problem(20, 4, None, "float64")
    dA = da.from_array(A, chunks=(3, 4))
    # NumPy x, y with a dask A: brought in by backend="dask"
    got = _lazy(xback.lstsq_grad(dA, x, y, backend="dask"))
    np.testing.assert_allclose(got, xback.lstsq_grad(A, x, y), rtol=1e-12)
    # empty rows: the gradient is zero
    z = da.from_array(np.zeros((0, 4)))
    _same(_lazy(xback.lstsq_grad(z, da.from_array(x), da.from_array(np.zeros(0)))),
          np.zeros(4))


def test_lstsq_grad_batched_falls_back_lazily() -> None:
    A = RNG.standard_normal((2, 12, 3))
    X = RNG.standard_normal((2, 3, 2))
    Y = RNG.standard_normal((2, 12, 2))
    dA = da.from_array(A, chunks=(1, 4, 3))
    got = _lazy(xback.lstsq_grad(dA, da.from_array(X), da.from_array(Y)))
    np.testing.assert_allclose(got, xback.lstsq_grad(A, X, Y), rtol=1e-12)
    x, y = RNG.standard_normal(3), RNG.standard_normal(12)
    got = _lazy(xback.lstsq_grad(dA, da.from_array(x), da.from_array(y)))
    np.testing.assert_allclose(got, xback.lstsq_grad(A, x, y), rtol=1e-12)
    g = xback.lstsq_grad_fn(dA, da.from_array(Y))
    np.testing.assert_allclose(_lazy(g(da.from_array(X))), xback.lstsq_grad(A, X, Y),
                               rtol=1e-10)


def _dependents(graph: Any, key: Any) -> int:
    from dask.core import get_dependencies

    dsk = dict(graph)
    return sum(key in get_dependencies(dsk, k) for k in dsk)


def test_lstsq_grad_reads_each_block_of_A_once() -> None:
    A, x, y = _problem(40, 4, None, "float64")
    dA = da.from_array(A, chunks=(5, 4))
    g = xback.lstsq_grad(dA, da.from_array(x), da.from_array(y, chunks=5))
    graph = g.__dask_graph__()
    for key in dA.__dask_keys__():
        assert _dependents(graph, key[0]) == 1  # one task per row block: one pass over A


# -- svd, svdvals -----------------------------------------------------------------------------
@pytest.mark.parametrize("dtype", ["float64", "float32", "complex128"])
def test_svd_tall_skinny_tsqr_matches_numpy(dtype: str) -> None:
    A, _, _ = _problem(60, 5, None, dtype)
    dA = da.from_array(A, chunks=(7, -1))
    U, S, Vh = xback.svd(dA, full_matrices=False, canonical_signs=True)
    U0, S0, Vh0 = xback.svd(A, full_matrices=False, canonical_signs=True)
    tol = _tol(dtype)
    for got, want in ((U, U0), (S, S0), (Vh, Vh0)):
        got = _lazy(got)
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_allclose(got, want, **tol)
    np.testing.assert_allclose(_lazy(xback.svdvals(dA)), S0, **tol)
    # without canonical signs: a valid decomposition
    U, S, Vh = (_lazy(t) for t in xback.svd(dA, full_matrices=False))
    np.testing.assert_allclose((U * S) @ Vh, A, **tol)


@pytest.mark.parametrize("shape", [(6, 4), (4, 6), (3, 5, 2)])
@pytest.mark.parametrize("full_matrices", [True, False])
def test_svd_one_chunk_matrices_match_numpy(shape: tuple[int, ...], full_matrices: bool) -> None:
    x = RNG.standard_normal(shape)
    chunks = (1,) * (len(shape) - 2) + (-1, -1)  # stacks chunked along the batch axis
    d = da.from_array(x, chunks=chunks)
    got = xback.svd(d, full_matrices=full_matrices, canonical_signs=True)
    want = xback.svd(x, full_matrices=full_matrices, canonical_signs=True)
    for g, w in zip(got, want):
        np.testing.assert_allclose(_lazy(g), w, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(_lazy(xback.svdvals(d)), want[1], rtol=1e-12)


def test_svd_layouts_it_cannot_do_exactly_raise() -> None:
    A = RNG.standard_normal((40, 4))
    with pytest.raises(ValueError, match=r"thin factors.*full_matrices=False"):
        xback.svd(da.from_array(A, chunks=(10, -1)))  # full_matrices=True by default
    with pytest.raises(ValueError, match=r"\(40, 4\).*rechunk\(\{1: -1\}\)"):
        xback.svd(da.from_array(A, chunks=(10, 2)), full_matrices=False)
    with pytest.raises(ValueError, match=r"\(4, 40\).*x\.T"):
        xback.svdvals(da.from_array(A.T, chunks=(2, -1)))
    with pytest.raises(ValueError, match=r"one chunk"):
        xback.svdvals(da.from_array(RNG.standard_normal((2, 8, 3)), chunks=(1, 4, 3)))


def test_svd_nonfinite_raises() -> None:
    A = RNG.standard_normal((20, 3))
    A[5, 1] = np.nan
    with pytest.raises(ValueError, match="non-finite"):
        xback.svdvals(da.from_array(A, chunks=(5, -1)))


@pytest.fixture(scope="module")
def client() -> Iterator[Any]:
    distributed = pytest.importorskip("distributed")
    cluster = distributed.LocalCluster(
        processes=False, n_workers=1, threads_per_worker=2, dashboard_address=":0",
    )
    cl = distributed.Client(cluster)
    try:
        yield cl
    finally:
        cl.close()
        cluster.close()


def test_lstsq_grad_on_local_cluster(client: Any) -> None:
    A, X, Y = _problem(64, 6, 2, "float64")
    dA = da.from_array(A, chunks=(8, 3))
    g = xback.lstsq_grad(dA, da.from_array(X), da.from_array(Y, chunks=(16, 2)))
    got = client.compute(g).result()
    np.testing.assert_allclose(got, xback.lstsq_grad(A, X, Y), rtol=1e-10)
    fn = xback.lstsq_grad_fn(dA, da.from_array(Y, chunks=(8, 2)))  # persisted on the cluster
    np.testing.assert_allclose(
        client.compute(fn(da.from_array(X))).result(), xback.lstsq_grad(A, X, Y), rtol=1e-9
    )
    s = xback.argsort(da.from_array(X.ravel(), chunks=5), descending=True)  # sample sort
    _same(client.compute(s).result(), xback.argsort(X.ravel(), descending=True))


def test_lstsq_grad_and_sort_on_worker_processes() -> None:
    """Graphs of the dask backend pickle: they run in separate worker processes."""
    distributed = pytest.importorskip("distributed")
    A, x, y = _problem(48, 4, None, "float64")
    a = np.concatenate([A.ravel(), A.ravel()[:50]])
    # distributed's nanny sets OMP_NUM_THREADS=1 (and MKL's, OpenBLAS's) in this process's
    # environment for the workers it spawns: restored after, so that later tests' child
    # processes run with the thread settings of the machine
    environ = dict(os.environ)
    with distributed.LocalCluster(
        processes=True, n_workers=1, threads_per_worker=1, host="127.0.0.1",
        dashboard_address=":0",
    ) as cluster, distributed.Client(cluster) as cl:
        try:
            g = xback.lstsq_grad(xback.from_numpy(A, backend="dask").rechunk((8, 4)), x, y,
                                 backend="dask")
            np.testing.assert_allclose(cl.compute(g).result(), xback.lstsq_grad(A, x, y),
                                       rtol=1e-10)
            s = xback.sort(da.from_array(a, chunks=40))
            _same(cl.compute(s).result(), xback.sort(a))
        finally:
            os.environ.clear()
            os.environ.update(environ)
