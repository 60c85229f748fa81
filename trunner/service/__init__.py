"""Remote jobs over HTTP: a `~trunner.jobs.JobManager` as a JSON service.

`create_app` makes the ASGI application (jobs, server-sent events, metrics,
health, an OpenAPI document and a dashboard), `serve` runs it on hypercorn's
trio worker, `BearerTokens` authenticates requests and `Client` talks to it.
Needs the ``trunner[service]`` extra (hypercorn, starlette, httpx).
"""

from __future__ import annotations

from .._util import fixup_module_metadata as _fixup
from ._app import create_app as create_app
from ._auth import BearerTokens as BearerTokens
from ._client import Client as Client
from ._server import Server as Server
from ._server import serve as serve

_fixup(__name__, globals())
del _fixup
