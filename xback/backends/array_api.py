"""A generic backend over any Array API namespace (array-api-strict, JAX, CuPy...).

One :class:`ArrayAPIBackend` instance per library, named after it (``"array_api_strict"``,
``"jax"``, ``"cupy"``), built on the namespace that :func:`array_api_compat.array_namespace`
returns, cached per backend (never looked up per call). Only kinds with no dedicated backend
come here.

The same contract as the dedicated backends, written with standard functions only:

* ``sort``/``argsort``: stable descending is computed as a stable *ascending* sort (of ``-x``
  for real floats; of the reversed array for integers and bools, indices mapped back), never
  as a reversed ascending sort; NaN is moved last by a stable partition when present;
  complex numbers are ordered by three stable passes (imaginary, real, NaN group), NumPy's
  order. Indices are ``int64`` where the library (and device) has it, else the library's
  default index dtype (array-api-strict's ``no_x64`` device: ``int32``).
* the linear algebra is the :class:`~xback.backends.Backend` defaults, on this namespace
  (``svd``/``svdvals`` through the ``linalg`` extension, a clear ``TypeError`` when the
  library has none).
* conversion through DLPack (zero-copy on the CPU), else ``np.asarray``.

Costs: ascending sorts (and descending float sorts, through ``-x``) are the library's own
call; otherwise ``sort`` gathers values with ``take_along_axis`` after ``argsort`` (one extra
pass), and NaN handling, for a library whose sort does not put NaN last, adds one ``isnan``
pass and, only when NaNs are present, a stable sort of the NaN mask. Dispatch looks the
dtype up once per call (array-api-strict's dtype ``==`` is Python code:
docs/benchmarks.md#dtype-checks-generic-array-api-backend).
"""

from __future__ import annotations

import contextlib
import importlib
import sys
from collections.abc import Callable
from typing import Any

import numpy as np

from xback.backends import Backend

__all__ = ["LIBRARIES", "ArrayAPIBackend", "make_backend"]

_DTYPE_NAMES = (
    "bool", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32", "uint64",
    "float16", "float32", "float64", "complex64", "complex128", "bfloat16",
)  # fmt: skip


def _strict_owns(tp: type) -> bool:
    return tp.__module__.startswith("array_api_strict")


def _jax_tracer() -> type | None:
    """JAX's tracer class (the arrays inside ``jax.jit``, ``vmap``, ``grad``), if it has one."""
    core = getattr(sys.modules["jax"], "core", None)
    tracer = getattr(core, "Tracer", None)
    return tracer if isinstance(tracer, type) else None


def _jax_owns(tp: type) -> bool:
    # tracers stand for JAX arrays but do not subclass jax.Array
    tracer = _jax_tracer()
    return issubclass(tp, sys.modules["jax"].Array) or (
        tracer is not None and issubclass(tp, tracer)
    )


def _cupy_owns(tp: type) -> bool:
    return issubclass(tp, sys.modules["cupy"].ndarray)


#: backend name -> (top-level package, ownership test on a type)
LIBRARIES: dict[str, tuple[str, Callable[[type], bool]]] = {
    "array_api_strict": ("array_api_strict", _strict_owns),
    "jax": ("jax", _jax_owns),
    "cupy": ("cupy", _cupy_owns),
}


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
    """Backend for one Array API library, through its (compat) namespace."""

    respects_readonly = True

    def __init__(self, name: str) -> None:
        import array_api_compat

        self.name = name  # type: ignore[misc]
        package, self._owns = LIBRARIES[name]
        lib = importlib.import_module(package)
        if name == "jax":
            import jax.numpy as jnp

            with lib.ensure_compile_time_eval():  # a concrete array, even inside jax.jit
                probe = jnp.zeros(1)
        elif name == "cupy":
            probe = lib.zeros(1)
        else:
            probe = lib.asarray([0])
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
        self._nan_last_known: bool | None = None
        self._index_dtypes: dict[Any, Any] = {}
        self._index_is_default = self._default_index_is_wanted()
        #: arrays that stand for values during tracing (jax.jit, vmap, grad): never read
        self._tracer: type | None = _jax_tracer() if name == "jax" else None
        self._default_device = _device_name(probe.device) if name == "jax" else "cpu"

    # -- kinds, devices, dtypes ------------------------------------------------------------
    def owns(self, tp: type) -> bool:
        return self._owns(tp)

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

    # -- sorting ---------------------------------------------------------------------------
    def _wanted_index_dtype(self, dev: Any) -> Any:
        """``int64`` where device ``dev`` has it, else the library's default index dtype."""
        dt = self._info.dtypes(device=dev)
        return dt["int64"] if "int64" in dt else self._info.default_dtypes(device=dev)["indexing"]

    def _default_index_is_wanted(self) -> bool:
        """Whether, on every device, the library's default index dtype (the dtype of its
        ``argsort``, by the standard) is the one the contract wants: then no index needs a
        cast and none is checked."""
        try:
            return all(
                self._wanted_index_dtype(d) == self._info.default_dtypes(device=d)["indexing"]
                for d in self._info.devices()
            )
        except Exception:  # an incomplete inspection API: check every result instead
            return False

    def _index_dtype(self, x: Any) -> Any:
        dev = self.xp_device(x)
        try:
            return self._index_dtypes[dev]
        except (KeyError, TypeError):
            pass
        want = self._wanted_index_dtype(dev)
        try:
            self._index_dtypes[dev] = want
        except TypeError:  # unhashable device object: no cache
            pass
        return want

    def _as_index_dtype(self, idx: Any, x: Any) -> Any:
        """``idx`` (indices into ``x``) in the index dtype the contract wants."""
        if self._index_is_default:
            return idx
        want = self._index_dtype(x)
        got = idx.dtype
        return idx if (got is want or got == want) else self.xp.astype(idx, want)

    def _nan_last(self) -> bool:
        """Whether the library's own stable ``sort``/``argsort`` already put NaN last in input
        order (checked once; the standard leaves NaN's place to the library)."""
        known = self._nan_last_known
        if known is not None:
            return known
        xp, nan = self.xp, float("nan")
        try:
            with self._concrete():  # also when first asked inside jax.jit
                v = xp.asarray([nan, 1.0, nan, 0.0, 1.0])
                vals = self.to_numpy(xp.sort(v, stable=True), None)
                idx = self.to_numpy(xp.argsort(v, stable=True), None)
            known = bool(np.isnan(vals[3:]).all()) and idx.tolist() == [3, 1, 4, 0, 2]
        except Exception:  # any failure: take the always-correct path
            known = False
        self._nan_last_known = known
        return known

    def _concrete(self) -> Any:
        """A context in which the library computes on values now, even inside its tracing
        (``jax.ensure_compile_time_eval``): for the backend's own one-off probes."""
        if self.name == "jax":
            return sys.modules["jax"].ensure_compile_time_eval()
        return contextlib.nullcontext()

    def _argsort_real(self, k: Any, axis: int, stable: bool, kind: str = "f") -> Any:
        """Ascending argsort of real keys ``k`` (NumPy dtype kind ``kind``) with NaN last, in
        input order."""
        xp = self.xp
        if kind == "b":
            k = xp.astype(k, xp.uint8)
        idx = xp.argsort(k, axis=axis, stable=stable)
        if kind in "fV" and not self._nan_last():
            nan = xp.isnan(xp.take_along_axis(k, idx, axis=axis))
            # traced: partitioned without looking (a no-op without NaN)
            if self.traced(k) or bool(xp.any(nan)):
                step = xp.argsort(xp.astype(nan, xp.uint8), axis=axis, stable=True)
                idx = xp.take_along_axis(idx, step, axis=axis)
        return idx

    def _argsort_desc_reversed(self, x: Any, axis: int) -> Any:
        """Stable descending argsort of integers/bools: ascending on the reversed array."""
        xp = self.xp
        n = x.shape[axis]
        p = self._argsort_real(xp.flip(x, axis=axis), axis, True, self.dtype_of(x).kind)
        q = xp.flip(p, axis=axis)
        # ascending on reversed x then reversed: descending, ties in input order
        return (n - 1) - q

    def argsort(self, x: Any, axis: int | None, descending: bool, stable: bool) -> Any:
        xp = self.xp
        if axis is None:
            x, axis = xp.reshape(x, (-1,)), 0
        last = self._last_dtype  # dtype_of(x).kind, without the call when just looked up
        kind = last[1].kind if last[0] is x.dtype else self.dtype_of(x).kind
        if not descending and (
            kind in "iu" or (kind in "fV" and (self._nan_last_known or self._nan_last()))
        ):
            # the library's own (stable) argsort is the contract's answer
            idx = xp.argsort(x, axis=axis, stable=stable)
            return idx if self._index_is_default else self._as_index_dtype(idx, x)
        if kind == "c":
            if descending:
                x = -x
            re, im = xp.real(x), xp.imag(x)
            perm = self._argsort_real(im, axis, True)
            step = self._argsort_real(xp.take_along_axis(re, perm, axis=axis), axis, True)
            perm = xp.take_along_axis(perm, step, axis=axis)
            group = xp.astype(xp.isnan(re), xp.uint8) * 2 + xp.astype(xp.isnan(im), xp.uint8)
            step = xp.argsort(xp.take_along_axis(group, perm, axis=axis), axis=axis, stable=True)
            idx = xp.take_along_axis(perm, step, axis=axis)
        elif not descending:
            idx = self._argsort_real(x, axis, stable, kind)
        elif kind in "fV":
            idx = self._argsort_real(-x, axis, stable)  # exact; NaN stays NaN, -0.0 == 0.0
        else:
            idx = self._argsort_desc_reversed(x, axis)
        return self._as_index_dtype(idx, x)

    def sort(self, x: Any, axis: int | None, descending: bool, stable: bool) -> Any:
        xp = self.xp
        if axis is None:
            x, axis = xp.reshape(x, (-1,)), 0
        last = self._last_dtype  # dtype_of(x).kind, without the call when just looked up
        kind = last[1].kind if last[0] is x.dtype else self.dtype_of(x).kind
        # Direct value sorts where the library's own sort gives the contract's answer.
        if kind in "iu":  # equal integers are indistinguishable: order of ties is moot
            v = xp.sort(x, axis=axis, stable=stable)
            return xp.flip(v, axis=axis) if descending else v
        # -x keeps NaN last and ties (-0.0, 0.0) stable
        if kind == "f" and (self._nan_last_known or self._nan_last()):
            return -xp.sort(-x, axis=axis, stable=stable) if descending else xp.sort(
                x, axis=axis, stable=stable
            )
        idx = self.argsort(x, axis, descending, stable)
        return xp.take_along_axis(x, idx, axis=axis)

    # -- linear algebra: the Backend defaults (xback.backends._linalg_generic) ----------
    def namespace(self, x: Any) -> Any:
        return self.xp

    def traced(self, x: Any) -> bool:
        return self._tracer is not None and isinstance(x, self._tracer)


def make_backend(name: str) -> ArrayAPIBackend:
    """The generic backend for library ``name`` (one of :data:`LIBRARIES`)."""
    return ArrayAPIBackend(name)
