"""The gRPC services of a cluster node: internal calls act on this node's replicas
(router.Router.internal); client calls are routed over the cluster. RPCs the cluster
does not route yet answer FAILED_PRECONDITION naming themselves (docs/cluster.md)."""
from __future__ import annotations

import base64
import functools
import logging
import re
import threading
import uuid
from typing import Any, Iterator

import grpc
from vecdb_client._proto.vecdb.v1 import collections_pb2 as cpb
from vecdb_client._proto.vecdb.v1 import collections_pb2_grpc as cgrpc
from vecdb_client._proto.vecdb.v1 import points_pb2 as ppb
from vecdb_client._proto.vecdb.v1 import points_pb2_grpc as pgrpc
from vecdb_client._proto.vecdb.v1 import types_pb2 as tpb

from vecdb import jobs
from vecdb.errors import AlreadyExists, FailedPrecondition, NotFound, Unavailable, VecdbError

from ..guard import Rejected
from . import hybrid_search, local_reads, local_writes, merge, queries, scratch_analytics, write_keys
from . import state as st
from .peers import PeerDeadline
from .router import Router

log = logging.getLogger("vecdb_server.cluster")
STATE_ORDER = {"exact": 0, "training": 1, "built": 2}
# the engine collection CreateCollection makes (and drops) to validate a request; any
# left by a killed process are dropped by the first CreateCollection after a start
PROBE = "cluster-probe-"
COPY_NAME = re.compile(r"\bc([0-9a-f]+)-s(\d+)\b")


def _unsupported(name: str) -> FailedPrecondition:
    return FailedPrecondition(f"{name} is not available in cluster mode yet (docs/cluster.md "
                              "lists what the cluster routes)", "collection")


@functools.lru_cache(maxsize=1024)
def _higher_is_better(request: str) -> bool:
    """From a CollectionSpec.request: cosine/ip scores rank high first, l2 low first."""
    req = cpb.CreateCollectionRequest.FromString(base64.b64decode(request))
    return (req.metric or "cosine") != "l2"


def _with_name(request: Any, name: str) -> Any:
    out = type(request)()
    out.CopyFrom(request)
    out.collection = name
    return out


class ClusterPointServicer(pgrpc.PointServiceServicer):
    def __init__(self, router: Router):
        self.r = router
        self.node = router.node

    def _internal(self, method: str, request: Any, context: Any) -> Any | None:
        md = self.r.route_of(context)
        return None if md is None else (self.r.internal(method, request, md),)

    # ---- writes --------------------------------------------------------------------------
    def Upsert(self, request: ppb.UpsertRequest, context: Any) -> tpb.WriteResult:
        got = self._internal("Upsert", request, context)
        return got[0] if got else self._upsert(request, _key(context), _left(context))

    def _upsert(self, request: ppb.UpsertRequest, key: str | None,
                left: float | None = None) -> tpb.WriteResult:
        if request.points.sparse:
            raise _unsupported("sparse vectors")
        if request.points.named_vectors:
            raise _unsupported("named vectors")
        spec = self.node.spec(request.collection)
        parts = merge.split_ids(request.points.ids, spec.shards)
        want = key and write_keys.digest("Upsert", request)
        here = local_writes.upsert(self.r, spec, request, parts, key, want)
        if here is not None:
            return _write_result(here)
        batches = merge.slice_batches(request.points, parts)

        def one(i: int) -> tpb.WriteResult:
            sub = ppb.UpsertRequest(collection=st.local_name(spec.uid, i), points=batches[i])
            return self.r.write_shard(spec, i, "Upsert", sub, key, want, left)
        return _write_result(self.r.fan_out(one, sorted(parts)))

    def UpsertStream(self, request_iterator: Iterator[ppb.UpsertRequest],
                     context: Any) -> Iterator[ppb.UpsertAck]:
        if self.r.route_of(context) is not None:
            raise _unsupported("UpsertStream between nodes")
        key = _key(context)
        for req in request_iterator:  # batch i of the stream (and of its retries): key/i
            yield ppb.UpsertAck(batch_id=req.batch_id, result=self._upsert(
                req, key and write_keys.derived(key, req.batch_id), _left(context)))

    def Delete(self, request: ppb.DeleteRequest, context: Any) -> tpb.WriteResult:
        got = self._internal("Delete", request, context)
        return got[0] if got else self.by_ids_or_filter("Delete", request, _key(context),
                                                         _left(context))

    def UpdatePayload(self, request: ppb.UpdatePayloadRequest, context: Any) -> tpb.WriteResult:
        got = self._internal("UpdatePayload", request, context)
        return got[0] if got else self.by_ids_or_filter("UpdatePayload", request,
                                                         _key(context), _left(context))

    def UpdateVectors(self, request: ppb.UpdateVectorsRequest, context: Any) -> tpb.WriteResult:
        got = self._internal("UpdateVectors", request, context)
        if got:
            return got[0]
        if request.named_vectors:
            raise _unsupported("named vectors")
        spec, key, left = self.node.spec(request.collection), _key(context), _left(context)
        parts = merge.split_ids(request.ids, spec.shards)
        batch = tpb.PointBatch(ids=request.ids, vectors=request.vectors)
        want = key and write_keys.digest("UpdateVectors", request)

        def one(i: int) -> tpb.WriteResult:
            rows = merge.slice_batch(batch, parts[i])
            sub = ppb.UpdateVectorsRequest(collection=st.local_name(spec.uid, i),
                                           ids=rows.ids, vectors=rows.vectors)
            return self.r.write_shard(spec, i, "UpdateVectors", sub, key, want, left)
        return _write_result(self.r.fan_out(one, sorted(parts)))

    def by_ids_or_filter(self, method: str, request: Any, key: str | None = None,
                         left: float | None = None) -> tpb.WriteResult:
        """A Delete/UpdatePayload by ids or filter through each shard's primary."""
        spec = self.node.spec(request.collection)
        if request.ids:
            parts = merge.split_ids(request.ids, spec.shards)
        else:  # by filter (or invalid: every shard's validation says the same)
            parts = {i: None for i in range(spec.shards)}
        want = key and write_keys.digest(method, request)

        def one(i: int) -> tpb.WriteResult:
            sub = _with_name(request, st.local_name(spec.uid, i))
            if parts[i] is not None:
                del sub.ids[:]
                sub.ids.extend(request.ids[p] for p in parts[i])
            return self.r.write_shard(spec, i, method, sub, key, want, left)
        return _write_result(self.r.fan_out(one, sorted(parts)))

    # ---- reads ---------------------------------------------------------------------------
    def Get(self, request: ppb.GetRequest, context: Any) -> ppb.GetResponse:
        got = self._internal("Get", request, context)
        if got:
            return got[0]
        spec = self.node.spec(request.collection)
        return ppb.GetResponse(points=self.get_points(spec, request.ids, request=request))

    def get_points(self, spec: st.CollectionSpec, ids: Any, with_vector: bool = False,
                   request: ppb.GetRequest | None = None,
                   primary: bool = False) -> tpb.PointBatch:
        """The points with these ids (request order, missing ones omitted), each read
        from its own shard (its primary alone with ``primary``)."""
        if request is None:
            request = ppb.GetRequest(collection=spec.name, ids=ids, with_vector=with_vector,
                                     with_payload=False)
        parts = merge.split_ids(ids, spec.shards)

        def one(i: int) -> ppb.GetResponse:
            sub = _with_name(request, st.local_name(spec.uid, i))
            del sub.ids[:]
            sub.ids.extend(ids[p] for p in parts[i])
            return self.r.read_shard(spec, i, "Get", sub, primary_only=primary)
        answers = self.r.fan_out(one, sorted(parts))
        return merge.concat_batches([answers[i].points for i in sorted(answers)],
                                    order=list(ids))

    def Count(self, request: ppb.CountRequest, context: Any) -> ppb.CountResponse:
        got = self._internal("Count", request, context)
        if got:
            return got[0]
        spec = self.node.spec(request.collection)
        answers = self.all_shards(spec, "Count", request, context, request.allow_partial)
        return ppb.CountResponse(count=sum(a.count for a in answers.values()),
                                 partial=len(answers) < spec.shards)

    def all_shards(self, spec: st.CollectionSpec, method: str, request: Any,
                   context: Any = None, partial: bool = False) -> dict:
        """shard -> its answer to ``method``. With ``partial``, a shard with no reachable
        replica is left out (at least one must answer) instead of failing the call."""
        left = context.time_remaining() if context is not None else None
        primary = st.reads_primary(request)

        def one(i: int) -> Any:
            try:
                return self.r.read_shard(spec, i, method,
                                         _with_name(request, st.local_name(spec.uid, i)), left,
                                         primary)
            except Unavailable:
                if not partial:
                    raise
                return None
        got = self.r.fan_out(one, list(range(spec.shards)))
        out = {i: a for i, a in got.items() if a is not None}
        if not out:
            raise Unavailable(f"no shard of {spec.name!r} has a reachable in-sync replica",
                              "collection")
        return out

    def higher_is_better(self, spec: st.CollectionSpec) -> bool:
        return _higher_is_better(spec.request)

    def Scroll(self, request: ppb.ScrollRequest, context: Any) -> ppb.ScrollResponse:
        got = self._internal("Scroll", request, context)
        if got:
            return got[0]
        spec = self.node.spec(request.collection)
        shard, cursor = 0, None
        if request.HasField("cursor") and request.cursor:  # "<layout uid>.<shard>:<rest>"
            head, _, rest = request.cursor.partition(":")
            uid, _, head = head.rpartition(".")
            if not uid or not head.isdigit():
                from vecdb.errors import InvalidArgument
                raise InvalidArgument(f"cursor {request.cursor!r} is not one this cluster "
                                      "gave out", "cursor")
            if uid != spec.uid or int(head) >= spec.shards:
                raise FailedPrecondition(f"collection {spec.name!r} was resharded since this "
                                         "scroll began; restart the scroll", "cursor")
            shard, cursor = int(head), rest or None
        while True:
            sub = _with_name(request, st.local_name(spec.uid, shard))
            sub.ClearField("cursor")
            if cursor:
                sub.cursor = cursor
            page = self.r.read_shard(spec, shard, "Scroll", sub)
            if page.HasField("next_cursor"):
                page.next_cursor = f"{spec.uid}.{shard}:{page.next_cursor}"
                return page
            if shard + 1 >= spec.shards:
                return page
            shard, cursor = shard + 1, None
            if page.points.ids:
                page.next_cursor = f"{spec.uid}.{shard}:"
                return page

    def Search(self, request: ppb.SearchRequest, context: Any) -> ppb.SearchResponse:
        got = self._internal("Search", request, context)
        if got:
            return got[0]
        if request.WhichOneof("query") == "expression" or request.HasField("group_by"):
            return queries.search_beyond(self, request, context)
        if request.HasField("sparse"):
            raise _unsupported("sparse search")
        if request.HasField("keywords"):  # BM25 alone or fused with dense
            return hybrid_search.search(self, request, context)
        if request.using:
            raise _unsupported("using (named vectors)")
        spec = self.node.spec(request.collection)
        fast = None if st.reads_primary(request) else local_reads.search(self.node, spec, request)
        if fast is not None:
            return fast
        answers = self.all_shards(spec, "Search", request, context, request.allow_partial)
        k = request.k if request.HasField("k") else 10
        return _merged(answers, spec, k, True)

    def Recommend(self, request: ppb.RecommendRequest, context: Any) -> ppb.SearchResponse:
        got = self._internal("Recommend", request, context)
        if not got and request.using:
            raise _unsupported("using (named vectors)")
        return got[0] if got else queries.recommend_search(self, request, context)

    def RangeSearch(self, request: ppb.RangeSearchRequest, context: Any) -> ppb.SearchResponse:
        got = self._internal("RangeSearch", request, context)
        if got:
            return got[0]
        if request.using:
            raise _unsupported("using (named vectors)")
        spec = self.node.spec(request.collection)
        answers = self.all_shards(spec, "RangeSearch", request, context, request.allow_partial)
        limit = request.limit if request.HasField("limit") else 1000
        return _merged(answers, spec, limit, False)


def _merged(answers: dict, spec: st.CollectionSpec, limit: int,
            explain: bool) -> ppb.SearchResponse:
    """The shards' answers to a batch of queries merged query by query."""
    hib, shards = _higher_is_better(spec.request), sorted(answers)
    return ppb.SearchResponse(partial=len(answers) < spec.shards, results=[
        merge.merge_results([answers[i].results[q] for i in shards], limit, hib, explain)
        for q in range(len(answers[shards[0]].results))])


def _left(context: Any) -> float | None:
    """Seconds left of the client's deadline (None: none set): a write forwarded to a
    shard's primary waits no longer, so a hung primary holds this node's worker only as
    long as the client waits."""
    return context.time_remaining()


def _key(context: Any) -> str | None:
    """The client's idempotency key of a write call (write_keys.py)."""
    return write_keys.key_of(context.invocation_metadata())


def _write_result(parts: dict[int, tpb.WriteResult]) -> tpb.WriteResult:
    out = tpb.WriteResult(count=sum(p.count for p in parts.values()))
    for i, p in parts.items():
        for seq in p.shard_seqs.values():
            out.shard_seqs[i] = seq
    return out


def _drop_quietly(router: Router, local: str) -> None:
    try:
        router.local("DropCollection", cpb.DropCollectionRequest(name=local))
    except NotFound:
        pass
    except VecdbError as exc:  # swept at the next start
        log.warning("could not drop the probe collection %s: %s", local, exc.message)


class ClusterCollectionServicer(cgrpc.CollectionServiceServicer):
    def __init__(self, router: Router, points: ClusterPointServicer):
        self.r, self.node, self.points = router, router.node, points
        self._swept = False
        self._sweep_lock = threading.Lock()

    def _sweep_probes(self) -> None:
        """Once per process, before its first probe: drop the probes a killed process
        left in the engine (this process has none in flight yet)."""
        with self._sweep_lock:
            if self._swept:
                return
            with self.node.engine.session() as db:
                names = [c.name for c in db.list_collections() if c.name.startswith(PROBE)]
            for name in names:
                log.info("dropping the leftover probe collection %s", name)
                _drop_quietly(self.r, name)
            self._swept = True

    def _internal(self, method: str, request: Any, context: Any) -> Any | None:
        md = self.r.route_of(context)
        return None if md is None else (self.r.internal(method, request, md),)

    def GetServerInfo(self, request: Any, context: Any) -> Any:
        return self.r.lc.GetServerInfo(request, context)

    def CreateCollection(self, request: cpb.CreateCollectionRequest,
                         context: Any) -> cpb.CollectionInfo:
        got = self._internal("CreateCollection", request, context)
        if got:
            return got[0]
        if request.sparse_dim:
            raise _unsupported("sparse_dim")
        if request.tenant_field:
            raise _unsupported("tenant_field")
        if request.vectors or request.vector_name:
            raise _unsupported("named vectors")
        shards = request.shards if request.HasField("shards") else 1
        rf = request.replication_factor if request.HasField("replication_factor") else 1
        wc = request.write_concern if request.HasField("write_concern") else "majority"
        st.validate_cluster_args(shards, rf, wc)
        from vecdb.validation import name as valid_name
        valid_name(request.name, "name")  # (the probe below has a name of its own; a
        # name with "." or "/" would also clash with reshards' hidden collections and keys)
        if request.name in self.node.collections or request.name in self.node.aliases:
            raise AlreadyExists(f"collection or alias {request.name!r} already exists", "name")
        self._sweep_probes()
        probe = cpb.CreateCollectionRequest()
        probe.CopyFrom(request)
        probe.name, probe.shards = f"{PROBE}{uuid.uuid4().hex[:12]}", 1
        probe.ClearField("replication_factor")
        probe.ClearField("write_concern")
        try:
            self.r.local("CreateCollection", probe)  # validates everything the engine checks
        finally:
            _drop_quietly(self.r, probe.name)
        placement = st.place(shards, rf, self.node.live_nodes(), self.node.replica_load())
        spec = st.CollectionSpec(request.name, uuid.uuid4().hex[:10], shards, rf, wc,
                                 base64.b64encode(probe.SerializeToString()).decode())
        if not self.node.create_collection(spec, placement):
            raise AlreadyExists(f"collection {request.name!r} already exists", "name")
        self._wait_replicas(spec)
        return self.DescribeCollection(cpb.DescribeCollectionRequest(collection=spec.name), None)

    def _wait_replicas(self, spec: st.CollectionSpec, timeout: float = 30.0) -> None:
        """Until every replica of every shard is in sync (their copies exist), so that the
        first writes meet the write concern."""
        def ready() -> bool:
            return all(len(self.node.shards.get((spec.name, i), st.ShardState("", (), ()))
                           .in_sync) == spec.replication_factor for i in range(spec.shards))
        import time
        deadline = time.monotonic() + timeout
        if not self.node.wait_for(ready, timeout):
            raise Unavailable(f"the replicas of {spec.name!r} are not all in sync after "
                              f"{timeout:g} s; they will be (see cluster status)", "collection")
        for i in range(spec.shards):  # and each primary has made its copy (rf 1: no resync)
            req = cpb.DescribeCollectionRequest(collection=st.local_name(spec.uid, i))
            while True:
                try:
                    self.r.read_shard(spec, i, "DescribeCollection", req)
                    break
                except (NotFound, Unavailable):
                    if time.monotonic() > deadline:
                        raise Unavailable(f"shard {spec.name}/{i} is not ready after "
                                          f"{timeout:g} s; it will be", "collection") from None
                    time.sleep(0.05)

    def ListCollections(self, request: Any, context: Any) -> cpb.ListCollectionsResponse:
        got = self._internal("ListCollections", request, context)
        if got:
            return got[0]
        names = sorted(n for n in self.node.collections if not st.is_shadow(n))
        return cpb.ListCollectionsResponse(collections=[
            self.DescribeCollection(cpb.DescribeCollectionRequest(collection=n), None).config
            for n in names])

    def DescribeCollection(self, request: cpb.DescribeCollectionRequest,
                           context: Any) -> cpb.CollectionInfo:
        if context is not None:
            got = self._internal("DescribeCollection", request, context)
            if got:
                return got[0]
        spec = self.node.spec(request.collection)
        answers = self.points.all_shards(spec, "DescribeCollection", request)
        first = answers[0]
        out = cpb.CollectionInfo()
        out.CopyFrom(first)
        out.config.name, out.config.shards = spec.name, spec.shards
        out.config.replication_factor, out.config.write_concern = (spec.replication_factor,
                                                                   spec.write_concern)
        del out.shards[:]
        for i in range(spec.shards):
            out.shards.append(answers[i].shards[0])
        out.points = sum(a.points for a in answers.values())
        out.bytes_on_disk = sum(a.bytes_on_disk for a in answers.values())
        out.index_state = min((a.index_state for a in answers.values()),
                              key=lambda s: STATE_ORDER.get(s, 0))
        with self.node._lock:
            del out.aliases[:]
            out.aliases.extend(sorted(a for a, c in self.node.aliases.items() if c == spec.name))
        return out

    # ---- aliases (in etcd: every node resolves them the same way) -----------------------
    def CreateAlias(self, request: cpb.AliasRequest, context: Any) -> cpb.AliasResponse:
        return self._alias(request, context, "CreateAlias", create=True)

    def SetAlias(self, request: cpb.AliasRequest, context: Any) -> cpb.AliasResponse:
        return self._alias(request, context, "SetAlias", create=False)

    def _alias(self, request: cpb.AliasRequest, context: Any, method: str,
               create: bool) -> cpb.AliasResponse:
        got = self._internal(method, request, context)
        if got:
            return got[0]
        from vecdb.validation import name as valid_name
        valid_name(request.alias, "alias")
        target = self.node.spec(request.collection).name
        if request.alias in self.node.collections:
            raise AlreadyExists(f"{request.alias!r} is a collection's name", "alias")
        if not self.node.set_alias(request.alias, target, create):
            if create and request.alias in self.node.aliases:
                raise AlreadyExists(f"alias {request.alias!r} already exists", "alias")
            raise NotFound(f"collection {request.collection!r} does not exist", "collection")
        return cpb.AliasResponse()

    def DeleteAlias(self, request: cpb.DeleteAliasRequest, context: Any) -> cpb.AliasResponse:
        got = self._internal("DeleteAlias", request, context)
        if got:
            return got[0]
        if not self.node.delete_alias(request.alias):
            raise NotFound(f"alias {request.alias!r} does not exist", "alias")
        return cpb.AliasResponse()

    def ListAliases(self, request: cpb.ListAliasesRequest,
                    context: Any) -> cpb.ListAliasesResponse:
        got = self._internal("ListAliases", request, context)
        if got:
            return got[0]
        target = self.node.spec(request.collection).name if request.collection else None
        with self.node._lock:
            aliases = dict(self.node.aliases)
        return cpb.ListAliasesResponse(aliases={a: c for a, c in aliases.items()
                                                if target is None or c == target})

    # ---- payload indexes: on every replica, and in the spec (resyncs and new replicas) ---
    def CreatePayloadIndex(self, request: cpb.CreatePayloadIndexRequest,
                           context: Any) -> cpb.PayloadIndexResponse:
        return self._payload_index("CreatePayloadIndex", request, context)

    def DropPayloadIndex(self, request: cpb.DropPayloadIndexRequest,
                         context: Any) -> cpb.PayloadIndexResponse:
        return self._payload_index("DropPayloadIndex", request, context)

    def _payload_index(self, method: str, request: Any, context: Any) -> Any:
        got = self._internal(method, request, context)
        if got:
            return got[0]
        spec = self.node.spec(request.collection)
        check = type(request)()
        check.CopyFrom(request)
        check.collection = f"{PROBE}{uuid.uuid4().hex[:12]}"
        # the engine's own checks of the field and type, on an empty probe, before the
        # spec (the source of truth) changes
        probe = cpb.CreateCollectionRequest.FromString(base64.b64decode(spec.request))
        probe.name, probe.shards = check.collection, 1
        self._sweep_probes()
        try:
            self.r.local("CreateCollection", probe)
            answer = self.r.local(method, check)
        finally:
            _drop_quietly(self.r, check.collection)
        create = cpb.CreateCollectionRequest.FromString(base64.b64decode(spec.request))
        if method == "CreatePayloadIndex":
            create.payload_indexes[request.field] = request.type
        else:
            create.payload_indexes.pop(request.field, None)
        if spec.name in self.node.reshards or not self.node.update_spec(spec, st.CollectionSpec(
                spec.name, spec.uid, spec.shards, spec.replication_factor, spec.write_concern,
                base64.b64encode(create.SerializeToString()).decode())):
            raise FailedPrecondition(f"collection {spec.name!r} is being resharded (or changed "
                                     "meanwhile); retry once it is done", "collection")
        # now every copy, best effort: one that misses it (down, catching up) is brought
        # in line with the spec by its node's maintenance (payload_indexes.py)
        for i in range(spec.shards):
            sub = type(request)()
            sub.CopyFrom(request)
            sub.collection = st.local_name(spec.uid, i)
            for r in self.node.shard(spec.name, i).replicas:
                try:
                    if r == self.node.id:
                        self.r.local(method, sub)
                    else:
                        self.r._peer(r, method, sub, self.r.peers.metadata("local"))
                except VecdbError as exc:
                    log.info("%s on replica %s of %s/%d: %s (its maintenance applies it)",
                             method, r, spec.name, i, exc.message)
        return answer

    def DropCollection(self, request: cpb.DropCollectionRequest,
                       context: Any) -> cpb.DropCollectionResponse:
        got = self._internal("DropCollection", request, context)
        if got:
            return got[0]
        if not self.node.drop_collection(request.name):
            raise NotFound(f"collection {request.name!r} does not exist", "name")
        return cpb.DropCollectionResponse()



def _fill_unrouted(cls: type, service: Any) -> type:
    """Every RPC of ``service`` that ``cls`` does not route: internal calls act on this
    node's replica, client calls get FAILED_PRECONDITION naming the RPC."""
    for m in service.methods:
        if m.name in cls.__dict__ or m.name in getattr(cls, "ROUTED", ()):
            continue

        def call(self: Any, request: Any, context: Any, _name: str = m.name) -> Any:
            got = self._internal(_name, request, context)
            if got:
                return got[0]
            raise _unsupported(_name)
        setattr(cls, m.name, call)
    return cls


def _public(node: Any, message: str) -> str:
    """An error message with the internal copy names (c<uid>-s<i>) as the client knows
    them: "<collection> shard <i>"."""
    with node._lock:
        names = {spec.uid: name for name, spec in node.collections.items()}

    def sub(m: re.Match) -> str:
        name = names.get(m.group(1))
        return m.group(0) if name is None else f"{name} shard {m.group(2)}"
    return COPY_NAME.sub(sub, message)


def _gated(fn: Any) -> Any:
    """An RPC that answers UNAVAILABLE (the SDK retries another node) until this node
    has loaded its view of the cluster: before, every collection would look absent."""
    @functools.wraps(fn)
    def call(self: Any, request: Any, context: Any) -> Any:
        if not self.node.loaded:
            raise Unavailable("this node is starting (it has not loaded the cluster's map "
                              "yet); retry on another node", "collection")
        if fn.__name__ != "CreateCollection" and _hidden(request) \
                and self.r.route_of(context) is None:  # (CreateCollection refuses the ".")
            _not_hidden(request)
        try:
            return fn(self, request, context)
        except PeerDeadline as exc:  # a peer's timeout: the client's status says so
            raise Rejected(grpc.StatusCode.DEADLINE_EXCEEDED,
                           _public(self.node, exc.message)) from None
        except VecdbError as exc:
            exc.message = _public(self.node, exc.message)
            raise
    return call


def _hidden(request: Any) -> tuple[str, str] | None:
    """The field and value of a request naming a reshard's hidden collection (only the
    nodes use those: a client's call gets NOT_FOUND)."""
    for field in ("collection", "name"):
        value = getattr(request, field, None)
        if isinstance(value, str) and st.is_shadow(value):
            return field, value
    return None


def _not_hidden(request: Any) -> None:
    hidden = _hidden(request)
    if hidden:
        raise NotFound(f"collection {hidden[1]!r} does not exist", hidden[0])


def _gate(cls: type, service: Any) -> type:
    for m in service.methods:
        if m.name in dir(cls) and m.name != "GetServerInfo":
            setattr(cls, m.name, _gated(getattr(cls, m.name)))
    return cls


_gate(_fill_unrouted(ClusterPointServicer, ppb.DESCRIPTOR.services_by_name["PointService"]),
      ppb.DESCRIPTOR.services_by_name["PointService"])
_gate(_fill_unrouted(ClusterCollectionServicer,
                     cpb.DESCRIPTOR.services_by_name["CollectionService"]),
      cpb.DESCRIPTOR.services_by_name["CollectionService"])


class ClusterAnalyticsServicer:
    """AnalyticsService in cluster mode: outliers, duplicates and k-means on a gathered
    copy (scratch_analytics.py), at most max_analytics_jobs at once on this node (each
    holds its slot from the gather to its end: each scratch copy is a database of its
    own, whose own cap sees one operation)."""

    ROUTED = ("Outliers", "Duplicates", "Cluster", "GetClusterJob")

    def __init__(self, router: Router):
        self.r = router
        self.node = router.node
        self.points = ClusterPointServicer(router)  # k-means' write_label writes through it
        self.jobs = scratch_analytics.FinishedJobs()
        self.slots = jobs.Slots(router.node.engine.options.max_analytics_jobs)
        scratch_analytics.remove_leftovers(router.node.engine.data_dir)

    def Cluster(self, request: Any, context: Any) -> Any:
        if self.r.route_of(context) is not None:
            raise _unsupported("Cluster between nodes")
        _not_hidden(request)
        give_back = self.slots.take("Cluster")
        try:
            return scratch_analytics.kmeans(self, request, context)
        finally:
            give_back()

    def GetClusterJob(self, request: Any, context: Any) -> Any:
        """From the node that ran the job (its id ends with "@<node id>")."""
        if self.r.route_of(context) is None:
            _not_hidden(request)
        name = self.node.spec(request.collection).name
        owner = scratch_analytics.owner_of(request.job_id)
        if owner == self.node.id or self.r.route_of(context) is not None \
                or owner not in self.node.nodes:
            return self.jobs.get(name, request.job_id)
        sub = type(request)()
        sub.CopyFrom(request)
        sub.collection = name
        return self.r._peer(owner, "GetClusterJob", sub, self.r.peers.metadata("local"))

    def Outliers(self, request: Any, context: Any) -> Any:
        if self.r.route_of(context) is not None:
            raise _unsupported("Outliers between nodes")
        _not_hidden(request)
        give_back = self.slots.take("Outliers")
        try:
            return scratch_analytics.outliers(self, request, context)
        finally:
            give_back()

    def Duplicates(self, request: Any, context: Any) -> Iterator[Any]:
        if self.r.route_of(context) is not None:
            raise _unsupported("Duplicates between nodes")
        _not_hidden(request)
        give_back = self.slots.take("Duplicates")  # until the stream ends or is dropped
        return jobs.Held(scratch_analytics.duplicates(self, request, context), give_back)

    def _internal(self, method: str, request: Any, context: Any) -> Any | None:
        md = self.r.route_of(context)
        return None if md is None else (self.r.internal(method, request, md),)


def analytics_servicer(router: Router) -> Any:
    from vecdb_client._proto.vecdb.v1 import analytics_pb2 as apb
    from vecdb_client._proto.vecdb.v1 import analytics_pb2_grpc as agrpc
    cls = type("ClusterAnalytics", (ClusterAnalyticsServicer, agrpc.AnalyticsServiceServicer), {})
    service = apb.DESCRIPTOR.services_by_name["AnalyticsService"]
    return _gate(_fill_unrouted(cls, service), service)(router)
