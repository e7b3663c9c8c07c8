"""``python -m xback``: the same command line as the ``xback`` console script."""

from __future__ import annotations

import sys

from xback.cli import main

if __name__ == "__main__":
    sys.exit(main())
