"""The sort family (issue 22): top_k, searchsorted, unique_*, quantile/median, rankdata, on
every backend, against independent references: Python's ``sorted`` (the sort oracle of
tests/test_sort.py), ``numpy.quantile`` in float64, ``scipy.stats.rankdata`` and a Python
grouping for unique (with explicit NaN handling).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import xback
from tests.conftest import HAS_TORCH, Target, requires_torch
from tests.test_sort import ALL_DTYPES, BF16, _key, arrays, bits, oracle_argsort, pool

if HAS_TORCH:
    import torch

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")
fixture_ok = settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
few = settings(
    max_examples=20,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
nan, inf = math.nan, math.inf
REAL = [d for d in ALL_DTYPES if d.kind != "c"]
QMETHODS = [
    "inverted_cdf", "averaged_inverted_cdf", "closest_observation", "interpolated_inverted_cdf",
    "hazen", "weibull", "linear", "median_unbiased", "normal_unbiased", "lower", "higher",
    "midpoint", "nearest",
]  # fmt: skip


def _kind(a: np.ndarray) -> str:
    return "f" if a.dtype == BF16 else a.dtype.kind


def _items(row: np.ndarray) -> list[Any]:
    if _kind(row) == "f":
        return [float(v) for v in row.astype(np.float64)]
    return row.tolist()


# -- top_k ---------------------------------------------------------------------------------
@few
@given(case=arrays(), largest=st.booleans(), data=st.data())
def test_top_k_is_the_first_k_of_the_stable_sort(
    target: Target, case: Any, largest: bool, data: Any
) -> None:
    a, axis = case
    n = a.size if axis is None else a.shape[axis]
    k = data.draw(st.integers(0, n))
    x = target.make(a)
    v, i = xback.top_k(x, k, axis=axis, largest=largest)
    ref_i = oracle_argsort(a, axis, largest)
    ax = 0 if axis is None else axis
    ref_i = np.take(ref_i, np.arange(k), axis=ax)
    ref_v = np.take_along_axis(a.reshape(-1) if axis is None else a, ref_i, ax)
    assert target.dtype_of(i) == np.int64 and target.dtype_of(v) == a.dtype
    assert tuple(v.shape) == ref_v.shape == tuple(i.shape)
    if target.has_data:
        np.testing.assert_array_equal(target.numpy(i), ref_i)
        np.testing.assert_array_equal(bits(target.numpy(v)), bits(ref_v))


@pytest.mark.parametrize("largest", [True, False])
def test_top_k_issue_examples(data_target: Target, largest: bool) -> None:
    x = data_target.make(np.array([1, nan, 3, 3, nan, 2]))
    v, i = xback.top_k(x, 3, largest=largest)
    want = [2, 3, 5] if largest else [0, 5, 2]
    assert data_target.numpy(i).tolist() == want
    x = data_target.make(np.array([5, 1, 5, 5, 0, 5]))
    assert data_target.numpy(xback.top_k(x, 3, largest=largest).indices).tolist() == (
        [0, 2, 3] if largest else [4, 1, 0]
    )
    # NaN taken only when fewer than k numbers remain, in input order
    x = data_target.make(np.array([nan, 1.0, nan, 0.0]))
    assert data_target.numpy(xback.top_k(x, 4, largest=largest).indices).tolist() == (
        [1, 3, 0, 2] if largest else [3, 1, 0, 2]
    )


def test_top_k_boundary_ties_large(data_target: Target) -> None:
    rng = np.random.default_rng(0)
    a = rng.integers(0, 5, size=(3, 400)).astype(np.float64)
    a[0, ::7] = nan
    a[1, 5] = -0.0
    x = data_target.make(a)
    for largest in (True, False):
        for k in (1, 37, 150, 399):
            i = data_target.numpy(xback.top_k(x, k, largest=largest).indices)
            np.testing.assert_array_equal(i, oracle_argsort(a, 1, largest)[:, :k])


def test_top_k_errors(target: Target) -> None:
    x = target.make(np.arange(5.0))
    with pytest.raises(ValueError, match=r"k=6.*|.*5.*k=6"):
        xback.top_k(x, 6)
    with pytest.raises(ValueError, match="k=-1"):
        xback.top_k(x, -1)
    with pytest.raises(TypeError, match="bool"):
        xback.top_k(x, True)
    with pytest.raises(TypeError, match="k must be an int"):
        xback.top_k(x, 2.0)
    with pytest.raises(TypeError, match="alias"):
        xback.top_k(x, 2, axis=0, dim=0)
    assert tuple(xback.top_k(x, np.int64(2), dim=0).values.shape) == (2,)
    with pytest.raises(np.exceptions.AxisError):
        xback.top_k(x, 1, axis=1)


@requires_torch
def test_top_k_torch_grad() -> None:
    t = torch.tensor([3.0, 1.0, 2.0, 5.0], requires_grad=True)
    v, _ = xback.top_k(t, 2)
    v.sum().backward()
    assert t.grad is not None and t.grad.tolist() == [1.0, 0.0, 0.0, 1.0]


# -- searchsorted --------------------------------------------------------------------------
def _count_before(row: list[Any], v: Any, kind: str, right: bool) -> int:
    kv = _key(v, kind, False)
    keys = [_key(e, kind, False) for e in row]
    return sum(1 for e in keys if (e <= kv if right else e < kv))


@few
@given(dtype=st.sampled_from(ALL_DTYPES), data=st.data(), right=st.booleans(),
       use_sorter=st.booleans(), batch=st.booleans())
def test_searchsorted_matches_counting(
    data_target: Target, dtype: np.dtype, data: Any, right: bool, use_sorter: bool, batch: bool
) -> None:
    p = pool(dtype)
    lead = (2,) if batch else ()
    n, m = data.draw(st.integers(0, 7)), data.draw(st.integers(0, 5))

    def draw(size: int) -> np.ndarray:
        if dtype.kind == "c":
            v = [complex(data.draw(st.sampled_from(p)), data.draw(st.sampled_from(p)))
                 for _ in range(size)]
            return np.array(v, dtype=np.complex128).astype(dtype)
        v = data.draw(st.lists(st.sampled_from(p), min_size=size, max_size=size))
        return np.array(v, dtype=np.float64 if dtype.kind == "f" or dtype == BF16 else dtype
                        ).astype(dtype)

    raw = draw(int(np.prod(lead, dtype=int)) * n).reshape((*lead, n))
    order = oracle_argsort(raw, -1 if raw.ndim else None, False) if raw.size else np.zeros(
        raw.shape, np.int64)
    srt = np.take_along_axis(raw, order, -1)
    q = draw(int(np.prod(lead, dtype=int)) * m).reshape((*lead, m))
    x1 = data_target.make(raw if use_sorter else srt)
    kw: dict[str, Any] = {"side": "right" if right else "left"}
    if use_sorter:
        kw["sorter"] = data_target.make(order)
    got = data_target.numpy(xback.searchsorted(x1, data_target.make(q), **kw))
    assert got.dtype == np.int64 and got.shape == q.shape
    kind = _kind(srt)
    rows_s = list(srt) if batch else [srt]
    rows_q = list(q) if batch else [q]
    want = [[_count_before(_items(rs), v, kind, right) for v in _items(rq)]
            for rs, rq in zip(rows_s, rows_q)]
    np.testing.assert_array_equal(got, np.array(want, dtype=np.int64).reshape(q.shape))


def test_searchsorted_nan_and_promotion(data_target: Target) -> None:
    x1 = data_target.make(np.array([1.0, 2.0, 3.0, nan, nan]))
    q = data_target.make(np.array([nan, 2.0, inf]))
    assert data_target.numpy(xback.searchsorted(x1, q)).tolist() == [3, 1, 3]
    assert data_target.numpy(xback.searchsorted(x1, q, side="right")).tolist() == [5, 2, 3]
    xi = data_target.make(np.array([1, 2, 3], dtype=np.int32))
    r = xback.searchsorted(xi, 2.5)
    assert tuple(r.shape) == () and int(data_target.numpy(r)) == 2
    r = xback.searchsorted(xi, data_target.make(np.array([[1.5], [3.0]])), side="right")
    assert data_target.numpy(r).tolist() == [[1], [3]]


def test_searchsorted_errors(target: Target) -> None:
    x1 = target.make(np.zeros((2, 3)))
    with pytest.raises(ValueError, match="side"):
        xback.searchsorted(x1, target.make(np.zeros((2, 1))), side="middle")
    with pytest.raises(ValueError, match=r"\(2, 3\).*\(3, 1\)"):
        xback.searchsorted(x1, target.make(np.zeros((3, 1))))
    with pytest.raises(ValueError, match="0-d"):
        xback.searchsorted(target.make(np.float64(1.0)), 1.0)
    r = xback.searchsorted(x1, target.make(np.zeros((2, 4))))
    assert tuple(r.shape) == (2, 4) and target.dtype_of(r) == np.int64


# -- unique --------------------------------------------------------------------------------
def _unique_oracle(a: np.ndarray, equal_nan: bool) -> tuple[list[int], list[int], list[int]]:
    """(first indices, inverse, counts) by Python grouping; NaNs distinct unless equal_nan."""
    kind = _kind(a)
    flat = a.reshape(-1)
    items = _items(flat)

    def sk(i: int) -> Any:  # the stable sort's key
        return (*_key(items[i], kind, False), i)

    def key(i: int) -> Any:
        k = _key(items[i], kind, False)
        isnan = kind in "fc" and bool(k[0])  # float: (isnan, v); complex: (NaN group, ...)
        if isnan:
            return (9,) if equal_nan else (8, sk(i))
        return k

    groups: dict[Any, list[int]] = {}
    for i in sorted(range(len(items)), key=sk):
        groups.setdefault(key(i), []).append(i)
    ordered = sorted(groups, key=lambda g: sk(groups[g][0]))
    first = [groups[g][0] for g in ordered]
    inverse = [0] * len(items)
    for gi, g in enumerate(ordered):
        for i in groups[g]:
            inverse[i] = gi
    return first, inverse, [len(groups[g]) for g in ordered]


@few
@given(case=arrays(), equal_nan=st.booleans())
def test_unique_matches_grouping(data_target: Target, case: Any, equal_nan: bool) -> None:
    a, _ = case
    x = data_target.make(a)
    first, inverse, counts = _unique_oracle(a, equal_nan)
    r = xback.unique_all(x, equal_nan=equal_nan)
    got_i = data_target.numpy(r.indices)
    assert got_i.dtype == np.int64 and got_i.tolist() == first
    np.testing.assert_array_equal(bits(data_target.numpy(r.values)), bits(a.reshape(-1)[first]))
    inv = data_target.numpy(r.inverse_indices)
    assert inv.shape == a.shape and inv.reshape(-1).tolist() == inverse
    assert data_target.numpy(r.counts).tolist() == counts
    v = data_target.numpy(xback.unique_values(x, equal_nan=equal_nan))
    np.testing.assert_array_equal(bits(v), bits(a.reshape(-1)[first]))
    c = xback.unique_counts(x, equal_nan=equal_nan)
    assert data_target.numpy(c.counts).tolist() == counts
    iv = xback.unique_inverse(x, equal_nan=equal_nan)
    assert data_target.numpy(iv.inverse_indices).reshape(-1).tolist() == inverse


def test_unique_pinned(data_target: Target) -> None:
    x = data_target.make(np.array([2.0, nan, -0.0, 0.0, nan, 2.0]))
    v = data_target.numpy(xback.unique_values(x))
    assert np.isnan(v[2:]).all() and v[:2].tolist() == [0.0, 2.0] and np.signbit(v[0])
    assert data_target.numpy(xback.unique_counts(x, equal_nan=True).counts).tolist() == [2, 2, 2]
    r = xback.unique_all(data_target.make(np.array([[3, 1], [3, 2]], dtype=np.uint16)))
    assert data_target.numpy(r.inverse_indices).tolist() == [[2, 0], [2, 1]]
    assert data_target.numpy(r.indices).tolist() == [1, 3, 0]
    assert isinstance(r, xback.UniqueAllResult)


# -- quantile / median ---------------------------------------------------------------------
@st.composite
def real_arrays(draw: st.DrawFn) -> tuple[np.ndarray, Any]:
    a, axis = draw(arrays(REAL))
    if a.dtype == np.uint64:
        a = (a % 1000).astype(np.uint64)  # exact in float64 (the reference's dtype)
    if a.dtype.kind in "iu" and a.dtype.itemsize == 8:
        a = np.clip(a, -(2**52), 2**52).astype(a.dtype)
    return a, axis


def _tol(dt: np.dtype) -> dict[str, float]:
    if dt.itemsize == 2 and dt.kind in "fV":
        return {"rtol": 1e-2, "atol": 1e-2}
    if dt == np.float32:
        return {"rtol": 1e-5, "atol": 1e-5}
    return {"rtol": 1e-12, "atol": 1e-12}


def _ref_quantile(a: np.ndarray, q: Any, axis: Any, method: str, skipna: bool,
                  keepdims: bool) -> np.ndarray:
    f = a.astype(np.float64)
    axis = None if axis is None else axis % a.ndim
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if (f.size == 0 if axis is None else f.shape[axis] == 0):
            out = np.quantile(np.zeros((*f.shape[:axis], 1, *f.shape[axis + 1 :]))
                              if axis is not None else np.zeros((1,) * f.ndim), q, axis=axis,
                              keepdims=keepdims) * nan
            return np.asarray(out)
        fn = np.nanquantile if skipna else np.quantile
        return np.asarray(fn(f, q, axis=axis, method=method, keepdims=keepdims))


@few
@given(case=real_arrays(), method=st.sampled_from(QMETHODS), skipna=st.booleans(),
       keepdims=st.booleans(), qs=st.one_of(
           st.sampled_from([0.0, 0.5, 1.0, 0.25, 0.1, 0.9]),
           st.lists(st.sampled_from([0.0, 0.3, 0.5, 0.75, 1.0]), min_size=1, max_size=3)))
def test_quantile_matches_numpy(target: Target, case: Any, method: str, skipna: bool,
                                keepdims: bool, qs: Any) -> None:
    a, axis = case
    x = target.make(a)
    fn = xback.nanquantile if skipna else xback.quantile
    r = fn(x, qs, axis=axis, method=method, keepdims=keepdims)
    ref = _ref_quantile(a, qs, axis, method, skipna, keepdims)
    want_dt = a.dtype if a.dtype.kind == "f" or a.dtype == BF16 else np.dtype(np.float64)
    assert target.dtype_of(r) == want_dt
    assert tuple(r.shape) == ref.shape
    if target.has_data:
        got = target.numpy(r).astype(np.float64)
        np.testing.assert_allclose(got, ref, equal_nan=True, **_tol(want_dt))


@few
@given(case=real_arrays(), skipna=st.booleans())
def test_median_matches_numpy(target: Target, case: Any, skipna: bool) -> None:
    a, axis = case
    x = target.make(a)
    r = (xback.nanmedian if skipna else xback.median)(x, axis=axis)
    f = a.astype(np.float64)
    axis = None if axis is None else axis % a.ndim
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        empty = f.size == 0 if axis is None else f.shape[axis] == 0
        ref = np.asarray((np.nanmedian if skipna else np.median)(
            f if not empty else np.full(f.shape if axis is None else
                                        (*f.shape[:axis], 1, *f.shape[axis + 1 :]), nan),
            axis=axis))
    assert tuple(r.shape) == ref.shape
    if target.has_data:
        want_dt = a.dtype if a.dtype.kind == "f" or a.dtype == BF16 else np.dtype(np.float64)
        np.testing.assert_allclose(target.numpy(r).astype(np.float64), ref, equal_nan=True,
                                   **_tol(want_dt))


def test_median_pinned(data_target: Target) -> None:
    x = data_target.make(np.array([1, 2, 3, 4]))
    assert float(data_target.numpy(xback.median(x))) == 2.5
    assert data_target.dtype_of(xback.median(x)) == np.float64
    x = data_target.make(np.array([[1.0, inf, nan], [3.0, 1.0, 2.0]]))
    assert data_target.numpy(xback.nanmedian(x, axis=1)).tolist() == [inf, 2.0]
    m = data_target.numpy(xback.median(x, axis=-1, keepdims=True))
    assert m.shape == (2, 1) and np.isnan(m[0, 0]) and m[1, 0] == 2.0


def test_quantile_errors(target: Target) -> None:
    x = target.make(np.arange(6.0).reshape(2, 3))
    for bad in (1.5, -0.1, [0.5, 2.0], nan):
        with pytest.raises(ValueError, match="q"):
            xback.quantile(x, bad)
    with pytest.raises(ValueError, match="q"):
        xback.quantile(x, [[0.5]])
    with pytest.raises(ValueError, match="method"):
        xback.quantile(x, 0.5, method="bogus")
    with pytest.raises(TypeError, match="alias"):
        xback.median(x, axis=0, dim=0)
    with pytest.raises(TypeError, match="complex"):
        xback.quantile(target.make(np.ones(3, np.complex128)), 0.5)
    r = xback.quantile(x, [0.1, 0.5], dim=1)
    assert tuple(r.shape) == (2, 2)


# -- rankdata ------------------------------------------------------------------------------
@few
@given(case=arrays(), method=st.sampled_from(["average", "min", "max", "dense", "ordinal"]),
       policy=st.sampled_from(["propagate", "omit"]))
def test_rankdata_matches_scipy(data_target: Target, case: Any, method: str, policy: str) -> None:
    stats = pytest.importorskip("scipy.stats")
    a, axis = case
    if a.ndim == 0:
        return
    ax = -1 if axis is None else axis
    ref_in = a.astype(np.float64) if a.dtype == BF16 else a
    ref = stats.rankdata(ref_in, method=method, axis=ax, nan_policy=policy)
    got = data_target.numpy(xback.rankdata(data_target.make(a), method=method, axis=ax,
                                           nan_policy=policy))
    assert got.dtype == ref.dtype and got.shape == ref.shape
    np.testing.assert_array_equal(got, ref)


def test_rankdata_pinned(target: Target) -> None:
    x = target.make(np.array([[10, 20, 20, 5], [1, 1, 1, 1]]))
    r = xback.rankdata(x, method="max", dim=1)
    assert target.dtype_of(r) == np.int64 and tuple(r.shape) == (2, 4)
    assert target.dtype_of(xback.rankdata(x)) == np.float64
    if target.has_data:
        assert target.numpy(r).tolist() == [[2, 4, 4, 1], [4, 4, 4, 4]]
        y = target.make(np.array([1.0, nan]))
        with pytest.raises(ValueError, match="nan"):
            xback.rankdata(y, nan_policy="raise")
    with pytest.raises(ValueError, match="method"):
        xback.rankdata(x, method="first")
    with pytest.raises(ValueError, match="nan_policy"):
        xback.rankdata(x, nan_policy="skip")


def test_exports() -> None:
    for name in ("top_k", "searchsorted", "unique_values", "unique_counts", "unique_inverse",
                 "unique_all", "quantile", "nanquantile", "median", "nanmedian", "rankdata",
                 "TopKResult", "UniqueAllResult", "UniqueCountsResult", "UniqueInverseResult"):
        assert name in xback.__all__ and hasattr(xback, name)
