"""The readable side of ``xback bench``: the verdict, the plots and the HTML report, computed
from a small JSON document with known numbers (never from a timing run)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from xback.bench._report import figures, ratio_series, summary_cells
from xback.bench.html import render_html, write_report
from xback.bench.verdict import MAX_LINES, compare, verdict

ENV: dict[str, Any] = {
    "cpu": "Test CPU 9000", "cpu_count": 2, "affinity": 2, "python": "3.11.7",
    "numpy": "2.4.6", "torch": "2.13.0+cpu", "torch_threads": 2, "torch_interop_threads": 2,
    "load_average": [0.1, 0.1, 0.1], "load_average_after": [0.2, 0.1, 0.1], "blas": [],
    "platform": "Linux", "timestamp_utc": "2026-12-06T00:00:00+00:00", "xback": "0.1.0",
}


def _row(**kw: Any) -> dict[str, Any]:
    return {"device": "cpu", "samples_s": [kw["median_s"]], "min_s": kw["median_s"],
            "max_s": kw["median_s"], "spread": 0.0, "repeat": 1, "number": 1,
            "unstable": False, **kw}


def _doc() -> dict[str, Any]:
    """A run with known numbers: every verdict line below is derived from these."""
    over = []
    for backend, fn, us in (("numpy", "argsort", 0.2), ("torch", "argsort", 0.9),
                            ("numpy", "svd", 1.0), ("torch", "svd", 1.2)):
        over.append(_row(function=fn, backend=backend, impl="raw", size=16, median_s=1e-6,
                         candidate="raw", dtype="float64"))
        over.append(_row(function=fn, backend=backend, impl="xback", size=16,
                         median_s=1e-6 + us * 1e-6, overhead_us=us, candidate=f"xback.{fn}",
                         dtype="float64"))
    lstsq = [
        _row(d=128, dtype="float64", shape=[1280, 128], backend="numpy", impl="raw",
             method="explicit", candidate="raw NumPy explicit", median_s=2e-4),
        _row(d=128, dtype="float64", shape=[1280, 128], backend="torch", impl="raw",
             method="autograd", candidate="raw torch autograd", median_s=6e-4),
        _row(d=128, dtype="float64", shape=[1280, 128], backend="numpy", impl="xback",
             method="auto", candidate="xback numpy auto", median_s=1e-4),
        _row(d=32, dtype="float64", shape=[320, 32], backend="numpy", impl="raw",
             method="explicit", candidate="raw NumPy explicit", median_s=2e-5),
        _row(d=32, dtype="float64", shape=[320, 32], backend="numpy", impl="xback",
             method="auto", candidate="xback numpy auto", median_s=3e-5),
    ]
    convert = [
        _row(direction="torch -> numpy", size=1_000_000, dtype="float64", impl="xback",
             candidate="xback.to_numpy(t)", median_s=1e-6, speedup_vs_copy=2000.0),
        _row(direction="torch -> numpy", size=1_000_000, dtype="float64", impl="copy",
             candidate="np.array(t)", median_s=2e-3),
        _row(direction="torch -> numpy", size=100, dtype="float64", impl="xback",
             candidate="xback.to_numpy(t)", median_s=1e-6, speedup_vs_copy=3.0),
    ]
    route = [
        _row(op="sort", size=100_000, dtype="int64", input="numpy", impl="raw",
             candidate="raw numpy", median_s=1e-3),
        _row(op="sort", size=100_000, dtype="int64", input="numpy", impl="routed",
             candidate="xback(numpy)", median_s=1.1e-3, vs_best=1.1, over_own_us=100.0,
             routed_to="torch", target_met=False),
        _row(op="sort", size=1000, dtype="int64", input="numpy", impl="routed",
             candidate="xback(numpy)", median_s=2.02e-5, vs_best=1.01, over_own_us=0.2,
             target_met=True),
    ]
    bench = {
        "overhead": {"title": "overhead", "x_key": "function", "x_label": "function",
                     "columns": [], "results": over, "summary": [], "notes": []},
        "lstsq-grad": {"title": "lstsq", "x_key": "d", "x_label": "d", "columns": [],
                       "results": lstsq, "summary": [], "notes": []},
        "convert": {"title": "convert", "x_key": "size", "x_label": "elements",
                    "columns": [], "results": convert, "summary": [], "notes": []},
        "route": {"title": "route", "x_key": "size", "x_label": "elements", "columns": [],
                  "results": route, "summary": [], "notes": []},
    }
    return {"schema": "xback-bench/1", "environment": ENV, "config": {}, "benchmarks": bench}


def _lines() -> dict[str, Any]:
    return {line.question: line for line in verdict(_doc())}


def test_verdict_lines_from_known_numbers() -> None:
    lines = _lines()
    argsort = lines["xback's cost per argsort call, 16 elements"]
    assert argsort.value == pytest.approx(0.9)  # the worse backend decides
    assert argsort.ok is False and argsort.target == "≤ +0.5 µs"
    assert "+0.20 µs on NumPy" in argsort.answer and "+0.90 µs on torch" in argsort.answer
    svd = lines["xback's cost per svd call, an 8x4 matrix"]
    assert svd.value == pytest.approx(1.2) and svd.ok is True
    seed = lines["lstsq gradient, A (1280, 128) float64, torch autograd"]
    auto = lines["lstsq gradient, A (1280, 128) float64, xback auto"]
    assert seed.answer.startswith("3.00x slower than NumPy")
    assert "8 cores" in seed.answer and "this machine has 2" in seed.answer
    assert seed.ok is None  # a finding, not a target
    assert auto.value == pytest.approx(0.5) and auto.ok is True
    assert "2.00x faster than the faster raw library" in auto.answer
    zero = lines["zero-copy to NumPy at 1000 x 1000 float64"]
    assert zero.answer == "1.00 µs, 2,000x faster than a copy"
    big = lines["routed calls of 100 µs and more"]
    assert big.ok is False and "0 of 1" in big.answer and big.value == pytest.approx(1.1)
    small = lines["routing on, calls under 100 µs"]
    assert small.ok is True and "1 of 1" in small.answer


def test_verdict_marks_and_text() -> None:
    for line in verdict(_doc()):
        text = line.text()
        assert text.startswith(line.question)
        if line.ok is None:
            assert "✓" not in text and "✗" not in text and "target" not in text
        else:
            assert text.endswith("✓" if line.ok else "✗")
            assert f"(target {line.target})" in text


def test_verdict_fits_one_screen_and_skips_missing_benchmarks() -> None:
    doc = _doc()
    assert 0 < len(verdict(doc)) <= MAX_LINES
    del doc["benchmarks"]["route"]
    assert not any(q.startswith(("routing", "routed")) for q in (x.question for x in verdict(doc)))
    assert verdict({"environment": ENV, "benchmarks": {}}) == []


def test_compare_in_words() -> None:
    assert compare(1.0, 2.0, "torch") == "2.00x faster than torch"
    assert compare(3.0, 1.0) == "3.00x slower"
    assert compare(1.0, 1.001, "NumPy") == "as fast as NumPy"
    assert compare(1.0, 2500.0) == "2,500x faster"


def test_summary_cells_one_unit_per_column() -> None:
    q, us, gbs, words = summary_cells("d=32 float64: xback numpy auto / best raw numpy", 1.25)
    assert (q, us, gbs) == ("d=32 float64", "", "")
    assert words == "best raw numpy 1.25x faster than xback numpy auto"
    assert summary_cells("numpy sort: xback overhead (us)", -0.1)[1:] == ("-0.10", "", "")
    assert summary_cells("d=32: read bandwidth (GB/s, A.nbytes / floor)", 16.9)[2] == "16.9"


def test_ratio_series_against_the_faster_raw_library() -> None:
    panels = ratio_series("lstsq-grad", _doc()["benchmarks"]["lstsq-grad"])
    lines = panels[("float64",)]
    assert lines["xback numpy auto"] == [(32.0, pytest.approx(1.5)), (128.0, pytest.approx(0.5))]
    assert lines["raw torch autograd / raw NumPy explicit"] == [(128.0, pytest.approx(3.0))]
    conv = ratio_series("convert", _doc()["benchmarks"]["convert"])
    assert conv[("torch -> numpy", "float64")]["xback.to_numpy(t)"] == [
        (100.0, 3.0), (1e6, 2000.0)]


def test_plots_have_ratio_and_time_panels_with_reference_lines() -> None:
    pytest.importorskip("matplotlib")
    import matplotlib.pyplot as plt

    figs = figures(_doc())
    try:
        assert set(figs) == {"overhead", "lstsq-grad", "convert", "route"}
        ratio_ax, time_ax = [a for a in figs["lstsq-grad"].axes if a.get_visible()]
        assert ratio_ax.get_title() == "ratios: float64"
        assert time_ax.get_title() == "times: float64"
        assert "lower is better" in ratio_ax.get_ylabel()
        assert time_ax.get_ylabel() == "median time per call (s)"
        labels = [ln.get_label() for ln in ratio_ax.get_lines()]
        assert "xback numpy auto" in labels and "target 1.05x" in labels
        assert "1.0: as fast as the faster raw call" in labels
        assert any(lab.startswith("seed: torch autograd 8x") for lab in labels)
        seed = next(ln for ln in ratio_ax.get_lines() if ln.get_label().startswith("seed"))
        assert list(seed.get_ydata()) == [0.125, 0.125]
        conv = next(a for a in figs["convert"].axes if a.get_visible())
        assert any(ln.get_label().startswith("seed: ~1000x") for ln in conv.get_lines())
        over = figs["overhead"].axes[0]
        assert {ln.get_label() for ln in over.get_lines()} >= {
            "target for sorts: +0.5 µs", "target for svd: +1.5 µs"}
        for fig in figs.values():  # titles are not cut: the suptitle sits above the axes
            top = max(a.get_position().y1 for a in fig.axes if a.get_visible())
            assert top < 1.0
    finally:
        for fig in figs.values():
            plt.close(fig)


def test_html_report_content(tmp_path: Path) -> None:
    page = write_report(_doc(), tmp_path, plots=False)
    text = page.read_text(encoding="utf-8")
    assert (tmp_path / "results.json").exists()
    assert "Test CPU 9000" in text and "xback bench report" in text
    for line in verdict(_doc()):
        assert line.question.replace("'", "&#x27;") in text
    assert text.count('class="miss"') == 2 and text.count('class="ok"') == 3
    assert "<img" not in text


def _chromium() -> str | None:
    for name in ("chromium", "chromium-browser", "google-chrome"):
        found = shutil.which(name)
        if found:
            return found
    return None


@pytest.mark.skipif(_chromium() is None, reason="headless Chromium is not installed")
def test_html_report_in_a_real_browser(tmp_path: Path) -> None:
    """Headless Chromium loads the self-contained page: its DOM holds the verdict and one
    decoded image per benchmark, and its screenshot is a real PNG."""
    pytest.importorskip("matplotlib")
    page = write_report(_doc(), tmp_path / "report")
    browser = _chromium()
    assert browser is not None
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update",
             "--disable-sync", f"--user-data-dir={tmp_path / 'profile'}"]
    # every image decoded (naturalWidth > 0) is written into the title, which the dumped DOM
    # then shows
    script = page.read_text(encoding="utf-8").replace(
        "</body>",
        "<script>window.addEventListener('load', () => { const ok = [...document.images]"
        ".filter(i => i.complete && i.naturalWidth > 0).length; "
        "document.title = 'images decoded: ' + ok; });</script></body>")
    probe = tmp_path / "report" / "probe.html"
    probe.write_text(script, encoding="utf-8")
    dom = subprocess.run([browser, *flags, "--virtual-time-budget=5000", "--dump-dom",
                          probe.as_uri()], capture_output=True, text=True, timeout=120)
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "images decoded: 4" in dom.stdout
    assert 'id="verdict"' in dom.stdout and "zero-copy to NumPy" in dom.stdout
    shot = tmp_path / "shot.png"
    r = subprocess.run([browser, *flags, f"--screenshot={shot}", "--window-size=1200,2400",
                        page.as_uri()], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 10_000


def test_html_renders_without_matplotlib_plots() -> None:
    text = render_html({"environment": ENV, "benchmarks": {}}, plots=False)
    assert "No benchmark in this run answers a verdict question" in text


def test_verdict_route_judges_only_calls_that_were_routed() -> None:
    def routed(size: int, vs_best: float, to: str) -> dict[str, Any]:
        return _row(op="argsort", size=size, dtype="int64", input="numpy", impl="routed",
                    candidate="xback(numpy)", median_s=vs_best * 1e-3, vs_best=vs_best,
                    over_own_us=0.1, routed_to=to)

    rows = [routed(10**5, 6.6, "own"), routed(10**6, 1.03, "torch"), routed(10**7, 1.2, "own")]
    doc = {"environment": ENV, "benchmarks": {"route": {"results": rows}}}
    [line] = verdict(doc)  # the unrouted 6.6x and 1.2x are NumPy's own speed, not routing's
    assert line.question == "routed calls of 100 µs and more"
    assert line.ok is True and "1 of 1" in line.answer and line.value == pytest.approx(1.03)
    rows[1]["vs_best"] = 1.08
    [line] = verdict(doc)
    assert line.ok is False and "0 of 1" in line.answer and "argsort 1,000,000" in line.answer
    doc["benchmarks"]["route"]["results"] = [rows[0], rows[2]]
    [line] = verdict(doc)
    assert line.ok is None and "none of 2 was routed" in line.answer


def test_verdict_programs_judges_only_programs_with_routed_calls() -> None:
    def prog(name: str, ratio: float, routed: str) -> dict[str, Any]:
        return _row(program=name, routing="on", ratio=ratio, routed_calls=routed,
                    candidate=f"{name}, routing on", median_s=ratio)

    rows = [prog("a", 0.7, "12 on torch"), prog("b", 1.3, "none"), prog("c", 1.01, "1 on torch")]
    doc = {"environment": ENV, "benchmarks": {"programs": {"results": rows}}}
    [line] = verdict(doc)
    assert line.question == "routing on/off, 2 of 3 whole programs with routed calls"
    assert line.value == pytest.approx(1.01) and line.ok is True  # b's 1.3 is noise
    rows.append(prog("d", 1.2, "3 on numpy"))
    [line] = verdict(doc)
    assert line.ok is False and "worst 1.20x (d)" in line.answer
    doc = {"environment": ENV, "benchmarks": {"programs": {"results": rows[1:2]}}}
    [line] = verdict(doc)
    assert line.ok is None and "no call was routed" in line.answer


def test_verdict_compile_judges_raw_and_reports_the_contract_model() -> None:
    def row(n: int, impl: str, vs_raw: float | None, vs_contract: float | None) -> dict[str, Any]:
        return _row(n=n, impl=impl, mode="compiled", vs_raw=vs_raw, vs_contract=vs_contract,
                    graph_breaks=0, median_s=1e-3, candidate=f"compiled {impl}")

    rows = [row(1024, "xback", 1.01, 0.99), row(4096, "xback", 0.90, 1.04),
            row(1024, "raw-contract", 1.02, None), row(1024, "raw", None, None)]
    doc = {"environment": ENV, "benchmarks": {"compile": {"results": rows}}}
    judged, contract = verdict(doc)
    assert judged.ok is True and judged.value == pytest.approx(1.01) and "n = 1024" in judged.answer
    assert contract.ok is None and contract.value == pytest.approx(1.04)  # no target
    assert "n = 4096" in contract.answer and "contract" in contract.question
    rows[0]["vs_raw"], rows[0]["graph_breaks"] = 1.03, 0
    assert verdict(doc)[0].ok is False
    rows[0]["vs_raw"], rows[1]["graph_breaks"] = 1.0, 2
    assert verdict(doc)[0].ok is False and "2 graph break(s)" in verdict(doc)[0].answer
    for r in rows:
        r.pop("vs_contract")
    assert len(verdict(doc)) == 1  # a run without the contract candidate: one line


def _family_doc() -> dict[str, Any]:
    """sort-family rows as xback.bench.sort_family writes them, with known numbers."""
    n = 10_000_000

    def ours(case: str, backend: str, t: float, **kw: Any) -> dict[str, Any]:
        return _row(case=case, size=n, backend=backend, impl=case, role="xback",
                    candidate=f"xback {backend} {case}", median_s=t, **kw)

    rows = [
        ours("top_k", "numpy", 0.04, speedup_vs_sort=40.0, target_speedup=10.0),
        ours("top_k", "torch", 0.2, speedup_vs_sort=8.0, target_speedup=10.0, vs_raw=0.6,
             raw_ref="torch.topk", raw_backend="torch", target=1.2),
        ours("median", "numpy", 0.09, vs_raw=0.9, raw_ref="np.median", raw_backend="numpy",
             target=1.1),
        ours("quantile", "torch", 0.13, vs_raw=1.3, raw_ref="np.quantile",
             raw_backend="numpy", target=1.1),
        ours("searchsorted", "numpy", 0.105, vs_raw=1.05, raw_ref="torch.searchsorted",
             raw_backend="torch", target=1.1),
        ours("searchsorted", "torch", 0.05, vs_raw=0.5, raw_ref="torch.searchsorted",
             raw_backend="torch", target=1.1),
        ours("unique", "numpy", 0.6, vs_raw=1.2, raw_ref="torch.unique", raw_backend="torch",
             target=1.1),
        _row(case="unique", size=n, backend="torch", impl="torch.unique", role="raw",
             candidate="raw torch.unique", median_s=0.5),
        # a smaller size: the verdict reads the largest only
        ours("unique", "numpy", 9.0, vs_raw=9.0, raw_ref="np.unique", raw_backend="numpy",
             target=1.1) | {"size": 1000},
    ]
    return {"environment": ENV, "benchmarks": {"sort-family": {"results": rows}}}


def test_verdict_sort_family_lines_from_known_numbers() -> None:
    lines = verdict(_family_doc())
    assert len(lines) == 5  # the verdict stays on one screen
    by = {line.question: line for line in lines}
    top = by["top_k of 10,000,000 float64, k = 10, against xback's full sort"]
    assert top.value == pytest.approx(8.0) and top.ok is False  # torch's 8x decides
    assert top.answer == "40.00x faster on NumPy, 8.00x faster on torch"
    assert top.target == "≥ 10x faster on each backend"
    topk = by["top_k of 10,000,000 float64, k = 10, torch input, against torch.topk"]
    assert topk.value == pytest.approx(0.6) and topk.ok is True
    assert topk.answer == "xback on torch 1.67x faster than torch.topk"
    assert topk.target == "≤ 1.2x its time"
    med = by["median and quantile of 10,000,000 float64, against the faster raw library"]
    assert med.value == pytest.approx(1.3) and med.ok is False
    assert med.answer == ("xback quantile on torch 1.30x slower than np.quantile "
                          "(the worst of NumPy and torch)")
    ss = by["searchsorted of 1,000,000 queries into 1,000,000, against the faster raw "
            "library"]
    assert ss.value == pytest.approx(1.05) and ss.ok is True
    assert ss.answer.startswith("xback on NumPy 1.05x slower than torch.searchsorted")
    uq = by["unique of 10,000,000 int64, against the faster raw library"]
    assert uq.value == pytest.approx(1.2) and uq.ok is False and uq.target == "≤ 1.1x its time"
    assert uq.answer == "xback on NumPy 1.20x slower than torch.unique"
    assert [line.mark() for line in lines] == ["✗", "✓", "✗", "✓", "✗"]


def test_sort_family_ratio_series_reads_the_rows_ratios() -> None:
    from xback.bench._report import ratio_series

    rows = [
        _row(case="top_k", size=1000, candidate="xback torch top_k", median_s=1e-4,
             speedup_vs_sort=40.0, vs_raw=0.8, raw_ref="torch.topk"),
        _row(case="median", size=1000, candidate="xback numpy median", median_s=1e-4,
             vs_raw=0.5, raw_ref="np.median"),
        _row(case="median", size=1000, candidate="raw np.median", median_s=2e-4),
    ]
    panels = ratio_series("sort-family", {"results": rows, "x_key": "size"})
    assert panels[("top_k",)]["xback torch top_k / torch.topk"] == [(1000.0, 0.8)]
    assert panels[("top_k",)]["xback torch top_k / xback full sort"] == [(1000.0, 0.025)]
    assert dict(panels[("median",)]) == {"xback numpy median / np.median": [(1000.0, 0.5)]}
