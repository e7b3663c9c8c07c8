"""Static checks of xback's public types, run by mypy (``tests/test_typing.py``), never
executed. Each ``assert_type`` is an exact claim about what a type checker sees; the
``type: ignore[...]`` lines are calls that must be rejected (``warn_unused_ignores`` turns an
accepted call into an error)."""

from __future__ import annotations

from typing import Any

import dask.array as da
import numpy as np
import numpy.typing as npt
import torch
from typing_extensions import assert_type

import xback as xb

a = np.zeros(3)
t = torch.zeros(3)

# asarray: the input's kind, or the kind named by backend=
assert_type(xb.asarray(a), np.ndarray)
assert_type(xb.asarray(a), npt.NDArray[Any])
assert_type(xb.asarray(t), torch.Tensor)
assert_type(xb.asarray(a, backend="torch"), torch.Tensor)
assert_type(xb.asarray(t, backend="numpy"), np.ndarray)
assert_type(xb.asarray([1.0, 2.0], backend="numpy", dtype="float32"), np.ndarray)
assert_type(xb.asarray([1.0, 2.0], backend="torch", device="meta"), torch.Tensor)
assert_type(xb.asarray(a, dtype=np.float32, copy=True, device="cpu"), np.ndarray)
assert_type(xb.asarray([1.0, 2.0]), Any)  # lists take the chosen backend: Any

# to_numpy / from_numpy / to_device
assert_type(xb.to_numpy(t), np.ndarray)
assert_type(xb.to_numpy(a, copy=True), npt.NDArray[Any])
assert_type(xb.from_numpy(a, backend="torch"), torch.Tensor)
assert_type(xb.from_numpy(a, backend="numpy"), np.ndarray)
assert_type(xb.from_numpy(a, backend="dask", chunks=(2,)), da.Array)
assert_type(xb.from_numpy(a, chunks={0: 2}), Any)  # the backend may come from xback.use
assert_type(xb.to_device(t, "meta"), torch.Tensor)
assert_type(xb.to_device(a, "cpu"), np.ndarray)

# devices, backends, the context manager
assert_type(xb.device(t), str)
assert_type(xb.backend_of(a), str)
assert_type(xb.get_backend(), str)
assert_type(xb.get_device(), str | None)
with xb.use("torch", device="cpu") as ctx:
    assert_type(ctx, xb.use)


@xb.use("numpy")
def decorated(x: npt.NDArray[np.float64], k: int) -> npt.NDArray[np.float64]:
    return x * k


assert_type(decorated(a, 2), npt.NDArray[np.float64])  # the decorator keeps the signature

# sort / argsort: ndarray -> ndarray, Tensor -> Tensor, backend= names the kind
m = np.zeros((3, 2))
tm = torch.zeros(3, 2)
assert_type(xb.sort(a), np.ndarray)
assert_type(xb.argsort(a, axis=0, descending=True), np.ndarray)
assert_type(xb.sort(t), torch.Tensor)
assert_type(xb.argsort(t, dim=0, stable=False), torch.Tensor)
assert_type(xb.argsort(a, backend="torch", device="meta"), torch.Tensor)
assert_type(xb.sort(t, backend="numpy"), np.ndarray)
assert_type(xb.sort([3, 1, 2]), Any)

# svd / svdvals / lstsq_grad: SVDResult is generic in the array type
assert_type(xb.svd(m), xb.SVDResult[np.ndarray])
assert_type(xb.svd(tm, full_matrices=False), xb.SVDResult[torch.Tensor])
assert_type(xb.svd(m, backend="torch"), xb.SVDResult[torch.Tensor])
assert_type(xb.svd(m).Vh, np.ndarray)
U, S, Vh = xb.svd(tm, canonical_signs=True)
assert_type(U, torch.Tensor)
assert_type(S, torch.Tensor)
assert_type(xb.svdvals(m), np.ndarray)
assert_type(xb.svdvals(tm), torch.Tensor)
assert_type(xb.lstsq_grad(m, np.zeros(2), np.zeros(3)), np.ndarray)
assert_type(xb.lstsq_grad(tm, torch.zeros(2), torch.zeros(3), method="explicit"), torch.Tensor)
assert_type(xb.lstsq_grad(m, [1.0, 2.0], np.zeros(3), backend="torch"), torch.Tensor)

# calls that must be rejected
xb.to_device([1.0, 2.0], "cpu")  # type: ignore[call-overload]
xb.asarray(a, copy="yes")  # type: ignore[call-overload]
xb.to_numpy(a, copy=1.5)  # type: ignore[arg-type]
xb.sort(a, descending="yes")  # type: ignore[call-overload]
