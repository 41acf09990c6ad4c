"""One vecdb.v1 RPC made in-process for the dashboard, through the gRPC port's own parts.

A dashboard request names an RPC (``"PointService/Scroll"``) and a request message
built by the SDK's request builders (vecdb_client._codec). :meth:`Caller.call` runs it
the way the gRPC interceptors would: a request id, ``Guard.admit`` (key, rate limit,
role) and ``Guard.check`` (collection scope, size limits), the servicer method the
server registered (the cluster router's in cluster mode), ``filter_response`` for
listings, ``ErrorMapper`` for anything the engine raises, and the RPC metrics. So the
dashboard never re-implements a check, and whatever the API refuses it refuses too.

Failures come out as :class:`CallError` (gRPC code, message, field, request id), which
the HTTP layer turns into a JSON error with the matching HTTP status.
"""
from __future__ import annotations

import time
from typing import Any, Mapping

import grpc
from vecdb_client.errors import FIELD_KEY, from_metadata_text

from ..auth import KeySpec, filter_response
from ..guard import Guard, Rejected
from ..interceptors import ErrorMapper
from ..logs import REQUEST_ID, new_request_id

# gRPC status -> HTTP status (Google's published mapping, google.rpc.Code).
HTTP_STATUS = {
    grpc.StatusCode.INVALID_ARGUMENT: 400, grpc.StatusCode.FAILED_PRECONDITION: 400,
    grpc.StatusCode.OUT_OF_RANGE: 400, grpc.StatusCode.UNAUTHENTICATED: 401,
    grpc.StatusCode.PERMISSION_DENIED: 403, grpc.StatusCode.NOT_FOUND: 404,
    grpc.StatusCode.ALREADY_EXISTS: 409, grpc.StatusCode.ABORTED: 409,
    grpc.StatusCode.RESOURCE_EXHAUSTED: 429, grpc.StatusCode.UNIMPLEMENTED: 501,
    grpc.StatusCode.UNAVAILABLE: 503, grpc.StatusCode.DEADLINE_EXCEEDED: 504,
}


class CallError(Exception):
    """A refused or failed call: what the gRPC client would have been told."""

    def __init__(self, code: grpc.StatusCode, message: str, field: str | None = None,
                 request_id: str | None = None, retry_after_ms: str | None = None,
                 http_status: int | None = None):
        super().__init__(message)
        self.code, self.message, self.field = code, message, field
        self.request_id, self.retry_after_ms = request_id, retry_after_ms
        self.http_status = http_status or HTTP_STATUS.get(code, 500)

    def to_json(self) -> dict[str, Any]:
        err = {"code": self.code.name, "message": self.message}
        if self.field:
            err["field"] = self.field
        if self.request_id:
            err["request_id"] = self.request_id
        return {"error": err}


class _Context:
    """The part of grpc.ServicerContext the servicers use, for an in-process call."""

    def __init__(self, peer: str):
        self._peer = peer

    def invocation_metadata(self) -> tuple:
        return ()  # never the cluster secret: a dashboard call is a client call

    def peer(self) -> str:
        return self._peer

    def time_remaining(self) -> float | None:
        return None

    def is_active(self) -> bool:
        return True

    def set_trailing_metadata(self, metadata: Any) -> None:
        pass

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise CallError(code, details, request_id=REQUEST_ID.get())


class Caller:
    """Runs RPCs in-process. ``servicers`` maps a service's short name
    (``"CollectionService"``) to the servicer object registered on the gRPC server."""

    def __init__(self, guard: Guard, servicers: Mapping[str, Any], metrics: Any = None,
                 mapper: ErrorMapper | None = None):
        self.guard, self._servicers, self._metrics = guard, dict(servicers), metrics
        self._mapper = mapper or ErrorMapper()

    def whoami(self, token: str | None) -> KeySpec | None:
        """The caller's key (None when no keys are configured); CallError 401 otherwise."""
        keys = self.guard.keys
        if not keys.enabled:
            return None
        if not token:
            raise CallError(grpc.StatusCode.UNAUTHENTICATED, "missing API key: send "
                            "'authorization: Bearer <key>' or 'x-api-key: <key>'")
        key = keys.authenticate(token)
        if key is None:
            raise CallError(grpc.StatusCode.UNAUTHENTICATED, "invalid API key")
        return key

    def call(self, rpc: str, request: Any, token: str | None, peer: str) -> Any:
        """``rpc`` like ``"PointService/Scroll"``; returns the response message."""
        service, name = rpc.split("/")
        method = f"/vecdb.v1.{service}/{name}"
        rid = new_request_id()
        reset = REQUEST_ID.set(rid)
        code, t0 = grpc.StatusCode.OK, time.perf_counter()
        try:
            metadata = (("authorization", f"Bearer {token}"),) if token else ()
            key = self.guard.admit(method, metadata, peer)
            self.guard.check(method, request, key)
            response = getattr(self._servicers[service], name)(request, _Context(peer))
            return filter_response(method, response, key)
        except Rejected as rej:
            code = rej.code
            retry = dict(rej.metadata).get("retry-after-ms")
            raise CallError(rej.code, rej.message, request_id=rid, retry_after_ms=retry) from None
        except CallError as err:
            code = err.code
            raise
        except Exception as exc:  # noqa: BLE001 - mapped (and logged) like the gRPC port does
            code, message, md = self._mapper.map(exc, method)
            field = dict(md).get(FIELD_KEY)
            raise CallError(code, message, from_metadata_text(field) if field else None,
                            rid) from None
        finally:
            if self._metrics is not None:
                self._metrics.observe_rpc(f"{service}/{name}", code.name,
                                          time.perf_counter() - t0)
            REQUEST_ID.reset(reset)
