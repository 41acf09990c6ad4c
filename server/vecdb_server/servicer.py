"""gRPC servicers: each method converts the request, calls the engine, converts back.

Errors are not handled here: vecdb errors propagate to the error interceptor,
which maps them to status codes. Methods are synchronous; the asyncio server
runs them in its executor (see aio_app.py).
"""
from __future__ import annotations

import time
from typing import Any, Callable, Iterator

from vecdb_client._proto.vecdb.v1 import collections_pb2 as cpb
from vecdb_client._proto.vecdb.v1 import collections_pb2_grpc as cgrpc
from vecdb_client._proto.vecdb.v1 import points_pb2 as ppb
from vecdb_client._proto.vecdb.v1 import points_pb2_grpc as pgrpc
from vecdb_client._proto.vecdb.v1 import types_pb2 as tpb

from vecdb.errors import FailedPrecondition

from . import convert, convert_query
from .engine import EngineHolder
from .tenant_servicer import from_proto_tenant, tenant_view


class CollectionServicer(cgrpc.CollectionServiceServicer):
    def __init__(self, engine: EngineHolder):
        self._engine = engine

    def CreateCollection(self, request: cpb.CreateCollectionRequest,
                         context: Any) -> cpb.CollectionInfo:
        if request.replication_factor > 1:
            raise FailedPrecondition("replication_factor above 1 needs cluster mode (a server "
                                     "started with --cluster-etcd, docs/cluster.md)",
                                     "replication_factor")
        with self._engine.session() as db:
            desc = db.create_collection(**convert.from_proto_create_collection(request))
        return convert.to_proto_collection_info(desc)

    def GetServerInfo(self, request: cpb.ServerInfoRequest, context: Any) -> cpb.ServerInfo:
        from vecdb import __version__
        now = time.time()
        return cpb.ServerInfo(version=__version__, started_at=self._engine.started_at,
                              uptime_s=now - self._engine.started_at, ready=self._engine.ready)

    def ListCollections(self, request: cpb.ListCollectionsRequest,
                        context: Any) -> cpb.ListCollectionsResponse:
        with self._engine.session() as db:
            return convert.to_proto_collection_list(db.list_collections())

    def DescribeCollection(self, request: cpb.DescribeCollectionRequest,
                           context: Any) -> cpb.CollectionInfo:
        tenant = from_proto_tenant(request)
        with self._engine.session() as db:
            info = convert.to_proto_collection_info(db.describe_collection(request.collection))
            if tenant is None:
                return info
            return tenant_view(info, db.count(request.collection, tenant=tenant))

    def DropCollection(self, request: cpb.DropCollectionRequest,
                       context: Any) -> cpb.DropCollectionResponse:
        with self._engine.session() as db:
            db.drop_collection(request.name)
        return cpb.DropCollectionResponse()

    def CreateAlias(self, request: cpb.AliasRequest, context: Any) -> cpb.AliasResponse:
        with self._engine.session() as db:
            db.create_alias(request.alias, request.collection)
        return cpb.AliasResponse()

    def SetAlias(self, request: cpb.AliasRequest, context: Any) -> cpb.AliasResponse:
        with self._engine.session() as db:
            db.set_alias(request.alias, request.collection)
        return cpb.AliasResponse()

    def DeleteAlias(self, request: cpb.DeleteAliasRequest, context: Any) -> cpb.AliasResponse:
        with self._engine.session() as db:
            db.delete_alias(request.alias)
        return cpb.AliasResponse()

    def ListAliases(self, request: cpb.ListAliasesRequest,
                    context: Any) -> cpb.ListAliasesResponse:
        collection = request.collection if request.HasField("collection") else None
        with self._engine.session() as db:
            return convert.to_proto_aliases(db.list_aliases(collection))

    def CreatePayloadIndex(self, request: cpb.CreatePayloadIndexRequest,
                           context: Any) -> cpb.PayloadIndexResponse:
        """Returns once the index is declared; the build runs in the background."""
        with self._engine.session() as db:
            db.create_payload_index(request.collection, request.field, request.type)
        return cpb.PayloadIndexResponse()

    def DropPayloadIndex(self, request: cpb.DropPayloadIndexRequest,
                         context: Any) -> cpb.PayloadIndexResponse:
        with self._engine.session() as db:
            db.drop_payload_index(request.collection, request.field)
        return cpb.PayloadIndexResponse()


    def CreateSnapshot(self, request: cpb.CreateSnapshotRequest, context: Any) -> cpb.SnapshotInfo:
        with self._engine.session() as db:
            info = db.create_snapshot(request.collection,
                                      request.name if request.HasField("name") else None,
                                      request.tarball)
        return convert.to_proto_snapshot(info)

    def ListSnapshots(self, request: cpb.ListSnapshotsRequest,
                      context: Any) -> cpb.ListSnapshotsResponse:
        with self._engine.session() as db:
            return cpb.ListSnapshotsResponse(
                snapshots=[convert.to_proto_snapshot(i) for i in db.list_snapshots()])

    def DeleteSnapshot(self, request: cpb.DeleteSnapshotRequest,
                       context: Any) -> cpb.DeleteSnapshotResponse:
        with self._engine.session() as db:
            db.delete_snapshot(request.name)
        return cpb.DeleteSnapshotResponse()

    def RestoreSnapshot(self, request: cpb.RestoreSnapshotRequest, context: Any) -> cpb.CollectionInfo:
        with self._engine.session() as db:
            desc = db.restore_snapshot(request.name,
                                       request.collection if request.HasField("collection") else None)
            return convert.to_proto_collection_info(desc)

    def ReembedCollection(self, request: cpb.ReembedCollectionRequest,
                          context: Any) -> cpb.CollectionInfo:
        """Returns once the target exists (model loaded); the copy runs in the background."""
        with self._engine.session() as db:
            return convert.to_proto_collection_info(
                db.reembed(**convert.from_proto_reembed(request)))


class PointServicer(pgrpc.PointServiceServicer):
    def __init__(self, engine: EngineHolder,
                 on_search: Callable[[dict, list], None] | None = None):
        self._engine = engine
        # called with (search kwargs, results) after each Search (the recall sampler)
        self._on_search = on_search

    def Upsert(self, request: ppb.UpsertRequest, context: Any) -> tpb.WriteResult:
        points = convert.from_proto_point_batch(request.points)
        with self._engine.session() as db:
            return convert.to_proto_write_result(db.upsert(request.collection, **points,
                                                           tenant=from_proto_tenant(request)))

    def upsert_batch(self, request: ppb.UpsertRequest) -> ppb.UpsertAck:
        """One batch of UpsertStream; durable when it returns (shared with the aio server)."""
        return ppb.UpsertAck(batch_id=request.batch_id, result=self.Upsert(request, None))

    def UpsertStream(self, request_iterator: Iterator[ppb.UpsertRequest],
                     context: Any) -> Iterator[ppb.UpsertAck]:
        for request in request_iterator:
            yield self.upsert_batch(request)

    def Delete(self, request: ppb.DeleteRequest, context: Any) -> tpb.WriteResult:
        args = convert.from_proto_delete(request)
        args["tenant"] = from_proto_tenant(request)
        with self._engine.session() as db:
            return convert.to_proto_write_result(db.delete(**args))

    def UpdatePayload(self, request: ppb.UpdatePayloadRequest, context: Any) -> tpb.WriteResult:
        args = convert.from_proto_update_payload(request)
        args["tenant"] = from_proto_tenant(request)
        with self._engine.session() as db:
            return convert.to_proto_write_result(db.update_payload(**args))

    def UpdateVectors(self, request: ppb.UpdateVectorsRequest, context: Any) -> tpb.WriteResult:
        args = convert.from_proto_update_vectors(request)
        args["tenant"] = from_proto_tenant(request)
        with self._engine.session() as db:
            return convert.to_proto_write_result(db.update_vectors(**args))

    def Get(self, request: ppb.GetRequest, context: Any) -> ppb.GetResponse:
        args = {**convert.from_proto_get(request), "tenant": from_proto_tenant(request)}
        with self._engine.session() as db:
            return convert.to_proto_get(db.get(**args), args["with_vector"])

    def Count(self, request: ppb.CountRequest, context: Any) -> ppb.CountResponse:
        args = convert.from_proto_count(request)
        args["tenant"] = from_proto_tenant(request)
        with self._engine.session() as db:
            return convert.to_proto_count(db.count(**args))

    def Scroll(self, request: ppb.ScrollRequest, context: Any) -> ppb.ScrollResponse:
        args = {**convert.from_proto_scroll(request), "tenant": from_proto_tenant(request)}
        with self._engine.session() as db:
            return convert.to_proto_scroll(db.scroll(**args), args["with_vector"])

    def Search(self, request: ppb.SearchRequest, context: Any) -> ppb.SearchResponse:
        if convert_query.is_beyond(request):  # expression / group_by: vecdb.recommend, grouping
            return self._search_beyond(request)
        args = {**convert.from_proto_search(request), "tenant": from_proto_tenant(request)}
        with self._engine.session() as db:
            if args["texts"] is not None:  # embedded once; the recall sampler reuses them
                args.update(queries=db.embed_queries(args["collection"], args["texts"],
                                                     args.get("using")), texts=None)
            results = db.search(**args, raw_payloads=True)  # stored JSON straight to the wire
        if self._on_search is not None and "keywords" not in args:  # recall of dense searches
            self._on_search(args, results)
        return convert.to_proto_search(results)

    def _search_beyond(self, request: ppb.SearchRequest) -> ppb.SearchResponse:
        kind, args = convert_query.from_proto_search_beyond(request)
        args["tenant"] = from_proto_tenant(request)
        with self._engine.session() as db:
            if kind == "groups":
                return convert.to_proto_search(db.search_groups(**args))
            return convert.to_proto_search([db.search_expression(**args, raw_payloads=True)])

    def Recommend(self, request: ppb.RecommendRequest, context: Any) -> ppb.SearchResponse:
        args = {**convert_query.from_proto_recommend(request), "tenant": from_proto_tenant(request)}
        with self._engine.session() as db:
            return convert.to_proto_search([db.recommend(**args, raw_payloads=True)])

    def RangeSearch(self, request: ppb.RangeSearchRequest, context: Any) -> ppb.SearchResponse:
        args = {**convert.from_proto_range_search(request), "tenant": from_proto_tenant(request)}
        with self._engine.session() as db:
            results = db.range_search(**args)
        return convert.to_proto_search(results)
