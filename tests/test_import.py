"""``import xback`` stays light, and the command line says which extra it needs.

Each check runs in a fresh interpreter (``subprocess``): what a module import loads can only
be seen from a clean ``sys.modules``. No timing is asserted here (the machine may be busy);
``benchmarks/bench_import.py`` measures the import cost.
"""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys

import pytest

import xback

#: libraries ``import xback`` and its calls on NumPy input must never load
FORBIDDEN = (
    "torch",
    "ml_dtypes",
    "threadpoolctl",
    "typer",
    "rich",
    "click",
    "dask",
    "distributed",
    "jax",
    "cupy",
    "array_api_strict",
    "numba",
    "llvmlite",
    "matplotlib",
    "autoray",
)

#: xback modules that are not its core: loaded only by the command line or for other inputs
NOT_CORE = (
    "xback.cli",
    "xback.bench",
    "xback.backends.torch",
    "xback.backends._torch_sort",
    "xback.backends.dask",
    "xback.backends._dask_sort",
    "xback.backends._dask_chunks",
    "xback.backends.array_api",
)

_PROBE = """
import json, sys
import numpy as np
before = set(sys.modules)
import xback
imported = sorted(set(sys.modules) - before)
x = np.array([3.0, 1.0, 2.0])
A = np.arange(12.0).reshape(4, 3) + np.eye(4, 3)
xback.sort(x); xback.sort(x, descending=True); xback.argsort(x)
xback.svd(A); xback.svdvals(A)
xback.lstsq_grad(A, np.ones(3), np.ones(4))
xback.to_numpy(xback.from_numpy(x)); xback.asarray([1.0, 2.0]); xback.backend_of(x)
with xback.use("numpy"):
    xback.sort(x)
used = sorted(set(sys.modules) - before)
print(json.dumps({"imported": imported, "used": used}))
"""


def _run(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False
    )


def _runs_clean(code: str) -> None:
    """``code`` (whose asserts are the test, ending in ``print('ok')``) passes in a fresh
    process."""
    r = _run(code + "print('ok')\n")
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["ok"]


@pytest.fixture(scope="module")
def loaded() -> dict[str, list[str]]:
    r = _run(_PROBE)
    assert r.returncode == 0, r.stderr
    doc: dict[str, list[str]] = json.loads(r.stdout)
    return doc


def _top(name: str) -> str:
    return name.split(".")[0]


def test_import_xback_loads_nothing_heavy(loaded: dict[str, list[str]]) -> None:
    """``import xback`` (after NumPy) loads none of the optional libraries, and its core
    only on first use: nothing outside the ``xback`` package itself."""
    assert [m for m in loaded["imported"] if _top(m) != "xback"] == []
    assert "xback._linalg" not in loaded["imported"]


def test_calls_on_numpy_load_only_numpy_and_the_core(loaded: dict[str, list[str]]) -> None:
    """Every public function run on NumPy input loads NumPy, the standard library and
    xback's own core modules, nothing else: not torch, ml_dtypes, threadpoolctl, the CLI
    libraries, dask, jax, numba, matplotlib, nor array-api-compat's per-library modules."""
    used = loaded["used"]
    bad = [m for m in used if _top(m) in FORBIDDEN]
    assert bad == []
    assert [m for m in used if m.startswith("array_api_compat.")] == []
    assert [m for m in used if m.startswith(NOT_CORE)] == []
    foreign = [
        m
        for m in used
        if _top(m) not in {"xback", "numpy", "array_api_compat"}
        and _top(m) not in sys.stdlib_module_names
    ]
    assert foreign == []


def test_lazy_names_resolve_and_unknown_names_raise() -> None:
    """Every name of ``xback.__all__`` resolves (and appears in ``dir``); others raise
    ``AttributeError`` naming them."""
    for name in xback.__all__:
        assert getattr(xback, name) is not None
        assert name in dir(xback)
    assert xback.sort.__module__ == "xback._sorting"
    with pytest.raises(AttributeError, match="no attribute 'sortt'"):
        xback.sortt  # noqa: B018
    r = _run("from xback import *; print(sorted(k for k in dir() if not k.startswith('_')))")
    assert r.returncode == 0, r.stderr
    assert sorted(n for n in xback.__all__ if not n.startswith("_")) == json.loads(
        r.stdout.replace("'", '"')
    )


def test_bfloat16_is_recognised_once_ml_dtypes_is_imported() -> None:
    """The dtype tables know bfloat16 without importing ``ml_dtypes`` themselves: an array
    made after its owner imported it sorts, and a dtype named by string imports it."""
    code = (
        "import sys, numpy as np, xback\n"
        "assert xback.sort(np.array([2.0, 1.0])).tolist() == [1.0, 2.0]\n"
        "assert 'ml_dtypes' not in sys.modules\n"
        "a = xback.asarray([2.0, 1.0], dtype='bfloat16')\n"
        "assert 'ml_dtypes' in sys.modules\n"
        "print(xback.sort(a).dtype, xback.svdvals(a.reshape(2, 1)).dtype)\n"
    )
    r = _run(code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["bfloat16", "float32"]


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs torch")
def test_torch_backend_imports_ml_dtypes_only_for_its_dtypes() -> None:
    """The torch backend learns bfloat16 and float8 on first sight: calls on float tensors
    never import ``ml_dtypes``; a bfloat16 tensor does, and converts both ways."""
    code = (
        "import sys, torch, xback\n"
        "assert xback.sort(torch.ones(3)).tolist() == [1.0, 1.0, 1.0]\n"
        "xback.svd(torch.eye(2), canonical_signs=True); xback.to_numpy(torch.ones(2))\n"
        "assert 'ml_dtypes' not in sys.modules, 'imported by float calls'\n"
        "t = torch.tensor([2.0, 1.0], dtype=torch.bfloat16)\n"
        "a = xback.to_numpy(t)\n"
        "assert 'ml_dtypes' in sys.modules\n"
        "print(a.dtype, xback.sort(t).dtype, xback.asarray(a, backend='torch').dtype)\n"
    )
    r = _run(code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.split() == ["bfloat16", "torch.bfloat16", "torch.bfloat16"]


_BLOCK = """
import runpy, sys

class Block:
    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] == {lib!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None

sys.meta_path.insert(0, Block())
sys.argv = ["xback", *{args!r}]
runpy.run_module("xback", run_name="__main__")
"""


@pytest.mark.parametrize("lib", ["typer", "rich"])
@pytest.mark.parametrize("args", [["--help"], ["info"]])
def test_cli_without_its_extra_says_which(lib: str, args: list[str]) -> None:
    """Without typer or rich, ``xback`` prints one line naming the extra and exits with 1."""
    r = _run(_BLOCK.format(lib=lib, args=args))
    assert r.returncode == 1
    assert r.stdout == ""
    assert r.stderr == "xback's command line needs its extra: pip install \"xback[cli]\"\n"


def test_cli_help_imports_no_numpy() -> None:
    """``xback --help`` loads typer and nothing of the library (it answers at once)."""
    code = (
        "import sys\n"
        "from xback.__main__ import main\n"
        "rc = main(['--help'])\n"
        "print('RESULT', rc, sorted(m for m in ('numpy', 'rich.markdown', 'torch',"
        " 'xback._linalg', 'xback.bench') if m in sys.modules))\n"
    )
    r = _run(code)
    assert r.returncode == 0, r.stderr
    assert r.stdout.splitlines()[-1] == "RESULT 0 []"


def test_routing_without_threadpoolctl() -> None:
    """threadpoolctl is optional (the ``cli`` and ``fast`` extras): without it routing's
    thread check reports the BLAS limit as unknown and calls still work."""
    code = (
        "import sys, numpy as np\n"
        "sys.modules['threadpoolctl'] = None\n"
        "import xback\n"
        "from xback.backends.numpy import blas_threads\n"
        "assert blas_threads() is None\n"
        "x = np.arange(5000.0)[::-1].copy()\n"
        "assert (xback.sort(x) == np.arange(5000.0)).all()\n"
    )
    _runs_clean(code)


def _xback_imports() -> list[tuple[str, int, str, str, bool]]:
    """Every ``from xback... import name`` (absolute or relative) in the package:
    (file, line, module, name, whether the name is a module of the package)."""
    import ast
    from pathlib import Path

    root = Path(xback.__file__).parent
    found = []
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent)
        package = list(rel.parent.parts)
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if not isinstance(node, ast.ImportFrom):
                continue
            if node.level:
                parts = package[: len(package) - node.level + 1] + (
                    node.module.split(".") if node.module else []
                )
            elif node.module and node.module.split(".")[0] == "xback":
                parts = node.module.split(".")
            else:
                continue
            base = root.parent.joinpath(*parts)
            for alias in node.names:
                is_module = (base / f"{alias.name}.py").exists() or (base / alias.name).is_dir()
                found.append((str(rel), node.lineno, ".".join(parts), alias.name, is_module))
    return found


def test_no_module_imports_another_modules_private_names() -> None:
    imports = _xback_imports()
    assert any(m == "xback._dispatch" for _, _, m, _, _ in imports)  # the scan sees imports
    private = [
        f"{f}:{line}: from {m} import {n}"
        for f, line, m, n, is_module in imports
        if n.startswith("_") and not is_module
    ]
    assert private == [], "private names imported across modules (use the module's public API)"


def test_dispatch_imports_no_front_module() -> None:
    # the dispatch core sits below the front modules: importing from them would be a cycle
    front = {"xback._convert", "xback._linalg", "xback._sorting", "xback._sortfamily",
             "xback._namespace", "xback._routing"}
    bad = [(m, n) for f, _, m, n, _ in _xback_imports()
           if f == "xback/_dispatch.py" and (m in front or f"{m}.{n}" in front)]
    assert bad == []


def test_dtype_sets_keep_lazy_names_through_set_algebra() -> None:
    """A difference or intersection of dtype sets keeps (or drops) bfloat16 by name, as a
    union does, without importing ml_dtypes."""
    code = (
        "import sys, numpy as np\n"
        "from xback._dtypes import FLOAT, SIGNED, DtypeSet\n"
        "f16 = np.dtype(np.float16)\n"
        "no_half = FLOAT - {f16}\n"
        "assert type(no_half) is DtypeSet and f16 not in no_half\n"
        "assert no_half.lazy == {'bfloat16'} and (FLOAT | SIGNED).lazy == {'bfloat16'}\n"
        "assert (FLOAT - DtypeSet(lazy=['bfloat16'])).lazy == frozenset()\n"
        "assert (FLOAT & SIGNED).lazy == frozenset() and not (FLOAT & SIGNED)\n"
        "assert (FLOAT & DtypeSet([np.float32], lazy=['bfloat16'])).lazy == {'bfloat16'}\n"
        "assert 'ml_dtypes' not in sys.modules\n"
        "import ml_dtypes\n"
        "bf = np.dtype(ml_dtypes.bfloat16)\n"
        "assert bf in no_half and bf not in FLOAT - {bf} and bf in FLOAT & {bf}\n"
    )
    _runs_clean(code)
