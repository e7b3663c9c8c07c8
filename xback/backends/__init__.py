"""The backend protocol and the registry of known backends.

A backend is one module, ``xback/backends/<name>.py``, that defines ``BACKEND``: an
instance of a :class:`Backend` subclass. The front layer (``xback._dispatch`` and the
operation modules) validates and normalises every argument once; a backend receives clean
arguments only and computes:

* arrays are already of the backend's own kind and on the chosen device;
* ``axis`` is a non-negative ``int`` smaller than ``x.ndim`` (or ``None`` where documented);
* devices are normalised strings (``"cpu"``, ``"cuda:0"``, ``"meta"``);
* dtypes are :class:`numpy.dtype` objects (``ml_dtypes`` for bfloat16 and float8).

Adding a backend (CuPy, JAX, Dask) means one new module implementing this protocol and one
line in :data:`KNOWN_BACKENDS`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import numpy as np

__all__ = ["KNOWN_BACKENDS", "Backend"]

#: name -> (module holding ``BACKEND``, top-level package it needs, pip requirement)
KNOWN_BACKENDS: dict[str, tuple[str, str, str]] = {
    "numpy": ("xback.backends.numpy", "numpy", "numpy"),
    "torch": ("xback.backends.torch", "torch", "xback[torch]"),
}


class Backend:
    """Base class of every backend: the protocol the front layer relies on.

    Subclasses override every method that raises ``NotImplementedError``. Methods receive
    clean arguments (see the module docstring) and never validate them again.
    """

    #: registry name, e.g. ``"numpy"``
    name: ClassVar[str] = ""
    #: top-level module that owns the array type, looked up in ``sys.modules``
    module: ClassVar[str] = ""
    #: False when the library cannot mark an array read-only (torch): the front layer then
    #: copies read-only NumPy arrays on explicit conversion instead of sharing them.
    respects_readonly: ClassVar[bool] = True

    # -- kinds, devices, dtypes ------------------------------------------------------------
    def owns(self, tp: type) -> bool:
        """Whether ``tp`` is this backend's array type (called once per type, then cached)."""
        raise NotImplementedError

    def normalize_device(self, device: str) -> str:
        """Validate a device string for this backend and return its canonical form.

        Raises ``ValueError`` (never a backend assertion) when the device does not exist
        here. Called once per distinct device string; the result is cached.
        """
        raise NotImplementedError

    def device_of(self, x: Any) -> str:
        """Canonical device string of an array of this backend."""
        raise NotImplementedError

    def dtype_of(self, x: Any) -> np.dtype[Any]:
        """The NumPy dtype (``ml_dtypes`` for bfloat16/float8) equivalent to ``x``'s dtype.

        Raises ``TypeError`` for dtypes with no NumPy equivalent.
        """
        raise NotImplementedError

    def can_hold(self, dtype: np.dtype[Any]) -> bool:
        """Whether arrays of this backend can hold NumPy dtype ``dtype`` exactly."""
        raise NotImplementedError

    # -- conversion ------------------------------------------------------------------------
    def to_device(self, x: Any, device: str) -> Any:
        """Move ``x`` to ``device`` (different from its current one)."""
        raise NotImplementedError

    def to_numpy(self, x: Any, copy: bool | None) -> np.ndarray[Any, Any]:
        """Host NumPy array for ``x``; shares memory unless a copy is needed or asked for.

        ``copy=False`` when a copy is unavoidable raises ``ValueError``.
        """
        raise NotImplementedError

    def from_numpy(self, a: np.ndarray[Any, Any], device: str, copy: bool | None) -> Any:
        """Array of this backend on ``device`` holding ``a``'s data.

        Shares memory when possible and ``copy`` is not True; ``copy=False`` when a copy is
        unavoidable raises ``ValueError``. ``a`` is always an ``np.ndarray`` (0-d for
        scalars) whose dtype the backend can hold (the front layer checked it).
        """
        raise NotImplementedError

    def astype(self, x: Any, dtype: np.dtype[Any]) -> Any:
        """``x`` cast to ``dtype`` (a new array; only called when the dtype differs)."""
        raise NotImplementedError

    def copy(self, x: Any) -> Any:
        """A fresh copy of ``x`` on its device."""
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"<xback backend {self.name!r}>"
