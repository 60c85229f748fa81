"""The parts a runner is made of; `TaskRunner` (``_abc``) is the facade over them.

Like trio's ``Runner``, which holds its ``Deadlines``, ``Instruments`` and
``EntryQueue`` as objects, a runner holds one object per concern:

- ``_core``: the base of `TaskRunner`, which holds the parts below, makes and
  wires them, and declares the hooks through which each kind of runner brings
  its queue and consumers (`RunnerCore`);
- ``_intake``: the checks of every kind of post, the refusals (closed,
  full), and the admission of a handle, also from other threads (`Intake`);
- ``_sending``: the posts that wait: ``send_task`` for room in a full runner,
  ``run`` for the task's end (`Sending`);
- ``_ledger``: the task counters, the live tasks, the duration samples and
  rates, and the start and end of each task (`Ledger`);
- ``_ends``: who hears of a task's end: done callbacks, ``on_finish`` hooks,
  subscribers, barriers, idle waiters (`TaskEnds`);
- ``_timers``: the heap of delayed and repeating tasks and the one timer task
  that serves it (`TimerHeap`);
- ``_barriers``: flushes and idle waits (`Barriers`);
- ``_fanout``: the result subscriptions and what BLOCK subscribers had no room
  for (`ResultFanout`);
- ``_closing``: the graceful close, the shutdown, cancelling every task, and
  what is settled once the consumers have ended (`Closing`);
- ``_environment``: what the scheduler hands each runner: its slot limiter,
  thread-call accounting, hooks, and the close notification
  (`RunnerEnvironment`).

The parts, ``_core`` included, import ``_abc`` and ``_scheduler`` for types
only: they get callbacks and plain values when they are made, and talk
through plain-named fields and methods. The consumer loops read the parts'
fields (hot paths); timers, closing, flushes, subscriptions and posts from
other threads call their methods (cold paths).
"""
