"""ClusterService: GetClusterStatus (the nodes, the shard map with each replica's points
and applied WAL sequence, and the replica moves in progress, as this node sees them,
with the progress of their copies as each shard's primary reports it),
DrainNode, RemoveNode and PlanRebalance (FAILED_PRECONDITION on a single node). Light
to import: the single-node server registers it too."""
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

    def _node(self) -> Any:
        if self.r is None:
            raise FailedPrecondition("this server runs as a single node (start it with "
                                     "--cluster-etcd to form a cluster)", "cluster_etcd")
        return self.r.node

    def GetClusterStatus(self, request: Any, context: Any) -> clpb.ClusterStatus:
        node = self._node()
        if self.r.route_of(context) is not None:  # a peer asks for our copies' progress
            return clpb.ClusterStatus(node=node.id, moves=[
                clpb.ReplicaMove(collection=c.collection, shard=c.shard, target=c.target,
                                 **_progress(c)) for c in self.r.copies.now()])
        with node._lock:
            nodes, shards = dict(node.nodes), dict(node.shards)
            specs, removed = dict(node.collections), set(node.removed)
        out = clpb.ClusterStatus(node=node.id, rebalancer=node.rebalancer,
                                 moves=self._with_progress(_moves_in_progress(node)),
                                 reshards=self.r.resharder.describe() if self.r.resharder
                                 else [])
        for nid, n in sorted(nodes.items()):
            out.nodes.append(clpb.ClusterNodeInfo(
                id=nid, address=n.address, zone=n.zone, removing=nid in removed,
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
        node = self._node()
        if not node.alive(request.node):
            raise NotFound(f"no live node {request.node!r}", "node")
        if request.node != node.id:  # the node itself hands over, under its write locks
            return self.r._peer(request.node, "DrainNode", request,
                                self.r.peers.metadata("local"), 60.0)
        out = clpb.DrainNodeResponse()
        with node._lock:
            led = sorted(k for k, s in node.shards.items() if s.primary == node.id)
        for name, i in led:
            (out.moved if node.hand_over(name, i) else out.kept).append(f"{name}/{i}")
        return out

    def RemoveNode(self, request: Any, context: Any) -> clpb.RemoveNodeResponse:
        node = self._node()
        with node._lock:
            live = set(node.nodes) - node.removed - {request.node}
            held = [k for k, s in node.shards.items() if request.node in s.replicas]
            specs = dict(node.collections)
            known = request.node in node.nodes or bool(held)
        if not known:
            raise NotFound(f"no node {request.node!r} is live or holds replicas", "node")
        for name in sorted({k[0] for k in held}):
            rf = specs[name].replication_factor if name in specs else 1
            if len(live) < rf:
                raise FailedPrecondition(
                    f"removing {request.node} would leave {len(live)} live nodes for "
                    f"collection {name!r} with replication_factor {rf}", "node")
        node.etcd.put(st.removed_key(request.node), "")
        node.refresh(st.removed_key(request.node))
        return clpb.RemoveNodeResponse(replicas=len(held))

    def PlanRebalance(self, request: Any, context: Any) -> clpb.RebalancePlan:
        node = self._node()
        from .moves import planned  # cluster mode only: not on a single node's import path
        return clpb.RebalancePlan(
            rebalancer=node.rebalancer,
            in_progress=self._with_progress(_moves_in_progress(node)),
            planned=[_move_proto(m, "") for m in planned(node)])

    def ReshardCollection(self, request: Any, context: Any) -> clpb.ReshardCollectionResponse:
        self._node()
        if self.r.route_of(context) is not None:
            raise FailedPrecondition("ReshardCollection is a client call", "collection")
        if self.r.resharder is None:
            raise FailedPrecondition("this node does not reshard", "collection")
        return self.r.resharder.request(request, context)  # reshard.py

    def ReplicaPosition(self, request: Any, context: Any) -> clpb.ReplicaPositionResponse:
        self._node()
        return self.r.replica_position(request, context)  # internal: router.py

    def _with_progress(self, moves: list[clpb.ReplicaMove]) -> list[clpb.ReplicaMove]:
        """Fill in the copies' progress, asked from each copying shard's primary."""
        node = self.r.node
        with node._lock:
            primaries = {k: s.primary for k, s in node.shards.items()}
        asked: dict[str, dict] = {}
        for m in moves:
            primary = primaries.get((m.collection, m.shard))
            if m.phase != "copying" or primary is None:
                continue
            if primary not in asked:
                asked[primary] = self._copies_of(primary)
            got = asked[primary].get((m.collection, m.shard, m.target))
            if got is not None:
                for f in PROGRESS:
                    setattr(m, f, getattr(got, f))
        return moves

    def _copies_of(self, node_id: str) -> dict:
        """(collection, shard, target) -> ReplicaMove with the copy's progress on node_id."""
        if node_id == self.r.node.id:
            return {(c.collection, c.shard, c.target): clpb.ReplicaMove(**_progress(c))
                    for c in self.r.copies.now()}
        try:
            got = self.r._peer(node_id, "GetClusterStatus", clpb.ClusterStatusRequest(),
                               self.r.peers.metadata("local"), 2.0)
        except Exception:  # noqa: BLE001 - a status page shows what it can reach
            return {}
        return {(m.collection, m.shard, m.target): m for m in got.moves}

    def _replica_stats(self, spec: st.CollectionSpec, i: int, r: str) -> tuple[int, int]:
        req = cpb.DescribeCollectionRequest(collection=st.local_name(spec.uid, i))
        try:
            info = (self.r.local("DescribeCollection", req) if r == self.r.node.id else
                    self.r._peer(r, "DescribeCollection", req, self.r.peers.metadata("local"),
                                 2.0))
            return info.points, info.shards[0].applied_seq
        except Exception:  # noqa: BLE001 - a status page shows what it can reach
            return -1, -1


PROGRESS = ("copied_bytes", "copied_records", "total_records", "copy")


def _progress(c: Any) -> dict:
    """A copy's (copies.Copy) progress as ReplicaMove fields."""
    return {"copied_bytes": c.sent_bytes, "copied_records": c.records,
            "total_records": c.total, "copy": c.kind}


def _move_proto(m: st.Move, phase: str) -> clpb.ReplicaMove:
    return clpb.ReplicaMove(collection=m.collection, shard=m.shard, source=m.source,
                            target=m.target, phase=phase)


def _moves_in_progress(node: Any) -> list[clpb.ReplicaMove]:
    with node._lock:
        moves, shards = dict(node.moves), dict(node.shards)
    return [_move_proto(m, "finishing" if k in shards and m.target in shards[k].in_sync
                        else "copying") for k, m in sorted(moves.items())]
