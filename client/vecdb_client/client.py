"""Blocking client. See :class:`Client`."""
from __future__ import annotations

import time
from typing import Any, Callable, Iterator, Sequence

import grpc

from . import _codec, _codec_hybrid, _codec_named, _codec_query
from ._channel import (ClientSettings, call_metadata, channel_options, credentials,
                       parse_health, parse_targets, wire_stubs)
from ._cluster import consistency as consistency_mode, with_partial, write_metadata
from ._chunking import StreamProgress, UpsertPlan, check_ids, plan_upsert
from ._proto.vecdb.v1 import analytics_pb2_grpc as agrpc
from ._proto.vecdb.v1 import collections_pb2 as cpb
from ._proto.vecdb.v1 import collections_pb2_grpc as cgrpc
from ._proto.vecdb.v1 import points_pb2 as ppb
from ._proto.vecdb.v1 import points_pb2_grpc as pgrpc
from .analytics import AnalyticsMethods
from .tenants import TenantMethods, default_tenant, scoped
from .filters import Filter
from .errors import UnavailableError, VecdbClientError, from_rpc_error
from .models import (CollectionConfig, CollectionInfo, Hit, Point, ScrollPage, SnapshotInfo,
                     WriteResult)

Progress = Callable[[int, int], None]


class Client(AnalyticsMethods, TenantMethods):
    """Blocking vecdb client; thread-safe (one channel, many threads).

    >>> with Client("127.0.0.1:50051") as c:
    ...     c.create_collection("docs", dim=384)

    ``target``: one address, or several nodes of a cluster (a list, or comma-separated):
    calls go to them in turn, and idempotent calls that get UNAVAILABLE are retried on
    the next one. ``timeout`` is the default deadline of each call in seconds; every method
    also takes ``timeout=`` to override it. ``tls`` is False (plaintext),
    True (system roots) or a ``grpc.ChannelCredentials``; ``ca_cert`` (roots
    to trust) and ``client_cert`` + ``client_key`` (mutual TLS) are paths or
    PEM bytes and turn TLS on. ``api_key`` is sent as ``authorization: Bearer``. Errors are
    :mod:`vecdb_client.errors` exceptions. Idempotent calls (reads, search,
    upsert, delete, set_alias) are retried on UNAVAILABLE with backoff; writes carry an
    idempotency key (one per call, the same on every retry), so a cluster applies a
    retried write once (docs/cluster.md). ``tenant``: the tenant of every call that takes
    one and does not name its own (collections with ``tenant_field``, docs/tenants.md).
    """

    def __init__(self, target: str = "127.0.0.1:50051", *, api_key: str | None = None,
                 timeout: float | None = 30.0, tls: bool | grpc.ChannelCredentials = False,
                 max_retries: int = 3, retry_backoff: float = 0.1,
                 ca_cert: str | bytes | None = None, client_cert: str | bytes | None = None,
                 client_key: str | bytes | None = None, tenant: str | int | None = None,
                 **settings: Any):
        self.tenant = tenant  # the default tenant= of every call (docs/tenants.md)
        self.settings = ClientSettings(timeout=timeout, max_retries=max_retries,
                                       retry_backoff=retry_backoff, **settings)
        creds = credentials(tls, ca_cert, client_cert, client_key)
        opts = channel_options(self.settings)
        wire_stubs(self, [grpc.secure_channel(t, creds, opts) if creds
                          else grpc.insecure_channel(t, opts) for t in parse_targets(target)],
                   cgrpc, pgrpc, agrpc)
        self._md = call_metadata(api_key)

    # ------------------------------------------------------------ plumbing
    def _call(self, method: Any, request: Any, *, idempotent: bool,
              timeout: float | None, write: bool = False) -> Any:
        """``write``: the call carries an idempotency key, the same on every retry."""
        timeout = self.settings.timeout if timeout is None else timeout
        md = write_metadata(self._md) if write else self._md
        if self.tenant is not None:
            request = default_tenant(request, self.tenant)
        attempt = 0
        while True:
            try:
                return method(request, timeout=timeout, metadata=md)
            except grpc.RpcError as exc:
                err = from_rpc_error(exc)
            if not (idempotent and isinstance(err, UnavailableError)
                    and attempt < self.settings.max_retries):
                raise err
            time.sleep(self.settings.backoff(attempt))
            attempt += 1

    def close(self) -> None:
        for ch in self._channels:
            ch.close()

    def __enter__(self) -> "Client":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def health(self, timeout: float | None = 5.0) -> str:
        """grpc.health.v1 status of the server: SERVING, NOT_SERVING or UNKNOWN."""
        return parse_health(self._call(self._health, b"", idempotent=True, timeout=timeout))

    def wait_ready(self, timeout: float = 30.0) -> None:
        """Block until the server reports SERVING (WAL recovery done)."""
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.health(timeout=max(0.1, deadline - time.monotonic())) == "SERVING":
                    return
            except VecdbClientError:
                pass
            if time.monotonic() >= deadline:
                raise UnavailableError(f"server not SERVING after {timeout} s")
            time.sleep(0.05)

    # ------------------------------------------------------------ collections
    def create_collection(self, name: str, dim: int | None = None, metric: str = "cosine",
                          index: str = "auto", shards: int | None = None,
                          encoder: str | None = None, *,
                          payload_indexes: dict[str, str] | None = None,
                          device: str | None = None,
                          replication_factor: int | None = None, write_concern: str | None = None,
                          quantization: str | None = None, rescore: int | None = None,
                          full_text: str | None = None, sparse_dim: int | None = None,
                          tenant_field: str | None = None,
                          vector_name: str | None = None, vectors: Sequence[dict] | None = None,
                          on_disk: bool | None = None,
                          timeout: float | None = None, **params: int) -> CollectionInfo:
        """Index parameters go as keywords, e.g. ``index="hnsw", M=16, ef_search=128``.
        ``payload_indexes``: {field: type} to index from the start (see create_payload_index).
        ``encoder`` (e.g. "minilm"): texts can be upserted and searched without vectors;
        ``dim`` None takes the encoder's dimension (docs/encoders.md). ``device``: auto |
        cpu | gpu (None = auto: the server decides); gpu without a usable GPU on the server
        raises FailedPreconditionError (field "device"), see docs/gpu.md. Cluster mode
        (docs/cluster.md): ``replication_factor`` copies of every shard on distinct nodes,
        ``write_concern`` "majority" (default), "all" or "one". ``quantization`` sq8 | rabitq |
        binary: codes in RAM, full-precision vectors on the server's disk re-scoring the
        top k*``rescore`` candidates (None = the mode's default; README "Quantization").
        ``full_text`` "plain" or a stemming language ("english", ...): BM25 keyword and
        hybrid search over the point texts (search(keywords=...); README "Hybrid search").
        ``tenant_field`` (e.g. "customer"): many tenants in one collection; every point call
        then names its ``tenant=`` (docs/tenants.md). ``on_disk=True``: IVF-Flat whose
        inverted lists stay on the server's disk, memory-mapped and paged in on demand, for
        collections larger than its RAM (README "On-disk collections")."""
        req = _codec.create_collection_request(name, dim, metric, index, shards, encoder, params,
                                               payload_indexes, device, replication_factor,
                                               write_concern, quantization, rescore)
        if full_text is not None:
            req.full_text = full_text
        if sparse_dim is not None:
            req.sparse_dim = sparse_dim
        if on_disk is not None:
            req.on_disk = on_disk
        if tenant_field is not None:
            req.tenant_field = tenant_field
        _codec_named.create_fields(req, vector_name, vectors)
        info = self._call(self._collections.CreateCollection, req, idempotent=False,
                          timeout=timeout)
        return _codec.from_proto_info(info)

    def server_info(self, *, timeout: float | None = None) -> dict:
        """{"version", "started_at", "uptime_s", "ready"} of the server."""
        return _codec.from_proto_server_info(self._call(
            self._collections.GetServerInfo, cpb.ServerInfoRequest(), idempotent=True, timeout=timeout))

    def cluster_status(self, *, timeout: float | None = None) -> dict:
        """Cluster mode (docs/cluster.md): the nodes, and per shard its primary, term,
        replicas (in sync or not, points, applied WAL sequence), as the answering node sees
        them. FailedPreconditionError on a single-node server."""
        from ._proto.vecdb.v1 import cluster_pb2
        return _codec.from_proto_cluster_status(self._call(
            self._cluster.GetClusterStatus, cluster_pb2.ClusterStatusRequest(), idempotent=True,
            timeout=timeout))

    def drain_node(self, node: str, *, timeout: float | None = None) -> dict:
        """Cluster mode, admin: move the primaries of ``node`` to other in-sync replicas
        before a planned stop. {"moved": [...], "kept": [...]} ("collection/shard")."""
        from ._proto.vecdb.v1 import cluster_pb2
        res = self._call(self._cluster.DrainNode, cluster_pb2.DrainNodeRequest(node=node),
                             idempotent=True, timeout=timeout)
        return {"moved": list(res.moved), "kept": list(res.kept)}

    def remove_node(self, node: str, *, timeout: float | None = None) -> int:
        """Cluster mode, admin: remove ``node`` for good. It takes no new replicas and the
        rebalancer moves its replicas away (watch ``cluster_status()``; stop the node once
        it holds none). Returns how many replicas must move."""
        from ._proto.vecdb.v1 import cluster_pb2
        res = self._call(self._cluster.RemoveNode, cluster_pb2.RemoveNodeRequest(node=node),
                             idempotent=True, timeout=timeout)
        return int(res.replicas)

    def reshard_collection(self, name: str, shards: int, *,
                           timeout: float | None = None) -> dict:
        """Cluster mode, admin: split or merge the shards of ``name`` online to ``shards``
        (docs/cluster.md "Resharding"); waits for the switch until ``timeout``. {"done",
        "shards" (the count now), "state", "copied"}; not done yet: call again to wait
        on (the same target joins the reshard under way)."""
        from ._proto.vecdb.v1 import cluster_pb2
        return _codec.from_proto_reshard(self._call(
            self._cluster.ReshardCollection, cluster_pb2.ReshardCollectionRequest(
                collection=name, shards=shards), idempotent=True, timeout=timeout))

    def rebalance_plan(self, *, timeout: float | None = None) -> dict:
        """Cluster mode: {"rebalancer", "in_progress": [...], "planned": [...]}: the replica
        moves under way and those the rebalancer would start next (each {"collection",
        "shard", "source", "target", "phase"}). Changes nothing."""
        from ._proto.vecdb.v1 import cluster_pb2
        return _codec.from_proto_rebalance_plan(self._call(
            self._cluster.PlanRebalance, cluster_pb2.PlanRebalanceRequest(), idempotent=True,
            timeout=timeout))

    def list_collections(self, *, timeout: float | None = None) -> list[CollectionConfig]:
        resp = self._call(self._collections.ListCollections, cpb.ListCollectionsRequest(),
                          idempotent=True, timeout=timeout)
        return [_codec.from_proto_config(c) for c in resp.collections]

    def describe_collection(self, name: str, *, tenant: str | int | None = None,
                            timeout: float | None = None) -> CollectionInfo:
        """``tenant``: the collection as that tenant sees it (points are the tenant's;
        shards, sizes and progress left out: docs/tenants.md). The client's default tenant
        is not used here; a tenant-scoped key always gets its tenant's view."""
        req = scoped(cpb.DescribeCollectionRequest(collection=name), tenant)
        info = self._call(self._collections.DescribeCollection, req, idempotent=True,
                          timeout=timeout)
        return _codec.from_proto_info(info)

    def drop_collection(self, name: str, *, timeout: float | None = None) -> None:
        self._call(self._collections.DropCollection, cpb.DropCollectionRequest(name=name),
                   idempotent=False, timeout=timeout)

    def create_alias(self, alias: str, collection: str, *, timeout: float | None = None) -> None:
        self._call(self._collections.CreateAlias,
                   cpb.AliasRequest(alias=alias, collection=collection),
                   idempotent=False, timeout=timeout)

    def set_alias(self, alias: str, collection: str, *, timeout: float | None = None) -> None:
        """Create the alias or atomically re-point it."""
        self._call(self._collections.SetAlias,
                   cpb.AliasRequest(alias=alias, collection=collection),
                   idempotent=True, timeout=timeout)

    def delete_alias(self, alias: str, *, timeout: float | None = None) -> None:
        self._call(self._collections.DeleteAlias, cpb.DeleteAliasRequest(alias=alias),
                   idempotent=False, timeout=timeout)

    def list_aliases(self, collection: str | None = None, *,
                     timeout: float | None = None) -> dict[str, str]:
        resp = self._call(self._collections.ListAliases,
                          cpb.ListAliasesRequest(collection=collection),
                          idempotent=True, timeout=timeout)
        return dict(resp.aliases)

    # ------------------------------------------------------------ payload indexes
    def create_payload_index(self, collection: str, field: str, type: str, wait: bool = False,
                             *, timeout: float | None = None) -> None:
        """Index a payload field (a dotted path, or "$text" for the point text); ``type``:
        keyword, integer, float, bool, datetime or text. The server builds it in the
        background (describe_collection shows "building", then "ready"); ``wait=True``
        polls until it is ready, raising DeadlineExceededError after ``timeout``."""
        req = cpb.CreatePayloadIndexRequest(collection=collection, field=field, type=type)
        self._call(self._collections.CreatePayloadIndex, req, idempotent=False, timeout=timeout)
        deadline = _codec.deadline_after(self.settings.timeout if timeout is None else timeout)
        while wait and not _codec.payload_index_ready(
                self.describe_collection(collection, timeout=timeout), field, deadline):
            time.sleep(0.05)

    def drop_payload_index(self, collection: str, field: str, *,
                           timeout: float | None = None) -> None:
        req = cpb.DropPayloadIndexRequest(collection=collection, field=field)
        self._call(self._collections.DropPayloadIndex, req, idempotent=False, timeout=timeout)

    # ------------------------------------------------------------ snapshots
    def create_snapshot(self, collection: str, name: str | None = None, tarball: bool = False,
                        *, timeout: float | None = None) -> SnapshotInfo:
        """Consistent online snapshot of a collection into the server's snapshot directory
        (a directory, or one ``<name>.tar`` with ``tarball=True``)."""
        req = _codec.snapshot_request(collection, name, tarball)
        return _codec.from_proto_snapshot(
            self._call(self._collections.CreateSnapshot, req, idempotent=False, timeout=timeout))

    def list_snapshots(self, *, timeout: float | None = None) -> list[SnapshotInfo]:
        res = self._call(self._collections.ListSnapshots, cpb.ListSnapshotsRequest(),
                               idempotent=True, timeout=timeout)
        return [_codec.from_proto_snapshot(s) for s in res.snapshots]

    def delete_snapshot(self, name: str, *, timeout: float | None = None) -> None:
        self._call(self._collections.DeleteSnapshot, cpb.DeleteSnapshotRequest(name=name),
                   idempotent=False, timeout=timeout)

    def restore_snapshot(self, name: str, collection: str | None = None, *,
                         timeout: float | None = None) -> CollectionInfo:
        """Restore a snapshot as a new collection (its original name, or ``collection``);
        a damaged snapshot raises FailedPreconditionError and nothing is written."""
        req = _codec.restore_request(name, collection)
        return _codec.from_proto_info(
            self._call(self._collections.RestoreSnapshot, req, idempotent=False, timeout=timeout))

    def reembed(self, collection: str, encoder: str, alias: str | None = None, *,
                target: str | None = None, batch_size: int | None = None, wait: bool = False,
                timeout: float | None = None) -> CollectionInfo:
        """Re-embed a collection with another encoder without downtime (admin): the server
        builds ``target`` (default ``<source>__<encoder>``) from the stored texts in the
        background, then atomically re-points ``alias`` (default: ``collection`` when it is
        an alias) to it; readers using the alias never see an error. Returns the source's
        info; progress is ``describe_collection(...).reembed``. ``wait=True`` polls until
        done (FailedPreconditionError if it failed, DeadlineExceededError after
        ``timeout``)."""
        req = _codec.reembed_request(collection, encoder, alias, target, batch_size)
        info = _codec.from_proto_info(self._call(self._collections.ReembedCollection, req,
                                                     idempotent=False, timeout=timeout))
        deadline = _codec.deadline_after(self.settings.timeout if timeout is None else timeout)
        source = info.name
        while wait and not _codec.reembed_done(info, deadline):
            time.sleep(0.1)
            info = self.describe_collection(source, timeout=timeout)
        return info

    # ------------------------------------------------------------ writes
    def upsert(self, collection: str, ids: Sequence[str], vectors: Any = None,
               payloads: Sequence[dict | None] | None = None,
               texts: Sequence[str | None] | None = None, ttl: Any = None, *,
               sparse: Sequence[Any] | None = None, tenant: str | int | None = None,
               named: dict | None = None,
               progress: Progress | None = None, timeout: float | None = None) -> WriteResult:
        """Insert or replace points; ``vectors`` is (n, dim), a numpy array or nested lists.

        ``ttl``: seconds to live, one number for every point or one per point
        (None = never expires); expired points vanish from every read at once.

        Small inputs go in one all-or-nothing call. Larger ones are split into
        batches under the message limit and streamed; each batch is
        all-or-nothing and durable once acknowledged. ``progress(done, total)``
        runs after each acknowledged batch. On failure the exception's
        ``acknowledged`` attribute says how many leading points are durable.

        ``vectors=None``: the collection's encoder embeds ``texts`` (one non-empty text per
        point); with vectors, texts are only stored (docs/encoders.md "Mixing rules").

        ``sparse`` (collections created with ``sparse_dim``): one sparse vector
        ``(indices, values)`` (or None) per point; indices strictly increasing.

        ``tenant`` (collections with ``tenant_field``; also on every other point call):
        the tenant the call acts in (docs/tenants.md).

        ``named`` (collections with named vector fields, docs/named_vectors.md):
        ``{field: vectors}``, one entry per point (a vector or None = the point does not
        carry the field), or an (n, dim) array; the point's named vectors are exactly
        these. The primary may be given there under the collection's ``vector_name``."""
        ids = check_ids(ids)
        plan = plan_upsert(ids, _codec.upsert_vectors(ids, vectors), payloads, texts,
                           max_bytes=self.settings.chunk_bytes,
                           max_points=self.settings.chunk_points, ttl=ttl, sparse=sparse,
                           named=named)
        if len(plan.bounds) == 1:
            req = scoped(ppb.UpsertRequest(collection=collection, points=plan.batch(0)), tenant)
            try:
                res = self._call(self._points.Upsert, req, idempotent=True, write=True, timeout=timeout)
            except VecdbClientError as err:
                err.acknowledged = 0
                raise
            if progress:
                progress(plan.total, plan.total)
            return _codec.from_proto_write_result(res)
        return self._upsert_stream(collection, plan, progress, timeout, tenant)

    def _upsert_stream(self, collection: str, plan: UpsertPlan, progress: Progress | None,
                       timeout: float | None, tenant: str | int | None = None) -> WriteResult:
        timeout = self.settings.timeout if timeout is None else timeout
        deadline = None if timeout is None else timeout * len(plan.bounds)
        st = StreamProgress(plan, progress, self.settings.max_retries)
        md = write_metadata(self._md)  # batch i of every retry: key/i
        while not st.finished:
            try:
                requests = (scoped(r, self.tenant if tenant is None else tenant)
                            for r in st.requests(collection, ppb.UpsertRequest))
                for ack in self._points.UpsertStream(requests,
                                                     timeout=deadline, metadata=md):
                    st.on_ack(ack)
                st.check_complete()
            except (grpc.RpcError, VecdbClientError) as exc:
                err = st.on_error(exc)
                if err is not None:
                    raise err from None
                time.sleep(self.settings.backoff(st.attempt - 1))
        return WriteResult(plan.total, st.seqs)

    def delete(self, collection: str, ids: Sequence[str] | None = None, *,
               filter: Filter | None = None, tenant: str | int | None = None,
               timeout: float | None = None) -> WriteResult:
        """Delete points by id, or every point matching ``filter`` (exactly one of the two);
        ``count`` is the number that existed (missing ids are fine)."""
        req = scoped(_codec.delete_request(collection, ids, filter), tenant)
        return _codec.from_proto_write_result(
            self._call(self._points.Delete, req, idempotent=True, write=True, timeout=timeout))

    def update_payload(self, collection: str, ids: Sequence[str] | None = None,
                       filter: Filter | None = None, set: dict | None = None,
                       overwrite: dict | None = None, delete_keys: Sequence[str] | None = None,
                       *, tenant: str | int | None = None,
                       timeout: float | None = None) -> WriteResult:
        """Change the payloads of the points with these ids, or matching ``filter``, in one
        atomic write: ``overwrite`` replaces the payload, then ``set`` merges top-level keys,
        then ``delete_keys`` removes keys. Vectors, texts and TTLs stay. ``count`` = points
        changed (missing ids are skipped)."""
        req = scoped(_codec.update_payload_request(collection, ids, filter, set, overwrite,
                                                   delete_keys), tenant)
        return _codec.from_proto_write_result(
            self._call(self._points.UpdatePayload, req, idempotent=True, write=True, timeout=timeout))

    def update_vectors(self, collection: str, ids: Sequence[str], vectors: Any = None, *,
                       named: dict | None = None,
                       tenant: str | int | None = None,
                       timeout: float | None = None) -> WriteResult:
        """Replace the vectors of existing points (missing ids are skipped); payloads,
        texts and TTLs stay. ``named``: named vector fields to set ({field: one vector or
        None per id}); ``vectors`` None then keeps the primary; the other fields stay."""
        req = scoped(_codec.update_vectors_request(collection, ids, vectors, named), tenant)
        return _codec.from_proto_write_result(
            self._call(self._points.UpdateVectors, req, idempotent=True, write=True, timeout=timeout))

    # ------------------------------------------------------------ reads
    def get(self, collection: str, ids: Sequence[str], with_vectors: bool = False,
            with_payload: bool = True, *, tenant: str | int | None = None,
            timeout: float | None = None) -> list[Point]:
        """Points in request order; missing ids are omitted."""
        req = scoped(_codec.get_request(collection, check_ids(ids), with_vectors, with_payload),
                     tenant)
        resp = self._call(self._points.Get, req, idempotent=True, timeout=timeout)
        return _codec.from_proto_points(resp.points)

    def count(self, collection: str, filter: Filter | None = None, *,
              allow_partial: bool = False, tenant: str | int | None = None,
              timeout: float | None = None) -> int:
        """Points in the collection, or matching ``filter``. ``allow_partial``: see search."""
        req = scoped(_codec.count_request(collection, filter), tenant)
        req.allow_partial = allow_partial
        resp = self._call(self._points.Count, req,
                          idempotent=True, timeout=timeout)
        return with_partial(resp.count, resp) if allow_partial else resp.count

    def scroll(self, collection: str, limit: int = 100, cursor: str | None = None,
               with_vectors: bool = False, with_payload: bool = True, *,
               filter: Filter | None = None, tenant: str | int | None = None,
               timeout: float | None = None) -> ScrollPage:
        """One page of points in id order (only those matching ``filter``, when given);
        within a ``tenant``, in storage order (docs/tenants.md)."""
        req = scoped(_codec.scroll_request(collection, limit, cursor, with_vectors, with_payload,
                                           filter), tenant)
        return _codec.from_proto_scroll(
            self._call(self._points.Scroll, req, idempotent=True, timeout=timeout))

    def iter_points(self, collection: str, batch_size: int = 256, with_vectors: bool = False,
                    with_payload: bool = True, *, filter: Filter | None = None,
                    tenant: str | int | None = None) -> Iterator[Point]:
        """Every point of the collection (matching ``filter``), one scroll page at a time."""
        cursor = None
        while True:
            page = self.scroll(collection, batch_size, cursor, with_vectors, with_payload,
                               filter=filter, tenant=tenant)
            yield from page.points
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    def search(self, collection: str, vector: Any = None, *, vectors: Any = None, k: int = 10,
               nprobe: int | None = None, ef_search: int | None = None, exact: bool = False,
               with_payload: bool = True, with_vectors: bool = False,
               filter: Filter | None = None, explain: bool = False,
               text: str | None = None, texts: Sequence[str] | None = None,
               expression: Sequence[Any] | None = None, include_terms: bool = False,
               group_by: str | None = None, group_size: int | None = None,
               groups: int | None = None, allow_partial: bool = False,
               consistency: str = "any", keywords: str | Sequence[str] | None = None,
               fusion: str | None = None, weights: Sequence[float] | None = None,
               rrf_k: float | None = None, sparse: Any = None,
               keywords_field: str | None = None, using: str | None = None,
               tenant: str | int | None = None, timeout: float | None = None) -> Any:
        """``vector=`` (1-D) returns a list of hits; ``vectors=`` (2-D) a list per query.

        ``filter``: only points matching it are candidates. ``explain=True`` returns
        ``(hits, plan)``: ``plan`` says how each shard ran the call, e.g.
        ``"shard 0: prefilter(index, 167 matches)"``.

        ``text=`` (one query, a list of hits) or ``texts=`` (a list per query) search by
        text: the collection's encoder embeds them on the server.
        ``expression=`` (instead of a query) searches with a vector built from weighted
        terms: ``[("+", "id:king"), ("-", "text:man"), ("+", "text:woman")]``; a term is
        ``"id:ID"`` (a stored point), ``"text:TEXT"`` (embedded by the collection's encoder)
        or a vector, its sign ``"+"``, ``"-"`` or a number (the weight); or a dict
        ``{"id"|"text"|"vector": ..., "weight": w}``. Stored points used as terms are not
        returned unless ``include_terms=True``. One query: a list of hits.

        ``group_by="author"`` returns groups instead of hits: ``[Group(key, hits), ...]``,
        the best ``group_size`` (default 1) hits for each of the best ``groups`` (default 10)
        values of that payload field (k is not used); a list of them per query for
        ``vectors=``/``texts=``.

        ``allow_partial=True`` (cluster mode; also on count and range_search): a shard with
        no reachable replica is left out instead of raising UnavailableError, and the
        result (a list, or an int for count) has ``.partial`` True when one was.

        ``consistency`` (cluster mode; also on range_search): ``"any"`` reads each shard
        from any in-sync replica, ``"primary"`` from its primary only (docs/cluster.md
        "Reads": what a read right after a write sees). A single node ignores it.

        ``keywords=`` (a collection created with ``full_text``): alone, keyword search,
        hits scored by BM25 (a string: one query; a list: one per query); with
        ``vector(s)=``/``text(s)=`` (one keyword query each), hybrid search: the dense and
        keyword retrievers fused by ``fusion="rrf"`` (default; ``rrf_k``, default 60) or
        ``"weighted"`` (min-max normalised scores), ``weights=(dense, keywords)`` (default
        equal); hits scored by the fusion (README "Hybrid search"). ``sparse=(indices,
        values)`` (a list: one per query; collections with ``sparse_dim``): exact sparse
        dot-product search, alone or fused the same way (weights: dense, keywords, sparse).
        ``keywords_field="title"``: the keywords score that payload field (declared as a
        ``"text"`` payload index) instead of the point texts.
        ``using="image"`` (collections with named vector fields, docs/named_vectors.md;
        also on range_search and recommend): search that field instead of the primary."""
        if (expression is not None or group_by is not None) and keywords is None and sparse is None:
            req, single = _codec_query.search_request(
                collection, vector, vectors, k, expression=expression,
                include_terms=include_terms, group_by=group_by, group_size=group_size,
                groups=groups, nprobe=nprobe, ef_search=ef_search, exact=exact,
                with_payload=with_payload, with_vectors=with_vectors, filter=filter,
                text=text, texts=texts)
            scoped(_codec_named.using(req, using, beyond=True), tenant)
            req.allow_partial = allow_partial
            req.consistency = consistency_mode(consistency)
            resp = self._call(self._points.Search, req, idempotent=True, timeout=timeout)
            out = _codec_query.from_proto_search(resp, single, group_by is not None, explain)
            return with_partial(out, resp) if allow_partial else out
        req, single = _codec_hybrid.search_request(
            collection, vector, vectors, k, nprobe=nprobe, ef_search=ef_search, exact=exact,
            with_payload=with_payload, with_vectors=with_vectors, filter=filter, text=text,
            texts=texts, keywords=keywords, fusion=fusion, weights=weights, rrf_k=rrf_k,
            beyond=expression is not None or group_by is not None, explain=explain,
            sparse=sparse, keywords_field=keywords_field)
        scoped(_codec_named.using(req, using), tenant)
        req.allow_partial = allow_partial
        req.consistency = consistency_mode(consistency)
        resp = self._call(self._points.Search, req, idempotent=True, timeout=timeout)
        out = _codec.from_proto_search(resp, single, explain)
        return with_partial(out, resp) if allow_partial else out

    def recommend(self, collection: str, positive: Any, negative: Any = None, *,
                    strategy: str = "average", k: int = 10, filter: Filter | None = None,
                    include_examples: bool = False, nprobe: int | None = None,
                    ef_search: int | None = None, exact: bool = False, with_payload: bool = True,
                    with_vectors: bool = False, using: str | None = None,
                  tenant: str | int | None = None, timeout: float | None = None) -> list[Hit]:
        """Points like the ``positive`` examples and unlike the ``negative`` ones.

        An example is a stored id (a string), ``{"text": ...}`` (embedded by the
        collection's encoder), ``{"id": ...}``, or a vector. ``strategy="average"``
        searches with mean(positive) - mean(negative) (normalised for cosine);
        ``"best_score"`` scores each candidate by its best positive vs best negative
        similarity (scores in (0, 1) when closer to a positive, (-1, 0) otherwise; see
        docs/server_api.md). Stored examples are left out of the hits unless
        ``include_examples=True``. A missing id raises NotFoundError naming it.
        ``tenant`` (tenant collections): the examples' ids must be that tenant's (another
        tenant's id is NotFoundError, like a missing one) and the hits are its points."""
        req = _codec_query.recommend_request(
            collection, positive, negative, strategy, k, nprobe=nprobe, ef_search=ef_search,
            exact=exact, with_payload=with_payload, with_vectors=with_vectors, filter=filter,
            include_examples=include_examples)
        scoped(_codec_named.using(req, using), tenant)
        resp = self._call(self._points.Recommend, req, idempotent=True, timeout=timeout)
        return _codec.from_proto_search(resp, True)

    def range_search(self, collection: str, vector: Any = None, *, vectors: Any = None,
                     threshold: float, limit: int = 1000, filter: Filter | None = None,
                     nprobe: int | None = None, exact: bool = False, with_payload: bool = True,
                     with_vectors: bool = False,
                     allow_partial: bool = False, consistency: str = "any",
                     tenant: str | int | None = None, using: str | None = None,
                     timeout: float | None = None) -> list[Hit] | list[list[Hit]]:
        """Every point scoring better than ``threshold`` (cosine/ip: score > threshold;
        l2: squared distance < threshold), best first, at most ``limit`` per query.
        Same single/batch convention as :meth:`search`."""
        req, single = _codec.range_search_request(
            collection, vector, vectors, threshold, limit, nprobe=nprobe, exact=exact,
            with_payload=with_payload, with_vectors=with_vectors, filter=filter)
        scoped(_codec_named.using(req, using), tenant)
        req.allow_partial = allow_partial
        req.consistency = consistency_mode(consistency)
        resp = self._call(self._points.RangeSearch, req, idempotent=True, timeout=timeout)
        out = _codec.from_proto_search(resp, single)
        return with_partial(out, resp) if allow_partial else out
