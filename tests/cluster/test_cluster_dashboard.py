"""The web dashboard of a cluster node (real etcd, two node processes): its status lists
the cluster's nodes, and its views answer through the cluster router what the SDK gets
from the cluster."""
from __future__ import annotations

import json
import re
import urllib.request

import numpy as np
import pytest

from cluster_harness import Cluster

DIM, N = 8, 120


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("cdash"), n=2, extra=("--dashboard-port", "0"))
    yield c
    c.close()


def dashboard(node, method: str, path: str, body=None) -> dict:
    port = int(re.search(r"dashboard on http://127\.0\.0\.1:(\d+)/", node.log()).group(1))
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method,
                                 data=None if body is None else json.dumps(body).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as resp:
        return json.loads(resp.read())


def test_cluster_node_dashboard(cluster):
    vecs = np.random.default_rng(1).standard_normal((N, DIM)).astype(np.float32)
    with cluster.client() as c:
        c.create_collection("cd", dim=DIM, index="flat", shards=2, replication_factor=2)
        c.upsert("cd", [f"q{i}" for i in range(N)], vecs,
                 payloads=[{"odd": i % 2} for i in range(N)])
        cluster.wait_in_sync("cd")
        expect = c.recommend("cd", ["q3"], k=5)
    for node in cluster.nodes:
        status = dashboard(node, "GET", "/api/status")
        assert sorted(n["id"] for n in status["cluster"]["nodes"]) == ["n0", "n1"]
        assert [(x["name"], x["points"]) for x in status["collections"]] == [("cd", N)]
        seen, cursor = [], None
        while True:  # a cluster's pages may be short (shard by shard): follow the cursor
            page = dashboard(node, "POST", "/api/collections/cd/points",
                             {"filter": '{"key": "odd", "match": 1}', "limit": 50,
                              "cursor": cursor})
            assert page["count"] == N // 2
            seen += [p["id"] for p in page["points"]]
            cursor = page["next_cursor"]
            if cursor is None:
                break
        assert sorted(seen) == sorted(f"q{i}" for i in range(1, N, 2))
        hits = dashboard(node, "POST", "/api/collections/cd/search", {"id": "q3", "k": 5})
        assert [h["id"] for h in hits["hits"]] == [h.id for h in expect]
