"""A generic backend over any Array API namespace (array-api-strict, JAX, CuPy...).

One :class:`ArrayAPIBackend` instance per library, named after it (``"array_api_strict"``,
``"jax"``, ``"cupy"``), built on the namespace that :func:`array_api_compat.array_namespace`
returns, cached per backend (never looked up per call). Only kinds with no dedicated backend
come here.

Sorting and the linear algebra are the :class:`~xback.backends.Backend` defaults on this
namespace (:mod:`xback.backends._sort_generic`, :mod:`xback.backends._linalg_generic`:
``svd``/``svdvals`` through the ``linalg`` extension, a clear ``TypeError`` when the library
has none); this module holds the differences: ownership, devices, the dtype tables, JAX's
tracers, and conversion through DLPack (zero-copy on the CPU), else ``np.asarray``.
Dispatch looks the dtype up once per call (array-api-strict's dtype ``==`` is Python code:
docs/benchmarks.md#dtype-checks-generic-array-api-backend).
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import numpy as np

from xback.backends import Backend
from xback.backends.numpy import BACKEND as _NP_BACKEND

__all__ = ["LIBRARIES", "ArrayAPIBackend", "CupyBackend", "JaxBackend", "make_backend"]

_DTYPE_NAMES = (
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64", "complex64", "complex128", "bfloat16",
)  # fmt: skip


def _jax_tracer() -> type | None:
    """JAX's tracer class (the arrays inside ``jax.jit``, ``vmap``, ``grad``), if it has one."""
    core = getattr(sys.modules["jax"], "core", None)
    tracer = getattr(core, "Tracer", None)
    return tracer if isinstance(tracer, type) else None


def _device_name(d: Any) -> str:
    """Canonical string for a library device object."""
    inner = getattr(d, "_device", None)  # array-api-strict
    if isinstance(inner, str):
        return "cpu" if inner == "CPU_DEVICE" else inner
    platform, ident = getattr(d, "platform", None), getattr(d, "id", None)  # jax, cupy
    if isinstance(ident, int):
        name = f"{platform or 'cuda'}:{ident}"
        return "cpu" if name == "cpu:0" else name
    return str(d).lower()


class ArrayAPIBackend(Backend):
    """Backend for one Array API library, through its (compat) namespace.

    The library is the registry entry's package (:data:`xback.backends.KNOWN_BACKENDS`);
    what differs between libraries is a subclass's (:class:`JaxBackend`,
    :class:`CupyBackend`), and a library without one needs no code here: it owns the types
    defined in its package, and ``lib.asarray([0])`` is its probe array.
    """

    respects_readonly = True

    def __init__(self, name: str) -> None:
        import array_api_compat

        from xback.backends import KNOWN_BACKENDS

        self.name = name  # type: ignore[misc]
        self._package = KNOWN_BACKENDS[name][1]
        lib = importlib.import_module(self._package)
        probe = self._probe(lib)
        xp = array_api_compat.array_namespace(probe)
        self.xp = xp
        self._info = xp.__array_namespace_info__()
        self._devices: dict[str, Any] = {}
        available: dict[str, Any] = {}  # dtype name -> dtype object, as arrays report it
        for d in self._info.devices():
            if d is None:  # JAX lists None (its default device) besides the devices
                continue
            self._devices.setdefault(_device_name(d), d)
            for n, t in self._info.dtypes(device=d).items():
                available.setdefault(n, t)
        self._np_to_xp: dict[np.dtype[Any], Any] = {}
        self._xp_to_np: dict[Any, np.dtype[Any]] = {}
        for n in _DTYPE_NAMES:
            t = getattr(xp, n, None)  # what the namespace takes as dtype= (JAX: scalar types)
            if t is None:
                continue
            try:
                if n in ("float16", "bfloat16"):  # outside the standard: ask an array
                    npd = np.dtype(t)
                    reported = xp.empty((0,), dtype=t).dtype
                elif n in available:  # JAX without x64 has no 64-bit dtypes
                    npd = np.dtype(n)
                    reported = available[n]
                else:
                    continue
            except (TypeError, ValueError):
                continue
            self._np_to_xp[npd] = t
            self._xp_to_np[t] = npd
            self._xp_to_np[reported] = npd
        #: the last ``(library dtype object, NumPy dtype)`` looked up: the front layer's dtype
        #: check and the backend's own lookup of the same array cost one lookup by value
        #: (array-api-strict's dtype ``__hash__``/``__eq__`` are slow Python code, and it
        #: makes a new dtype object for every array)
        self._last_dtype: tuple[Any, np.dtype[Any]] = (None, np.dtype(np.void))
        #: arrays that stand for values during tracing (jax.jit, vmap, grad): never read
        self._tracer: type | None = None
        self._default_device = self._placed_on(probe)

    def _probe(self, lib: Any) -> Any:
        """A small concrete array of the library (its namespace, devices and dtypes are
        read from it)."""
        return lib.asarray([0])

    def _placed_on(self, probe: Any) -> str:
        """The device of a traced array (:meth:`device_of`), given the probe array."""
        return "cpu"

    # -- kinds, devices, dtypes ------------------------------------------------------------
    def owns(self, tp: type) -> bool:
        return tp.__module__.partition(".")[0] == self._package

    def normalize_device(self, device: str) -> str:
        if device in self._devices:
            return device
        if device in ("cpu:0", "CPU_DEVICE") and "cpu" in self._devices:
            return "cpu"
        raise ValueError(
            f"device {device!r} is not a device of {self.name}; available: "
            f"{', '.join(self._devices)}"
        )

    def device_of(self, x: Any) -> str:
        d = self.xp_device(x)
        if d is None and self.traced(x):  # a jit tracer: placed on the default device
            return self._default_device
        return _device_name(d)

    def xp_device(self, x: Any) -> Any:
        try:
            return x.device  # the standard's attribute
        except AttributeError:  # pragma: no cover - older libraries
            import array_api_compat

            return array_api_compat.device(x)

    def dtype_of(self, x: Any) -> np.dtype[Any]:
        dt = x.dtype
        last = self._last_dtype
        if last[0] is dt:
            return last[1]
        try:
            npd = self._xp_to_np[dt]
        except KeyError:
            raise TypeError(f"{self.name} dtype {dt} has no NumPy equivalent") from None
        self._last_dtype = (dt, npd)
        return npd

    def can_hold(self, dtype: np.dtype[Any]) -> bool:
        return dtype in self._np_to_xp or (
            not dtype.isnative and dtype.newbyteorder("=") in self._np_to_xp
        )

    # -- conversion ------------------------------------------------------------------------
    def to_device(self, x: Any, device: str) -> Any:
        import array_api_compat

        return array_api_compat.to_device(x, self._devices[device])

    def to_numpy(self, x: Any, copy: bool | None) -> np.ndarray[Any, Any]:
        try:
            a: np.ndarray[Any, Any] = np.from_dlpack(x)  # shares host memory
        except (BufferError, RuntimeError, TypeError, ValueError) as exc:
            # another device, or a dtype DLPack cannot carry (JAX's bfloat16): a host copy
            if copy is False:
                raise ValueError(
                    f"copy=False but this {self.name} array (device {self.device_of(x)}, "
                    f"dtype {self.dtype_of(x)}) cannot be shared with NumPy: {exc}"
                ) from None
            import array_api_compat

            cpu = self._devices.get("cpu", "cpu")  # "cpu": array-api-compat's CuPy host copy
            host: np.ndarray[Any, Any] = np.array(array_api_compat.to_device(x, cpu), copy=True)
            return host
        return a.copy() if copy else a

    def from_numpy(self, a: np.ndarray[Any, Any], device: str, copy: bool | None) -> Any:
        if not a.dtype.isnative:  # Array API libraries hold native byte order only
            if copy is False:
                raise ValueError(
                    f"copy=False but this array cannot be shared with {self.name}: it has "
                    f"non-native byte order"
                )
            a, copy = a.astype(a.dtype.newbyteorder("=")), None
        if a.dtype not in self._np_to_xp:  # JAX without x64 would narrow float64 silently
            raise TypeError(
                f"the {self.name} backend cannot hold NumPy dtype {a.dtype}; it holds "
                f"{', '.join(str(d) for d in self._np_to_xp)}"
            )
        try:
            return self.xp.asarray(a, device=self._devices[device], copy=copy)
        except ValueError as exc:
            raise ValueError(f"cannot bring this array to {self.name} on {device}: {exc}") from exc

    def native_dtype(self, dtype: np.dtype[Any]) -> Any:
        return self._np_to_xp[dtype]

    def astype(self, x: Any, dtype: Any) -> Any:
        # a NumPy dtype, or the namespace's own from native_dtype
        return self.xp.astype(x, self._np_to_xp[dtype] if isinstance(dtype, np.dtype) else dtype)

    def copy(self, x: Any) -> Any:
        return self.xp.asarray(x, copy=True)

    # -- sorting and linear algebra: the Backend defaults on self.xp ----------------------
    def namespace(self, x: Any) -> Any:
        return self.xp

    def traced(self, x: Any) -> bool:
        return self._tracer is not None and isinstance(x, self._tracer)

    # the svd's finiteness checks on an array in host memory: NumPy's, on the same memory
    # (DLPack, no copy), where the namespace's isfinite/all/bool cost a dispatch each
    # (docs/benchmarks.md#finiteness-checks); anything else keeps the namespace's checks
    def norm_bounded(self, x: Any) -> bool:
        host = _shared_with_numpy(x)
        return host is not None and _NP_BACKEND.norm_bounded(host)

    def singular_values_finite(self, S: Any) -> bool:
        host = _shared_with_numpy(S)
        if host is None:
            return self.all_finite(S)
        return _NP_BACKEND.singular_values_finite(host)


def _shared_with_numpy(x: Any) -> np.ndarray[Any, Any] | None:
    """``x``'s memory as a NumPy array (DLPack), or None: another device, or a dtype DLPack
    cannot carry."""
    try:
        return np.from_dlpack(x)
    except (BufferError, RuntimeError, TypeError, ValueError):
        return None


class JaxBackend(ArrayAPIBackend):
    """JAX: its arrays' types live in ``jaxlib``, its tracers (the arrays inside
    ``jax.jit``, ``vmap``, ``grad``) stand for arrays, and its probe is made eagerly."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self._tracer = _jax_tracer()

    def _probe(self, lib: Any) -> Any:
        import jax.numpy as jnp

        with lib.ensure_compile_time_eval():  # a concrete array, even inside jax.jit
            return jnp.zeros(1)

    def _placed_on(self, probe: Any) -> str:
        return _device_name(probe.device)  # a jit tracer: placed on the default device

    def owns(self, tp: type) -> bool:
        # tracers stand for JAX arrays but do not subclass jax.Array
        tracer = _jax_tracer()
        return issubclass(tp, sys.modules["jax"].Array) or (
            tracer is not None and issubclass(tp, tracer)
        )

    def eager(self) -> Any:
        return sys.modules["jax"].ensure_compile_time_eval()


class CupyBackend(ArrayAPIBackend):
    """CuPy: its arrays are ``cupy.ndarray`` (defined in its compiled submodules)."""

    def _probe(self, lib: Any) -> Any:
        return lib.zeros(1)

    def owns(self, tp: type) -> bool:
        return issubclass(tp, sys.modules["cupy"].ndarray)

    # singular values alone are checked after, as before (cuSOLVER prints nothing on the host;
    # a check first would add a device synchronisation to the one after)
    svd_checked_first = frozenset({"full", "thin"})


#: the libraries whose differences need code (by registry name); any other Array API
#: library registered with this module is an :class:`ArrayAPIBackend` as it is
LIBRARIES: dict[str, type[ArrayAPIBackend]] = {"jax": JaxBackend, "cupy": CupyBackend}


def make_backend(name: str) -> ArrayAPIBackend:
    """The generic backend for the registered library ``name``
    (:data:`xback.backends.KNOWN_BACKENDS`), with its differences (:data:`LIBRARIES`)."""
    return LIBRARIES.get(name, ArrayAPIBackend)(name)
