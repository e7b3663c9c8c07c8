"""Routing: run each CPU operation on whichever library's kernel is faster for it.

NumPy and torch can read each other's CPU memory without a copy, and xback's contract makes
their answers identical (sorting bit for bit, linear algebra to float rounding with the same
``canonical_signs``). Neither library is faster everywhere: on the machine the defaults come
from, torch's integer sorts and float32 SVD are several times faster than NumPy's, NumPy's
small matrix products several times faster than torch's and its float sorts ~1.2x. So the
front layer asks :func:`kernel_target` what should *compute* an operation; when it names
another library, the inputs go there zero-copy and the results come back zero-copy, as the
caller's kind, dtype and device.

The decision comes from a cost table: measured seconds per library for each (operation,
layout, dtype, size), and for ``lstsq_grad`` a :data:`FUSED` column for xback's own one-pass
kernel, which ``method="auto"`` takes where it beat both libraries. Each predicted route was
also timed as it really runs (``"confirmed"``: conversions, fresh wrappers, results back) and
is kept only if it still wins by :data:`MARGIN`. ``xback tune`` measures this machine and
stores the table in the user's cache directory (:func:`user_table_path`); without one, the
table shipped with xback (measured on a 2-core x86-64 machine) is used. A table applies only
to the machine it was measured on: it records a fingerprint (:mod:`xback._machine`), and
where that differs nothing is routed. Table files are read and checked defensively
(:mod:`xback._table`). ``xback info`` shows which table is active and whether it applies.

Routing never changes what a call means. It is skipped (the backend computes itself) when:

* routing is off: ``xback.use(..., route=False)``, or ``XBACK_ROUTE=0`` in the environment;
* the input is not a plain CPU array another library may read: torch tensors that require
  grad, tensors inside ``torch.func`` transforms or ``torch.compile`` tracing, tensor
  subclasses, tensors on other devices (``Backend.routable``);
* the target library is not imported: NumPy input goes to torch only when the caller has
  imported torch (``import xback`` and NumPy-only use never import it);
* the (operation, layout, dtype) was not measured (e.g. sorting along a non-last axis,
  batched matrices, complex dtypes), or the measured gain at that size does not exceed the
  margin (:data:`MARGIN`) plus the cost of the conversions — tiny inputs always stay put;
* the process is a forked child (``os.fork``, a ``multiprocessing`` pool with the ``fork``
  start method) and the target is not fork-safe there (:func:`fork_safe`): a child never
  routes to torch, whose OpenMP pool cannot run in a child once the parent used it;
* the target library would use more threads than the caller's own library may: NumPy's
  BLAS limit (``threadpoolctl``) against ``torch.get_num_threads()``. The two libraries
  never compute at once: a routed call runs one library's pool, then returns.
"""

from __future__ import annotations

import datetime as _dt
import operator
import os
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from xback import _fused, _machine, _table
from xback._dispatch import current_context, load_backend, loaded_backends, tracing
from xback.backends import KNOWN_BACKENDS, Backend

#: the loaded backends by name (a live view)
_LOADED = loaded_backends()

__all__ = [
    "ENV_VAR",
    "FUSED",
    "MARGIN",
    "TABLE_FORMAT",
    "active_table",
    "decide",
    "default_table_path",
    "enabled",
    "fork_safe",
    "in_forked_child",
    "kernel_target",
    "load_table",
    "plan_summary",
    "plans_of",
    "reload",
    "route_allowed",
    "save_table",
    "user_table_path",
]

#: environment variable that turns routing off (``0``, ``false``, ``off``, ``no``) or on
ENV_VAR = "XBACK_ROUTE"
#: route only when the other library is more than this factor faster, conversions included
MARGIN = 1.05
#: version of the table's JSON layout (``/2``: with the fingerprint of the machine it was
#: measured on; a ``/1`` table is read but never applied)
TABLE_FORMAT = _table.FORMAT
#: a column of the table that is not a library: xback's own one-pass ``lstsq_grad`` kernel
#: (:mod:`xback._fused`, Numba), measured on NumPy arrays (torch inputs reach it zero-copy);
#: :func:`kernel_target` returns it as the target object :data:`xback._fused.TARGET`
FUSED = _fused.TARGET.name
#: the library whose arrays a non-library column is measured on
_HOME = {FUSED: "numpy"}

_OFF = frozenset({"0", "false", "off", "no"})
_ON = frozenset({"1", "true", "on", "yes", ""})


def _env_default() -> bool:
    raw = os.environ.get(ENV_VAR, "").strip().lower()
    if raw in _OFF:
        return False
    if raw not in _ON:
        import warnings

        # attributed to the first frame outside xback (the user's import), past importlib's
        here = os.path.dirname(os.path.abspath(__file__)) + os.sep
        level, f = 1, sys._getframe()
        while f is not None and (f.f_code.co_filename.startswith(here) or "importlib" in
                                 f.f_code.co_filename):
            level += not f.f_code.co_filename.startswith("<frozen importlib")
            f = f.f_back  # type: ignore[assignment]
        warnings.warn(
            f"{ENV_VAR}={os.environ[ENV_VAR]!r} is not understood (use 0/1, off/on, "
            f"false/true); routing stays on",
            RuntimeWarning,
            stacklevel=level,
        )
    return True


#: the process default, read once at import from ``XBACK_ROUTE``
_ENABLED: bool = _env_default()


def enabled() -> bool:
    """Whether routing is on for calls made here (the innermost ``use(route=...)``, else
    the ``XBACK_ROUTE`` environment variable, else on)."""
    r = current_context().route
    return _ENABLED if r is None else r


# -- the table ------------------------------------------------------------------------------
def default_table_path() -> Path:
    """The table shipped with xback (measured where the release was prepared)."""
    return Path(__file__).with_name("routing_table.json")


def user_table_path() -> Path:
    """Where ``xback tune`` stores this machine's table: ``$XBACK_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/xback`` (``%LOCALAPPDATA%\\xback`` on Windows), else
    ``~/.cache/xback``; the file is ``routing-table.json``."""
    base = os.environ.get("XBACK_CACHE_DIR")
    if not base:
        xdg = os.environ.get("XDG_CACHE_HOME") or (
            os.environ.get("LOCALAPPDATA") if sys.platform == "win32" else None
        )
        base = os.path.join(xdg, "xback") if xdg else os.path.join(
            os.path.expanduser("~"), ".cache", "xback"
        )
    return Path(base) / "routing-table.json"


def load_table(path: Path) -> dict[str, Any]:
    """Read and check a table file: the whole table is validated against its schema
    (:func:`xback._table.check`) and returned as a clean copy.

    Only a regular file (or a symlink to one) of at most ``xback._table.MAX_BYTES`` (4 MiB)
    is read; a FIFO or a device is refused without blocking. ``ValueError`` (naming the
    first problem) when it is not a valid routing table, ``OSError`` when it cannot be
    read, ``FileNotFoundError`` when there is none.
    """
    try:
        return _table.check(_table.read_json(path))
    except _table.TableError as exc:
        raise ValueError(f"{path}: {exc}") from None


def save_table(table: dict[str, Any], path: Path | None = None) -> Path:
    """Check ``table`` (``ValueError`` if it is not a valid table), write it atomically to
    ``path`` (default :func:`user_table_path`) and make it the active table of this process.

    The file is written through a new file with a random name in the same directory, created
    exclusively and never through a symlink, synced, then renamed over ``path``.
    """
    path = user_table_path() if path is None else path
    try:
        clean = _table.check(table)
    except _table.TableError as exc:
        raise ValueError(f"not a valid routing table: {exc}") from None
    clean.pop("path", None)
    _table.write_json(clean, path)
    reload()
    return path


_lock = threading.Lock()
#: the active table and where it came from ("user" / "default" / "none"), once loaded
_active: dict[str, Any] | None = None
_Plan = tuple[Callable[[Any], int], list[str | None]]
#: source backend -> "op/layout" -> the backend's own dtype object -> (size of an array,
#: [target backend name or None per size bucket]). Backends with nothing routed map to an
#: empty dict, so that their dtype objects are never hashed (array-api-strict's are slow).
_PLANS: dict[Backend, dict[str, dict[Any, _Plan]]] = {}
#: ``plans_of(b, True)``: falsy only when the active table routes nothing from backend ``b``
#: (its plans are built, and empty); then :func:`kernel_target` need not be asked. The dict's
#: own ``get`` (no Python frame): the front layer's lookups cost most right after a LAPACK
#: call (docs/benchmarks.md#third-pass-2026-12-06-1712-utc).
plans_of: Callable[..., Any] = _PLANS.get
#: source backend -> the libraries left out of its plans because they were not imported
#: when the plans were built (rebuilt when another backend's plans are built after that)
_DEFERRED: dict[Backend, frozenset[str]] = {}


def _machine_mismatch(table: dict[str, Any]) -> list[str]:
    """Why ``table`` does not describe this machine (empty: it does): its format has no
    fingerprint, or the fingerprint's machine fields differ."""
    if table["format"] != TABLE_FORMAT:
        return [f"format: {table['format']} records no machine fingerprint (written by an "
                f"older xback)"]
    try:
        here = _machine.machine()
    except Exception as exc:  # cannot tell: never apply a table that may be foreign
        return [f"fingerprint: this machine's could not be read ({type(exc).__name__})"]
    return _machine.mismatches(table["fingerprint"], here)


def _column_mismatch(table: dict[str, Any], columns: Any) -> dict[str, list[str]]:
    """``{column: reasons}`` for the columns of ``table`` whose library version or thread
    settings (:data:`xback._machine.COLUMN_FIELDS`) differ from this process's."""
    fp = table.get("fingerprint") or {}
    bad: dict[str, list[str]] = {}
    for col in sorted(columns):
        try:
            here = _machine.column_values(col)
        except Exception as exc:  # unknown: the column's times cannot be trusted here
            bad[col] = [f"{col}: its settings could not be read ({type(exc).__name__})"]
            continue
        reasons = _machine.mismatches(fp, here)
        if reasons:
            bad[col] = reasons
    return bad


def _user_stacklevel() -> int:
    """The ``stacklevel`` of a warning from here that names the first caller outside
    xback."""
    level, f = 1, sys._getframe(1)
    root = os.path.dirname(__file__)
    while f is not None and f.f_code.co_filename.startswith(root):
        f = f.f_back  # type: ignore[assignment]
        level += 1
    return level


def _load_active() -> dict[str, Any]:
    global _active
    with _lock:
        if _active is not None:
            return _active
        problems: list[str] = []
        chosen: dict[str, Any] | None = None
        for origin, path in (("user", user_table_path), ("default", default_table_path)):
            try:
                p = path()
                table = load_table(p)
            except (FileNotFoundError, NotADirectoryError):
                continue  # no table there
            except Exception as exc:  # unreadable or invalid: say so, use the next one
                problems.append(str(exc) if str(exc).startswith(str(p)) else f"{p}: {exc}")
                continue
            mismatch = _machine_mismatch(table)
            found = {"source": origin, "table": dict(table, path=str(p)),
                     "applies": not mismatch, "mismatch": mismatch}
            if chosen is None or not mismatch:
                chosen = found  # the first valid table, unless a later one fits the machine
            if not mismatch:
                break
        if chosen is None:
            chosen = {"source": "none", "table": None, "applies": False, "mismatch": []}
        chosen["problem"] = "; ".join(problems) or None
        _active = chosen
    if problems:
        import warnings

        fallback = ("the shipped table" if chosen["source"] == "default"
                    else "no table: every call runs on its own library")
        warnings.warn(
            f"xback: routing table {problems[0]} — ignored, using {fallback}. Run `xback tune` "
            f"to write a new one.",
            RuntimeWarning,
            stacklevel=_user_stacklevel(),
        )
    return chosen


def active_table() -> dict[str, Any]:
    """The table routing uses: ``{"source": "user" | "default" | "none", "table": ...,
    "applies": bool, "mismatch": [str], "problem": str | None}``.

    ``applies`` is False when the table was measured on another machine (``mismatch`` says
    which fingerprint fields differ): then nothing is routed. ``problem`` names a table file
    that could not be used (and was skipped, with a ``RuntimeWarning``).
    """
    return _load_active()


def reload() -> None:
    """Forget the loaded table and the plans built from it (after ``xback tune``)."""
    global _active
    with _lock:
        _active = None
        _PLANS.clear()
        _DEFERRED.clear()


def _bucket(n: int) -> int:
    return n.bit_length()


def decide(
    times: dict[str, float], source: str, extra_s: float
) -> str | None:
    """The library (or :data:`FUSED`) to run on instead of ``source``, or None to stay.

    A candidate measured on another library's arrays pays ``extra_s`` (the zero-copy
    conversions there and back); it must beat the best so far by :data:`MARGIN`.
    """
    own = times.get(source)
    if own is None:
        return None
    best, best_t = None, own
    for lib, t in times.items():
        if lib == source:
            continue
        cost = (t + (0.0 if _HOME.get(lib) == source else extra_s)) * MARGIN
        if cost < best_t:
            best, best_t = lib, cost
    return best


#: operations computed by the libraries' multi-threaded BLAS/LAPACK
_BLAS_OPS = frozenset({"lstsq_grad", "svd"})


def _spinning_pools(table: dict[str, Any], source: str) -> frozenset[str]:
    """The libraries whose BLAS a call of ``source`` may not be routed to: NumPy's
    multi-threaded OpenBLAS, for torch input. Its worker threads keep spinning after each call
    (docs/benchmarks.md, "How it measures"), on the cores the torch caller's next parallel
    operations need: a torch training loop whose ``lstsq_grad`` was routed to NumPy ran
    1.7-2.0x slower as a whole program although each routed call was faster
    (docs/routing.md, "Whole programs"), and the tune's switching penalty, measured on short
    loops, did not see it. Routes into single-threaded kernels (NumPy's sorts), into the
    fused kernel (its workers block, they do not spin), and from NumPy input are judged by
    the measured penalty as before."""
    if source != "torch":
        return frozenset()
    threads = (table.get("fingerprint") or {}).get("blas_threads")
    return frozenset({"numpy"}) if threads is None or threads > 1 else frozenset()


def _plans(
    table: dict[str, Any], source: str, exclude: frozenset[str] = frozenset()
) -> dict[tuple[str, str, str], list[str | None]]:
    """``{(op, layout, dtype name): [target per size bucket]}`` for inputs of ``source``
    (a checked table), never routing to a column in ``exclude``."""
    convert_s = float(table.get("convert_seconds", 2e-6))
    groups: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    for e in table["entries"]:
        groups.setdefault((e["op"], e["layout"], e["dtype"]), []).append(e)
    plans: dict[tuple[str, str, str], list[str | None]] = {}
    spinning = _spinning_pools(table, source)
    for key, entries in groups.items():
        left_out = exclude | spinning if key[0] in _BLAS_OPS else exclude
        measured = sorted(((_bucket(int(e["size"])), e) for e in entries), key=lambda m: m[0])
        targets: list[str | None] = [None] * 65
        for b in range(measured[0][0], 65):
            # the nearest measured size class (the smaller one on a tie); above the largest
            # measured size, the largest
            _, e = min(measured, key=lambda m: (abs(m[0] - b), m[0]))
            conversions = int(e.get("arrays", 2))
            times = e["seconds"]
            if left_out:
                times = {k: v for k, v in times.items() if k not in left_out}
            target = decide(times, source, conversions * convert_s)
            # the route timed as it runs (xback tune's "confirmed"): it must still win by the
            # margin, or the call stays
            check = e.get("confirmed", {}).get(source, {})
            if target in check and not check[target] * MARGIN < check["own"]:
                target = None
            # what the route costs the caller's next calls (xback tune's switching
            # penalty): the route must still win by the margin with it; a penalty that
            # could not be measured (None) means no route
            penalty = e.get("penalty_seconds", {})
            if target is not None and source in penalty:
                p = penalty[source]
                own = check.get("own", e["seconds"][source])
                routed = check.get(target, e["seconds"][target] + conversions * convert_s)
                if p is None or not routed * MARGIN + float(p) < own:
                    target = None
            targets[b] = target
        if any(targets):
            plans[key] = targets
    return plans


def _routes_for(source: str) -> tuple[dict[tuple[str, str, str], list[str | None]],
                                      frozenset[str]]:
    """The plans for inputs of ``source`` from the active table, and the libraries left out
    because they are not imported (their settings cannot be read without importing them,
    and the input is never routed to them anyway).

    Nothing when the table does not describe this machine. Where the table would route,
    each column's library version and thread settings are compared with this process's
    (only then, so that ``threadpoolctl`` is imported only for a table that routes): a
    source whose own column differs routes nothing, another column that differs is left
    out.
    """
    act = _load_active()
    table = act["table"]
    if table is None or not act["applies"] or source not in table["libraries"]:
        return {}, frozenset()
    columns = {c for e in table["entries"] for c in e["seconds"]}
    deferred = frozenset(
        c for c in columns
        if c != source and c in KNOWN_BACKENDS and KNOWN_BACKENDS[c][1] not in sys.modules
    )
    plans = _plans(table, source, deferred)
    if plans:
        bad = frozenset(_column_mismatch(table, columns - deferred))
        if source in bad:
            plans = {}
        elif bad:
            plans = _plans(table, source, deferred | bad)
    return plans, deferred


def _build(b: Backend) -> dict[str, dict[Any, _Plan]]:
    """The plans for inputs of backend ``b`` from the active table (cached in _PLANS)."""
    plans: dict[str, dict[Any, _Plan]] = {}
    try:
        targets, deferred = _routes_for(b.name)
    except Exception:  # never an error from a call: a table that cannot be planned routes
        targets, deferred = {}, frozenset()  # nothing
    for (op, layout, dtype_name), tg in targets.items():
        try:  # the backend's own dtype object, e.g. torch.float32
            sample = b.from_numpy(np.empty(0, dtype=dtype_name), "cpu", None)
        except (TypeError, ValueError):
            continue
        numel = getattr(type(sample), "numel", None)  # torch: a method, not .size
        size_of = numel if numel is not None else operator.attrgetter("size")
        plans.setdefault(f"{op}/{layout}", {})[sample.dtype] = (size_of, tg)
    with _lock:
        _PLANS[b] = plans
        if deferred:
            _DEFERRED[b] = deferred
        # plans built while a library they could route to was not imported: rebuilt at
        # their next call now that it is
        for other, libs in list(_DEFERRED.items()):
            if other is not b and any(KNOWN_BACKENDS[c][1] in sys.modules for c in libs):
                _PLANS.pop(other, None)
                del _DEFERRED[other]
    return plans


def kernel_target(
    case: str, b: Backend, x: Any, dtype: Any = None
) -> Backend | _fused.FusedTarget | None:
    """What should compute a call with input ``x`` of backend ``b``: another backend,
    xback's fused kernel (the target object :data:`xback._fused.TARGET`, for
    ``"lstsq_grad/vec"`` only: the caller asks it :meth:`~xback._fused.FusedTarget.grad`),
    or ``None`` when ``b`` computes it itself (see the module docstring for every reason).

    ``case`` is ``"op/layout"``: the operation and the shape class of the call as measured
    by ``xback tune`` — ``"sort/1d"``, ``"argsort/rows"`` (one array / along the last axis
    of a stack), ``"svd/thin-tall"``, ``"svd/vals-square"``..., ``"lstsq_grad/vec"``.
    ``dtype`` is ``x.dtype`` when the caller has already read it (saves a lookup).
    """
    try:
        by_case = _PLANS[b]
    except KeyError:
        if tracing():  # torch.compile: no routing there, and the table is not read
            return None
        by_case = _build(b)
    by_dtype = by_case.get(case)
    if by_dtype is None:
        return None  # not measured (or nothing routed) for this operation and layout
    plan = by_dtype.get(x.dtype if dtype is None else dtype)
    if plan is None:
        return None
    size_of, targets = plan
    name = targets[size_of(x).bit_length()]
    if name is None:
        return None
    # a large input with a faster kernel measured: now the (rarer, dearer) checks
    r = current_context().route
    if not (_ENABLED if r is None else r):
        return None
    if _FORK["child"] and not fork_safe(name, case):
        return None  # a forked child: only to a library whose state survives the fork
    if name == FUSED:
        target = _fused.TARGET
        return target if target.applies(b, x) else None
    kb = _LOADED.get(name)
    if kb is None:
        package = KNOWN_BACKENDS[name][1]
        if package not in sys.modules:  # never import a library the caller has not
            return None
        kb = load_backend(name)
    return kb if route_allowed(b, kb, x) else None


def route_allowed(b: Backend, target: Backend | _fused.FusedTarget | str, x: Any) -> bool:
    """The checks a call of ``b`` passes before it runs on ``target`` (another backend, or
    the fused kernel: its object or its column name :data:`FUSED`) once the table names
    it: ``x`` routable (its memory shareable, no autograd to record), and for a library
    the thread limits (:func:`_threads_fit`); the fused kernel's own rule is
    :meth:`xback._fused.FusedTarget.applies`. ``xback tune`` times them with each route it
    confirms."""
    if isinstance(target, Backend):
        return b.routable(x) and _threads_fit(b, target)
    return _fused.TARGET.applies(b, x)


# -- fork --------------------------------------------------------------------------------
#: ``{"child": True}`` in a process forked from the one that imported xback (set by an
#: ``os.register_at_fork`` handler, so also in a child of a child)
_FORK = {"child": False}


def _after_fork_in_child() -> None:
    _FORK["child"] = True


if hasattr(os, "register_at_fork"):  # POSIX; elsewhere there is no fork
    os.register_at_fork(after_in_child=_after_fork_in_child)


def in_forked_child() -> bool:
    """Whether this process was forked (``os.fork``, ``multiprocessing``'s ``fork`` start
    method) from the one that imported xback: routing then stays on the caller's library
    unless the target is :func:`fork_safe`.

    Examples
    --------
    >>> from xback import _routing
    >>> _routing.in_forked_child()
    False
    """
    return _FORK["child"]


def fork_safe(target: str, case: str) -> bool:
    """Whether ``target`` (a backend name or :data:`FUSED`) can compute ``case``
    (``"op/layout"``) in a forked child, whatever the parent did with it: the backend's
    rule (:meth:`xback.backends.Backend.fork_safe`).

    * torch: no. Its CPU kernels run on an OpenMP pool (GNU libgomp in the official
      builds) that a child cannot use once the parent has: the child's first parallel
      kernel blocks forever. The parent may have used it (a routed call, or the program's
      own torch code), so a child never routes to torch.
    * NumPy: its sorts are single-threaded (always safe); its BLAS and LAPACK only where
      the BLAS restarts its threads in a child
      (:func:`xback.backends.numpy.blas_fork_safe`).
    * the fused kernel: yes. Its threads are xback's own pool, which a child starts anew.
    * other backends: no, unless they say otherwise.

    Examples
    --------
    >>> from xback import _routing
    >>> _routing.fork_safe("torch", "sort/1d"), _routing.fork_safe("numpy", "argsort/rows")
    (False, True)
    """
    if target == FUSED:
        return True
    return load_backend(target).fork_safe(case.split("/", 1)[0])


# -- threads --------------------------------------------------------------------------------
def _threads_fit(b: Backend, kb: Backend) -> bool:
    """Whether running on ``kb`` stays within the threads the caller allowed ``b``: the
    threads a routed call computes with on ``kb`` (:attr:`~xback.backends.Backend.routed_threads`,
    else its pool, :meth:`~xback.backends.Backend.cpu_threads`) no more than the caller's
    (NumPy -> torch: one thread, always within; torch -> NumPy: the BLAS no wider than
    torch's setting). True where either is unknown."""
    mine = b.cpu_threads()
    if mine is None:
        return True
    theirs = kb.routed_threads or kb.cpu_threads()  # what a routed call computes with
    return theirs is None or theirs <= mine


# -- zero-copy there and back ----------------------------------------------------------------
def there(b: Backend, kb: Backend, *xs: Any) -> tuple[Any, ...] | None:
    """``xs`` (of backend ``b``) as arrays of ``kb`` sharing their memory, or None when one
    of them would need a copy (then the caller stays on ``b``)."""
    try:
        return tuple(kb.from_numpy(b.to_numpy(x, False), "cpu", False) for x in xs)
    except (ValueError, TypeError):
        return None


def back(b: Backend, kb: Backend, out: Any) -> Any:
    """A fresh result of ``kb`` as an array of ``b`` (zero-copy)."""
    return b.from_numpy(kb.to_numpy(out, None), "cpu", None)


# -- reporting --------------------------------------------------------------------------------
def plan_summary(
    source: str, table: dict[str, Any] | None = None
) -> list[tuple[str, str, str, int, int | None, str]]:
    """The routes for inputs of ``source``: ``(op, layout, dtype, from_size, to_size,
    target)`` for every size range (elements; ``to_size`` exclusive, None: unbounded) that
    runs on another library, per ``table`` (default: the active one, as this process uses it:
    nothing when it was measured on another machine)."""
    if table is None:
        plans, _ = _routes_for(source)
    elif source not in table.get("libraries", {}):
        return []
    else:
        plans = _plans(table, source)
    rows: list[tuple[str, str, str, int, int | None, str]] = []
    for (op, layout, dtype), targets in sorted(plans.items()):
        start: int | None = None
        for bucket in range(len(targets) + 1):
            t = targets[bucket] if bucket < len(targets) else None
            if start is not None and t != targets[start]:
                hi = None if bucket == len(targets) else 1 << (bucket - 1)
                rows.append((op, layout, dtype, 1 << max(start - 1, 0), hi,
                             str(targets[start])))
                start = None
            if start is None and t is not None:
                start = bucket
    return rows


def describe() -> dict[str, Any]:
    """What ``xback info`` prints about routing: the active table, this machine's CPU, and
    whether the table applies here (``mismatch``: the machine fields that differ, nothing
    routed; ``column_mismatch``: the library versions or thread settings that differ, whose
    columns are left out)."""
    act = _load_active()
    table = act["table"] or {}
    try:
        cpu: str | None = _machine.cpu_model()
    except Exception:
        cpu = None
    column_mismatch: list[str] = []
    if act["table"] is not None and act["applies"]:
        columns = {c for e in table["entries"] for c in e["seconds"]}
        columns = {c for c in columns
                   if c not in KNOWN_BACKENDS or KNOWN_BACKENDS[c][1] in sys.modules}
        for reasons in _column_mismatch(table, columns).values():
            column_mismatch += [r for r in reasons if r not in column_mismatch]
    return {
        "enabled": enabled(),
        "env": os.environ.get(ENV_VAR),
        "source": act["source"],
        "path": table.get("path"),
        "format": table.get("format"),
        "created": table.get("created"),
        "machine": table.get("machine"),
        "libraries": table.get("libraries"),
        "threads": table.get("threads"),
        "fingerprint": table.get("fingerprint"),
        "cpu": cpu,
        "applies": act["applies"],
        "mismatch": list(act["mismatch"]),
        "column_mismatch": column_mismatch,
        "problem": act["problem"],
        "entries": len(table.get("entries", [])),
    }


def now_iso() -> str:
    return _dt.datetime.now(_dt.timezone.utc).replace(microsecond=0).isoformat()
