"""asyncio client: :class:`AsyncClient` has the same methods as :class:`Client`, awaitable."""
from __future__ import annotations

import asyncio
import time
from typing import Any, AsyncIterator, Sequence

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
from .analytics import AsyncAnalyticsMethods
from .tenants import AsyncTenantMethods, default_tenant, scoped
from .client import Progress
from .errors import UnavailableError, VecdbClientError, from_rpc_error
from .filters import Filter
from .models import (CollectionConfig, CollectionInfo, Hit, Point, ScrollPage, SnapshotInfo,
                     WriteResult)


class AsyncClient(AsyncAnalyticsMethods, AsyncTenantMethods):
    """asyncio twin of :class:`vecdb_client.Client` (same arguments, same methods).

    >>> async with AsyncClient("127.0.0.1:50051") as c:
    ...     hits = await c.search("docs", vector=q, k=5)

    Create it inside the event loop that uses it.
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
        wire_stubs(self, [grpc.aio.secure_channel(t, creds, opts) if creds
                          else grpc.aio.insecure_channel(t, opts) for t in parse_targets(target)],
                   cgrpc, pgrpc, agrpc)
        self._md = call_metadata(api_key)

    # ------------------------------------------------------------ plumbing
    async def _call(self, method: Any, request: Any, *, idempotent: bool,
                    timeout: float | None, write: bool = False) -> Any:
        """``write``: the call carries an idempotency key, the same on every retry."""
        timeout = self.settings.timeout if timeout is None else timeout
        md = write_metadata(self._md) if write else self._md
        if self.tenant is not None:
            request = default_tenant(request, self.tenant)
        attempt = 0
        while True:
            try:
                return await method(request, timeout=timeout, metadata=md)
            except grpc.RpcError as exc:
                err = from_rpc_error(exc)
            if not (idempotent and isinstance(err, UnavailableError)
                    and attempt < self.settings.max_retries):
                raise err
            await asyncio.sleep(self.settings.backoff(attempt))
            attempt += 1

    async def close(self) -> None:
        for ch in self._channels:
            await ch.close()

    async def __aenter__(self) -> "AsyncClient":
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def health(self, timeout: float | None = 5.0) -> str:
        return parse_health(await self._call(self._health, b"", idempotent=True,
                                             timeout=timeout))

    async def wait_ready(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if await self.health(timeout=max(0.1, deadline - time.monotonic())) == "SERVING":
                    return
            except VecdbClientError:
                pass
            if time.monotonic() >= deadline:
                raise UnavailableError(f"server not SERVING after {timeout} s")
            await asyncio.sleep(0.05)

    # ------------------------------------------------------------ collections
    async def create_collection(self, name: str, dim: int | None = None, metric: str = "cosine",
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
        return _codec.from_proto_info(await self._call(
            self._collections.CreateCollection, req, idempotent=False, timeout=timeout))

    async def server_info(self, *, timeout: float | None = None) -> dict:
        """{"version", "started_at", "uptime_s", "ready"} of the server."""
        return _codec.from_proto_server_info(await self._call(
            self._collections.GetServerInfo, cpb.ServerInfoRequest(), idempotent=True, timeout=timeout))

    async def cluster_status(self, *, timeout: float | None = None) -> dict:
        """Cluster mode (docs/cluster.md): the nodes, and per shard its primary, term,
        replicas (in sync or not, points, applied WAL sequence), as the answering node sees
        them. FailedPreconditionError on a single-node server."""
        from ._proto.vecdb.v1 import cluster_pb2
        return _codec.from_proto_cluster_status(await self._call(
            self._cluster.GetClusterStatus, cluster_pb2.ClusterStatusRequest(), idempotent=True,
            timeout=timeout))

    async def drain_node(self, node: str, *, timeout: float | None = None) -> dict:
        """Cluster mode, admin: move the primaries of ``node`` to other in-sync replicas
        before a planned stop. {"moved": [...], "kept": [...]} ("collection/shard")."""
        from ._proto.vecdb.v1 import cluster_pb2
        res = await self._call(self._cluster.DrainNode, cluster_pb2.DrainNodeRequest(node=node),
                             idempotent=True, timeout=timeout)
        return {"moved": list(res.moved), "kept": list(res.kept)}

    async def remove_node(self, node: str, *, timeout: float | None = None) -> int:
        """Cluster mode, admin: remove ``node`` for good. It takes no new replicas and the
        rebalancer moves its replicas away (watch ``cluster_status()``; stop the node once
        it holds none). Returns how many replicas must move."""
        from ._proto.vecdb.v1 import cluster_pb2
        res = await self._call(self._cluster.RemoveNode, cluster_pb2.RemoveNodeRequest(node=node),
                             idempotent=True, timeout=timeout)
        return int(res.replicas)

    async def reshard_collection(self, name: str, shards: int, *,
                                 timeout: float | None = None) -> dict:
        """Cluster mode, admin: split or merge the shards of ``name`` online (see
        Client.reshard_collection)."""
        from ._proto.vecdb.v1 import cluster_pb2
        return _codec.from_proto_reshard(await self._call(
            self._cluster.ReshardCollection, cluster_pb2.ReshardCollectionRequest(
                collection=name, shards=shards), idempotent=True, timeout=timeout))

    async def rebalance_plan(self, *, timeout: float | None = None) -> dict:
        """Cluster mode: {"rebalancer", "in_progress": [...], "planned": [...]}: the replica
        moves under way and those the rebalancer would start next (each {"collection",
        "shard", "source", "target", "phase"}). Changes nothing."""
        from ._proto.vecdb.v1 import cluster_pb2
        return _codec.from_proto_rebalance_plan(await self._call(
            self._cluster.PlanRebalance, cluster_pb2.PlanRebalanceRequest(), idempotent=True,
            timeout=timeout))

    async def list_collections(self, *, timeout: float | None = None) -> list[CollectionConfig]:
        resp = await self._call(self._collections.ListCollections,
                                cpb.ListCollectionsRequest(), idempotent=True, timeout=timeout)
        return [_codec.from_proto_config(c) for c in resp.collections]

    async def describe_collection(self, name: str, *, tenant: str | int | None = None,
                                  timeout: float | None = None) -> CollectionInfo:
        """See :meth:`vecdb_client.Client.describe_collection`."""
        req = scoped(cpb.DescribeCollectionRequest(collection=name), tenant)
        return _codec.from_proto_info(await self._call(
            self._collections.DescribeCollection, req, idempotent=True, timeout=timeout))

    async def drop_collection(self, name: str, *, timeout: float | None = None) -> None:
        await self._call(self._collections.DropCollection, cpb.DropCollectionRequest(name=name),
                         idempotent=False, timeout=timeout)

    async def create_alias(self, alias: str, collection: str, *,
                           timeout: float | None = None) -> None:
        await self._call(self._collections.CreateAlias,
                         cpb.AliasRequest(alias=alias, collection=collection),
                         idempotent=False, timeout=timeout)

    async def set_alias(self, alias: str, collection: str, *,
                        timeout: float | None = None) -> None:
        await self._call(self._collections.SetAlias,
                         cpb.AliasRequest(alias=alias, collection=collection),
                         idempotent=True, timeout=timeout)

    async def delete_alias(self, alias: str, *, timeout: float | None = None) -> None:
        await self._call(self._collections.DeleteAlias, cpb.DeleteAliasRequest(alias=alias),
                         idempotent=False, timeout=timeout)

    async def list_aliases(self, collection: str | None = None, *,
                           timeout: float | None = None) -> dict[str, str]:
        resp = await self._call(self._collections.ListAliases,
                                cpb.ListAliasesRequest(collection=collection),
                                idempotent=True, timeout=timeout)
        return dict(resp.aliases)

    # ------------------------------------------------------------ payload indexes
    async def create_payload_index(self, collection: str, field: str, type: str,
                                   wait: bool = False, *, timeout: float | None = None) -> None:
        """See :meth:`vecdb_client.Client.create_payload_index`.
        ``encoder`` (e.g. "minilm"): texts can be upserted and searched without vectors;
        ``dim`` None takes the encoder's dimension (docs/encoders.md)."""
        req = cpb.CreatePayloadIndexRequest(collection=collection, field=field, type=type)
        await self._call(self._collections.CreatePayloadIndex, req, idempotent=False,
                         timeout=timeout)
        deadline = _codec.deadline_after(self.settings.timeout if timeout is None else timeout)
        while wait and not _codec.payload_index_ready(
                await self.describe_collection(collection, timeout=timeout), field, deadline):
            await asyncio.sleep(0.05)

    async def drop_payload_index(self, collection: str, field: str, *,
                                 timeout: float | None = None) -> None:
        req = cpb.DropPayloadIndexRequest(collection=collection, field=field)
        await self._call(self._collections.DropPayloadIndex, req, idempotent=False,
                         timeout=timeout)

    # ------------------------------------------------------------ snapshots
    async def create_snapshot(self, collection: str, name: str | None = None, tarball: bool = False,
                        *, timeout: float | None = None) -> SnapshotInfo:
        """Consistent online snapshot of a collection into the server's snapshot directory
        (a directory, or one ``<name>.tar`` with ``tarball=True``)."""
        req = _codec.snapshot_request(collection, name, tarball)
        return _codec.from_proto_snapshot(
            await self._call(self._collections.CreateSnapshot, req, idempotent=False, timeout=timeout))

    async def list_snapshots(self, *, timeout: float | None = None) -> list[SnapshotInfo]:
        res = await self._call(self._collections.ListSnapshots, cpb.ListSnapshotsRequest(),
                               idempotent=True, timeout=timeout)
        return [_codec.from_proto_snapshot(s) for s in res.snapshots]

    async def delete_snapshot(self, name: str, *, timeout: float | None = None) -> None:
        await self._call(self._collections.DeleteSnapshot, cpb.DeleteSnapshotRequest(name=name),
                   idempotent=False, timeout=timeout)

    async def restore_snapshot(self, name: str, collection: str | None = None, *,
                         timeout: float | None = None) -> CollectionInfo:
        """Restore a snapshot as a new collection (its original name, or ``collection``);
        a damaged snapshot raises FailedPreconditionError and nothing is written."""
        req = _codec.restore_request(name, collection)
        return _codec.from_proto_info(
            await self._call(self._collections.RestoreSnapshot, req, idempotent=False, timeout=timeout))

    async def reembed(self, collection: str, encoder: str, alias: str | None = None, *,
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
        info = _codec.from_proto_info(await self._call(self._collections.ReembedCollection, req,
                                                     idempotent=False, timeout=timeout))
        deadline = _codec.deadline_after(self.settings.timeout if timeout is None else timeout)
        source = info.name
        while wait and not _codec.reembed_done(info, deadline):
            await asyncio.sleep(0.1)
            info = await self.describe_collection(source, timeout=timeout)
        return info

    # ------------------------------------------------------------ writes
    async def upsert(self, collection: str, ids: Sequence[str], vectors: Any = None,
                     payloads: Sequence[dict | None] | None = None,
                     texts: Sequence[str | None] | None = None, ttl: Any = None, *,
                     sparse: Sequence[Any] | None = None, progress: Progress | None = None,
                     tenant: str | int | None = None, named: dict | None = None,
                     timeout: float | None = None) -> WriteResult:
        """See :meth:`vecdb_client.Client.upsert`.
        ``vectors=None``: the collection's encoder embeds ``texts`` (one non-empty text per
        point); with vectors, texts are only stored (docs/encoders.md "Mixing rules")."""
        ids = check_ids(ids)
        plan = plan_upsert(ids, _codec.upsert_vectors(ids, vectors), payloads, texts,
                           max_bytes=self.settings.chunk_bytes,
                           max_points=self.settings.chunk_points, ttl=ttl, sparse=sparse,
                           named=named)
        if len(plan.bounds) == 1:
            req = scoped(ppb.UpsertRequest(collection=collection, points=plan.batch(0)), tenant)
            try:
                res = await self._call(self._points.Upsert, req, idempotent=True, write=True,
                                       timeout=timeout)
            except VecdbClientError as err:
                err.acknowledged = 0
                raise
            if progress:
                progress(plan.total, plan.total)
            return _codec.from_proto_write_result(res)
        return await self._upsert_stream(collection, plan, progress, timeout, tenant)

    async def _upsert_stream(self, collection: str, plan: UpsertPlan,
                             progress: Progress | None, timeout: float | None,
                             tenant: str | int | None = None) -> WriteResult:
        timeout = self.settings.timeout if timeout is None else timeout
        deadline = None if timeout is None else timeout * len(plan.bounds)
        st = StreamProgress(plan, progress, self.settings.max_retries)
        md = write_metadata(self._md)  # batch i of every retry: key/i
        while not st.finished:
            try:
                requests = (scoped(r, self.tenant if tenant is None else tenant)
                            for r in st.requests(collection, ppb.UpsertRequest))
                call = self._points.UpsertStream(requests,
                                                 timeout=deadline, metadata=md)
                async for ack in call:
                    st.on_ack(ack)
                st.check_complete()
            except (grpc.RpcError, VecdbClientError) as exc:
                err = st.on_error(exc)
                if err is not None:
                    raise err from None
                await asyncio.sleep(self.settings.backoff(st.attempt - 1))
        return WriteResult(plan.total, st.seqs)

    async def delete(self, collection: str, ids: Sequence[str] | None = None, *,
                     filter: Filter | None = None, tenant: str | int | None = None,
                     timeout: float | None = None) -> WriteResult:
        req = scoped(_codec.delete_request(collection, ids, filter), tenant)
        return _codec.from_proto_write_result(
            await self._call(self._points.Delete, req, idempotent=True, write=True, timeout=timeout))

    async def update_payload(self, collection: str, ids: Sequence[str] | None = None,
                             filter: Filter | None = None, set: dict | None = None,
                             overwrite: dict | None = None,
                             delete_keys: Sequence[str] | None = None, *,
                             tenant: str | int | None = None,
                             timeout: float | None = None) -> WriteResult:
        """See :meth:`vecdb_client.Client.update_payload`."""
        req = scoped(_codec.update_payload_request(collection, ids, filter, set, overwrite,
                                                   delete_keys), tenant)
        return _codec.from_proto_write_result(
            await self._call(self._points.UpdatePayload, req, idempotent=True, write=True, timeout=timeout))

    async def update_vectors(self, collection: str, ids: Sequence[str], vectors: Any = None, *,
                             named: dict | None = None,
                             tenant: str | int | None = None,
                             timeout: float | None = None) -> WriteResult:
        req = scoped(_codec.update_vectors_request(collection, ids, vectors, named), tenant)
        return _codec.from_proto_write_result(
            await self._call(self._points.UpdateVectors, req, idempotent=True, write=True, timeout=timeout))

    # ------------------------------------------------------------ reads
    async def get(self, collection: str, ids: Sequence[str], with_vectors: bool = False,
                  with_payload: bool = True, *, tenant: str | int | None = None,
                  timeout: float | None = None) -> list[Point]:
        req = scoped(_codec.get_request(collection, check_ids(ids), with_vectors, with_payload),
                     tenant)
        resp = await self._call(self._points.Get, req, idempotent=True, timeout=timeout)
        return _codec.from_proto_points(resp.points)

    async def count(self, collection: str, filter: Filter | None = None, *,
                    allow_partial: bool = False, tenant: str | int | None = None,
                    timeout: float | None = None) -> int:
        req = scoped(_codec.count_request(collection, filter), tenant)
        req.allow_partial = allow_partial
        resp = await self._call(self._points.Count, req,
                                idempotent=True, timeout=timeout)
        return with_partial(resp.count, resp) if allow_partial else resp.count

    async def scroll(self, collection: str, limit: int = 100, cursor: str | None = None,
                     with_vectors: bool = False, with_payload: bool = True, *,
                     filter: Filter | None = None, tenant: str | int | None = None,
                     timeout: float | None = None) -> ScrollPage:
        req = scoped(_codec.scroll_request(collection, limit, cursor, with_vectors, with_payload,
                                           filter), tenant)
        return _codec.from_proto_scroll(
            await self._call(self._points.Scroll, req, idempotent=True, timeout=timeout))

    async def iter_points(self, collection: str, batch_size: int = 256,
                          with_vectors: bool = False, with_payload: bool = True, *,
                          filter: Filter | None = None,
                          tenant: str | int | None = None) -> AsyncIterator[Point]:
        cursor = None
        while True:
            page = await self.scroll(collection, batch_size, cursor, with_vectors, with_payload,
                                     filter=filter, tenant=tenant)
            for p in page.points:
                yield p
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def search(self, collection: str, vector: Any = None, *, vectors: Any = None,
                     k: int = 10, nprobe: int | None = None, ef_search: int | None = None,
                     exact: bool = False, with_payload: bool = True, with_vectors: bool = False,
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
        """See :meth:`vecdb_client.Client.search` (``explain=True`` -> ``(hits, plan)``).
        ``text=`` (one query, a list of hits) or ``texts=`` (a list per query) search by
        text: the collection's encoder embeds them on the server. ``keywords=``,
        ``fusion=``, ``weights=``, ``rrf_k=``, ``sparse=``, ``keywords_field=``: keyword,
        sparse and hybrid search, as there."""
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
            resp = await self._call(self._points.Search, req, idempotent=True, timeout=timeout)
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
        resp = await self._call(self._points.Search, req, idempotent=True, timeout=timeout)
        out = _codec.from_proto_search(resp, single, explain)
        return with_partial(out, resp) if allow_partial else out

    async def recommend(self, collection: str, positive: Any, negative: Any = None, *,
                        strategy: str = "average", k: int = 10, filter: Filter | None = None,
                        include_examples: bool = False, nprobe: int | None = None,
                        ef_search: int | None = None, exact: bool = False, with_payload: bool = True,
                        with_vectors: bool = False, using: str | None = None,
                        tenant: str | int | None = None,
                        timeout: float | None = None) -> list[Hit]:
        """See :meth:`vecdb_client.Client.recommend`."""
        req = _codec_query.recommend_request(
            collection, positive, negative, strategy, k, nprobe=nprobe, ef_search=ef_search,
            exact=exact, with_payload=with_payload, with_vectors=with_vectors, filter=filter,
            include_examples=include_examples)
        scoped(_codec_named.using(req, using), tenant)
        resp = await self._call(self._points.Recommend, req, idempotent=True, timeout=timeout)
        return _codec.from_proto_search(resp, True)

    async def range_search(self, collection: str, vector: Any = None, *, vectors: Any = None,
                           threshold: float, limit: int = 1000, filter: Filter | None = None,
                           nprobe: int | None = None, exact: bool = False,
                           with_payload: bool = True, with_vectors: bool = False,
                           allow_partial: bool = False, consistency: str = "any",
                           tenant: str | int | None = None, using: str | None = None,
                           timeout: float | None = None) -> list[Hit] | list[list[Hit]]:
        """See :meth:`vecdb_client.Client.range_search`."""
        req, single = _codec.range_search_request(
            collection, vector, vectors, threshold, limit, nprobe=nprobe, exact=exact,
            with_payload=with_payload, with_vectors=with_vectors, filter=filter)
        scoped(_codec_named.using(req, using), tenant)
        req.allow_partial = allow_partial
        req.consistency = consistency_mode(consistency)
        resp = await self._call(self._points.RangeSearch, req, idempotent=True, timeout=timeout)
        out = _codec.from_proto_search(resp, single)
        return with_partial(out, resp) if allow_partial else out
