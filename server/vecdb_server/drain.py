"""Drain before stop, so that a graceful shutdown never loses a finished answer.

gRPC core closes a connection as soon as its last call is finished on the
server's side. When a large response is still in the kernel's buffers and the
client's flow-control frames arrive after that close, the socket is reset and
the client gets ``UNAVAILABLE: Stream removed (Connection reset by peer)``
instead of its result (reproduced with a bare grpcio server, threaded and aio:
about 1 in 20 3 MB responses on loopback lost at ``server.stop(grace)``).

So the apps stop in two steps: :meth:`Drain.drain` first refuses new vecdb.v1
calls with UNAVAILABLE ("server is shutting down"; the SDK retries idempotent
calls) and waits until gRPC reports every admitted call done (its completion
callback runs once the status is handed to the transport), then gives the
answers SETTLE_S to leave the socket buffers (bounded by the grace period; a
heuristic: ample on a LAN, not a guarantee on a slow link), then grpc's own
``stop`` closes the connections. Health and reflection are never refused.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable

import grpc

from .interceptors import WrapCache, rewrap

SHUTTING_DOWN = "server is shutting down; retry on another replica or after restart"
SETTLE_S = 0.5  # after the last counted call is done: its answer leaves the socket buffers


class Drain:
    """Counts admitted calls; once draining, admits none. Thread-safe."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._active = 0
        self._draining = False

    def enter(self, counted: bool = True) -> bool:
        """Admit a call (False once draining); ``counted``: drain() waits for it."""
        with self._cond:
            if self._draining:
                return False
            self._active += counted
            return True

    def leave(self, *_: Any) -> None:
        with self._cond:
            self._active -= 1
            self._cond.notify_all()

    def drain(self, timeout: float) -> bool:
        """Refuse new calls; wait up to ``timeout`` s for admitted ones. True if none left."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._draining = True
            done = self._cond.wait_for(lambda: self._active == 0, timeout)
        if done:
            time.sleep(max(0.0, min(SETTLE_S, deadline - time.monotonic())))
        return done

    @property
    def active(self) -> int:
        with self._cond:
            return self._active


def _counted(kind: str) -> bool:
    """Client-streaming calls (UpsertStream) are refused while draining but not waited
    for: their answers are small acks, and an open bulk load must not keep new calls
    refused for the whole grace period (grpc's own stop gives them the rest of it)."""
    return not kind.startswith("stream_")


class DrainInterceptor(grpc.ServerInterceptor):
    """Threaded flavour: admit or refuse, and count the call until gRPC says it is done."""

    def __init__(self, drain: Drain, prefix: str = "/vecdb.v1."):
        self._drain, self._prefix, self._cache = drain, prefix, WrapCache()

    def _wrap(self, behavior: Callable, kind: str, _method: str) -> Callable:
        counted = _counted(kind)

        def wrapper(request_or_iterator: Any, context: grpc.ServicerContext) -> Any:
            if not self._drain.enter(counted):
                context.abort(grpc.StatusCode.UNAVAILABLE, SHUTTING_DOWN)
            if counted and not context.add_callback(self._drain.leave):
                self._drain.leave()  # already terminated (client gone)
            return behavior(request_or_iterator, context)
        return wrapper

    def intercept_service(self, continuation: Callable, details: grpc.HandlerCallDetails) -> Any:
        return rewrap(continuation(details), details, self._prefix, self._wrap, self._cache)


class AioDrainInterceptor(grpc.aio.ServerInterceptor):
    """grpc.aio flavour of :class:`DrainInterceptor`."""

    def __init__(self, drain: Drain, prefix: str = "/vecdb.v1."):
        self._drain, self._prefix, self._cache = drain, prefix, WrapCache()

    async def _admit(self, context: Any, counted: bool) -> None:
        if not self._drain.enter(counted):
            await context.abort(grpc.StatusCode.UNAVAILABLE, SHUTTING_DOWN)
        if counted:
            context.add_done_callback(self._drain.leave)

    def _wrap(self, behavior: Callable, kind: str, _method: str) -> Callable:
        counted = _counted(kind)
        if kind.endswith("_stream"):
            async def stream(request_or_iterator: Any, context: Any) -> Any:
                await self._admit(context, counted)
                async for response in behavior(request_or_iterator, context):
                    yield response
            return stream

        async def unary(request_or_iterator: Any, context: Any) -> Any:
            await self._admit(context, counted)
            return await behavior(request_or_iterator, context)
        return unary

    async def intercept_service(self, continuation: Callable,
                                details: grpc.HandlerCallDetails) -> Any:
        return rewrap(await continuation(details), details, self._prefix, self._wrap,
                      self._cache)
