"""Sorting for the torch backend (see :meth:`xback.backends.Backend.sort` for the contract).

What torch 2.13 gives and what is done about it:

* ``torch.sort(stable=True)`` is stable in both directions and puts NaN last ascending, but
  first descending. Floats descending are therefore sorted ascending on ``-x`` (NaN stays NaN
  and last, ``-0.0 == 0.0``, exact): two cheap elementwise passes, no extra sort, and the
  values stay differentiable.
* uint16/uint32/uint64: ``torch.sort`` fails on large CPU inputs ("parallel_sort1d_kernel not
  implemented") and ``gather``/``flip`` are missing; they are sorted through exact
  order-preserving signed keys (uint16 -> int32, uint32 -> int64, uint64 -> its bits as int64
  with the sign bit flipped) and the values mapped back.
* complex: no sort at all on the CPU. Sorted by three stable passes (imaginary part, real part,
  NaN group), which gives NumPy's order exactly; descending sorts ``-x`` the same way.
"""

from __future__ import annotations

import functools
from typing import Any

import torch

__all__ = ["argsort", "last_axis_sorts", "sort"]

_FLOATS = frozenset({torch.float16, torch.bfloat16, torch.float32, torch.float64})
_COMPLEX = frozenset({torch.complex64, torch.complex128})
_INT64_MIN = -(2**63)


def _complex_argsort(x: Any, axis: int, descending: bool) -> Any:
    if descending:
        x = torch.neg(x)
    re, im = x.real, x.imag
    perm = torch.sort(im, dim=axis, stable=True)[1]  # NaN last
    step = torch.sort(re.gather(axis, perm), dim=axis, stable=True)[1]
    perm = perm.gather(axis, step)
    # NumPy's groups: R+Rj < R+nanj < nan+Rj < nan+nanj
    group = torch.isnan(re).to(torch.int8) * 2 + torch.isnan(im).to(torch.int8)
    step = torch.sort(group.gather(axis, perm), dim=axis, stable=True)[1]
    return perm.gather(axis, step)


# dim=-1 is torch's default and is not passed: each keyword costs torch's argument parser
# time (docs/benchmarks.md#sixth-pass-the-descending-float-kernels-2026-12-06-2030-utc)
def _float_desc_values(x: Any, dim: int = -1, stable: bool = True) -> Any:
    """Floats sorted descending, NaN last: ascending on ``-x``, negated back (exact; in
    place, also under autograd: sort's backward reads its indices, not its values)."""
    nx = torch.neg(x)
    s = torch.sort(nx, stable=stable) if dim == -1 else torch.sort(nx, dim=dim, stable=stable)
    return s[0].neg_()


def _float_desc_indices(x: Any, dim: int = -1, stable: bool = True) -> Any:
    if x.requires_grad:  # argsort records no graph; the negation would (detach costs)
        x = x.detach()
    nx = torch.neg(x)
    return (torch.argsort(nx, stable=stable) if dim == -1
            else torch.argsort(nx, dim=dim, stable=stable))


def _values(x: Any) -> Any:
    return torch.sort(x, stable=True)[0]


def _values_desc(x: Any) -> Any:  # integers and bool: torch's own order is the contract's
    return torch.sort(x, descending=True, stable=True)[0]


def _last_axis_sorts() -> dict[Any, tuple[Any, ...]]:
    """:attr:`xback.backends.Backend.last_axis_sorts`: the common call (last axis, stable)
    as direct torch calls, for the dtypes whose general branch is one or two torch calls:
    the floats, signed integers and bool (not the unsigned integers and complex numbers,
    which need keys)."""
    argsort_asc = functools.partial(torch.argsort, stable=True)
    argsort_desc = functools.partial(torch.argsort, descending=True, stable=True)
    table: dict[Any, tuple[Any, ...]] = {
        dt: (_values, _float_desc_values, argsort_asc, _float_desc_indices) for dt in _FLOATS
    }
    for dt in (torch.int8, torch.int16, torch.int32, torch.int64, torch.uint8, torch.bool):
        table[dt] = (_values, _values_desc, argsort_asc, argsort_desc)
    return table


def sort(x: Any, axis: int | None, descending: bool, stable: bool) -> Any:
    if axis is None:
        x, axis = x.reshape(-1), 0
    dt = x.dtype
    if dt in _FLOATS:
        if not descending:
            return torch.sort(x, dim=axis, stable=stable)[0]
        return _float_desc_values(x, axis, stable)
    if dt in _COMPLEX:
        return x.gather(axis, _complex_argsort(x.detach(), axis, descending))
    if dt == torch.uint64:
        keys = x.view(torch.int64) ^ _INT64_MIN
        v = torch.sort(keys, dim=axis, descending=descending, stable=stable)[0]
        return v.bitwise_xor_(_INT64_MIN).view(torch.uint64)
    if dt == torch.uint32 or dt == torch.uint16:
        wide = torch.int64 if dt == torch.uint32 else torch.int32
        v = torch.sort(x.to(wide), dim=axis, descending=descending, stable=stable)[0]
        return v.to(dt)
    return torch.sort(x, dim=axis, descending=descending, stable=stable)[0]


def argsort(x: Any, axis: int | None, descending: bool, stable: bool) -> Any:
    if axis is None:
        x, axis = x.reshape(-1), 0
    dt = x.dtype
    if dt in _FLOATS:
        if descending:
            return _float_desc_indices(x, axis, stable)
        return torch.argsort(x, dim=axis, stable=stable)
    if dt in _COMPLEX:
        return _complex_argsort(x.detach(), axis, descending)
    # integer and bool tensors cannot require grad
    if dt == torch.uint64:
        x = x.view(torch.int64) ^ _INT64_MIN
    elif dt == torch.uint32:
        x = x.to(torch.int64)
    elif dt == torch.uint16:
        x = x.to(torch.int32)
    return torch.argsort(x, dim=axis, descending=descending, stable=stable)


#: :attr:`xback.backends.Backend.last_axis_sorts` of the torch backend
last_axis_sorts = _last_axis_sorts()
