"""The stop of `make run` waits a bounded time for the run's tasks to close, then stops the stack anyway."""

from __future__ import annotations

import asyncio

import pytest

from devstack import main


async def _sleep_through_cancellation(released: asyncio.Event) -> None:
    """A stream that will not close: it takes every cancellation until released."""
    while not released.is_set():
        try:
            await released.wait()
        except asyncio.CancelledError:
            pass


async def _start(*coroutines) -> list[asyncio.Task]:
    return [asyncio.create_task(coroutine) for coroutine in coroutines]


def test_a_stop_gives_up_on_a_task_that_will_not_close_and_says_so(monkeypatch: pytest.MonkeyPatch,
                                                                     capsys: pytest.CaptureFixture[str]) -> None:
    # given a run's loop with a task that takes every cancellation and one that closes when cancelled
    monkeypatch.setattr(main, "CLOSE_WAIT_S", 0.2)
    runner = asyncio.Runner()
    released = asyncio.Event()  # bound to the runner's loop when first awaited
    stuck, closing = runner.run(_start(_sleep_through_cancellation(released), asyncio.sleep(3600)))
    try:
        # when the stop cancels what is left
        closed = main._cancel_left(runner)

        # then it returns, the task that could close has, and it says a task is still closing
        assert closed is False
        assert closing.cancelled() and not stuck.done()
        assert "1 task(s) still closing after 0.2 s; stopping anyway" in capsys.readouterr().out
    finally:
        released.set()
        runner.get_loop().run_until_complete(stuck)
        runner.close()


def test_a_stop_closes_the_runner_when_every_task_has_closed() -> None:
    # given a run's loop with tasks that close when cancelled
    runner = asyncio.Runner()
    tasks = runner.run(_start(asyncio.sleep(3600), asyncio.sleep(3600)))

    # when the stop cancels what is left, then every task has ended and the runner may be closed
    assert main._cancel_left(runner) is True
    assert all(task.cancelled() for task in tasks)
    runner.close()
