"""The Kubernetes hooks of a cluster node, with real etcd and node processes: the
readiness health service (readiness.IN_SYNC) is NOT_SERVING while a replica on the node
is out of sync and SERVING once it is caught up; the preStop command
(python -m vecdb_server.cluster.prestop) hands the node's primaries over, authenticated
by the cluster secret alone."""
from __future__ import annotations

import os
import subprocess
import sys
import time

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from cluster_harness import SECRET, SRC_PATHS, Cluster
from test_cluster import DIM, rand
from test_rebalance import wait
from vecdb_server.cluster.readiness import IN_SYNC

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


def health(target: str, service: str) -> int:
    with grpc.insecure_channel(target) as ch:
        return health_pb2_grpc.HealthStub(ch).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=5).status


def test_readiness_means_the_nodes_replicas_are_in_sync(tmp_path):
    cl = Cluster(tmp_path, n=3)
    try:
        with cl.client() as c:
            c.create_collection("docs", dim=DIM, shards=2, replication_factor=3,
                                write_concern="majority", index="flat")
            c.upsert("docs", [f"a{i}" for i in range(50)], rand(50, 1))
        cl.wait_in_sync("docs")
        for n in cl.nodes:
            wait(lambda n=n: health(n.target, IN_SYNC) == SERVING, 10, f"{n.id} ready")
        n0, n1, n2 = cl.nodes
        n2.kill()  # misses the next write: leaves the in-sync set
        with cl.client([n0, n1]) as c:
            c.upsert("docs", [f"b{i}" for i in range(20)], rand(20, 2))
        n0.kill()
        n1.kill()
        n2.start()  # up (overall health SERVING), but no in-sync copy can catch it up
        assert health(n2.target, "") == SERVING
        for _ in range(4):
            assert health(n2.target, IN_SYNC) == NOT_SERVING
            time.sleep(0.5)
        n0.start()
        n1.start()
        cl.wait_in_sync("docs")
        for n in cl.nodes:
            wait(lambda n=n: health(n.target, IN_SYNC) == SERVING, 30, f"{n.id} ready again")
        with cl.client() as c:
            assert c.count("docs") == 70
    finally:
        cl.close()


def prestop(node, *extra: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(SRC_PATHS),
           "VECDB_CLUSTER_SECRET": SECRET}
    return subprocess.run([sys.executable, "-m", "vecdb_server.cluster.prestop",
                           "--port", str(node.port), "--cluster-etcd", node.etcd_url,
                           "--node-id", node.id, *extra],
                          capture_output=True, text=True, env=env, timeout=90)


def test_prestop_hands_the_nodes_primaries_over(tmp_path):
    cl = Cluster(tmp_path, n=3, extra=("--api-keys", "adminkey:admin"))
    cl.client_kw = {"api_key": "adminkey"}  # prestop itself has no key: the secret only
    try:
        with cl.client() as c:
            c.create_collection("docs", dim=DIM, shards=3, replication_factor=2,
                                write_concern="all", index="flat")
            c.upsert("docs", [f"a{i}" for i in range(60)], rand(60, 3))
        cl.wait_in_sync("docs")
        with cl.client() as c:
            led = [s for s in c.cluster_status()["shards"] if s["primary"] == "n0"]
        assert led  # primaries are spread: n0 leads one
        out = prestop(cl.node("n0"))
        assert out.returncode == 0, out.stderr
        assert f"n0 handed over {len(led)} primaries" in out.stdout
        with cl.client() as c:
            assert not [s for s in c.cluster_status()["shards"] if s["primary"] == "n0"]
            c.upsert("docs", [f"b{i}" for i in range(10)], rand(10, 4))
            assert c.count("docs") == 70
        # a wrong secret is no key at all: refused, nothing moves
        with cl.client() as c:
            n1_led = [s["shard"] for s in c.cluster_status()["shards"] if s["primary"] == "n1"]
        assert n1_led
        bad = subprocess.run([sys.executable, "-m", "vecdb_server.cluster.prestop",
                              "--port", str(cl.node("n1").port), "--cluster-etcd",
                              cl.etcd.url, "--node-id", "n1", "--cluster-secret", "wrong"],
                             capture_output=True, text=True, timeout=60,
                             env={**os.environ, "PYTHONPATH": os.pathsep.join(SRC_PATHS)})
        assert bad.returncode == 1 and "drain of n1 failed: UNAUTHENTICATED" in bad.stderr
        with cl.client() as c:
            assert n1_led == [s["shard"] for s in c.cluster_status()["shards"]
                              if s["primary"] == "n1"]
        assert prestop(cl.node("n1"), "--node-id", "").returncode == 2
    finally:
        cl.close()


def test_a_node_started_while_etcd_is_down_joins_once_it_is_back(tmp_path):
    """A pod started while etcd is away (all members down, or mid-election) keeps trying
    to join instead of staying up unjoined (NOT_SERVING for good): once etcd is back it
    registers, serves and receives replicas."""
    cl = Cluster(tmp_path, n=2)
    try:
        with cl.client() as c:
            c.create_collection("late", dim=DIM, shards=3, replication_factor=1, index="flat")
            c.upsert("late", [f"a{i}" for i in range(30)], rand(30, 1))
        cl.etcd.kill()
        node = cl.add_node("n2", ready=False)
        wait(lambda: health(node.target, "") == NOT_SERVING, 30, "n2 answering")
        time.sleep(2)  # its database open, its first tries to join refused
        cl.etcd.start()
        wait(lambda: health(node.target, "") == SERVING, 30, "n2 serving")
        assert "cannot join the cluster yet" in node.log()  # (it did try while etcd was down)
        with cl.client() as c:
            wait(lambda: any(n["id"] == "n2" and n["replicas"] > 0
                             for n in c.cluster_status()["nodes"]), 60, "n2 given replicas")
            assert c.count("late") == 30
        assert node.alive() and "could not open" not in node.log()
    finally:
        cl.close()
