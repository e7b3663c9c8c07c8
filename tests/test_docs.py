"""The documentation cannot rot: every docstring example of the ``xback`` package runs as a
doctest, and every ``python`` code block of ``docs/*.md`` and ``README.md`` runs here.

Conventions for code blocks in Markdown (documented in ``docs/guide.md``):

* the blocks of one page run in order in one namespace (a block may use names defined by an
  earlier block of the same page);
* a block whose info string carries ``no-run`` (```` ```{.python .no-run} ```` in the docs,
  ```` ```python no-run ```` on GitHub-rendered pages) is not run;
* a block marked ``requires-cuda`` runs only when CUDA is available;
* a page that imports torch is skipped when torch is not installed;
* a block that only displays function signatures (``xback.sort(x, /, *, axis=-1)``, one per
  line) is shown, not run; any other block that does not compile fails.

The site itself is built with ``mkdocs build --strict`` when mkdocs is installed (the
``docs`` extra).
"""

from __future__ import annotations

import contextlib
import doctest
import importlib
import io
import os
import pkgutil
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import xback

ROOT = Path(__file__).resolve().parents[1]
DOCS = ROOT / "docs"

try:
    import torch

    HAS_TORCH = True
    HAS_CUDA = bool(torch.cuda.is_available())
except ImportError:  # pragma: no cover - the test requirements install torch
    HAS_TORCH = HAS_CUDA = False


# -- docstrings ---------------------------------------------------------------------------
def _xback_modules() -> list[str]:
    names = ["xback"]
    for info in pkgutil.walk_packages(xback.__path__, "xback."):
        if info.name.endswith("__main__"):
            continue  # running it would start the command line
        names.append(info.name)
    return sorted(names)


MODULES = _xback_modules()


@pytest.mark.parametrize("module_name", MODULES)
def test_docstring_examples(module_name: str) -> None:
    """Every ``>>>`` example in the module's docstrings gives the output it shows."""
    if module_name.startswith("xback.backends.torch") or module_name.endswith("_torch_sort"):
        pytest.importorskip("torch")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:  # an optional dependency (torch, matplotlib...) is missing
        pytest.skip(f"{module_name} needs a missing package: {exc}")
    finder = doctest.DocTestFinder(exclude_empty=True)
    runner = doctest.DocTestRunner(
        optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False
    )
    tests = [t for t in finder.find(module, module_name) if t.examples]
    # Only doctests written in this module (re-exported objects are tested where defined).
    tests = [t for t in tests if t.filename is None or _defined_in(t, module)]
    out = io.StringIO()
    with np.printoptions(legacy=False):
        for t in tests:
            runner.run(t, out=out.write)
    result = runner.summarize(verbose=False)
    assert result.failed == 0, out.getvalue()


def _defined_in(t: doctest.DocTest, module: Any) -> bool:
    return t.filename is None or Path(t.filename) == Path(module.__file__ or "")


def test_public_functions_have_runnable_examples() -> None:
    """Every public function and class documents Parameters/Returns or an Examples section."""
    missing = []
    for name in xback.__all__:
        obj = getattr(xback, name)
        if not callable(obj):
            continue
        doc = obj.__doc__ or ""
        if ">>>" not in doc:
            missing.append(name)
    assert not missing, f"public objects without a runnable example: {missing}"


# -- Markdown code blocks -----------------------------------------------------------------
_FENCE = re.compile(r"^(?P<indent>[ ]*)```(?P<info>[^\n`]*)\n(?P<body>.*?)^(?P=indent)```[ ]*$",
                    re.M | re.S)


def _flags(info: str) -> tuple[str | None, set[str]]:
    """Language and flags of a fence info string: ``python no-run`` or ``{.python .no-run}``."""
    info = info.strip()
    if info.startswith("{") and info.endswith("}"):
        words = [w.lstrip(".") for w in info[1:-1].split()]
    else:
        words = info.split()
    if not words:
        return None, set()
    return words[0].lower(), set(words[1:])


def python_blocks(path: Path) -> list[tuple[int, str, set[str]]]:
    """(line number, code, flags) of every ``python`` block of a Markdown file."""
    text = path.read_text(encoding="utf-8")
    blocks = []
    for m in _FENCE.finditer(text):
        lang, flags = _flags(m.group("info"))
        if lang not in ("python", "py"):
            continue
        indent = len(m.group("indent"))
        body = "\n".join(line[indent:] for line in m.group("body").splitlines())
        line = text.count("\n", 0, m.start()) + 1
        blocks.append((line, body, flags))
    return blocks


MARKDOWN = [*sorted(DOCS.glob("*.md")), ROOT / "README.md"]


@pytest.mark.parametrize("path", MARKDOWN, ids=[p.name for p in MARKDOWN])
def test_markdown_examples(path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every ``python`` block of the page runs without error, in order."""
    if not path.exists():
        pytest.skip(f"{path.name} does not exist yet")
    blocks = python_blocks(path)
    if not blocks:
        pytest.skip(f"{path.name} has no python blocks")
    if not HAS_TORCH and any(re.search(r"^\s*import torch\b", b, re.M) for _, b, _ in blocks):
        pytest.skip(f"{path.name} needs torch")
    monkeypatch.chdir(tmp_path)  # examples that write files write them here
    namespace: dict[str, Any] = {"__name__": f"docs_{path.stem.replace('-', '_')}"}
    ran = 0
    for line, code, flags in blocks:
        if "no-run" in flags or "norun" in flags:
            continue
        if "requires-cuda" in flags and not HAS_CUDA:
            continue
        if "requires-torch" in flags and not HAS_TORCH:
            continue
        if _is_signature(code):
            continue
        try:
            compiled = compile(code, f"{path.name}:{line}", "exec")
        except SyntaxError as exc:
            raise AssertionError(
                f"the python block at {path.name}:{line} is not valid Python: {exc}\n(a block "
                f"that is not meant to run is written ```{{.python .no-run}} ; see "
                f"tests/test_docs.py)"
            ) from exc
        with contextlib.redirect_stdout(io.StringIO()):
            try:
                exec(compiled, namespace)
            except Exception as exc:
                raise AssertionError(
                    f"the python block at {path.name}:{line} failed: "
                    f"{type(exc).__name__}: {exc}\n{code}\n(a block that is not meant to run "
                    f"is written ```{{.python .no-run}} ; see tests/test_docs.py)"
                ) from exc
        ran += 1
    assert ran or all("no-run" in f or "requires-cuda" in f for _, _, f in blocks)


def _is_signature(code: str) -> bool:
    """Whether a block only displays function signatures (``xback.sort(x, /, *, axis=-1)``),
    one per line: shown, not run. Anything else that does not compile is an error."""
    lines = [ln.strip() for ln in code.strip().splitlines() if ln.strip()]
    if not lines:
        return False
    try:
        compile(code, "<block>", "exec")
        return False  # valid Python runs
    except SyntaxError:
        pass
    for ln in lines:
        head = re.sub(r"^(?:[A-Za-z_]\w*\.)*(?=[A-Za-z_]\w*\()", "", ln)
        head = re.sub(r"\)\s*->\s*(.+)$", ") -> \\1", head)
        try:
            compile(f"def {head}: ...", "<signature>", "exec")
        except SyntaxError:
            return False
    return True


def test_fence_parser() -> None:
    """The block conventions above are what the parser does."""
    assert _flags("python") == ("python", set())
    assert _flags("python no-run") == ("python", {"no-run"})
    assert _flags("{.python .no-run}") == ("python", {"no-run"})
    assert _flags("{.python .requires-cuda}") == ("python", {"requires-cuda"})
    assert _flags("bash") == ("bash", set())
    assert _is_signature("xback.sort(x, /, *, axis=-1, descending=False)")
    assert _is_signature("svd(x, /, *, full_matrices=True) -> SVDResult")
    assert not _is_signature("x = xback.sort([2, 1])")
    assert not _is_signature("xback.sort(x, /, *, axis=-1) +")


# -- the site -----------------------------------------------------------------------------
def test_mkdocs_build_strict(tmp_path: Path) -> None:
    """``mkdocs build --strict`` passes: every page in the nav exists, every link resolves and
    every ``::: xback`` API entry renders."""
    pytest.importorskip("mkdocs")
    pytest.importorskip("mkdocstrings")
    pytest.importorskip("material")
    missing = [p for p in _nav_pages() if not (DOCS / p).exists()]
    if missing:
        pytest.skip(f"pages in the nav are not written yet: {missing}")
    exe = shutil.which("mkdocs", path=str(Path(sys.executable).parent)) or shutil.which("mkdocs")
    cmd = [exe] if exe else [sys.executable, "-m", "mkdocs"]
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    proc = subprocess.run(
        [*cmd, "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert (tmp_path / "site" / "api" / "index.html").exists()


def _nav_pages() -> list[str]:
    text = (ROOT / "mkdocs.yml").read_text(encoding="utf-8")
    nav = text.split("\nnav:", 1)[1].split("\n\n", 1)[0]
    return re.findall(r":\s*([\w./-]+\.md)\s*$", nav, re.M)


def test_nav_lists_every_page() -> None:
    """Every page in docs/ is in the nav, and every nav entry names a page that exists or is
    being written by another issue."""
    pages = set(_nav_pages())
    on_disk = {p.name for p in DOCS.glob("*.md")}
    assert on_disk <= pages, f"pages missing from the nav: {sorted(on_disk - pages)}"


def test_semantics_tables_name_existing_tests() -> None:
    """Every test named in a semantics table (``test_...`` in backticks) exists in tests/."""
    defined = set()
    for f in (ROOT / "tests").glob("test_*.py"):
        defined |= set(re.findall(r"^(?:async )?def (test_\w+)", f.read_text("utf-8"), re.M))
    named: dict[str, list[str]] = {}
    for page in sorted(DOCS.glob("semantics*.md")):
        text = page.read_text("utf-8")
        for name in re.findall(r"`(?:[\w/.]+::)?(test_\w+)(?:\[[^\]`]*\])?`", text):
            named.setdefault(name, []).append(page.name)
    assert named, "the semantics pages name no tests"
    missing = {n: p for n, p in named.items() if n not in defined}
    assert not missing, f"tests named in the docs but not defined: {missing}"


def test_benchmark_page_verdict_is_its_json() -> None:
    """The verdict, plots and tables of docs/benchmarks.md are generated from
    docs/bench-results.json (benchmarks/render_docs.py), never typed by hand."""
    import json

    from xback.bench._report import to_markdown
    from xback.bench.markdown import plots_markdown, region, verdict_markdown

    docs = Path(__file__).resolve().parent.parent / "docs"
    page = (docs / "benchmarks.md").read_text()
    doc = json.loads((docs / "bench-results.json").read_text())
    assert region(page, "verdict") == verdict_markdown(doc)
    assert region(page, "plots") == plots_markdown(doc, "img")
    assert region(page, "appendix") == to_markdown(doc).strip("\n")
    for name in doc["benchmarks"]:
        if doc["benchmarks"][name]["results"]:
            assert (docs / "img" / f"{name}.png").is_file()
