"""Prometheus metrics on their own HTTP port (``/metrics``), one registry per server.

Every ServerApp/AioServerApp owns a :class:`Metrics` (tests run several servers in
one process, so nothing goes to prometheus_client's global default registry).
What is exported, and from where (docs/server_api.md "Metrics" lists every name):

* RPCs: :class:`MetricsInterceptor` / :class:`AioMetricsInterceptor` (outermost, so
  they see the status code the error interceptor sets) count calls and time them
  by method and status code. A streaming upsert counts as one call.
* Collections, shards, payload indexes, disk-full state: :class:`EngineCollector`
  reads the open database at scrape time.
* Checkpoint durations: ``Database.on_checkpoint`` (an engine hook) feeds a histogram.
* Encoder time: ``vecdb_encoder_seconds`` observes every model call of the encoder
  stage (through ``vecdb.encoders.observers``).
* GPU: ``vecdb_gpu_memory_bytes``, searches per backend, fallbacks and placement failures
  per shard from describe (docs/gpu.md), and torch's allocated/reserved totals per device
  only when something
  (an encoder, the torch search backend) has loaded ``torch`` and CUDA is available (a
  scrape never imports torch itself: that costs seconds and starts its threads).
* Sampled recall: :class:`RecallSampler` re-runs a fraction of ANN searches exactly
  in a background thread and exports recall@k per collection.
"""
from __future__ import annotations

import logging
import queue
import random
import sys
import threading
import time
from dataclasses import replace
from typing import Any, Callable, Iterable

import grpc
import numpy as np
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.registry import Collector

from vecdb import encoders
from vecdb.errors import NotFound, Unavailable

from .engine import EngineHolder
from .interceptors import WrapCache, by_response, rewrap

log = logging.getLogger("vecdb_server.metrics")
RPC_BUCKETS = (.0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60)
CHECKPOINT_BUCKETS = (.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 30, 60, 120, 300)
INDEX_STATES = ("exact", "training", "built")
RECALL_EWMA_ALPHA = 0.1  # weight of each new sampled query in vecdb_sampled_recall


def _short(method: str) -> str:
    """'/vecdb.v1.PointService/Search' -> 'PointService/Search'."""
    service, _, name = method.lstrip("/").rpartition("/")
    return f"{service.rsplit('.', 1)[-1]}/{name}"


class Metrics:
    """The registry, the metric objects, the recall sampler and the HTTP endpoint."""

    def __init__(self, engine: EngineHolder, recall_sample_rate: float = 0.0):
        self.registry = r = CollectorRegistry()
        self.rpc_requests = Counter("vecdb_rpc_requests", "gRPC calls finished, by method and "
                                    "status code", ["method", "code"], registry=r)
        self.rpc_seconds = Histogram("vecdb_rpc_duration_seconds", "gRPC call latency (a "
                                     "stream: its whole life), by method and status code",
                                     ["method", "code"], buckets=RPC_BUCKETS, registry=r)
        self.checkpoint_seconds = Histogram("vecdb_checkpoint_duration_seconds",
                                            "time to write one shard's index checkpoint",
                                            ["collection"], buckets=CHECKPOINT_BUCKETS,
                                            registry=r)
        self.encoder_seconds = Histogram("vecdb_encoder_seconds", "time spent encoding texts "
                                         "to vectors, per (batched) model call", registry=r)
        self.recall = Gauge("vecdb_sampled_recall", "recall@k of sampled ANN searches against "
                            "an exact re-run (moving average over sampled queries)",
                            ["collection"], registry=r)
        self.recall_samples = Counter("vecdb_recall_samples", "sampled queries whose recall "
                                      "was measured", ["collection"], registry=r)
        self.recall_dropped = Counter("vecdb_recall_samples_dropped", "sampled searches "
                                      "dropped because the recall queue was full", registry=r)
        r.register(EngineCollector(engine))
        self.sampler = RecallSampler(engine, recall_sample_rate, self._record_recall,
                                     self.recall_dropped.inc)
        self._httpd: Any = None
        self._thread: threading.Thread | None = None
        self._ewma: dict[str, float] = {}

    # ---- feeds --------------------------------------------------------------
    def observe_rpc(self, method: str, code: str, seconds: float) -> None:
        self.rpc_requests.labels(method, code).inc()
        self.rpc_seconds.labels(method, code).observe(seconds)

    def observe_checkpoint(self, collection: str, shard: int, seconds: float) -> None:
        self.checkpoint_seconds.labels(collection).observe(seconds)

    def _record_recall(self, collection: str, recalls: list[float]) -> None:
        avg = self._ewma.get(collection)
        for value in recalls:
            avg = value if avg is None else avg + RECALL_EWMA_ALPHA * (value - avg)
        if avg is not None:
            self._ewma[collection] = avg
            self.recall.labels(collection).set(avg)
            self.recall_samples.labels(collection).inc(len(recalls))

    def attach(self, db: Any) -> None:
        """Called once the database is open: hook its checkpoints."""
        db.on_checkpoint = self.observe_checkpoint

    # ---- life cycle -------------------------------------------------------------
    def start(self, host: str, port: int) -> int:
        """Serve /metrics on host:port (0 = a free port); returns the port."""
        self._httpd, self._thread = start_http_server(port, addr=host, registry=self.registry)
        self.sampler.start()
        encoders.observers.append(self._observe_encoder)
        return self._httpd.server_port

    def _observe_encoder(self, spec: str, kind: str, texts: int, seconds: float) -> None:
        self.encoder_seconds.observe(seconds)

    def stop(self) -> None:
        if self._observe_encoder in encoders.observers:
            encoders.observers.remove(self._observe_encoder)
        self.sampler.stop()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None


def start_metrics(metrics: Metrics, cfg: Any) -> int | None:
    """Start /metrics as configured (metrics_port -1 = off); returns the port, logged as
    "metrics on HOST:PORT". Raises OSError naming the setting when it cannot bind."""
    if cfg.metrics_port < 0:
        log.info("metrics off (metrics_port -1)")
        return None
    host = cfg.metrics_host or cfg.host
    try:
        port = metrics.start(host, cfg.metrics_port)
    except OSError as exc:
        raise OSError(f"cannot bind metrics_port {host}:{cfg.metrics_port} ({exc.strerror or exc}); "
                      f"set metrics_port to a free port, 0 for any, -1 for off") from None
    log.info("metrics on %s:%d (/metrics, recall_sample_rate %g)", host, port,
             cfg.recall_sample_rate)
    return port


class EngineCollector(Collector):
    """Collection, shard and payload-index gauges, read from the engine at scrape time."""

    def __init__(self, engine: EngineHolder):
        self._engine = engine
        self._torch: Any = None
        self._torch_checked = False

    def describe(self) -> Iterable:
        return []  # nothing to describe before the database is open

    def collect(self) -> Iterable[GaugeMetricFamily]:
        ready = GaugeMetricFamily("vecdb_ready", "1 when the database is open and serving")
        full = GaugeMetricFamily("vecdb_disk_full", "1 while writes are refused after a "
                                 "disk-full error (reads still work)")
        fams = {name: GaugeMetricFamily(name, doc, labels=labels) for name, doc, labels in (
            ("vecdb_collection_points", "live points", ["collection"]),
            ("vecdb_collection_bytes_on_disk", "record and checkpoint bytes", ["collection"]),
            ("vecdb_collection_memory_bytes", "host RAM of the collection's vectors/codes and "
             "indexes (approximate; a quantized collection's on-disk vectors not counted)",
             ["collection"]),
            ("vecdb_shard_points", "points in the shard's index", ["collection", "shard"]),
            ("vecdb_shard_index_state", "1 for the shard's index state (exact: brute force, "
             "training: ANN build running, built: ANN in use)", ["collection", "shard", "state"]),
            ("vecdb_shard_applied_seq", "last WAL sequence applied to the index",
             ["collection", "shard"]),
            ("vecdb_shard_checkpoint_seq", "WAL sequence covered by the newest index checkpoint",
             ["collection", "shard"]),
            ("vecdb_shard_deleted_pending", "HNSW tombstones not yet compacted",
             ["collection", "shard"]),
            ("vecdb_payload_index_ready", "1 when the payload index is ready, 0 while building",
             ["collection", "field", "type"]),
            ("vecdb_gpu_memory_bytes", "bytes of the shard's vectors and indexes resident on "
             "its GPU (device cuda:N; 0 for shards on the cpu)", ["collection", "shard", "device"]),
        )}
        fams.update({name: CounterMetricFamily(name, doc, labels=labels) for name, doc, labels in (
            ("vecdb_gpu_searches", "searches of a GPU shard by the backend that answered them "
             "(torch, faiss_flat, ivf_flat, ivf_pq, cagra; cpu: no usable GPU copy)",
             ["collection", "shard", "backend"]),
            ("vecdb_gpu_search_fallbacks", "searches that failed on the GPU and ran on the CPU",
             ["collection", "shard", "backend"]),
            ("vecdb_gpu_placement_failures", "failed placements of a shard's copies on its GPU "
             "(the reason: describe's gpu_error)", ["collection", "shard"]),
        )})
        try:
            with self._engine.session() as db:
                ready.add_metric([], 1)
                full.add_metric([], 1 if db.disk_full else 0)
                for cfg in db.list_collections():
                    try:
                        self._collection(fams, db.describe_collection(cfg.name))
                    except NotFound:  # dropped meanwhile
                        continue
        except Unavailable:
            ready.add_metric([], 0)
        yield ready
        yield full
        yield from fams.values()
        yield from self._gpu()

    @staticmethod
    def _collection(fams: dict[str, GaugeMetricFamily], desc: Any) -> None:
        name = desc.config.name
        fams["vecdb_collection_points"].add_metric([name], desc.points)
        fams["vecdb_collection_bytes_on_disk"].add_metric([name], desc.bytes_on_disk)
        fams["vecdb_collection_memory_bytes"].add_metric([name], desc.memory_bytes)
        for i, s in enumerate(desc.shards):
            shard = str(i)
            fams["vecdb_shard_points"].add_metric([name, shard], s.points)
            for state in INDEX_STATES:
                fams["vecdb_shard_index_state"].add_metric([name, shard, state],
                                                           1 if s.index_state == state else 0)
            fams["vecdb_shard_applied_seq"].add_metric([name, shard], s.applied_seq)
            fams["vecdb_shard_checkpoint_seq"].add_metric([name, shard], s.checkpoint_seq)
            fams["vecdb_shard_deleted_pending"].add_metric([name, shard], s.deleted_pending)
            fams["vecdb_gpu_memory_bytes"].add_metric([name, shard, s.device], s.gpu_memory_bytes)
            for fam, counts in (("vecdb_gpu_searches", s.gpu_served),
                                ("vecdb_gpu_search_fallbacks", s.gpu_fallbacks)):
                for backend, n in counts.items():
                    fams[fam].add_metric([name, shard, backend], n)
            if s.device != "cpu" or s.gpu_placement_failures:
                fams["vecdb_gpu_placement_failures"].add_metric([name, shard], s.gpu_placement_failures)
        for field, info in desc.payload_indexes.items():
            fams["vecdb_payload_index_ready"].add_metric(
                [name, field, info["type"]], 1 if info["state"] == "ready" else 0)

    def _gpu(self) -> Iterable[GaugeMetricFamily]:
        """torch.cuda.memory_allocated per device, only when torch and CUDA are there."""
        if not self._torch_checked and "torch" in sys.modules:  # loaded by an encoder
            self._torch_checked = True
            try:
                torch = sys.modules["torch"]
                if torch.cuda.is_available():
                    self._torch = torch
            except Exception:  # noqa: BLE001 - a broken torch install exports nothing
                log.info("torch is loaded but unusable; no GPU metrics", exc_info=True)
        if self._torch is None:
            return
        fam = GaugeMetricFamily("vecdb_gpu_memory_allocated_bytes", "torch.cuda.memory_allocated "
                                "of this process, per device", labels=["device"])
        res = GaugeMetricFamily("vecdb_gpu_memory_reserved_bytes", "torch.cuda.memory_reserved "
                                "of this process, per device (allocated + the caching allocator's "
                                "cache)", labels=["device"])
        for dev in range(self._torch.cuda.device_count()):
            fam.add_metric([str(dev)], self._torch.cuda.memory_allocated(dev))
            res.add_metric([str(dev)], self._torch.cuda.memory_reserved(dev))
        yield fam
        yield res


class RecallSampler:
    """Re-runs a fraction of non-exact search queries with exact=True in one background
    thread.

    recall@k of a query = |ANN ids ∩ exact ids| / |exact ids| (queries with no exact
    hit are skipped). The queries of a batch are sampled one by one (a 1,000-query
    batch drawn whole was a burst of 1,000 exact searches beside the searches being
    served), and the thread pauses after each re-run so that it takes at most
    ``share`` of one core over time (an exact search costs tens of ANN searches). The
    queue is bounded: when it is full the sample is dropped, so a search is never
    delayed. The exact re-run sees the data at its own time, so writes between the two
    runs can lower (or raise) a sample slightly.
    """

    def __init__(self, engine: EngineHolder, rate: float,
                 on_result: Callable[[str, list[float]], None], on_drop: Callable[[], Any],
                 queue_size: int = 64, share: float = 0.05):
        self.rate, self.share, self._engine = rate, share, engine
        self._stopping = threading.Event()
        self._on_result, self._on_drop = on_result, on_drop
        self._queue: queue.Queue = queue.Queue(queue_size)
        self._thread: threading.Thread | None = None

    def offer(self, args: dict, results: list) -> None:
        """Called after a Search returned (its response is not held up)."""
        if self.rate <= 0 or args["params"].exact or self._thread is None:
            return
        rows = self._rows(len(results))
        if not rows:
            return
        if len(rows) < len(results):
            args = {**args, "queries": np.asarray(args["queries"])[rows]}
        try:
            self._queue.put_nowait((args, [set(results[i].ids) for i in rows]))
        except queue.Full:
            self._on_drop()

    def _rows(self, n: int) -> list[int]:
        """The queries of an n-query search to re-run: each with probability ``rate``."""
        if self.rate >= 1:
            return list(range(n))
        if n == 1:
            return [0] if random.random() < self.rate else []
        k = int(np.random.binomial(n, self.rate))
        return sorted(random.sample(range(n), k)) if k else []

    def start(self) -> None:
        if self.rate > 0 and self._thread is None:
            self._stopping.clear()
            self._queue = queue.Queue(self._queue.maxsize)  # no stop marker left by stop()
            self._thread = threading.Thread(target=self._run, name="vecdb-recall", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        thread, self._thread = self._thread, None
        self._stopping.set()  # ends a pause
        if thread is not None:
            while True:  # make room for the stop marker
                try:
                    self._queue.put_nowait(None)
                    break
                except queue.Full:
                    try:
                        self._queue.get_nowait()
                    except queue.Empty:
                        pass
            thread.join(5)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            args, ann = item
            t0 = time.perf_counter()
            try:
                self._measure(args, ann)
            except Exception:  # noqa: BLE001 - a failed sample is skipped, never fatal
                log.debug("recall sample failed", exc_info=True)
            if self._stopping.wait((time.perf_counter() - t0) * (1 / self.share - 1)):
                return

    def _measure(self, args: dict, ann: list[set]) -> None:
        exact_args = {**args, "params": replace(args["params"], exact=True),
                      "with_payload": False, "with_vector": False}
        with self._engine.session() as db:
            name = db.catalog.resolve(args["collection"]).name  # aliases count for their target
            exact = db.search(**exact_args)
        recalls = [len(a & set(e.ids)) / len(e.ids) for a, e in zip(ann, exact) if len(e.ids)]
        if recalls:
            self._on_result(name, recalls)


class _Timer:
    __slots__ = ("t0",)

    def __init__(self) -> None:
        self.t0 = time.perf_counter()

    def elapsed(self) -> float:
        return time.perf_counter() - self.t0


def _code(context: Any, failed: bool) -> str:
    try:
        code = context.code()
    except Exception:  # noqa: BLE001 - older grpc without ServicerContext.code()
        code = None
    if isinstance(code, grpc.StatusCode):
        return code.name
    if isinstance(code, int) and not isinstance(code, bool):
        return next((c.name for c in grpc.StatusCode if c.value[0] == code), str(code))
    return "UNKNOWN" if failed else "OK"


class MetricsInterceptor(grpc.ServerInterceptor):
    """Threaded server: count and time every call. Put it FIRST (outermost)."""

    def __init__(self, metrics: Metrics):
        self._m, self._cache = metrics, WrapCache()

    def _unary(self, behavior: Callable, method: str) -> Callable:
        def wrapper(request: Any, context: Any) -> Any:
            timer, failed = _Timer(), True
            try:
                response = behavior(request, context)
                failed = False
                return response
            finally:
                self._m.observe_rpc(method, _code(context, failed), timer.elapsed())
        return wrapper

    def _stream(self, behavior: Callable, method: str) -> Callable:
        def wrapper(request: Any, context: Any) -> Any:
            timer, failed = _Timer(), True
            try:
                yield from behavior(request, context)
                failed = False
            finally:
                self._m.observe_rpc(method, _code(context, failed), timer.elapsed())
        return wrapper

    def intercept_service(self, continuation: Callable, details: grpc.HandlerCallDetails) -> Any:
        return rewrap(continuation(details), details, "/",  # every call, health included
                      by_response(self._unary, self._stream, _short), self._cache)


class AioMetricsInterceptor(grpc.aio.ServerInterceptor):
    """grpc.aio flavour of :class:`MetricsInterceptor`."""

    def __init__(self, metrics: Metrics):
        self._m, self._cache = metrics, WrapCache()

    def _unary(self, behavior: Callable, method: str) -> Callable:
        async def wrapper(request: Any, context: Any) -> Any:
            timer, failed = _Timer(), True
            try:
                response = await behavior(request, context)
                failed = False
                return response
            finally:
                self._m.observe_rpc(method, _code(context, failed), timer.elapsed())
        return wrapper

    def _stream(self, behavior: Callable, method: str) -> Callable:
        async def wrapper(request: Any, context: Any) -> Any:
            timer, failed = _Timer(), True
            try:
                async for response in behavior(request, context):
                    yield response
                failed = False
            finally:
                self._m.observe_rpc(method, _code(context, failed), timer.elapsed())
        return wrapper

    async def intercept_service(self, continuation: Callable,
                                details: grpc.HandlerCallDetails) -> Any:
        return rewrap(await continuation(details), details, "/",
                      by_response(self._unary, self._stream, _short), self._cache)
