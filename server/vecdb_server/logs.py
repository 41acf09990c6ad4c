"""Logging setup: text or JSON lines, with the current call's request id.

The guard interceptor (guard.py) gives every vecdb.v1 call a request id and
stores it in ``REQUEST_ID`` (a contextvar) for the duration of the call; the
error interceptor reports the same id to the client (trailing metadata
``vecdb-request-id``). With ``log_format: json`` every line is one JSON
object: time, level, logger, message, request_id (inside a call), exc_info
(when there is a traceback).
"""
from __future__ import annotations

import contextvars
import json
import logging
import sys
import time
import uuid

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "vecdb_request_id", default=None)
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"


def new_request_id() -> str:
    return uuid.uuid4().hex[:16]


def current_request_id() -> str | None:
    return REQUEST_ID.get()


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                    + f".{int(record.msecs):03d}Z",
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        request_id = REQUEST_ID.get()  # formatted in the logging thread, inside the call
        if request_id:
            out["request_id"] = request_id
        if record.exc_info:
            out["exc_info"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def setup_logging(level: str, fmt: str = "text") -> None:
    handler = logging.StreamHandler(sys.stderr)
    if fmt == "json":
        handler.setFormatter(JsonFormatter())
    else:
        handler.setFormatter(logging.Formatter(TEXT_FORMAT))
    logging.basicConfig(level=level.upper(), handlers=[handler], force=True)
