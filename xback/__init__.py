"""xback: one small, fast, exact API over NumPy and PyTorch.

Write an algorithm once; let its users run it on NumPy, on PyTorch's CPU or on a GPU, chosen
with ``with xback.use("torch", device="cuda"):`` or per call with ``backend=`` / ``device=``.

``import xback`` never imports torch: tensors are recognised by looking in ``sys.modules``.
"""

from __future__ import annotations

from xback._convert import asarray, from_numpy, to_device, to_numpy
from xback._dispatch import backend_of, device, get_backend, get_device, use
from xback._linalg import SVDResult, lstsq_grad, lstsq_grad_fn, svd, svdvals
from xback._sortfamily import (
    TopKResult,
    UniqueAllResult,
    UniqueCountsResult,
    UniqueInverseResult,
    median,
    nanmedian,
    nanquantile,
    quantile,
    rankdata,
    searchsorted,
    top_k,
    unique_all,
    unique_counts,
    unique_inverse,
    unique_values,
)
from xback._sorting import argsort, sort

__version__ = "0.1.0"

__all__ = [
    "SVDResult",
    "TopKResult",
    "UniqueAllResult",
    "UniqueCountsResult",
    "UniqueInverseResult",
    "__version__",
    "argsort",
    "asarray",
    "backend_of",
    "device",
    "from_numpy",
    "get_backend",
    "get_device",
    "lstsq_grad",
    "lstsq_grad_fn",
    "median",
    "nanmedian",
    "nanquantile",
    "quantile",
    "rankdata",
    "searchsorted",
    "sort",
    "svd",
    "svdvals",
    "to_device",
    "to_numpy",
    "top_k",
    "unique_all",
    "unique_counts",
    "unique_inverse",
    "unique_values",
    "use",
]
