"""ClusterService.GetClusterStatus: the nodes and the shard map as this node sees them,
with each replica's points and applied WAL sequence (FAILED_PRECONDITION on a single
node). Light to import: the single-node server registers it too."""
from __future__ import annotations

from typing import Any

from vecdb_client._proto.vecdb.v1 import cluster_pb2 as clpb
from vecdb_client._proto.vecdb.v1 import cluster_pb2_grpc as clgrpc
from vecdb_client._proto.vecdb.v1 import collections_pb2 as cpb

from vecdb.errors import FailedPrecondition, NotFound

from . import state as st


def single_node_status() -> "ClusterStatusServicer":
    return ClusterStatusServicer(None)


class ClusterStatusServicer(clgrpc.ClusterServiceServicer):
    def __init__(self, router: Any):
        self.r = router

    def GetClusterStatus(self, request: Any, context: Any) -> clpb.ClusterStatus:
        if self.r is None:
            raise FailedPrecondition("this server runs as a single node (start it with "
                                     "--cluster-etcd to form a cluster)", "cluster_etcd")
        node = self.r.node
        with node._lock:
            nodes, shards = dict(node.nodes), dict(node.shards)
            specs = dict(node.collections)
        out = clpb.ClusterStatus(node=node.id)
        for nid, n in sorted(nodes.items()):
            out.nodes.append(clpb.ClusterNodeInfo(
                id=nid, address=n.address, zone=n.zone,
                replicas=sum(nid in s.replicas for s in shards.values()),
                primaries=sum(nid == s.primary for s in shards.values())))
        for (name, i), s in sorted(shards.items()):
            entry = clpb.ShardMapEntry(collection=name, shard=i, primary=s.primary, term=s.term)
            spec = specs.get(name)
            for r in s.replicas:
                points, seq = self._replica_stats(spec, i, r) if spec else (-1, -1)
                entry.replicas.append(clpb.ReplicaStatus(node=r, in_sync=r in s.in_sync,
                                                         points=points, applied_seq=seq))
            out.shards.append(entry)
        return out

    def DrainNode(self, request: Any, context: Any) -> clpb.DrainNodeResponse:
        if self.r is None:
            raise FailedPrecondition("this server runs as a single node (start it with "
                                     "--cluster-etcd to form a cluster)", "cluster_etcd")
        node = self.r.node
        if not node.alive(request.node):
            raise NotFound(f"no live node {request.node!r}", "node")
        out = clpb.DrainNodeResponse()
        with node._lock:
            led = sorted(k for k, s in node.shards.items() if s.primary == request.node)
        for name, i in led:
            s = node.shard(name, i)
            others = [r for r in s.in_sync if r != request.node and node.alive(r)]
            moved = bool(others) and node.change_shard(name, i, s, s.with_(
                primary=others[0], term=s.term + 1,
                in_sync=tuple(r for r in s.in_sync if r != request.node)))
            (out.moved if moved else out.kept).append(f"{name}/{i}")
        return out

    def _replica_stats(self, spec: st.CollectionSpec, i: int, r: str) -> tuple[int, int]:
        req = cpb.DescribeCollectionRequest(collection=st.local_name(spec.uid, i))
        try:
            info = (self.r.local("DescribeCollection", req) if r == self.r.node.id else
                    self.r._peer(r, "DescribeCollection", req, self.r.peers.metadata("local"),
                                 2.0))
            return info.points, info.shards[0].applied_seq
        except Exception:  # noqa: BLE001 - a status page shows what it can reach
            return -1, -1
