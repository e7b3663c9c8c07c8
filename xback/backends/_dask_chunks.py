"""Validation of ``xback.from_numpy(a, backend="dask", chunks=...)``.

Dask's own ``normalize_chunks`` accepts specifications that are not what the caller meant
(``True`` as chunks of length 1, dict entries for axes that do not exist, floats, chunk
lengths of -1 inside explicit tuples), so xback checks the specification first, then lets
dask compute the chunk lengths (automatic chunks depend on the dtype's size).
"""

from __future__ import annotations

import importlib
import operator
from typing import Any

import numpy as np

__all__ = ["normalize_chunks"]

_ALLOWED = (
    "pass None or 'auto' (automatic chunks), a size such as '64MiB' (automatic chunks of "
    "about that many bytes), an int (the chunk length along every axis; -1: whole axes), a "
    "tuple with one entry per axis (an int, -1, 'auto', or the tuple of that axis's chunk "
    "lengths, summing to its length; 1-D: the chunk lengths themselves), or a dict "
    "{axis: entry} (other axes automatic)"
)


def _int(v: Any) -> int | None:
    """``v`` as an int when it is an integer other than a bool, else None."""
    if isinstance(v, (bool, np.bool_)):
        return None
    try:
        return operator.index(v)
    except TypeError:
        return None


def _type_error(what: str, v: Any) -> TypeError:
    return TypeError(f"{what} must be an int, 'auto' or a tuple of ints, got "
                     f"{type(v).__name__} {v!r}; {_ALLOWED}")


def normalize_chunks(
    chunks: Any, shape: tuple[int, ...], dtype: np.dtype[Any]
) -> tuple[tuple[int, ...], ...]:
    """Chunk lengths along every axis of an array of ``shape`` and ``dtype`` for the
    ``chunks=`` argument of :func:`xback.from_numpy` (not ``None``).

    Raises ``TypeError`` for a type that cannot describe chunks, ``ValueError`` for
    invalid values; both name the value given and what is allowed.
    """
    dask_normalize: Any = importlib.import_module("dask.array.core").normalize_chunks
    ndim = len(shape)

    def invalid(reason: str) -> ValueError:
        return ValueError(
            f"chunks={chunks!r} is not valid for an array of shape {shape}: {reason}; "
            f"{_ALLOWED}"
        )

    def entry(v: Any, axis: int) -> Any:
        n = shape[axis]
        if isinstance(v, str):
            if v != "auto":
                raise invalid(f"axis {axis}: the only string per axis is 'auto', got {v!r}")
            return v
        k = _int(v)
        if k is not None:
            if k < 1 and k != -1:
                raise invalid(f"axis {axis}: chunk length {k}; it must be >= 1, or -1 for "
                              f"the whole axis")
            return k
        if isinstance(v, (tuple, list)):
            lengths = [c for c in map(_int, v) if c is not None]
            if len(lengths) != len(v):
                raise _type_error(f"chunks for axis {axis}", v)
            if any(c < 0 for c in lengths):
                raise invalid(f"axis {axis}: negative chunk lengths {tuple(v)}")
            if sum(lengths) != n:
                raise invalid(f"the chunk lengths {tuple(v)} of axis {axis} add up to "
                              f"{sum(lengths)}, not to its length {n}")
            return tuple(lengths)
        raise _type_error(f"chunks for axis {axis}", v)

    if isinstance(chunks, str):
        spec: Any = chunks
    elif _int(chunks) is not None:
        spec = tuple(entry(chunks, d) for d in range(ndim))
    elif isinstance(chunks, (tuple, list)):
        if ndim == 1 and len(chunks) > 1 and all(_int(c) is not None for c in chunks):
            spec = (entry(chunks, 0),)  # 1-D: the chunk lengths of the axis, as in dask
        elif len(chunks) != ndim:
            raise invalid(f"{len(chunks)} entries for {ndim} axes")
        else:
            spec = tuple(entry(c, d) for d, c in enumerate(chunks))
    elif isinstance(chunks, dict):
        per_axis: list[Any] = ["auto"] * ndim
        seen: set[int] = set()
        for key, v in chunks.items():
            d = _int(key)
            if d is None:
                raise TypeError(f"the keys of a chunks dict are axes (ints), got "
                                f"{type(key).__name__} {key!r}")
            if not -ndim <= d < ndim:
                raise invalid(f"axis {d} is out of bounds for {ndim} axes")
            d %= max(ndim, 1)
            if d in seen:
                raise invalid(f"axis {d} is given twice")
            seen.add(d)
            per_axis[d] = entry(v, d)
        spec = tuple(per_axis)
    else:
        raise TypeError(f"chunks must be None, a str, an int, a tuple or list, or a dict, got "
                        f"{type(chunks).__name__} {chunks!r}; {_ALLOWED}")
    try:
        out = dask_normalize(spec, shape, dtype=dtype)
    except (ValueError, TypeError, ZeroDivisionError) as exc:
        raise invalid(str(exc).split("\n")[0]) from None
    return tuple(tuple(int(c) for c in cs) for cs in out)
