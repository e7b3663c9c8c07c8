"""Fuzzing the routing-table loader: whatever sits at the table's path — any JSON in the
table's structure, any bytes, huge numbers, deep nesting, a FIFO, a device, a directory —
the outcome is a valid table from that file, or the shipped table and exactly one
``RuntimeWarning`` naming the file. Never an exception from a call or from ``xback info``,
never a hang (the cases that could hang run in child processes with a timeout).
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import xback
import xback.cli
from xback import _machine, _routing
from xback.bench import tune as tune_mod

try:
    import torch
except ImportError:  # pragma: no cover
    torch = None

NAME = "routing-table.json"


def base_table() -> dict[str, Any]:
    """A valid table for this machine that routes every measured case to the other library
    (so that the calls below take the routes of whatever the fuzzing left valid)."""
    entries = []
    seen = set()
    for case in tune_mod.cases(quick=True):
        if (case.op, case.layout, case.dtype) in seen:
            continue
        seen.add((case.op, case.layout, case.dtype))
        entries.append({"op": case.op, "layout": case.layout, "dtype": case.dtype,
                        "shape": list(case.shape), "size": 1, "arrays": case.arrays,
                        "seconds": {"numpy": 1e-3, "torch": 1e-4},
                        "confirmed": {"numpy": {"own": 1e-3, "torch": 1e-4}}})
    return {
        "format": _routing.TABLE_FORMAT,
        "created": "fuzz",
        "fingerprint": _machine.fingerprint(),
        "machine": {"cpu": "fuzz", "cores": 2},
        "libraries": {"numpy": np.__version__, "torch": "x"},
        "threads": {"blas": 2, "torch": 2},
        "fused": None,
        "convert_seconds": 0.0,
        "entries": entries,
    }


BASE = base_table()


@pytest.fixture(scope="module")
def cache(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    d = tmp_path_factory.mktemp("fuzz-cache")
    yield d
    _routing.reload()


@contextlib.contextmanager
def table_file(cache: Path, content: bytes) -> Iterator[Path]:
    """``content`` at the table's path of a cache folder in use by this process."""
    path = cache / NAME
    if path.is_symlink() or path.exists():
        path.unlink()
    path.write_bytes(content)
    old = os.environ.get("XBACK_CACHE_DIR")
    os.environ["XBACK_CACHE_DIR"] = str(cache)
    _routing.reload()
    try:
        yield path
    finally:
        if old is None:
            del os.environ["XBACK_CACHE_DIR"]
        else:
            os.environ["XBACK_CACHE_DIR"] = old
        _routing.reload()


def exercise() -> None:
    """Every routed operation, on NumPy and torch input: none may raise."""
    rng = np.random.default_rng(0)
    a = rng.integers(-50, 50, size=(8, 64))
    A, v, y = rng.standard_normal((40, 4)), rng.standard_normal(4), rng.standard_normal(40)
    inputs = [(a, A, v, y)]
    if torch is not None:
        inputs.append(
            tuple(torch.from_numpy(t.copy()) for t in (a, A, v, y))  # type: ignore[arg-type]
        )
    for xa, xA, xv, xy in inputs:
        np.testing.assert_array_equal(np.asarray(xback.sort(xa)), np.sort(a, kind="stable"))
        np.testing.assert_array_equal(np.asarray(xback.argsort(xa, axis=None)),
                                      np.argsort(a, axis=None, kind="stable"))
        s = np.asarray(xback.svdvals(xA))
        np.testing.assert_allclose(s, np.linalg.svd(A, compute_uv=False), rtol=1e-10)
        g = np.asarray(xback.lstsq_grad(xA, xv, xy))
        np.testing.assert_allclose(g, 2 * A.T @ (A @ v - y), rtol=1e-10, atol=1e-10)
    for src in ("numpy", "torch"):
        _routing.plan_summary(src)
    json.dumps(_routing.describe())


def outcome(path: Path, *, invalid: bool) -> dict[str, Any]:
    """Load the table at ``path`` with every call made; check the one rule and return the
    active table."""
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        act = _routing.active_table()
        exercise()
    ours = [x for x in w if issubclass(x.category, RuntimeWarning)
            and "routing table" in str(x.message)]
    if act["source"] == "user":
        assert not invalid, "an invalid table was accepted"
        assert act["problem"] is None and ours == []
    else:
        assert act["source"] == "default", act
        assert len(ours) == 1, [str(x.message) for x in ours]
        assert str(path) in str(ours[0].message) and str(path) in act["problem"]
    return act


def dumps(t: Any) -> bytes:
    return json.dumps(t).encode()


# -- any JSON value anywhere in the table's structure ------------------------------------------
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=12),
    lambda kids: st.lists(kids, max_size=3) | st.dictionaries(st.text(max_size=6), kids,
                                                              max_size=3),
    max_leaves=8,
)

TOP = sorted(BASE)
ENTRY = ["op", "layout", "dtype", "size", "arrays", "shape", "seconds", "confirmed"]
FP = sorted(BASE["fingerprint"])


@st.composite
def mutated(draw: st.DrawFn) -> dict[str, Any]:
    t = copy.deepcopy(BASE)
    where = draw(st.sampled_from(["top", "entry", "seconds", "confirmed", "fingerprint",
                                  "libraries"]))
    value = draw(json_values)
    if where == "top":
        t[draw(st.sampled_from(TOP))] = value
    elif where == "fingerprint":
        t["fingerprint"][draw(st.sampled_from(FP))] = value
    elif where == "libraries":
        t["libraries"][draw(st.sampled_from(["numpy", "torch", "dask", "jax", ""]))] = value
    else:
        e = t["entries"][draw(st.integers(0, len(t["entries"]) - 1))]
        if where == "entry":
            e[draw(st.sampled_from(ENTRY))] = value
        elif where == "seconds":
            e["seconds"][draw(st.sampled_from(["numpy", "torch", "fused", "dask", "own"]))] = value
        else:
            e["confirmed"]["numpy"][draw(st.sampled_from(["own", "torch", "dask"]))] = value
    return t


@given(t=mutated())
def test_any_json_in_the_structure(cache: Path, t: dict[str, Any]) -> None:
    with table_file(cache, dumps(t)) as path:
        outcome(path, invalid=False)


@given(data=st.binary(max_size=400))
def test_any_bytes(cache: Path, data: bytes) -> None:
    with table_file(cache, data) as path:
        outcome(path, invalid=True)


@given(cut=st.integers(1, len(json.dumps(BASE)) - 1))
def test_truncated(cache: Path, cut: int) -> None:
    with table_file(cache, json.dumps(BASE).encode()[:cut]) as path:
        outcome(path, invalid=True)


BAD_NUMBERS = ["NaN", "Infinity", "-Infinity", "1e400", "-1e400", "1" * 5000, "-1", "0.5",
               "1e-400", "true", '"big"', "[]", "{}", "null", '"1"']


@given(where=st.sampled_from(["size", "seconds", "confirmed", "convert_seconds", "cores"]),
       number=st.sampled_from(BAD_NUMBERS), i=st.integers(0, len(BASE["entries"]) - 1))
def test_huge_and_odd_numbers(cache: Path, where: str, number: str, i: int) -> None:
    marker = "__NUMBER__"
    t = copy.deepcopy(BASE)
    e = t["entries"][i]
    if where == "size":
        e["size"] = marker
    elif where == "seconds":
        e["seconds"]["torch"] = marker
    elif where == "confirmed":
        e["confirmed"]["numpy"]["own"] = marker
    elif where == "convert_seconds":
        if number in ("0.5", "1e-400"):  # valid there (non-negative, finite seconds)
            number = "-1"
        t["convert_seconds"] = marker
    else:
        t["fingerprint"]["cores"] = marker
    if where in ("seconds", "confirmed") and number == "0.5":
        number = "-0.5"  # 0.5 s is a valid time
    text = json.dumps(t).replace(f'"{marker}"', number)
    with table_file(cache, text.encode()) as path:
        outcome(path, invalid=True)


# -- the cases, explicitly -----------------------------------------------------------------
def _entry0(**kw: Any) -> dict[str, Any]:
    t = copy.deepcopy(BASE)
    t["entries"][0].update(kw)
    return t


EXPLICIT = {
    "size as a string": dumps(_entry0(size="big")),
    "seconds a number": dumps(_entry0(seconds=5)),
    "seconds naming dask": dumps(_entry0(seconds={"numpy": 1e-3, "dask": 1e-6})),
    "libraries naming dask": dumps({**BASE, "libraries": {"numpy": "2", "dask": "1"}}),
    "a list for the op": dumps(_entry0(op=["sort"])),
    "a list for the dtype": dumps(_entry0(dtype=["float32"])),
    "an unknown dtype": dumps(_entry0(dtype="complex128")),
    "a bool size": dumps(_entry0(size=True)),
    "no fingerprint": dumps({k: v for k, v in BASE.items() if k != "fingerprint"}),
    "confirmed without own": dumps(_entry0(confirmed={"numpy": {"torch": 1e-4}})),
    "entries not a list": dumps({**BASE, "entries": {"a": 1}}),
    "not an object": b"[1, 2, 3]",
    "empty": b"",
    "binary": bytes(range(256)) * 4,
    "deep nesting 100000": b"[" * 100_000 + b"]" * 100_000,
    "deep nesting in a field": (json.dumps({**BASE, "machine": "X"}).replace(
        '"X"', "[" * 50_000 + "]" * 50_000)).encode(),
    "deep but parseable": json.dumps({**BASE, "machine": "X"}).replace(
        '"X"', "[" * 900 + "]" * 900).encode(),
    "UTF-8 BOM": b"\xef\xbb\xbf" + dumps(BASE),
    "too many entries": dumps({**BASE, "entries": BASE["entries"] * 800}),
}


@pytest.mark.parametrize("content", EXPLICIT.values(), ids=EXPLICIT.keys())
def test_invalid_tables_fall_back_with_one_warning(cache: Path, content: bytes) -> None:
    with table_file(cache, content) as path:
        outcome(path, invalid=True)


def test_the_base_table_is_valid_and_routes(cache: Path) -> None:
    with table_file(cache, dumps(BASE)) as path:
        act = outcome(path, invalid=False)
        assert act["applies"] and _routing.plan_summary("numpy")


def test_warned_once_per_load(cache: Path) -> None:
    with table_file(cache, b"{") as path, warnings.catch_warnings(record=True) as w:
        warnings.simplefilter("always")
        for _ in range(3):
            xback.sort(np.arange(10))
            _routing.describe()
        assert len([x for x in w if str(path) in str(x.message)]) == 1


# -- special files ---------------------------------------------------------------------------
def test_directory_and_oversized_file(cache: Path) -> None:
    with table_file(cache, b"") as path:
        path.unlink()
        path.mkdir()
        try:
            act = outcome(path, invalid=True)
            assert "a directory" in act["problem"]
        finally:
            path.rmdir()
    with table_file(cache, b"") as path:
        with open(path, "wb") as f:
            f.truncate(5 * 1024 * 1024)  # sparse: nothing is written
        act = outcome(path, invalid=True)
        assert "limit" in act["problem"]


def _in_child(cache_dir: Path, timeout: float = 60) -> dict[str, Any]:
    """Load the table of ``cache_dir`` in a forked child (no re-import: milliseconds) and
    make every call there; the child's report, or a failure if it does not answer within
    ``timeout`` seconds (then it is killed)."""
    import select

    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns into pytest
        code = 1
        try:
            os.close(r)
            os.environ["XBACK_CACHE_DIR"] = str(cache_dir)
            _routing.reload()
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                act = _routing.active_table()
                # the plans are built as usual, but nothing runs on torch's thread pool in
                # a forked child (where the shipped table applies, it would route)
                with xback.use(route=False):
                    xback.sort(np.arange(5000)[::-1].copy())
                    xback.svdvals(np.eye(20))
                    xback.lstsq_grad(np.ones((50, 5)), np.ones(5), np.ones(50))
                info = xback.cli.info_dict()["routing"]
            report = {"source": act["source"], "problem": act["problem"],
                      "info_problem": info["problem"],
                      "warnings": [str(x.message) for x in caught
                                   if issubclass(x.category, RuntimeWarning)
                                   and "routing table" in str(x.message)]}
            os.write(w, json.dumps(report).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    try:
        ready, _, _ = select.select([r], [], [], timeout)
        if not ready:
            os.kill(pid, 9)
            pytest.fail(f"the table loader hung on {cache_dir.name}")
        with os.fdopen(r, "rb") as f:
            data = f.read()
    finally:
        _, status = os.waitpid(pid, 0)
    assert status == 0 and data, f"the child failed on {cache_dir.name}"
    result: dict[str, Any] = json.loads(data)
    return result


def _special(base: Path, name: str) -> Path | None:
    """A cache folder whose table path is the special file ``name``, or None where this
    system cannot make it."""
    d = base / name
    d.mkdir()
    p = d / NAME
    if name == "fifo" and hasattr(os, "mkfifo"):
        os.mkfifo(p)
    elif name.startswith("dev-") and os.path.exists(f"/dev/{name[4:]}"):
        os.symlink(f"/dev/{name[4:]}", p)
    elif name == "unreadable":
        p.write_bytes(b"\x00garbage")  # invalid even where root can read it
        p.chmod(0)
    else:
        return None
    return d


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
@pytest.mark.parametrize(("name", "problem"), [("fifo", "a FIFO, not a regular file"),
                                               ("dev-zero", "a character device"),
                                               ("dev-urandom", "a character device"),
                                               ("unreadable", "")])
def test_special_files_never_hang(tmp_path: Path, name: str, problem: str) -> None:
    """Each in a forked child, bounded in time; ``xback info``'s routing part too."""
    d = _special(tmp_path, name)
    if d is None:
        pytest.skip(f"this system has no {name}")
    r = _in_child(d)
    assert r["source"] == "default", r
    assert len(r["warnings"]) == 1 and str(d / NAME) in r["warnings"][0], r
    assert problem in r["problem"] and problem in r["info_problem"], r
