"""``xback bench --report DIR``: one self-contained HTML page a person can open.

The page holds the verdict (:mod:`xback.bench.verdict`), the machine description (CPU model,
threads, load, versions) and every benchmark's plots (ratios and times, embedded as PNG data,
so the page needs nothing beside it); ``results.json`` beside it keeps every number.

Examples
--------
>>> import json, tempfile
>>> from pathlib import Path
>>> doc = {"environment": {"cpu": "test CPU", "cpu_count": 2}, "config": {},
...        "benchmarks": {}}
>>> page = write_report(doc, Path(tempfile.mkdtemp()), plots=False)
>>> page.name, (page.parent / "results.json").exists()
('index.html', True)
"""

from __future__ import annotations

import base64
import html
import io
from pathlib import Path
from typing import Any

from xback.bench._harness import machine_line
from xback.bench._report import PlotUnavailable, figures, write_json
from xback.bench.verdict import verdict

__all__ = ["machine_rows", "render_html", "write_report"]

_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1100px; margin: 2em auto;
       padding: 0 1em; color: #222; }
h1 { font-size: 1.5em; } h2 { font-size: 1.2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.5em 0; }
td, th { border-bottom: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left;
         vertical-align: top; }
.ok { color: #17702b; font-weight: bold; } .miss { color: #b3261e; font-weight: bold; }
img { max-width: 100%; border: 1px solid #eee; }
.note { color: #555; font-size: 0.9em; }
"""


def machine_rows(env: dict[str, Any]) -> list[tuple[str, str]]:
    """The machine description as ``(label, value)`` rows: CPU model and count, threads,
    load before and after, library versions."""
    blas = ", ".join(f"{b.get('internal_api')} {b.get('version') or ''} x{b.get('num_threads')}"
                     for b in env.get("blas", []) or [])
    rows = [
        ("CPU", f"{env.get('cpu', '?')} ({env.get('cpu_count', '?')} logical CPUs, "
                f"{env.get('affinity', '?')} usable)"),
        ("threads", f"torch {env.get('torch_threads', '-')} intra-op / "
                    f"{env.get('torch_interop_threads', '-')} inter-op; BLAS and OpenMP: "
                    f"{blas or '-'}"),
        ("load average", f"{env.get('load_average')} before, "
                         f"{env.get('load_average_after')} after"),
        ("versions", f"Python {env.get('python', '?')}, xback {env.get('xback', '?')} "
                     f"({env.get('xback_commit') or 'no commit'}), NumPy "
                     f"{env.get('numpy', '?')}, torch {env.get('torch') or 'not installed'}"),
        ("platform", str(env.get("platform", "?"))),
        ("when (UTC)", str(env.get("timestamp_utc", "?"))),
    ]
    return rows


def _png(fig: Any) -> str:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=80)
    return base64.b64encode(buf.getvalue()).decode("ascii")


def render_html(doc: dict[str, Any], plots: bool = True) -> str:
    """The report page for a run's JSON document (plots need matplotlib; without it, or
    with ``plots=False``, the page says so and shows the verdict and the machine)."""
    esc = html.escape
    env = doc.get("environment", {})
    lines = verdict(doc)
    out = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        "<title>xback bench report</title>", f"<style>{_STYLE}</style></head><body>",
        "<h1>xback bench report</h1>",
        f'<p class="note">{esc(machine_line(env)) if env else ""}</p>',
        '<h2 id="verdict">Verdict</h2>',
    ]
    if lines:
        out.append('<table class="verdict"><tr><th>question</th><th>answer</th>'
                   "<th>target</th><th></th></tr>")
        for line in lines:
            cls = "" if line.ok is None else (' class="ok"' if line.ok else ' class="miss"')
            out.append(f"<tr><td>{esc(line.question)}</td><td>{esc(line.answer)}</td>"
                       f"<td>{esc(line.target)}</td><td{cls}>{esc(line.mark())}</td></tr>")
        out.append("</table>")
    else:
        out.append("<p>No benchmark in this run answers a verdict question.</p>")
    out.append('<h2 id="machine">Machine</h2><table class="machine">')
    out.extend(f"<tr><th>{esc(k)}</th><td>{esc(v)}</td></tr>" for k, v in machine_rows(env))
    out.append("</table>")
    out.append('<h2 id="plots">Plots</h2>')
    figs: dict[str, Any] = {}
    if plots:
        try:
            figs = figures(doc)
        except PlotUnavailable as exc:
            out.append(f'<p class="note">{esc(str(exc))}</p>')
    if figs:
        import matplotlib.pyplot as plt

        for name, fig in figs.items():
            title = doc["benchmarks"][name].get("title", "")
            out.append(f'<h3>{esc(name)}</h3><p class="note">{esc(title)}</p>'
                       f'<img class="plot" alt="{esc(name)} plot" '
                       f'src="data:image/png;base64,{_png(fig)}">')
            plt.close(fig)
    elif plots:
        out.append('<p class="note">No plots: no benchmark results.</p>')
    out.append('<p class="note">Every number of this run is in results.json beside this '
               "page.</p></body></html>")
    return "\n".join(out)


def write_report(doc: dict[str, Any], directory: Path, plots: bool = True) -> Path:
    """Write ``index.html`` and ``results.json`` into ``directory``; return the page."""
    directory.mkdir(parents=True, exist_ok=True)
    write_json(doc, directory / "results.json")
    page = directory / "index.html"
    page.write_text(render_html(doc, plots=plots), encoding="utf-8")
    return page
