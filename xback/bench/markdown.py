"""The benchmark page's generated parts, rendered from one run's JSON.

``docs/benchmarks.md`` opens with the verdict of one full ``xback bench all`` run and its
plots, and ends with the run's full tables. Those three parts are never typed by hand: they
sit between ``<!-- begin: NAME -->`` and ``<!-- end: NAME -->`` markers and
:func:`update_regions` rewrites them from the JSON (``benchmarks/render_docs.py`` does it for
the page; ``tests/test_docs.py`` checks that the page matches its JSON).

Examples
--------
>>> doc = {"environment": {"cpu": "test CPU", "cpu_count": 2}, "benchmarks": {}}
>>> regions = {"verdict": verdict_markdown(doc)}
>>> text = "# Page\\n<!-- begin: verdict -->\\nold\\n<!-- end: verdict -->\\n"
>>> print(update_regions(text, regions))
# Page
<!-- begin: verdict -->
Machine: test CPU (2 CPUs), NumPy None / BLAS ?, no torch, device cpu
<BLANKLINE>
No benchmark of this run answers a verdict question.
<!-- end: verdict -->
<BLANKLINE>
"""

from __future__ import annotations

import re
from typing import Any

from xback.bench._harness import machine_line
from xback.bench.verdict import verdict

__all__ = ["plots_markdown", "region", "update_regions", "verdict_markdown"]


def verdict_markdown(doc: dict[str, Any]) -> str:
    """The run's machine line and its verdict as a Markdown list, each target line ending
    with its target and a plain ✓/✗ (the same lines as ``xback bench`` prints)."""
    lines = verdict(doc)
    out = [f"Machine: {machine_line(doc.get('environment', {}))}", ""]
    if not lines:
        out.append("No benchmark of this run answers a verdict question.")
    out.extend(f"* {line.text()}" for line in lines)
    return "\n".join(out)


def plots_markdown(doc: dict[str, Any], img_dir: str) -> str:
    """One image link per benchmark of the run with results, in the run's order (the PNGs
    ``xback bench --plot`` writes: ratio panels above time panels)."""
    out = []
    for name, res in doc.get("benchmarks", {}).items():
        if res.get("results"):
            out.append(f"### `{name}`: {res.get('title', name)}")
            out.append("")
            out.append(f"![{name}: ratios and times]({img_dir}/{name}.png)")
            out.append("")
    return "\n".join(out).rstrip()


def region(text: str, name: str) -> str:
    """The text between the ``begin``/``end`` markers of region ``name`` in ``text``.

    Raises ``KeyError`` when the page has no such region."""
    m = _pattern(name).search(text)
    if m is None:
        raise KeyError(f"no region {name!r} (<!-- begin: {name} --> ... <!-- end: {name} -->)")
    return m.group(2).strip("\n")


def update_regions(text: str, regions: dict[str, str]) -> str:
    """``text`` with each named region's content replaced by ``regions[name]``.

    Raises ``KeyError`` for a region the text does not mark."""
    for name, content in regions.items():
        m = _pattern(name).search(text)
        if m is None:
            raise KeyError(f"no region {name!r} in the page")
        text = f"{text[: m.start()]}{m.group(1)}\n{content}\n{m.group(3)}{text[m.end() :]}"
    return text


def _pattern(name: str) -> re.Pattern[str]:
    n = re.escape(name)
    return re.compile(rf"(<!-- begin: {n} -->)\n?(.*?)\n?(<!-- end: {n} -->)", re.S)
