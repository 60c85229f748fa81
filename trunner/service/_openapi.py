"""``GET /openapi.json``: the OpenAPI 3.1 description of every route."""

from __future__ import annotations

import functools
from typing import Final, cast

from .._version import __version__
from ._codec import MAX_DELAY, MAX_NAME, MAX_OFFSET, PRIORITY_NAMES, STATE_NAMES

_TIME: Final = {"type": "string", "format": "date-time"}
_NULLABLE_TIME: Final = {"type": ["string", "null"], "format": "date-time"}
_NAME: Final = {
    "type": "string",
    "minLength": 1,
    "maxLength": MAX_NAME,
    "pattern": "^[^\\u0000]*$",
    "description": "Text without NUL characters.",
}
_JOB_ID: Final = {
    "name": "job_id",
    "in": "path",
    "required": True,
    "description": "The job's id.",
    "schema": {"type": "string", "minLength": 1},
}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": f"#/components/schemas/{name}"}


def _json_content(schema: object) -> dict[str, object]:
    return {"application/json": {"schema": schema}}


def _error(description: str) -> dict[str, object]:
    return {"description": description, "content": _json_content(_ref("Error"))}


_UNAUTHORIZED: Final = {
    "description": "Missing or wrong credentials; nothing was read or changed.",
    "headers": {"WWW-Authenticate": {"schema": {"type": "string"}, "required": True}},
    "content": _json_content(_ref("Error")),
}


def _secured(
    operation: dict[str, object], *errors: tuple[str, str]
) -> dict[str, object]:
    responses = dict(cast("dict[str, object]", operation.get("responses", {})))
    responses["401"] = _UNAUTHORIZED
    responses["403"] = _error("The principal may not do that.")
    for status, description in errors:
        responses[status] = _error(description)
    responses["503"] = _error("The store failed or could not be reached.")
    return {**operation, "security": [{"bearer": []}], "responses": responses}


def _job_response(description: str) -> dict[str, object]:
    return {"description": description, "content": _json_content(_ref("Job"))}


@functools.cache
def openapi_schema() -> dict[str, object]:
    """Return the OpenAPI document of the service (built once)."""
    job = {
        "type": "object",
        "required": [
            "id",
            "handler",
            "args",
            "state",
            "priority",
            "attempts",
            "max_attempts",
            "created_at",
            "run_at",
            "started_at",
            "finished_at",
            "result",
            "error",
            "worker",
        ],
        "properties": {
            "id": {"type": "string"},
            "handler": {"type": "string"},
            "args": {"description": "The arguments' JSON value."},
            "state": {"type": "string", "enum": list(STATE_NAMES)},
            "priority": {"type": "string", "enum": list(PRIORITY_NAMES)},
            "attempts": {"type": "integer", "minimum": 0},
            "max_attempts": {"type": "integer", "minimum": 1},
            "created_at": _TIME,
            "run_at": _TIME,
            "started_at": _NULLABLE_TIME,
            "finished_at": _NULLABLE_TIME,
            "result": {"description": "The handler's return value as JSON."},
            "error": {
                "type": ["string", "null"],
                "description": "The last failure, with its traceback.",
            },
            "worker": {"type": ["string", "null"]},
        },
    }
    submit = {
        "type": "object",
        "required": ["id", "handler"],
        "additionalProperties": False,
        "not": {"required": ["delay", "run_at"], "description": "not both"},
        "properties": {
            "id": _NAME,
            "handler": _NAME,
            "args": {"description": "The handler's argument as JSON (default null)."},
            "priority": {
                "type": "string",
                "enum": list(PRIORITY_NAMES),
                "default": "user_visible",
            },
            "delay": {
                "type": "number",
                "minimum": 0,
                "maximum": MAX_DELAY,
                "description": "Seconds from now until the job is due.",
            },
            "run_at": {
                "type": "string",
                "format": "date-time",
                "description": "When the job is due (instead of delay).",
            },
            "if_exists": {
                "type": "string",
                "enum": ["error", "ignore"],
                "default": "error",
            },
        },
    }
    error = {
        "type": "object",
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["type", "message"],
                "properties": {
                    "type": {
                        "type": "string",
                        "description": "The exception class name.",
                    },
                    "message": {"type": "string"},
                    "field": {
                        "type": "string",
                        "description": "The input field at fault.",
                    },
                },
            }
        },
    }
    health = {
        "type": "object",
        "required": ["status", "store", "worker"],
        "properties": {
            "status": {"type": "string", "enum": ["ok", "unavailable"]},
            "store": {"type": "string"},
            "worker": {"type": "boolean"},
        },
    }
    paths = {
        "/jobs": {
            "post": _secured(
                {
                    "operationId": "submit_job",
                    "summary": "Submit a job; answers once it is stored durably.",
                    "requestBody": {
                        "required": True,
                        "content": _json_content(_ref("SubmitJob")),
                    },
                    "responses": {"201": _job_response("The stored job.")},
                },
                ("400", "Bad input; the error names the field."),
                ("404", "No handler of that name (when the manager has a registry)."),
                ("409", "A job with that id exists (if_exists=error)."),
                ("413", "The body is larger than the limit (1 MiB by default)."),
            ),
            "get": _secured(
                {
                    "operationId": "list_jobs",
                    "summary": "List jobs, newest first.",
                    "parameters": [
                        {
                            "name": "state",
                            "in": "query",
                            "schema": {"type": "string", "enum": list(STATE_NAMES)},
                        },
                        {
                            "name": "handler",
                            "in": "query",
                            "schema": {"type": "string"},
                        },
                        {
                            "name": "limit",
                            "in": "query",
                            "schema": {
                                "type": "integer",
                                "minimum": 1,
                                "maximum": 1000,
                                "default": 100,
                            },
                        },
                        {
                            "name": "offset",
                            "in": "query",
                            "schema": {
                                "type": "integer",
                                "minimum": 0,
                                "maximum": MAX_OFFSET,
                                "default": 0,
                            },
                        },
                    ],
                    "responses": {
                        "200": {
                            "description": "The jobs.",
                            "content": _json_content(_ref("JobList")),
                        }
                    },
                },
                ("400", "A bad query parameter; the error names it."),
            ),
        },
        "/jobs/{job_id}": {
            "get": _secured(
                {
                    "operationId": "get_job",
                    "summary": "Get a job.",
                    "parameters": [_JOB_ID],
                    "responses": {"200": _job_response("The job.")},
                },
                ("400", "A bad job id."),
                ("404", "No job with that id."),
            ),
            "delete": _secured(
                {
                    "operationId": "cancel_job",
                    "summary": "Cancel a job; answers once the request is stored.",
                    "parameters": [_JOB_ID],
                    "responses": {"200": _job_response("The job after the request.")},
                },
                ("400", "A bad job id."),
                ("404", "No job with that id."),
            ),
        },
        "/jobs/{job_id}/retry": {
            "post": _secured(
                {
                    "operationId": "retry_job",
                    "summary": "Put a failed or cancelled job back to pending.",
                    "parameters": [_JOB_ID],
                    "responses": {"200": _job_response("The job, pending again.")},
                },
                ("400", "A bad job id."),
                ("404", "No job with that id."),
                ("409", "The job is neither failed nor cancelled."),
            ),
        },
        "/events": {
            "get": _secured(
                {
                    "operationId": "events",
                    "summary": "Server-sent events: the job after each state change.",
                    "description": (
                        "Each event has an id and, as data, the job's JSON. Send "
                        "Last-Event-ID to resume; an id that cannot resume gets a "
                        "'reset' event first. Comments are sent as heartbeats."
                    ),
                    "parameters": [
                        {
                            "name": "Last-Event-ID",
                            "in": "header",
                            "schema": {"type": "string"},
                        }
                    ],
                    "responses": {
                        "200": {
                            "description": "The event stream.",
                            "content": {
                                "text/event-stream": {"schema": {"type": "string"}}
                            },
                        }
                    },
                },
            ),
        },
        "/metrics": {
            "get": _secured(
                {
                    "operationId": "metrics",
                    "summary": "Prometheus text exposition.",
                    "responses": {
                        "200": {
                            "description": "The metrics.",
                            "content": {"text/plain": {"schema": {"type": "string"}}},
                        }
                    },
                },
            ),
        },
        "/healthz": {
            "get": {
                "operationId": "health",
                "summary": "Whether the store answers and the worker runs; no auth.",
                "responses": {
                    "200": {
                        "description": "Healthy.",
                        "content": _json_content(_ref("Health")),
                    },
                    "503": {
                        "description": "The store does not answer.",
                        "content": _json_content(_ref("Health")),
                    },
                },
            }
        },
        "/openapi.json": {
            "get": {
                "operationId": "openapi",
                "summary": "This document; no auth.",
                "responses": {
                    "200": {
                        "description": "The OpenAPI document.",
                        "content": _json_content({"type": "object"}),
                    }
                },
            }
        },
        "/": {
            "get": {
                "operationId": "dashboard",
                "summary": "The dashboard: one HTML page; it asks for a token.",
                "responses": {
                    "200": {
                        "description": "The page.",
                        "content": {"text/html": {"schema": {"type": "string"}}},
                    }
                },
            }
        },
    }
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "trunner jobs service",
            "version": __version__,
            "description": "Durable jobs of a trunner JobManager over HTTP.",
        },
        "paths": paths,
        "components": {
            "schemas": {
                "Job": job,
                "JobList": {
                    "type": "object",
                    "required": ["jobs"],
                    "properties": {"jobs": {"type": "array", "items": _ref("Job")}},
                },
                "SubmitJob": submit,
                "Error": error,
                "Health": health,
            },
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }
