"""Helpers shared by the benchmark modules (not timed code)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any

import numpy as np

from xback.bench._harness import BenchConfig

__all__ = [
    "np_dtype",
    "pair_ratios",
    "sync_for",
    "torch_for",
]


def torch_for(cfg: BenchConfig) -> Any:
    """The torch module when the run includes the torch backend, else None."""
    if "torch" not in cfg.backends:
        return None
    return importlib.import_module("torch")


def sync_for(torch: Any, device: str) -> Callable[[], Any] | None:
    """What waits for the device's queued work (inside the timed region), or None on CPU."""
    if torch is None:
        return None
    if device.startswith("cuda"):
        return torch.cuda.synchronize  # type: ignore[no-any-return]
    if device.startswith("mps"):
        return torch.mps.synchronize  # type: ignore[no-any-return]
    return None


def np_dtype(name: str) -> np.dtype[Any]:
    return np.dtype(name)


def pair_ratios(rows: list[dict[str, Any]], keys: tuple[str, ...]) -> None:
    """Add ``vs_raw`` to every xback row: its median over the raw row with the same ``keys``."""
    raw = {tuple(r.get(k) for k in keys): r["median_s"] for r in rows if r.get("impl") == "raw"}
    for r in rows:
        if r.get("impl") == "xback":
            ref = raw.get(tuple(r.get(k) for k in keys))
            r["vs_raw"] = r["median_s"] / ref if ref else None
