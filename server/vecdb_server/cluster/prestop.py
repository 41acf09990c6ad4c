"""``python -m vecdb_server.cluster.prestop [server flags]``: hand this node's primaries
over to other in-sync replicas before a planned stop (the cluster overlay's preStop
hook, docs/deploy.md "Cluster"). It reads the server's own settings (the same --config,
flags and VECDB_* variables), and asks the local server for DrainNode of its node_id as
a node-to-node call authenticated by the cluster secret, on the internal port
(cluster_internal_port; `port` when that is 0): no API key is needed in the pod. Exit
status 0 when every primary moved, 1 when some were kept (no other in-sync replica)
or the call failed, 2 for a bad setting."""
from __future__ import annotations

import sys
from typing import Sequence

import grpc
from vecdb_client._proto.vecdb.v1 import cluster_pb2 as clpb
from vecdb_client._proto.vecdb.v1 import cluster_pb2_grpc as clgrpc

from ..config import ConfigError, load_config
from .peers import FROM, ROUTE, SECRET

TIMEOUT_S = 30.0  # the pod's terminationGracePeriodSeconds covers it (deploy tests)


def main(argv: Sequence[str] | None = None) -> int:
    try:
        cfg = load_config(argv)
    except ConfigError as exc:
        print(f"prestop: {exc}", file=sys.stderr)
        return 2
    if not cfg.cluster_etcd or not cfg.node_id:
        print("prestop: needs cluster_etcd and node_id (a cluster node's settings)",
              file=sys.stderr)
        return 2
    target = f"127.0.0.1:{cfg.cluster_internal_port or cfg.port}"
    md = ((SECRET, cfg.cluster_secret), (ROUTE, "local"), (FROM, cfg.node_id))
    with grpc.insecure_channel(target) as ch:
        try:
            res = clgrpc.ClusterServiceStub(ch).DrainNode(
                clpb.DrainNodeRequest(node=cfg.node_id), metadata=md, timeout=TIMEOUT_S)
        except grpc.RpcError as exc:
            print(f"prestop: drain of {cfg.node_id} failed: {exc.code().name}: "
                  f"{exc.details()}", file=sys.stderr)
            return 1
    print(f"prestop: {cfg.node_id} handed over {len(res.moved)} primaries"
          + (f", kept {', '.join(res.kept)} (no other in-sync replica)" if res.kept else ""))
    return 1 if res.kept else 0


if __name__ == "__main__":
    sys.exit(main())
