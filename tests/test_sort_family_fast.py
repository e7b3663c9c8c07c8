"""The sort family's fast paths (issue 22, performance): NumPy's order statistics one
partition at a time, searchsorted with the queries in sorted order, and the torch backend's
NumPy selection on zero-copy views of plain CPU tensors. Each is checked against an
independent reference at the edges (NaN, +-inf, -0.0, ties, empty, dtypes), and the torch
paths for where they must NOT run (autograd, torch.func, meta, neg/conj views)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

import xback
from tests.conftest import HAS_TORCH, requires_torch
from tests.test_sort import bits, oracle_argsort
from xback.backends import _numpy_family

if HAS_TORCH:
    import torch

    from xback.backends import _torch_family

pytestmark = pytest.mark.filterwarnings("ignore::UserWarning", "ignore::RuntimeWarning")
nan, inf = math.nan, math.inf
EDGE = np.array([0.0, -0.0, 1.0, 1.0, -inf, inf, nan, 2.5, -1.0, nan, 0.0, 1.0])


def _edge(n: int, seed: int, dtype: Any = np.float64) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.choice(EDGE, size=n).astype(dtype)


# -- NumPy order statistics -------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float16, np.float32, np.float64, np.int64])
def test_numpy_order_statistics_against_a_full_sort(dtype: Any) -> None:
    rng = np.random.default_rng(1)
    for trial in range(400):
        n = int(rng.integers(1, 14))
        lead = tuple(int(v) for v in rng.integers(1, 4, size=int(rng.integers(0, 3))))
        a = rng.choice(EDGE if dtype != np.int64 else np.arange(-3.0, 4.0), size=(*lead, n))
        a = a.astype(dtype)
        kth = sorted(set(rng.integers(0, n, size=int(rng.integers(1, 5))).tolist()))
        if trial % 4 == 0:
            kth = sorted({(n - 1) // 2, n // 2, n - 1})  # median's statistics
        got = _numpy_family.order_statistics(a, kth)
        want = np.sort(a, axis=-1)[..., kth]
        assert got.dtype == a.dtype and got.shape == want.shape
        np.testing.assert_array_equal(got, want)


def test_numpy_order_statistics_next_after_nan() -> None:
    # the smallest above the k-th is a number although NaN is in the part above
    a = np.array([[5.0, nan, 1.0, 3.0, nan, 2.0], [nan, nan, nan, 1.0, 0.0, nan]])
    np.testing.assert_array_equal(_numpy_family.order_statistics(a, [1, 2, 5]),
                                  np.sort(a, axis=-1)[:, [1, 2, 5]])


# -- searchsorted with the queries sorted ----------------------------------------------
def _search_case(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x1 = np.sort(rng.choice(EDGE, size=3000))
    x1[rng.integers(0, 3000, 50)] = rng.standard_normal(50)
    x1 = np.sort(x1)
    q = np.concatenate([rng.choice(EDGE, size=15_000), rng.standard_normal(15_000)])
    return x1, q, rng.permutation(x1.shape[0])


@pytest.mark.parametrize("side", ["left", "right"])
def test_searchsorted_many_queries_numpy(side: str) -> None:
    x1, q, perm = _search_case(2)
    want = np.searchsorted(x1, q, side=side)  # direct: NumPy's NaN order is the sort's
    got = xback.searchsorted(x1, q, side=side)
    assert got.dtype == np.int64
    np.testing.assert_array_equal(got, want)
    shuffled = x1[perm]
    sorter = np.argsort(shuffled, kind="stable")
    np.testing.assert_array_equal(xback.searchsorted(shuffled, q, side=side, sorter=sorter),
                                  want)
    q2 = q.reshape(2, -1)
    np.testing.assert_array_equal(
        xback.searchsorted(np.stack([x1, x1]), q2, side=side), want.reshape(2, -1))


@requires_torch
@pytest.mark.parametrize("side", ["left", "right"])
def test_searchsorted_many_queries_torch(side: str) -> None:
    x1, q, perm = _search_case(3)
    want = np.searchsorted(x1, q, side=side)
    t1, tq = torch.from_numpy(x1), torch.from_numpy(q)
    got = xback.searchsorted(t1, tq, side=side)
    assert got.dtype == torch.int64
    np.testing.assert_array_equal(got.numpy(), want)
    # requires_grad inputs, float32 queries (promoted), a sorter, a non-contiguous x1
    g = t1.clone().requires_grad_()
    np.testing.assert_array_equal(xback.searchsorted(g, tq, side=side).numpy(), want)
    shuffled = torch.from_numpy(x1[perm])
    sorter = torch.from_numpy(np.argsort(x1[perm], kind="stable"))
    np.testing.assert_array_equal(
        xback.searchsorted(shuffled, tq, side=side, sorter=sorter).numpy(), want)
    wide = torch.from_numpy(np.repeat(x1, 2))[::2]
    assert not wide.is_contiguous()
    np.testing.assert_array_equal(xback.searchsorted(wide, tq, side=side).numpy(), want)
    want32 = np.searchsorted(x1, q.astype(np.float32).astype(np.float64), side=side)
    np.testing.assert_array_equal(
        xback.searchsorted(t1, tq.float(), side=side).numpy(), want32)


# -- torch: NumPy's selection on zero-copy views -----------------------------------------
@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """How often the torch backend handed work to the NumPy backend's functions."""
    seen = {"order_statistics": 0, "top_k": 0, "unique": 0, "searchsorted": 0}
    for name in seen:
        real = getattr(_numpy_family, name)

        def spy(*a: Any, _real: Any = real, _name: str = name) -> Any:
            seen[_name] += 1
            return _real(*a)

        monkeypatch.setattr(_numpy_family, name, spy)
    # median and quantile of a torch view run whole on the NumPy backend (whose selection
    # is bound at class creation): counted as its order statistics
    from xback.backends.numpy import BACKEND as NUMPY

    for name in ("median", "quantile"):
        real = getattr(NUMPY, name)

        def spy_np(*a: Any, _real: Any = real) -> Any:
            seen["order_statistics"] += 1
            return _real(*a)

        monkeypatch.setattr(NUMPY, name, spy_np)
    return seen


def _q_ref(a: np.ndarray, q: Any, axis: Any = None, nan_skip: bool = False) -> np.ndarray:
    f = np.nanquantile if nan_skip else np.quantile
    return np.asarray(f(a.astype(np.float64), q, axis=axis))


@requires_torch
def test_torch_quantile_fast_path_edges(calls: dict[str, int]) -> None:
    for seed in range(6):
        a = _edge(101 + seed, seed)
        if seed % 2:
            a = a[np.isfinite(a) | np.isinf(a) & (seed % 3 == 0)]  # some rows NaN-free
        t = torch.from_numpy(a)
        for q in (0.0, 0.3, 0.5, 1.0, [0.1, 0.5, 0.9]):
            got = xback.quantile(t, q).numpy()
            np.testing.assert_allclose(got, _q_ref(a, q), equal_nan=True, rtol=1e-12)
        np.testing.assert_allclose(xback.median(t).numpy(), np.median(a), equal_nan=True)
        np.testing.assert_allclose(xback.nanmedian(t).numpy(), np.nanmedian(a),
                                   equal_nan=True)
    assert calls["order_statistics"] > 0
    # -0.0 and 0.0 are one value; ties
    t = torch.tensor([0.0, -0.0, -0.0, 0.0, 1.0, 1.0])
    assert xback.median(t).item() == 0.0 and xback.quantile(t, 1.0).item() == 1.0


@requires_torch
def test_torch_quantile_fast_path_dtypes_and_layouts(calls: dict[str, int]) -> None:
    ints = torch.tensor([[4, 1, 3, 2], [7, 7, 0, 7]])
    r = xback.quantile(ints, 0.5, axis=1)
    assert r.dtype == torch.float64 and r.tolist() == [2.5, 7.0]
    b = xback.median(torch.tensor([True, False, True]))
    assert b.dtype == torch.float64 and b.item() == 1.0
    for dt in (torch.float16, torch.bfloat16):
        x = torch.tensor([3.0, 1.0, 2.0, 8.0], dtype=dt)
        m = xback.median(x)
        assert m.dtype == dt and m.item() == 2.5
    e = xback.median(torch.zeros((3, 0)), axis=1)
    assert e.shape == (3,) and torch.isnan(e).all()
    base = torch.from_numpy(np.random.default_rng(0).standard_normal((6, 9)))
    for x in (base.T, base[:, ::2]):  # non-contiguous
        assert not x.is_contiguous()
        np.testing.assert_allclose(xback.quantile(x, [0.2, 0.7], axis=0).numpy(),
                                   np.quantile(x.numpy(), [0.2, 0.7], axis=0), rtol=1e-12)
    assert calls["order_statistics"] > 0


@requires_torch
def test_torch_fast_paths_not_taken_where_they_must_not(calls: dict[str, int]) -> None:
    x = torch.tensor([3.0, 1.0, 2.0, 5.0, 4.0], dtype=torch.float64, requires_grad=True)
    m = xback.median(x)
    assert m.requires_grad
    m.backward()
    assert x.grad is not None and x.grad.tolist() == [1.0, 0.0, 0.0, 0.0, 0.0]
    v, _ = xback.top_k(x, 2)
    assert v.requires_grad
    # torch.func: the values are wrappers NumPy cannot read
    g = torch.func.grad(lambda t: xback.quantile(t, 0.25))(x.detach())
    assert g.tolist() == [0.0, 0.0, 1.0, 0.0, 0.0]
    meta = torch.empty(7, device="meta")
    assert xback.median(meta).device.type == "meta"
    assert xback.top_k(meta, 2).indices.device.type == "meta"
    assert calls == {"order_statistics": 0, "top_k": 0, "unique": 0, "searchsorted": 0}
    neg = torch._neg_view(torch.tensor([1.0, 3.0, 2.0]))
    assert neg.is_neg() and _torch_family._numpy_view(neg) is None
    assert xback.median(neg).item() == -2.0


@requires_torch
@pytest.mark.parametrize("largest", [True, False])
def test_torch_top_k_fast_path(calls: dict[str, int], largest: bool) -> None:
    for seed, dt in enumerate((np.float64, np.float32, np.float16, np.int64, np.int8,
                               np.uint8, np.bool_)):
        a = _edge(500, seed)
        if dt in (np.int64, np.int8, np.uint8, np.bool_):
            a = np.nan_to_num(a, nan=3.0, posinf=5.0, neginf=-2.0)
            a = np.abs(a) if dt == np.uint8 else a
        a = a.astype(dt)
        t = torch.from_numpy(a)
        for k in (1, 3, 60, 499):
            v, i = xback.top_k(t, k, largest=largest)
            ref_i = oracle_argsort(a, 0, largest)[:k]
            assert i.dtype == torch.int64 and v.dtype == t.dtype
            np.testing.assert_array_equal(i.numpy(), ref_i)
            np.testing.assert_array_equal(bits(v.numpy()), bits(a[ref_i]))
    strided = torch.from_numpy(_edge(400, 9))[::2]
    np.testing.assert_array_equal(xback.top_k(strided, 5, largest=largest).indices.numpy(),
                                  oracle_argsort(strided.numpy(), 0, largest)[:5])
    assert calls["top_k"] > 0


@requires_torch
def test_torch_unique_fast_path(calls: dict[str, int]) -> None:
    for a in (_edge(300, 4), np.array([3, 1, 3, 0, 1], dtype=np.int64),
              np.array([True, False, True]), np.zeros(0)):
        t = torch.from_numpy(a)
        for equal_nan in (False, True):
            want = xback.unique_all(a, equal_nan=equal_nan)
            got = xback.unique_all(t, equal_nan=equal_nan)
            for w, g in zip(want, got):
                assert g.dtype == torch.from_numpy(np.asarray(w)).dtype
                np.testing.assert_array_equal(bits(g.numpy()), bits(np.asarray(w)))
    assert calls["unique"] > 0
    v = xback.unique_values(torch.tensor([0.0, -0.0, nan, nan]))
    assert v.shape == (3,) and v[0].item() == 0.0
