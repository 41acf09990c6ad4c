"""Embedded mode: the SDK's :class:`vecdb_client.Client` over an engine opened in this
process, with no server and no socket (``vecdb.connect("./data")``), and its asyncio
twin :class:`vecdb_client.AsyncClient` (``vecdb.connect_async("./data")``, whose calls run
in worker threads so the event loop never blocks on the engine).

The client's methods are the SDK's own, unchanged; only their transport differs: each
RPC calls the server's servicer method directly with the request message (no
serialization, no network). So arguments, results and errors are the server's by
construction: the same servicers and conversions produce the answers, and errors go
through the server's :class:`ErrorMapper` to the same status codes, messages and
``field`` the SDK raises against a server. Deadlines (``timeout=``; default None, no
deadline) are checked when a call starts and when it returns: a call that returns past
its deadline raises DeadlineExceededError (its effect, as with a server, may have
happened); a running call is not interrupted (the engine has no cancellation).

What a server adds and this does not: API keys, rate and size limits, metrics. The
data directory is locked while open (one process at a time) and can later be served by
``vecdb-server`` unchanged, and the other way round.
"""
from __future__ import annotations

import asyncio
import logging
import os
import time
import weakref
from typing import Any, AsyncIterator, Callable, Iterator

import grpc
from grpc_health.v1 import health_pb2

from vecdb import DatabaseOptions
from vecdb.errors import VecdbError
from vecdb_client import AsyncClient, Client
from vecdb_client._channel import ClientSettings
from vecdb_client.errors import from_rpc_error

from .analytics_servicer import AnalyticsServicer
from .cluster.status import single_node_status
from .engine import EngineHolder
from .tenant_servicer import TenantServicer
from .interceptors import ErrorMapper
from .servicer import CollectionServicer, PointServicer

log = logging.getLogger("vecdb.embedded")


class DirectCallError(grpc.RpcError):
    """A servicer's error in the shape the SDK reads off a grpc.RpcError."""

    def __init__(self, code: grpc.StatusCode, message: str, metadata: tuple = ()):
        super().__init__(message)
        self._code, self._message, self._metadata = code, message, metadata

    def code(self) -> grpc.StatusCode:
        return self._code

    def details(self) -> str:
        return self._message

    def trailing_metadata(self) -> tuple:
        return self._metadata


class DirectContext:
    """The part of grpc.ServicerContext that servicers may use, for one direct call."""

    def __init__(self, deadline: float | None):
        self._deadline = deadline

    def time_remaining(self) -> float | None:
        return None if self._deadline is None else self._deadline - time.monotonic()

    def is_active(self) -> bool:
        return True

    def invocation_metadata(self) -> tuple:
        return ()

    def peer(self) -> str:
        return "embedded"

    def abort(self, code: grpc.StatusCode, details: str) -> None:
        raise DirectCallError(code, details)

    def set_trailing_metadata(self, metadata: tuple) -> None:
        pass


class DirectStub:
    """Stands in for a generated gRPC stub: ``stub.Method(request, timeout=, metadata=)``
    runs ``servicer.Method(request, context)`` in this thread. Request-streaming methods
    take an iterator of requests; response-streaming ones return an iterator."""

    def __init__(self, servicer: Any, mapper: ErrorMapper, owner: "_Embedded"):
        self._servicer, self._mapper, self._owner = servicer, mapper, owner

    def __getattr__(self, name: str) -> Callable[..., Any]:
        method = getattr(self._servicer, name)

        def call(request: Any, timeout: float | None = None, metadata: Any = None) -> Any:
            deadline = None if timeout is None else time.monotonic() + timeout
            result = self._run(name, deadline, lambda: method(request, DirectContext(deadline)))
            if isinstance(result, Iterator):
                stream = self._stream(name, deadline, result)
                self._owner._streams.add(stream)  # closed by close(): no held session
                return stream
            return result
        return call

    def _run(self, name: str, deadline: float | None, fn: Callable[[], Any]) -> Any:
        if self._owner._closed:
            raise DirectCallError(grpc.StatusCode.FAILED_PRECONDITION,
                                  "this embedded client is closed (vecdb.connect again)")
        if deadline is not None and time.monotonic() >= deadline:
            raise DirectCallError(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
        try:
            result = fn()
        except grpc.RpcError:
            raise
        except Exception as exc:  # noqa: BLE001 - mapped like the server's interceptor
            code, message, md = self._mapper.map(exc, f"embedded/{name}")
            raise DirectCallError(code, message, md) from None
        if deadline is not None and time.monotonic() > deadline:
            raise DirectCallError(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded")
        return result

    def _stream(self, name: str, deadline: float | None, it: Iterator) -> Iterator:
        done = object()
        try:
            while True:
                item = self._run(name, deadline, lambda: next(it, done))
                if item is done:
                    return
                yield item
        finally:
            close = getattr(it, "close", None)
            if close is not None:
                close()  # the servicer's generator releases its engine session


class AsyncDirectCall:
    """What a grpc.aio stub call returns, for a direct call: awaitable (unary responses)
    and async-iterable (streamed responses); the work runs in a worker thread."""

    def __init__(self, fn: Callable[..., Any], request: Any, timeout: float | None):
        self._fn, self._request, self._timeout = fn, request, timeout

    def __await__(self) -> Any:
        return asyncio.to_thread(self._fn, self._request, self._timeout).__await__()

    async def _items(self) -> AsyncIterator:
        it = await asyncio.to_thread(self._fn, self._request, self._timeout)
        done = object()
        while (item := await asyncio.to_thread(next, it, done)) is not done:
            yield item

    def __aiter__(self) -> AsyncIterator:
        return self._items()


class AsyncDirectStub:
    """The asyncio face of a :class:`DirectStub`."""

    def __init__(self, stub: DirectStub):
        self._stub = stub

    def __getattr__(self, name: str) -> Callable[..., AsyncDirectCall]:
        fn = getattr(self._stub, name)

        def call(request: Any, timeout: float | None = None, metadata: Any = None
                 ) -> AsyncDirectCall:
            return AsyncDirectCall(fn, request, timeout)
        return call


class _Embedded:
    """What both faces share: the engine, its servicers as direct stubs, health, close."""

    def _open(self, path: str | os.PathLike, options: DatabaseOptions | None,
              wrap: Callable[[DirectStub], Any]) -> None:
        self._closed, self._streams = False, weakref.WeakSet()
        self._engine = EngineHolder(os.fspath(path), options or DatabaseOptions())
        mapper = ErrorMapper(log)
        try:
            self._engine.open()
        except VecdbError as exc:  # e.g. the directory is locked: the SDK's own exception
            raise from_rpc_error(DirectCallError(*mapper.map(exc, "embedded/open"))) from None
        self._collections = wrap(DirectStub(CollectionServicer(self._engine), mapper, self))
        self._points = wrap(DirectStub(PointServicer(self._engine), mapper, self))
        self.__dict__["_analytics_stub"] = wrap(DirectStub(AnalyticsServicer(self._engine),
                                                           mapper, self))
        self.__dict__["_tenants_stub"] = wrap(DirectStub(TenantServicer(self._engine), mapper,
                                                         self))
        self._cluster = wrap(DirectStub(single_node_status(), mapper, self))
        self._md = ()
        self._channel, self._channels = None, []  # no network

    def _shutdown(self) -> None:
        if self._closed:
            return
        self._closed = True
        for stream in list(self._streams):
            stream.close()
        self._engine.close()

    def _health_bytes(self) -> bytes:
        status = (health_pb2.HealthCheckResponse.SERVING if self._engine.ready
                  else health_pb2.HealthCheckResponse.NOT_SERVING)
        return health_pb2.HealthCheckResponse(status=status).SerializeToString()


class EmbeddedClient(_Embedded, Client):
    """:class:`vecdb_client.Client` over the data directory ``path``, in this process.

    ``options`` (a :class:`vecdb.DatabaseOptions`) tunes the engine as the server's
    config does; ``timeout`` and the other keywords are the Client's. Thread-safe."""

    def __init__(self, path: str | os.PathLike, *, options: DatabaseOptions | None = None,
                 timeout: float | None = None, tenant: str | int | None = None,
                 **settings: Any):
        self.settings, self.tenant = ClientSettings(timeout=timeout, **settings), tenant
        self._open(path, options, lambda stub: stub)

    def _health(self, request: bytes, timeout: float | None = None, metadata: Any = None) -> bytes:
        return self._health_bytes()

    def close(self) -> None:
        """Close open result streams, checkpoint and close the engine (releases the data
        directory); idempotent. Calls afterwards: FailedPreconditionError."""
        self._shutdown()


class AsyncEmbeddedClient(_Embedded, AsyncClient):
    """:class:`vecdb_client.AsyncClient` over the data directory ``path``, in this process
    (engine calls run in worker threads). Opening the directory blocks."""

    def __init__(self, path: str | os.PathLike, *, options: DatabaseOptions | None = None,
                 timeout: float | None = None, tenant: str | int | None = None,
                 **settings: Any):
        self.settings, self.tenant = ClientSettings(timeout=timeout, **settings), tenant
        self._open(path, options, AsyncDirectStub)

    async def _health(self, request: bytes, timeout: float | None = None,
                      metadata: Any = None) -> bytes:
        return self._health_bytes()

    async def close(self) -> None:
        """Close open result streams, checkpoint and close the engine; idempotent."""
        await asyncio.to_thread(self._shutdown)


def _path(path: str | os.PathLike) -> str:
    path = os.fspath(path)
    return path[5:] if path.startswith("file:") else path


def connect(path: str | os.PathLike, **kw: Any) -> EmbeddedClient:
    """``vecdb.connect("./data")``: see :class:`EmbeddedClient`. A ``file:`` prefix is
    accepted (``connect("file:./data")``)."""
    return EmbeddedClient(_path(path), **kw)


def connect_async(path: str | os.PathLike, **kw: Any) -> AsyncEmbeddedClient:
    """``vecdb.connect_async("./data")``: see :class:`AsyncEmbeddedClient`."""
    return AsyncEmbeddedClient(_path(path), **kw)
