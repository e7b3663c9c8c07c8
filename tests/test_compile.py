"""xback inside ``torch.compile(fullgraph=True)``: zero graph breaks, the eager answer, the
context rule (a ``use`` around the compiled call is honoured and guarded), the traced
finiteness rule, and a cold process. Dynamo's ``"eager"`` backend is used (tracing is what
is tested; inductor's code generation adds seconds per case), inductor for one case."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import xback

torch = pytest.importorskip("torch")
dynamo = pytest.importorskip("torch._dynamo")


def _compiled(fn: Callable[..., Any], backend: str = "eager") -> Callable[..., Any]:
    return torch.compile(fn, fullgraph=True, backend=backend)  # type: ignore[no-any-return]


def _breaks(fn: Callable[..., Any], *args: Any) -> int:
    return int(dynamo.explain(fn)(*args).graph_break_count)


rng = np.random.default_rng(0)
V = torch.from_numpy(rng.standard_normal(12))
M = torch.from_numpy(rng.standard_normal((7, 4)))
A = torch.from_numpy(rng.standard_normal((9, 4)))
XV = torch.from_numpy(rng.standard_normal(4))
Y = torch.from_numpy(rng.standard_normal(9))

CASES: dict[str, tuple[Callable[..., Any], tuple[Any, ...]]] = {
    "sort": (lambda v: xback.sort(v, descending=True), (V,)),
    "argsort": (lambda v: xback.argsort(v), (V,)),
    "sort-axis0-int": (lambda m: xback.sort(m, axis=0), (M.to(torch.int32),)),
    "sort-complex": (lambda v: xback.sort(v), (V.to(torch.complex128),)),
    "svd": (lambda m: tuple(xback.svd(m, canonical_signs=True)), (M,)),
    "svd-thin-f32": (lambda m: tuple(xback.svd(m, full_matrices=False)), (M.float(),)),
    "svd-int": (lambda m: xback.svdvals(m), (M.to(torch.int64),)),
    "svdvals": (lambda m: xback.svdvals(m), (M,)),
    "lstsq_grad": (lambda a, x, y: xback.lstsq_grad(a, x, y), (A, XV, Y)),
    "lstsq_grad-explicit-mixed": (
        lambda a, x, y: xback.lstsq_grad(a, x, y, method="explicit"),
        (A.float(), XV, Y.to(torch.int32)),
    ),
    "lstsq_grad-autograd": (
        lambda a, x, y: xback.lstsq_grad(a, x, y, method="autograd"),
        (A, XV, Y),
    ),
    "lstsq_grad-fused": (  # the Numba kernel never sees a traced tensor: the BLAS formula
        lambda a, x, y: xback.lstsq_grad(a, x, y, method="fused"),
        (A, XV, Y),
    ),
    "lstsq_grad_fn": (lambda a, x, y: xback.lstsq_grad_fn(a, y)(x), (A, XV, Y)),
    "get_backend-get_device": (
        lambda v: v * len(xback.get_backend()) + (xback.get_device() is None),
        (V,),
    ),
    "asarray-device-backend": (
        lambda v: xback.asarray(v) * (xback.device(v) == "cpu") + (xback.backend_of(v) == "torch"),
        (V,),
    ),
}

# the sort family (issue 22: the compile rules apply to it too), with NaN, ties and -0.0
VN = torch.tensor([3.0, float("nan"), -0.0, 0.0, 5.0, 3.0, float("nan"), -2.0, 5.0, 1.0])
XS = torch.tensor([-1.0, 0.0, 2.0, 2.0, 7.0, float("nan")])
FAMILY: dict[str, tuple[Callable[..., Any], tuple[Any, ...]]] = {
    "top_k": (lambda v: tuple(xback.top_k(v, 4)), (VN,)),
    "top_k-smallest-rows": (lambda m: tuple(xback.top_k(m, 2, largest=False)), (M,)),
    "top_k-int": (lambda v: tuple(xback.top_k(v, 3)), (V.mul(3).to(torch.int64),)),
    "searchsorted-left": (lambda a, q: xback.searchsorted(a, q), (XS, VN)),
    "searchsorted-right": (lambda a, q: xback.searchsorted(a, q, side="right"), (XS, VN)),
    "median": (lambda v: xback.median(v), (VN,)),
    "median-rows": (lambda m: xback.median(m, axis=1), (M,)),
    "nanmedian": (lambda v: xback.nanmedian(v), (VN,)),
    "quantile": (lambda m: xback.quantile(m, [0.1, 0.5, 0.9], axis=0), (M,)),
    "quantile-nan": (lambda v: xback.quantile(v, 0.3), (VN,)),
    "nanquantile-method": (lambda v: xback.nanquantile(v, 0.3, method="weibull"), (VN,)),
    "rankdata": (lambda m: xback.rankdata(m), (M,)),
    "rankdata-nan-omit": (lambda v: xback.rankdata(v, nan_policy="omit"), (VN,)),
    "rankdata-int-dense": (lambda v: xback.rankdata(v, method="dense"),
                           (V.mul(2).to(torch.int64),)),
}


def _same(got: Any, want: Any, exact: bool) -> None:
    if isinstance(want, tuple):
        for g, w in zip(got, want):
            _same(g, w, exact)
        return
    assert got.dtype == want.dtype and got.shape == want.shape
    if exact:
        assert torch.equal(got, want)
    else:
        torch.testing.assert_close(got, want)


@pytest.mark.parametrize("name", list(CASES))
def test_fullgraph_gives_the_eager_answer_with_no_graph_break(name: str) -> None:
    if name == "lstsq_grad-fused":
        pytest.importorskip("numba")
    fn, args = CASES[name]
    want = fn(*args)
    got = _compiled(fn)(*args)
    _same(got, want, exact=name.startswith(("sort", "argsort")))
    assert _breaks(fn, *args) == 0


@pytest.mark.parametrize("name", list(FAMILY))
def test_sort_family_fullgraph_gives_the_eager_answer_with_no_graph_break(name: str) -> None:
    fn, args = FAMILY[name]
    want = fn(*args)
    got = _compiled(fn)(*args)
    if name.startswith("rankdata") and args[0].dtype.is_floating_point:
        # traced: the NaN rule is applied without reading the values, so every method's
        # ranks are float64 (the dtype eager gives when a NaN is present)
        want = want.double()
    for g, w in zip(got if isinstance(got, tuple) else (got,),
                    want if isinstance(want, tuple) else (want,)):
        assert g.dtype == w.dtype and g.shape == w.shape
        torch.testing.assert_close(g, w, equal_nan=True, rtol=0, atol=0)
    assert _breaks(fn, *args) == 0


def test_sort_family_traced_rules() -> None:
    # nan_policy='raise' reads the values: a clear error in traced code, never a break
    with pytest.raises(Exception, match="nan_policy='raise' reads the values"):
        _compiled(lambda v: xback.rankdata(v, nan_policy="raise"))(VN)
    ranks = _compiled(lambda v: xback.rankdata(v, method="ordinal"))(V)
    assert ranks.dtype == torch.float64
    assert torch.equal(ranks, xback.rankdata(V, method="ordinal").double())


def test_inductor_compiles_a_model_like_function() -> None:
    def f(v: Any, m: Any) -> Any:
        top = xback.sort(v, descending=True)[:3]
        return top.sum() + xback.svdvals(m).sum() * 2

    torch.testing.assert_close(_compiled(f, "inductor")(V, M), f(V, M))


def test_a_use_around_the_compiled_call_is_honoured_and_guarded() -> None:
    calls: list[int] = []

    def count(gm: Any, example_inputs: Any) -> Any:  # a Dynamo backend that counts traces
        calls.append(1)
        return gm.forward

    def f(v: Any) -> Any:
        return xback.sort(v) * 2

    cf = torch.compile(f, fullgraph=True, backend=count)
    assert cf(V).device.type == "cpu"
    with xback.use("torch", device="meta"):
        out = cf(V)
    assert out.device.type == "meta" and out.shape == V.shape  # not silently the cpu graph
    assert cf(V).device.type == "cpu"  # back outside
    with xback.use("torch", device="meta"):  # xback's caches (devices, types) are now warm
        cf(V)
    cf(V)
    n = len(calls)
    for _ in range(2):
        with xback.use("torch", device="meta"):
            assert cf(V).device.type == "meta"  # the same choice again: no new trace
        assert cf(V).device.type == "cpu"
    assert len(calls) == n
    with xback.use(route=False):  # chooses no backend or device: same answer
        assert torch.equal(cf(V), f(V))


def test_a_use_that_would_convert_tensors_raises_clearly() -> None:
    cf = _compiled(lambda v: xback.sort(v))
    with xback.use("numpy"), pytest.raises(Exception, match=r"inside torch\.compile xback cannot"):
        cf(V)


def test_use_cannot_be_entered_while_tracing() -> None:
    def f(v: Any) -> Any:
        with xback.use("torch"):
            return xback.sort(v)

    with pytest.raises(Exception, match="cannot be entered inside a function that torch"):
        _compiled(f)(V)


def test_the_compiled_context_follows_each_thread() -> None:
    import threading

    cf = _compiled(lambda v: xback.sort(v) + 1)
    cf(V)
    seen: list[str] = []

    def other() -> None:
        with xback.use("torch", device="meta"):
            seen.append(cf(V).device.type)

    t = threading.Thread(target=other)
    with xback.use("torch", device="cpu"):
        t.start()
        t.join()
        seen.append(cf(V).device.type)
    assert seen == ["meta", "cpu"]


def test_traced_svd_of_nonfinite_input_is_nan_not_an_error() -> None:
    m = torch.stack([M, M.clone()])
    m[1, 2, 3] = float("inf")
    with pytest.raises(ValueError, match="non-finite"):
        xback.svdvals(m)  # eager: the documented error
    s = _compiled(lambda m: xback.svdvals(m))(m)
    torch.testing.assert_close(s[0], xback.svdvals(M))
    assert torch.isnan(s[1]).all()
    U, S, Vh = _compiled(lambda m: tuple(xback.svd(m)))(m)
    assert torch.isnan(U[1]).all() and torch.isnan(S[1]).all() and torch.isnan(Vh[1]).all()
    assert torch.isfinite(U[0]).all() and torch.isfinite(Vh[0]).all()


def test_no_routing_inside_tracing(
    table: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    from tests.test_routing import make_table
    from xback._dispatch import load_backend

    table(make_table("numpy"))  # NumPy 10x faster everywhere: eager torch calls are routed
    routed: list[Any] = []
    numpy_backend = load_backend("numpy")
    real = numpy_backend.sort

    def spy(*args: Any) -> Any:
        routed.append(args)
        return real(*args)

    monkeypatch.setattr(numpy_backend, "sort", spy)
    big = torch.from_numpy(rng.standard_normal(4096))
    want = xback.sort(big)
    assert routed  # the table routes this call in eager code
    routed.clear()
    got = _compiled(lambda v: xback.sort(v))(big)
    assert torch.equal(got, want)
    assert not routed


def test_compile_composes_with_func_grad() -> None:
    g = _compiled(torch.func.grad(lambda v: xback.sort(v)[:3].sum()))
    want = torch.func.grad(lambda v: torch.sort(v)[0][:3].sum())(V)
    torch.testing.assert_close(g(V), want)
    gs = _compiled(torch.func.grad(lambda m: xback.svdvals(m).sum()))
    torch.testing.assert_close(gs(M), torch.func.grad(lambda m: torch.linalg.svdvals(m).sum())(M))


def test_cold_process_fullgraph() -> None:
    # first xback call of the process inside the compiled function: the torch backend is
    # loaded during tracing, the dtype rules and the routing table are never read there
    code = textwrap.dedent(
        """
        import xback, torch
        v = torch.tensor([3.0, 1.0, float("nan"), 2.0])
        m = torch.arange(12.0).reshape(4, 3)
        f = lambda v, m: (xback.sort(v, descending=True), xback.svdvals(m),
                          xback.lstsq_grad(m, m[0], v))
        got = torch.compile(f, fullgraph=True, backend="eager")(v, m)
        want = f(v, m)
        torch.testing.assert_close(got[0], want[0], rtol=0, atol=0, equal_nan=True)
        torch.testing.assert_close(got[1], want[1])
        torch.testing.assert_close(got[2], want[2], equal_nan=True)
        print("ok")
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path)}
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
    )
    assert out.returncode == 0 and out.stdout.strip().endswith("ok"), out.stderr[-3000:]


# -- what xback adds to a compiled graph ------------------------------------------------------
#: ATen ops that only view or restate a shape (xback's finiteness rule keeps one flag per
#: matrix of a stack, so it reshapes where a model of one matrix need not)
_VIEWS = {"aten.unsqueeze.default", "aten.view.default", "aten.expand.default"}


def _aten_ops(fn: Callable[..., Any], *args: Any) -> dict[str, int]:
    """The ATen ops of ``fn``'s compiled forward graph (after AOT autograd's
    functionalization), views left out, ``all`` over some or all dimensions counted alike."""
    from collections import Counter

    from functorch.compile import make_boxed_func
    from torch._dynamo.backends.common import aot_autograd

    seen: Counter[str] = Counter()

    def forward(gm: Any, example: Any) -> Any:
        for node in gm.graph.nodes:
            name = str(node.target)
            if node.op == "call_function" and name not in _VIEWS:
                seen[name.replace("aten.all.dims", "aten.all.default")] += 1
        return make_boxed_func(gm.forward)

    dynamo.reset()
    torch.compile(fn, fullgraph=True, backend=aot_autograd(fw_compiler=forward))(*args)
    return dict(seen)


def test_compiled_model_is_raw_torch_with_the_same_contract_op_for_op() -> None:
    """The benchmark's model (``xback bench compile``) written with xback compiles to the same
    ATen ops as raw torch written with xback's contract by hand (NaN-last descending sort, the
    traced finiteness rule), views aside: the dispatch layer adds nothing to the graph. (Its
    ``_linalg_svd`` asks for the singular values alone, which raw ``svdvals`` does not when
    compiled: see the next test.)"""
    from xback.bench.compile import model_raw_contract, model_xback

    n, k = 64, 4
    g = np.random.default_rng(1)
    args = tuple(
        torch.from_numpy(g.standard_normal(s).astype(np.float32))
        for s in ((n,), (n // 8, k), (n, k), (k,), (n,))
    )
    assert _aten_ops(model_xback, *args) == _aten_ops(model_raw_contract, *args)


def _svd_calls(fn: Callable[..., Any], *args: Any) -> list[tuple[Any, ...]]:
    """The arguments of each ``_linalg_svd`` in ``fn``'s compiled forward graph."""
    from functorch.compile import make_boxed_func
    from torch._dynamo.backends.common import aot_autograd

    calls: list[tuple[Any, ...]] = []

    def forward(gm: Any, example: Any) -> Any:
        calls.extend(
            tuple(node.args[1:]) for node in gm.graph.nodes if "_linalg_svd" in str(node.target)
        )
        return make_boxed_func(gm.forward)

    dynamo.reset()
    torch.compile(fn, fullgraph=True, backend=aot_autograd(fw_compiler=forward))(*args)
    return calls


def test_compiled_svdvals_asks_lapack_for_the_values_alone() -> None:
    """Raw ``torch.linalg.svdvals`` compiles to an SVD that also computes U and V (Dynamo's
    tracing tensors look differentiable to its decomposition); xback's asks for the values
    alone when nothing needs a gradient, and keeps torch's path (and its gradient) when the
    input requires one."""
    # _linalg_svd(A, full_matrices=False, compute_uv=True): its defaults
    assert _svd_calls(torch.linalg.svdvals, M) == [()]
    assert _svd_calls(xback.svdvals, M) == [(False, False)]
    m = M.clone().requires_grad_()
    assert _svd_calls(xback.svdvals, m) == [()]
    got = _compiled(lambda t: xback.svdvals(t).sum(), "inductor")
    m.grad = None
    got(m).backward()
    want = M.clone().requires_grad_()
    torch.linalg.svdvals(want).sum().backward()
    torch.testing.assert_close(m.grad, want.grad)
    torch.testing.assert_close(_compiled(xback.svdvals, "inductor")(M), torch.linalg.svdvals(M))
    # forward mode needs U and V although nothing requires grad: torch's path is kept
    t = torch.ones_like(M)
    got = _compiled(lambda a: torch.func.jvp(xback.svdvals, (a,), (t,))[1])(M)
    torch.testing.assert_close(got, torch.func.jvp(torch.linalg.svdvals, (M,), (t,))[1])
    stack = torch.stack([M, 2 * M])
    got = _compiled(torch.func.vmap(xback.svdvals))(stack)
    torch.testing.assert_close(got, torch.linalg.svdvals(stack))
