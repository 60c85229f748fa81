# pyright: reportPrivateUsage=false
# White-box tests: they read the workers and the metrics' samples.
from __future__ import annotations

import pytest
import trio
import trio.testing

import trunner
from trunner import Priority, TaskState, TaskTraits


async def test_parallel_runs_up_to_max_concurrency(
    autojump_clock: trio.abc.Clock,
) -> None:
    running = 0
    peak = 0

    async def task() -> None:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        await trio.sleep(1)
        running -= 1

    async with trunner.open_parallel_runner(max_concurrency=3) as runner:
        for _ in range(10):
            runner.post_task(task)
        await runner.wait_idle()

    assert peak == 3
    assert trio.current_time() == 4


async def test_parallel_pending_tasks_start_highest_priority_first(
    autojump_clock: trio.abc.Clock,
) -> None:
    order: list[str] = []

    async with trunner.open_parallel_runner(max_concurrency=1) as runner:
        runner.post_task(trio.sleep, 1)
        await trio.testing.wait_all_tasks_blocked()
        for name, priority in [
            ("best1", Priority.BEST_EFFORT),
            ("vis1", Priority.USER_VISIBLE),
            ("block1", Priority.USER_BLOCKING),
            ("vis2", Priority.USER_VISIBLE),
            ("block2", Priority.USER_BLOCKING),
            ("best2", Priority.BEST_EFFORT),
        ]:
            runner.post_task(order.append, name, traits=TaskTraits(priority=priority))
        await runner.wait_idle()

    assert order == ["block1", "block2", "vis1", "vis2", "best1", "best2"]


async def test_parallel_each_task_is_its_own_sequence() -> None:
    async with trunner.open_parallel_runner(max_concurrency=2) as runner:
        checker = await runner.run(trunner.SequenceChecker)
        with pytest.raises(trunner.SequenceViolationError):
            await runner.run(checker.check)
        assert await runner.run(trunner.current_runner) is runner


async def test_parallel_workers_are_spawned_on_demand(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with trunner.open_parallel_runner(max_concurrency=8) as runner:
        for _ in range(3):
            runner.post_task(trio.sleep, 1)
        await trio.testing.wait_all_tasks_blocked()

        assert len(runner._workers) == 3
        assert runner.statistics().running == 3


async def test_parallel_cancel_running_task_leaves_others(
    autojump_clock: trio.abc.Clock,
) -> None:
    async with trunner.open_parallel_runner(max_concurrency=2) as runner:
        a = runner.post_task(trio.sleep, 5)
        b = runner.post_task(trio.sleep, 5)
        await trio.sleep(1)
        a.cancel()
        await runner.wait_idle()

    assert a.state is TaskState.CANCELLED
    assert b.state is TaskState.SUCCEEDED
    assert trio.current_time() == 5


async def test_parallel_tasks_that_never_yield_still_share_the_loop() -> None:
    ticks: list[int] = []
    counter = 0

    def busy() -> None:
        ticks.append(counter)

    async def ticker() -> None:
        nonlocal counter
        while True:
            counter += 1
            await trio.lowlevel.checkpoint()

    async with (
        trio.open_nursery() as nursery,
        trunner.open_parallel_runner(max_concurrency=1) as runner,
    ):
        nursery.start_soon(ticker)
        for _ in range(200):
            runner.post_task(busy)
        await runner.wait_idle()
        nursery.cancel_scope.cancel()

    assert ticks[-1] > ticks[0]


async def test_max_concurrency_is_validated() -> None:
    async with trunner.open_scheduler() as scheduler:
        with pytest.raises(ValueError, match="max_concurrency"):
            scheduler.create_parallel_runner(max_concurrency=0)
        with pytest.raises(TypeError, match="max_concurrency"):
            scheduler.create_parallel_runner(max_concurrency=1.5)  # type: ignore[arg-type]  # on purpose
        assert scheduler.create_parallel_runner(max_concurrency=4).max_concurrency == 4


async def test_may_block_sync_task_runs_in_a_worker_thread() -> None:
    import threading

    main = threading.get_ident()
    blocking = TaskTraits(may_block=True)
    async with trunner.open_parallel_runner(max_concurrency=2) as runner:
        inline = await runner.run(threading.get_ident)
        offloaded = await runner.post_task(threading.get_ident, traits=blocking).wait()

    assert inline == main
    assert offloaded != main


async def test_may_block_runner_default_offloads_sync_but_not_async() -> None:
    import threading

    main = threading.get_ident()

    async def async_ident() -> int:
        return threading.get_ident()

    async with trunner.open_sequenced_runner(
        traits=TaskTraits(may_block=True)
    ) as runner:
        assert await runner.run(threading.get_ident) != main
        assert await runner.run(async_ident) == main


async def test_metrics_memory_stays_bounded_while_never_idle() -> None:
    from trunner._metrics import FOLD_AT

    held: list[int] = []
    async with trunner.open_parallel_runner(max_concurrency=2) as runner:

        def record() -> None:
            held.append(
                len(runner._ledger.wait_times.samples)
                + len(runner._ledger.run_times.samples)
            )

        for i in range(20_000):
            runner.post_task(record if i % 1000 == 999 else int)
        await runner.wait_idle()

    assert max(held) < 2 * (FOLD_AT + 64)
    assert runner.metrics().run_time.count == 20_000
