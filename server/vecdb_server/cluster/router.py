"""The router: every node answers every request. Client calls are split by shard (the
engine's own id hash), sent to each shard's primary (writes) or to one in-sync replica
(reads, local first), and the answers merged as a single node would give them.
Internal calls (peers.py) act on this node's own replicas.

Writes: the primary applies a shard's part under the shard's write lock, then sends the
same mutation (texts embedded once, by the primary: replicas get the vectors) to every
other in-sync replica with its term, and acknowledges only when each of them has it
durably; a replica that fails is first removed from the in-sync set in etcd (a compare-
and-swap: if the map changed meanwhile, e.g. a newer term, nothing is acknowledged).
A write needs at least write_concern in-sync copies. Replicas refuse an older term.
"""
from __future__ import annotations

import base64
import logging
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Callable

import grpc
from vecdb_client._proto.vecdb.v1 import collections_pb2 as cpb
from vecdb_client._proto.vecdb.v1 import points_pb2 as ppb
from vecdb_client._proto.vecdb.v1 import types_pb2 as tpb
from vecdb_client.errors import FIELD_KEY, from_metadata_text

from vecdb.errors import (AlreadyExists, FailedPrecondition, InvalidArgument, NotFound,
                          ResourceExhausted, Unavailable, VecdbError)

from ..guard import Rejected
from . import state as st
from .node import ClusterNode
from .peers import FROM, ROUTE, SHARD, TERM, Peers, internal_route, unreachable
from .state import CollectionSpec

log = logging.getLogger("vecdb_server.cluster")
PEER_ERRORS = {grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
               grpc.StatusCode.NOT_FOUND: NotFound,
               grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
               grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
               grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted}
STALE_TERM = "stale term"
READ_TIMEOUT_S = 5.0


def _check_concern(spec: CollectionSpec, i: int, copies: int, note: str) -> None:
    need = spec.required_in_sync()
    if copies < need:
        raise Unavailable(f"shard {spec.name}/{i}: {copies} in-sync copies {note}; "
                          f"write_concern {spec.write_concern} needs {need}", "write_concern")


class NoContext:
    """The context of a call the router makes to a local servicer itself."""

    def time_remaining(self) -> None:
        return None

    def invocation_metadata(self) -> tuple:
        return ()

    def is_active(self) -> bool:
        return True


class Router:
    def __init__(self, node: ClusterNode, peers: Peers, secret: str, local_collections: Any,
                 local_points: Any):
        self.node, self.peers, self.secret = node, peers, secret
        self.lc, self.lp = local_collections, local_points
        self.pool = ThreadPoolExecutor(32, thread_name_prefix="vecdb-route")
        node.resync = self.resync

    # ---- dispatch ------------------------------------------------------------------------
    def route_of(self, context: Any) -> dict[str, str] | None:
        try:
            return internal_route(context.invocation_metadata(), self.secret)
        except PermissionError as exc:
            raise Rejected(grpc.StatusCode.PERMISSION_DENIED, str(exc)) from None

    def local(self, method: str, request: Any) -> Any:
        servicer = self.lp if hasattr(self.lp, method) else self.lc
        return getattr(servicer, method)(request, NoContext())

    def internal(self, method: str, request: Any, md: dict[str, str]) -> Any:
        """An internal call: act on this node's replica."""
        if md[ROUTE] == "replica":
            self._check_term(md)
        elif md[ROUTE] == "primary":
            name, _, shard = md[SHARD].rpartition("/")
            return self.primary_write(name, int(shard), method, request)
        return self.local(method, request)

    def _check_term(self, md: dict[str, str]) -> None:
        name, _, shard = md[SHARD].rpartition("/")
        s = self.node.shard(name, int(shard))
        term = int(md[TERM])
        if term < s.term or (term == s.term and md.get(FROM) != s.primary):
            raise FailedPrecondition(f"{STALE_TERM}: shard {name}/{shard} is at term {s.term} "
                                     f"(primary {s.primary}); the sender has term {term}",
                                     "term")

    # ---- calls to shards -----------------------------------------------------------------
    def _peer(self, node_id: str, method: str, request: Any, md: tuple,
              timeout: float = 10.0) -> Any:
        try:
            return self.peers.call(self.node.address(node_id), method, request, md, timeout)
        except grpc.RpcError as exc:
            raise self._from_peer(exc, node_id) from None

    def _from_peer(self, exc: grpc.RpcError, node_id: str) -> VecdbError:
        cls = PEER_ERRORS.get(exc.code())
        if cls is None:
            return unreachable(f"node {node_id}", exc)
        md = {k: v for k, v in (exc.trailing_metadata() or ()) if isinstance(v, str)}
        field = from_metadata_text(md[FIELD_KEY]) if FIELD_KEY in md else None
        return cls(exc.details(), field)

    def read_shard(self, spec: CollectionSpec, i: int, method: str, request: Any) -> Any:
        """``method`` on one in-sync replica of shard i: this node's own first, then the
        primary, then the others; UNAVAILABLE naming the shard when none answers."""
        s = self.node.shard(spec.name, i)
        order = sorted(s.in_sync, key=lambda r: (r != self.node.id, r != s.primary))
        last: Exception | None = None
        for r in order:
            try:
                if r == self.node.id:
                    return self.local(method, request)
                # a hung replica costs READ_TIMEOUT_S, then the next one is asked
                return self._peer(r, method, request, self.peers.metadata("local"),
                                  READ_TIMEOUT_S)
            except Unavailable as exc:
                last = exc
        raise Unavailable(f"shard {spec.name}/{i} has no reachable in-sync replica "
                          f"({last.message if isinstance(last, VecdbError) else 'none'})",
                          "collection")

    def write_shard(self, spec: CollectionSpec, i: int, method: str, request: Any) -> Any:
        s = self.node.shard(spec.name, i)
        if s.primary == self.node.id:
            return self.primary_write(spec.name, i, method, request)
        return self._peer(s.primary, method, request,
                          self.peers.metadata("primary", f"{spec.name}/{i}", s.term), 30.0)

    def fan_out(self, fn: Callable[[int], Any], shards: list[int]) -> dict[int, Any]:
        """fn(shard) for every shard: all but the first in the pool, the first in this
        thread (one shard: no thread hop at all)."""
        futures = {i: self.pool.submit(fn, i) for i in shards[1:]}
        out = {shards[0]: fn(shards[0])} if shards else {}
        out.update((i, f.result()) for i, f in futures.items())
        return out

    # ---- the primary's write path --------------------------------------------------------
    def primary_write(self, name: str, i: int, method: str, request: Any) -> Any:
        spec = self.node.spec(name)
        with self.node.write_lock(name, i):
            s = self.node.shard(name, i)
            if s.primary != self.node.id:
                raise Unavailable(f"shard {name}/{i} moved to {s.primary} (term {s.term}); "
                                  "retry", "collection")
            _check_concern(spec, i, len(s.in_sync), "(replicas are catching up)")
            result = self.local(method, request)
            others = [r for r in s.in_sync if r != self.node.id]
            if others:
                self._replicate(spec, i, s, method, self._replicable(method, request), others)
            return result

    def _replicable(self, method: str, request: Any) -> Any:
        """The mutation as replicas apply it: texts the primary embedded travel as vectors."""
        if method in ("Upsert", "UpsertStreamBatch") and request.points.texts \
                and not request.points.vectors.data:
            got = self.local("Get", ppb.GetRequest(collection=request.collection,
                                                   ids=request.points.ids, with_vector=True,
                                                   with_payload=False))
            out = ppb.UpsertRequest()
            out.CopyFrom(request)
            out.points.vectors.CopyFrom(got.points.vectors)
            return out
        return request

    def _replicate(self, spec: CollectionSpec, i: int, s: st.ShardState, method: str,
                   request: Any, others: list[str]) -> None:
        md = self.peers.metadata("replica", f"{spec.name}/{i}", s.term)
        futures = {r: self.pool.submit(self._peer, r, method, request, md, 10.0) for r in others}
        failed, fenced = [], False
        for r, f in futures.items():
            try:
                f.result()
            except FailedPrecondition as exc:
                fenced |= STALE_TERM in exc.message
                failed.append(r)
            except VecdbError as exc:
                log.warning("replica %s of %s/%d missed a write: %s", r, spec.name, i, exc)
                failed.append(r)
        if fenced:
            raise Unavailable(f"this node is no longer the primary of shard {spec.name}/{i} "
                              "(a newer term exists); the write is not acknowledged, retry",
                              "collection")
        if failed:
            self._drop_from_in_sync(spec, i, s, failed)

    def _drop_from_in_sync(self, spec: CollectionSpec, i: int, s: st.ShardState,
                           failed: list[str]) -> None:
        """Before acknowledging: the replicas that missed the write leave the in-sync set
        (so none of them can ever be elected with it missing). A lost compare-and-swap is
        retried on the fresh entry while this node is still the primary of this term."""
        cur = s
        for _ in range(5):
            new = cur.with_(in_sync=tuple(r for r in cur.in_sync if r not in failed))
            if self.node.change_shard(spec.name, i, cur, new):
                _check_concern(spec, i, len(new.in_sync), "hold the write; not acknowledged")
                return
            cur = self.node.refresh_shard(spec.name, i)
            if cur.primary != self.node.id or cur.term != s.term:
                break
        raise Unavailable(f"the map of shard {spec.name}/{i} changed during the write (term "
                          f"{cur.term}, primary {cur.primary}); not acknowledged, retry",
                          "collection")

    def _carry_ttls(self, local: str, batch: tpb.PointBatch) -> None:
        """Give a resync page the seconds each point has left, so copies expire with it."""
        with self.node.engine.session() as db:
            expiry = db.expiry_of(local, list(batch.ids))
        if expiry:
            now = time.time() * 1000
            batch.ttl_seconds.extend(max(0.001, (expiry[i] - now) / 1000) if i in expiry
                                     else 0.0 for i in batch.ids)

    # ---- resync (runs on the primary, from ClusterNode.maintain) -------------------------
    def resync(self, name: str, i: int, r: str) -> None:
        """Copy shard i to replica r from scratch, then add r to the in-sync set; the
        shard's writes wait meanwhile (so the copy misses nothing)."""
        spec = self.node.spec(name)
        local = st.local_name(spec.uid, i)
        with self.node.write_lock(name, i):
            s = self.node.shard(name, i)
            if s.primary != self.node.id or r in s.in_sync or r not in s.replicas:
                return
            log.info("resyncing shard %s/%d to %s", name, i, r)
            md = self.peers.metadata("local")
            try:
                self._peer(r, "DropCollection", cpb.DropCollectionRequest(name=local), md)
            except NotFound:
                pass
            req = cpb.CreateCollectionRequest.FromString(base64.b64decode(spec.request))
            req.name, req.shards = local, 1
            try:
                self._peer(r, "CreateCollection", req, md, 60.0)
            except AlreadyExists:
                pass  # r's own maintenance made it after the drop above: empty, use it
            cursor = None
            while True:
                page = self.local("Scroll", ppb.ScrollRequest(collection=local, limit=2000,
                                                               cursor=cursor, with_vector=True))
                self._carry_ttls(local, page.points)
                if page.points.ids:
                    self._peer(r, "Upsert", ppb.UpsertRequest(collection=local,
                                                              points=page.points), md, 60.0)
                if not page.HasField("next_cursor"):
                    break
                cursor = page.next_cursor
            new = s.with_(in_sync=tuple([*s.in_sync, r]))
            if self.node.change_shard(name, i, s, new):
                log.info("replica %s of shard %s/%d is in sync (term %d)", r, name, i, s.term)
