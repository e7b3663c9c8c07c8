"""The typing test: mypy (strict, the project's configuration) accepts
``tests/typing/check_types.py``, whose ``assert_type`` lines prove the overloads
(``asarray(np.ndarray) -> np.ndarray``, ``asarray(torch.Tensor) -> torch.Tensor``, ...).

A deliberately wrong claim is checked in the same mypy run and must be reported, so the test
fails if mypy stops seeing xback's types (e.g. everything degrading to ``Any``).
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
CHECKS = ROOT / "tests" / "typing" / "check_types.py"

WRONG = '''\
import numpy as np
import torch
from typing_extensions import assert_type

import xback as xb

assert_type(xb.asarray(np.zeros(3)), torch.Tensor)  # wrong on purpose
assert_type(xb.to_numpy(torch.zeros(3)), torch.Tensor)  # wrong on purpose
'''


def test_public_types_with_mypy(tmp_path: Path) -> None:
    pytest.importorskip("mypy")
    pytest.importorskip("torch")
    pytest.importorskip("typing_extensions")
    wrong = tmp_path / "wrong_claims.py"
    wrong.write_text(WRONG, encoding="utf-8")
    proc = subprocess.run(
        [
            sys.executable, "-m", "mypy",
            "--config-file", str(ROOT / "pyproject.toml"),
            "--strict", "--warn-unused-ignores", "--show-error-codes", "--no-pretty",
            "--cache-dir", str(ROOT / ".mypy_cache"),
            str(CHECKS), str(wrong),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=900,
    )
    out = proc.stdout + proc.stderr
    errors = [line for line in out.splitlines() if ": error:" in line]
    in_checks = [e for e in errors if "check_types.py" in e]
    assert not in_checks, "mypy rejects tests/typing/check_types.py:\n" + "\n".join(in_checks)
    in_wrong = [e for e in errors if "wrong_claims.py" in e]
    lines = sorted(int(m.group(1)) for e in in_wrong if (m := re.search(r":(\d+):", e)))
    assert lines == [7, 8], "mypy did not catch the wrong claims:\n" + out
    assert all("[assert-type]" in e for e in in_wrong), out
