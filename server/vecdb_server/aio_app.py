"""The grpc.aio flavour of the server (``--server-mode aio``), kept for comparison.

Same servicers, same interceptor mapping, same life cycle as app.ServerApp;
engine calls are blocking, so every call runs the synchronous servicer
method in a thread pool. bench/grpc_bench.py measures it against the
threaded server (see docs/server_api.md for the numbers).
"""
from __future__ import annotations

import asyncio
import contextvars
import inspect
import logging
import time
from concurrent import futures
from typing import Any, AsyncIterator, Callable

import grpc
from grpc_health.v1 import health, health_pb2_grpc

from vecdb_client._proto.vecdb.v1 import (analytics_pb2_grpc, cluster_pb2_grpc,
                                          collections_pb2_grpc, points_pb2_grpc,
                                          tenants_pb2_grpc)

from .analytics_servicer import AnalyticsServicer
from .cluster.status import single_node_status
from .app import NOT_SERVING, SERVICE_NAMES, SERVING, enable_reflection, grpc_options
from .config import ConfigError, ServerConfig
from .dashboard import Dashboard, start_dashboard
from .drain import AioDrainInterceptor, Drain
from .engine import EngineHolder
from .guard import AioGuardInterceptor, Guard, bind, tls_note
from .interceptors import AioErrorInterceptor, ErrorMapper
from .metrics import AioMetricsInterceptor, Metrics, start_metrics
from .servicer import CollectionServicer, PointServicer
from .tenant_servicer import TenantServicer

log = logging.getLogger("vecdb_server")


def _offload(name: str) -> Callable:
    async def method(self: Any, request: Any, context: Any) -> Any:
        loop = asyncio.get_running_loop()
        ctx = contextvars.copy_context()  # the request id (logs.REQUEST_ID) follows the call
        return await loop.run_in_executor(self._pool, ctx.run, getattr(self._sync, name),
                                          request, context)
    method.__name__ = name
    return method


def _async_servicer(base: type, sync: Any, pool: futures.Executor) -> Any:
    """Subclass of the generated base whose unary methods run ``sync``'s in ``pool``."""
    names = {n for klass in base.__mro__ for n in vars(klass)
             if n[:1].isupper() and n != "UpsertStream"
             and not inspect.isasyncgenfunction(getattr(base, n))}  # streams: base's own
    cls = type(f"Aio{type(sync).__name__}", (base,), {n: _offload(n) for n in names})
    obj = cls()
    obj._sync, obj._pool = sync, pool
    return obj


class _AioPoints(points_pb2_grpc.PointServiceServicer):
    _sync: PointServicer
    _pool: futures.Executor

    async def UpsertStream(self, request_iterator: AsyncIterator, context: Any) -> AsyncIterator:
        loop = asyncio.get_running_loop()
        async for request in request_iterator:
            yield await loop.run_in_executor(self._pool, contextvars.copy_context().run,
                                             self._sync.upsert_batch, request)


class _AioAnalytics(analytics_pb2_grpc.AnalyticsServiceServicer):
    _sync: AnalyticsServicer
    _pool: futures.Executor

    async def Duplicates(self, request: Any, context: Any) -> AsyncIterator:
        """Each chunk is computed in the pool (one range-search batch), then sent."""
        loop = asyncio.get_running_loop()
        ctx = contextvars.copy_context()
        chunks = await loop.run_in_executor(self._pool, ctx.run, self._sync.duplicates, request)
        end = object()
        try:
            while True:
                chunk = await loop.run_in_executor(self._pool, ctx.run, next, chunks, end)
                if chunk is end:
                    return
                yield chunk
        finally:  # cancelled or failed: close the generator (ends its engine session)
            await loop.run_in_executor(self._pool, ctx.run, chunks.close)


class AioServerApp:
    """Use inside a running event loop: ``await start()``, ``await stop()``."""

    def __init__(self, cfg: ServerConfig):
        if cfg.cluster_etcd:
            raise ConfigError("cluster mode (cluster_etcd) runs on the threaded server only; "
                              "drop server_mode aio")
        self.cfg = cfg
        self.engine = EngineHolder(cfg.data_dir, cfg.engine)
        self.health = health.aio.HealthServicer()
        self.pool = futures.ThreadPoolExecutor(cfg.max_workers, thread_name_prefix="vecdb-aio")
        self.ready = asyncio.Event()
        self.port: int | None = None
        self._open_task: asyncio.Task | None = None
        self.guard = Guard(cfg, self.engine)  # keys, roles, limits (guard.py); runs first
        self.metrics = Metrics(self.engine, cfg.recall_sample_rate)  # /metrics (metrics.py)
        self.engine.on_open.append(self.metrics.attach)
        self.metrics_port: int | None = None
        self.drain = Drain()  # graceful stop: refuse new calls, let admitted ones finish
        self.server = grpc.aio.server(
            interceptors=[AioMetricsInterceptor(self.metrics), AioDrainInterceptor(self.drain),
                          AioGuardInterceptor(self.guard),
                          AioErrorInterceptor(ErrorMapper())],
            options=grpc_options(cfg),
            maximum_concurrent_rpcs=cfg.max_concurrent_rpcs or None)
        points = _async_servicer(_AioPoints, PointServicer(self.engine, self.metrics.sampler.offer),
                                 self.pool)
        collections = _async_servicer(collections_pb2_grpc.CollectionServiceServicer,
                                      CollectionServicer(self.engine), self.pool)
        collections_pb2_grpc.add_CollectionServiceServicer_to_server(collections, self.server)
        points_pb2_grpc.add_PointServiceServicer_to_server(points, self.server)
        analytics_pb2_grpc.add_AnalyticsServiceServicer_to_server(
            _async_servicer(_AioAnalytics, AnalyticsServicer(self.engine), self.pool), self.server)
        cluster_pb2_grpc.add_ClusterServiceServicer_to_server(
            _async_servicer(cluster_pb2_grpc.ClusterServiceServicer, single_node_status(),
                            self.pool), self.server)
        tenants_pb2_grpc.add_TenantServiceServicer_to_server(
            _async_servicer(tenants_pb2_grpc.TenantServiceServicer, TenantServicer(self.engine),
                            self.pool), self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        enable_reflection(self.server)
        self.dashboard = Dashboard(cfg, self.guard, {  # web UI: its own threads, sync servicers
            "CollectionService": CollectionServicer(self.engine),
            "PointService": PointServicer(self.engine), "ClusterService": single_node_status()},
            self.metrics)
        self.dashboard_port: int | None = None

    async def _set_health(self, status: int) -> None:
        for name in ("", *SERVICE_NAMES):
            await self.health.set(name, status)

    async def start(self) -> int:
        await self._set_health(NOT_SERVING)
        self.port = bind(self.server, self.cfg)  # TLS when tls_cert_file is set
        if not self.port:
            raise OSError(f"cannot bind {self.cfg.host}:{self.cfg.port}")
        await self.server.start()
        log.info("listening on %s:%d (aio, %d workers%s)", self.cfg.host, self.port,
                 self.cfg.max_workers, tls_note(self.cfg))
        try:
            self.metrics_port = start_metrics(self.metrics, self.cfg)
            self.dashboard_port = start_dashboard(self.dashboard, self.cfg)
        except BaseException:  # start_dashboard words its errors as OSError naming the setting
            self.metrics.stop()
            await self.server.stop(0)
            raise
        return self.port

    def open_in_background(self) -> None:
        self._open_task = asyncio.create_task(self._open())

    async def _open(self) -> None:
        try:
            await asyncio.get_running_loop().run_in_executor(None, self.engine.open)
            await self._set_health(SERVING)
            log.info("SERVING")
        except BaseException:  # noqa: BLE001
            log.exception("could not open the database in %s", self.cfg.data_dir)
        finally:
            self.ready.set()

    async def stop(self, grace: float | None = None) -> None:
        grace = self.cfg.grace_period_s if grace is None else grace
        deadline = time.monotonic() + grace
        await self.health.enter_graceful_shutdown()
        log.info("draining %d in-flight call(s), up to %.1f s", self.drain.active, grace)
        await asyncio.get_running_loop().run_in_executor(None, self.drain.drain, grace)
        await self.server.stop(max(0.0, deadline - time.monotonic()))
        if self._open_task is not None:
            await self._open_task
        await asyncio.get_running_loop().run_in_executor(None, self.dashboard.stop)
        await asyncio.get_running_loop().run_in_executor(None, self.metrics.stop)
        await asyncio.get_running_loop().run_in_executor(
            None, lambda: self.engine.close(wait_s=max(1.0, grace)))
        self.pool.shutdown(wait=False)
        log.info("stopped")
