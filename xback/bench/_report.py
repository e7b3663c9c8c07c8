"""Rendering of ``xback bench`` results: rich tables, JSON and PNG plots."""

from __future__ import annotations

import json
import math
import textwrap
from collections import defaultdict
from pathlib import Path
from typing import Any

from xback.bench._harness import machine_line

__all__ = ["PlotUnavailable", "format_time", "plot", "render", "to_markdown", "write_json"]

#: per benchmark: the row keys that split a plot into panels
_PANELS: dict[str, tuple[str, ...]] = {
    "convert": ("direction", "dtype"),
    "lstsq-grad": ("dtype",),
    "sort": ("op", "dtype"),
    "svd": ("dtype",),
    "route": ("op", "dtype"),
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


def render(doc: dict[str, Any], console: Any) -> None:
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
            summ.add_column("quantity")
            summ.add_column("value", justify="right")
            for s in res["summary"]:
                summ.add_row(s["name"], f"{s['value']:.3g}" if s["value"] is not None else "-")
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


def plot(doc: dict[str, Any], directory: Path) -> list[Path]:
    """Write one PNG per benchmark into ``directory``; return their paths.

    Raises :class:`PlotUnavailable` when matplotlib is not installed.
    """
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise PlotUnavailable(
            "--plot needs matplotlib: pip install 'xback[plot]' (or pip install matplotlib)"
        ) from None
    directory.mkdir(parents=True, exist_ok=True)
    env = doc["environment"]
    written: list[Path] = []
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
        fig.tight_layout()
        path = directory / f"{name}.png"
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)
    return written


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
    n = len(panels)
    fig, axes = plt.subplots(1, n, figsize=(5.2 * n if n > 1 else 8, 4.6), squeeze=False)
    for ax, (pkey, lines) in zip(axes[0], panels.items(), strict=True):
        xs_all = [x for pts in lines.values() for x, _ in pts]
        colours = plt.get_cmap("tab20").colors
        for i, (cand, pts) in enumerate(lines.items()):
            pts.sort()
            style = "--" if cand.startswith("floor") else ("-" if "xback" in cand else ":")
            ax.plot([p[0] for p in pts], [p[1] for p in pts], style, marker="o", ms=3,
                    label=cand, color=colours[i % len(colours)])
        if xs_all and max(xs_all) / max(min(xs_all), 1e-300) >= 4:
            # sizes spanning decades (or doublings of d): log scale, base 2 for powers of 2
            pow2 = all(x >= 1 and int(x) & (int(x) - 1) == 0 for x in xs_all)
            ax.set_xscale("log", base=2 if pow2 else 10)
        ax.set_yscale("log")
        ax.set_xlabel(res["x_label"])
        ax.set_ylabel("median time per call (s)")
        ax.set_title(", ".join(str(k) for k in pkey), fontsize=9)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=6)
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
            out.append("| quantity | value |")
            out.append("|---|---:|")
            out.extend(f"| {s['name']} | {s['value']:.3g} |" for s in res["summary"]
                       if s["value"] is not None)
            out.append("")
            out.append("</details>")
            out.append("")
        for note in res["notes"]:
            out.append(f"> {note}")
            out.append("")
    return "\n".join(out)
