"""The NumPy backend: host memory only (device ``"cpu"``)."""

from __future__ import annotations

from typing import Any

import numpy as np

from xback.backends import Backend

__all__ = ["BACKEND", "NumpyBackend"]


class NumpyBackend(Backend):
    """Backend for :class:`numpy.ndarray` and NumPy scalars."""

    name = "numpy"
    module = "numpy"
    respects_readonly = True

    def owns(self, tp: type) -> bool:
        if issubclass(tp, np.ma.MaskedArray):
            raise TypeError(
                "numpy masked arrays are not supported: their mask would be ignored; "
                "pass a.filled(value) or a.compressed()"
            )
        return issubclass(tp, (np.ndarray, np.generic))

    def normalize_device(self, device: str) -> str:
        if device == "cpu" or device == "cpu:0":
            return "cpu"
        raise ValueError(
            f"the numpy backend runs on the CPU only: device must be 'cpu', got {device!r}; "
            f"use backend='torch' for other devices"
        )

    def device_of(self, x: Any) -> str:
        return "cpu"

    def dtype_of(self, x: Any) -> np.dtype[Any]:
        return x.dtype  # type: ignore[no-any-return]

    def can_hold(self, dtype: np.dtype[Any]) -> bool:
        return True

    def to_device(self, x: Any, device: str) -> Any:
        return x  # device is always "cpu", validated by the front layer

    def to_numpy(self, x: Any, copy: bool | None) -> np.ndarray[Any, Any]:
        if copy:
            return np.array(x, copy=True)
        if type(x) is np.ndarray:
            return x
        return np.asarray(x)  # numpy scalar -> 0-d array; ndarray subclass -> base view

    def from_numpy(self, a: np.ndarray[Any, Any], device: str, copy: bool | None) -> Any:
        return a.copy() if copy else a

    def astype(self, x: Any, dtype: np.dtype[Any]) -> Any:
        return np.asarray(x).astype(dtype)

    def copy(self, x: Any) -> Any:
        return np.array(x, copy=True)


BACKEND = NumpyBackend()
