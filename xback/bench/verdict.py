"""The verdict of an ``xback bench`` run: one screen, one question a line.

Every line is computed from the run's JSON document (``run_all``'s output, or a file written
with ``--json``), never written by hand: a question, the one number that answers it, the
comparison that number belongs to, and, where the project sets one, the target with a plain
✓ or ✗. A benchmark that did not run gives no line. The full tables come with
``xback bench --details``; the JSON keeps everything.

Examples
--------
>>> doc = {"environment": {"cpu_count": 2}, "benchmarks": {"convert": {"results": [
...     {"direction": "torch -> numpy", "size": 1_000_000, "dtype": "float64",
...      "impl": "xback", "median_s": 7e-7},
...     {"direction": "torch -> numpy", "size": 1_000_000, "dtype": "float64",
...      "impl": "copy", "median_s": 1.4e-3}]}}}
>>> for line in verdict(doc):
...     print(line.text())
zero-copy to NumPy at 1000 x 1000 float64: 0.70 µs, 2,000x faster than a copy
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

__all__ = ["MAX_LINES", "Line", "compare", "format_us", "verdict"]

#: the verdict fits on one screen
MAX_LINES = 25

#: the per-call overhead targets on tiny inputs (µs over the raw library call)
_OVERHEAD_TARGET_US = {"sort": 0.5, "argsort": 0.5, "svd": 1.5, "svdvals": 1.5}
#: a routed call: at most this multiple of the faster raw library
_ROUTE_TARGET = 1.05
#: xback.bench.route's split: calls whose faster raw library takes this long are judged by
#: their ratio, shorter ones by their overhead in µs
_LARGE_S = 1e-4
_SMALL_OVER_US = 0.5
#: the seed's zero-copy comparison: 1000 x 1000 elements
_SEED_CONVERT = 1_000_000
#: a whole program with routing on: at most this multiple of routing off
_PROGRAM_TARGET = 1.02
#: compiled xback: at most this multiple of the compiled raw torch version
_COMPILE_TARGET = 1.02


@dataclass(frozen=True)
class Line:
    """One answered question of the verdict.

    ``answer`` holds the number and its comparison in words; ``target`` the project's
    target in words (empty when there is none) and ``ok`` whether this run met it (``None``
    when there is no target).
    """

    question: str
    answer: str
    value: float
    target: str = ""
    ok: bool | None = None

    def mark(self) -> str:
        """``"✓"``, ``"✗"`` or ``""`` (no target)."""
        return "" if self.ok is None else ("✓" if self.ok else "✗")

    def text(self) -> str:
        """The line as printed: question, answer, then the target and its mark."""
        out = f"{self.question}: {self.answer}"
        if self.target:
            out += f" (target {self.target}) {self.mark()}"
        return out

    def to_json(self) -> dict[str, Any]:
        return {"question": self.question, "answer": self.answer, "value": self.value,
                "target": self.target, "ok": self.ok, "text": self.text()}


def compare(t: float, ref: float, what: str = "") -> str:
    """``t`` against ``ref`` (two times) in words: ``"2.30x faster"``, ``"1.40x slower"``,
    ``"as fast"`` (within 0.5 %); ``what`` names the reference.

    >>> compare(1.0, 2.3, "NumPy")
    '2.30x faster than NumPy'
    >>> compare(2.0, 1.0)
    '2.00x slower'
    """
    tail = f" than {what}" if what else ""
    if not (t > 0 and ref > 0):
        return "not measured"
    r = ref / t
    if abs(r - 1) < 0.005:
        return "as fast" + (f" as {what}" if what else "")
    if r > 1:
        return f"{_times(r)} faster{tail}"
    return f"{_times(1 / r)} slower{tail}"


def _times(r: float) -> str:
    return f"{r:,.0f}x" if r >= 100 else f"{r:.2f}x"


def format_us(s: float) -> str:
    """Seconds as microseconds, milliseconds or seconds, three significant digits.

    >>> format_us(7e-7), format_us(2.5e-3)
    ('0.70 µs', '2.50 ms')
    """
    us = s * 1e6
    if abs(us) < 1000:
        return f"{us:.2f} µs"
    if abs(us) < 1e6:
        return f"{us / 1e3:.2f} ms"
    return f"{s:.2f} s"


# -- row access ---------------------------------------------------------------------------
def _results(doc: dict[str, Any], name: str) -> list[dict[str, Any]]:
    res = doc.get("benchmarks", {}).get(name)
    return list(res.get("results", [])) if isinstance(res, dict) else []


def _where(rows: Iterable[dict[str, Any]], **match: Any) -> list[dict[str, Any]]:
    return [r for r in rows if all(r.get(k) == v for k, v in match.items())]


def _median(rows: Iterable[dict[str, Any]], **match: Any) -> float | None:
    for r in _where(rows, **match):
        t = r.get("median_s")
        if isinstance(t, (int, float)) and math.isfinite(t) and t > 0:
            return float(t)
    return None


def _largest(rows: list[dict[str, Any]], key: str) -> Any:
    vals = [r[key] for r in rows if isinstance(r.get(key), (int, float))]
    return max(vals) if vals else None


def _prefer_dtype(rows: list[dict[str, Any]]) -> str | None:
    dts = [r.get("dtype") for r in rows if r.get("dtype")]
    return "float64" if "float64" in dts else (dts[0] if dts else None)


# -- the questions ------------------------------------------------------------------------
def _overhead(doc: dict[str, Any]) -> list[Line]:
    rows = _results(doc, "overhead")
    lines: list[Line] = []
    size = _largest(rows, "size")
    for fn, target in _OVERHEAD_TARGET_US.items():
        per_backend: list[tuple[str, float]] = []
        for backend in ("numpy", "torch"):
            r = _where(rows, function=fn, backend=backend, impl="xback")
            if r and isinstance(r[0].get("overhead_us"), (int, float)):
                per_backend.append((backend, float(r[0]["overhead_us"])))
        if not per_backend:
            continue
        what = f"{size} elements" if fn in ("sort", "argsort") else "an 8x4 matrix"
        worst = max(v for _, v in per_backend)
        answer = ", ".join(
            f"{v:+.2f} µs on {'NumPy' if b == 'numpy' else 'torch'}" for b, v in per_backend
        )
        lines.append(Line(f"xback's cost per {fn} call, {what}", answer, worst,
                          f"≤ +{target} µs", worst <= target))
    return lines


def _sort(doc: dict[str, Any]) -> list[Line]:
    rows = _results(doc, "sort")
    size = _largest(rows, "size")
    dt = _prefer_dtype(rows)
    if size is None or dt is None:
        return []
    np_t = _median(rows, op="argsort", size=size, dtype=dt, backend="numpy", impl="raw",
                   order="asc", stable=True)
    th_t = _median(rows, op="argsort", size=size, dtype=dt, backend="torch", impl="raw",
                   order="asc", stable=True)
    lines: list[Line] = []
    if np_t and th_t:
        lines.append(Line(
            f"stable argsort of {size:,} {dt}, NumPy against torch",
            f"NumPy {compare(np_t, th_t, 'torch')} here", th_t / np_t,
        ))
    # the contract's price: xback's descending stable sort against the raw ascending one
    worst: tuple[float, str] | None = None
    for backend in ("numpy", "torch"):
        raw = _median(rows, op="argsort", size=size, dtype=dt, backend=backend, impl="raw",
                      order="asc", stable=True)
        xb = _median(rows, op="argsort", size=size, dtype=dt, backend=backend,
                     impl="xback", order="desc", stable=True)
        if raw and xb and (worst is None or xb / raw > worst[0]):
            worst = (xb / raw, backend)
    if worst is not None:
        lines.append(Line(
            f"stable descending argsort with NaN last, {size:,} {dt}",
            f"{worst[0]:.2f}x the raw ascending argsort on {worst[1]} (worst backend)",
            worst[0],
        ))
    return lines


def _lstsq(doc: dict[str, Any]) -> list[Line]:
    rows = _results(doc, "lstsq-grad")
    d = _largest(rows, "d")
    if d is None:
        return []
    rows = _where(rows, d=d)
    dt = _prefer_dtype(rows)
    rows = _where(rows, dtype=dt)
    shape = next((tuple(r["shape"]) for r in rows if r.get("shape")), (10 * d, d))
    np_t = _median(rows, backend="numpy", impl="raw", method="explicit")
    auto_t = _median(rows, backend="torch", impl="raw", method="autograd")
    cores = doc.get("environment", {}).get("cpu_count")
    lines: list[Line] = []
    if np_t and auto_t:
        seed = "the seed's 8x needs 8 cores" + (f"; this machine has {cores}" if cores else "")
        lines.append(Line(
            f"lstsq gradient, A {shape} {dt}, torch autograd",
            f"{compare(auto_t, np_t, 'NumPy')} ({seed})", np_t / auto_t,
        ))
    best_raw = min((t for t in (_median(rows, backend=b, impl="raw", method=m)
                                for b in ("numpy", "torch")
                                for m in ("explicit", "autograd")) if t), default=None)
    xb = _median(rows, backend="numpy", impl="xback", method="auto")
    if xb and best_raw:
        lines.append(Line(
            f"lstsq gradient, A {shape} {dt}, xback auto",
            compare(xb, best_raw, "the faster raw library"), xb / best_raw,
            f"≤ {_ROUTE_TARGET}x the faster raw library", xb / best_raw <= _ROUTE_TARGET,
        ))
    return lines


def _convert(doc: dict[str, Any]) -> list[Line]:
    rows = _results(doc, "convert")
    # the seed's question is asked at 1000 x 1000; a run without that size answers at its
    # largest
    size = _SEED_CONVERT if _where(rows, size=_SEED_CONVERT) else _largest(rows, "size")
    if size is None:
        return []
    side = math.isqrt(int(size))
    shape = f"{side} x {side}" if side * side == size else f"{size:,} elements"
    lines: list[Line] = []
    for direction, label in (("torch -> numpy", "to NumPy"), ("numpy -> torch", "from NumPy")):
        sel = _where(rows, direction=direction, size=size)
        dt = _prefer_dtype(sel)
        zero = _median(sel, impl="xback", dtype=dt)
        copy = _median(sel, impl="copy", dtype=dt)
        if zero and copy:
            lines.append(Line(
                f"zero-copy {label} at {shape} {dt}",
                f"{format_us(zero)}, {compare(zero, copy, 'a copy')}", copy / zero,
            ))
    return lines


def _case(r: dict[str, Any]) -> str:
    size = r.get("size")
    return (f"{r.get('op')} {size:,} {r.get('dtype')}, {r.get('input')} input"
            if isinstance(size, int) else str(r.get("candidate")))


def _route(doc: dict[str, Any]) -> list[Line]:
    rows = [r for r in _results(doc, "route") if r.get("impl") == "routed"
            and isinstance(r.get("vs_best"), (int, float)) and r["vs_best"] > 0
            and isinstance(r.get("over_own_us"), (int, float))]
    # the best raw time decides which target applies: a ratio where the work is large (for
    # the calls routing sent elsewhere), an overhead in µs below that (xback.bench.route)
    big = [r for r in rows if r["median_s"] / r["vs_best"] >= _LARGE_S]
    # rows without "routed_to" (older JSON) count as routed, as that JSON judged them
    taken = [r for r in big if r.get("routed_to", "?") != "own"]
    small = [r for r in rows if r["median_s"] / r["vs_best"] < _LARGE_S]
    lines: list[Line] = []
    if taken:
        lines.append(_all_within(
            f"routed calls of {_LARGE_S * 1e6:.0f} µs and more", taken, "vs_best",
            _ROUTE_TARGET, f"{_ROUTE_TARGET}x of the faster raw library",
            lambda v: f"{v:.2f}x",
            f"all ≤ {_ROUTE_TARGET}x",
        ))
    elif big:
        lines.append(Line(
            f"routing, calls of {_LARGE_S * 1e6:.0f} µs and more",
            f"none of {len(big)} was routed (the table routes nothing here): each ran on "
            "its own library",
            float(len(big)),
        ))
    if small:
        lines.append(_all_within(
            f"routing on, calls under {_LARGE_S * 1e6:.0f} µs", small, "over_own_us",
            _SMALL_OVER_US, f"+{_SMALL_OVER_US} µs of their own library",
            lambda v: f"{v:+.2f} µs",
            f"all ≤ +{_SMALL_OVER_US} µs",
        ))
    return lines


def _all_within(question: str, rows: list[dict[str, Any]], key: str, limit: float,
                within: str, fmt: Callable[[float], str], target: str) -> Line:
    """How many ``rows`` have ``key`` at most ``limit`` (``within``: the limit in words),
    and the worst of them (its value written by ``fmt``)."""
    worst = max(rows, key=lambda r: r[key])
    met = sum(1 for r in rows if r[key] <= limit)
    return Line(
        question,
        f"{met} of {len(rows)} within {within} (worst {fmt(worst[key])}: {_case(worst)})",
        float(worst[key]), target, met == len(rows),
    )


def _ratio_rows(doc: dict[str, Any], name: str, key: str) -> list[dict[str, Any]]:
    return [r for r in _results(doc, name) if isinstance(r.get(key), (int, float))]


def _programs(doc: dict[str, Any]) -> list[Line]:
    rows = [r for r in _results(doc, "programs")
            if r.get("routing") == "on" and isinstance(r.get("ratio"), (int, float))]
    if not rows:
        return []
    # a program none of whose calls was routed runs the same code both ways: its ratio is
    # the machine's noise, not routing's doing
    routed = [r for r in rows if r.get("routed_calls") not in (None, "none", 0)]
    lines: list[Line] = []
    if routed:
        worst = max(routed, key=lambda r: r["ratio"])
        best = min(routed, key=lambda r: r["ratio"])
        lines.append(Line(
            f"routing on/off, {len(routed)} of {len(rows)} whole programs with routed calls",
            f"worst {worst['ratio']:.2f}x ({worst.get('program')}), best "
            f"{best['ratio']:.2f}x ({best.get('program')})",
            float(worst["ratio"]), f"≤ {_PROGRAM_TARGET}x", worst["ratio"] <= _PROGRAM_TARGET,
        ))
    else:
        lines.append(Line(
            f"routing on/off over {len(rows)} whole programs",
            "no call was routed (the table routes nothing here): the programs ran as with "
            "routing off", 1.0,
        ))
    return lines


def _compile(doc: dict[str, Any]) -> list[Line]:
    rows = [r for r in _results(doc, "compile") if r.get("mode") == "compiled"
            and r.get("impl") == "xback" and isinstance(r.get("vs_raw"), (int, float))]
    if not rows:
        return []
    worst = max(rows, key=lambda r: r["vs_raw"])
    breaks = sum(int(r.get("graph_breaks") or 0) for r in rows)
    lines = [Line(
        "a model step written with xback, compiled (torch.compile), against raw torch",
        f"worst {worst['vs_raw']:.2f}x (n = {worst.get('n')}), {breaks} graph break(s)",
        float(worst["vs_raw"]), f"≤ {_COMPILE_TARGET}x, 0 breaks",
        worst["vs_raw"] <= _COMPILE_TARGET and breaks == 0,
    )]
    same = [r for r in rows if isinstance(r.get("vs_contract"), (int, float))]
    if same:  # no target: it says how much of the gap is the contract's own work
        w = max(same, key=lambda r: r["vs_contract"])
        lines.append(Line(
            "the same, against raw torch written with xback's contract (NaN last, the "
            "finiteness rule)",
            f"worst {w['vs_contract']:.2f}x (n = {w.get('n')})", float(w["vs_contract"]),
        ))
    return lines


_FAMILY_LIB = {"numpy": "NumPy", "torch": "torch"}


def _family_rows(rows: list[dict[str, Any]], case: str, key: str) -> list[dict[str, Any]]:
    return [r for r in rows if r.get("case") == case and r.get("role") == "xback"
            and isinstance(r.get(key), (int, float)) and r[key] > 0]


def _sort_family(doc: dict[str, Any]) -> list[Line]:
    """Issue 22's targets, one line each, the worst backend deciding: top_k against xback's
    full sort and against ``torch.topk``; median and quantile, searchsorted and unique
    against the faster raw library (read from the rows' ``speedup_vs_sort``/``vs_raw``,
    ``raw_ref`` and ``target`` fields, written by :mod:`xback.bench.sort_family`)."""
    rows = _results(doc, "sort-family")
    size = _largest(rows, "size")
    if size is None:
        return []
    rows = _where(rows, size=size)
    lines: list[Line] = []
    top = _family_rows(rows, "top_k", "speedup_vs_sort")
    if top:
        worst = min(top, key=lambda r: r["speedup_vs_sort"])
        target = float(worst.get("target_speedup") or 10.0)
        answer = ", ".join(f"{_times(r['speedup_vs_sort'])} faster on "
                           f"{_FAMILY_LIB.get(r['backend'], r['backend'])}" for r in top)
        lines.append(Line(
            f"top_k of {size:,} float64, k = 10, against xback's full sort",
            answer, float(worst["speedup_vs_sort"]), f"≥ {target:g}x faster on each backend",
            worst["speedup_vs_sort"] >= target,
        ))
    groups = (("top_k", ("top_k",), f"top_k of {size:,} float64, k = 10, torch input"),
              ("median", ("median", "quantile"), f"median and quantile of {size:,} float64"),
              ("searchsorted", ("searchsorted",),
               f"searchsorted of {size // 10:,} queries into {size // 10:,}"),
              ("unique", ("unique",), f"unique of {size:,} int64"))
    for _, cases, question in groups:
        sel = [r for c in cases for r in _family_rows(rows, c, "vs_raw")
               if isinstance(r.get("target"), (int, float))]
        if not sel:
            continue
        worst = max(sel, key=lambda r: r["vs_raw"] / r["target"])
        target = float(worst["target"])
        ref = str(worst.get("raw_ref", "the faster raw library"))
        libs = " and ".join(_FAMILY_LIB.get(b, b) for b in
                            dict.fromkeys(r["backend"] for r in sel))
        what = "torch.topk" if cases == ("top_k",) else "the faster raw library"
        answer = (f"xback {worst['case'] + ' ' if len(cases) > 1 else ''}on "
                  f"{_FAMILY_LIB.get(worst['backend'], worst['backend'])} "
                  f"{compare(worst['median_s'], worst['median_s'] / worst['vs_raw'], ref)}"
                  f"{'' if len(sel) == 1 else f' (the worst of {libs})'}")
        lines.append(Line(
            f"{question}, against {what}", answer, float(worst["vs_raw"]),
            f"≤ {target:g}x its time", all(r["vs_raw"] <= r["target"] for r in sel),
        ))
    return lines


_QUESTIONS = (_overhead, _sort, _lstsq, _convert, _route, _programs, _compile, _sort_family)


def verdict(doc: dict[str, Any]) -> list[Line]:
    """The answered questions of a run, at most :data:`MAX_LINES` (targets first kept)."""
    lines = [line for q in _QUESTIONS for line in q(doc)]
    if len(lines) > MAX_LINES:
        keep = {id(x) for x in [x for x in lines if x.ok is not None][:MAX_LINES]}
        for x in lines:
            if len(keep) >= MAX_LINES:
                break
            keep.add(id(x))
        lines = [x for x in lines if id(x) in keep]
    return lines
