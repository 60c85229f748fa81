"""The ``trunner`` command: run a job worker, inspect and manage durable jobs.

``trunner worker MODULE:REGISTRY --store URL`` runs a `trunner.jobs.JobManager`
worker until SIGINT or SIGTERM; ``trunner jobs list|show|cancel|retry|delete|
purge|watch --store URL`` inspects and manages the jobs of a store;
``trunner serve`` serves them over HTTP (`trunner.service`). ``trunner`` and
``python -m trunner`` run `main` through `trunner.__main__`, which imports
this package only then.

Parsing uses argparse and the standard library only (`._parse`): ``--help``
and usage errors load nothing of the manager, the stores, rich or the
service. Once the arguments parse, `._main` imports the verbs (`._verbs`,
`._worker`), which open a store (`._stores`) and print with rich (`._views`,
part of the ``trunner[jobs]`` extra, imported when a verb prints).

Exit codes (`._report`): 0 success; 1 the operation failed (no such job, a
job in the wrong state, a store that cannot be reached); 2 a usage error (bad
arguments, a bad store URL, a module that cannot be imported); ``128 + N`` a
worker stopped at once by a second signal N.
"""

from __future__ import annotations

from ._main import main as main
