"""The cluster parts of one server process, wired explicitly (app.py uses this only
when cluster_etcd is set): etcd client, peers, the node, the router and its servicers."""
from __future__ import annotations

from typing import Any

from ..config import ServerConfig
from ..engine import EngineHolder
from .etcd import Etcd
from .moves import Mover
from .node import ClusterNode, default_node_id
from .peers import Peers
from .readiness import Readiness
from .reshard import Resharder
from .router import Router
from .servicers import ClusterCollectionServicer, ClusterPointServicer, analytics_servicer
from .state import Node
from .status import ClusterStatusServicer


class ClusterWiring:
    def __init__(self, cfg: ServerConfig, engine: EngineHolder, local_collections: Any,
                 local_points: Any):
        self.cfg = cfg
        self.etcd = Etcd(cfg.cluster_etcd)
        self.peers = Peers(cfg.cluster_secret, cfg.node_id, cfg.max_message_bytes)
        self.node = ClusterNode(self.etcd, Node(cfg.node_id, cfg.advertise, cfg.zone),
                                cfg.node_ttl_s, engine)
        self.node.mover = Mover(self.node, cfg.rebalance_max_concurrent_moves)
        self.router = Router(self.node, self.peers, cfg.cluster_secret, local_collections,
                             local_points, cfg.cluster_router_threads)
        self.router.copies.limit(cfg.rebalance_max_bytes_per_s)
        self.router.max_batch_points = cfg.max_batch_points
        self.router.max_message_bytes = cfg.max_message_bytes
        self.node.missed = self._missed
        self.resharder = Resharder(self.router)
        self.readiness: Readiness | None = None

    def report_readiness(self, set_status: Any) -> None:
        """Publish readiness.IN_SYNC through ``set_status`` (HealthServicer.set): NOT_SERVING
        now, followed from join() on."""
        self.readiness = Readiness(self.node, set_status)

    def _missed(self, name: str, i: int, term: int) -> set[str]:
        """Replicas that missed an unacknowledged write of shard (name, i) at ``term``,
        as the router of this node (their primary) recorded them."""
        at, left = self.router.dirty.get((name, i), (0, set()))
        return set(left) if at == term else set()

    def servicers(self) -> tuple[Any, Any, Any]:
        points = ClusterPointServicer(self.router)
        return (ClusterCollectionServicer(self.router, points), points,
                analytics_servicer(self.router))

    def aliases(self) -> dict[str, str]:
        with self.node._lock:
            return dict(self.node.aliases)

    def status_servicer(self) -> ClusterStatusServicer:
        return ClusterStatusServicer(self.router)

    def join(self, port: int, internal_port: int = 0) -> None:
        """Register (the bound port completes the defaults of node_id and advertise; the
        internal server's port is advertised on the same host)."""
        node_id = self.cfg.node_id or default_node_id(port)
        address = self.cfg.advertise or f"{self.cfg.host}:{port}"
        internal = f"{address.rsplit(':', 1)[0]}:{internal_port}" if internal_port else ""
        self.node.me = Node(node_id, address, self.cfg.zone, internal)
        self.node.id = self.peers.node_id = node_id
        self.node.start()
        self.resharder.start()
        if self.readiness is not None:
            self.readiness.start()

    def leave(self) -> None:
        self.resharder.stop()
        self.node.stop()
        self.peers.close()
