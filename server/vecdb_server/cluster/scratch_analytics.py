"""Outliers and near-duplicates through the cluster, on a gathered copy.

Both need every matching point at once (a point's outlier score is its distance to its
nearest neighbours anywhere; a duplicate pair can span shards), so the answering node
gathers the points matching the filter from every shard (one in-sync replica each,
pages of Scroll, like any read) into a scratch database in its data dir (async
durability, no background work), runs the engine's own single-node analytics on that
copy and removes it. So the answer is a single node's on the same points (a sampled
answer draws its sample from the gathered order, which differs from a single node's).
Cost: the matching points (vectors, payloads, texts) over the network once and on the
answering node's disk and memory for the call. Bounds: at most max_analytics_jobs
such calls at once per node (the servicer's slots), the gather stops (and its copy is
removed) when the client has gone or its deadline has passed, and it refuses with
RESOURCE_EXHAUSTED, before each page, when the page would leave less than MIN_FREE_BYTES
free on the data volume.

K-means runs the same way, to the end within the Cluster call (the job comes back
done); the answering node keeps the finished job (MAX_JOBS), its id ends with
"@<node id>" and GetClusterJob on any node is forwarded there. ``write_label``: the
copy is labelled by the engine, then the labels are written to the collection through
the cluster, one UpdatePayload per cluster (LABEL_BATCH ids at a time): each part is
atomic per shard, like any cluster write, not one batch for the whole collection.
"""
from __future__ import annotations

import base64
import contextlib
import glob
import json
import os
import shutil
import tempfile
import threading
from collections import OrderedDict
from typing import Any, Iterator

import numpy as np
from vecdb_client._proto.vecdb.v1 import analytics_pb2 as apb
from vecdb_client._proto.vecdb.v1 import collections_pb2 as cpb
from vecdb_client._proto.vecdb.v1 import points_pb2 as ppb

from vecdb.api import Database
from vecdb.config import DatabaseOptions
from vecdb.errors import FailedPrecondition, NotFound, ResourceExhausted, Unavailable

from .. import convert_analytics as conv
from . import state as st

SCRATCH = ".analytics-scratch-"
PAGE = 2000
MAX_JOBS = 64  # finished k-means jobs a node keeps for GetClusterJob
LABEL_BATCH = 10_000
MIN_FREE_BYTES = 1 << 30  # free space a gather leaves on the data volume, at least
ON_DISK = 3  # a gathered page's bytes on disk (WAL, tables, index), at most, per byte read


def remove_leftovers(data_dir: str) -> None:
    """Scratch copies a killed process left behind."""
    for path in glob.glob(os.path.join(data_dir, SCRATCH + "*")):
        shutil.rmtree(path, ignore_errors=True)


def _check_call(context: Any, what: str) -> None:
    """Between pages: stop when the client has gone or its deadline has passed."""
    left = context.time_remaining()
    if not context.is_active() or (left is not None and left <= 0):
        raise Unavailable(f"{what}: the call ended (cancelled or past its deadline) while "
                          "the matching points were gathered", "collection")


def _check_disk(data_dir: str, page: ppb.ScrollResponse, what: str) -> None:
    pts = page.points
    need = ON_DISK * (len(pts.vectors.data) + len(pts.payloads) + sum(map(len, pts.texts)))
    vfs = os.statvfs(data_dir)
    free = vfs.f_bavail * vfs.f_frsize
    if free - need < MIN_FREE_BYTES:
        raise ResourceExhausted(f"{what}: the gathered copy would leave {free - need} bytes "
                                f"free on the data volume (at least {MIN_FREE_BYTES} must "
                                "stay free); use a narrower filter or free disk space",
                                "collection")


def _pages(svc: Any, spec: st.CollectionSpec, request: Any,
           context: Any) -> Iterator[ppb.ScrollResponse]:
    what = f"gathering {spec.name!r}"
    for i in range(spec.shards):
        cursor = None
        while True:
            _check_call(context, what)
            sub = ppb.ScrollRequest(collection=st.local_name(spec.uid, i), limit=PAGE,
                                    with_vector=True, with_payload=True, cursor=cursor)
            if request.HasField("filter"):
                sub.filter.CopyFrom(request.filter)
            page = svc.r.read_shard(spec, i, "Scroll", sub, context.time_remaining())
            _check_disk(svc.node.engine.data_dir, page, what)
            yield page
            if not page.HasField("next_cursor"):
                break
            cursor = page.next_cursor


@contextlib.contextmanager
def scratch_copy(svc: Any, spec: st.CollectionSpec, request: Any,
                 context: Any) -> Iterator[Database]:
    """A scratch database holding the points of ``spec`` matching request.filter, as a
    collection named like it (one shard, flat, the same metric); removed however the
    call ends."""
    create = cpb.CreateCollectionRequest.FromString(base64.b64decode(spec.request))
    data_dir = svc.node.engine.data_dir
    path, db = tempfile.mkdtemp(prefix=SCRATCH, dir=data_dir), None
    try:
        db = Database.open(path, DatabaseOptions(durability="async", background=False,
                                                 block_cache_mb=8, device="cpu"))
        made = False
        for page in _pages(svc, spec, request, context):
            pts = page.points
            if not pts.ids:
                continue
            vecs = np.frombuffer(pts.vectors.data, "<f4").reshape(len(pts.ids), -1)
            if not made:
                db.create_collection(spec.name, dim=vecs.shape[1],
                                     metric=create.metric or "cosine", index="flat", shards=1)
                made = True
            texts = list(pts.texts) if len(pts.texts) == len(pts.ids) else None
            db.upsert(spec.name, list(pts.ids), vecs,
                      payloads=json.loads(pts.payloads) if pts.payloads else None,
                      texts=[t or None for t in texts] if texts else None)
        if not made:
            where = "filter" if request.HasField("filter") else "collection"
            raise FailedPrecondition("no points match the filter" if request.HasField("filter")
                                     else f"no points in collection {spec.name!r}", where)
        yield db
    finally:
        if db is not None:
            with contextlib.suppress(Exception):
                db.drop_collection(spec.name)
            with contextlib.suppress(Exception):
                db.close()
        shutil.rmtree(path, ignore_errors=True)


def outliers(svc: Any, request: apb.OutliersRequest, context: Any) -> apb.OutliersResponse:
    spec = svc.node.spec(request.collection)
    args = conv.from_proto_outliers(request)
    args.update(collection=spec.name, filter=None)  # the copy holds the matching points
    with scratch_copy(svc, spec, request, context) as db:
        return conv.to_proto_outliers(db.outliers(**args), args["with_payload"])


def duplicates(svc: Any, request: apb.DuplicatesRequest,
               context: Any) -> Iterator[apb.DuplicatesChunk]:
    spec = svc.node.spec(request.collection)
    args = conv.from_proto_duplicates(request)
    args.update(collection=spec.name, filter=None)
    with scratch_copy(svc, spec, request, context) as db:
        for chunk in db.duplicates(**args):
            yield conv.to_proto_duplicates_chunk(chunk)


class FinishedJobs:
    """The k-means jobs this node ran (finished), newest MAX_JOBS, by cluster job id."""

    def __init__(self) -> None:
        self._jobs: OrderedDict[str, apb.ClusterJob] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, job: apb.ClusterJob) -> None:
        with self._lock:
            self._jobs[job.progress.job_id] = job
            while len(self._jobs) > MAX_JOBS:
                self._jobs.popitem(last=False)

    def get(self, collection: str, job_id: str) -> apb.ClusterJob:
        with self._lock:
            job = self._jobs.get(job_id)
        if job is None or job.progress.collection != collection:
            raise NotFound(f"no clustering job {job_id!r} for collection {collection!r} (the "
                           "node that ran it keeps its last jobs in memory)", "job_id")
        return job


def owner_of(job_id: str) -> str:
    """The node that ran a cluster-mode k-means job."""
    return job_id.rpartition("@")[2]


def kmeans(svc: Any, request: apb.ClusterRequest, context: Any) -> apb.ClusterJob:
    spec = svc.node.spec(request.collection)
    args = conv.from_proto_cluster(request)
    args.update(collection=spec.name, filter=None, wait=True)
    with scratch_copy(svc, spec, request, context) as db:
        out = conv.to_proto_cluster_job(db.cluster(**args))
        if args["write_label"] is not None:
            out.result.labelled = _write_labels(svc, spec, db, args["write_label"])
    out.progress.job_id = f"{out.progress.job_id}@{svc.node.id}"
    svc.jobs.add(out)
    return out


def _write_labels(svc: Any, spec: st.CollectionSpec, db: Database, field: str) -> int:
    """Copy the labels the engine wrote into the scratch copy to the collection; the
    points changed (one deleted meanwhile is skipped, as on a single node)."""
    by_label: dict[int, list[str]] = {}
    cursor = None
    while True:
        page = db.scroll(spec.name, PAGE, cursor, with_vector=False, with_payload=True)
        for pt in page.points:
            if (pt.payload or {}).get(field) is not None:
                by_label.setdefault(pt.payload[field], []).append(pt.id)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    done = 0
    for label, ids in sorted(by_label.items()):
        for s in range(0, len(ids), LABEL_BATCH):
            req = ppb.UpdatePayloadRequest(collection=spec.name, ids=ids[s:s + LABEL_BATCH],
                                           set_json=json.dumps({field: label}))
            done += svc.points.by_ids_or_filter("UpdatePayload", req).count
    return done
