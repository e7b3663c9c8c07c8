"""Rendering of ``xback bench`` results: rich tables, JSON and PNG plots."""

from __future__ import annotations

import json
import math
import textwrap
from collections import defaultdict
from pathlib import Path
from typing import Any

from xback.bench._harness import machine_line

__all__ = [
    "PlotUnavailable",
    "figures",
    "format_time",
    "plot",
    "ratio_series",
    "render",
    "render_details",
    "render_verdict",
    "summary_cells",
    "to_markdown",
    "write_json",
]

#: per benchmark: the row keys that split a plot into panels
_PANELS: dict[str, tuple[str, ...]] = {
    "convert": ("direction", "dtype"),
    "lstsq-grad": ("dtype",),
    "sort": ("op", "dtype"),
    "svd": ("dtype",),
    "route": ("op", "dtype"),
    "sort-family": ("case",),
}
#: columns that vary within one measured table (not a new section)
_VARIANT_COLUMNS = ("backend", "order", "stable", "impl", "input")
_EXTRA = ("ratio", "vs_raw", "vs_best", "over_own_us", "x_floor", "speedup_vs_copy",
          "overhead_us")
_EXTRA_LABEL = {
    "ratio": "ratio",
    "vs_raw": "xback/raw",
    "vs_best": "/best raw",
    "over_own_us": "µs over own raw",
    "x_floor": "x floor",
    "speedup_vs_copy": "copy/this",
    "overhead_us": "overhead µs",
}


class PlotUnavailable(RuntimeError):
    """matplotlib is not installed."""


def format_time(s: float | None) -> str:
    if s is None or not math.isfinite(s):
        return "-"
    if s < 1e-6:
        return f"{s * 1e9:.0f} ns"
    if s < 1e-3:
        return f"{s * 1e6:.2f} µs"
    if s < 1:
        return f"{s * 1e3:.2f} ms"
    return f"{s:.3f} s"


def _fmt(v: Any) -> str:
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, float):
        if abs(v) >= 100:
            return f"{v:.0f}"
        return f"{v:.2f}"
    if isinstance(v, int) and v >= 10_000:
        return f"{v:.0e}".replace("e+0", "e")
    return str(v)


def summary_cells(name: str, value: float | None) -> tuple[str, str, str, str]:
    """A summary entry as ``(quantity, µs, GB/s, comparison)``: one unit per column.

    Entries named ``"...: A / B"`` are time ratios and read in words ("B 2.30x faster than
    A"); entries in µs or GB/s go to their own column.

    >>> summary_cells("n=100: copy / xback.to_numpy(t)", 4.2)[3]
    'xback.to_numpy(t) 4.20x faster than copy'
    >>> summary_cells("numpy sort: xback overhead (us)", 0.25)[1]
    '+0.25'
    """
    if value is None or not math.isfinite(value):
        return name, "", "", "-"
    if "(us)" in name or "µs" in name:
        return name.replace(" (us)", ""), f"{value:+.2f}", "", ""
    if "GB/s" in name:
        return name, "", f"{value:.1f}", ""
    name, paren, note = name.partition("  (")  # a trailing "  (target ...)" remark
    note = f" ({note}" if paren else ""
    prefix, sep, ratio = name.rpartition(": ")
    a, slash, b = ratio.partition(" / ")
    if not slash or value <= 0:
        return name + note, "", "", f"{value:.3g}"
    if abs(value - 1) < 0.005:
        words = f"{b} as fast as {a}"
    elif value > 1:
        words = f"{b} {value:.2f}x faster than {a}"
    else:
        words = f"{b} {1 / value:.2f}x slower than {a}"
    return (prefix if sep else name), "", "", words + note


def render_verdict(doc: dict[str, Any], console: Any) -> None:
    """Print the verdict (:func:`xback.bench.verdict.verdict`): one question a line."""
    from rich.markup import escape

    from xback.bench.verdict import verdict

    lines = verdict(doc)
    console.print("[bold]verdict[/] (every number from this run; details: --details, "
                  "all numbers: --json)")
    if not lines:
        console.print("  no benchmark of this run answers a verdict question")
    for line in lines:
        mark = {True: " [green]✓[/]", False: " [red]✗[/]", None: ""}[line.ok]
        target = f" (target {escape(line.target)})" if line.target else ""
        console.print(f"  {escape(line.question)}: {escape(line.answer)}{target}{mark}",
                      soft_wrap=True)


def render(doc: dict[str, Any], console: Any, details: bool = True) -> None:
    """Print one table per benchmark (medians, min, spread, ratios) and its summary when
    ``details``, then the verdict (:func:`render_verdict`)."""
    if details:
        render_details(doc, console)
    else:
        console.print(f"[bold]machine[/]: {machine_line(doc['environment'])}")
    render_verdict(doc, console)


def render_details(doc: dict[str, Any], console: Any) -> None:
    """Print one table per benchmark (medians, min, spread, ratios) and its summary."""
    from rich.table import Table

    env = doc["environment"]
    console.print(f"[bold]machine[/]: {machine_line(env)}")
    console.print(
        f"threads: torch {env.get('torch_threads', '-')} intra-op / "
        f"{env.get('torch_interop_threads', '-')} inter-op; BLAS "
        + ", ".join(f"{b.get('internal_api')}={b.get('num_threads')}" for b in env.get("blas", []))
        + f"; load average before {env.get('load_average')} after "
        f"{env.get('load_average_after')}"
    )
    for name, res in doc["benchmarks"].items():
        rows = res["results"]
        table = Table(title=f"{name}: {res['title']}", title_justify="left")
        cols = [c for c in res["columns"] if c not in _EXTRA and c != "candidate"]
        extras = [c for c in _EXTRA if any(r.get(c) is not None for r in rows)]
        for c in cols:
            table.add_column(c)
        table.add_column("candidate")
        table.add_column("median", justify="right")
        table.add_column("min", justify="right")
        table.add_column("spread", justify="right")
        for c in extras:
            table.add_column(_EXTRA_LABEL[c], justify="right")
        prev: tuple[Any, ...] | None = None
        for r in rows:
            key = tuple(r.get(c) for c in cols if c not in _VARIANT_COLUMNS)
            if prev is not None and key != prev:
                table.add_section()
            prev = key
            table.add_row(
                *[_fmt(r.get(c)) for c in cols],
                str(r["candidate"]) + (" !" if r.get("unstable") else ""),
                format_time(r["median_s"]),
                format_time(r["min_s"]),
                f"{100 * r['spread']:.0f}%" if r["spread"] == r["spread"] else "-",
                *[_fmt(r.get(c)) for c in extras],
            )
        if rows:
            console.print(table)
        if res["summary"]:
            summ = Table(title=f"{name}: summary", title_justify="left")
            cells = [summary_cells(s["name"], s["value"]) for s in res["summary"]]
            summ.add_column("quantity")
            units = [(1, "µs", "right"), (2, "GB/s", "right"), (3, "comparison", "left")]
            used = [u for u in units if any(c[u[0]] for c in cells)]
            for _, label, justify in used:
                summ.add_column(label, justify=justify)  # type: ignore[arg-type]
            for c in cells:
                summ.add_row(c[0], *[c[i] for i, _, _ in used])
            console.print(summ)
        for note in res["notes"]:
            console.print(f"[yellow]note[/] ({name}): {note}")
        unstable = [r for r in rows if r.get("unstable")]
        if unstable:
            console.print(
                f"[yellow]note[/] ({name}): {len(unstable)} of {len(rows)} candidates "
                "(marked !) had a sample more than 2x their fastest: the machine interfered "
                "(another process, or BLAS/OpenMP threads stalled waiting for a busy core; "
                f"load average {env.get('load_average')} -> {env.get('load_average_after')}). "
                "Compare with --threads 1."
            )


def write_json(doc: dict[str, Any], path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=1, default=str) + "\n", encoding="utf-8")


def _title(name: str, res: dict[str, Any], env: dict[str, Any]) -> str:
    head = f"xback bench {name}: {res['title']}"
    return "\n".join(textwrap.wrap(head, 95) + textwrap.wrap(machine_line(env), 110))


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlotUnavailable(
            "plots need matplotlib: pip install 'xback[plot]' (or pip install matplotlib)"
        ) from None
    return plt


def figures(doc: dict[str, Any]) -> dict[str, Any]:
    """One matplotlib figure per benchmark that has results: ratio panels on top
    (:func:`ratio_series`: xback over the faster raw library, with 1.0, the target and the
    seed's claims drawn as lines), the time panels below. The caller closes them.

    Raises :class:`PlotUnavailable` when matplotlib is not installed.
    """
    plt = _pyplot()
    env = doc["environment"]
    out: dict[str, Any] = {}
    for name, res in doc["benchmarks"].items():
        rows = res["results"]
        if not rows:
            continue
        if name == "overhead":
            fig = _plot_overhead(plt, rows)
        elif name == "programs":
            fig = _plot_programs(plt, rows)
        else:
            fig = _plot_lines(plt, name, res, rows)
        fig.suptitle(_title(name, res, env), fontsize=8)
        # leave the title its own 0.6 inch at the top, whatever the figure's height
        fig.tight_layout(rect=(0, 0, 1, 1 - 0.6 / fig.get_figheight()))
        out[name] = fig
    return out


def plot(doc: dict[str, Any], directory: Path) -> list[Path]:
    """Write one PNG per benchmark into ``directory`` (see :func:`figures`); return their
    paths.

    Raises :class:`PlotUnavailable` when matplotlib is not installed.
    """
    plt = _pyplot()
    directory.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    for name, fig in figures(doc).items():
        path = directory / f"{name}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
    return written


#: panels side by side in one plot; more wrap to the next row
_MAX_COLUMNS = 4
#: per benchmark: the row keys that make two rows comparable (the raw rows with the same
#: values are the reference), the target ratio drawn (None: none) and the seed's claims
#: drawn as labelled lines (value, label)
_RATIO_SPEC: dict[str, tuple[tuple[str, ...], float | None, tuple[tuple[float, str], ...]]] = {
    "lstsq-grad": (("dtype",), 1.05, ()),
    "sort": (("op", "dtype", "order", "stable"), None, ()),
    "svd": (("dtype",), None, ()),
    "route": (("op", "dtype"), 1.05, ()),
    "sort-family": (("case",), 1.1, ()),
}


def ratio_series(
    name: str, res: dict[str, Any]
) -> dict[tuple[Any, ...], dict[str, list[tuple[float, float]]]]:
    """The ratio panels of one benchmark: panel key -> line label -> sorted ``(x, ratio)``.

    Each xback candidate's median over the faster raw library's median at the same size
    (and the same comparable keys, e.g. the same order and stability for sorts); for
    ``convert``, the speed-up of each zero-copy conversion over a copy; for ``lstsq-grad``
    also the raw torch autograd over NumPy's explicit formula (the seed's comparison).
    """
    rows = res["results"]
    x_key = res.get("x_key", "size")
    panels: dict[tuple[Any, ...], dict[str, list[tuple[float, float]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    keys = _PANELS.get(name, ())
    if name == "sort-family":
        # the rows carry their ratios: over the faster raw library (``vs_raw``) and, for
        # top_k, the speed-up over xback's full sort
        for r in rows:
            pkey = tuple(r.get(k) for k in keys)
            if isinstance(r.get("vs_raw"), (int, float)):
                panels[pkey][f"{r['candidate']} / {r.get('raw_ref', 'raw')}"].append(
                    (float(r[x_key]), float(r["vs_raw"])))
            if isinstance(r.get("speedup_vs_sort"), (int, float)) and r["speedup_vs_sort"]:
                panels[pkey][f"{r['candidate']} / xback full sort"].append(
                    (float(r[x_key]), 1.0 / float(r["speedup_vs_sort"])))
    elif name == "convert":
        for r in rows:
            if r.get("impl") == "xback" and isinstance(r.get("speedup_vs_copy"), (int, float)):
                panels[tuple(r.get(k) for k in keys)][r["candidate"]].append(
                    (float(r[x_key]), float(r["speedup_vs_copy"])))
    else:
        match = _RATIO_SPEC.get(name, (("dtype",), None, ()))[0]
        raw: dict[tuple[Any, ...], float] = {}
        for r in rows:
            if r.get("impl") == "raw" and r.get("median_s"):
                k = (r.get(x_key), *(r.get(m) for m in match))
                raw[k] = min(raw.get(k, math.inf), float(r["median_s"]))
        for r in rows:
            if r.get("impl") in ("raw", "floor", None) or not r.get("median_s"):
                continue
            best = raw.get((r.get(x_key), *(r.get(m) for m in match)))
            if best:
                panels[tuple(r.get(k) for k in keys)][r["candidate"]].append(
                    (float(r[x_key]), float(r["median_s"]) / best))
        if name == "lstsq-grad":
            for r in rows:
                if r.get("impl") == "raw" and r.get("method") == "autograd":
                    ref = next((q["median_s"] for q in rows if q.get("impl") == "raw"
                                and q.get("method") == "explicit" and q.get("backend") == "numpy"
                                and q.get(x_key) == r.get(x_key)
                                and q.get("dtype") == r.get("dtype")), None)
                    if ref:
                        panels[tuple(r.get(k) for k in keys)][
                            "raw torch autograd / raw NumPy explicit"
                        ].append((float(r[x_key]), float(r["median_s"]) / float(ref)))
    for lines in panels.values():
        for pts in lines.values():
            pts.sort()
    return panels


def _log_x(ax: Any, xs: list[float]) -> None:
    if xs and max(xs) / max(min(xs), 1e-300) >= 4:
        # sizes spanning decades (or doublings of d): log scale, base 2 for powers of 2
        pow2 = all(x >= 1 and int(x) & (int(x) - 1) == 0 for x in xs)
        ax.set_xscale("log", base=2 if pow2 else 10)


def _legend_below(ax: Any, n: int) -> None:
    ax.legend(fontsize=6, loc="upper center", bbox_to_anchor=(0.5, -0.2),
              ncol=2 if n > 4 else 1, frameon=False)


def _plot_lines(plt: Any, name: str, res: dict[str, Any], rows: list[dict[str, Any]]) -> Any:
    keys = _PANELS.get(name, ())
    if name == "sort":
        rows = [r for r in rows if r.get("stable")]
    panels: dict[tuple[Any, ...], dict[str, list[tuple[float, float]]]] = defaultdict(
        lambda: defaultdict(list)
    )
    for r in rows:
        panels[tuple(r.get(k) for k in keys)][r["candidate"]].append(
            (float(r[res["x_key"]]), float(r["median_s"]))
        )
    ratios = ratio_series(name, dict(res, results=rows))
    n = len(panels)
    ncol = min(n, _MAX_COLUMNS)
    nrow = -(-n // ncol)  # each panel: its ratios above its times
    fig, axes = plt.subplots(2 * nrow, ncol, figsize=(5.4 * ncol if ncol > 1 else 8,
                                                      10.5 * nrow), squeeze=False)
    for extra in range(n, nrow * ncol):  # unused cells of the last row
        axes[2 * (extra // ncol)][extra % ncol].set_visible(False)
        axes[2 * (extra // ncol) + 1][extra % ncol].set_visible(False)
    colours = plt.get_cmap("tab20").colors
    target = _RATIO_SPEC.get(name, ((), None, ()))[1]
    for i_panel, pkey in enumerate(panels):
        title = ", ".join(str(k) for k in pkey)
        row, col = 2 * (i_panel // ncol), i_panel % ncol
        # top: ratios
        ax = axes[row][col]
        lines = ratios.get(pkey, {})
        for i, (label, pts) in enumerate(lines.items()):
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "-", marker="o", ms=3,
                    label=label, color=colours[i % len(colours)])
        xs = [x for pts in lines.values() for x, _ in pts]
        _log_x(ax, xs)
        ax.set_yscale("log")
        if name == "convert":
            ax.set_ylabel("speed-up over a copy (x, higher is better)")
            ax.axhline(1000, color="tab:red", ls="--", lw=1,
                       label="seed: ~1000x at 1000 x 1000")
        else:
            ax.set_ylabel("time / the faster raw library's (lower is better)")
            ax.axhline(1.0, color="black", lw=1, label="1.0: as fast as the faster raw call")
            if target is not None:
                ax.axhline(target, color="tab:red", ls="--", lw=1, label=f"target {target}x")
            if name == "sort-family" and pkey == ("top_k",):
                ax.axhline(0.1, color="tab:orange", ls="--", lw=1,
                           label="target vs full sort: 0.1 (10x faster)")
            if name == "lstsq-grad":
                ax.axhline(1 / 8, color="tab:purple", ls=":", lw=1,
                           label="seed: torch autograd 8x faster than NumPy (8 cores)")
        ax.set_xlabel(res["x_label"])
        ax.set_title(f"ratios: {title}" if title else "ratios", fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        _legend_below(ax, len(lines) + 2)
        # bottom: times
        ax = axes[row + 1][col]
        tl = panels[pkey]
        for i, (cand, pts) in enumerate(tl.items()):
            pts.sort()
            style = "--" if cand.startswith("floor") else ("-" if "xback" in cand else ":")
            ax.plot([p[0] for p in pts], [p[1] for p in pts], style, marker="o", ms=3,
                    label=cand, color=colours[i % len(colours)])
        _log_x(ax, [x for pts in tl.values() for x, _ in pts])
        ax.set_yscale("log")
        ax.set_xlabel(res["x_label"])
        ax.set_ylabel("median time per call (s)")
        ax.set_title(f"times: {title}" if title else "times", fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        _legend_below(ax, len(tl))
    return fig


def _plot_programs(plt: Any, rows: list[dict[str, Any]]) -> Any:
    """One pair of bars per program: its median with routing on and off."""
    programs = list(dict.fromkeys(r["program"] for r in rows))
    fig, ax = plt.subplots(figsize=(9, 4.6))
    width = 0.4
    for i, routing in enumerate(("on", "off")):
        vals = [next((r["median_s"] * 1e3 for r in rows
                      if r["program"] == p and r["routing"] == routing), math.nan)
                for p in programs]
        ax.bar([j + i * width for j in range(len(programs))], vals, width,
               label=f"routing {routing}")
    ax.set_xticks([j + width / 2 for j in range(len(programs))])
    ax.set_xticklabels(programs, rotation=15, fontsize=8)
    ax.set_ylabel("median time per program run (ms)")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=7)
    return fig


def _plot_overhead(plt: Any, rows: list[dict[str, Any]]) -> Any:
    funcs = list(dict.fromkeys(r["function"] for r in rows))
    series = list(dict.fromkeys((r["backend"], r["impl"]) for r in rows if r["impl"] != "raw"))
    fig, ax = plt.subplots(figsize=(9, 4.6))
    width = 0.8 / max(len(series), 1)
    for i, (backend, impl) in enumerate(series):
        vals = []
        for f in funcs:
            v = next((r["overhead_us"] for r in rows if r["function"] == f
                      and r["backend"] == backend and r["impl"] == impl), math.nan)
            vals.append(v)
        label = f"{'xback' if impl == 'xback' else 'array-api-compat'} ({backend})"
        ax.bar([j + i * width for j in range(len(funcs))], vals, width, label=label)
    ax.set_xticks([j + 0.4 - width / 2 for j in range(len(funcs))])
    ax.set_xticklabels(funcs, rotation=20, fontsize=8)
    ax.set_xlabel("function (tiny input: 16 elements, 8x4 matrices)")
    ax.set_ylabel("overhead over the raw call (µs per call)")
    ax.axhline(0, color="black", lw=0.5)
    ax.axhline(0.5, color="tab:red", ls="--", lw=1, label="target for sorts: +0.5 µs")
    ax.axhline(1.5, color="tab:purple", ls="--", lw=1, label="target for svd: +1.5 µs")
    ax.grid(True, axis="y", alpha=0.3)
    ax.legend(fontsize=7)
    return fig


def to_markdown(doc: dict[str, Any]) -> str:
    """The run as Markdown tables (one pivot per benchmark and panel: candidates down, sizes
    across, median per call with the benchmark's ratio in brackets), then the summaries."""
    env = doc["environment"]
    out: list[str] = [f"Machine: {machine_line(env)}", ""]
    ratio_key = {"lstsq-grad": "x_floor", "convert": "speedup_vs_copy", "sort": "vs_raw",
                 "svd": "vs_raw", "route": "vs_best", "programs": "ratio"}
    for name, res in doc["benchmarks"].items():
        rows = res["results"]
        out.append(f"### `{name}`: {res['title']}")
        out.append("")
        if name == "overhead":
            out.append("| backend | function | raw | xback | xback overhead | "
                       "array-api-compat overhead |")
            out.append("|---|---|---:|---:|---:|---:|")
            groups: dict[tuple[str, str], dict[str, dict[str, Any]]] = defaultdict(dict)
            for r in rows:
                groups[(r["backend"], r["function"])][r["impl"]] = r
            for (backend, fn), g in groups.items():
                compat = g.get("compat")
                out.append(
                    f"| {backend} | `{fn}` | {format_time(g['raw']['median_s'])} | "
                    f"{format_time(g['xback']['median_s'])} | "
                    f"{g['xback']['overhead_us']:+.2f} µs | "
                    + (f"{compat['overhead_us']:+.2f} µs |" if compat else "- |")
                )
        else:
            rk = ratio_key.get(name)
            keys = _PANELS.get(name, ())
            panels: dict[tuple[Any, ...], dict[str, dict[Any, dict[str, Any]]]] = defaultdict(
                lambda: defaultdict(dict)
            )
            for r in rows:
                panels[tuple(r.get(k) for k in keys)][r["candidate"]][r[res["x_key"]]] = r
            for pkey, cands in panels.items():
                xs = sorted({x for c in cands.values() for x in c})
                if pkey:
                    out.append(f"**{', '.join(str(k) for k in pkey)}**")
                    out.append("")
                head = [res["x_label"]] + [_fmt(x) for x in xs]
                out.append("| " + " | ".join(head) + " |")
                out.append("|---|" + "---:|" * len(xs))
                for cand, byx in cands.items():
                    cells = []
                    for x in xs:
                        r = byx.get(x)
                        if r is None:
                            cells.append("-")
                            continue
                        cell = format_time(r["median_s"])
                        if rk and r.get(rk) is not None:
                            cell += f" ({r[rk]:.3g})"
                        if r.get("unstable"):
                            cell += " !"
                        cells.append(cell)
                    out.append(f"| {cand} | " + " | ".join(cells) + " |")
                out.append("")
        out.append("")
        if res["summary"]:
            out.append("<details><summary>summary</summary>")
            out.append("")
            out.append("| quantity | µs | GB/s | comparison |")
            out.append("|---|---:|---:|---|")
            out.extend("| " + " | ".join(summary_cells(s["name"], s["value"])) + " |"
                       for s in res["summary"] if s["value"] is not None)
            out.append("")
            out.append("</details>")
            out.append("")
        for note in res["notes"]:
            out.append(f"> {note}")
            out.append("")
    return "\n".join(out)
