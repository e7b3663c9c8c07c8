"""xback inside ``torch.func`` transforms (vmap, grad, jacrev, jvp, functional_call) and
JAX's (jit, vmap, grad): results equal to the raw library formulas."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import xback
from tests.conftest import requires_jax

torch = pytest.importorskip("torch")
func = torch.func

rng = np.random.default_rng(1)
V = torch.from_numpy(rng.standard_normal(9))
VB = torch.from_numpy(rng.standard_normal((4, 9)))
M = torch.from_numpy(rng.standard_normal((6, 4)))
MB = torch.from_numpy(rng.standard_normal((3, 6, 4)))
A = torch.from_numpy(rng.standard_normal((8, 4)))
AB = torch.from_numpy(rng.standard_normal((3, 8, 4)))
X = torch.from_numpy(rng.standard_normal(4))
Y = torch.from_numpy(rng.standard_normal(8))


def _canonical(U: Any, S: Any, Vh: Any) -> tuple[Any, Any, Any]:
    """svd_flip (u-based) written out in raw torch: the reference for canonical_signs."""
    k = S.shape[-1]
    idx = U[..., :k].abs().argmax(dim=-2, keepdim=True)
    sign = U[..., :k].gather(-2, idx).sign()
    return U[..., :k] * sign, S, Vh[..., :k, :] * sign.mT


# (xback function, raw torch formula, input, exact)
PAIRS: dict[str, tuple[Callable[[Any], Any], Callable[[Any], Any], Any, bool]] = {
    "sort": (lambda v: xback.sort(v), lambda v: torch.sort(v, stable=True)[0], V, True),
    "sort-desc": (
        lambda v: xback.sort(v, descending=True),
        lambda v: torch.sort(v, descending=True, stable=True)[0],
        V,
        True,
    ),
    "svdvals": (xback.svdvals, torch.linalg.svdvals, M, False),
    "svd-canonical": (
        lambda m: xback.svd(m, full_matrices=False, canonical_signs=True),
        lambda m: _canonical(*torch.linalg.svd(m, full_matrices=False)),
        M,
        False,
    ),
    "lstsq_grad": (lambda x: xback.lstsq_grad(A, x, Y), lambda x: 2 * A.mT @ (A @ x - Y), X, False),
    "lstsq_grad-explicit": (
        lambda x: xback.lstsq_grad(A, x, Y, method="explicit"),
        lambda x: 2 * A.mT @ (A @ x - Y),
        X,
        False,
    ),
    "lstsq_grad-autograd": (
        lambda x: xback.lstsq_grad(A, x, Y, method="autograd"),
        lambda x: 2 * A.mT @ (A @ x - Y),
        X,
        False,
    ),
    "lstsq_grad_fn": (
        lambda x: xback.lstsq_grad_fn(A, Y)(x),
        lambda x: 2 * A.mT @ (A @ x - Y),
        X,
        False,
    ),
}


def _same(got: Any, want: Any, exact: bool) -> None:
    if isinstance(want, tuple):
        assert len(got) == len(want)
        for g, w in zip(got, want):
            _same(g, w, exact)
        return
    if exact:
        assert torch.equal(got, want)
    else:
        torch.testing.assert_close(got, want)


def _batch(x: Any) -> Any:
    return torch.stack([x, x * 0.5 - 1, x.flip(0) if x.dim() == 1 else x * 2])


@pytest.mark.parametrize("name", list(PAIRS))
def test_vmap(name: str) -> None:
    f, raw, x, exact = PAIRS[name]
    _same(func.vmap(f)(_batch(x)), func.vmap(raw)(_batch(x)), exact)


def test_vmap_argsort_and_batched_lstsq() -> None:
    assert torch.equal(
        func.vmap(xback.argsort)(VB), func.vmap(lambda v: torch.argsort(v, stable=True))(VB)
    )
    for method in ("auto", "explicit", "autograd", "fused"):
        got = func.vmap(lambda a, m=method: xback.lstsq_grad(a, X, Y, method=m))(AB)
        torch.testing.assert_close(got, 2 * (AB.mT @ (AB @ X - Y)[..., None])[..., 0])


def _scalar(f: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def s(x: Any) -> Any:
        out = f(x)
        out = out if not isinstance(out, tuple) else out[0].sum() + out[1].sum() * 2
        return (out * torch.linspace(0.5, 1.5, out.numel(), dtype=out.dtype).view(out.shape)).sum()

    return s


@pytest.mark.parametrize("name", list(PAIRS))
def test_grad(name: str) -> None:
    f, raw, x, _ = PAIRS[name]
    if name == "svd-canonical":  # U's sign is fixed: a well-defined function of the input
        f, raw = (
            (lambda m: xback.svd(m, canonical_signs=True).U[:, :2].sum(0)),
            (lambda m: _canonical(*torch.linalg.svd(m))[0][:, :2].sum(0)),
        )
    torch.testing.assert_close(func.grad(_scalar(f))(x), func.grad(_scalar(raw))(x))


@pytest.mark.parametrize(
    "name", ["sort", "svdvals", "lstsq_grad", "lstsq_grad-autograd", "lstsq_grad_fn"]
)
def test_jacrev_and_jvp(name: str) -> None:
    f, raw, x, _ = PAIRS[name]
    torch.testing.assert_close(func.jacrev(f)(x), func.jacrev(raw)(x))
    t = torch.ones_like(x)
    got, want = func.jvp(f, (x,), (t,)), func.jvp(raw, (x,), (t,))
    torch.testing.assert_close(got[0], want[0])
    torch.testing.assert_close(got[1], want[1])


def test_functional_call_of_a_module() -> None:
    class TopK(torch.nn.Module):
        def __init__(self, raw: bool) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.linspace(-1, 1, 9, dtype=torch.float64))
            self.raw = raw

        def forward(self, v: Any) -> Any:
            z = v * self.w
            if self.raw:
                return (
                    torch.sort(z, descending=True)[0][:3].sum()
                    + torch.linalg.svdvals(z.view(3, 3)).sum()
                )
            return xback.sort(z, descending=True)[:3].sum() + xback.svdvals(z.view(3, 3)).sum()

    mx, mr = TopK(False), TopK(True)
    params = {"w": torch.from_numpy(rng.standard_normal(9))}
    got = func.grad(lambda p: func.functional_call(mx, p, (V,)))(params)["w"]
    want = func.grad(lambda p: func.functional_call(mr, p, (V,)))(params)["w"]
    torch.testing.assert_close(got, want)


def test_traced_svd_of_nonfinite_input_is_nan() -> None:
    bad = MB.clone()
    bad[1, 0, 0] = float("nan")
    s = func.vmap(xback.svdvals)(bad)
    assert torch.isnan(s[1]).all()
    torch.testing.assert_close(s[0], torch.linalg.svdvals(MB[0]))
    with pytest.raises(ValueError, match="non-finite"):
        xback.svdvals(bad)  # eager: the documented error


# -- JAX -----------------------------------------------------------------------------------
@requires_jax
@pytest.mark.jax
def test_jax_jit_vmap_grad() -> None:
    import jax
    import jax.numpy as jnp

    v = jnp.asarray(V.numpy())
    m = jnp.asarray(M.numpy())
    a, x, y = (jnp.asarray(t.numpy()) for t in (A, X, Y))
    jit = jax.jit
    assert (jit(lambda v: xback.sort(v, descending=True))(v) == jnp.sort(v)[::-1]).all()
    assert (jit(xback.argsort)(v) == jnp.argsort(v, stable=True)).all()
    np.testing.assert_allclose(jit(xback.svdvals)(m), jnp.linalg.svd(m, compute_uv=False))
    np.testing.assert_allclose(
        jit(lambda x: xback.lstsq_grad(a, x, y))(x), 2 * a.T @ (a @ x - y), rtol=1e-12
    )
    np.testing.assert_allclose(
        jit(lambda x: xback.lstsq_grad_fn(a, y)(x))(x), 2 * a.T @ (a @ x - y), rtol=1e-10
    )
    mb = jnp.asarray(MB.numpy())
    np.testing.assert_allclose(
        jax.vmap(xback.svdvals)(mb), jnp.linalg.svd(mb, compute_uv=False), rtol=1e-12
    )
    U, S, Vh = jax.vmap(lambda m: tuple(xback.svd(m, full_matrices=False)))(mb)
    np.testing.assert_allclose(U @ (S[..., None] * Vh), mb, atol=1e-12)
    assert (
        jax.vmap(xback.sort)(jnp.asarray(VB.numpy())) == jnp.sort(jnp.asarray(VB.numpy()))
    ).all()
    np.testing.assert_allclose(
        jax.grad(lambda m: xback.svdvals(m).sum())(m),
        jax.grad(lambda m: jnp.linalg.svd(m, compute_uv=False).sum())(m),
        rtol=1e-10,
    )
    np.testing.assert_allclose(
        jax.grad(lambda v: xback.sort(v)[-3:].sum())(v),
        jax.grad(lambda v: jnp.sort(v)[-3:].sum())(v),
    )
    np.testing.assert_allclose(
        jax.grad(lambda x: xback.lstsq_grad(a, x, y).sum())(x),
        jax.grad(lambda x: (2 * a.T @ (a @ x - y)).sum())(x),
        rtol=1e-12,
    )
    bad = mb.at[1, 0, 0].set(jnp.inf)  # traced: NaN for the bad matrix, no host read
    s = jit(jax.vmap(xback.svdvals))(bad)
    assert bool(jnp.isnan(s[1]).all()) and bool(jnp.isfinite(s[0]).all())


# -- the sort family under torch.func: the traced, branch-free paths ----------------------
_FX = torch.from_numpy(np.random.default_rng(3).standard_normal((4, 12)))
_FX[1, 3] = float("nan")
_FX[2, :4] = 0.5  # ties
_FAMILY: dict[str, Callable[[Any], Any]] = {
    "top_k": lambda v: xback.top_k(v, 3).values,
    "top_k-smallest-indices": lambda v: xback.top_k(v, 3, largest=False).indices,
    "median": lambda v: xback.median(v),
    "nanmedian": lambda v: xback.nanmedian(v),
    "quantile": lambda v: xback.quantile(v, [0.3, 0.8]),
    "rankdata": lambda v: xback.rankdata(v),
}


@pytest.mark.parametrize("name", list(_FAMILY))
def test_sort_family_vmap_equals_the_loop(name: str) -> None:
    f = _FAMILY[name]
    got = func.vmap(f)(_FX)
    want = torch.stack([f(row) for row in _FX])
    assert got.shape == want.shape
    # traced rankdata of floats is float64 for every method (docs/compile.md)
    torch.testing.assert_close(got, want.to(got.dtype), equal_nan=True, rtol=0, atol=0)


def test_sort_family_searchsorted_vmap_and_grads() -> None:
    rng = np.random.default_rng(4)
    a = torch.sort(torch.from_numpy(rng.standard_normal((4, 6)))).values
    q = torch.from_numpy(rng.standard_normal((4, 5)))
    got = func.vmap(lambda s, v: xback.searchsorted(s, v))(a, q)
    assert torch.equal(got, torch.stack([xback.searchsorted(s, v) for s, v in zip(a, q)]))
    v = torch.from_numpy(rng.standard_normal(9))
    for f in (lambda t: xback.top_k(t, 3).values.sum(), lambda t: xback.median(t),
              lambda t: xback.quantile(t, 0.3)):
        g = func.grad(f)(v)
        w = v.clone().requires_grad_()
        f(w).backward()
        torch.testing.assert_close(g, w.grad)


def _svd_args(call: Callable[[], Any]) -> list[tuple[Any, ...]]:
    """The arguments after the matrix of each ``_linalg_svd`` that ``call`` dispatches."""
    from torch.utils._python_dispatch import TorchDispatchMode

    calls: list[tuple[Any, ...]] = []

    class Record(TorchDispatchMode):
        def __torch_dispatch__(
            self, fn: Any, types: Any, args: Any = (), kwargs: Any = None
        ) -> Any:
            if "_linalg_svd" in str(fn):
                calls.append(tuple(args[1:]))
            return fn(*args, **(kwargs or {}))

    with Record():
        call()
    return calls


def test_svdvals_under_vmap_computes_the_values_alone() -> None:
    """Under vmap, torch.linalg.svdvals also computes U and V (its decomposition sees a
    batched tensor as one that may need a gradient); xback's asks LAPACK for the values
    alone, and keeps torch's path wherever a derivative needs U and V (grad, jvp, a grad
    around the vmap)."""
    assert _svd_args(lambda: func.vmap(torch.linalg.svdvals)(MB)) == [()]  # compute_uv=True
    assert _svd_args(lambda: func.vmap(xback.svdvals)(MB)) == [(False, False)]
    torch.testing.assert_close(func.vmap(xback.svdvals)(MB), torch.linalg.svdvals(MB))
    for call in (
        lambda: func.jvp(xback.svdvals, (M,), (torch.ones_like(M),)),
        lambda: func.grad(lambda a: func.vmap(xback.svdvals)(a).sum())(MB),
        lambda: func.vmap(func.grad(lambda a: xback.svdvals(a).sum()))(MB),
    ):
        assert _svd_args(call) == [()]
    g = func.grad(lambda a: func.vmap(xback.svdvals)(a).sum())(MB)
    torch.testing.assert_close(g, func.grad(lambda a: torch.linalg.svdvals(a).sum())(MB))
