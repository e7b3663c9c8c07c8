"""The fingerprint of this machine that a routing table records and is checked against.

A routing table (:mod:`xback._routing`) holds times measured on one machine. It applies only
where the same times can be expected: the same CPU model, core count and vector instruction
sets, the same library versions and the same thread settings. :func:`fingerprint` is what
``xback tune`` records; :func:`mismatches` lists the fields in which a table's fingerprint
differs from this machine.

The fields fall in groups that are read at different times, so that checking a table never
imports a library the program has not imported:

* :data:`MACHINE_FIELDS` (CPU model, cores, instruction sets, NumPy's version): read once per
  process, when a table is first loaded (:func:`machine`: ``/proc/cpuinfo`` on Linux, the
  platform's own sources elsewhere; no subprocess, no import);
* the fields of a library's column (:data:`COLUMN_FIELDS`): torch's version and threads only
  when torch is imported (a NumPy input is never routed to torch otherwise), NumPy's BLAS
  threads (``threadpoolctl``) only when the table would route a call, Numba's version from
  its installed metadata (Numba is not imported).
"""

from __future__ import annotations

import functools
import os
import platform
import sys
from collections.abc import Iterable
from typing import Any

__all__ = [
    "COLUMN_FIELDS",
    "FIELDS",
    "MACHINE_FIELDS",
    "column_values",
    "cpu_model",
    "fingerprint",
    "machine",
    "mismatches",
]

#: the fields that describe the machine itself; a table differing in one never applies
MACHINE_FIELDS = ("cpu", "cores", "isa", "numpy")
#: the fields each column of a table depends on (besides :data:`MACHINE_FIELDS`)
COLUMN_FIELDS: dict[str, tuple[str, ...]] = {
    "numpy": ("blas_threads",),
    "torch": ("torch", "torch_threads", "torch_routed_threads"),
    "fused": ("numba",),
}
#: every field of a fingerprint, in the order they are reported
FIELDS = (*MACHINE_FIELDS, "blas_threads", "torch", "torch_threads", "torch_routed_threads",
          "numba")

#: the instruction-set features that change which kernel is faster (as /proc/cpuinfo names
#: them on x86-64 and on 64-bit ARM)
_ISA = ("avx", "avx2", "fma", "avx512f", "asimd", "sve")
#: NumPy's names for the same features (its own CPU detection, the fallback off Linux)
_NUMPY_ISA = {"AVX": "avx", "AVX2": "avx2", "FMA3": "fma", "AVX512F": "avx512f",
              "ASIMD": "asimd", "SVE": "sve"}


def _proc_cpuinfo() -> tuple[str | None, list[str] | None]:
    """The model name and the relevant feature flags from ``/proc/cpuinfo`` (Linux)."""
    model: str | None = None
    flags: list[str] | None = None
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as f:
            for _, line in zip(range(200), f):  # the first processor's block is enough
                key, _sep, value = line.partition(":")
                key = key.strip().lower()
                if key == "model name" and model is None:
                    model = value.strip()
                elif key in ("flags", "features") and flags is None:
                    have = set(value.split())
                    flags = [f for f in _ISA if f in have]
                if model is not None and flags is not None:
                    break
    except OSError:
        pass
    return model, flags


def _numpy_isa() -> list[str] | None:
    """The relevant features as NumPy detected them at import (any platform)."""
    import numpy as np

    for mod in ("_core", "core"):
        feats = getattr(getattr(getattr(np, mod, None), "_multiarray_umath", None),
                        "__cpu_features__", None)
        if isinstance(feats, dict):
            return sorted(ours for theirs, ours in _NUMPY_ISA.items() if feats.get(theirs))
    return None


def _sysctl_brand() -> str | None:
    """``machdep.cpu.brand_string`` on macOS (through libc, without a subprocess)."""
    try:
        import ctypes
        import ctypes.util

        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        size = ctypes.c_size_t(256)
        buf = ctypes.create_string_buffer(size.value)
        if libc.sysctlbyname(b"machdep.cpu.brand_string", buf, ctypes.byref(size), None, 0):
            return None
        return buf.value.decode("utf-8", "replace").strip() or None
    except Exception:  # no libc symbol, no such key: unknown
        return None


def cpu_model() -> str:
    """This machine's CPU model name (e.g. ``"AMD EPYC 7B13"``); the architecture when the
    platform does not say."""
    return str(machine()["cpu"])


@functools.cache
def machine() -> dict[str, Any]:
    """The :data:`MACHINE_FIELDS` of this machine, read once per process."""
    import numpy as np

    model, flags = _proc_cpuinfo() if sys.platform.startswith("linux") else (None, None)
    if model is None and sys.platform == "darwin":
        model = _sysctl_brand()
    if model is None and sys.platform == "win32":
        model = os.environ.get("PROCESSOR_IDENTIFIER")
    if flags is None:
        try:
            flags = _numpy_isa()
        except Exception:  # a NumPy without its CPU-feature table: unknown
            flags = None
    return {
        "cpu": model or platform.machine() or "unknown",
        "cores": os.cpu_count() or 1,
        "isa": sorted(flags) if flags is not None else None,
        "numpy": np.__version__,
    }


def _blas_threads() -> int | None:
    from xback.backends.numpy import blas_threads

    return blas_threads()


def _dist_version(name: str) -> str | None:
    import importlib.metadata  # here: ~10 ms, paid only when a table is checked

    try:
        return importlib.metadata.version(name)
    except importlib.metadata.PackageNotFoundError:
        return None
    except Exception:  # broken metadata: unknown
        return None


def column_values(column: str) -> dict[str, Any]:
    """This process's values of the fields column ``column`` depends on
    (:data:`COLUMN_FIELDS`). Torch's fields are ``None`` when torch is not imported (it is
    never imported here); ``"numpy"`` reads the BLAS threads through ``threadpoolctl``."""
    if column == "numpy":
        return {"blas_threads": _blas_threads()}
    if column == "torch":
        torch = sys.modules.get("torch")
        if torch is None:
            return {"torch": None, "torch_threads": None, "torch_routed_threads": None}
        from xback.backends.torch import TorchBackend  # torch is imported already

        return {"torch": str(torch.__version__), "torch_threads": int(torch.get_num_threads()),
                # how a routed call computes on torch (TorchBackend.routed): a table timed
                # otherwise (an older xback tune) does not describe what runs now
                "torch_routed_threads": TorchBackend.routed_threads}
    if column == "fused":
        numba = sys.modules.get("numba")
        version = getattr(numba, "__version__", None) if numba is not None else None
        return {"numba": str(version) if version else _dist_version("numba")}
    raise ValueError(f"unknown column {column!r}")


def fingerprint(columns: Iterable[str] = ("numpy", "torch", "fused")) -> dict[str, Any]:
    """This machine's fingerprint as ``xback tune`` records it: :func:`machine` and the
    fields of ``columns``.

    Examples
    --------
    >>> from xback._machine import fingerprint
    >>> fp = fingerprint(columns=())
    >>> sorted(fp) == ["cores", "cpu", "isa", "numpy"]
    True
    """
    out = dict(machine())
    for c in columns:
        out.update(column_values(c))
    return out


def _show(value: Any) -> str:
    if isinstance(value, list):
        return "[" + ", ".join(map(str, value)) + "]"
    return "unknown" if value is None else repr(value) if isinstance(value, str) else str(value)


def mismatches(recorded: dict[str, Any], here: dict[str, Any]) -> list[str]:
    """The fields (of ``here``) in which the ``recorded`` fingerprint differs from ``here``,
    each as ``"field: table X, this machine Y"``.

    Examples
    --------
    >>> from xback._machine import mismatches
    >>> mismatches({"cpu": "A", "cores": 2}, {"cpu": "B", "cores": 2})
    ["cpu: table 'A', this machine 'B'"]
    """
    return [
        f"{field}: table {_show(recorded.get(field))}, this machine {_show(here[field])}"
        for field in FIELDS
        if field in here and recorded.get(field) != here[field]
    ]
