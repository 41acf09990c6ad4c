"""consistency="any" | "primary" on searches (docs/cluster.md "Reads"), with a real etcd
and two real nodes: a write acknowledged through one node is seen right after by a
search through the other in both modes; "primary" reads only primaries (a paused
primary fails them while "any" is answered by the other in-sync replica); a bad value
is INVALID_ARGUMENT naming consistency, from the SDK and from the server."""
from __future__ import annotations

import signal

import grpc
import pytest

from cluster_harness import Cluster
from test_cluster import DIM, rand
from vecdb_client import InvalidArgumentError, VecdbClientError
from vecdb_client._proto.vecdb.v1 import points_pb2 as ppb
from vecdb_client._proto.vecdb.v1 import points_pb2_grpc as pgrpc


@pytest.fixture(scope="module")
def cl(tmp_path_factory):
    # a long node TTL: a paused primary stays primary for the whole test
    c = Cluster(tmp_path_factory.mktemp("consistency"), n=2, extra=("--node-ttl-s", "30"))
    with c.client() as db:
        db.create_collection("rc", dim=DIM, shards=2, replication_factor=2, index="flat",
                             metric="l2")
    c.wait_in_sync("rc")
    yield c
    c.close()


@pytest.mark.parametrize("mode", ["any", "primary"])
def test_a_read_right_after_an_acknowledged_write_sees_it(cl, mode):
    a, b = (cl.client([n]) for n in cl.nodes)
    try:
        for i in range(40):
            writer, reader = (a, b) if i % 2 else (b, a)
            v = rand(1, (100 if mode == "any" else 200) + i)
            writer.upsert("rc", [f"{mode}{i}"], v)
            hits = reader.search("rc", v[0], k=1, consistency=mode, exact=True)
            assert hits[0].id == f"{mode}{i}", (i, hits)
            got = reader.range_search("rc", v[0], threshold=1e-6, consistency=mode)
            assert [h.id for h in got] == [f"{mode}{i}"]
    finally:
        a.close()
        b.close()


def test_primary_reads_go_to_primaries_only(cl):
    with cl.client() as c:
        status = c.cluster_status()
    shards = [s for s in status["shards"] if s["collection"] == "rc"]
    primary = shards[0]["primary"]
    if any(s["primary"] != primary for s in shards):  # lead both shards from one node
        with cl.client() as c:
            c.drain_node(next(n.id for n in cl.nodes if n.id != primary))
        cl.wait_in_sync("rc")
    other = next(n for n in cl.nodes if n.id != primary)
    paused = cl.node(primary)
    q = rand(1, 7)[0]
    with cl.client([other], timeout=4, max_retries=0) as c:
        want = [h.id for h in c.search("rc", q, k=5, exact=True)]
        paused.stop_signal(signal.SIGSTOP)
        try:  # "any": the other node's own in-sync replicas answer
            assert [h.id for h in c.search("rc", q, k=5, exact=True)] == want
            with pytest.raises(VecdbClientError):  # "primary": only the paused node may
                c.search("rc", q, k=5, exact=True, consistency="primary")
        finally:
            paused.stop_signal(signal.SIGCONT)
        assert [h.id for h in c.search("rc", q, k=5, exact=True, consistency="primary")] == want


def test_a_bad_consistency_is_invalid_argument(cl):
    with cl.client() as c:
        with pytest.raises(InvalidArgumentError) as err:
            c.search("rc", rand(1, 1)[0], consistency="quorum")
        assert err.value.field == "consistency"
    with grpc.insecure_channel(cl.nodes[0].target) as ch:  # past the SDK's own check
        stub = pgrpc.PointServiceStub(ch)
        req = ppb.SearchRequest(collection="rc", consistency="quorum")
        req.vectors.count, req.vectors.dim, req.vectors.data = 1, DIM, rand(1, 1).tobytes()
        for call in (stub.Search, stub.RangeSearch):
            r = req if call is stub.Search else ppb.RangeSearchRequest(
                collection="rc", vectors=req.vectors, threshold=1.0, consistency="quorum")
            with pytest.raises(grpc.RpcError) as err:
                call(r, timeout=10)
            assert err.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert "consistency" in err.value.details()
