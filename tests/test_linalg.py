"""svd, svdvals, lstsq_grad, lstsq_grad_fn on every backend (issue 4).

References are independent of xback: float64/complex128 NumPy closed forms, central finite
differences, and the defining properties of the SVD (reconstruction, orthonormality).
"""

from __future__ import annotations

from typing import Any

import ml_dtypes
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import xback
from xback._dispatch import kind_of

from .conftest import HAS_TORCH, Target, c_stdio_output, requires_torch, torch

BF16 = np.dtype(ml_dtypes.bfloat16)
F8 = np.dtype(ml_dtypes.float8_e4m3fn)


def dtype_of(x: Any) -> np.dtype[Any]:
    b = kind_of(x)
    assert b is not None
    return b.dtype_of(x)


def rng_array(rng: np.random.Generator, shape: tuple[int, ...], dtype: Any = np.float64) -> Any:
    dt = np.dtype(dtype)
    if dt.kind == "c":
        return (rng.standard_normal(shape) + 1j * rng.standard_normal(shape)).astype(dt)
    if dt.kind in "iu":
        return rng.integers(0, 5, size=shape).astype(dt)
    if dt.kind == "b":
        return rng.integers(0, 2, size=shape).astype(dt)
    return rng.standard_normal(shape).astype(dt)


def ref_grad(A: Any, x: Any, y: Any) -> Any:
    """2 Aᴴ (A x - y) in complex128/float64, vectors handled as in the issue."""
    A = np.asarray(A, dtype=np.complex128 if np.iscomplexobj(A) else np.float64)
    x = np.asarray(x).astype(np.result_type(x, np.float64))
    y = np.asarray(y).astype(np.result_type(y, np.float64))
    if x.ndim == 1:
        r = np.einsum("...ij,j->...i", A, x) - y
        return 2 * np.einsum("...ij,...i->...j", A.conj(), r)
    r = A @ x - y
    return 2 * (np.swapaxes(A, -1, -2).conj() @ r)


# -- lstsq_grad: values -------------------------------------------------------------------
SHAPES = [
    ((6, 2), (2,), (6,)),  # the seed's vector case
    ((7, 3), (3, 2), (7, 2)),  # several right-hand sides
    ((4, 5, 3), (3,), (5,)),  # batched A, vector x: result (4, 3)
    ((2, 1, 5, 3), (4, 3, 2), (5, 2)),  # batch broadcasting: (2, 4, 3, 2)
    ((5, 3), (2, 3, 1), (2, 5, 1)),
    ((0, 3), (3,), (0,)),  # empty m: gradient 0
    ((4, 0), (0,), (4,)),  # empty n: empty gradient
]


@pytest.mark.parametrize("method", ["explicit", "auto", "autograd"])
@pytest.mark.parametrize(("sa", "sx", "sy"), SHAPES)
def test_lstsq_grad_closed_form(target: Target, method: str, sa: Any, sx: Any, sy: Any) -> None:
    if method == "autograd" and target.backend != "torch":
        pytest.skip("autograd is a torch method (elsewhere: ValueError, tested below)")
    rng = np.random.default_rng(0)
    A, x, y = rng_array(rng, sa), rng_array(rng, sx), rng_array(rng, sy)
    expected = ref_grad(A, x, y)
    g = xback.lstsq_grad(target.make(A), target.make(x), target.make(y), method=method)
    target.check(g)
    assert tuple(g.shape) == expected.shape
    assert dtype_of(g) == np.float64
    if target.has_data:
        np.testing.assert_allclose(target.numpy(g), expected, rtol=1e-12, atol=1e-12)


def test_lstsq_grad_finite_differences(data_target: Target) -> None:
    rng = np.random.default_rng(1)
    A, x, y = rng.standard_normal((8, 3)), rng.standard_normal(3), rng.standard_normal(8)

    def f(v: Any) -> float:
        return float(np.sum((y - A @ v) ** 2))

    h = 1e-6
    fd = np.array([(f(x + h * e) - f(x - h * e)) / (2 * h) for e in np.eye(3)])
    g = data_target.numpy(xback.lstsq_grad(*(data_target.make(a) for a in (A, x, y))))
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-6)


def test_lstsq_grad_complex_finite_differences(data_target: Target) -> None:
    """For complex x the gradient is 2 Aᴴ r = d/dRe + i d/dIm of the real loss."""
    rng = np.random.default_rng(2)
    A, x, y = (rng_array(rng, s, np.complex128) for s in ((6, 2), (2,), (6,)))

    def f(v: Any) -> float:
        return float(np.sum(np.abs(y - A @ v) ** 2))

    h = 1e-6
    fd = np.array(
        [
            (f(x + h * e) - f(x - h * e)) / (2 * h)
            + 1j * (f(x + 1j * h * e) - f(x - 1j * h * e)) / (2 * h)
            for e in np.eye(2)
        ]
    )
    g = data_target.numpy(xback.lstsq_grad(*(data_target.make(a) for a in (A, x, y))))
    np.testing.assert_allclose(g, fd, rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.complex64, np.complex128])
def test_lstsq_grad_complex(target: Target, dtype: Any) -> None:
    rng = np.random.default_rng(3)
    A, x, y = (rng_array(rng, s, dtype) for s in ((9, 4), (4, 2), (9, 2)))
    g = xback.lstsq_grad(target.make(A), target.make(x), target.make(y))
    target.check(g)
    assert dtype_of(g) == np.dtype(dtype)
    if target.has_data:
        tol = 1e-4 if dtype == np.complex64 else 1e-12
        np.testing.assert_allclose(target.numpy(g), ref_grad(A, x, y), rtol=tol, atol=tol * 10)


@pytest.mark.parametrize("method", ["explicit", "auto"])
def test_lstsq_grad_float32_accuracy(data_target: Target, method: str) -> None:
    """float32 stays float32 and within a forward-error bound of the float64 answer."""
    rng = np.random.default_rng(4)
    m, n = 400, 40
    A, x, y = (rng.standard_normal(s).astype(np.float32) for s in ((m, n), (n,), (m,)))
    g = xback.lstsq_grad(*(data_target.make(a) for a in (A, x, y)), method=method)
    assert dtype_of(g) == np.float32
    exact = ref_grad(A.astype(np.float64), x.astype(np.float64), y.astype(np.float64))
    # |fl(2 Aᵀ(Ax - y)) - exact| <= ~(m + n) eps * 2 |A|ᵀ (|A||x| + |y|), elementwise
    bound = (
        (m + n) * np.finfo(np.float32).eps * 2 * (np.abs(A.T) @ (np.abs(A) @ np.abs(x) + np.abs(y)))
    )
    err = np.abs(data_target.numpy(g).astype(np.float64) - exact)
    assert np.all(err <= bound)
    assert np.max(err / np.abs(exact).max()) < 1e-4


@requires_torch
def test_lstsq_grad_large_tall_auto_matches(
    data_target: Target, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Shapes where torch's "auto" takes the single-pass blocked path give the same answer."""
    from xback.backends import torch as xt

    # the real threshold is A larger than the last-level cache (32 MB); keep the test small
    monkeypatch.setattr(xt, "_BLOCKED_MIN_BYTES", 0)
    rng = np.random.default_rng(5)
    for dtype, n, k in ((np.float64, 520, None), (np.float32, 1030, None), (np.float64, 512, 2)):
        A = rng.standard_normal((5 * n, n)).astype(dtype)
        xs, ys = ((n,), (5 * n,)) if k is None else ((n, k), (5 * n, k))
        x, y = rng.standard_normal(xs).astype(dtype), rng.standard_normal(ys).astype(dtype)
        ins = [data_target.make(a) for a in (A, x, y)]
        if data_target.backend == "torch" and data_target.device == "cpu":
            assert xt._use_blocked(*ins)
        ga = data_target.numpy(xback.lstsq_grad(*ins))
        exact = ref_grad(A, x, y)
        tol = 1e-9 if dtype == np.float64 else 2e-3
        np.testing.assert_allclose(ga, exact, rtol=0, atol=tol * np.abs(exact).max())


@requires_torch
def test_lstsq_grad_autograd_equals_explicit_and_leaves_inputs_alone() -> None:
    rng = np.random.default_rng(6)
    A = torch.tensor(rng.standard_normal((2, 7, 3)), requires_grad=True)
    x = torch.tensor(rng.standard_normal((3, 2)), requires_grad=True)
    y = torch.tensor(rng.standard_normal((7, 2)))
    with torch.no_grad():
        ga = xback.lstsq_grad(A, x, y, method="autograd")
    ge = xback.lstsq_grad(A, x, y, method="explicit")
    assert ga.shape == (2, 3, 2)  # x broadcast over A's batch: one gradient per batch element
    torch.testing.assert_close(ga, ge.detach())
    assert A.requires_grad and x.requires_grad and not y.requires_grad
    assert A.grad is None and x.grad is None and y.grad is None
    assert not ga.requires_grad
    # explicit stays differentiable (with respect to A here)
    ge.sum().backward()
    assert A.grad is not None and x.grad is not None


@requires_torch
def test_lstsq_grad_explicit_is_differentiable() -> None:
    rng = np.random.default_rng(7)
    A = torch.tensor(rng.standard_normal((5, 3)), requires_grad=True)
    x = torch.tensor(rng.standard_normal(3), requires_grad=True)
    y = torch.tensor(rng.standard_normal(5), requires_grad=True)
    assert torch.autograd.gradcheck(lambda a, b, c: xback.lstsq_grad(a, b, c), (A, x, y))


def test_lstsq_grad_inputs_not_mutated(data_target: Target) -> None:
    rng = np.random.default_rng(8)
    arrays = [rng.standard_normal(s) for s in ((6, 3), (3,), (6,))]
    ins = [data_target.make(a) for a in arrays]
    for method in ["explicit", "auto"] + (["autograd"] if data_target.backend == "torch" else []):
        xback.lstsq_grad(*ins, method=method)
    xback.lstsq_grad_fn(ins[0], ins[2])(ins[1])
    for a, t in zip(arrays, ins):
        np.testing.assert_array_equal(data_target.numpy(t), a)


# -- lstsq_grad: dtypes ----------------------------------------------------------------------
DTYPE_CASES = [
    ((np.float32, np.float32, np.float32), np.float32),
    ((np.float32, np.float64, np.float32), np.float64),
    ((np.int64, np.int64, np.int64), np.float64),
    ((np.bool_, np.bool_, np.int8), np.float64),
    ((np.uint8, np.int32, np.int16), np.float64),
    ((np.int64, np.float32, np.float32), np.float64),  # NumPy promotion: int64 + float32
    ((np.int8, np.float32, np.float32), np.float32),
    ((np.float16, np.float16, np.float16), np.float16),
    ((BF16, BF16, BF16), BF16),
    ((BF16, np.float16, np.float16), np.float32),
    ((np.complex64, np.float64, np.float32), np.complex128),
    ((np.complex64, np.float32, np.int8), np.complex64),
]


@pytest.mark.parametrize(("dts", "expected"), DTYPE_CASES)
def test_lstsq_grad_dtype_table(target: Target, dts: Any, expected: Any) -> None:
    rng = np.random.default_rng(9)
    A, x, y = (rng_array(rng, s, d) for s, d in zip(((5, 2), (2,), (5,)), dts))
    g = xback.lstsq_grad(target.make(A), target.make(x), target.make(y))
    target.check(g)
    assert dtype_of(g) == np.dtype(expected)
    assert tuple(g.shape) == (2,)
    if target.has_data:
        tol = 1e-12 if np.dtype(expected) == np.float64 else 5e-2
        ref = ref_grad(*(a.astype(np.float64) if a.dtype.kind not in "c" else a for a in (A, x, y)))
        got = target.numpy(g).astype(np.complex128 if np.iscomplexobj(ref) else np.float64)
        np.testing.assert_allclose(got, ref, rtol=tol, atol=tol * np.abs(ref).max())


def test_lstsq_grad_unsupported_dtype(target: Target) -> None:
    A = target.make(np.ones((3, 2), dtype=F8))
    with pytest.raises(TypeError, match="float8_e4m3fn"):
        xback.lstsq_grad(A, target.make(np.ones(2)), target.make(np.ones(3)))


# -- lstsq_grad: errors ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("sa", "sx", "sy", "message"),
    [
        ((6, 2), (3,), (6,), r"A has shape \(6, 2\) but x has shape \(3,\)"),
        ((6, 2), (2,), (5,), r"A has shape \(6, 2\) but y has shape \(5,\)"),
        ((6, 2), (2,), (6, 1), r"A has shape \(6, 2\) but y has shape \(6, 1\)"),
        ((6, 2), (2, 1), (6,), r"A has shape \(6, 2\) but y has shape \(6,\)"),
        ((6, 2), (3, 1), (6, 1), r"A has shape \(6, 2\) but x has shape \(3, 1\)"),
        ((6, 2), (2, 2), (6, 3), r"y has shape \(6, 3\)"),
        ((3, 6, 2), (4, 2, 1), (6, 1), r"A has shape \(3, 6, 2\), x has shape \(4, 2, 1\)"),
        ((6,), (1,), (6,), r"A has shape \(6,\)"),
        ((), (1,), (6,), r"A has shape \(\)"),
        ((6, 2), (), (6,), r"x has shape \(\)"),
    ],
)
def test_lstsq_grad_shape_errors(target: Target, sa: Any, sx: Any, sy: Any, message: str) -> None:
    args = [target.make(np.ones(s)) for s in (sa, sx, sy)]
    with pytest.raises(ValueError, match=message):
        xback.lstsq_grad(*args)


def test_lstsq_grad_method_errors(target: Target) -> None:
    args = [target.make(np.ones(s)) for s in ((3, 2), (2,), (3,))]
    with pytest.raises(ValueError, match=r"'auto', 'explicit', 'autograd'.*'newton'"):
        xback.lstsq_grad(*args, method="newton")
    with pytest.raises(ValueError, match="method"):
        xback.lstsq_grad(*args, method=None)  # type: ignore[arg-type]
    if target.backend == "numpy":
        with pytest.raises(ValueError, match="autograd"):
            xback.lstsq_grad(*args, method="autograd")


@requires_torch
def test_lstsq_grad_mixed_kinds_and_backend_choice() -> None:
    A, x, y = np.ones((3, 2)), torch.ones(2, dtype=torch.float64), np.ones(3)
    with pytest.raises(TypeError, match="backend="):
        xback.lstsq_grad(A, x, y)
    g = xback.lstsq_grad(A, x, y, backend="torch")
    assert isinstance(g, torch.Tensor)
    with xback.use("torch", device="meta"):
        g = xback.lstsq_grad(A, [1.0, 2.0], y)
    assert g.device.type == "meta" and g.shape == (2,)
    assert isinstance(xback.lstsq_grad([[1, 0], [0, 1]], [1, 1], [0, 0]), np.ndarray)


# -- lstsq_grad_fn ---------------------------------------------------------------------------
@pytest.mark.parametrize(("sa", "sx", "sy"), SHAPES)
def test_lstsq_grad_fn_matches(target: Target, sa: Any, sx: Any, sy: Any) -> None:
    rng = np.random.default_rng(10)
    A, y = rng_array(rng, sa), rng_array(rng, sy)
    g = xback.lstsq_grad_fn(target.make(A), target.make(y))
    for _ in range(3):
        x = rng_array(rng, sx)
        out = g(target.make(x))
        target.check(out)
        expected = ref_grad(A, x, y)
        assert tuple(out.shape) == expected.shape
        assert dtype_of(out) == np.float64
        if target.has_data:
            np.testing.assert_allclose(target.numpy(out), expected, rtol=1e-10, atol=1e-10)


def test_lstsq_grad_fn_dtypes_and_errors(target: Target) -> None:
    rng = np.random.default_rng(11)
    A, y = rng.standard_normal((6, 2)).astype(np.float32), rng.standard_normal(6).astype(np.float32)
    g = xback.lstsq_grad_fn(target.make(A), target.make(y))
    assert dtype_of(g(target.make(np.ones(2, np.float32)))) == np.float32
    wide = g(target.make(np.ones(2, np.float64)))  # widening x: recomputed in float64
    assert dtype_of(wide) == np.float64
    c = g(target.make(np.ones(2, np.complex64)))
    assert dtype_of(c) == np.complex64
    if target.has_data:
        np.testing.assert_allclose(
            target.numpy(wide), ref_grad(A, np.ones(2), y), rtol=1e-12, atol=1e-12
        )
    with pytest.raises(ValueError, match=r"A has shape \(6, 2\) but x has shape \(3,\)"):
        g(target.make(np.ones(3)))
    with pytest.raises(ValueError, match=r"x has shape \(2, 1\)"):
        g(target.make(np.ones((2, 1))))
    with pytest.raises(ValueError, match=r"A has shape \(6, 2\) but y has shape \(5,\)"):
        xback.lstsq_grad_fn(target.make(A), target.make(np.ones(5)))
    with pytest.raises(ValueError, match=r"A has shape \(6,\)"):
        xback.lstsq_grad_fn(target.make(np.ones(6)), target.make(np.ones(6)))
    with pytest.raises(TypeError, match="float8"):
        xback.lstsq_grad_fn(target.make(A.astype(F8)), target.make(y))
    gm = xback.lstsq_grad_fn(target.make(A), target.make(np.ones((6, 3))))
    with pytest.raises(ValueError, match=r"x has shape \(2, 2\)"):
        gm(target.make(np.ones((2, 2))))


# -- svd: shapes, reconstruction, orthonormality ------------------------------------------------
SVD_SHAPES = [(4, 3), (3, 5), (1, 1), (2, 4, 3), (2, 1, 3, 3), (0, 3), (3, 0), (0, 0), (2, 0, 3)]


def _check_svd(
    a: np.ndarray, U: np.ndarray, S: np.ndarray, Vh: np.ndarray, full: bool, tol: float
) -> None:
    m, n = a.shape[-2:]
    k = min(m, n)
    assert S.shape == (*a.shape[:-2], k)
    assert U.shape == (*a.shape[:-2], m, m if full else k)
    assert Vh.shape == (*a.shape[:-2], n if full else k, n)
    assert np.all(np.diff(S, axis=-1) <= tol) and np.all(tol >= -S)
    if U.shape[-1]:
        eye = np.eye(U.shape[-1])
        np.testing.assert_allclose(
            np.swapaxes(U, -1, -2).conj() @ U,
            np.broadcast_to(eye, U.shape[:-2] + eye.shape),
            atol=tol,
        )
    if Vh.shape[-2]:
        eye = np.eye(Vh.shape[-2])
        np.testing.assert_allclose(
            Vh @ np.swapaxes(Vh, -1, -2).conj(),
            np.broadcast_to(eye, Vh.shape[:-2] + eye.shape),
            atol=tol,
        )
    rec = (U[..., :, :k] * S[..., None, :]) @ Vh[..., :k, :]
    np.testing.assert_allclose(rec, a, atol=tol * max(1.0, float(np.abs(a).max(initial=0))))


@pytest.mark.parametrize("full", [True, False])
@pytest.mark.parametrize("shape", SVD_SHAPES)
def test_svd_shapes_reconstruction_orthonormality(target: Target, shape: Any, full: bool) -> None:
    target.require_svd(shape, full)
    a = np.random.default_rng(12).standard_normal(shape)
    res = xback.svd(target.make(a), full_matrices=full)
    assert isinstance(res, xback.SVDResult) and res._fields == ("U", "S", "Vh")
    U, S, Vh = res
    for part in res:
        target.check(part)
        assert dtype_of(part) == np.float64
    if not target.has_data:
        m, n = shape[-2:]
        k = min(m, n)
        assert tuple(S.shape) == (*shape[:-2], k)
        assert tuple(U.shape) == (*shape[:-2], m, m if full else k)
        assert tuple(Vh.shape) == (*shape[:-2], n if full else k, n)
        return
    _check_svd(a, target.numpy(U), target.numpy(S), target.numpy(Vh), full, 1e-10)
    np.testing.assert_allclose(
        target.numpy(xback.svdvals(target.make(a))), target.numpy(S), atol=1e-12
    )


SVD_DTYPES = [
    (np.float32, np.float32, np.float32),
    (np.float64, np.float64, np.float64),
    (np.complex64, np.complex64, np.float32),
    (np.complex128, np.complex128, np.float64),
    (np.float16, np.float32, np.float32),
    (BF16, np.float32, np.float32),
    (np.bool_, np.float64, np.float64),
    (np.int8, np.float64, np.float64),
    (np.int64, np.float64, np.float64),
    (np.uint8, np.float64, np.float64),
    (np.uint64, np.float64, np.float64),
]


@pytest.mark.parametrize(("dtype", "udt", "sdt"), SVD_DTYPES)
def test_svd_dtype_table(target: Target, dtype: Any, udt: Any, sdt: Any) -> None:
    a = rng_array(np.random.default_rng(13), (4, 3), dtype)
    U, S, Vh = xback.svd(target.make(a), full_matrices=False)
    assert (dtype_of(U), dtype_of(S), dtype_of(Vh)) == (np.dtype(udt), np.dtype(sdt), np.dtype(udt))
    assert dtype_of(xback.svdvals(target.make(a))) == np.dtype(sdt)
    if target.has_data:
        tol = 1e-10 if np.dtype(sdt) == np.float64 else 1e-4
        ref = np.linalg.svd(
            a.astype(np.complex128 if np.dtype(udt).kind == "c" else np.float64), compute_uv=False
        )
        np.testing.assert_allclose(target.numpy(S), ref, rtol=tol, atol=tol)
        _check_svd(
            a.astype(udt).astype(np.complex128 if np.dtype(udt).kind == "c" else np.float64),
            target.numpy(U),
            target.numpy(S),
            target.numpy(Vh),
            False,
            20 * tol,
        )


@pytest.mark.parametrize("fn", ["svd", "svdvals"])
def test_svd_errors(target: Target, fn: str) -> None:
    f = getattr(xback, fn)
    for shape in [(3,), ()]:
        with pytest.raises(ValueError, match=r"x has shape \(" + (r"3," if shape else "") + r"\)"):
            f(target.make(np.ones(shape)))
    with pytest.raises(TypeError, match="float8_e4m3fn"):
        f(target.make(np.ones((2, 2), dtype=F8)))
    if target.has_data:
        for bad in [np.nan, np.inf, -np.inf]:
            a = np.eye(3)
            a[1, 2] = bad
            with pytest.raises(ValueError, match="non-finite"):
                f(target.make(a))
            with pytest.raises(ValueError, match="non-finite"):
                f(target.make(np.stack([np.eye(3), a]).astype(np.complex64)))


def test_svd_object_dtype_numpy() -> None:
    with pytest.raises(TypeError, match="object"):
        xback.svd(np.array([[1, 2], [3, 4]], dtype=object))


def test_svd_inputs_not_mutated(data_target: Target) -> None:
    a = np.random.default_rng(14).standard_normal((5, 3))
    t = data_target.make(a)
    xback.svd(t, full_matrices=False, canonical_signs=True)
    if data_target.supports_svd(a.shape, full_matrices=True):
        xback.svd(t, canonical_signs=True)
    xback.svdvals(t)
    np.testing.assert_array_equal(data_target.numpy(t), a)


# -- svd: canonical signs ----------------------------------------------------------------------
@pytest.mark.parametrize("dtype", [np.float64, np.complex128, np.float32])
@pytest.mark.parametrize("shape", [(6, 4), (4, 6), (3, 5, 4)])
@pytest.mark.parametrize("full", [True, False])
def test_svd_canonical_signs(data_target: Target, dtype: Any, shape: Any, full: bool) -> None:
    data_target.require_svd(shape, full)
    rng = np.random.default_rng(15)
    a = rng_array(rng, shape, dtype)
    tol = 1e-4 if dtype == np.float32 else 1e-10
    U, S, Vh = (
        data_target.numpy(p)
        for p in xback.svd(data_target.make(a), full_matrices=full, canonical_signs=True)
    )
    k = min(shape[-2:])
    _check_svd(
        a.astype(np.complex128 if np.dtype(dtype).kind == "c" else np.float64),
        U,
        S,
        Vh,
        full,
        20 * tol,
    )
    # the convention: the largest-|.| entry of each of the first K columns of U is real > 0
    Uk = U[..., :k]
    piv = np.take_along_axis(Uk, np.abs(Uk).argmax(axis=-2)[..., None, :], axis=-2)
    assert np.all(piv.real > 0) and np.allclose(piv.imag, 0, atol=tol)
    # reference: NumPy's own SVD normalised independently
    u, s, vh = np.linalg.svd(a, full_matrices=full)
    ph = np.take_along_axis(u[..., :k], np.abs(u[..., :k]).argmax(axis=-2)[..., None, :], axis=-2)
    ph = ph / np.abs(ph)
    np.testing.assert_allclose(U[..., :k], u[..., :k] * ph.conj(), atol=20 * tol)
    np.testing.assert_allclose(
        Vh[..., :k, :], vh[..., :k, :] * np.swapaxes(ph, -1, -2), atol=20 * tol
    )
    # a and -a: same U (the normalised side), opposite Vh
    U2, S2, Vh2 = (
        data_target.numpy(p)
        for p in xback.svd(data_target.make(-a), full_matrices=full, canonical_signs=True)
    )
    np.testing.assert_allclose(U2[..., :k], U[..., :k], atol=20 * tol)
    np.testing.assert_allclose(Vh2[..., :k, :], -Vh[..., :k, :], atol=20 * tol)
    np.testing.assert_allclose(S2, S, atol=20 * tol)


@requires_torch
@pytest.mark.parametrize("dtype", [np.float64, np.complex128])
def test_svd_canonical_signs_cross_backend(dtype: Any) -> None:
    a = rng_array(np.random.default_rng(16), (2, 7, 5), dtype)
    rn = xback.svd(a, full_matrices=False, canonical_signs=True)
    rt = xback.svd(torch.from_numpy(a), full_matrices=False, canonical_signs=True)
    for pn, pt in zip(rn, rt):
        np.testing.assert_allclose(pt.numpy(), pn, atol=1e-10)
    mt = xback.svd(a, full_matrices=False, canonical_signs=True, backend="torch", device="meta")
    assert [tuple(p.shape) for p in mt] == [p.shape for p in rn]


@pytest.mark.parametrize("backend", ["numpy", *(["torch"] if HAS_TORCH else [])])
@pytest.mark.parametrize("full", [True, False])
@pytest.mark.parametrize(
    "a",
    [
        np.array([[1.0, 1.0], [1.0, -1.0]]),  # |entries| of U tie: the first one decides
        np.array([[0.0, 2.0, 0.0], [3.0, 0.0, 0.0]]),
        np.arange(24.0).reshape(2, 4, 3) ** 1.5,
        rng_array(np.random.default_rng(18), (5, 3), np.complex128),
        rng_array(np.random.default_rng(19), (2, 3, 4), np.float32),
    ],
    ids=["ties", "wide-exact", "batch", "complex", "batch-float32-wide"],
)
def test_svd_canonical_fast_paths_follow_the_one_rule(backend: str, full: bool, a: Any) -> None:
    """NumPy's and torch's native spellings of the sign convention give exactly what the
    rule written once (xback.backends._linalg_generic) gives on the same factors."""
    from xback._dispatch import load_backend
    from xback.backends import _linalg_generic

    b = load_backend(backend)
    x = a if backend == "numpy" else torch.from_numpy(a)
    fast = b.svd(x, full, True)
    rule = _linalg_generic.svd(b, x, full, True)
    for f, r in zip(fast, rule):
        np.testing.assert_array_equal(xback.to_numpy(f), xback.to_numpy(r))


# -- svd: gradients ------------------------------------------------------------------------------
@requires_torch
def test_svdvals_gradient() -> None:
    a = torch.tensor(np.random.default_rng(17).standard_normal((5, 3)), requires_grad=True)
    S = xback.svdvals(a)
    S.sum().backward()
    U, _, Vh = np.linalg.svd(a.detach().numpy(), full_matrices=False)
    np.testing.assert_allclose(a.grad.numpy(), U @ Vh, atol=1e-10)  # d(sum S)/dA = U Vh
    assert torch.autograd.gradcheck(xback.svdvals, (a.detach().requires_grad_(),))


@requires_torch
@pytest.mark.parametrize("dtype", [torch.float64, torch.complex128])
def test_svd_gradient(dtype: Any) -> None:
    a = torch.randn(
        4, 3, dtype=dtype, generator=torch.Generator().manual_seed(0), requires_grad=True
    )

    def f(t: Any) -> Any:
        U, S, Vh = xback.svd(t, full_matrices=False, canonical_signs=True)
        return (
            (U.abs() ** 2 * torch.arange(3.0, dtype=torch.float64)).sum() + S.sum() + Vh.real.sum()
        )

    assert torch.autograd.gradcheck(f, (a,))
    assert torch.autograd.gradcheck(lambda t: xback.svd(t, full_matrices=False).S, (a,))


# -- hypothesis ----------------------------------------------------------------------------------
BACKENDS = ["numpy", *(["torch"] if HAS_TORCH else [])]


@given(
    batch=st.lists(st.integers(0, 2), max_size=2),
    m=st.integers(0, 5),
    n=st.integers(0, 5),
    dtype=st.sampled_from([np.float32, np.float64, np.complex128, np.int32, np.bool_]),
    full=st.booleans(),
    canon=st.booleans(),
    backend=st.sampled_from(BACKENDS),
    seed=st.integers(0, 2**16),
)
def test_svd_property(
    batch: list[int], m: int, n: int, dtype: Any, full: bool, canon: bool, backend: str, seed: int
) -> None:
    a = rng_array(np.random.default_rng(seed), (*batch, m, n), dtype)
    t = Target(backend, "cpu")
    U, S, Vh = (t.numpy(p) for p in xback.svd(t.make(a), full_matrices=full, canonical_signs=canon))
    ref_dt = np.complex128 if np.dtype(dtype).kind == "c" else np.float64
    tol = 1e-4 if dtype == np.float32 else 1e-9
    _check_svd(a.astype(ref_dt), U, S, Vh, full, tol)
    assert S.dtype == (np.float32 if dtype == np.float32 else np.float64)


@given(
    batch_a=st.lists(st.integers(1, 2), max_size=2),
    batch_x=st.lists(st.integers(1, 2), max_size=1),
    m=st.integers(0, 6),
    n=st.integers(0, 4),
    k=st.one_of(st.none(), st.integers(0, 3)),
    dtypes=st.tuples(*[st.sampled_from([np.float64, np.int64, np.float32, np.complex128])] * 3),
    backend=st.sampled_from(BACKENDS),
    seed=st.integers(0, 2**16),
)
def test_lstsq_grad_property(
    batch_a: list[int],
    batch_x: list[int],
    m: int,
    n: int,
    k: int | None,
    dtypes: Any,
    backend: str,
    seed: int,
) -> None:
    rng = np.random.default_rng(seed)
    A = rng_array(rng, (*batch_a, m, n), dtypes[0])
    x = rng_array(rng, (n,) if k is None else (*batch_x, n, k), dtypes[1])
    y = rng_array(rng, (m,) if k is None else (m, k), dtypes[2])
    t = Target(backend, "cpu")
    g = xback.lstsq_grad(t.make(A), t.make(x), t.make(y))
    expected = ref_grad(A, x, y)
    rdt = np.result_type(*dtypes)
    if rdt.kind in "biu":
        rdt = np.dtype(np.float64)
    assert dtype_of(g) == rdt
    assert tuple(g.shape) == expected.shape
    tol = 1e-3 if np.finfo(rdt).bits <= 32 else 1e-9
    scale = 1.0 + np.abs(expected).max(initial=0)
    np.testing.assert_allclose(t.numpy(g), expected, rtol=tol, atol=tol * scale)
    np.testing.assert_allclose(
        t.numpy(xback.lstsq_grad_fn(t.make(A), t.make(y))(t.make(x))),
        expected,
        rtol=tol,
        atol=tol * scale * 10,
    )


@requires_torch
@pytest.mark.parametrize("dtype", ["float16", "bfloat16", "float32", "float64", "complex64"])
@pytest.mark.parametrize("n", [5, 257, (1 << 16) + 1])  # Python numbers / NumPy / torch
def test_torch_all_finite(dtype: str, n: int) -> None:
    """The torch backend's finiteness check (used by svd/svdvals) on every dtype and view
    kind: NaN, +inf and -inf anywhere are found; conj/neg views and tensors that require
    grad are read correctly."""
    from xback._dispatch import load_backend

    tb = load_backend("torch")
    dt = getattr(torch, dtype)
    x = torch.zeros(n, dtype=dt)
    assert tb.all_finite(x)
    assert tb.all_finite(x.reshape(1, n)) and tb.all_finite(x[:0])
    assert tb.all_finite(x.clone().requires_grad_(dt.is_floating_point or dt.is_complex))
    for bad in (float("nan"), float("inf"), -float("inf")):
        for where in (0, n - 1):
            y = x.clone()
            y[where] = bad
            assert not tb.all_finite(y), (bad, where)
            assert not tb.all_finite(y.flip(0)), (bad, where)
            assert not tb.all_finite(y.reshape(-1, 1).expand(-1, 2)[:, 1]), (bad, where)
            if dt.is_complex:
                assert not tb.all_finite(y.conj()), (bad, where)
            else:
                assert not tb.all_finite(torch._neg_view(y)), (bad, where)


@requires_torch
@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("n", [1, 5, 300])  # past FINITE_LIST_MAX too: S is read whole
def test_torch_singular_values_finite(dtype: str, n: int) -> None:
    """The torch backend's check of S (svd/svdvals): NaN, +inf and -inf anywhere in one
    matrix's S or a stack's are found; a meta tensor has no values (True)."""
    from xback._dispatch import load_backend

    tb = load_backend("torch")
    S = torch.linspace(5, 1, n, dtype=getattr(torch, dtype))
    assert tb.singular_values_finite(S) and tb.singular_values_finite(S.expand(3, n))
    assert tb.singular_values_finite(torch.empty(n, device="meta"))
    for bad in (float("nan"), float("inf"), float("-inf")):
        for where in (0, n - 1):
            y = S.clone()
            y[where] = bad
            assert not tb.singular_values_finite(y), (bad, where)
            assert not tb.singular_values_finite(torch.stack([S, y])), (bad, where)


@pytest.mark.parametrize("dtype", ["float16", "float32", "float64", "complex64", "complex128",
                                   ml_dtypes.bfloat16])
@pytest.mark.parametrize("n", [5, 257])  # Python numbers / NumPy's isfinite
def test_numpy_all_finite(dtype: Any, n: int) -> None:
    """The NumPy backend's finiteness check (svd/svdvals) on short and longer vectors, 2-D
    arrays and strided views: NaN, +inf and -inf anywhere are found."""
    from xback._dispatch import load_backend

    nb = load_backend("numpy")
    x = np.zeros(n, dtype=dtype)
    assert nb.all_finite(x) and nb.all_finite(x.reshape(1, n)) and nb.all_finite(x[:0])
    for bad in (np.nan, np.inf, -np.inf):
        for where in (0, n - 1):
            y = x.copy()
            y[where] = bad
            assert not nb.all_finite(y), (bad, where)
            assert not nb.all_finite(y[::-1]), (bad, where)
            assert not nb.all_finite(np.repeat(y, 2)[::2]), (bad, where)
            assert not nb.all_finite(y.reshape(1, n)), (bad, where)


# -- the small-matrix finiteness check (the norm of the entries as Python numbers) ------------
@pytest.mark.parametrize(
    "bad", [np.inf, -np.inf, np.nan, complex(np.inf, 0.0), complex(0.0, np.nan)]
)
@pytest.mark.parametrize("shape", [(4, 3), (8, 8), (9, 8)])  # at, and past, numpy.SMALL_VALUES_MAX
def test_svd_numpy_input_check_sees_each_nonfinite_entry(bad: Any, shape: tuple[int, int]) -> None:
    x = np.ones(shape, dtype=complex if isinstance(bad, complex) else float)
    x[shape[0] - 1, 1] = bad
    with pytest.raises(ValueError, match="non-finite"):
        xback.svd(x)


def test_svd_numpy_input_check_inf_and_minus_inf_do_not_cancel() -> None:
    x = np.zeros((4, 3))
    x[0, 0], x[1, 1] = np.inf, -np.inf
    with pytest.raises(ValueError, match="non-finite"):
        xback.svd(x, full_matrices=False)


def _host_library(name: str) -> Any:
    """``asarray`` of a host library whose svd runs CPU LAPACK."""
    if name == "jax":
        pytest.importorskip("jax")
        import jax.numpy as jnp

        return jnp.asarray
    if name == "array_api_strict":
        return pytest.importorskip("array_api_strict").asarray
    if name == "dask":  # one chunk: NumPy's LAPACK on the whole matrix
        da = pytest.importorskip("dask.array")
        return lambda a: da.from_array(a, chunks=a.shape)
    return np.asarray


@pytest.mark.parametrize(
    "lib", ["numpy", "array_api_strict", "dask", pytest.param("jax", marks=pytest.mark.jax)]
)
@pytest.mark.parametrize("fn", [xback.svd, xback.svdvals])
@pytest.mark.parametrize("shape", [(4, 3), (3, 4), (60, 20), (20, 60)])
@pytest.mark.parametrize("layout", ["contiguous", "strided"])
def test_nonfinite_input_stops_before_lapack_prints(
    lib: str, fn: Any, shape: tuple[int, int], layout: str, capfd: pytest.CaptureFixture[str]
) -> None:
    """NaN/inf input is refused before LAPACK runs: for inf, LAPACK's scaling prints "On entry
    to DLASCL parameter number 4 had an illegal value" on stdout (svdvals included, whose
    kernel would return NaN), which xback's users must not see."""
    asarray = _host_library(lib)
    for bad in (np.inf, -np.inf, np.nan):
        for where in (np.s_[:, :], np.s_[-1, -1], np.s_[:, 0]):  # where LAPACK printed
            x = np.random.default_rng(0).standard_normal((shape[0], 2 * shape[1]))
            x = x[:, ::2] if layout == "strided" else np.ascontiguousarray(x[:, ::2])
            x[where] = bad
            with pytest.raises(ValueError, match="non-finite"):
                fn(asarray(x) if lib != "numpy" else x)
    printed = c_stdio_output(capfd)
    assert "LASCL" not in printed and "illegal value" not in printed


@pytest.mark.parametrize(
    "lib", ["array_api_strict", pytest.param("jax", marks=pytest.mark.jax)]
)
def test_array_api_host_checks_read_numpy_memory(
    lib: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The generic backend's svd checks on a host array are NumPy's on the same memory: a
    proof of a bounded norm, or nothing; S's NaN/inf found; an array DLPack cannot share
    leaves the namespace's own checks (no proof; S checked with isfinite/all)."""
    asarray = _host_library(lib)
    ok = asarray(np.ones((4, 3)))
    b = kind_of(ok)
    assert b is not None
    assert b.norm_bounded(ok) and b.norm_bounded(asarray(np.ones((30, 30))))
    assert not b.norm_bounded(asarray(np.full((20, 20), 1e200)))  # the norm overflows
    S = np.linspace(3.0, 1.0, 3)
    assert b.singular_values_finite(asarray(S))
    for bad in (np.nan, np.inf, -np.inf):
        x = np.ones((4, 3))
        x[3, 2] = bad
        assert not b.norm_bounded(asarray(x))
        y = S.copy()
        y[-1] = bad
        assert not b.singular_values_finite(asarray(y))

    def refuse(x: Any) -> Any:
        raise BufferError("not shareable")

    monkeypatch.setattr(np, "from_dlpack", refuse)
    assert not b.norm_bounded(ok)
    assert b.singular_values_finite(asarray(S))
    y = S.copy()
    y[0] = np.nan
    assert not b.singular_values_finite(asarray(y))
    with pytest.raises(ValueError, match="non-finite"):
        xback.svdvals(asarray(np.full((4, 3), np.nan)))


@pytest.mark.filterwarnings("ignore:overflow encountered:RuntimeWarning")
@pytest.mark.parametrize(
    "lib", ["numpy", "array_api_strict", pytest.param("torch", marks=requires_torch)]
)
@pytest.mark.parametrize("fn", [xback.svd, xback.svdvals])
def test_singular_values_overflowing_from_finite_input_are_named(lib: str, fn: Any) -> None:
    """One matrix and a stack (S 2-D): each backend's check of S finds the overflow."""
    a = np.full((2, 2), 3e38, dtype=np.float32)  # finite; S[0] = 6e38 overflows float32
    asarray = torch.from_numpy if lib == "torch" else _host_library(lib)
    for x in (a, np.stack([a, a])):
        with pytest.raises(ValueError, match="overflowed although x is finite"):
            fn(asarray(x))


def test_numpy_norm_bounded_is_a_proof_or_nothing() -> None:
    """True only for finite entries whose norm cannot overflow the dtype: small matrices by
    their entries, larger contiguous ones by one dot product; anything else is left to the
    full checks (False)."""
    from xback.backends.numpy import BACKEND as nb

    assert nb.norm_bounded(np.ones((4, 3)))
    assert nb.norm_bounded(np.full((2, 2), 1e200))  # small: the norm itself, 2e200
    assert not nb.norm_bounded(np.full((20, 20), 1e200))  # the sum of squares overflows
    assert not nb.norm_bounded(np.full((2, 2), 3e38, dtype=np.float32))
    assert nb.norm_bounded(np.ones((30, 30), dtype=np.complex64))
    assert not nb.norm_bounded(np.ones((20, 20))[:, ::2])  # not contiguous: not read
    for shape in [(4, 3), (20, 20)]:
        for bad in (np.nan, np.inf, -np.inf):
            x = np.ones(shape)
            x[1, 2] = bad
            assert not nb.norm_bounded(x), (shape, bad)
        z = np.ones(shape, dtype=complex)
        z[1, 2] = complex(0.0, np.inf)
        assert not nb.norm_bounded(z), shape


def test_svd_numpy_finite_entries_whose_sum_overflows_are_rechecked() -> None:
    x = np.array([[1e308, 1e308], [0.0, 0.0]])  # the sum overflows, the entries are finite
    S = xback.svd(x).S
    np.testing.assert_allclose(S, np.linalg.svd(x, compute_uv=False))
