"""The routing table as a file: which machine it applies to (its fingerprint), saving it
safely, and what ``xback tune`` writes (xback._routing, xback._machine, xback._table).

The loader's robustness against bad files is fuzzed in tests/test_table_fuzz.py.
"""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import xback
from xback import _machine, _routing
from xback._dispatch import load_backend
from xback.bench import tune as tune_mod
from xback.cli import main

from .test_routing import calls, make_table  # noqa: F401  (the fixture, by name)

torch = pytest.importorskip("torch")

BIG = np.arange(5000, 0, -1, dtype=np.int64)  # routed by make_table("torch")


def foreign(t: dict[str, Any], **fields: Any) -> dict[str, Any]:
    """``t`` with its fingerprint changed in ``fields``."""
    return {**t, "fingerprint": {**t["fingerprint"], **fields}}


# -- which machine a table applies to ----------------------------------------------------------
@pytest.mark.parametrize("fields", [{"cpu": "Some Other CPU 9000"}, {"cores": 512},
                                    {"isa": ["avx512f", "sve"]}, {"numpy": "1.0.0"}])
def test_a_foreign_table_is_not_applied(
    table: Callable[..., Path], calls: dict[str, int], fields: dict[str, Any],  # noqa: F811
    capsys: pytest.CaptureFixture[str],
) -> None:
    table(foreign(make_table("torch"), **fields))
    act = _routing.active_table()
    assert act["source"] == "user" and act["applies"] is False
    [field] = fields
    assert [m.split(":")[0] for m in act["mismatch"]] == [field]
    r = xback.sort(BIG)
    assert calls == {"numpy.sort": 1}, "a route of a foreign table ran"
    np.testing.assert_array_equal(r, np.arange(1, 5001))
    assert _routing.kernel_target("sort/1d", load_backend("numpy"), BIG) is None
    assert _routing.plan_summary("numpy") == []
    # xback info says so, why, and what to run
    d = xback.cli.info_dict()["routing"]
    assert d["applies"] is False and d["routes"] == {"numpy": [], "torch": []}
    assert main(["info"]) == 0
    out = " ".join(capsys.readouterr().out.split())
    assert "no: measured on another machine" in out and f"{field}: table" in out
    assert "xback tune" in out
    assert _machine.cpu_model().split()[0] in out  # this machine's CPU model is shown


def test_the_same_table_with_this_machines_fingerprint_applies(
    table: Callable[..., Path], calls: dict[str, int]  # noqa: F811
) -> None:
    table(make_table("torch"))
    assert _routing.active_table()["applies"] is True
    xback.sort(BIG)
    assert calls == {"torch.sort": 1}


@pytest.mark.parametrize(
    "fields",
    [{"torch": "0.1.0"}, {"torch_threads": 999},
     {"torch_routed_threads": None}],  # an older tune: routes timed on torch's own threads
)
def test_a_column_measured_with_other_settings_is_left_out(
    table: Callable[..., Path], calls: dict[str, int], fields: dict[str, Any],  # noqa: F811
) -> None:
    """Same machine, but torch's version or thread count differs: routes to torch (and
    from torch) are not taken; info says which setting differs."""
    table(foreign(make_table("torch"), **fields))
    xback.sort(BIG)
    xback.sort(torch.from_numpy(BIG.copy()))
    assert calls == {"numpy.sort": 1, "torch.sort": 1}
    d = xback.cli.info_dict()["routing"]
    assert d["applies"] and [m.split(":")[0] for m in d["column_mismatch"]] == list(fields)
    table(foreign(make_table("numpy"), **fields))
    xback.sort(torch.from_numpy(BIG.copy()))  # torch's own column differs: nothing routes
    assert calls == {"numpy.sort": 1, "torch.sort": 2}


def test_an_old_format_table_is_not_applied(
    table: Callable[..., Path], calls: dict[str, int]  # noqa: F811
) -> None:
    path = table(make_table("torch"))
    t = json.loads(path.read_text())
    t["format"] = "xback-routing/1"
    del t["fingerprint"]
    path.write_text(json.dumps(t))
    _routing.reload()
    act = _routing.active_table()
    assert act["source"] == "user" and not act["applies"] and act["problem"] is None
    assert "records no machine fingerprint" in act["mismatch"][0]
    xback.sort(BIG)
    assert calls == {"numpy.sort": 1}


def test_a_foreign_user_table_gives_way_to_a_matching_shipped_one(
    table: Callable[..., Path], calls: dict[str, int], monkeypatch: pytest.MonkeyPatch,  # noqa: F811
    tmp_path: Path,
) -> None:
    shipped = _routing.save_table(make_table("torch"), tmp_path / "shipped.json")
    table(foreign(make_table("numpy"), cpu="elsewhere"))
    monkeypatch.setattr(_routing, "default_table_path", lambda: shipped)
    _routing.reload()
    act = _routing.active_table()
    assert act["source"] == "default" and act["applies"] and act["problem"] is None
    xback.sort(BIG)
    assert calls == {"torch.sort": 1}


def _shipped_machine() -> dict[str, Any]:
    fp = _routing.load_table(_routing.default_table_path())["fingerprint"]
    return {k: fp[k] for k in _machine.MACHINE_FIELDS}


def test_shipped_table_is_not_applied_on_a_foreign_machine(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, calls: dict[str, int]  # noqa: F811
) -> None:
    monkeypatch.setenv("XBACK_CACHE_DIR", str(tmp_path))  # no user table
    shipped = _shipped_machine()
    here = {**shipped, "cpu": "AMD EPYC 7B13", "isa": ["avx", "avx2", "fma"]}
    monkeypatch.setattr(_machine, "machine", lambda: here)
    _routing.reload()
    try:
        act = _routing.active_table()
        assert act["source"] == "default" and not act["applies"]
        assert {m.split(":")[0] for m in act["mismatch"]} == {"cpu", "isa"}
        for src in ("numpy", "torch"):
            assert _routing.plan_summary(src) == []
        a = np.random.default_rng(0).integers(0, 10**9, size=400_000)
        xback.sort(a)
        xback.argsort(torch.from_numpy(a))
        A = np.random.default_rng(1).standard_normal((4000, 500))
        xback.lstsq_grad(A, np.ones(500), np.ones(4000))
        assert calls == {"numpy.sort": 1, "torch.argsort": 1, "numpy.lstsq_grad": 1}
        # the same table on the machine it describes routes (torch imported, its settings)
        monkeypatch.setattr(_machine, "machine", lambda: shipped)
        _routing.reload()
        assert _routing.active_table()["applies"]
    finally:
        monkeypatch.undo()
        _routing.reload()


def test_shipped_table_records_its_machine() -> None:
    t = _routing.load_table(_routing.default_table_path())
    assert t["format"] == _routing.TABLE_FORMAT
    fp = t["fingerprint"]
    assert fp["cpu"] == "Intel(R) Xeon(R) Processor" and fp["cores"] == 2
    assert "avx512f" in fp["isa"] and fp["torch"] == "2.13.0+cpu"
    assert (fp["blas_threads"], fp["torch_threads"]) == (2, 2)


def test_fingerprint_fields() -> None:
    fp = _machine.fingerprint()
    assert set(fp) == set(_machine.FIELDS)
    assert isinstance(fp["cpu"], str) and fp["cpu"]
    assert fp["cores"] == os.cpu_count() and fp["numpy"] == np.__version__
    assert fp["torch"] == torch.__version__ and fp["torch_threads"] == torch.get_num_threads()
    assert fp["torch_routed_threads"] == 1  # how a routed call computes on torch
    assert fp["isa"] is None or set(fp["isa"]) <= {"avx", "avx2", "fma", "avx512f", "asimd",
                                                   "sve"}
    assert _machine.machine() is _machine.machine()  # read once per process


def _child(code: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, env={**os.environ, **env})


def test_checking_a_table_imports_nothing_it_would_not_route_to(tmp_path: Path) -> None:
    """A table routing NumPy input to torch, NumPy-only use: neither torch nor threadpoolctl
    is imported to check its fingerprint (NumPy input is never routed to an unimported
    library, so there is nothing to check)."""
    _routing.save_table(make_table("torch"), tmp_path / "routing-table.json")
    _routing.reload()
    out = _child(
        "import sys, numpy as np, xback\n"
        "from xback import _routing\n"
        "xback.sort(np.arange(5000, 0, -1)); xback.argsort(np.arange(5000))\n"
        "assert _routing.active_table()['applies']\n"
        "print(sorted(m for m in ('torch', 'threadpoolctl') if m in sys.modules))\n",
        XBACK_CACHE_DIR=str(tmp_path),
    )
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"


def test_numpy_plans_built_before_torch_was_imported_are_rebuilt(
    table: Callable[..., Path], calls: dict[str, int], monkeypatch: pytest.MonkeyPatch,  # noqa: F811
) -> None:
    table(make_table("torch"))
    nb = load_backend("numpy")
    with monkeypatch.context() as m:
        m.delitem(sys.modules, "torch")  # as if the program had not imported torch yet
        assert _routing.kernel_target("sort/1d", nb, BIG) is None
    xback.sort(BIG)
    assert calls == {"numpy.sort": 1}  # plans built without torch: until they are rebuilt
    xback.sort(torch.from_numpy(BIG.copy()))  # torch's plans are built: numpy's rebuilt
    calls.clear()
    xback.sort(BIG)
    assert calls == {"torch.sort": 1}


# -- saving ----------------------------------------------------------------------------------------
def test_save_table_never_follows_a_planted_symlink(tmp_path: Path) -> None:
    victim = tmp_path / "victim.txt"
    victim.write_text("precious")
    path = tmp_path / "cache" / "routing-table.json"
    path.parent.mkdir()
    # the old predictable temporary name, and the target itself as a symlink
    os.symlink(victim, path.with_name(path.name + f".{os.getpid()}.tmp"))
    _routing.save_table(make_table("torch"), path)
    assert victim.read_text() == "precious"
    assert json.loads(path.read_text())["format"] == _routing.TABLE_FORMAT
    other = tmp_path / "cache" / "link.json"
    os.symlink(victim, other)
    _routing.save_table(make_table("torch"), other)
    assert victim.read_text() == "precious" and not other.is_symlink()
    assert {p.name for p in path.parent.iterdir()} == {  # no temporary file left behind
        "link.json", "routing-table.json", f"routing-table.json.{os.getpid()}.tmp"}
    assert stat.S_IMODE(path.stat().st_mode) & 0o600 == 0o600
    _routing.reload()


def test_save_table_rejects_an_invalid_table(tmp_path: Path) -> None:
    t = make_table("torch")
    t["entries"][0]["seconds"] = {"dask": 1e-3}
    with pytest.raises(ValueError, match="seconds key is 'dask'"):
        _routing.save_table(t, tmp_path / "t.json")
    assert list(tmp_path.iterdir()) == []


# -- xback tune: what it writes -----------------------------------------------------------------
@pytest.fixture
def fake_measure(monkeypatch: pytest.MonkeyPatch) -> list[bool]:
    """``xback tune`` with the measurement replaced by a ready table (records ``quick``)."""
    seen: list[bool] = []

    def measure(quick: bool = False, **kw: Any) -> dict[str, Any]:
        seen.append(quick)
        return {**make_table("torch"), "tune_seconds": 0.1, "quick": quick}

    monkeypatch.setattr(tune_mod, "tune", measure)
    return seen


def test_tune_quick_leaves_the_cache_untouched(
    fake_measure: list[bool], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("XBACK_CACHE_DIR", str(tmp_path))
    cached = tmp_path / "routing-table.json"
    cached.write_bytes(b"the user's table")
    try:
        assert main(["tune", "--quick"]) == 0
        assert fake_measure == [True]
        assert cached.read_bytes() == b"the user's table"
        assert sorted(tmp_path.iterdir()) == [cached]
        assert "nothing written" in capsys.readouterr().out
        # --output writes there only; --save (or a full tune) replaces the cached table
        out = tmp_path / "quick.json"
        assert main(["tune", "--quick", "--output", str(out)]) == 0
        assert cached.read_bytes() == b"the user's table" and _routing.load_table(out)
        assert main(["tune", "--quick", "--save"]) == 0
        assert _routing.load_table(cached)["quick"] is True
        cached.write_bytes(b"the user's table")
        assert main(["tune"]) == 0
        assert _routing.load_table(cached)["quick"] is False
        assert fake_measure == [True, True, True, False]
        assert main(["tune", "--quick", "--save", "--output", str(out)]) == 2
    finally:
        _routing.reload()


def test_tune_checks_the_folder_before_measuring(
    fake_measure: list[bool], tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    monkeypatch.setenv("XBACK_CACHE_DIR", str(blocker / "cache"))
    assert main(["tune"]) == 2
    err = capsys.readouterr().err
    assert "cannot write the routing table" in err and "XBACK_CACHE_DIR" in err
    assert "--output" in err and "Traceback" not in err
    if os.path.isdir("/sys/kernel") and os.geteuid() == 0:  # os.access says yes for root
        assert main(["tune", "--output", "/sys/kernel/routing-table.json"]) == 2
        assert "cannot write the routing table" in capsys.readouterr().err
    assert fake_measure == []  # nothing measured
    assert main(["tune", "--quick"]) == 0  # writes nothing: no folder needed
    assert fake_measure == [True]


def test_penalty_field_is_checked_and_kept() -> None:
    """The switching penalty (xback tune's ``penalty_seconds``): seconds >= 0 or null per
    caller's library, kept by the check; anything else makes the table invalid."""
    from xback import _table

    t = make_table("torch")
    t["entries"][0]["penalty_seconds"] = {"numpy": 1e-4, "torch": None}
    assert _table.check(t)["entries"][0]["penalty_seconds"] == {"numpy": 1e-4, "torch": None}
    for bad in ({"numpy": -1.0}, {"numpy": "big"}, {"dask": 0.0}, [0.0], {"numpy": 1e400}):
        t["entries"][0]["penalty_seconds"] = bad
        with pytest.raises(_table.TableError, match="penalty_seconds"):
            _table.check(t)
