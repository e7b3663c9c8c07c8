"""Core benchmark: dispatch overhead and conversion cost, as ratios against the raw calls.

* ``overhead``: per-call cost of ``xback.asarray``, ``to_numpy``, ``from_numpy`` (and every
  other public function) over the raw call (``torch.from_numpy``, ``Tensor.numpy``...) on tiny
  inputs, next to array-api-compat's ``array_namespace`` + call;
* ``convert``: conversion time against array size, 1e2..1e8 elements (zero-copy is flat).

The measuring code lives in :mod:`xback.bench` (shared with ``xback bench`` and the docs);
this script runs those two benchmarks in one process::

    python benchmarks/bench_core.py            # full sizes
    python benchmarks/bench_core.py --quick    # seconds
"""

from __future__ import annotations

import sys

from xback.cli import main

if __name__ == "__main__":
    sys.exit(main(["bench", "overhead", "convert", *sys.argv[1:]]))
