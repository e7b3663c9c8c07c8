"""The sort family on the torch backend (the contract: :mod:`xback._sortfamily`).

What torch 2.13 gives and what is done about it:

* ``torch.topk`` treats NaN as the largest value and is not stable. ``top_k`` calls it for
  ``k + 1`` elements on order-preserving keys (unsigned and bool mapped to signed keys); when
  none of those is NaN and the ``(k+1)``-th differs from the k-th, the first ``k`` are the
  contract's set, re-sorted stably by (key, index). Otherwise (NaN or a tie at the boundary)
  the set is chosen by a mask on ascending keys (``-x`` for largest floats, NaN last): the
  keys below the k-th, then the earliest equal ones. Values are gathered from ``x``
  (differentiable). Complex input, ``k == n`` and ``meta`` tensors take the stable argsort.
  A 1-D plain CPU tensor without autograd, not traced, selects the indices with the NumPy
  backend's ``top_k`` on a zero-copy view (a SIMD partition: measured faster than
  ``torch.topk`` for 1-D; for batches ``torch.topk``, parallel over rows, is faster).
* ``torch.searchsorted`` needs one dtype and misplaces NaN (in ``x1`` and as a query): NaNs
  of ``x1`` are searched as ``+inf`` and the answer clamped to the NaN-free count, NaN
  queries answered directly; complex input takes the generic merge. The fix-ups run only
  where needed: a row of ``x1`` holds NaN iff its last sorted element is NaN (one element
  read), the queries are checked by one ``isnan(...).any()``. A 1-D ``x1`` of plain CPU
  tensors (not traced; indices carry no gradient) takes the NumPy backend's search on
  zero-copy views (NaN in the sort's order natively, queries searched in sorted order:
  measured faster than ``torch.searchsorted``).
* ``unique``: on a plain CPU tensor without autograd, not traced, the NumPy backend's
  ``unique`` on a zero-copy view (measured faster than ``torch.unique``). Else
  ``torch.unique`` for integers and bools (no first indices); the generic sort-based path
  otherwise, and a ``ValueError`` for ``meta`` tensors (the size depends on the data).
* quantiles: on a plain CPU tensor without autograd and not traced (``_numpy_view``), the
  whole median/quantile on the NumPy backend (small inputs: the generic path's dozen small
  torch operations cost more than the selection), its selection on a zero-copy view
  (``_numpy_family.order_statistics``: one SIMD partition, then min/max; measured faster
  than ``torch.kthvalue``/``torch.median``, see docs/benchmarks.md). Else
  ``torch.kthvalue`` (a selection; NaN largest) for up to three order statistics, else one
  sort; never ``torch.quantile`` (2^24-element limit).
"""

from __future__ import annotations

from typing import Any

import torch

from xback.backends import _family_generic, _numpy_family, _torch_sort

__all__ = ["median", "order_statistics", "quantile", "rankdata", "searchsorted", "top_k",
           "unique"]

_FLOATS = frozenset({torch.float16, torch.bfloat16, torch.float32, torch.float64})
_COMPLEX = frozenset({torch.complex64, torch.complex128})
_INT64_MIN = -(2**63)


#: dtypes whose CPU tensors NumPy's selection reads in place (``Tensor.numpy``)
_VIEWABLE = frozenset({
    torch.bool, torch.float16, torch.float32, torch.float64, torch.int8, torch.int16, torch.int32,
    torch.int64, torch.uint8,
})


def _numpy_view(x: Any) -> Any:
    """``x.numpy()`` (zero-copy) where NumPy's selection may stand in for torch's: a plain
    CPU tensor of a NumPy dtype that needs no autograd and is not being traced or transformed
    (``torch.compile``, ``torch.func``, ``torch.jit.trace``); else None. The results go back
    through ``torch.from_numpy`` (no copy). A measured fast path of this backend, not
    routing."""
    from xback.backends.torch import BACKEND

    if (
        type(x) is not torch.Tensor
        or x.dtype not in _VIEWABLE
        or x.requires_grad
        or BACKEND.traced(x)
        or torch._C._get_tracing_state() is not None  # torch.jit.trace
        or not x.is_cpu
        or x.is_neg()
        or x.is_conj()
    ):
        return None
    return x.numpy()


def _keys(x: Any) -> Any:
    """Order-preserving keys torch's topk/searchsorted/unique take (x detached)."""
    dt = x.dtype
    if dt == torch.bool:
        return x.to(torch.uint8)
    if dt == torch.uint64:
        return x.view(torch.int64) ^ _INT64_MIN
    if dt == torch.uint32:
        return x.to(torch.int64)
    if dt == torch.uint16:
        return x.to(torch.int32)
    return x.detach()


_SIGNED_VIEW = {torch.uint16: torch.int16, torch.uint32: torch.int32, torch.uint64: torch.int64}


def _gather(x: Any, idx: Any) -> Any:
    """``x.gather(-1, idx)``; through a same-width signed view where torch has no gather."""
    view = _SIGNED_VIEW.get(x.dtype)
    if view is None:
        return x.gather(-1, idx)
    return x.view(view).gather(-1, idx).view(x.dtype)


def _full(x: Any, k: int, largest: bool) -> tuple[Any, Any]:
    idx = _torch_sort.argsort(x, x.dim() - 1, largest, True)[..., :k]
    return _gather(x, idx), idx


def _traced(x: Any) -> bool:
    """Values cannot be read (``torch.compile``, ``torch.func``, ``meta``): the branch-free
    paths run, never a data-dependent fix-up."""
    from xback.backends.torch import BACKEND

    return bool(x.is_meta or BACKEND.traced(x))


def top_k(x: Any, k: int, largest: bool) -> tuple[Any, Any]:
    n = x.shape[-1]
    if k == n or k == 0 or x.dtype in _COMPLEX or x.numel() == 0 or _traced(x):
        return _full(x, k, largest)  # traced: the definition, a stable sort, branch-free
    view = _numpy_view(x) if x.dim() == 1 else None
    if view is not None:
        idx = torch.from_numpy(_numpy_family.top_k(view, k, largest)[1])
        return x[idx], idx
    K = _keys(x)
    floats = K.dtype in _FLOATS
    vals, sel = torch.topk(K, k + 1, dim=-1, largest=largest, sorted=True)
    bad = vals[..., k - 1] == vals[..., k]
    if floats:
        bad = bad | torch.isnan(vals).any(dim=-1)
    if bool(bad.any()):
        asc = (torch.neg(K) if floats else torch.bitwise_not(K)) if largest else K
        lead = asc.shape[:-1]
        A = asc.reshape(-1, n)
        v = torch.topk(A, k, dim=-1, largest=False, sorted=True)[0][:, k - 1 : k]
        if floats:
            vn, an = torch.isnan(v), torch.isnan(A)
            lt = torch.where(vn, ~an, v > A)
            eq = torch.where(vn, an, v == A)
        else:
            lt, eq = v > A, v == A
        need = k - lt.sum(dim=1, keepdim=True)
        m = lt | (eq & (torch.cumsum(eq, dim=1) <= need))
        sel = m.nonzero()[:, 1].reshape(*lead, k)
        keys = torch.gather(asc, -1, sel)  # sel is in index order: a stable sort suffices
        o = torch.sort(keys, dim=-1, stable=True)[1]
    else:
        sel = torch.sort(sel[..., :k], dim=-1)[0]
        keys = torch.gather(K, -1, sel)
        o = torch.sort(keys, dim=-1, descending=largest, stable=True)[1]
    idx = torch.gather(sel, -1, o)
    return _gather(x, idx), idx


def searchsorted(x1: Any, x2: Any, right: bool, sorter: Any) -> Any:
    from xback.backends.torch import BACKEND

    if x1.dtype in _COMPLEX:
        return _family_generic.searchsorted(BACKEND, x1, x2, right, sorter)
    if x1.dtype in (torch.float16, torch.bfloat16):
        x1, x2 = x1.float(), x2.float()
    a, q = _keys(x1), _keys(x2)
    va = _numpy_view(a) if a.dim() == 1 else None
    vq = None if va is None else _numpy_view(q)
    vs = None if vq is None or sorter is None else _numpy_view(sorter)
    if vq is not None and (sorter is None or vs is not None):
        return torch.from_numpy(_numpy_family.searchsorted(va, vq, right, vs))
    if not a.is_contiguous():
        a = a.contiguous()
    if not q.is_contiguous():
        q = q.contiguous()
    if a.dtype not in _FLOATS:
        return torch.searchsorted(a, q, right=right, sorter=sorter)
    n = a.shape[-1]
    # x1 sorted with NaN last: a row holds NaN iff its last (sorted) element is NaN, one
    # element a row to look at instead of all
    last = a[..., -1:] if sorter is None else a.gather(-1, sorter[..., -1:])
    valid: Any = None
    traced = _traced(a) or _traced(q)
    if traced or bool(torch.isnan(last).any()):
        # search NaNs as +inf, clamp to the NaN-free count of the row
        valid = n - torch.isnan(a).sum(dim=-1, keepdim=True)
        r = torch.searchsorted(a.nan_to_num(nan=torch.inf), q, right=right, sorter=sorter)
        r = torch.minimum(r, valid)
    else:
        r = torch.searchsorted(a, q, right=right, sorter=sorter)
    qn = torch.isnan(q)
    if traced or bool(qn.any()):
        r = torch.where(qn, n if right or valid is None else valid, r)
    return r


def unique(
    x: Any, equal_nan: bool, want_indices: bool, want_inverse: bool, want_counts: bool
) -> tuple[Any, Any, Any, Any]:
    from xback.backends.torch import BACKEND

    if x.is_meta:
        raise ValueError(
            "unique on a meta tensor: the number of unique values depends on the data, "
            "which a meta tensor does not have"
        )
    view = _numpy_view(x.detach())  # no gradient flows through unique's values
    if view is not None:
        r = _numpy_family.unique(view, equal_nan, want_indices, want_inverse, want_counts)
        v, i, inv, cnt = (None if a is None else torch.from_numpy(a) for a in r)
        return v, i, inv, cnt
    dt = x.dtype
    if dt in _SIGNED_VIEW:  # no gather for these: exact order-preserving signed keys
        v, i, inv, cnt = unique(_keys(x), equal_nan, want_indices, want_inverse, want_counts)
        v = (v ^ _INT64_MIN).view(dt) if dt == torch.uint64 else v.to(dt)
        return v, i, inv, cnt
    if not want_indices and dt in (torch.bool, torch.int8, torch.int16, torch.int32,
                                   torch.int64, torch.uint8):
        r = torch.unique(x, sorted=True, return_inverse=want_inverse, return_counts=want_counts)
        if isinstance(r, tuple):
            v, rest = r[0], list(r[1:])
        else:
            v, rest = r, []
        inv = rest.pop(0) if want_inverse else None
        cnt = rest.pop(0) if want_counts else None
        return v, None, inv, cnt
    return _family_generic.unique(BACKEND, x.detach(), equal_nan, want_indices, want_inverse,
                                  want_counts)


def _next_statistic(x: Any, v: Any, k: int) -> Any:
    """Order statistic ``k + 1`` from statistic ``k`` (``v``, shape ``(..., 1)``) by three
    elementwise passes instead of a second selection: ``v`` again when more than ``k + 1``
    elements are at most ``v``, else the smallest element above ``v``; NaN when fewer than
    ``k + 2`` numbers exist (NaN sorts last)."""
    le = (x <= v).sum(dim=-1, keepdim=True)
    above = torch.where(x > v, x, torch.inf).amin(dim=-1, keepdim=True)
    r = torch.where(le >= k + 2, v, above)
    numbers = (~torch.isnan(x)).sum(dim=-1, keepdim=True)
    return torch.where(numbers >= k + 2, r, torch.nan)


def order_statistics(x: Any, kth: list[int]) -> Any:
    from xback.backends.torch import BACKEND

    view = _numpy_view(x)
    if view is not None and x.numel():
        return torch.from_numpy(_numpy_family.order_statistics(view, kth))
    n = x.shape[-1]
    inner = [k for k in kth if k != n - 1]
    if len(inner) > 3:
        return _family_generic.order_statistics(BACKEND, x, kth)
    got: dict[int, Any] = {}
    for k in inner:
        if k - 1 in got:  # adjacent to one already selected
            got[k] = _next_statistic(x, got[k - 1], k - 1)
        else:
            got[k] = torch.kthvalue(x, k + 1, dim=-1, keepdim=True)[0]
    if n - 1 in kth:  # the largest, NaN when there is one: a NaN-propagating max
        got[n - 1] = torch.amax(x, dim=-1, keepdim=True)
    return torch.cat([got[k] for k in kth], dim=-1)


def _on_view(x: Any) -> Any:
    """The NumPy backend and ``x``'s zero-copy NumPy view where NumPy may compute for ``x``
    (:func:`_numpy_view`, non-empty), else ``(None, None)``."""
    view = _numpy_view(x)
    if view is None or not view.size:
        return None, None
    from xback.backends.numpy import BACKEND as NUMPY

    return NUMPY, view


def median(x: Any, skipna: bool) -> Any:
    """:meth:`Backend.median`: the whole reduction on the NumPy view where it may run there
    (the generic path's dozen small torch operations cost more than the selection on small
    inputs), else the generic path on torch."""
    from xback.backends.torch import BACKEND

    nb, view = _on_view(x)
    if nb is not None:
        return torch.from_numpy(_np_array(nb.median(view, skipna)))
    return _family_generic.median(BACKEND, x, skipna)


def quantile(x: Any, q: Any, method: str, skipna: bool) -> Any:
    """:meth:`Backend.quantile`, as :func:`median`."""
    from xback.backends.torch import BACKEND

    nb, view = _on_view(x)
    if nb is not None:
        return torch.from_numpy(_np_array(nb.quantile(view, q, method, skipna)))
    return _family_generic.quantile(BACKEND, x, q, method, skipna)


def _np_array(r: Any) -> Any:
    import numpy as np

    return np.asarray(r)  # a NumPy scalar (a 0-d result) as an array


def rankdata(x: Any, method: str) -> Any:
    from xback.backends.torch import BACKEND

    if x.is_meta:
        dt = torch.float64 if method == "average" else torch.int64
        return torch.empty(x.shape, dtype=dt, device=x.device)
    if _traced(x) and method in ("min", "max", "average") and x.numel():
        return _rank_groups(_keys(x), method)
    return _family_generic.rankdata(BACKEND, _keys(x), method)


def _rank_groups(K: Any, method: str) -> Any:
    """``min``/``max``/``average`` ranks of tie groups by two scans (a running max of each
    group's first position, a reversed running min of its last) instead of the generic
    path's ``nonzero``, whose size depends on the data: branch-free, for traced code."""
    n = K.shape[-1]
    perm = _torch_sort.argsort(K, K.dim() - 1, False, True)
    inv = torch.argsort(perm, dim=-1)
    srt = K.gather(-1, perm)
    one = torch.ones((*srt.shape[:-1], 1), dtype=torch.bool, device=srt.device)
    differs = srt[..., 1:] != srt[..., :-1]  # NaN != NaN: each NaN its own group
    first = torch.cat((one, differs), dim=-1)
    last = torch.cat((differs, one), dim=-1)
    pos = torch.arange(n, device=srt.device).expand(srt.shape)
    lo = torch.cummax(torch.where(first, pos, 0), dim=-1).values + 1
    hi = torch.cummin(torch.where(last, pos, n).flip(-1), dim=-1).values.flip(-1) + 1
    r = lo if method == "min" else hi if method == "max" else (lo + hi).double() / 2
    return r.gather(-1, inv)
