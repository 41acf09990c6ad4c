"""Readiness of a cluster node, as a named grpc.health.v1 service: IN_SYNC is SERVING
only while this node has joined (registered and read the map) and every replica the map
places on it is in its shard's in-sync set and not marked for a resync; NOT_SERVING
otherwise (starting, catching up, the target of a move still copying, cut off from
etcd). The overall health ("") keeps meaning "the server is up"; the cluster overlay's
readinessProbe asks for IN_SYNC (docs/deploy.md "Cluster")."""
from __future__ import annotations

import threading
from typing import TYPE_CHECKING, Callable

from grpc_health.v1 import health_pb2

from . import state as st

if TYPE_CHECKING:
    from .node import ClusterNode

IN_SYNC = "vecdb-cluster-in-sync"
PERIOD_S = 0.5
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def in_sync(node: "ClusterNode") -> bool:
    with node._lock:
        if not node.loaded or node.id not in node.nodes:
            return False
        specs, shards = dict(node.collections), dict(node.shards)
    for (name, i), s in shards.items():
        if node.id not in s.replicas:
            continue
        if node.id not in s.in_sync:
            return False
        if name in specs and node.needs_resync(st.local_name(specs[name].uid, i)):
            return False
    return True


class Readiness:
    """Reports ``in_sync(node)`` as IN_SYNC through ``set_status(name, status)`` (the
    server's HealthServicer.set) every PERIOD_S, from start() until the node stops."""

    def __init__(self, node: "ClusterNode", set_status: Callable[[str, int], None]):
        self.node, self.set_status = node, set_status
        set_status(IN_SYNC, NOT_SERVING)

    def start(self) -> None:
        threading.Thread(target=self._loop, name="vecdb-cluster-readiness", daemon=True).start()

    def _loop(self) -> None:
        while True:
            self.set_status(IN_SYNC, SERVING if in_sync(self.node) else NOT_SERVING)
            if self.node._stop.wait(PERIOD_S):
                self.set_status(IN_SYNC, NOT_SERVING)
                return
