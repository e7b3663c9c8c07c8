"""Adding a backend is one module with its differences and one registry line.

The module below defines a backend for :class:`PlugArray` (a NumPy array under another
type), which computes through array-api-compat's generic NumPy namespace: it writes only its
differences (which type it owns, conversion), inherits devices and dtypes from
:class:`~xback.backends.HostBackend`, and inherits sorting, the linear algebra and the sort
family from :class:`~xback.backends.Backend`'s defaults. The fixture registers it with one
line in :data:`xback.backends.KNOWN_BACKENDS` (first, since its arrays are also NumPy
arrays), and the contract checks below, written for any backend (``to`` brings a NumPy
array to it, ``back`` reads a result), run on it.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytest
import scipy.linalg

import xback
from xback import _dispatch
from xback.backends import KNOWN_BACKENDS, HostBackend


# -- the backend: one module's worth of differences ------------------------------------------
class PlugArray(np.ndarray):
    """The array type of the plugged-in backend."""


class PlugBackend(HostBackend):
    """A backend for :class:`PlugArray`: ownership and conversion, nothing else."""

    name = "plug"

    def owns(self, tp: type) -> bool:
        return issubclass(tp, PlugArray)

    def to_numpy(self, x: Any, copy: bool | None) -> np.ndarray[Any, Any]:
        a: np.ndarray[Any, Any] = np.asarray(x)  # a base-class view
        return a.copy() if copy else a

    def from_numpy(self, a: np.ndarray[Any, Any], device: str, copy: bool | None) -> Any:
        return (a.copy() if copy else a).view(PlugArray)

    def astype(self, x: Any, dtype: Any) -> Any:
        return x.astype(dtype)

    def copy(self, x: Any) -> Any:
        return x.copy()


BACKEND = PlugBackend()


@pytest.fixture
def plug() -> Iterator[str]:
    """The backend registered: the one registry line, put first (its arrays are NumPy
    arrays too, which the numpy backend would otherwise own)."""
    saved = dict(KNOWN_BACKENDS)
    KNOWN_BACKENDS.clear()
    KNOWN_BACKENDS.update({"plug": (__name__, "numpy", "numpy"), **saved})  # the line
    try:
        yield "plug"
    finally:
        KNOWN_BACKENDS.clear()
        KNOWN_BACKENDS.update(saved)
        _dispatch._LOADED.pop("plug", None)
        _dispatch._TYPE_CACHE.pop(PlugArray, None)
        _dispatch._CONVERTED.pop(PlugArray, None)


def to_plug(a: Any) -> Any:
    return np.asarray(a).view(PlugArray)


# -- contract checks, for any backend -----------------------------------------------------------
Conv = Callable[[Any], Any]


def _key(v: float, descending: bool) -> tuple[bool, float]:
    return (math.isnan(v), 0.0 if math.isnan(v) else (-v if descending else v))


def check_sort_contract(name: str, to: Conv, back: Conv) -> None:
    """sort/argsort against Python's ``sorted`` (stable; NaN last in both directions)."""
    rng = np.random.default_rng(0)
    f = rng.integers(0, 5, 40).astype(np.float64)  # ties
    f[[3, 17, 30]] = np.nan
    f[5], f[6] = -0.0, 0.0
    for data in (f, rng.integers(-3, 3, 40), rng.integers(0, 2, 40).astype(bool)):
        vals = data.tolist()
        for desc in (False, True):
            x = to(data)
            want = sorted(range(len(vals)), key=lambda i: _key(float(vals[i]), desc))
            idx = xback.argsort(x, descending=desc, stable=True)
            assert xback.backend_of(idx) == name
            got = back(idx)
            assert got.dtype == np.int64
            assert got.tolist() == want
            s = back(xback.sort(x, descending=desc))
            np.testing.assert_array_equal(s, data[want])
            assert s.dtype == data.dtype
    m = rng.standard_normal((3, 5))
    np.testing.assert_array_equal(back(xback.sort(to(m), axis=0)), np.sort(m, axis=0))


def check_linalg_contract(name: str, to: Conv, back: Conv) -> None:
    """svd (reconstruction, canonical signs equal to NumPy's), svdvals against SciPy,
    lstsq_grad against the float64 closed form (vector and batched), lstsq_grad_fn."""
    rng = np.random.default_rng(1)
    for shape in ((6, 4), (4, 6), (2, 5, 3)):
        a = rng.standard_normal(shape)
        for full in (True, False):
            U, S, Vh = (back(r) for r in xback.svd(to(a), full_matrices=full))
            k = min(shape[-2:])
            rec = (U[..., :, :k] * S[..., None, :]) @ Vh[..., :k, :]
            np.testing.assert_allclose(rec, a, atol=1e-12)
        Uc, Sc, Vhc = (back(r) for r in xback.svd(to(a), canonical_signs=True))
        Un, Sn, Vhn = xback.svd(a, canonical_signs=True)  # the numpy backend's
        k = min(shape[-2:])
        np.testing.assert_allclose(Uc[..., :k], Un[..., :k], atol=1e-10)
        np.testing.assert_allclose(Vhc[..., :k, :], Vhn[..., :k, :], atol=1e-10)
        np.testing.assert_allclose(Sc, Sn, rtol=1e-12)
        sv = back(xback.svdvals(to(a)))
        want = np.stack([scipy.linalg.svdvals(m) for m in a.reshape(-1, *shape[-2:])])
        np.testing.assert_allclose(sv, want.reshape(sv.shape), rtol=1e-12)
    ac = rng.standard_normal((5, 3)) + 1j * rng.standard_normal((5, 3))
    Uc, Sc, Vhc = (back(r) for r in xback.svd(to(ac), canonical_signs=True))
    Un, Sn, Vhn = xback.svd(ac, canonical_signs=True)
    np.testing.assert_allclose(Uc[:, :3], Un[:, :3], atol=1e-10)
    with pytest.raises(ValueError, match="non-finite"):
        xback.svd(to(np.array([[1.0, np.inf], [0.0, 1.0]])))

    A = rng.standard_normal((2, 7, 4))
    x, y = rng.standard_normal(4), rng.standard_normal(7)
    for method in ("auto", "explicit"):
        g = back(xback.lstsq_grad(to(A[0]), to(x), to(y), method=method))
        np.testing.assert_allclose(g, 2 * A[0].T @ (A[0] @ x - y), rtol=1e-10)
        gb = back(xback.lstsq_grad(to(A), to(x), to(y), method=method))  # vector x, batched A
        np.testing.assert_allclose(gb, 2 * np.einsum("bmn,bm->bn", A, A @ x - y), rtol=1e-10)
    X, Y = rng.standard_normal((2, 4, 3)), rng.standard_normal((2, 7, 3))
    gm = back(xback.lstsq_grad(to(A), to(X), to(Y)))
    np.testing.assert_allclose(gm, 2 * np.swapaxes(A, -1, -2) @ (A @ X - Y), rtol=1e-10)
    Ac = A[0] + 1j * rng.standard_normal((7, 4))
    gc = back(xback.lstsq_grad(to(Ac), to(x.astype(complex)), to(y.astype(complex))))
    np.testing.assert_allclose(gc, 2 * Ac.conj().T @ (Ac @ x - y), rtol=1e-10)
    gfn = xback.lstsq_grad_fn(to(A[0]), to(y))
    np.testing.assert_allclose(back(gfn(to(x))), 2 * A[0].T @ (A[0] @ x - y), rtol=1e-10)
    gfb = xback.lstsq_grad_fn(to(A), to(Y))
    np.testing.assert_allclose(back(gfb(to(X))), gm, rtol=1e-10)
    assert xback.backend_of(xback.lstsq_grad(to(A[0]), to(x), to(y))) == name


def check_sort_family_contract(name: str, to: Conv, back: Conv) -> None:
    """A few sort-family calls against NumPy/SciPy."""
    import scipy.stats

    rng = np.random.default_rng(2)
    v = rng.integers(0, 6, 30).astype(np.float64)
    v[4] = np.nan
    vals, idx = xback.top_k(to(v), 3)
    np.testing.assert_array_equal(back(vals), np.sort(v[~np.isnan(v)])[::-1][:3])
    np.testing.assert_array_equal(back(idx), np.argsort(-v, kind="stable")[:3])
    s = np.sort(v)
    np.testing.assert_array_equal(
        back(xback.searchsorted(to(s), to(np.array([0.5, 2.0, 9.0])))),
        np.searchsorted(s, [0.5, 2.0, 9.0]),
    )
    np.testing.assert_array_equal(back(xback.unique_values(to(v[~np.isnan(v)]))),
                                  np.unique(v[~np.isnan(v)]))
    w = v[~np.isnan(v)]
    np.testing.assert_allclose(back(xback.quantile(to(w), 0.3)), np.quantile(w, 0.3))
    np.testing.assert_allclose(back(xback.median(to(w))), np.median(w))
    np.testing.assert_allclose(back(xback.rankdata(to(w))), scipy.stats.rankdata(w))


# -- the plugged-in backend passes them ---------------------------------------------------------
def test_registered_by_one_line(plug: str) -> None:
    x = to_plug([3.0, 1.0])
    assert xback.backend_of(x) == plug
    assert type(xback.sort(x)) is PlugArray
    y = xback.asarray([2.0, 1.0], backend=plug)
    assert type(y) is PlugArray and xback.to_numpy(y).tolist() == [2.0, 1.0]
    with xback.use(plug):
        assert xback.backend_of(xback.asarray(np.ones(2))) == plug
    # the backend writes no linear algebra and no sorting: the Backend defaults run
    for method in ("sort", "argsort", "svd", "svdvals", "lstsq_grad", "gram", "gram_grad",
                   "all_finite", "top_k", "unique", "quantile"):
        assert method not in vars(PlugBackend), method


def test_listed_wherever_backends_are_listed(plug: str) -> None:
    """The registry line is all it takes to be named, and the Backend defaults answer the
    front layer's questions (routing: no thread pool, never computing in a forked child;
    dtypes: NumPy's own)."""
    from xback import _routing

    with pytest.raises(TypeError, match=r"registered backends \(plug, numpy, torch"):
        xback.asarray(object())
    with pytest.raises(ValueError, match=r"available backends: .*\bplug\b"):
        xback.asarray([1.0], backend="plu")
    b = _dispatch.load_backend(plug)
    assert b.cpu_threads() is None and b.dtype_from(np.float32) is None
    assert not _routing.fork_safe(plug, "sort/1d")
    assert _routing._threads_fit(b, _dispatch.load_backend("numpy"))
    assert xback.asarray([1, 2], dtype="float32", backend=plug).dtype == np.float32
    pytest.importorskip("typer")
    from xback.cli import info_dict

    assert info_dict()["backends"]["plug"] == "available"


def test_sort_contract(plug: str) -> None:
    check_sort_contract(plug, to_plug, xback.to_numpy)


def test_linalg_contract(plug: str) -> None:
    check_linalg_contract(plug, to_plug, xback.to_numpy)


def test_sort_family_contract(plug: str) -> None:
    check_sort_family_contract(plug, to_plug, xback.to_numpy)


@pytest.mark.parametrize("check", [check_sort_contract, check_linalg_contract,
                                   check_sort_family_contract])
def test_the_checks_hold_for_numpy(check: Callable[[str, Conv, Conv], None]) -> None:
    """The same checks on the numpy backend (they are backend-neutral)."""
    check("numpy", np.asarray, np.asarray)
