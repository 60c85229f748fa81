"""ResultSubscription as an async API: checkpoints and cancellation."""

from __future__ import annotations

import attrs
import pytest
import trio
import trio.testing

import trunner


async def test_wait_room_is_a_checkpoint_when_there_is_room() -> None:
    async with (
        trunner.open_sequenced_runner() as runner,
        runner.subscribe_results(buffer=1, policy=trunner.DropPolicy.BLOCK) as results,
    ):
        with trio.testing.assert_checkpoints():
            await results.wait_room()


async def test_wait_room_is_a_checkpoint_when_closed() -> None:
    async with trunner.open_sequenced_runner() as runner:
        results = runner.subscribe_results(buffer=1)
        results.close()

        with trio.testing.assert_checkpoints():
            await results.wait_room()


async def test_wait_room_waits_for_a_reader_and_can_be_cancelled(
    autojump_clock: trio.testing.MockClock,
) -> None:
    del autojump_clock
    async with (
        trunner.open_sequenced_runner() as runner,
        runner.subscribe_results(buffer=1, policy=trunner.DropPolicy.BLOCK) as results,
    ):
        await runner.run(lambda: 1)
        with trio.move_on_after(1) as scope:
            await results.wait_room()  # the buffer is full: nobody reads

        assert scope.cancelled_caught
        first = await results.__anext__()
        assert first.value == 1
        with trio.testing.assert_checkpoints():
            await results.wait_room()


async def test_subscription_enter_is_a_checkpoint_and_exit_closes() -> None:
    async with trunner.open_sequenced_runner() as runner:
        subscription = runner.subscribe_results()

        with trio.testing.assert_checkpoints():
            async with subscription as results:
                assert results is subscription
                assert not results.closed

        assert subscription.closed


async def test_subscription_exit_lets_the_block_error_through_unwrapped() -> None:
    async with trunner.open_sequenced_runner() as runner:
        subscription = runner.subscribe_results()

        with pytest.raises(KeyError):
            async with subscription:
                raise KeyError("body")

        assert subscription.closed


async def test_results_are_the_frozen_attrs_class_with_every_field_set() -> None:
    # The runner makes its results without TaskResult.__init__ (a draft whose
    # class is then set): they must be the same objects __init__ would make.
    def fail() -> None:
        raise ValueError("boom")

    seen: list[trunner.TaskResult] = []
    hooks = trunner.TaskHooks(on_finish=lambda task, result: seen.append(result))
    async with trunner.open_sequenced_runner(hooks=hooks) as runner:
        runner.post_task(lambda: 1, name="one")
        runner.post_task(fail)
        runner.post_task(lambda: 3).cancel()
        await runner.wait_idle()

    assert [result.state for result in seen] == [
        trunner.TaskState.CANCELLED,
        trunner.TaskState.SUCCEEDED,
        trunner.TaskState.FAILED,
    ]
    for result in seen:
        assert type(result) is trunner.TaskResult
        fields = attrs.asdict(result, recurse=False)  # raises for an unset slot
        rebuilt = trunner.TaskResult(**fields)
        assert rebuilt == result
        assert hash(rebuilt) == hash(result)
        assert repr(rebuilt) == repr(result)
        with pytest.raises(attrs.exceptions.FrozenInstanceError):
            result.name = "renamed"  # type: ignore[misc]  # pyright: ignore[reportAttributeAccessIssue]
    assert seen[1].name == "one"
    assert seen[1].value == 1
    assert isinstance(seen[2].error, ValueError)
    assert seen[0].attempts == 0
    assert seen[0].started_at is None
