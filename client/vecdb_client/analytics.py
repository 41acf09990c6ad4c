"""Analytics in the SDK: clustering, outliers, near-duplicates (AnalyticsService).

The result types, the request/response conversion, and the methods :class:`Client`
and :class:`AsyncClient` get from the two mixins at the end (same names, same
arguments; the async ones are awaitable). Distances, lower = closer: cosine
1 - similarity, l2 squared distance, ip minus the inner product.
"""
from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Iterator, NamedTuple

import numpy as np

from ._filters import to_proto_filter
from ._proto.vecdb.v1 import analytics_pb2 as apb
from ._proto.vecdb.v1 import analytics_pb2_grpc as agrpc
from .errors import DeadlineExceededError, FailedPreconditionError

POLL_S = (0.02, 0.25)  # cluster(wait=True) polls from 20 ms, growing 1.5x up to 0.25 s


# ---------------------------------------------------------------- results
class ClusterProgress(NamedTuple):
    """A clustering job: state running | done | failed; phase gathering | training |
    assigning | writing | done, with ``done`` of ``total`` (iterations or points)."""

    job_id: str
    collection: str
    state: str
    phase: str
    done: int
    total: int
    k: int
    write_label: str
    error: str
    started: float
    finished: float


class TypicalPoint(NamedTuple):
    """A typical member of a cluster: squared L2 ``distance`` to its centroid."""

    id: str
    distance: float
    payload: dict | None
    text: str | None


@dataclass(frozen=True)
class ClusterResult:
    centroids: np.ndarray  # (k, dim); normalized for cosine collections
    sizes: list[int]  # points per cluster
    inertia: float  # sum of squared L2 distances of the points to their centroid
    points: int  # points assigned (all matching the filter)
    trained_on: int  # points k-means trained on (the sample, or all)
    typical: list[list[TypicalPoint]] = field(default_factory=list)
    labelled: int = 0  # points whose write_label field was written

    def nearest_points_to_centroids(self, n: int | None = None) -> list[list[TypicalPoint]]:
        """Per cluster, its most typical members (nearest its centroid first): at most
        ``n`` each, of the ``typical`` the clustering was asked for."""
        return [members[:n] for members in self.typical]


@dataclass(frozen=True)
class ClusterJob:
    progress: ClusterProgress
    result: ClusterResult | None = None  # set once progress.state is "done"

    @property
    def id(self) -> str:
        return self.progress.job_id

    @property
    def state(self) -> str:
        return self.progress.state


class Outlier(NamedTuple):
    id: str
    score: float  # higher = more of an outlier
    payload: dict | None = None
    text: str | None = None


@dataclass(frozen=True)
class Outliers:
    """Highest score first; iterating yields :class:`Outlier`."""

    outliers: list[Outlier]
    scored: int  # points scored (the sample, or all matching)
    population: int  # points matching the filter

    def __iter__(self) -> Iterator[Outlier]:
        return iter(self.outliers)

    def __len__(self) -> int:
        return len(self.outliers)


class DuplicatePair(NamedTuple):
    id_a: str
    id_b: str
    distance: float


@dataclass(frozen=True)
class DuplicatesChunk:
    """One streamed part; the last has ``done``, ``truncated`` and ``groups``."""

    pairs: list[DuplicatePair]
    scanned: int
    population: int
    done: bool = False
    truncated: bool = False
    groups: list[list[str]] = field(default_factory=list)


@dataclass(frozen=True)
class Duplicates:
    pairs: list[DuplicatePair]
    groups: list[list[str]]  # connected groups of the pairs, largest first
    truncated: bool  # the limit stopped the scan
    population: int


# ---------------------------------------------------------------- conversion
def _json(text: str) -> dict | None:
    return json.loads(text) if text else None


def progress_of(msg: apb.ClusterProgress) -> ClusterProgress:
    return ClusterProgress(msg.job_id, msg.collection, msg.state, msg.phase, msg.done, msg.total,
                           msg.k, msg.write_label, msg.error, msg.started, msg.finished)


def job_of(msg: apb.ClusterJob) -> ClusterJob:
    if not msg.HasField("result"):
        return ClusterJob(progress_of(msg.progress))
    r = msg.result
    cents = np.frombuffer(r.centroids.data, "<f4").reshape(r.centroids.count, r.centroids.dim)
    typical = [[TypicalPoint(p.id, p.distance, _json(p.payload), p.text or None) for p in m.points]
               for m in r.typical]
    return ClusterJob(progress_of(msg.progress),
                      ClusterResult(cents.copy(), list(r.sizes), r.inertia, r.points, r.trained_on,
                                    typical, r.labelled))


def cluster_request(collection: str, k: int, filter: Any, sample: int | None, iterations: int,
                    write_label: str | None, seed: int, typical: int,
                    init: str) -> apb.ClusterRequest:
    return apb.ClusterRequest(collection=collection, k=k, filter=to_proto_filter(filter),
                              sample=sample, iterations=iterations, write_label=write_label,
                              seed=seed, typical=typical, init=init)


def job_finished(job: ClusterJob, deadline: float | None) -> bool:
    """One poll of cluster(wait=True): True once done; raises when it failed or timed out."""
    p = job.progress
    if p.state == "done":
        return True
    if p.state == "failed":
        raise FailedPreconditionError(f"clustering {p.collection!r} failed: {p.error}",
                                      field="write_label" if p.write_label and p.phase == "writing"
                                      else "collection")
    if deadline is not None and time.monotonic() >= deadline:
        raise DeadlineExceededError(f"clustering still running after the timeout ({p.phase} "
                                    f"{p.done}/{p.total}); it goes on on the server (job "
                                    f"{p.job_id})", field="collection")
    return False


def outliers_request(collection: str, n: int, method: str, k: int, filter: Any,
                     sample: int | None, centroids: Any, seed: int,
                     with_payload: bool) -> apb.OutliersRequest:
    req = apb.OutliersRequest(collection=collection, n=n, method=method, k=k,
                              filter=to_proto_filter(filter), sample=sample, seed=seed,
                              with_payload=with_payload)
    if isinstance(centroids, ClusterResult):
        centroids = centroids.centroids
    elif isinstance(centroids, ClusterJob):
        if centroids.result is None:
            raise FailedPreconditionError("that clustering job has no result yet", field="centroids")
        centroids = centroids.result.centroids
    if centroids is not None:
        c = np.ascontiguousarray(np.atleast_2d(np.asarray(centroids, dtype="<f4")))
        req.centroids.count, req.centroids.dim, req.centroids.data = c.shape[0], c.shape[1], c.tobytes()
    return req


def outliers_of(msg: apb.OutliersResponse) -> Outliers:
    pays = json.loads(msg.payloads) if msg.payloads else [None] * len(msg.ids)
    texts = list(msg.texts) or [""] * len(msg.ids)
    return Outliers([Outlier(i, s, p, t or None) for i, s, p, t in
                     zip(msg.ids, msg.scores, pays, texts)], msg.scored, msg.population)


def duplicates_request(collection: str, threshold: float, filter: Any, limit: int | None,
                       batch: int | None) -> apb.DuplicatesRequest:
    return apb.DuplicatesRequest(collection=collection, threshold=threshold,
                                 filter=to_proto_filter(filter), limit=limit, batch=batch)


def chunk_of(msg: apb.DuplicatesChunk) -> DuplicatesChunk:
    return DuplicatesChunk([DuplicatePair(a, b, d) for a, b, d in
                            zip(msg.ids_a, msg.ids_b, msg.distances)], msg.scanned, msg.population,
                           msg.done, msg.truncated, [list(g.ids) for g in msg.groups])


def collect(chunks: list[DuplicatesChunk]) -> Duplicates:
    last = chunks[-1]
    return Duplicates([p for ch in chunks for p in ch.pairs], last.groups, last.truncated,
                      last.population)


# ---------------------------------------------------------------- client methods
class AnalyticsMethods:
    """Mixed into :class:`vecdb_client.Client` (needs its _call, _channel, _md, settings)."""

    @property
    def _analytics(self) -> agrpc.AnalyticsServiceStub:
        stub = self.__dict__.get("_analytics_stub")
        if stub is None:
            stub = self.__dict__["_analytics_stub"] = agrpc.AnalyticsServiceStub(self._channel)
        return stub

    def cluster(self, collection: str, k: int, *, filter: Any = None, sample: int | None = None,
                iterations: int = 20, write_label: str | None = None, seed: int = 1234,
                typical: int = 5, init: str = "kmeans++", wait: bool = False,
                timeout: float | None = None) -> ClusterJob:
        """FAISS k-means over the points matching ``filter``, as a server-side job (role
        read-write). ``sample``: train on that many random points (all are assigned).
        ``write_label``: write each point's cluster number into that payload field
        (payload-only writes in batches of 4096; nothing is written if a payload would
        be invalid). ``typical``: members per cluster nearest their centroid, kept in
        the result (``result.nearest_points_to_centroids()``). ``init``: "kmeans++" or
        "random" (faiss.Kmeans' default) initial centroids. ``wait=True`` polls until
        the job is done (FailedPreconditionError if it failed; DeadlineExceededError after
        ``timeout``, the job goes on); otherwise poll ``cluster_job(collection, job.id)``
        or ``describe_collection(collection).clustering``."""
        req = cluster_request(collection, k, filter, sample, iterations, write_label, seed, typical,
                              init)
        job = job_of(self._call(self._analytics.Cluster, req, idempotent=False, timeout=timeout))
        deadline = _deadline(self.settings.timeout if timeout is None else timeout)
        pause = POLL_S[0]
        while wait and not job_finished(job, deadline):
            time.sleep(pause)
            pause = min(POLL_S[1], pause * 1.5)
            job = self.cluster_job(collection, job.id, timeout=timeout)
        return job

    def cluster_job(self, collection: str, job_id: str, *,
                    timeout: float | None = None) -> ClusterJob:
        """A clustering job's progress, and its result once done (NotFoundError for a job
        the server does not know: jobs live in its memory)."""
        req = apb.GetClusterJobRequest(collection=collection, job_id=job_id)
        return job_of(self._call(self._analytics.GetClusterJob, req, idempotent=True, timeout=timeout))

    def outliers(self, collection: str, n: int = 10, *, method: str = "knn", k: int = 10,
                 filter: Any = None, sample: int | None = None, centroids: Any = None,
                 seed: int = 1234, with_payload: bool = True,
                 timeout: float | None = None) -> Outliers:
        """The ``n`` points with the highest outlier score: ``knn`` the mean distance to
        their ``k`` nearest neighbours (exact; cost N x N x dim), ``centroid`` the distance
        to the nearest of ``centroids`` (an array, a ClusterResult or a finished
        ClusterJob). ``sample``: score only that many random points (each exactly)."""
        req = outliers_request(collection, n, method, k, filter, sample, centroids, seed, with_payload)
        return outliers_of(self._call(self._analytics.Outliers, req, idempotent=True, timeout=timeout))

    def duplicates_stream(self, collection: str, threshold: float, *, filter: Any = None,
                          limit: int | None = None, batch: int | None = None,
                          timeout: float | None = None) -> Iterator[DuplicatesChunk]:
        """Pairs closer than ``threshold`` as the server finds them, chunk by chunk; the
        last chunk (``done``) holds the connected groups. ``timeout`` bounds the stream."""
        req = duplicates_request(collection, threshold, filter, limit, batch)
        stream = self._analytics.Duplicates(req, timeout=self.settings.timeout if timeout is None
                                            else timeout, metadata=self._md)
        return _sync_chunks(stream)

    def duplicates(self, collection: str, threshold: float, *, filter: Any = None,
                   limit: int | None = None, timeout: float | None = None) -> Duplicates:
        """Every pair of points closer than ``threshold`` (at most ``limit``, then
        ``truncated``), and their connected groups (duplicates_stream, collected)."""
        return collect(list(self.duplicates_stream(collection, threshold, filter=filter,
                                                   limit=limit, timeout=timeout)))


def _deadline(timeout: float | None) -> float | None:
    return None if timeout is None else time.monotonic() + timeout


def _sync_chunks(stream: Any) -> Iterator[DuplicatesChunk]:
    import grpc

    from .errors import from_rpc_error
    try:
        for msg in stream:
            yield chunk_of(msg)
    except grpc.RpcError as exc:
        raise from_rpc_error(exc) from None


class AsyncAnalyticsMethods(AnalyticsMethods):
    """The awaitable twins, mixed into :class:`vecdb_client.AsyncClient`."""

    async def cluster(self, collection: str, k: int, *, filter: Any = None,  # type: ignore[override]
                      sample: int | None = None, iterations: int = 20,
                      write_label: str | None = None, seed: int = 1234, typical: int = 5,
                      init: str = "kmeans++", wait: bool = False,
                      timeout: float | None = None) -> ClusterJob:
        req = cluster_request(collection, k, filter, sample, iterations, write_label, seed, typical,
                              init)
        job = job_of(await self._call(self._analytics.Cluster, req, idempotent=False, timeout=timeout))
        deadline = _deadline(self.settings.timeout if timeout is None else timeout)
        pause = POLL_S[0]
        while wait and not job_finished(job, deadline):
            await asyncio.sleep(pause)
            pause = min(POLL_S[1], pause * 1.5)
            job = await self.cluster_job(collection, job.id, timeout=timeout)
        return job

    async def cluster_job(self, collection: str, job_id: str, *,  # type: ignore[override]
                          timeout: float | None = None) -> ClusterJob:
        req = apb.GetClusterJobRequest(collection=collection, job_id=job_id)
        return job_of(await self._call(self._analytics.GetClusterJob, req, idempotent=True,
                                       timeout=timeout))

    async def outliers(self, collection: str, n: int = 10, *, method: str = "knn",  # type: ignore[override]
                       k: int = 10, filter: Any = None, sample: int | None = None,
                       centroids: Any = None, seed: int = 1234, with_payload: bool = True,
                       timeout: float | None = None) -> Outliers:
        req = outliers_request(collection, n, method, k, filter, sample, centroids, seed, with_payload)
        return outliers_of(await self._call(self._analytics.Outliers, req, idempotent=True,
                                            timeout=timeout))

    async def duplicates_stream(self, collection: str, threshold: float, *,  # type: ignore[override]
                                filter: Any = None, limit: int | None = None,
                                batch: int | None = None,
                                timeout: float | None = None) -> AsyncIterator[DuplicatesChunk]:
        import grpc

        from .errors import from_rpc_error
        req = duplicates_request(collection, threshold, filter, limit, batch)
        call = self._analytics.Duplicates(req, timeout=self.settings.timeout if timeout is None
                                          else timeout, metadata=self._md)
        try:
            async for msg in call:
                yield chunk_of(msg)
        except grpc.RpcError as exc:
            raise from_rpc_error(exc) from None

    async def duplicates(self, collection: str, threshold: float, *,  # type: ignore[override]
                         filter: Any = None, limit: int | None = None,
                         timeout: float | None = None) -> Duplicates:
        return collect([ch async for ch in self.duplicates_stream(
            collection, threshold, filter=filter, limit=limit, timeout=timeout)])
