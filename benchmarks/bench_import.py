"""Import cost: what ``import xback`` adds to ``import numpy``, against array-api-compat.

Every measurement is a fresh interpreter that first imports NumPy (not timed: every user of
xback has it) and then times one statement with ``time.perf_counter``. The statements run
interleaved (round-robin, so machine load hits all of them alike); the table gives the best
and the median per statement and the ratio of medians to the anchor, ``import
array_api_compat`` (the generic Array API layer, which imports no array library by itself).

The children may write bytecode (``PYTHONDONTWRITEBYTECODE`` is dropped from their
environment) and one uncounted round runs first, so that what is timed is an installed
package's import, not the compilation of its sources.

With ``--cli`` it also times the command line in fresh processes from start to exit:
``xback --help`` and ``xback info``, wall clock and CPU time (user + system of the child,
which a busy machine inflates much less than the wall clock).

    python benchmarks/bench_import.py              # 9 fresh processes per statement
    python benchmarks/bench_import.py --rounds 15 --cli
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import time

#: (label, statement); the first is the anchor of the ratios
STATEMENTS: tuple[tuple[str, str], ...] = (
    ("import array_api_compat", "import array_api_compat"),
    ("import xback", "import xback"),
    # the core modules load on first use of a public name
    ("import xback; xback.sort", "import xback; xback.sort"),
    # and the first call (the routing table is read then)
    ("... ; xback.sort(numpy array)", "import xback; xback.sort(numpy.arange(3.0))"),
)

_TIMER = (
    "import time, numpy\n"
    "t0 = time.perf_counter()\n"
    "{stmt}\n"
    "print(time.perf_counter() - t0)\n"
)

#: command lines timed with --cli (wall clock of the whole process)
COMMANDS: tuple[tuple[str, list[str]], ...] = (
    ("python -c pass", [sys.executable, "-c", "pass"]),
    ("xback --help", [sys.executable, "-m", "xback", "--help"]),
    ("xback info", [sys.executable, "-m", "xback", "info"]),
)


#: the children's environment: bytecode cached as in an installed package
ENV = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}


def time_statement(stmt: str) -> float:
    """Seconds one fresh interpreter takes to run ``stmt`` after ``import numpy``."""
    out = subprocess.run(
        [sys.executable, "-c", _TIMER.format(stmt=stmt)],
        check=True,
        capture_output=True,
        text=True,
        env=ENV,
    )
    return float(out.stdout.strip().splitlines()[-1])


def time_command(argv: list[str]) -> tuple[float, float]:
    """Wall-clock and CPU seconds of one fresh process running ``argv`` to its exit."""
    r0 = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    subprocess.run(argv, check=True, capture_output=True, env=ENV)
    wall = time.perf_counter() - t0
    r1 = resource.getrusage(resource.RUSAGE_CHILDREN)
    return wall, (r1.ru_utime - r0.ru_utime) + (r1.ru_stime - r0.ru_stime)


def _table(
    title: str,
    samples: dict[str, list[float]],
    anchor: str | None,
    cpu: dict[str, list[float]] | None = None,
) -> str:
    last = "ratio" if cpu is None else "CPU median ms"
    lines = [title, f"{'':36} {'best ms':>9} {'median ms':>10} {last:>14}"]
    ref = statistics.median(samples[anchor]) if anchor else None
    for label, times in samples.items():
        med = statistics.median(times)
        if cpu is not None:
            extra = f"{statistics.median(cpu[label]) * 1e3:14.0f}"
        else:
            extra = f"{med / ref:14.1f}" if ref else f"{'':14}"
        lines.append(f"{label:36} {min(times) * 1e3:9.2f} {med * 1e3:10.2f} {extra}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=9, help="fresh processes per statement")
    parser.add_argument("--cli", action="store_true", help="also time `xback --help`/`info`")
    args = parser.parse_args(argv)

    for _, stmt in STATEMENTS:  # uncounted: writes the bytecode caches
        time_statement(stmt)
    stmts: dict[str, list[float]] = {label: [] for label, _ in STATEMENTS}
    for _ in range(args.rounds):
        for label, stmt in STATEMENTS:
            stmts[label].append(time_statement(stmt))
    print(f"{args.rounds} fresh processes each, after `import numpy`; ratio = median / anchor")
    print(_table("import cost", stmts, STATEMENTS[0][0]))

    if args.cli:
        for _, cmd in COMMANDS:  # uncounted
            time_command(cmd)
        cmds: dict[str, list[float]] = {label: [] for label, _ in COMMANDS}
        cpus: dict[str, list[float]] = {label: [] for label, _ in COMMANDS}
        for _ in range(args.rounds):
            for label, cmd in COMMANDS:
                wall, cpu = time_command(cmd)
                cmds[label].append(wall)
                cpus[label].append(cpu)
        print()
        print(_table("command line (whole process: wall clock, and CPU time)", cmds, None, cpus))
    return 0


if __name__ == "__main__":
    sys.exit(main())
