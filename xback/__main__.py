"""``python -m xback`` and the ``xback`` console script: the command line of :mod:`xback.cli`.

The command line needs the ``cli`` extra; without it, :func:`main` prints one line naming
the extra to install and returns 1 (no traceback).
"""

from __future__ import annotations

import sys

#: the libraries of the ``cli`` extra that :mod:`xback.cli` imports at its top
_CLI_LIBRARIES = frozenset({"typer", "rich", "click"})


def main(argv: list[str] | None = None) -> int:
    """Run ``xback`` with ``argv`` (default ``sys.argv[1:]``); the exit status."""
    try:
        from xback.cli import main as cli_main
    except ImportError as exc:
        if exc.name not in _CLI_LIBRARIES:
            raise
        print(exc.msg, file=sys.stderr)
        return 1
    return cli_main(argv)


if __name__ == "__main__":
    sys.exit(main())
