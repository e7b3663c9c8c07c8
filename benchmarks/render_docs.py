"""Rewrite the generated parts of ``docs/benchmarks.md`` from one full run.

Usage (after ``xback bench all --json RUN.json --plot IMG``)::

    python benchmarks/render_docs.py RUN.json IMG

copies the JSON to ``docs/bench-results.json`` and the PNGs to ``docs/img/``, then rewrites
the page's ``verdict``, ``plots`` and ``appendix`` regions (see
:mod:`xback.bench.markdown`). Everything else on the page is prose and is edited by hand.
"""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

from xback.bench._report import to_markdown
from xback.bench.markdown import plots_markdown, update_regions, verdict_markdown

DOCS = Path(__file__).resolve().parent.parent / "docs"


def main(run_json: str, img_dir: str) -> None:
    doc = json.loads(Path(run_json).read_text())
    shutil.copyfile(run_json, DOCS / "bench-results.json")
    (DOCS / "img").mkdir(exist_ok=True)
    for png in sorted(Path(img_dir).glob("*.png")):
        shutil.copyfile(png, DOCS / "img" / png.name)
    page = DOCS / "benchmarks.md"
    page.write_text(update_regions(page.read_text(), {
        "verdict": verdict_markdown(doc),
        "plots": plots_markdown(doc, "img"),
        "appendix": to_markdown(doc),
    }))
    print(f"{page} updated from {run_json}")


if __name__ == "__main__":
    main(*sys.argv[1:3])
