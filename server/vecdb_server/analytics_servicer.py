"""AnalyticsService: clustering jobs, outliers, near-duplicates (vecdb/analytics/).

Like servicer.py: each method converts the request, calls the engine, converts
back; vecdb errors go to the error interceptor. Duplicates is a server stream:
its chunks are produced lazily, one range-search batch at a time, so a large
scan never holds all pairs in memory (or in one message)."""
from __future__ import annotations

from typing import Any, Iterator

from vecdb_client._proto.vecdb.v1 import analytics_pb2 as apb
from vecdb_client._proto.vecdb.v1 import analytics_pb2_grpc as agrpc

from . import convert_analytics as conv
from .engine import EngineHolder


class AnalyticsServicer(agrpc.AnalyticsServiceServicer):
    def __init__(self, engine: EngineHolder):
        self._engine = engine

    def Cluster(self, request: apb.ClusterRequest, context: Any) -> apb.ClusterJob:
        """Returns at once; the job runs in the background (GetClusterJob polls it)."""
        with self._engine.session() as db:
            return conv.to_proto_cluster_job(db.cluster(**conv.from_proto_cluster(request)))

    def GetClusterJob(self, request: apb.GetClusterJobRequest, context: Any) -> apb.ClusterJob:
        with self._engine.session() as db:
            return conv.to_proto_cluster_job(db.cluster_job(request.collection, request.job_id))

    def Outliers(self, request: apb.OutliersRequest, context: Any) -> apb.OutliersResponse:
        args = conv.from_proto_outliers(request)
        with self._engine.session() as db:
            return conv.to_proto_outliers(db.outliers(**args), args["with_payload"])

    def duplicates(self, request: apb.DuplicatesRequest) -> Iterator[apb.DuplicatesChunk]:
        """The chunks, produced as they are asked for (shared with the aio server); the
        engine session stays open across the whole stream (a stop waits for it)."""
        with self._engine.session() as db:
            for chunk in db.duplicates(**conv.from_proto_duplicates(request)):
                yield conv.to_proto_duplicates_chunk(chunk)

    def Duplicates(self, request: apb.DuplicatesRequest,
                   context: Any) -> Iterator[apb.DuplicatesChunk]:
        yield from self.duplicates(request)
