"""The ``xback`` command line: ``info``, ``bench`` (end to end on ``--quick``), errors.

Nothing here asserts a timing: the benchmarks' numbers are checked for structure and sanity
(positive, finite), never against a threshold.
"""

from __future__ import annotations

import json
import math
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from xback.cli import main

try:
    import torch

    HAS_TORCH = True
except ImportError:  # pragma: no cover
    HAS_TORCH = False

BENCHMARKS = (
    "lstsq-grad", "convert", "sort", "svd", "overhead", "route", "compile", "sort-family",
    "programs",
)


def _run(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "xback", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


# -- info and help --------------------------------------------------------------------------
def test_info_reports_versions_and_threads(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info"]) == 0
    out = capsys.readouterr().out
    assert np.__version__ in out
    assert "ml_dtypes" in out
    assert "OPENBLAS_CORETYPE" in out
    assert "load average" in out
    if HAS_TORCH:
        assert torch.__version__ in out
        assert "intra-op" in out


def test_info_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["info", "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    assert d["numpy"] == np.__version__
    assert d["backends"]["numpy"] == "available"
    assert "cpu" in d["devices"]
    assert d["cpu_count"] >= 1
    assert any(b.get("user_api") == "blas" for b in d["blas"])


def test_info_without_torch() -> None:
    """`xback info` must work when torch cannot be imported."""
    code = (
        "import sys; sys.modules['torch'] = None\n"
        "from xback.cli import main\n"
        "rc = main(['info', '--json'])\n"
        "sys.exit(rc)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert d["devices"] == ["cpu"]
    assert d["backends"]["torch"].startswith("not installed")
    assert "torch_threads" not in d


def test_cli_import_is_light() -> None:
    code = "import sys, xback.cli; print('torch' in sys.modules, 'xback.bench' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert r.stdout.split() == ["False", "False"]


def test_python_m_help() -> None:
    r = _run("--help")
    assert r.returncode == 0, r.stderr
    assert "bench" in r.stdout and "info" in r.stdout
    r = _run("bench", "--help")
    assert r.returncode == 0, r.stderr
    for opt in ("--sizes", "--dtype", "--backends", "--repeat", "--threads", "--device",
                "--quick", "--json", "--plot"):
        assert opt in r.stdout
    assert _run("info", "--help").returncode == 0


# -- bench end to end -----------------------------------------------------------------------
@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path, str]:
    tmp = tmp_path_factory.mktemp("bench")
    path = tmp / "out" / "bench.json"
    plots = tmp / "plots"
    r = _run("bench", "all", "--quick", "--details", "--json", str(path), "--plot", str(plots),
             "--report", str(tmp / "report"), timeout=300)
    assert r.returncode == 0, r.stderr
    return json.loads(path.read_text()), plots, r.stdout


def test_bench_quick_json_structure(quick_run: tuple[dict[str, Any], Path, str]) -> None:
    doc, _, _ = quick_run
    assert set(doc) >= {"environment", "config", "benchmarks"}
    env = doc["environment"]
    for key in ("python", "numpy", "cpu_count", "load_average", "blas", "timestamp_utc"):
        assert key in env
    assert env["numpy"] == np.__version__
    if HAS_TORCH:
        assert env["torch"] == torch.__version__
        assert env["torch_threads"] >= 1
        assert env["torch_interop_threads"] >= 1
    assert doc["config"]["quick"] is True
    assert list(doc["benchmarks"]) == list(BENCHMARKS)
    for name, res in doc["benchmarks"].items():
        assert res["name"] == name
        rows = res["results"]
        assert rows, f"{name}: no results"
        for row in rows:
            assert row["median_s"] > 0 and math.isfinite(row["median_s"])
            assert 0 < row["min_s"] <= row["median_s"] <= row["max_s"]
            assert len(row["samples_s"]) == row["repeat"] >= 1
            assert row["number"] >= 1


def test_bench_quick_candidates(quick_run: tuple[dict[str, Any], Path, str]) -> None:
    doc, _, stdout = quick_run
    b = doc["benchmarks"]
    convert = {r["candidate"] for r in b["convert"]["results"]}
    overhead = {(r["backend"], r["function"], r["impl"]) for r in b["overhead"]["results"]}
    assert ("numpy", "asarray", "xback") in overhead
    assert ("numpy", "asarray", "raw") in overhead
    lstsq = {r["candidate"] for r in b["lstsq-grad"]["results"]}
    assert "raw NumPy explicit" in lstsq
    assert any(c.startswith("floor") for c in lstsq)
    for row in b["lstsq-grad"]["results"]:
        assert row["x_floor"] > 0
    if HAS_TORCH:
        assert {"xback.to_numpy(t)", "np.array(t)", "torch.tensor(a)"} <= convert
        assert {"raw torch explicit", "raw torch autograd"} <= lstsq
        assert ("torch", "from_numpy", "xback") in overhead
        assert any(s["name"].startswith("d=") and "NumPy explicit / raw torch" in s["name"]
                   for s in b["lstsq-grad"]["summary"])
    if HAS_TORCH:  # routed and unrouted side by side, against both raw libraries
        route = b["route"]["results"]
        assert {r["op"] for r in route} == {"sort", "argsort", "svd", "svdvals", "lstsq_grad"}
        assert {(r["input"], r["impl"]) for r in route} == {
            (i, m) for i in ("numpy", "torch") for m in ("raw", "routed", "unrouted")
        }
        assert all(r["vs_best"] > 0 for r in route if r["impl"] != "raw")
        assert any("xback / best raw" in s["name"] or "over own raw" in s["name"]
                   for s in b["route"]["summary"])
    # the tables are printed with medians (--details), the verdict last
    assert "median" in stdout and "lstsq-grad" in stdout
    assert stdout.index("verdict") > stdout.index("median")
    assert "zero-copy to NumPy" in stdout


def test_bench_quick_plots(quick_run: tuple[dict[str, Any], Path, str]) -> None:
    pytest.importorskip("matplotlib")
    _, plots, _ = quick_run
    for name in BENCHMARKS:
        png = plots / f"{name}.png"
        assert png.exists(), name
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_bench_quick_report(quick_run: tuple[dict[str, Any], Path, str]) -> None:
    """--report: the page and the run's JSON beside it (the page's content and its rendering
    in a browser: tests/test_bench_report.py)."""
    doc, plots, _ = quick_run
    report = plots.parent / "report"
    page = (report / "index.html").read_text(encoding="utf-8")
    assert json.loads((report / "results.json").read_text()) == doc
    assert 'id="verdict"' in page and page.count('class="plot"') == len(BENCHMARKS)


def test_bench_without_details_prints_the_verdict_only(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    rc = main(["bench", "convert", "--quick", "--backends", "numpy,torch" if HAS_TORCH
               else "numpy", "--sizes", "1e6"])
    assert rc == 0
    out = capsys.readouterr().out
    assert "verdict" in out and "median" not in out
    assert len(out.strip().splitlines()) <= 27  # machine line, verdict heading, <= 25 lines


def test_bench_threads_recorded(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "o.json"
    rc = main(["bench", "overhead", "--quick", "--threads", "1", "--backends", "numpy",
               "--repeat", "2", "--sizes", "8", "--json", str(path)])
    assert rc == 0
    doc = json.loads(path.read_text())
    assert doc["environment"]["threads_requested"] == 1
    blas = [b for b in doc["environment"]["blas"] if b.get("user_api") == "blas"]
    assert blas and all(b["num_threads"] == 1 for b in blas)
    rows = doc["benchmarks"]["overhead"]["results"]
    assert {r["backend"] for r in rows} == {"numpy"}
    assert all(r["repeat"] == 2 and r["size"] == 8 for r in rows)
    assert "xback's cost per sort call, 8 elements" in capsys.readouterr().out


# -- bad arguments: one line, exit status 2, no traceback -----------------------------------
BAD = [
    (["bench", "nosuch"], "unknown benchmark"),
    (["bench", "--backends", "nosuch"], "unknown backend"),
    (["bench", "--device", "cuda"], "cuda"),
    (["bench", "--device", "nodevice"], "device"),
    (["bench", "--sizes", "12abc"], "--sizes"),
    (["bench", "--sizes", "0"], "--sizes"),
    (["bench", "--sizes", "1.5"], "--sizes"),
    (["bench", "--dtype", "int7"], "--dtype"),
    (["bench", "--repeat", "0"], "--repeat"),
    (["bench", "--threads", "x"], "--threads"),
    (["bench", "--no-such-option"], "--no-such-option"),
    (["nosuchcommand"], "nosuchcommand"),
]


@pytest.mark.parametrize(("args", "needle"), BAD, ids=[" ".join(a) for a, _ in BAD])
def test_bad_arguments(
    args: list[str], needle: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if "cuda" in args and HAS_TORCH and torch.cuda.is_available():  # pragma: no cover
        pytest.skip("CUDA is present here")
    assert main(args) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("xback: error:")
    assert needle in err
    assert "Traceback" not in captured.err + captured.out


def test_bad_argument_subprocess_exit_code() -> None:
    r = _run("bench", "nosuch")
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [r.stderr.strip()]
    assert "Traceback" not in r.stderr
    r = _run("bench", "--device", "cuda", "--quick")
    if not (HAS_TORCH and torch.cuda.is_available()):
        assert r.returncode == 2
        assert "Traceback" not in r.stderr
        assert len(r.stderr.strip().splitlines()) == 1


def test_sizes_parsing() -> None:
    from xback.cli import UsageFailure, _parse_sizes

    assert _parse_sizes("100,1e3, 2_000,1E6") == [100, 1000, 2000, 1_000_000]
    assert _parse_sizes(None) is None
    for bad in ("", ",", "1e-3", "-5", "inf", "nan", "1e3x"):
        with pytest.raises(UsageFailure):
            _parse_sizes(bad)


def test_unwritable_json_fails_before_running(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("")
    assert main(["bench", "--quick", "--json", str(blocker / "out.json")]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("xback: error: --json") and len(err.splitlines()) == 1
