"""The threaded gRPC server: wiring, start, readiness, graceful stop.

Life cycle: start() binds the port and serves health (NOT_SERVING) at once,
then opens the database in a background thread (WAL recovery); health flips
to SERVING when it is open. stop() flips health to NOT_SERVING, refuses new
calls, gives in-flight ones ``grace_period_s`` to finish (drain.py says why
before grpc's own stop), then checkpoints and closes the database.
"""
from __future__ import annotations

import logging
import threading
import time
from concurrent import futures

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from vecdb_client._proto.vecdb.v1 import analytics_pb2, analytics_pb2_grpc
from vecdb_client._proto.vecdb.v1 import cluster_pb2, cluster_pb2_grpc
from vecdb_client._proto.vecdb.v1 import collections_pb2, collections_pb2_grpc
from vecdb_client._proto.vecdb.v1 import points_pb2, points_pb2_grpc
from vecdb_client._proto.vecdb.v1 import tenants_pb2, tenants_pb2_grpc

from .analytics_servicer import AnalyticsServicer
from .cluster.status import single_node_status
from .config import ServerConfig
from .dashboard import Dashboard, start_dashboard
from .drain import Drain, DrainInterceptor
from .engine import EngineHolder
from .guard import Guard, GuardInterceptor, bind, tls_note
from .interceptors import ErrorInterceptor, ErrorMapper
from .metrics import Metrics, MetricsInterceptor, start_metrics
from .servicer import CollectionServicer, PointServicer
from .tenant_servicer import TenantServicer

log = logging.getLogger("vecdb_server")
SERVICE_NAMES = (
    collections_pb2.DESCRIPTOR.services_by_name["CollectionService"].full_name,
    points_pb2.DESCRIPTOR.services_by_name["PointService"].full_name,
    analytics_pb2.DESCRIPTOR.services_by_name["AnalyticsService"].full_name,
    cluster_pb2.DESCRIPTOR.services_by_name["ClusterService"].full_name,
    tenants_pb2.DESCRIPTOR.services_by_name["TenantService"].full_name,
)
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
# The node-to-node server's threads are a bound that peers never reach: a forwarded
# write waits on its shard's lock in one, while that lock's holder waits on a peer's
# replica for another, so a pool that peers' writes can fill deadlocks two nodes
# forwarding at each other (until the lock wait ends). What bounds these calls is what
# sends them: each peer's client workers and router threads. Threads start on demand.
INTERNAL_WORKERS = 1024


def grpc_options(cfg: ServerConfig) -> list[tuple[str, int]]:
    return [("grpc.max_receive_message_length", cfg.max_message_bytes),
            ("grpc.max_send_message_length", cfg.max_message_bytes),
            ("grpc.so_reuseport", 0)]


def enable_reflection(server: grpc.Server) -> None:
    names = (*SERVICE_NAMES, health_pb2.DESCRIPTOR.services_by_name["Health"].full_name,
             reflection.SERVICE_NAME)
    reflection.enable_server_reflection(names, server)


class ServerApp:
    """One server process' object graph. Not a singleton: tests run several at once."""

    def __init__(self, cfg: ServerConfig):
        self.cfg = cfg
        self.engine = EngineHolder(cfg.data_dir, cfg.engine)
        self.health = health.HealthServicer()
        self.ready = threading.Event()  # set when open finished, successfully or not
        self.port: int | None = None
        self._opener: threading.Thread | None = None
        self.guard = Guard(cfg, self.engine)  # keys, roles, limits (guard.py); runs first
        self.metrics = Metrics(self.engine, cfg.recall_sample_rate)  # /metrics (metrics.py)
        self.engine.on_open.append(self.metrics.attach)
        self.metrics_port: int | None = None
        self.drain = Drain()  # graceful stop: refuse new calls, let admitted ones finish
        self.server = self._grpc_server("vecdb-grpc", cfg.max_concurrent_rpcs or None)
        # cluster mode: node-to-node calls have a server and worker threads of their own
        self.internal = self._grpc_server("vecdb-internal", None, INTERNAL_WORKERS) \
            if cfg.cluster_etcd else None
        self.internal_port = 0
        local = (CollectionServicer(self.engine),
                 PointServicer(self.engine, self.metrics.sampler.offer),
                 AnalyticsServicer(self.engine))
        self.cluster = None
        if cfg.cluster_etcd:  # cluster mode (docs/cluster.md); imported only then
            from .cluster.wiring import ClusterWiring
            from .cluster.write_keys import KeysCollector
            self.cluster = ClusterWiring(cfg, self.engine, *local[:2])
            local = self.cluster.servicers()
            self.guard.alias_source = self.cluster.aliases  # scoped keys see etcd's aliases
            self.metrics.registry.register(KeysCollector(self.cluster.router.keys))
            self.cluster.report_readiness(self.health.set)  # readiness.IN_SYNC
        for server in (self.server, self.internal) if self.internal else (self.server,):
            collections_pb2_grpc.add_CollectionServiceServicer_to_server(local[0], server)
            points_pb2_grpc.add_PointServiceServicer_to_server(local[1], server)
            analytics_pb2_grpc.add_AnalyticsServiceServicer_to_server(local[2], server)
            cluster_pb2_grpc.add_ClusterServiceServicer_to_server(
                self.cluster.status_servicer() if self.cluster else single_node_status(),
                server)
        if self.cluster is None:  # tenants: single node only (docs/tenants.md)
            tenants_pb2_grpc.add_TenantServiceServicer_to_server(TenantServicer(self.engine),
                                                                 self.server)
        health_pb2_grpc.add_HealthServicer_to_server(self.health, self.server)
        enable_reflection(self.server)
        self.dashboard = Dashboard(cfg, self.guard, {  # web UI over the same servicers
            "CollectionService": local[0], "PointService": local[1],
            "ClusterService": self.cluster.status_servicer() if self.cluster
            else single_node_status()}, self.metrics)
        self.dashboard_port: int | None = None

    def _grpc_server(self, threads: str, max_rpcs: int | None,
                     workers: int | None = None) -> grpc.Server:
        return grpc.server(
            futures.ThreadPoolExecutor(workers or self.cfg.max_workers,
                                       thread_name_prefix=threads),
            interceptors=[MetricsInterceptor(self.metrics), DrainInterceptor(self.drain),
                          GuardInterceptor(self.guard),
                          ErrorInterceptor(ErrorMapper())],
            options=grpc_options(self.cfg), maximum_concurrent_rpcs=max_rpcs)

    def _set_health(self, status: int) -> None:
        for name in ("", *SERVICE_NAMES):
            self.health.set(name, status)

    def start(self) -> int:
        """Bind and serve (health NOT_SERVING, data calls UNAVAILABLE); returns the port.

        Call open_in_background() next; main() always does both."""
        self._set_health(NOT_SERVING)
        self.port = bind(self.server, self.cfg)  # TLS when tls_cert_file is set
        if not self.port:
            raise OSError(f"cannot bind {self.cfg.host}:{self.cfg.port}")
        self.server.start()
        log.info("listening on %s:%d (threaded, %d workers%s)", self.cfg.host, self.port,
                 self.cfg.max_workers, tls_note(self.cfg))
        if self.internal is not None:  # plaintext, like every node-to-node call
            self.internal_port = self.internal.add_insecure_port(
                f"{self.cfg.host}:{self.cfg.cluster_internal_port}")
            if not self.internal_port:
                self.server.stop(0)
                raise OSError(f"cannot bind {self.cfg.host}:{self.cfg.cluster_internal_port}")
            self.internal.start()
            log.info("node-to-node calls on %s:%d (up to %d workers, started on demand)",
                     self.cfg.host, self.internal_port, INTERNAL_WORKERS)
        try:
            self.metrics_port = start_metrics(self.metrics, self.cfg)
            self.dashboard_port = start_dashboard(self.dashboard, self.cfg)
        except BaseException:  # start_dashboard words its errors as OSError naming the setting
            self.metrics.stop()
            if self.internal is not None:
                self.internal.stop(0)
            self.server.stop(0)
            raise
        return self.port

    def open_in_background(self) -> None:
        """Open the database (WAL recovery) in a thread; health flips to SERVING after."""
        self._opener = threading.Thread(target=self._open, name="vecdb-open", daemon=True)
        self._opener.start()

    def _open(self) -> None:
        try:
            self.engine.open()
            if self.cluster is not None:
                self.cluster.join(self.port, self.internal_port)  # registers in etcd
            self._set_health(SERVING)
            log.info("SERVING")
        except BaseException:  # noqa: BLE001 - reported by main through open_error
            log.exception("could not open the database in %s", self.cfg.data_dir)
        finally:
            self.ready.set()

    def stop(self, grace: float | None = None) -> None:
        """Graceful stop; idempotent. Returns once the database is checkpointed and closed."""
        grace = self.cfg.grace_period_s if grace is None else grace
        deadline = time.monotonic() + grace
        self.health.enter_graceful_shutdown()
        log.info("draining %d in-flight call(s), up to %.1f s", self.drain.active, grace)
        self.drain.drain(grace)
        if self.cluster is not None:
            self.cluster.leave()  # revoke the lease first: failover need not wait the TTL
        if self.internal is not None:
            self.internal.stop(max(0.0, deadline - time.monotonic()))
        self.server.stop(max(0.0, deadline - time.monotonic())).wait()
        if self._opener is not None:
            self._opener.join()
        self.dashboard.stop()
        self.metrics.stop()
        self.engine.close(wait_s=max(1.0, grace))
        log.info("stopped")
