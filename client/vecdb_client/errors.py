"""Typed exceptions, one per gRPC status code the server uses.

Every exception carries the server's message, the gRPC status code, the
request id the server logged (when it sent one) and the offending input field
(when the server named one). Errors raised before anything was sent (input the
SDK cannot encode, such as a ragged vector list) are :class:`InvalidArgumentError`
with ``request_id=None``.
"""
from __future__ import annotations

from urllib.parse import quote, unquote

import grpc

REQUEST_ID_KEY = "vecdb-request-id"
FIELD_KEY = "vecdb-field"
RETRY_AFTER_KEY = "retry-after-ms"
# What may stand unescaped in an ASCII metadata value: printable ASCII but '%'.
_METADATA_SAFE = "".join(chr(c) for c in range(0x20, 0x7F) if chr(c) != "%")


def to_metadata_text(text: str) -> str:
    """``text`` as a legal gRPC metadata value: percent-encoded UTF-8 outside printable
    ASCII (and '%' itself), so a field name such as ``index.params.ü`` can travel in
    trailing metadata. :func:`from_metadata_text` reverses it."""
    return quote(text, safe=_METADATA_SAFE)


def from_metadata_text(value: str) -> str:
    return unquote(value)


class VecdbClientError(Exception):
    """Base class of every error the SDK raises."""

    code: grpc.StatusCode = grpc.StatusCode.UNKNOWN

    def __init__(self, message: str, *, code: grpc.StatusCode | None = None,
                 request_id: str | None = None, field: str | None = None):
        super().__init__(message)
        self.message = message
        if code is not None:
            self.code = code
        self.request_id = request_id
        self.field = field
        # Upserts only: points known durable (acknowledged) before the failure.
        self.acknowledged: int | None = None
        # Seconds the server asked to wait before retrying (rate limit), else None.
        self.retry_after: float | None = None

    def __str__(self) -> str:
        suffix = f" (request id {self.request_id})" if self.request_id else ""
        return f"{self.code.name}: {self.message}{suffix}"


class InvalidArgumentError(VecdbClientError):
    code = grpc.StatusCode.INVALID_ARGUMENT


class NotFoundError(VecdbClientError):
    code = grpc.StatusCode.NOT_FOUND


class AlreadyExistsError(VecdbClientError):
    code = grpc.StatusCode.ALREADY_EXISTS


class FailedPreconditionError(VecdbClientError):
    code = grpc.StatusCode.FAILED_PRECONDITION


class ResourceExhaustedError(VecdbClientError):
    """A limit was hit. ``retry_after`` (seconds) is set when waiting helps (rate limit);
    None for limits that retrying does not lift (batch size, k, collections, message size)."""

    code = grpc.StatusCode.RESOURCE_EXHAUSTED


class UnavailableError(VecdbClientError):
    """Transient; idempotent calls are retried with backoff before this is raised."""

    code = grpc.StatusCode.UNAVAILABLE


class DeadlineExceededError(VecdbClientError):
    code = grpc.StatusCode.DEADLINE_EXCEEDED


class UnauthenticatedError(VecdbClientError):
    code = grpc.StatusCode.UNAUTHENTICATED


class PermissionDeniedError(VecdbClientError):
    code = grpc.StatusCode.PERMISSION_DENIED


class InternalError(VecdbClientError):
    """A server bug; quote ``request_id`` when reporting it."""

    code = grpc.StatusCode.INTERNAL


class RpcCancelledError(VecdbClientError):
    """The call was cancelled (by the client, or the server shut down mid-call)."""

    code = grpc.StatusCode.CANCELLED


_BY_CODE = {cls.code: cls for cls in (
    InvalidArgumentError, NotFoundError, AlreadyExistsError, FailedPreconditionError,
    ResourceExhaustedError, UnavailableError, DeadlineExceededError,
    UnauthenticatedError, PermissionDeniedError, InternalError, RpcCancelledError)}


def _trailing(err: grpc.RpcError) -> dict[str, str]:
    try:
        md = err.trailing_metadata() or ()
    except Exception:  # noqa: BLE001 - some RpcErrors carry no call
        md = ()
    return {k: v for k, v in md if isinstance(v, str)}


def from_rpc_error(err: grpc.RpcError) -> VecdbClientError:
    """Translate a grpc error (sync or aio) into the matching typed exception."""
    code = err.code() if hasattr(err, "code") else grpc.StatusCode.UNKNOWN
    details = err.details() if hasattr(err, "details") else str(err)
    md = _trailing(err)
    cls = _BY_CODE.get(code, VecdbClientError)
    err = cls(details or code.name, code=code, request_id=md.get(REQUEST_ID_KEY),
              field=from_metadata_text(md[FIELD_KEY]) if FIELD_KEY in md else None)
    try:
        err.retry_after = int(md[RETRY_AFTER_KEY]) / 1000 if RETRY_AFTER_KEY in md else None
    except ValueError:
        pass
    return err
