"""xback: one small, fast, exact API over NumPy and PyTorch.

Write an algorithm once; let its users run it on NumPy, on PyTorch's CPU or on a GPU, chosen
with ``with xback.use("torch", device="cuda"):`` or per call with ``backend=`` / ``device=``.

``import xback`` never imports torch: tensors are recognised by looking in ``sys.modules``.
It imports nothing at all until a public name is first used; then NumPy and xback's own core
modules load (``ml_dtypes``, ``threadpoolctl``, torch and the other libraries only where a
call needs them; ``benchmarks/bench_import.py`` measures the cost).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from xback._convert import asarray, from_numpy, to_device, to_numpy
    from xback._dispatch import backend_of, device, get_backend, get_device, use
    from xback._linalg import SVDResult, lstsq_grad, lstsq_grad_fn, svd, svdvals
    from xback._namespace import namespace
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

#: public name -> the module that defines it. The core modules are imported on the first
#: access to one of these names, not by ``import xback``: the command line
#: (``xback --help``) and code that only imports xback pay nothing for them.
_EXPORTS: dict[str, str] = {
    **dict.fromkeys(("asarray", "from_numpy", "to_device", "to_numpy"), "xback._convert"),
    **dict.fromkeys(
        ("backend_of", "device", "get_backend", "get_device", "use"), "xback._dispatch"
    ),
    **dict.fromkeys(
        ("SVDResult", "lstsq_grad", "lstsq_grad_fn", "svd", "svdvals"), "xback._linalg"
    ),
    **dict.fromkeys(("argsort", "sort"), "xback._sorting"),
    "namespace": "xback._namespace",
    **dict.fromkeys(
        (
            "TopKResult", "UniqueAllResult", "UniqueCountsResult", "UniqueInverseResult",
            "median", "nanmedian", "nanquantile", "quantile", "rankdata", "searchsorted",
            "top_k", "unique_all", "unique_counts", "unique_inverse", "unique_values",
        ),
        "xback._sortfamily",
    ),
}


if not TYPE_CHECKING:  # type checkers see the imports above, and no catch-all __getattr__

    def __getattr__(name: str) -> Any:
        module = _EXPORTS.get(name)
        if module is None:
            raise AttributeError(f"module 'xback' has no attribute {name!r}")
        value = getattr(importlib.import_module(module), name)
        globals()[name] = value  # later lookups are plain attribute reads
        return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_EXPORTS})


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
    "namespace",
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
