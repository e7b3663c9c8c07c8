"""The benchmark harness (xback.bench._harness) and the tune's timing rules: what is timed
how, independent of the machine's speed."""

from __future__ import annotations

import itertools
import time

from xback.bench import tune as tune_mod
from xback.bench._harness import WARM_SECONDS, Candidate, measure


def _recorder(log: list[str], name: str, seconds: float = 0.0) -> Candidate:
    def fn() -> None:
        log.append(name)
        if seconds:
            time.sleep(seconds)

    return Candidate(name, fn)


def test_interleaved_round_robin() -> None:
    log: list[str] = []
    rows = measure([_recorder(log, "a"), _recorder(log, "b")], repeat=4, sample_time=0.001)
    assert [r["candidate"] for r in rows] == ["a", "b"]
    assert all(len(r["samples_s"]) == 4 and r["repeat"] == 4 for r in rows)
    timed = [k for k, _ in itertools.groupby(log)][-8:]  # after the calibration calls
    assert timed == ["a", "b"] * 4


def test_warm_blocks() -> None:
    """warm_s > 0: each candidate's samples in a block after warm_s of untimed calls, two
    rounds, the second in reverse order; every sample still counted."""
    log: list[str] = []
    cands = [_recorder(log, "a", 0.002), _recorder(log, "b", 0.002)]
    t0 = time.perf_counter()
    rows = measure(cands, repeat=5, sample_time=0.001, warm_s=0.02)
    took = time.perf_counter() - t0
    assert all(len(r["samples_s"]) == 5 for r in rows)
    runs = [k for k, _ in itertools.groupby(log)]
    # round 1: a then b; round 2: b then a (b's two blocks adjoin)
    assert runs[-3:] == ["a", "b", "a"]
    assert took >= 4 * 0.02  # four warm periods
    # each block: the warm-up calls (0.02 s of >= 2 ms calls: a few) and then its samples
    blocks = [len(list(g)) for _, g in itertools.groupby(log)][-3:]
    assert blocks[0] >= 3 + 3 and blocks[1] >= 2 * 3 + 5 and blocks[2] >= 3 + 2


def test_tune_warms_only_multithreaded_large_cases() -> None:
    def case(op: str, dtype: str, shape: tuple[int, ...]) -> tune_mod.Case:
        return tune_mod.Case(op, "x", dtype, shape, 2)

    W = WARM_SECONDS
    assert tune_mod._warm_seconds(case("sort", "float64", (1 << 20,))) == 0.0
    assert tune_mod._warm_seconds(case("svd", "float32", (80, 8))) == 0.0
    assert tune_mod._warm_seconds(case("svd", "float64", (64, 64))) == W  # 32 KB
    assert tune_mod._warm_seconds(case("lstsq_grad", "float64", (1280, 128))) == W  # 1.3 MB
    assert tune_mod._warm_seconds(case("lstsq_grad", "float32", (1280, 128))) == 0.0
    assert W > 0.1  # longer than OpenBLAS's idle threads spin after a call
    for c in tune_mod.cases():  # every measured case has a rule
        assert tune_mod._warm_seconds(c) in (0.0, W)
