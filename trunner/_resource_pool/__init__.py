"""ResourcePool: workers that each own an expensive resource (DESIGN.md section 8).

The package holds one concern per module, importing only downward:

- ``_records``: the pool's states, the call and worker records, the ledger of
  counters every part writes, and the tuning constants;
- ``_handoff``: the two FIFOs of calls and the stack of idle workers, where a
  call meets its worker, and the answer to each caller;
- ``_workers``: the worker tasks, making, serving and destroying resources, and
  their health (sick resources, ``create()`` backoff, crash loops);
- ``_burst``: the task that adds burst workers while calls pile up;
- ``_pool``: `ResourcePool`, the public facade over those parts;
- ``_open``: `open_resource_pool`, which checks its arguments and opens one.
"""

from ._open import open_resource_pool as open_resource_pool
from ._pool import PoolStatistics as PoolStatistics
from ._pool import ResourcePool as ResourcePool
from ._records import BACKOFF_INITIAL as BACKOFF_INITIAL
from ._records import BACKOFF_MAX as BACKOFF_MAX
from ._records import BATCH as BATCH
from ._records import BURST_WINDOW as BURST_WINDOW
from ._records import CRASH_LOOP_FAILURES as CRASH_LOOP_FAILURES
from ._records import DESTROY_TIMEOUT as DESTROY_TIMEOUT
from ._records import RETIRE_INTERVALS as RETIRE_INTERVALS
