"""Node-to-node calls: the public gRPC services of another node, with the internal
metadata that makes it act on its own replicas instead of routing.

  x-vecdb-cluster  the cluster secret (a client's API key cannot make these calls)
  x-vecdb-route    local   | read or write this node's replica, named by its local name
                   primary | apply as the shard's primary, then replicate
                   replica | a replicated write from the primary (fenced by term)
                   resync  | a step of the primary's catch-up of a replica (fenced too)
  x-vecdb-term     the primary's term (replica route)
  x-vecdb-shard    "<collection>/<shard>" (primary and replica routes)
  x-vecdb-from     the sending node's id
  x-vecdb-entry    "<term> <n>": the write's replication-log key (catchup.py), with
  x-vecdb-prev     the key before it (the replica must be there) and
  x-vecdb-written  when the primary applied it (ms since the epoch)
"""
from __future__ import annotations

import hmac
import logging
import threading
from typing import Any

import grpc
from vecdb_client._proto.vecdb.v1 import analytics_pb2_grpc as agrpc
from vecdb_client._proto.vecdb.v1 import cluster_pb2_grpc as clgrpc
from vecdb_client._proto.vecdb.v1 import collections_pb2_grpc as cgrpc
from vecdb_client._proto.vecdb.v1 import points_pb2_grpc as pgrpc
from vecdb_client.errors import FIELD_KEY, REQUEST_ID_KEY, from_metadata_text

from vecdb.errors import Unavailable, VecdbError

log = logging.getLogger("vecdb_server.cluster")

SECRET, ROUTE, TERM, SHARD, FROM = ("x-vecdb-cluster", "x-vecdb-route", "x-vecdb-term",
                                    "x-vecdb-shard", "x-vecdb-from")
ENTRY, PREV, WRITTEN = "x-vecdb-entry", "x-vecdb-prev", "x-vecdb-written"
ROUTES = ("local", "primary", "replica", "resync")


def internal_route(metadata: Any, secret: str) -> dict[str, str] | None:
    """The internal headers of a call, or None for a client call. A call that claims a
    route without the right secret is refused (PermissionError)."""
    md = {k: v for k, v in (metadata or ()) if isinstance(v, str)}
    if ROUTE not in md:
        return None
    if md[ROUTE] not in ROUTES or not hmac.compare_digest(md.get(SECRET, ""), secret):
        raise PermissionError("internal cluster calls need the cluster secret")
    return md


class Peers:
    """One channel per peer address, reused; thread-safe."""

    def __init__(self, secret: str, node_id: str, max_message_bytes: int):
        self._secret, self.node_id = secret, node_id
        self._opts = [("grpc.max_receive_message_length", max_message_bytes),
                      ("grpc.max_send_message_length", max_message_bytes),
                      ("grpc.enable_retries", 0),
                      # a restarted peer is reachable again within a second (gRPC's
                      # default backoff grows to 2 minutes of failing fast)
                      ("grpc.initial_reconnect_backoff_ms", 100),
                      ("grpc.min_reconnect_backoff_ms", 100),
                      ("grpc.max_reconnect_backoff_ms", 1000)]
        self._channels: dict[str, tuple] = {}
        self._lock = threading.Lock()

    def _stubs(self, address: str) -> tuple:
        with self._lock:
            got = self._channels.get(address)
            if got is None:
                ch = grpc.insecure_channel(address, self._opts)
                got = self._channels[address] = (ch, cgrpc.CollectionServiceStub(ch),
                                                 pgrpc.PointServiceStub(ch),
                                                 agrpc.AnalyticsServiceStub(ch),
                                                 clgrpc.ClusterServiceStub(ch))
        return got[1:]

    def metadata(self, route: str, shard: str = "", term: int = 0) -> tuple:
        md = [(SECRET, self._secret), (ROUTE, route), (FROM, self.node_id)]
        if shard:
            md += [(SHARD, shard), (TERM, str(term))]
        return tuple(md)

    def call(self, address: str, method: str, request: Any, md: tuple,
             timeout: float = 10.0) -> Any:
        """``method`` of the node at ``address``; grpc.RpcError on failure."""
        stubs = self._stubs(address)
        stub = next((s for s in stubs[1:] if hasattr(s, method)), stubs[0])
        return getattr(stub, method)(request, metadata=md, timeout=timeout)

    def close(self) -> None:
        with self._lock:
            for ch, *_ in self._channels.values():
                ch.close()
            self._channels.clear()


class PeerInternal(VecdbError):
    """A peer's INTERNAL (a bug there) or UNIMPLEMENTED: the client gets INTERNAL (the
    same call on another node would meet the same bug), never a retry."""

    code = "INTERNAL"


class PeerDeadline(Unavailable):
    """A peer did not answer in time: another replica may (reads go on to the next);
    the client gets DEADLINE_EXCEEDED (servicers.py) when none did."""

    code = "DEADLINE_EXCEEDED"


def from_peer_failure(exc: grpc.RpcError, node_id: str) -> VecdbError:
    """A peer's failure other than the engine's own errors, for the client: no raw gRPC
    details (addresses, transport text) in the message, they go to this node's log."""
    code = exc.code() if hasattr(exc, "code") else None
    details = exc.details() if hasattr(exc, "details") else str(exc)
    md = {k: v for k, v in (exc.trailing_metadata() or ()) if isinstance(v, str)} \
        if hasattr(exc, "trailing_metadata") else {}
    if code == grpc.StatusCode.UNAVAILABLE and REQUEST_ID_KEY in md:
        # the peer itself answered (a busy shard, a map that changed...): its words stand
        field = from_metadata_text(md[FIELD_KEY]) if FIELD_KEY in md else "collection"
        return Unavailable(f"node {node_id}: {details}", field)
    if code in (grpc.StatusCode.INTERNAL, grpc.StatusCode.UNIMPLEMENTED):
        rid = md.get(REQUEST_ID_KEY)
        log.error("node %s answered %s: %s", node_id, code.name, details)
        return PeerInternal(f"internal error on node {node_id}" + (
            f"; quote request id {rid} when reporting it" if rid else
            f" ({code.name}: a different vecdb version there?)"))
    if code in (grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED):
        log.error("cluster secret mismatch with node %s: it refused this node's internal "
                  "call (%s: %s)", node_id, code.name, details)
        return Unavailable(f"node {node_id} refused this node's internal call (see the "
                           "server log)", "collection")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return PeerDeadline(f"node {node_id} did not answer in time", "collection")
    log.info("node %s is unreachable: %s: %s", node_id, getattr(code, "name", code), details)
    return Unavailable(f"node {node_id} is unreachable ({getattr(code, 'name', code)})",
                       "collection")
