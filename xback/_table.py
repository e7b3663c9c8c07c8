"""Reading, checking and writing routing-table files safely (used by :mod:`xback._routing`).

A table file is data from a cache folder: it must never hang, exhaust memory, raise from a
routed call or make a call run anywhere but NumPy, torch or xback's fused kernel. So:

* :func:`read_json` reads only a regular file (a FIFO, a device such as ``/dev/zero``, a
  directory are refused before anything is read; opening never blocks), of at most
  :data:`MAX_BYTES`, as strict JSON (no ``NaN``/``Infinity``; deep nesting is an error);
* :func:`check` validates the whole table against its schema once and returns a clean copy
  holding only the known fields, or raises :class:`TableError` naming the first problem;
* :func:`write_json` writes through a new file with a random name in the same directory
  (``O_EXCL``, never through a symlink), synced, then atomically renamed over the target.
"""

from __future__ import annotations

import json
import math
import os
import stat
from pathlib import Path
from typing import Any

__all__ = [
    "FORMAT",
    "LIBRARIES",
    "MAX_BYTES",
    "MAX_ENTRIES",
    "OLD_FORMATS",
    "TableError",
    "check",
    "read_json",
    "write_json",
]

#: the current layout of a table file (the one with a machine fingerprint)
FORMAT = "xback-routing/2"
#: earlier layouts: read and checked, but never applied (no fingerprint to match)
OLD_FORMATS = ("xback-routing/1",)
#: the largest table file read (the full table of ``xback tune`` is about 100 KB)
MAX_BYTES = 4 * 1024 * 1024
#: the most entries a table may hold (a full tune measures under 200)
MAX_ENTRIES = 2_000
#: the libraries a table may compare and route to (besides the fused kernel's column)
LIBRARIES = ("numpy", "torch")
#: every column a table's ``seconds`` may name
COLUMNS = ("numpy", "torch", "fused")

_SORT_DTYPES = ("float32", "float64", "int32", "int64")
_FLOAT_DTYPES = ("float32", "float64")
_SVD_LAYOUTS = tuple(f"{v}-{s}" for v in ("thin", "full", "vals") for s in ("tall", "square"))
#: op -> (layouts, dtypes) that a table may describe
OPS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    "sort": (("1d", "rows"), _SORT_DTYPES),
    "argsort": (("1d", "rows"), _SORT_DTYPES),
    "svd": (_SVD_LAYOUTS, _FLOAT_DTYPES),
    "lstsq_grad": (("vec",), _FLOAT_DTYPES),
}
_MAX_SECONDS = 1e4
_MAX_STR = 512


class TableError(ValueError):
    """A table file that cannot be used; the message names the first problem."""


# -- reading --------------------------------------------------------------------------------
def _kind(mode: int) -> str:
    for test, name in ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"),
                       (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
                       (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return name
    return "not a regular file"


def _reject_constant(name: str) -> Any:
    raise TableError(f"{name} is not a number a table may hold")


def read_json(path: Path) -> Any:
    """The JSON document in the regular file ``path`` (a symlink to one is followed).

    ``FileNotFoundError``/``NotADirectoryError`` when there is none; :class:`TableError` for
    anything that is not a regular file of at most :data:`MAX_BYTES` of strict UTF-8 JSON.
    """
    st = os.stat(path)  # before opening: a device or FIFO is never opened
    if not stat.S_ISREG(st.st_mode):
        raise TableError(f"{_kind(st.st_mode)}, not a regular file")
    if st.st_size > MAX_BYTES:
        raise TableError(f"{st.st_size} bytes, more than a table's limit of {MAX_BYTES}")
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_BINARY", 0)
    fd = os.open(path, flags)  # non-blocking: a FIFO swapped in meanwhile cannot block
    try:
        st = os.fstat(fd)  # what was opened, not what was checked
        if not stat.S_ISREG(st.st_mode):
            raise TableError(f"{_kind(st.st_mode)}, not a regular file")
        chunks = []
        left = MAX_BYTES + 1
        while left > 0:
            chunk = os.read(fd, min(left, 1 << 20))
            if not chunk:
                break
            chunks.append(chunk)
            left -= len(chunk)
    finally:
        os.close(fd)
    data = b"".join(chunks)
    if len(data) > MAX_BYTES:
        raise TableError(f"more than a table's limit of {MAX_BYTES} bytes")
    if not data.strip():
        raise TableError("empty file")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TableError(f"not UTF-8 text (byte {exc.start})") from None
    try:
        return json.loads(text, parse_constant=_reject_constant)
    except RecursionError:
        raise TableError("JSON nested too deeply") from None
    except json.JSONDecodeError as exc:
        raise TableError(f"not valid JSON ({exc.msg} at line {exc.lineno} column "
                         f"{exc.colno})") from None
    except ValueError as exc:  # e.g. an integer of more digits than Python converts
        raise TableError(f"not valid JSON ({exc})") from None


# -- checking -------------------------------------------------------------------------------
def _is_num(v: Any) -> bool:
    return (type(v) is float or type(v) is int) and math.isfinite(v)


def _int(v: Any, where: str, lo: int, hi: int) -> int:
    if type(v) is not int or not lo <= v <= hi:
        raise TableError(f"{where} must be an integer from {lo} to {hi}, not {_brief(v)}")
    return v


def _seconds(v: Any, where: str, *, zero: bool = False) -> float:
    if (type(v) is float or type(v) is int) and (
        (0 <= v <= _MAX_SECONDS) if zero else (0 < v <= _MAX_SECONDS)
    ):
        return float(v)  # (NaN fails every comparison, inf the upper bound)
    lo = "0 or more" if zero else "more than 0"
    raise TableError(f"{where} must be a finite number of seconds ({lo}, at most "
                     f"{_MAX_SECONDS:g}), not {_brief(v)}")


def _str(v: Any, where: str, allowed: tuple[str, ...] | None = None) -> str:
    if not isinstance(v, str) or len(v) > _MAX_STR:
        raise TableError(f"{where} must be a string, not {_brief(v)}")
    if allowed is not None and v not in allowed:
        raise TableError(f"{where} is {_brief(v)}; allowed: {', '.join(allowed)}")
    return v


def _dict(v: Any, where: str) -> dict[str, Any]:
    if type(v) is not dict:
        raise TableError(f"{where} must be an object, not {_brief(v)}")
    return v


def _scalars(v: Any, where: str, *, none: bool = False) -> dict[str, Any] | None:
    """An object of short strings, finite numbers, booleans and nulls (for display only)."""
    if v is None and none:
        return None
    d = _dict(v, where)
    if len(d) > 64:
        raise TableError(f"{where} has {len(d)} fields, more than 64")
    for k, x in d.items():
        if not (x is None or isinstance(x, bool) or _is_num(x)
                or (isinstance(x, str) and len(x) <= _MAX_STR)):
            raise TableError(f"{where}.{k} must be a string, number or null, not {_brief(x)}")
    return dict(d)


def _brief(v: Any) -> str:
    if isinstance(v, dict | list):
        return f"a JSON {'object' if isinstance(v, dict) else 'array'}"
    r = repr(v)
    return r if len(r) <= 40 else r[:37] + "..."


def _fingerprint(v: Any) -> dict[str, Any]:
    fp = _dict(v, "fingerprint")
    out: dict[str, Any] = {
        "cpu": _str(fp.get("cpu"), "fingerprint.cpu"),
        "cores": _int(fp.get("cores"), "fingerprint.cores", 1, 1 << 20),
        "numpy": str(_str(fp.get("numpy"), "fingerprint.numpy")),
    }
    isa = fp.get("isa")
    if isa is not None:
        if not isinstance(isa, list) or len(isa) > 64:
            raise TableError(f"fingerprint.isa must be a list of feature names or null, not "
                             f"{_brief(isa)}")
        isa = sorted({_str(f, "fingerprint.isa[]") for f in isa})
    out["isa"] = isa
    for key in ("torch", "numba"):
        x = fp.get(key)
        out[key] = None if x is None else str(_str(x, f"fingerprint.{key}"))
    for key in ("blas_threads", "torch_threads", "torch_routed_threads"):
        x = fp.get(key)
        out[key] = None if x is None else _int(x, f"fingerprint.{key}", 1, 1 << 20)
    return out


_ENTRY_KEYS = frozenset(OPS)


def _entry(e: Any, i: int) -> dict[str, Any]:
    """One measured case, checked (the messages are built only for a problem: a table's
    entries are checked at the first call of every process)."""
    where = f"entries[{i}]"
    if type(e) is not dict:
        _dict(e, where)
    op = e.get("op")
    if type(op) is not str or op not in _ENTRY_KEYS:
        _str(op, f"{where}.op", tuple(OPS))
    layouts, dtypes = OPS[op]
    layout, dtype, size = e.get("layout"), e.get("dtype"), e.get("size")
    if type(layout) is not str or layout not in layouts:
        _str(layout, f"{where}.layout", layouts)
    if type(dtype) is not str or dtype not in dtypes:
        _str(dtype, f"{where}.dtype", dtypes)
    if type(size) is not int or not 0 <= size <= 1 << 62:
        _int(size, f"{where}.size", 0, 1 << 62)
    arrays = e.get("arrays", 2)
    if type(arrays) is not int or not 0 <= arrays <= 64:
        _int(arrays, f"{where}.arrays", 0, 64)
    out: dict[str, Any] = {"op": op, "layout": layout, "dtype": dtype, "size": size,
                           "arrays": arrays}
    shape = e.get("shape")
    if shape is not None:
        if type(shape) is not list or len(shape) > 64:
            raise TableError(f"{where}.shape must be a list of sizes, not {_brief(shape)}")
        for s in shape:
            if type(s) is not int or not 0 <= s <= 1 << 62:
                _int(s, f"{where}.shape[]", 0, 1 << 62)
        out["shape"] = list(shape)
    out["seconds"] = _times(e.get("seconds"), f"{where}.seconds", COLUMNS)
    if "confirmed" in e:
        conf = e["confirmed"]
        if type(conf) is not dict:
            _dict(conf, f"{where}.confirmed")
        out["confirmed"] = {}
        for src, times in conf.items():
            if src not in LIBRARIES:
                _str(src, f"{where}.confirmed key", LIBRARIES)
            w = f"{where}.confirmed.{src}"
            out["confirmed"][src] = _times(times, w, _CONFIRMED)
            if "own" not in times:
                raise TableError(f"{w} has no 'own' time")
    if "penalty_seconds" in e:
        # the switching penalty a route costs the caller's next calls, per caller's library:
        # seconds (0 or more), or null where it could not be measured (the route is dropped)
        pen = e["penalty_seconds"]
        if type(pen) is not dict:
            _dict(pen, f"{where}.penalty_seconds")
        out["penalty_seconds"] = {}
        for src, p in pen.items():
            if src not in LIBRARIES:
                _str(src, f"{where}.penalty_seconds key", LIBRARIES)
            out["penalty_seconds"][src] = (
                None if p is None else _seconds(p, f"{where}.penalty_seconds.{src}", zero=True)
            )
    return out


_CONFIRMED = ("own", *COLUMNS)


def _times(v: Any, where: str, keys: tuple[str, ...]) -> dict[str, float]:
    """An object of seconds keyed by ``keys``, not empty."""
    if type(v) is not dict:
        _dict(v, where)
    if not v:
        raise TableError(f"{where} is empty")
    out = {}
    for k, x in v.items():
        if k not in keys:
            _str(k, f"{where} key", keys)
        if (type(x) is not float and type(x) is not int) or not 0 < x <= _MAX_SECONDS:
            _seconds(x, f"{where}.{k}")
        out[k] = float(x)
    return out


def check(table: Any) -> dict[str, Any]:
    """``table`` (parsed JSON) checked against the schema of :data:`FORMAT` (or one of
    :data:`OLD_FORMATS`, without a fingerprint), as a clean copy with only the known fields.

    Raises
    ------
    TableError
        Naming the first problem: a missing or mistyped field, a number that is not finite or
        out of range, an operation, layout, dtype or library xback does not route.
    """
    t = _dict(table, "the table")
    fmt = t.get("format")
    if fmt != FORMAT and fmt not in OLD_FORMATS:
        raise TableError(f"not an xback routing table (format {_brief(fmt)}, expected "
                         f"{FORMAT!r})")
    out: dict[str, Any] = {"format": fmt}
    for key in ("created", "path"):
        if t.get(key) is not None:
            out[key] = _str(t[key], key)
    if t.get("tune_seconds") is not None:
        out["tune_seconds"] = _seconds(t["tune_seconds"], "tune_seconds", zero=True)
    if "quick" in t:
        if not isinstance(t["quick"], bool):
            raise TableError(f"quick must be true or false, not {_brief(t['quick'])}")
        out["quick"] = t["quick"]
    libs = _dict(t.get("libraries"), "libraries")
    out["libraries"] = {
        _str(k, "libraries key", LIBRARIES): str(_str(v, f"libraries.{k}"))
        for k, v in libs.items()
    }
    out["machine"] = _scalars(t.get("machine", {}), "machine")
    out["threads"] = _scalars(t.get("threads", {}), "threads")
    out["fused"] = _scalars(t.get("fused"), "fused", none=True)
    out["convert_seconds"] = _seconds(t.get("convert_seconds", 2e-6), "convert_seconds",
                                      zero=True)
    if fmt == FORMAT:
        out["fingerprint"] = _fingerprint(t.get("fingerprint"))
    entries = t.get("entries")
    if not isinstance(entries, list):
        raise TableError(f"entries must be a list of measured cases, not {_brief(entries)}")
    if len(entries) > MAX_ENTRIES:
        raise TableError(f"{len(entries)} entries, more than {MAX_ENTRIES}")
    out["entries"] = [_entry(e, i) for i, e in enumerate(entries)]
    for i, e in enumerate(out["entries"]):
        for col in e["seconds"]:
            if col != "fused" and col not in out["libraries"]:
                raise TableError(f"entries[{i}].seconds names {col!r}, which 'libraries' "
                                 f"does not list")
    return out


# -- writing --------------------------------------------------------------------------------
def _umask() -> int:
    """The process's umask, read without changing it where the platform allows."""
    try:
        with open("/proc/self/status", encoding="ascii") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    return 0o022


def write_json(doc: Any, path: Path) -> Path:
    """Write ``doc`` as JSON to ``path`` atomically: a new file with a random name in the
    same directory (created exclusively, never through a symlink), synced, then renamed
    over ``path`` (a symlink at ``path`` is replaced, its target is never written)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(doc, indent=1, sort_keys=True, allow_nan=False) + "\n"
    import tempfile  # here: only xback tune and save_table write

    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            if hasattr(os, "fchmod"):
                os.fchmod(f.fileno(), 0o666 & ~_umask())
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    if hasattr(os, "O_DIRECTORY"):  # make the rename itself durable
        try:
            dfd = os.open(path.parent, os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.fsync(dfd)
            finally:
                os.close(dfd)
        except OSError:
            pass
    return path
