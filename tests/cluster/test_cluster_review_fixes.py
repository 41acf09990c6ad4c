"""Fixes from a review of the cluster code, each against a real etcd and real node
processes: the node-wide cap on analytics (max_analytics_jobs), reads that skip a local
copy that is missing or awaits a resync, payload indexes that reach a replica which was
down, leftover CreateCollection probes swept at start, peers' auth failures reported as
such (no raw details to the client), and a starting node that answers UNAVAILABLE
instead of "collection does not exist"."""
from __future__ import annotations

import signal
import socket
import time

import grpc
import pytest
from cluster_harness import SECRET, Cluster
from grpc_health.v1 import health_pb2, health_pb2_grpc
from test_cluster import DIM, rand
from vecdb_client import NotFoundError, ResourceExhaustedError, UnavailableError
from vecdb_client._proto.vecdb.v1 import collections_pb2 as cpb
from vecdb_client._proto.vecdb.v1 import collections_pb2_grpc as cgrpc
from vecdb_server.cluster import state as st
from vecdb_server.cluster.etcd import Etcd

LOCAL_MD = (("x-vecdb-cluster", SECRET), ("x-vecdb-route", "local"), ("x-vecdb-from", "test"))


@pytest.fixture(scope="module")
def cl(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("review"), n=2,
                extra=("--max-analytics-jobs", "1", "--rebalance-max-concurrent-moves", "0"))
    yield c
    c.close()


def _local_name(cl, name: str, shard: int = 0) -> str:
    kv = Etcd(cl.etcd.url).get(st.collection_key(name))
    return st.local_name(st.CollectionSpec.from_json(kv.value).uid, shard)


def _engine_call(node, method: str, request):
    """A call on one node's own engine (the internal "local" route, as peers make)."""
    with grpc.insecure_channel(node.target) as ch:
        return getattr(cgrpc.CollectionServiceStub(ch), method)(request, metadata=LOCAL_MD,
                                                                timeout=10)


def _indexes(node, local: str) -> dict:
    info = _engine_call(node, "DescribeCollection",
                        cpb.DescribeCollectionRequest(collection=local))
    return {f: i.type for f, i in info.payload_indexes.items()}


def _until(check, timeout: float = 30.0):
    deadline = time.monotonic() + timeout
    while True:
        try:
            return check()
        except AssertionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.2)


def test_cluster_analytics_respect_max_analytics_jobs(cl):
    """max_analytics_jobs=1: an open duplicates stream holds this node's only slot, so
    outliers and k-means through the same node are RESOURCE_EXHAUSTED naming the
    setting; the slot comes back when the stream is cancelled. (The stream is ~2M pairs,
    tens of MB: more than flow control lets the server send ahead unread, so it cannot
    finish, and give the slot back, while the client reads nothing.)"""
    with cl.client([cl.nodes[0]], max_retries=0) as c:
        c.create_collection("an", dim=DIM, shards=2, index="flat", metric="l2")
        for s in range(0, 2000, 500):
            c.upsert("an", [f"p{i}" for i in range(s, s + 500)], rand(500, 3 + s))
        stream = c.duplicates_stream("an", 50.0, batch=8, limit=10_000_000)
        next(stream)
        for call in (lambda: c.outliers("an", 3), lambda: c.cluster("an", 3)):
            with pytest.raises(ResourceExhaustedError) as e:
                call()
            assert e.value.field == "max_analytics_jobs" and "max_analytics_jobs=1" in str(e.value)
        stream.close()

        def slot_back():
            try:
                assert c.outliers("an", 3).scored == 2000
            except ResourceExhaustedError as exc:
                raise AssertionError(exc) from None
        _until(slot_back, 10)
    assert not list(cl.nodes[0].data_dir.glob(".analytics-scratch-*"))


def test_reads_skip_a_local_copy_that_is_missing(cl):
    """A node whose copy of a shard vanished (here dropped under it) answers reads from
    the other in-sync replica: never NOT_FOUND naming the internal copy, never the
    empty copy maintenance makes in its place, while it waits for its resync."""
    with cl.client() as c:
        c.create_collection("rs", dim=DIM, shards=1, replication_factor=2, index="flat",
                            metric="l2")
        c.upsert("rs", [f"r{i}" for i in range(50)], rand(50, 4))
    cl.wait_in_sync("rs")
    n1, local = cl.nodes[1], _local_name(cl, "rs")
    with cl.client([n1], max_retries=0) as c:
        _engine_call(n1, "DropCollection", cpb.DropCollectionRequest(name=local))
        deadline = time.monotonic() + 2.0
        while time.monotonic() < deadline:
            assert c.count("rs") == 50
            assert [p.id for p in c.get("rs", ["r7"])] == ["r7"]
    cl.wait_in_sync("rs")


def test_a_payload_index_reaches_a_replica_that_was_down(cl):
    """CreatePayloadIndex while a replica's node is down succeeds (the spec in etcd is
    the truth); the node, back, gives its copy the index; a drop reaches every copy."""
    with cl.client() as c:
        c.create_collection("pi", dim=DIM, shards=1, replication_factor=2, index="flat")
        c.upsert("pi", ["a", "b"], rand(2, 5), payloads=[{"tag": "x"}, {"tag": "y"}])
    cl.wait_in_sync("pi")
    n0, n1 = cl.nodes
    local = _local_name(cl, "pi")
    n1.kill()
    with cl.client([n0], max_retries=0) as c:
        c.create_payload_index("pi", "tag", "keyword")
    assert _indexes(n0, local) == {"tag": "keyword"}
    n1.start()
    cl.wait_in_sync("pi")
    _until(lambda: _check(_indexes(n1, local) == {"tag": "keyword"}))
    with cl.client([n1], max_retries=0) as c:
        c.drop_payload_index("pi", "tag")
        with pytest.raises(NotFoundError) as e:  # as a single node says it
            c.drop_payload_index("pi", "tag")
        assert e.value.field == "field"
    for n in cl.nodes:
        _until(lambda n=n: _check(_indexes(n, local) == {}))


def _health(node) -> str:
    try:
        with grpc.insecure_channel(node.target) as ch:
            return health_pb2.HealthCheckResponse.ServingStatus.Name(
                health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(),
                                                     timeout=1, wait_for_ready=True).status)
    except grpc.RpcError:
        return "unreachable"


def _check(ok: bool) -> bool:
    assert ok
    return ok


def test_leftover_create_collection_probes_are_swept(cl):
    """A probe a killed process left (CreateCollection's validation copy) is dropped by
    the node's first CreateCollection after its start."""
    n1 = cl.nodes[1]
    probe = cpb.CreateCollectionRequest(name="cluster-probe-0123456789ab", dim=DIM)
    _engine_call(n1, "CreateCollection", probe)
    n1.restart()
    with cl.client([n1]) as c:
        c.create_collection("after", dim=DIM, index="flat")
    names = [x.name for x in _engine_call(n1, "ListCollections",
                                          cpb.ListCollectionsRequest()).collections]
    assert not [x for x in names if x.startswith(("cluster-probe-", "v"))], names


def test_a_peer_with_another_secret_is_reported_as_such(cl):
    """A node whose cluster secret differs: its calls to peers are refused; the client
    gets UNAVAILABLE without the peer's raw gRPC details, and that node's log says
    "cluster secret mismatch with node <id>"."""
    with cl.client() as c:
        c.create_collection("sec", dim=DIM, shards=2, index="flat")
        c.upsert("sec", ["a"], rand(1, 6))
    bad = cl.add_node("bad", "--cluster-secret", "another-secret",
                      "--rebalance-max-concurrent-moves", "0")
    try:
        with cl.client([bad], max_retries=0) as c, pytest.raises(UnavailableError) as e:
            c.count("sec")
        assert "127.0.0.1" not in str(e.value) and "PERMISSION_DENIED" not in str(e.value)
        assert "cluster secret mismatch with node n" in bad.log()
    finally:
        bad.kill()
        cl.nodes.remove(bad)
    with cl.client() as c:  # its lease expires: new collections are placed without it
        _until(lambda: _check("bad" not in str(c.cluster_status()["nodes"])))


def test_a_starting_node_answers_unavailable_not_absent(cl):
    """Until a node has joined and loaded the cluster's map (here etcd is paused while it
    starts), its answers are UNAVAILABLE (the SDK retries another node), never
    NOT_FOUND for a collection that exists nor an empty list."""
    with cl.client() as c:
        c.create_collection("st", dim=DIM, index="flat")
    n1 = cl.nodes[1]
    n1.kill()
    cl.etcd.members[0].proc.send_signal(signal.SIGSTOP)
    try:
        n1.start(ready=False)
        _until(lambda: _check(_health(n1) == "NOT_SERVING"))  # bound, not joined
        answered = 0
        with cl.client([n1], max_retries=0, timeout=2) as c:
            deadline = time.monotonic() + 1.5
            while time.monotonic() < deadline:
                for call in (lambda: c.count("st"), c.list_collections):
                    try:
                        got = call()
                    except UnavailableError as exc:
                        answered += "loaded the cluster's map" in str(exc)
                        continue
                    raise AssertionError(f"a starting node answered {got!r}")
                time.sleep(0.05)
        assert answered
    finally:
        cl.etcd.members[0].proc.send_signal(signal.SIGCONT)
    n1.restart()
    with cl.client([n1]) as c:
        assert c.count("st") == 0


def test_the_write_key_window_is_exported(tmp_path):
    """/metrics shows the idempotency-key window: the records kept and the age of the
    oldest, which grows with time and moves on when the oldest is pruned."""
    from prometheus_client import CollectorRegistry
    from vecdb_server.cluster import write_keys
    keys = write_keys.WriteKeys(str(tmp_path))
    reg = CollectorRegistry()
    reg.register(write_keys.KeysCollector(keys))
    age = "vecdb_cluster_write_keys_oldest_age_seconds"
    assert reg.get_sample_value("vecdb_cluster_write_keys") == 0
    assert reg.get_sample_value(age) == 0
    keys.put("c1-s0", "k1", "d1", "a1")
    time.sleep(0.3)
    keys.put("c1-s1", "k2", "d2", "a2")
    assert reg.get_sample_value("vecdb_cluster_write_keys") == 2
    first = reg.get_sample_value(age)
    assert first >= 0.3
    keys.forget("c1-s0")  # the oldest goes: the window is the next record's age
    assert reg.get_sample_value("vecdb_cluster_write_keys") == 1
    assert reg.get_sample_value(age) < first


def test_peer_failures_map_to_what_the_client_should_see():
    """Real gRPC failures from a peer: INTERNAL stays INTERNAL (with the peer's request
    id, never retried), a timeout is DEADLINE_EXCEEDED, a refused connection is
    UNAVAILABLE; no message carries the peer's address."""
    from concurrent import futures

    from vecdb_client.errors import REQUEST_ID_KEY
    from vecdb_server.cluster import peers

    def boom(request, context):
        context.set_trailing_metadata(((REQUEST_ID_KEY, "rid123"),))
        context.abort(grpc.StatusCode.INTERNAL, "internal server error")

    def slow(request, context):
        time.sleep(1.0)
        return b""

    server = grpc.server(futures.ThreadPoolExecutor(2))
    server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("t.T", {
        "Boom": grpc.unary_unary_rpc_method_handler(boom),
        "Slow": grpc.unary_unary_rpc_method_handler(slow)}),))
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    try:
        def failure(method: str, target: str, timeout: float = 5.0) -> grpc.RpcError:
            with grpc.insecure_channel(target) as ch:
                try:
                    ch.unary_unary(f"/t.T/{method}")(b"", timeout=timeout)
                except grpc.RpcError as exc:
                    return exc
            raise AssertionError("the call succeeded")
        internal = peers.from_peer_failure(failure("Boom", f"127.0.0.1:{port}"), "n9")
        assert isinstance(internal, peers.PeerInternal) and "rid123" in internal.message
        late = peers.from_peer_failure(failure("Slow", f"127.0.0.1:{port}", 0.1), "n9")
        assert isinstance(late, peers.PeerDeadline)
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            closed = s.getsockname()[1]
        gone = peers.from_peer_failure(failure("Boom", f"127.0.0.1:{closed}"), "n9")
        assert type(gone).__name__ == "Unavailable" and "n9" in gone.message
        for err in (internal, late, gone):
            assert "127.0.0.1" not in err.message
    finally:
        server.stop(0)
