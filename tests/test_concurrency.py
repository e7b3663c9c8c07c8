"""``xback.use`` under concurrency: one ``use`` object shared by many threads and asyncio
tasks (issue 18, item 11), and ``@use`` on generators and async generators (item 10).

Every scenario is bounded in time: threads are joined with a timeout, event loops run under
``asyncio.wait_for``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import AsyncIterator, Iterator
from typing import Any

import pytest

import xback as xb
from tests.conftest import requires_torch

pytestmark = requires_torch

TIMEOUT = 60.0


def _run_threads(target: Any, n: int) -> list[BaseException]:
    """Run ``target(i)`` in ``n`` threads; return the exceptions they raised."""
    errors: list[BaseException] = []

    def run(i: int) -> None:
        try:
            target(i)
        except BaseException as exc:  # reported to the test
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,), daemon=True) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(TIMEOUT)
    assert not any(t.is_alive() for t in threads), "a thread hung"
    return errors


def test_one_use_object_entered_from_two_threads() -> None:
    """The issue's scenario: both threads inside ``with u:`` at once; both exits work and
    both threads end on the default backend."""
    u = xb.use("torch")
    entered = [threading.Event(), threading.Event()]
    exited = threading.Event()
    after: list[str] = []

    def body(i: int) -> None:
        if i == 1:
            entered[0].wait(TIMEOUT)
        with u:
            entered[i].set()
            entered[1 - i].wait(TIMEOUT)  # both inside before either exits
            assert xb.get_backend() == "torch"
            if i == 1:
                exited.wait(TIMEOUT)  # the thread that entered first exits first
        if i == 0:
            exited.set()
        after.append(xb.get_backend())

    assert _run_threads(body, 2) == []
    assert after == ["numpy", "numpy"]
    assert xb.get_backend() == "numpy"


def test_shared_use_objects_stress_threads() -> None:
    """Many threads entering the same two ``use`` objects, nested both ways, interleaved."""
    to_torch, to_numpy = xb.use("torch", device="cpu"), xb.use("numpy")
    start = threading.Barrier(8, timeout=TIMEOUT)

    def body(i: int) -> None:
        start.wait()
        outer, inner = (to_torch, to_numpy) if i % 2 else (to_numpy, to_torch)
        for _ in range(200):
            with outer:
                assert xb.get_backend() == outer._backend.name  # type: ignore[union-attr]
                time.sleep(0)  # let another thread enter and leave the same objects meanwhile
                with inner:
                    assert xb.get_backend() == inner._backend.name  # type: ignore[union-attr]
                    time.sleep(0)
                    with inner:  # the same object twice in one thread
                        assert xb.get_backend() == inner._backend.name  # type: ignore[union-attr]
                    assert xb.get_backend() == inner._backend.name  # type: ignore[union-attr]
                assert xb.get_backend() == outer._backend.name  # type: ignore[union-attr]
            assert xb.get_backend() == "numpy" and xb.get_device() is None

    assert _run_threads(body, 8) == []


async def _task_body(u: Any, v: Any, rounds: int) -> list[str]:
    seen = []
    for _ in range(rounds):
        with u:
            await asyncio.sleep(0)  # another task enters and leaves u meanwhile
            seen.append(xb.get_backend())
            with v:
                await asyncio.sleep(0)
                seen.append(xb.get_backend())
            await asyncio.sleep(0)
            seen.append(xb.get_backend())
        seen.append(xb.get_backend())
    return seen


def test_shared_use_objects_stress_asyncio_tasks() -> None:
    u, v = xb.use("torch"), xb.use("numpy", device="cpu")

    async def main() -> list[list[str]]:
        return await asyncio.gather(*(_task_body(u, v, 50) for _ in range(20)))

    results = asyncio.run(asyncio.wait_for(main(), TIMEOUT))
    for seen in results:
        assert seen == ["torch", "numpy", "torch", "numpy"] * 50
    assert xb.get_backend() == "numpy"


def test_shared_use_objects_threads_running_event_loops() -> None:
    """Threads, each with an event loop of tasks, all sharing the same ``use`` objects."""
    u, v = xb.use("torch"), xb.use("numpy")

    def body(i: int) -> None:
        async def main() -> list[list[str]]:
            with u:  # a task created inside inherits the block; its own blocks stay its own
                return await asyncio.gather(*(_task_body(u, v, 20) for _ in range(5)))

        for seen in asyncio.run(asyncio.wait_for(main(), TIMEOUT)):
            assert seen == ["torch", "numpy", "torch", "torch"] * 20
        assert xb.get_backend() == "numpy"

    assert _run_threads(body, 4) == []


def test_exit_in_a_thread_that_did_not_enter_is_a_clear_error() -> None:
    u = xb.use("torch")
    u.__enter__()
    try:
        errors = _run_threads(lambda i: u.__exit__(None, None, None), 1)
        assert len(errors) == 1 and isinstance(errors[0], RuntimeError)
        assert "did not enter it" in str(errors[0])
        assert xb.get_backend() == "torch"  # this thread's block is still open
    finally:
        u.__exit__(None, None, None)
    assert xb.get_backend() == "numpy"


# -- @use on generators ----------------------------------------------------------------------
def test_decorated_generator_runs_under_the_choice() -> None:
    """Item 10: the body runs under the decorator's choice at every resumption, the caller
    keeps its own between them, send/throw/close reach the body, and the return value too."""
    log: list[str] = []

    @xb.use("torch", device="meta")
    def gen(n: int) -> Iterator[tuple[str, Any]]:
        try:
            got = None
            for _ in range(n):
                try:
                    got = yield xb.get_backend(), got
                except KeyError:  # noqa: PERF203 - the throw() under test
                    log.append("caught:" + xb.get_backend())
                    got = "thrown"
            return "done:" + xb.get_backend()
        finally:
            log.append("finally:" + xb.get_backend() + ":" + str(xb.get_device()))

    g = gen(3)
    assert next(g) == ("torch", None)
    assert xb.get_backend() == "numpy"  # the caller's choice between resumptions
    with xb.use("numpy"):
        assert g.send("a") == ("torch", "a")
        assert xb.get_backend() == "numpy"
    assert g.throw(KeyError("k")) == ("torch", "thrown")
    assert log == ["caught:torch"]
    with pytest.raises(StopIteration) as stop:
        g.send("b")
    assert stop.value.value == "done:torch"
    assert log == ["caught:torch", "finally:torch:meta"]

    g2 = gen(5)
    next(g2)
    g2.close()  # the body's finally runs under the choice too
    assert log[-1] == "finally:torch:meta"
    assert xb.get_backend() == "numpy"

    g3 = gen(5)
    next(g3)
    with pytest.raises(ValueError, match="boom"):
        g3.throw(ValueError("boom"))  # not caught in the body: propagates
    assert xb.get_backend() == "numpy"
    assert list(gen(2)) == [("torch", None), ("torch", None)]


def test_decorated_generator_keeps_its_own_open_block() -> None:
    """A ``use`` block of the generator's own, left open across a yield, holds again at the
    next resumption, and never leaks into the caller."""

    @xb.use("torch")
    def gen() -> Iterator[str]:
        yield xb.get_backend()
        with xb.use("numpy"):
            yield xb.get_backend()
            yield xb.get_backend()
        yield xb.get_backend()

    g = gen()
    got = []
    for value in g:
        got.append(value)
        assert xb.get_backend() == "numpy"
        with xb.use("torch"):  # the caller's own blocks between resumptions
            assert xb.get_backend() == "torch"
    assert got == ["torch", "numpy", "numpy", "torch"]
    assert xb.get_backend() == "numpy"


def test_decorated_generator_under_a_caller_block() -> None:
    """Created under one choice, resumed under another: the decorator's choice wins inside,
    the caller's own holds outside; ``use(device=...)`` alone keeps the caller's backend."""

    @xb.use(device="meta")
    def gen() -> Iterator[tuple[str, Any]]:
        while True:
            yield xb.get_backend(), xb.get_device()

    g = gen()
    with xb.use("torch"):
        assert next(g) == ("torch", "meta")
    assert next(g) == ("numpy", "meta")  # no backend chosen: the raw device, for the inputs
    g.close()


def test_decorated_async_generator_runs_under_the_choice() -> None:
    log: list[str] = []

    @xb.use("torch")
    async def agen(n: int) -> AsyncIterator[tuple[str, Any]]:
        try:
            got = None
            for _ in range(n):
                await asyncio.sleep(0)
                try:
                    got = yield xb.get_backend(), got
                except KeyError:
                    log.append("caught:" + xb.get_backend())
                    got = "thrown"
        finally:
            log.append("finally:" + xb.get_backend())

    async def main() -> None:
        g = agen(4)
        assert await g.__anext__() == ("torch", None)
        assert xb.get_backend() == "numpy"
        with xb.use("numpy"):
            assert await g.asend("a") == ("torch", "a")
        assert await g.athrow(KeyError("k")) == ("torch", "thrown")
        assert log == ["caught:torch"]
        await g.aclose()
        assert log == ["caught:torch", "finally:torch"]
        assert xb.get_backend() == "numpy"
        assert [v async for v in agen(2)] == [("torch", None), ("torch", None)]

        # two tasks iterating decorated generators at once
        async def consume() -> list[str]:
            return [b async for b, _ in agen(20)]

        both = await asyncio.gather(consume(), consume())
        assert both == [["torch"] * 20] * 2
        assert xb.get_backend() == "numpy"

    asyncio.run(asyncio.wait_for(main(), TIMEOUT))


def test_decorated_generator_shared_by_threads() -> None:
    """A decorated generator function called from many threads at once."""

    @xb.use("torch")
    def gen() -> Iterator[str]:
        for _ in range(50):
            yield xb.get_backend()

    def body(i: int) -> None:
        for value in gen():
            assert value == "torch"
            assert xb.get_backend() == "numpy"

    assert _run_threads(body, 6) == []
