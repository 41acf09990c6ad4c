"""Wire <-> engine for AnalyticsService (analytics.proto), beside convert.py: the same
from_proto_x / to_proto_x pairs, for clustering, outliers and duplicates."""
from __future__ import annotations

from typing import Any

from vecdb.analytics import ClusterJob, DuplicatesChunk, OutliersResult
from vecdb_client._proto.vecdb.v1 import analytics_pb2 as apb

from .convert import (_ENCODER, _opt, from_proto_filter_field, from_proto_vectors,
                      to_proto_payloads, to_proto_texts, to_proto_vectors)

DEFAULT_SEED = 1234


def from_proto_cluster(msg: apb.ClusterRequest) -> dict[str, Any]:
    """-> keyword arguments of Database.cluster."""
    return {"collection": msg.collection, "k": msg.k, "filter": from_proto_filter_field(msg),
            "sample": _opt(msg, "sample"), "iterations": _opt(msg, "iterations", 20),
            "write_label": _opt(msg, "write_label"), "seed": _opt(msg, "seed", DEFAULT_SEED),
            "typical": _opt(msg, "typical", 5), "init": _opt(msg, "init", "kmeans++")}


def to_proto_cluster_progress(p: dict) -> apb.ClusterProgress:
    return apb.ClusterProgress(**p)


def to_proto_cluster_job(job: ClusterJob) -> apb.ClusterJob:
    out = apb.ClusterJob(progress=to_proto_cluster_progress(job.progress()))
    r = job.result
    if job.state == "done" and r is not None:
        typical = [apb.ClusterMembers(points=[
            apb.TypicalPoint(id=pid, distance=dist, payload="" if pay is None else _ENCODER.encode(pay),
                             text=txt or "")
            for pid, dist, pay, txt in members]) for members in r.typical]
        out.result.CopyFrom(apb.ClusterResult(
            centroids=to_proto_vectors(r.centroids), sizes=r.sizes.tolist(), inertia=r.inertia,
            points=r.points, trained_on=r.trained_on, typical=typical, labelled=r.labelled))
    return out


def from_proto_outliers(msg: apb.OutliersRequest) -> dict[str, Any]:
    """-> keyword arguments of Database.outliers."""
    centroids = from_proto_vectors(msg.centroids, "centroids") if msg.HasField("centroids") else None
    return {"collection": msg.collection, "n": _opt(msg, "n", 10), "method": _opt(msg, "method", "knn"),
            "k": _opt(msg, "k", 10), "filter": from_proto_filter_field(msg),
            "sample": _opt(msg, "sample"), "centroids": centroids,
            "seed": _opt(msg, "seed", DEFAULT_SEED), "with_payload": _opt(msg, "with_payload", True)}


def to_proto_outliers(res: OutliersResult, with_payload: bool) -> apb.OutliersResponse:
    found = res.outliers
    return apb.OutliersResponse(
        ids=[o.id for o in found], scores=[o.score for o in found],
        payloads=to_proto_payloads([o.payload for o in found]) if with_payload else "",
        texts=to_proto_texts([o.text for o in found]) if with_payload else [],
        scored=res.scored, population=res.population)


def from_proto_duplicates(msg: apb.DuplicatesRequest) -> dict[str, Any]:
    """-> keyword arguments of Database.duplicates."""
    return {"collection": msg.collection, "threshold": msg.threshold,
            "filter": from_proto_filter_field(msg), "limit": _opt(msg, "limit", 100_000),
            "batch": _opt(msg, "batch", 1024)}


def to_proto_duplicates_chunk(ch: DuplicatesChunk) -> apb.DuplicatesChunk:
    return apb.DuplicatesChunk(
        ids_a=[a for a, _, _ in ch.pairs], ids_b=[b for _, b, _ in ch.pairs],
        distances=[d for _, _, d in ch.pairs], scanned=ch.scanned, population=ch.population,
        done=ch.done, truncated=ch.truncated, groups=[apb.DuplicateGroup(ids=g) for g in ch.groups])
