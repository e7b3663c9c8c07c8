"""The ``xback`` command line: ``xback info``, ``xback bench`` and ``xback tune``.

It needs the ``cli`` extra (``pip install "xback[cli]"``: typer and rich, threadpoolctl for
the benchmarks); without it, importing this module raises ``ImportError`` with one line
saying so, which the ``xback`` console script (:func:`xback.__main__.main`) prints before
exiting with status 1.

Importing this module is cheap (typer only): NumPy, torch, rich and the benchmarks are
imported inside the commands, and the help is plain text (typer's rich help formatting
would import rich's Markdown and syntax highlighting), so ``xback --help`` answers at once.
Bad arguments print one line, ``xback: error: ...``, and exit with status 2 — never a
traceback.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import platform
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

#: the one line ``xback`` prints (exit status 1) when the ``cli`` extra is not installed
MISSING_EXTRA = 'xback\'s command line needs its extra: pip install "xback[cli]"'

try:
    import rich as _rich  # noqa: F401  (the commands' output; cheap: rich imports lazily)
    import typer
except ImportError as _exc:  # the console script (xback.__main__.main) prints just the line
    raise ImportError(MISSING_EXTRA, name=_exc.name) from _exc

__all__ = ["app", "main"]

BENCH_NAMES = (
    "lstsq-grad", "convert", "sort", "svd", "overhead", "route", "compile", "sort-family",
    "programs",
)
DTYPES = ("float32", "float64")
BENCH_BACKENDS = ("numpy", "torch")

app = typer.Typer(
    name="xback",
    help="xback: one small, fast, exact API over NumPy and PyTorch. "
    "Run `xback info` to see what this machine has, `xback bench --quick` to time it.",
    add_completion=False,
    no_args_is_help=True,
    rich_markup_mode=None,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)


class UsageFailure(Exception):
    """A bad command-line argument: reported on one line, exit status 2."""


# -- info -----------------------------------------------------------------------------------
def _installed(package: str) -> bool:
    """Whether ``package`` can be imported (without importing it)."""
    try:
        return importlib.util.find_spec(package) is not None
    except (ImportError, ValueError, AttributeError):
        return False


def _version(dist: str) -> str | None:
    import importlib.metadata

    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str | None:
    from xback._machine import cpu_model

    try:
        return cpu_model()
    except Exception:  # `xback info` reports what it can
        return None


def info_dict() -> dict[str, Any]:
    """What ``xback info`` reports, as a dict (also used by ``xback info --json``)."""
    import numpy as np

    from xback.backends import KNOWN_BACKENDS
    from xback.bench._harness import blas_info, load_average

    out: dict[str, Any] = {
        "python": f"{platform.python_version()} ({platform.python_implementation()}, "
        f"{sys.executable})",
        "platform": platform.platform(),
        "xback": _version("xback"),
        "numpy": np.__version__,
        "torch": _version("torch"),
        "ml_dtypes": _version("ml_dtypes"),
        "array-api-compat": _version("array-api-compat") or _version("array_api_compat"),
        "threadpoolctl": _version("threadpoolctl"),
        "matplotlib": _version("matplotlib"),
        "cpu_model": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "cpu_affinity": (
            len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
        ),
        "load_average": load_average(),
        "env": {
            k: os.environ.get(k)
            for k in ("OPENBLAS_CORETYPE", "OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS",
                      "MKL_NUM_THREADS")
        },
    }
    backends: dict[str, str] = {}
    for name, (_module, package, requirement) in KNOWN_BACKENDS.items():
        found = _installed(package)
        backends[name] = "available" if found else f"not installed (pip install '{requirement}')"
    out["backends"] = backends
    devices = ["cpu"]
    torch = None
    if _installed("torch"):
        try:
            torch = importlib.import_module("torch")
        except Exception as exc:  # a broken torch install must not break `xback info`
            out["torch"] = f"{out['torch']} (import failed: {type(exc).__name__}: {exc})"
    if torch is not None:
        out["torch"] = torch.__version__
        out["torch_cuda_build"] = torch.version.cuda
        out["torch_threads"] = {
            "intra_op": torch.get_num_threads(),
            "inter_op": torch.get_num_interop_threads(),
        }
        if torch.cuda.is_available():
            devices += [
                f"cuda:{i} ({torch.cuda.get_device_name(i)})"
                for i in range(torch.cuda.device_count())
            ]
        mps = getattr(torch.backends, "mps", None)
        if mps is not None and mps.is_available():
            devices.append("mps")
        devices.append("meta (torch: shapes only)")
    out["devices"] = devices
    out["blas"] = blas_info()
    out["numba"] = _version("numba")
    out["routing"] = _routing_info()
    return out


def _routing_info() -> dict[str, Any]:
    from xback import _routing
    from xback._table import LIBRARIES

    d = _routing.describe()
    d["routes"] = {
        src: [
            {"op": op, "layout": lay, "dtype": dt, "from_size": lo, "to_size": hi, "to": tgt}
            for op, lay, dt, lo, hi, tgt in _routing.plan_summary(src)
        ]
        for src in LIBRARIES  # the routing table's columns: the libraries it measures
    }
    return d


def _routing_rows(r: dict[str, Any]) -> list[tuple[str, str]]:
    """``xback info`` rows about routing: on/off, the active table, the routes' count."""
    from xback import _fused
    from xback._routing import FUSED

    state = "on" if r["enabled"] else "off"
    if r["env"] is not None:
        state += f" (XBACK_ROUTE={r['env']})"
    rows = [("routing", state)]
    if r["source"] == "none":
        rows.append(("routing table",
                     "none found: every operation runs on its own backend's library"))
    else:
        m = r.get("machine") or {}
        fp = r.get("fingerprint") or {}
        libs = ", ".join(f"{k} {v}" for k, v in (r.get("libraries") or {}).items())
        origin = "from xback tune" if r["source"] == "user" else "shipped default"
        cpu = fp.get("cpu", m.get("cpu"))
        cores = fp.get("cores", m.get("cores"))
        rows.append(("routing table", f"{origin}: {r['path']}; measured {r['created']} on "
                                      f"{cpu}, {cores} CPUs, {libs}"))
        if not r["applies"]:
            rows.append((
                "routing table applies",
                f"no: measured on another machine ({'; '.join(r['mismatch'])}). Nothing is "
                f"routed: every call runs on its own library. Run `xback tune` to measure "
                f"this machine",
            ))
        elif r.get("column_mismatch"):
            rows.append((
                "routing table applies",
                f"partly: this machine, but {'; '.join(r['column_mismatch'])}. Routes that "
                f"depend on them are not taken; run `xback tune` to measure these settings",
            ))
        else:
            rows.append(("routing table applies", "yes: measured on this machine, with these "
                                                  "library versions and thread settings"))
    if r.get("problem"):
        rows.append(("routing table problem", r["problem"]))
    for src, routes in r["routes"].items():
        if routes:
            fused = "xback's fused kernel" + (
                "" if _fused.available() else " (inert: Numba is not installed, "
                "pip install 'xback[fast]')"
            )
            targets = sorted({fused if x["to"] == FUSED else x["to"] for x in routes})
            rows.append((f"routes for {src} input",
                         f"{len(routes)} size ranges run on {', '.join(targets)} "
                         f"(xback info --routes lists them)"))
    return rows


@app.command()
def info(
    as_json: Annotated[
        bool, typer.Option("--json", help="Print the report as JSON instead of a table.")
    ] = False,
    routes: Annotated[
        bool, typer.Option("--routes", help="Also list every routed size range.")
    ] = False,
) -> None:
    """Versions, backends and devices, CPU and thread settings, NumPy's BLAS, routing."""
    d = info_dict()
    if as_json:
        import json

        typer.echo(json.dumps(d, indent=1))
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console() if sys.stdout.isatty() else Console(width=160)

    t = Table(title="xback info", show_header=False, title_justify="left")
    t.add_column("item", style="bold")
    t.add_column("value")
    t.add_row("Python", d["python"])
    t.add_row("platform", d["platform"])
    for k in ("xback", "numpy", "torch", "ml_dtypes", "array-api-compat", "threadpoolctl",
              "numba", "matplotlib"):
        label = "NumPy" if k == "numpy" else k
        t.add_row(label, str(d[k] or "not installed"))
    t.add_row("backends", escape(", ".join(f"{k}: {v}" for k, v in d["backends"].items())))
    t.add_row("devices", ", ".join(d["devices"]))
    cpu = f"{d['cpu_model'] or 'unknown model'}, {d['cpu_count']} logical CPUs"
    if d["cpu_affinity"] is not None and d["cpu_affinity"] != d["cpu_count"]:
        cpu += f" ({d['cpu_affinity']} usable by this process)"
    t.add_row("CPU", cpu)
    if "torch_threads" in d:
        tt = d["torch_threads"]
        t.add_row("torch threads", f"{tt['intra_op']} intra-op, {tt['inter_op']} inter-op")
    for b in d["blas"]:
        t.add_row(
            f"{b.get('user_api')} (threadpoolctl)",
            f"{b.get('internal_api')} {b.get('version')}, {b.get('num_threads')} threads"
            + (f", {b.get('architecture')}" if b.get("architecture") else "")
            + f" — {Path(str(b.get('filepath'))).name}",
        )
    if not d["blas"]:
        t.add_row("BLAS", "threadpoolctl found no native thread pool")
    la = d["load_average"]
    t.add_row("load average", " ".join(f"{v:.2f}" for v in la) if la else "n/a")
    env = d["env"]
    t.add_row(
        "OPENBLAS_CORETYPE",
        f"set ({env['OPENBLAS_CORETYPE']})" if env["OPENBLAS_CORETYPE"] else "not set",
    )
    others = [f"{k}={v}" for k, v in env.items() if v and k != "OPENBLAS_CORETYPE"]
    if others:
        t.add_row("thread env", " ".join(others))
    for label, value in _routing_rows(d["routing"]):
        t.add_row(label, escape(str(value)))
    console.print(t)
    if routes:
        console.print(_routes_table(d["routing"]))


def _routes_table(r: dict[str, Any]) -> Any:
    from rich.table import Table

    t = Table(title="routed size ranges (elements of the main input)", title_justify="left")
    for col in ("input", "operation", "layout", "dtype", "sizes", "runs on"):
        t.add_column(col)
    for src, routes in r["routes"].items():
        for x in routes:
            hi = "and up" if x["to_size"] is None else f"to {x['to_size']:,}"
            t.add_row(src, x["op"], x["layout"], x["dtype"], f"{x['from_size']:,} {hi}",
                      x["to"])
    return t


# -- tune -----------------------------------------------------------------------------------
def _check_writable(directory: Path) -> None:
    """Create (and remove) a file in ``directory``, creating the directory if needed: the
    only test that holds everywhere (``os.access`` says yes for root on read-only file
    systems such as ``/sys``)."""
    import tempfile

    hint = ("set XBACK_CACHE_DIR to a writable folder or pass --output PATH")
    try:
        directory.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=directory, prefix=".xback-write-test.")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        why = exc.strerror or type(exc).__name__
        raise UsageFailure(f"cannot write the routing table to {directory}: {why} ({hint})"
                           ) from None


@app.command()
def tune(
    quick: Annotated[
        bool, typer.Option("--quick", help="Fewer sizes (seconds): a first look, for tests. "
                           "Writes nothing unless --save or --output is given.")
    ] = False,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", dir_okay=False,
                     help="Write the table here instead of the user cache directory "
                     "(where routing reads it)."),
    ] = None,
    save: Annotated[
        bool, typer.Option("--save", help="With --quick: store the quick table in the user "
                           "cache directory, where routing reads it.")
    ] = False,
    dry_run: Annotated[
        bool, typer.Option("--dry-run", help="Measure and print, write nothing.")
    ] = False,
) -> None:
    """Measure which library is faster for each operation on this machine (under two
    minutes on 2 cores) and store the routing table that xback uses from then on.

    The table records this machine's fingerprint (CPU, cores, instruction sets, library
    versions, thread settings) and is used only where it matches."""
    from xback import _routing
    from xback._table import LIBRARIES
    from xback.backends import KNOWN_BACKENDS

    for name in LIBRARIES:
        _m, pkg, requirement = KNOWN_BACKENDS[name]
        if not _installed(pkg):
            raise UsageFailure(
                f"xback tune compares {' and '.join(LIBRARIES)}, and {pkg} is not installed "
                f"(pip install '{requirement}'); without it nothing is routed"
            )
    if dry_run and (save or output is not None):
        raise UsageFailure("--dry-run writes nothing: drop --save/--output, or --dry-run")
    if save and output is not None:
        raise UsageFailure("--save stores the table in the user cache directory and --output "
                           "elsewhere: give one of them")
    # --quick is a first look: it replaces the table routing reads only when asked to
    write = not dry_run and (not quick or save or output is not None)
    target = _routing.user_table_path() if output is None else output
    if write:
        if target.is_dir():
            raise UsageFailure(f"{target} is a directory: give the path of a file to write")
        _check_writable(target.parent)  # before minutes of measuring

    from rich.console import Console

    from xback.bench.tune import n_samples
    from xback.bench.tune import tune as measure_table

    console = Console() if sys.stdout.isatty() else Console(width=160)
    err = Console(stderr=True)
    with _progress(err, 20) as prog:
        prog.add(n_samples(quick), "measuring")
        table = measure_table(quick=quick, progress=prog)
    versions = ", ".join(f"{src} {table['libraries'][src]}" for src in LIBRARIES)
    counts = ", ".join(
        f"{src} input {len(_routing.plan_summary(src, table))}" for src in LIBRARIES
    )
    console.print(
        f"measured {len(table['entries'])} cases in {table['tune_seconds']} s "
        f"({versions}); routed size ranges: {counts}"
    )
    if dry_run:
        console.print("--dry-run: nothing written")
        return
    if not write:
        console.print(f"--quick: nothing written (--save stores it in "
                      f"{_routing.user_table_path()}, --output PATH elsewhere)")
        return
    try:
        path = _routing.save_table(table, target)
    except OSError as exc:
        raise UsageFailure(f"cannot write the routing table to {target}: "
                           f"{exc.strerror or exc} (set XBACK_CACHE_DIR to a writable folder "
                           f"or pass --output PATH)") from None
    if output is None:
        console.print(f"routing table written to {path}; xback uses it from now on "
                      f"(`xback info` shows it)")
    else:
        console.print(f"routing table written to {path} (copy it to "
                      f"{_routing.user_table_path()} to use it)")


# -- bench ----------------------------------------------------------------------------------
def _parse_sizes(text: str | None) -> list[int] | None:
    if text is None:
        return None
    sizes: list[int] = []
    for part in text.replace(" ", "").split(","):
        if not part:
            continue
        try:
            v = float(part.replace("_", "")) if any(c in part for c in ".eE") else int(part, 10)
        except ValueError:
            raise UsageFailure(
                f"--sizes: cannot parse {part!r}; give positive integers separated by commas, "
                f"e.g. --sizes 1000,1e6"
            ) from None
        if v != v or v in (float("inf"), float("-inf")) or v != int(v) or v < 1:
            raise UsageFailure(f"--sizes: {part!r} is not a positive whole number")
        sizes.append(int(v))
    if not sizes:
        raise UsageFailure("--sizes: no size given; e.g. --sizes 1000,1e6")
    return sizes


def _parse_list(option: str, text: str | None, allowed: tuple[str, ...]) -> list[str] | None:
    if text is None:
        return None
    items = [p.strip() for p in text.split(",") if p.strip()]
    if not items:
        raise UsageFailure(f"{option}: nothing given; choose from {', '.join(allowed)}")
    for it in items:
        if it not in allowed:
            raise UsageFailure(f"{option}: unknown value {it!r}; choose from {', '.join(allowed)}")
    return list(dict.fromkeys(items))


def _check_backends(text: str | None) -> list[str]:
    from xback.backends import KNOWN_BACKENDS

    if text is None:
        return [n for n in BENCH_BACKENDS if _installed(KNOWN_BACKENDS[n][1])]
    names = [p.strip() for p in text.split(",") if p.strip()]
    if not names:
        raise UsageFailure(f"--backends: nothing given; choose from {', '.join(BENCH_BACKENDS)}")
    for n in names:
        if n not in KNOWN_BACKENDS:
            raise UsageFailure(
                f"--backends: unknown backend {n!r}; available backends: "
                f"{', '.join(KNOWN_BACKENDS)}"
            )
        if n not in BENCH_BACKENDS:
            raise UsageFailure(
                f"--backends: xback bench times {', '.join(BENCH_BACKENDS)}; "
                f"backend {n!r} has no benchmark yet"
            )
        _m, pkg, requirement = KNOWN_BACKENDS[n]
        if not _installed(pkg):
            raise UsageFailure(
                f"--backends: backend {n!r} needs {pkg}, which is not installed "
                f"(pip install '{requirement}')"
            )
    return list(dict.fromkeys(names))


def _check_device(device: str, backends: list[str]) -> str:
    if device == "cpu":
        return "cpu"
    if "torch" not in backends:
        raise UsageFailure(f"--device {device}: only the torch backend runs off the CPU; "
                           "add --backends numpy,torch")
    from xback._dispatch import load_backend, normalize_device

    try:
        canonical = normalize_device(load_backend("torch"), device)
    except (ValueError, TypeError) as exc:
        raise UsageFailure(f"--device: {exc}") from None
    if canonical == "meta":
        raise UsageFailure("--device meta: meta tensors carry no data, there is nothing to time")
    return canonical


class _RichProgress:
    """A rich progress bar (on a terminal): the current case, samples done, elapsed time and
    an estimate of the time left for the cases announced so far."""

    def __init__(self, progress: Any) -> None:
        self.p = progress
        self.task = progress.add_task("starting", total=0)
        self.total = 0

    def add(self, total: int, description: str) -> None:
        self.total += total
        self.p.update(self.task, total=self.total, description=description)

    def advance(self, n: int = 1) -> None:
        self.p.advance(self.task, n)


class _LineProgress:
    """Progress where stderr is no terminal (CI logs, pipes): one line every
    ``every`` seconds, so that a long run never looks hung."""

    def __init__(self, err: Any, every: float = 5.0) -> None:
        import time

        self.err, self.every, self.clock = err, every, time.monotonic
        self.start = self.last = self.clock()
        self.total = self.done = 0
        self.case = "starting"

    def add(self, total: int, description: str) -> None:
        self.total += total
        self.case = description
        self._maybe_print()

    def advance(self, n: int = 1) -> None:
        self.done += n
        self._maybe_print()

    def _maybe_print(self) -> None:
        now = self.clock()
        if now - self.last < self.every:
            return
        self.last = now
        elapsed = now - self.start
        left = (f", ~{elapsed * (self.total - self.done) / self.done:.0f} s left for the "
                "cases announced so far" if self.done else "")
        self.err.print(f"xback: {self.done}/{self.total} samples, now {self.case}, "
                       f"{elapsed:.0f} s elapsed{left}", highlight=False, soft_wrap=True)


@contextlib.contextmanager
def _progress(err: Any, width: int) -> Iterator[Any]:
    """A progress reporter for a long measurement: a bar on a terminal, a line every few
    seconds elsewhere."""
    if not err.is_terminal:
        yield _LineProgress(err)
        return
    from rich.progress import (
        BarColumn,
        MofNCompleteColumn,
        TextColumn,
        TimeElapsedColumn,
        TimeRemainingColumn,
    )
    from rich.progress import Progress as RichProgress

    with RichProgress(
        TextColumn(f"{{task.description:<{width}}}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TextColumn("left"), TimeRemainingColumn(), console=err,
        transient=True,
    ) as p:
        yield _RichProgress(p)


@app.command()
def bench(
    benchmarks: Annotated[
        list[str] | None,
        typer.Argument(
            help="Which benchmark(s): lstsq-grad, convert, sort, svd, overhead, route, compile, "
            "sort-family, programs or all (default: all).",
            show_default=False,
        ),
    ] = None,
    sizes: Annotated[
        str | None,
        typer.Option(help="Comma-separated sizes: elements for convert/sort (e.g. 1e3,1e6), "
                     "d for lstsq-grad/svd (A is (10d, d)), input length for overhead."),
    ] = None,
    dtype: Annotated[
        str | None, typer.Option(help="float32, float64 or both, comma-separated.")
    ] = None,
    backends: Annotated[
        str | None,
        typer.Option(help="Comma-separated backends (default: every installed one)."),
    ] = None,
    repeat: Annotated[
        int | None,
        typer.Option(min=1, help="Samples per candidate (default 7, 3 with --quick)."),
    ] = None,
    threads: Annotated[
        int | None,
        typer.Option(min=1, help="Threads for NumPy's BLAS (threadpoolctl) and torch "
                     "during the run."),
    ] = None,
    device: Annotated[str, typer.Option(help="Device of the torch candidates.")] = "cpu",
    quick: Annotated[
        bool, typer.Option("--quick", help="Small sizes and few repeats: seconds, for CI.")
    ] = False,
    json_path: Annotated[
        Path | None,
        typer.Option("--json", help="Write the results and the environment as JSON here.",
                     dir_okay=False),
    ] = None,
    plot_dir: Annotated[
        Path | None,
        typer.Option("--plot", help="Write one PNG plot per benchmark into this directory "
                     "(needs matplotlib: pip install 'xback[plot]').", file_okay=False),
    ] = None,
    details: Annotated[
        bool, typer.Option("--details", help="Print every benchmark's full table and "
                           "summary before the verdict.")
    ] = False,
    report_dir: Annotated[
        Path | None,
        typer.Option("--report", help="Write a self-contained HTML report (verdict, plots, "
                     "machine) and results.json into this directory.", file_okay=False),
    ] = None,
) -> None:
    """Time xback against the raw NumPy and torch calls on this machine (tables, JSON, plots)."""
    names = list(benchmarks or ["all"])
    for n in names:
        if n != "all" and n not in BENCH_NAMES:
            raise UsageFailure(
                f"unknown benchmark {n!r}; choose from {', '.join([*BENCH_NAMES, 'all'])}"
            )
    selected = list(BENCH_NAMES) if "all" in names else list(dict.fromkeys(names))
    size_list = _parse_sizes(sizes)
    dtypes = _parse_list("--dtype", dtype, DTYPES)
    backend_list = _check_backends(backends)
    dev = _check_device(device, backend_list)
    if plot_dir is not None and not _installed("matplotlib"):
        raise UsageFailure("--plot needs matplotlib: pip install 'xback[plot]'")
    # fail before a long run, not after it, when an output place cannot be written
    for option, where in (("--json", json_path.parent if json_path else None),
                          ("--plot", plot_dir), ("--report", report_dir)):
        if where is None:
            continue
        try:
            where.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageFailure(f"{option}: cannot create {where}: {exc.strerror}") from None
        if not os.access(where, os.W_OK):
            raise UsageFailure(f"{option}: {where} is not writable")

    from rich.console import Console

    from xback.bench import BenchConfig, run_all
    from xback.bench._report import plot, render, write_json

    cfg = BenchConfig(sizes=size_list, dtypes=dtypes, backends=backend_list, repeat=repeat,
                      threads=threads, device=dev, quick=quick)
    console = Console() if sys.stdout.isatty() else Console(width=160)
    err = Console(stderr=True)
    with _progress(err, 34) as prog:
        doc = run_all(selected, cfg, prog)
    render(doc, console, details=details)
    if json_path is not None:
        write_json(doc, json_path)
        console.print(f"JSON written to {json_path}")
    if plot_dir is not None:
        for path in plot(doc, plot_dir):
            console.print(f"plot written to {path}")
    if report_dir is not None:
        from xback.bench.html import write_report

        page = write_report(doc, report_dir, plots=_installed("matplotlib"))
        console.print(f"report written to {page} (the JSON beside it)")


# -- entry point ----------------------------------------------------------------------------
def _click_exceptions() -> Any:
    """The exceptions module of the click that typer uses (typer >= 0.26 vendors its own)."""
    return sys.modules[typer.BadParameter.__module__]


def main(argv: list[str] | None = None) -> int:
    """Console-script entry point: run the app, turn usage errors into one line + status 2."""
    exc_mod = _click_exceptions()
    no_args = getattr(exc_mod, "NoArgsIsHelpError", ())
    command = typer.main.get_command(app)
    args = sys.argv[1:] if argv is None else argv
    try:
        rv = command.main(args=args, prog_name="xback", standalone_mode=False)
    except UsageFailure as exc:
        print(f"xback: error: {exc}", file=sys.stderr)
        return 2
    except no_args as exc:
        ctx = getattr(exc, "ctx", None)
        print(ctx.get_help() if ctx is not None else str(exc))
        return 0
    except exc_mod.UsageError as exc:
        msg = " ".join(exc.format_message().split())
        ctx = exc.ctx
        where = "xback" if ctx is None or ctx.info_name == "xback" else f"xback {ctx.info_name}"
        print(f"xback: error: {msg} (see: {where} --help)", file=sys.stderr)
        return 2
    except exc_mod.ClickException as exc:
        print(f"xback: error: {exc.format_message()}", file=sys.stderr)
        return int(exc.exit_code)
    except (typer.Abort, KeyboardInterrupt):
        print("xback: interrupted", file=sys.stderr)
        return 130
    except typer.Exit as exc:
        return int(exc.exit_code)
    return rv if isinstance(rv, int) else 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
