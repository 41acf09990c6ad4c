"""One error hierarchy for the whole engine.

Every error a caller can provoke is a :class:`VecdbError` subclass whose
message names the field and the problem. The server maps each class to one
gRPC status code (see ``vecdb_server.interceptors``); anything that is not a
``VecdbError`` is an internal error and is never shown to clients verbatim.
"""
from __future__ import annotations


class VecdbError(Exception):
    """Base class. ``field`` names the offending input field, when there is one."""

    code = "UNKNOWN"

    def __init__(self, message: str, field: str | None = None):
        super().__init__(message)
        self.message = message
        self.field = field


class InvalidArgument(VecdbError):
    """The request is malformed: wrong dimension, bad name, NaN, k out of range..."""

    code = "INVALID_ARGUMENT"


class NotFound(VecdbError):
    """A named collection or alias does not exist."""

    code = "NOT_FOUND"


class AlreadyExists(VecdbError):
    """A collection or alias with that name already exists."""

    code = "ALREADY_EXISTS"


class FailedPrecondition(VecdbError):
    """The system is not in a state that allows the call (locked dir, closed db...)."""

    code = "FAILED_PRECONDITION"


class ResourceExhausted(VecdbError):
    """A configured limit was hit (payload size, batch size, disk full...)."""

    code = "RESOURCE_EXHAUSTED"


class Unavailable(VecdbError):
    """Transient: the engine is recovering or shutting down; retry later."""

    code = "UNAVAILABLE"
