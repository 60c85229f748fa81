"""A lock-free event bus on a sequenced runner.

Subscribing and publishing are tasks posted to one sequence: the handler table
and the state the handlers share need no lock, and events are delivered one at
a time, in publishing order. A handler may publish further events, queued after
those already published. Publishing never blocks and works from any runner.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import trio

import trunner


@dataclasses.dataclass(frozen=True)
class Event:
    topic: str
    item: str
    quantity: int = 0


Handler = Callable[[Event], None]


class EventBus:
    """Delivers each event to the topic's handlers, in order, on one sequence."""

    def __init__(self, runner: trunner.SequencedTaskRunner) -> None:
        self._runner = runner
        self._handlers: dict[str, list[Handler]] = {}
        self._checker = trunner.SequenceChecker()

    def subscribe(self, topic: str, handler: Handler) -> None:
        self._runner.post_task(self._add, topic, handler)

    def publish(self, event: Event) -> None:
        self._runner.post_task(self._dispatch, event)

    def _add(self, topic: str, handler: Handler) -> None:
        self._checker.check()
        self._handlers.setdefault(topic, []).append(handler)

    def _dispatch(self, event: Event) -> None:
        self._checker.check()
        for handler in self._handlers.get(event.topic, []):
            handler(event)


async def main() -> None:
    stock = {"tea": 3, "mug": 1}  # touched only by handlers, on the bus sequence
    async with trunner.open_scheduler() as scheduler:
        bus_runner = scheduler.create_sequenced_runner(name="bus")
        bus = EventBus(bus_runner)

        def reserve(event: Event) -> None:
            item, quantity = event.item, event.quantity
            if stock[item] < quantity:
                print(f"inventory: {quantity} x {item}? only {stock[item]} left")
                bus.publish(Event("stock.low", item, quantity))
            else:
                stock[item] -= quantity
                print(f"inventory: {quantity} x {item} reserved, {stock[item]} left")
                bus.publish(Event("order.reserved", item, quantity))

        def restock(event: Event) -> None:
            stock[event.item] += 5
            print(f"restock:   {event.item} up to {stock[event.item]}, order again")
            bus.publish(Event("order.placed", event.item, event.quantity))

        def invoice(event: Event) -> None:
            print(f"billing:   invoice for {event.quantity} x {event.item}")

        bus.subscribe("order.placed", reserve)
        bus.subscribe("order.reserved", invoice)
        bus.subscribe("stock.low", restock)

        async def place_order(item: str, quantity: int) -> None:
            await trio.sleep(0.01 * quantity)  # the web request that takes the order
            bus.publish(Event("order.placed", item, quantity))

        async with scheduler.open_parallel_runner(max_concurrency=4) as web:
            for item, quantity in [("tea", 2), ("mug", 1), ("tea", 3), ("mug", 4)]:
                web.post_task(place_order, item, quantity)
            await web.wait_idle()
        await bus_runner.wait_idle()  # events published by handlers included
        print(f"all events handled, stock is now {stock}")


if __name__ == "__main__":
    trio.run(main)
