# pyright: reportPrivateUsage=false
# A white-box test: it reads a SequenceLocal's values.
from __future__ import annotations

import gc

import pytest
import trio

import trunner


async def test_checker_made_in_a_task_is_bound_to_its_sequence() -> None:
    async with trunner.open_scheduler() as scheduler:
        a = scheduler.create_sequenced_runner()
        b = scheduler.create_sequenced_runner()
        checker = await a.run(trunner.SequenceChecker)

        await a.run(checker.check)
        assert await a.run(checker.called_on_valid_sequence)
        with pytest.raises(trunner.SequenceViolationError):
            await b.run(checker.check)
        with pytest.raises(trunner.SequenceViolationError, match="outside any runner"):
            checker.check()


async def test_checker_made_outside_binds_to_first_sequence_and_detaches() -> None:
    async with trunner.open_scheduler() as scheduler:
        a = scheduler.create_sequenced_runner()
        b = scheduler.create_sequenced_runner()
        checker = trunner.SequenceChecker()

        await b.run(checker.check)
        assert not await a.run(checker.called_on_valid_sequence)
        checker.detach()
        await a.run(checker.check)
        with pytest.raises(trunner.SequenceViolationError):
            await b.run(checker.check)


async def test_sequence_local_is_per_sequence() -> None:
    local: trunner.SequenceLocal[int] = trunner.SequenceLocal(default=0)
    async with trunner.open_scheduler() as scheduler:
        a = scheduler.create_sequenced_runner()
        b = scheduler.create_sequenced_runner()
        par = scheduler.create_parallel_runner(max_concurrency=2)

        await a.run(local.set, 1)
        await b.run(local.set, 2)
        assert await a.run(local.get) == 1
        assert await b.run(local.get) == 2
        await par.run(local.set, 3)
        assert await par.run(local.get) == 0  # a new task, a new sequence
        await a.run(local.reset)
        assert await a.run(local.get) == 0
        with pytest.raises(trunner.NoCurrentRunnerError):
            local.get()


async def test_sequence_local_without_default_raises_lookup_error() -> None:
    local: trunner.SequenceLocal[str] = trunner.SequenceLocal()
    async with trunner.open_sequenced_runner() as runner:
        with pytest.raises(LookupError):
            await runner.run(local.get)


async def test_sequence_local_values_go_away_with_the_sequence() -> None:
    local: trunner.SequenceLocal[object] = trunner.SequenceLocal(default=None)
    async with trunner.open_parallel_runner(max_concurrency=1) as runner:
        for _ in range(10):
            await runner.run(local.set, object())
    gc.collect()

    assert len(local._values) == 0
    await trio.lowlevel.checkpoint()
