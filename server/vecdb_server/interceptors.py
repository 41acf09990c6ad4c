"""The error interceptor: vecdb errors -> gRPC status codes, for both server flavours.

Mapping (one table, ERROR_CODES): InvalidArgument -> INVALID_ARGUMENT,
NotFound -> NOT_FOUND, AlreadyExists -> ALREADY_EXISTS, FailedPrecondition ->
FAILED_PRECONDITION, ResourceExhausted -> RESOURCE_EXHAUSTED, Unavailable ->
UNAVAILABLE. Anything else is a bug: the client gets INTERNAL with a generic
message and a request id, and the server log gets the same id with the
traceback. The request id and the offending field travel as trailing
metadata (vecdb-request-id, vecdb-field). Metadata must be ASCII: the field
(which may hold user text, e.g. an index parameter's name) is percent-encoded
outside printable ASCII; the SDK decodes it.

A call whose deadline already passed (or that the client cancelled) while it
waited for a worker thread is not started at all.
"""
from __future__ import annotations

import logging
import uuid
from typing import Any, Callable

import grpc
from vecdb_client.errors import FIELD_KEY, REQUEST_ID_KEY, to_metadata_text

from vecdb.errors import (AlreadyExists, FailedPrecondition, InvalidArgument, NotFound,
                          ResourceExhausted, Unavailable, VecdbError)

from .logs import current_request_id

ERROR_CODES: dict[type[VecdbError], grpc.StatusCode] = {
    InvalidArgument: grpc.StatusCode.INVALID_ARGUMENT,
    NotFound: grpc.StatusCode.NOT_FOUND,
    AlreadyExists: grpc.StatusCode.ALREADY_EXISTS,
    FailedPrecondition: grpc.StatusCode.FAILED_PRECONDITION,
    ResourceExhausted: grpc.StatusCode.RESOURCE_EXHAUSTED,
    Unavailable: grpc.StatusCode.UNAVAILABLE,
}

log = logging.getLogger("vecdb_server.errors")


class ErrorMapper:
    """Turns an exception into (status code, client message, trailing metadata); logs it."""

    def __init__(self, logger: logging.Logger = log):
        self._log = logger

    def map(self, exc: BaseException, method: str) -> tuple[grpc.StatusCode, str, tuple]:
        request_id = current_request_id() or uuid.uuid4().hex[:16]  # set by the guard
        md: list[tuple[str, str]] = [(REQUEST_ID_KEY, request_id)]
        if isinstance(exc, VecdbError):
            code = next((c for cls, c in ERROR_CODES.items() if isinstance(exc, cls)),
                        grpc.StatusCode.INTERNAL)
            if exc.field:
                md.append((FIELD_KEY, to_metadata_text(exc.field)))
            self._log.info("%s -> %s: %s [request id %s]", method, code.name, exc.message,
                           request_id)
            return code, exc.message, tuple(md)
        self._log.error("%s -> INTERNAL [request id %s]", method, request_id,
                        exc_info=(type(exc), exc, exc.__traceback__))
        return (grpc.StatusCode.INTERNAL,
                f"internal server error; quote request id {request_id} when reporting it",
                tuple(md))


def _expired(context: Any) -> bool:
    remaining = context.time_remaining()
    return remaining is not None and remaining <= 0


class ErrorInterceptor(grpc.ServerInterceptor):
    """Threaded-server flavour. Only wraps methods under ``prefix`` (not health/reflection)."""

    def __init__(self, mapper: ErrorMapper, prefix: str = "/vecdb.v1."):
        self._mapper, self._prefix, self._cache = mapper, prefix, WrapCache()

    def _abort(self, context: grpc.ServicerContext, exc: Exception, method: str) -> None:
        if isinstance(exc, grpc.RpcError) or not context.is_active():
            raise exc  # the client went away; nothing to report to it
        code, message, md = self._mapper.map(exc, method)
        context.set_trailing_metadata(md)
        context.abort(code, message)

    def _unary_response(self, behavior: Callable, method: str) -> Callable:
        def wrapper(request_or_iterator: Any, context: grpc.ServicerContext) -> Any:
            if _expired(context):
                context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline passed before start")
            try:
                return behavior(request_or_iterator, context)
            except Exception as exc:  # noqa: BLE001 - mapped, never leaked
                self._abort(context, exc, method)
        return wrapper

    def _stream_response(self, behavior: Callable, method: str) -> Callable:
        def wrapper(request_or_iterator: Any, context: grpc.ServicerContext) -> Any:
            if _expired(context):
                context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline passed before start")
            try:
                yield from behavior(request_or_iterator, context)
            except Exception as exc:  # noqa: BLE001
                self._abort(context, exc, method)
        return wrapper

    def intercept_service(self, continuation: Callable, details: grpc.HandlerCallDetails) -> Any:
        return rewrap(continuation(details), details, self._prefix,
                      by_response(self._unary_response, self._stream_response), self._cache)


class AioErrorInterceptor(grpc.aio.ServerInterceptor):
    """grpc.aio flavour of :class:`ErrorInterceptor` (same mapping, same metadata)."""

    def __init__(self, mapper: ErrorMapper, prefix: str = "/vecdb.v1."):
        self._mapper, self._prefix, self._cache = mapper, prefix, WrapCache()

    async def _abort(self, context: Any, exc: Exception, method: str) -> None:
        if isinstance(exc, grpc.RpcError) or context.done():
            raise exc
        code, message, md = self._mapper.map(exc, method)
        context.set_trailing_metadata(md)
        await context.abort(code, message)

    def _unary_response(self, behavior: Callable, method: str) -> Callable:
        async def wrapper(request_or_iterator: Any, context: Any) -> Any:
            if _expired(context):
                await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline passed")
            try:
                return await behavior(request_or_iterator, context)
            except grpc.aio.AbortError:
                raise
            except Exception as exc:  # noqa: BLE001
                await self._abort(context, exc, method)
        return wrapper

    def _stream_response(self, behavior: Callable, method: str) -> Callable:
        async def wrapper(request_or_iterator: Any, context: Any) -> Any:
            if _expired(context):
                await context.abort(grpc.StatusCode.DEADLINE_EXCEEDED, "deadline passed")
            try:
                async for response in behavior(request_or_iterator, context):
                    yield response
            except grpc.aio.AbortError:
                raise
            except Exception as exc:  # noqa: BLE001
                await self._abort(context, exc, method)
        return wrapper

    async def intercept_service(self, continuation: Callable,
                                details: grpc.HandlerCallDetails) -> Any:
        return rewrap(await continuation(details), details, self._prefix,
                      by_response(self._unary_response, self._stream_response), self._cache)


class WrapCache:
    """An interceptor's wrapped handler per method, built once: the wrappers depend only on
    the method and the handler they wrap, and rebuilding the chain's wrappers on every call
    cost a few percent of a one-query search. An entry is reused only while the inner
    handler is the same object (so at most one entry per method)."""

    def __init__(self) -> None:
        self._by_method: dict[str, tuple[Any, Any]] = {}

    def get(self, method: str, handler: Any, build: Callable[[], Any]) -> Any:
        hit = self._by_method.get(method)
        if hit is not None and hit[0] is handler:
            return hit[1]
        wrapped = build()
        self._by_method[method] = (handler, wrapped)
        return wrapped


def rewrap(handler: Any, details: grpc.HandlerCallDetails, prefix: str,
           wrap: Callable[[Callable, str, str], Callable], cache: WrapCache) -> Any:
    """``handler`` with its behaviour replaced by ``wrap(behavior, kind, method)`` (kind:
    unary_unary, unary_stream, stream_unary or stream_stream), for methods under
    ``prefix`` only (health and reflection pass through); built once per method and
    inner handler (``cache``)."""
    if handler is None or not details.method.startswith(prefix):
        return handler
    kind = _kind(handler)
    return cache.get(details.method, handler, lambda: handler._replace(
        **{kind: wrap(getattr(handler, kind), kind, details.method)}))


def by_response(unary: Callable, stream: Callable,
                name: Callable[[str], str] = str) -> Callable[[Callable, str, str], Callable]:
    """A :func:`rewrap` wrap that applies ``unary(behavior, name(method))`` or ``stream(...)``
    by the response kind."""
    def wrap(behavior: Callable, kind: str, method: str) -> Callable:
        return (stream if kind.endswith("_stream") else unary)(behavior, name(method))
    return wrap


def _kind(handler: grpc.RpcMethodHandler) -> str:
    if handler.request_streaming:
        return "stream_stream" if handler.response_streaming else "stream_unary"
    return "unary_stream" if handler.response_streaming else "unary_unary"
