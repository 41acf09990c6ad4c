"""A real etcd and 3 real vecdb-server nodes on loopback: routing, equality with a single
node, failover with no acknowledged write lost, fencing, etcd outages, a wiped disk."""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest

from cluster_harness import Cluster
from vecdb_client import (FailedPreconditionError, InvalidArgumentError, NotFoundError,
                          UnavailableError, VecdbClientError)

DIM = 8


def rand(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)


def retry_until(fn, timeout: float, what: str, errors=(VecdbClientError,)):
    """fn() until it stops raising ``errors`` (a failover, a restart...); its result."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            return fn()
        except errors:
            assert time.monotonic() < deadline, what
            time.sleep(0.2)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("cluster"))
    yield c
    c.close()


@pytest.fixture(scope="module")
def single(tmp_path_factory):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
    from harness import InProcessServer
    srv = InProcessServer(tmp_path_factory.mktemp("single") / "data")
    yield srv
    srv.stop()


def test_placement_rules_and_errors(cluster):
    with cluster.client() as c:
        info = c.create_collection("placed", dim=DIM, shards=3, replication_factor=2)
        assert info.config.replication_factor == 2 and len(info.shards) == 3
        status = c.cluster_status()
        shards = [s for s in status["shards"] if s["collection"] == "placed"]
        assert len(shards) == 3
        for s in shards:
            owners = [r["node"] for r in s["replicas"]]
            assert len(set(owners)) == 2 and s["primary"] in owners
        counts = [n["replicas"] for n in status["nodes"]]
        assert max(counts) - min(counts) <= 1
        with pytest.raises(FailedPreconditionError) as err:
            c.create_collection("toomany", dim=DIM, replication_factor=4)
        assert err.value.field == "replication_factor"
        with pytest.raises(InvalidArgumentError) as err:
            c.create_collection("badwc", dim=DIM, write_concern="most")
        assert err.value.field == "write_concern"
        with pytest.raises(InvalidArgumentError) as err:  # the engine's own validation
            c.create_collection("baddim", dim=0)
        assert err.value.field == "dim"
        names = [x.name for x in c.list_collections()]
        assert "placed" in names and not {"toomany", "badwc", "baddim"} & set(names)
        c.drop_collection("placed")
        with pytest.raises(NotFoundError):
            c.describe_collection("placed")


def test_results_equal_a_single_node(cluster, single):
    """Exact search (with and without filters), count, get, scroll and range search
    through any node equal a single node holding the same data."""
    n = 600
    vecs, ids = rand(n, 1), [f"p{i}" for i in range(n)]
    payloads = [{"i": i, "lang": ["en", "de", "fr"][i % 3], "year": 2000 + i % 30}
                for i in range(n)]
    texts = [f"text {i}" for i in range(n)]
    flt = {"must": [{"key": "lang", "match": "de"}, {"key": "year", "range": {"gte": 2010}}]}
    queries = rand(7, 2)
    with cluster.client() as cc, single.client() as sc:
        cc.create_collection("same", dim=DIM, metric="l2", shards=3, replication_factor=2,
                             index="flat")
        sc.create_collection("same", dim=DIM, metric="l2", shards=3, index="flat")
        for c in (cc, sc):
            c.upsert("same", ids, vecs, payloads=payloads, texts=texts)
            c.delete("same", ["p5", "p6"])
            c.update_payload("same", ids=["p7"], set={"edited": True})
        for node in cluster.nodes:  # any node answers
            with cluster.client([node]) as one:
                assert one.count("same") == sc.count("same") == n - 2
        assert cc.count("same", filter=flt) == sc.count("same", filter=flt)
        for f in (None, flt):
            got = cc.search("same", vectors=queries, k=10, filter=f)
            want = sc.search("same", vectors=queries, k=10, filter=f)
            assert [[(h.id, round(h.score, 4), h.payload, h.text) for h in r] for r in got] == \
                [[(h.id, round(h.score, 4), h.payload, h.text) for h in r] for r in want]
        got = cc.range_search("same", vectors=queries[:2], threshold=6.0, limit=50)
        want = sc.range_search("same", vectors=queries[:2], threshold=6.0, limit=50)
        assert [[h.id for h in r] for r in got] == [[h.id for h in r] for r in want]
        pick = ["p9", "zz", "p1", "p7", "p5"]
        flat = (lambda pts: [(p.id, p.payload, p.text, p.vector.tobytes()) for p in pts])  # noqa: E731
        assert flat(cc.get("same", pick, with_vectors=True)) == \
            flat(sc.get("same", pick, with_vectors=True))
        assert sorted(p.id for p in cc.iter_points("same", batch_size=64)) == \
            sorted(p.id for p in sc.iter_points("same", batch_size=64))
        assert sorted(p.id for p in cc.iter_points("same", filter=flt)) == \
            sorted(p.id for p in sc.iter_points("same", filter=flt))
        info = cc.describe_collection("same")
        assert info.points == n - 2 and len(info.shards) == 3
        with pytest.raises(InvalidArgumentError) as err:  # shards validate like one node
            cc.upsert("same", ["bad"], rand(1, 3)[:, :3])
        assert "dimension" in err.value.message
        # aliases and payload indexes, through any node
        cc.create_alias("same_alias", "same")
        with cluster.client([cluster.nodes[2]]) as other:
            assert other.count("same_alias") == n - 2
            assert other.list_aliases("same") == {"same_alias": "same"}
        cc.create_payload_index("same", "lang", "keyword", wait=True)
        sc.create_payload_index("same", "lang", "keyword", wait=True)
        assert cc.describe_collection("same_alias").payload_indexes["lang"].state == "ready"
        assert cc.count("same", filter=flt) == sc.count("same", filter=flt)
        with pytest.raises(FailedPreconditionError) as err:  # not routed yet: said clearly
            cc.create_snapshot("same")
        assert "cluster mode" in err.value.message
    status = cluster.wait_in_sync("same")
    with cluster.client() as cc:
        assert cc.describe_collection("same").aliases == ("same_alias",)
        cc.drop_collection("same")
        assert cc.list_aliases() == {} and status


def test_a_node_holding_every_shard_answers_like_a_single_node(cluster, single):
    """R = nodes: every node searches its own replicas of all shards in one engine call
    (cluster/local_reads.py); hits, scores, payloads, texts and vectors equal a single
    node's, with and without a filter, for vector and batch queries."""
    n = 400
    vecs, ids = rand(n, 11), [f"q{i}" for i in range(n)]
    payloads = [{"i": i, "lang": ["en", "de"][i % 2]} for i in range(n)]
    texts = [f"t{i}" for i in range(n)]
    queries = rand(5, 12)
    with cluster.client() as cc, single.client() as sc:
        cc.create_collection("every", dim=DIM, metric="cosine", shards=3, replication_factor=3,
                             index="flat")
        sc.create_collection("every", dim=DIM, metric="cosine", shards=3, index="flat")
        for c in (cc, sc):
            c.upsert("every", ids, vecs, payloads=payloads, texts=texts)
            c.delete("every", ["q1", "q2"])
        cluster.wait_in_sync("every")
        want = [(f, sc.search("every", vectors=queries, k=7, filter=f, with_vectors=True))
                for f in (None, {"key": "lang", "match": "de"})]
        for node in cluster.nodes:
            with cluster.client([node]) as one:
                for f, expect in want:
                    got = one.search("every", vectors=queries, k=7, filter=f, with_vectors=True)
                    assert [[(h.id, round(h.score, 5), h.payload, h.text, h.vector.tobytes())
                             for h in r] for r in got] == \
                        [[(h.id, round(h.score, 5), h.payload, h.text, h.vector.tobytes())
                          for h in r] for r in expect]
        cc.drop_collection("every")


class Ingest:
    """Writes batches of fresh ids through the cluster in a thread; records every
    acknowledged id and the vector it was given."""

    def __init__(self, cluster: Cluster, name: str, batch: int = 20):
        self.cluster, self.name, self.batch = cluster, name, batch
        self.acked: dict[str, np.ndarray] = {}
        self.errors = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        i = 0
        with self.cluster.client(timeout=10, max_retries=2) as c:
            while not self._stop.is_set():
                ids = [f"w{i + j}" for j in range(self.batch)]
                vecs = rand(self.batch, 1000 + i)
                try:
                    c.upsert(self.name, ids, vecs, payloads=[{"n": i + j} for j in range(self.batch)])
                    self.acked.update(zip(ids, vecs))
                except VecdbClientError:
                    self.errors += 1
                    time.sleep(0.05)
                i += self.batch

    def stop(self) -> None:
        self._stop.set()
        self._t.join(30)


def check_acked(cluster: Cluster, name: str, acked: dict[str, np.ndarray]) -> None:
    ids = sorted(acked)
    got = {}
    with cluster.client() as c:
        for s in range(0, len(ids), 5000):
            got.update({p.id: p for p in c.get(name, ids[s:s + 5000], with_vectors=True)})
    missing = [i for i in ids if i not in got]
    assert not missing, f"{len(missing)} acknowledged points lost, e.g. {missing[:5]}"
    for i in ids:
        np.testing.assert_array_equal(got[i].vector, acked[i])
        assert got[i].payload == {"n": int(i[1:])}


def test_sigkill_of_any_node_loses_no_acknowledged_write(tmp_path):
    cl = Cluster(tmp_path)
    try:
        with cl.client() as c:
            c.create_collection("ingest", dim=DIM, shards=2, replication_factor=3,
                                write_concern="majority", index="flat")
            primary = c.cluster_status()["shards"][0]["primary"]
        load = Ingest(cl, "ingest")
        time.sleep(1.5)
        victim = cl.node(primary)
        victim.kill()
        survivors = [n for n in cl.nodes if n is not victim]
        with cl.client(survivors, timeout=5) as c:  # searches answered again
            retry_until(lambda: (c.search("ingest", vector=rand(1, 3)[0], k=3),
                                 c.upsert("ingest", ["probe"], rand(1, 4), payloads=[{"n": -1}])),
                        2 + 15, "no failover")
        time.sleep(1.0)
        victim.restart()
        time.sleep(1.0)
        load.stop()
        assert len(load.acked) > 100
        check_acked(cl, "ingest", load.acked)
        status = cl.wait_in_sync("ingest")
        assert any(s["term"] > 1 for s in status["shards"])
        with cl.client([victim]) as c, cl.client(survivors) as others:
            # the restarted node answers for everything, like the others (writes that
            # failed from the client's side may have been applied: >=)
            assert c.count("ingest") == others.count("ingest") >= len(load.acked) + 1
    finally:
        cl.close()


def test_fencing_a_paused_primary_cannot_acknowledge(tmp_path):
    cl = Cluster(tmp_path)
    try:
        with cl.client() as c:
            c.create_collection("fence", dim=DIM, replication_factor=3, index="flat")
            old = cl.node(c.cluster_status()["shards"][0]["primary"])
        old.stop_signal(signal.SIGSTOP)
        others = [n for n in cl.nodes if n is not old]
        with cl.client(others, timeout=5) as c:  # failover, then a write the old one lacks
            retry_until(lambda: c.upsert("fence", ["after"], rand(1, 5), payloads=[{"n": 1}]),
                        20, "no failover")
            new_primary = c.cluster_status()["shards"][0]["primary"]
        assert new_primary != old.id
        old.stop_signal(signal.SIGCONT)
        acked = {}
        with cl.client([old], timeout=5, max_retries=0) as c:  # straight at the old primary
            for i in range(30):
                try:
                    vec = rand(1, 100 + i)
                    c.upsert("fence", [f"f{i}"], vec, payloads=[{"n": i}])
                    acked[f"f{i}"] = vec[0]
                except VecdbClientError:
                    pass
        check_acked(cl, "fence", acked)
        cl.wait_in_sync("fence")  # the old primary was resynced: it has "after" too
        with cl.client([old]) as c:
            assert [p.id for p in c.get("fence", ["after"])] == ["after"]
    finally:
        cl.close()


def test_etcd_down_serves_on_the_current_map_and_recovers(tmp_path):
    cl = Cluster(tmp_path)
    try:
        with cl.client() as c:
            c.create_collection("steady", dim=DIM, shards=2, replication_factor=2, index="flat")
            c.upsert("steady", ["a", "b"], rand(2, 6))
        load = Ingest(cl, "steady")
        time.sleep(0.5)
        cl.etcd.kill()
        with cl.client() as c:
            time.sleep(0.5)
            assert c.count("steady") >= 2  # reads on the current map
            c.upsert("steady", ["during"], rand(1, 7), payloads=[{"n": 0}])  # writes too
            with pytest.raises(UnavailableError) as err:  # map changes wait for etcd
                c.create_collection("new_while_down", dim=DIM)
            assert "etcd" in err.value.message
        cl.etcd.start()
        with cl.client() as c:
            retry_until(lambda: c.create_collection("after_etcd", dim=DIM), 20,
                        "no recovery after etcd came back", (UnavailableError,))
        load.stop()
        check_acked(cl, "steady", load.acked)
        cl.wait_in_sync("steady")
    finally:
        cl.close()


def test_wiped_disk_node_is_rebuilt_from_its_peers(tmp_path):
    cl = Cluster(tmp_path)
    try:
        vecs = rand(300, 8)
        with cl.client() as c:
            c.create_collection("rebuild", dim=DIM, shards=2, replication_factor=3, index="flat")
            c.upsert("rebuild", [f"r{i}" for i in range(300)], vecs,
                     payloads=[{"n": i} for i in range(300)])
            ttl_at = time.monotonic()
            c.upsert("rebuild", [f"t{i}" for i in range(20)], rand(20, 3), ttl=10)
        victim = cl.nodes[1]
        victim.wipe()
        time.sleep(0.5)
        victim.start()
        status = cl.wait_in_sync("rebuild")
        # the TTL points were copied alive, and their copies must expire on time too
        assert time.monotonic() - ttl_at < 9, "rebuilt too late to test TTL copies"
        assert sum(s["replicas"][0]["points"] for s in status["shards"]) == 320
        assert all(r["points"] > 0 for s in status["shards"] for r in s["replicas"])
        for other in cl.nodes:
            if other is not victim:
                other.kill()  # only the rebuilt copy is left to answer reads
        with cl.client([victim], timeout=10) as c:
            got = retry_until(lambda: c.get("rebuild", [f"r{i}" for i in range(300)],
                                            with_vectors=True), 20, "no failover to the rebuilt node",
                              (UnavailableError,))
        assert len(got) == 300
        np.testing.assert_array_equal(np.stack([p.vector for p in got]), vecs)
        time.sleep(max(0.0, ttl_at + 10.5 - time.monotonic()))
        with cl.client([victim], timeout=10) as c:
            assert c.get("rebuild", [f"t{i}" for i in range(20)]) == []  # expired here too
            assert c.count("rebuild") == 300
    finally:
        cl.close()


def vecdbctl(target: str, *args: str) -> subprocess.CompletedProcess:
    from cluster_harness import SRC_PATHS
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(SRC_PATHS)}
    return subprocess.run([str(Path(sys.executable).parent / "vecdbctl"), "--host", target,
                           "-o", "json", *args], capture_output=True, text=True, env=env,
                          timeout=60)


def test_cli_cluster_status_and_drain(cluster, single):
    with cluster.client() as c:
        c.create_collection("drained", dim=DIM, shards=2, replication_factor=2, index="flat")
        c.upsert("drained", [f"d{i}" for i in range(50)], rand(50, 9))
    out = vecdbctl(cluster.nodes[0].target, "cluster", "status")
    assert out.returncode == 0, out.stderr
    st = json.loads(out.stdout)
    assert {n["id"] for n in st["nodes"]} == {"n0", "n1", "n2"}
    ours = [s for s in st["shards"] if s["collection"] == "drained"]
    victim = ours[0]["primary"]
    out = vecdbctl(cluster.nodes[1].target, "cluster", "drain", victim)
    assert out.returncode == 0, out.stderr
    assert "drained/0" in json.loads(out.stdout)["moved"]
    with cluster.client() as c:
        after = [s for s in c.cluster_status()["shards"] if s["collection"] == "drained"]
        assert all(s["primary"] != victim for s in after)
        c.upsert("drained", ["late"], rand(1, 10))  # writes go on
    cluster.wait_in_sync("drained")  # the drained node is a replica again
    out = vecdbctl(single.target, "cluster", "status")
    assert out.returncode == 1 and "FAILED_PRECONDITION" in out.stderr
    out = vecdbctl(cluster.nodes[0].target, "cluster", "drain", "nope")
    assert out.returncode == 1 and "NOT_FOUND" in out.stderr


def test_chaos_random_kill_and_restart_rounds(tmp_path):
    """VECDB_KILL_ROUNDS (default 8; test_chaos_membership.py runs 50 rounds that also
    add and remove nodes) rounds: a random node of a replication-factor-3 collection is
    SIGKILLed during a continuous ingest and restarted after a random pause; nothing
    acknowledged is lost and every replica converges."""
    rounds = int(os.environ.get("VECDB_KILL_ROUNDS", "8"))
    rng = random.Random(20)
    cl = Cluster(tmp_path)
    try:
        with cl.client() as c:
            c.create_collection("chaos", dim=DIM, shards=2, replication_factor=3,
                                write_concern="majority", index="flat")
        load = Ingest(cl, "chaos", batch=10)
        for _ in range(rounds):
            victim = rng.choice(cl.nodes)
            victim.kill()
            time.sleep(rng.uniform(0.1, 2.5))  # sometimes past node_ttl_s: a failover
            victim.start()
            time.sleep(rng.uniform(0.1, 1.0))
        load.stop()
        assert len(load.acked) > 50 * rounds ** 0.5, (len(load.acked), load.errors)
        check_acked(cl, "chaos", load.acked)
        cl.wait_in_sync("chaos", timeout=90)
    finally:
        cl.close()


def test_texts_are_embedded_once_by_the_primary(cluster):
    """An encoder collection through the cluster: texts in, searched by meaning from
    any node; replicas got the primary's vectors (the same hits and scores everywhere)."""
    pytest.importorskip("sentence_transformers", reason="needs vecdb[encoders]")
    rows = [json.loads(x) for x in (Path(__file__).resolve().parents[1] / "data" /
                                    "topics.jsonl").read_text().splitlines() if x.strip()][::5]
    with cluster.client(timeout=180) as c:
        c.create_collection("texts", encoder="minilm", shards=2, replication_factor=3)
        c.upsert("texts", [r["id"] for r in rows], texts=[r["text"] for r in rows],
                 payloads=[{"topic": r["topic"]} for r in rows])
    cluster.wait_in_sync("texts")
    answers = []
    for node in cluster.nodes:  # each node reads its own replicas
        with cluster.client([node], timeout=180) as one:
            hits = one.search("texts", text=rows[3]["text"], k=5)
            answers.append([(h.id, round(h.score, 5)) for h in hits])
            assert hits[0].id == rows[3]["id"] and hits[0].payload["topic"] == rows[3]["topic"]
    assert answers[0] == answers[1] == answers[2]


def test_internal_calls_need_the_cluster_secret(cluster):
    """A client cannot reach a node's replicas directly: the internal route without the
    cluster secret (or with a wrong one) is PERMISSION_DENIED, and writes nothing."""
    import grpc
    from vecdb_client._proto.vecdb.v1 import points_pb2 as ppb
    from vecdb_client._proto.vecdb.v1 import points_pb2_grpc as pgrpc
    from vecdb_client._proto.vecdb.v1 import types_pb2 as tpb
    with cluster.client() as c:
        c.create_collection("guarded", dim=DIM, index="flat")
        local = next(s for s in c.cluster_status()["shards"] if s["collection"] == "guarded")
        owner = cluster.node(local["primary"])
    with grpc.insecure_channel(owner.target) as ch:
        stub = pgrpc.PointServiceStub(ch)
        req = ppb.UpsertRequest(collection="guarded", points=tpb.PointBatch(
            ids=["x"], vectors=tpb.Vectors(count=1, dim=DIM, data=rand(1, 1).tobytes())))
        for md in ((("x-vecdb-route", "local"),),
                   (("x-vecdb-route", "replica"), ("x-vecdb-cluster", "wrong"),
                    ("x-vecdb-shard", "guarded/0"), ("x-vecdb-term", "99"))):
            with pytest.raises(grpc.RpcError) as err:
                stub.Upsert(req, metadata=md, timeout=10)
            assert err.value.code() == grpc.StatusCode.PERMISSION_DENIED
    with cluster.client() as c:
        assert c.count("guarded") == 0


def test_api_keys_guard_clients_not_the_nodes(tmp_path):
    """With API keys on, clients need one (and its role), while node-to-node calls ride
    on the cluster secret."""
    cl = Cluster(tmp_path, n=2, extra=("--api-keys", "adminkey:admin;readkey:read-only"))
    try:
        with cl.client(api_key="adminkey") as c:
            c.create_collection("keyed", dim=DIM, shards=2, replication_factor=2, index="flat")
            c.upsert("keyed", [f"k{i}" for i in range(40)], rand(40, 11))  # replicated
        with cl.client(api_key="readkey") as c:
            assert c.count("keyed") == 40 and len(c.search("keyed", vector=rand(1, 12)[0], k=3)) == 3
            with pytest.raises(VecdbClientError) as err:
                c.upsert("keyed", ["no"], rand(1, 13))
            assert err.value.code.name == "PERMISSION_DENIED"
        with cl.client() as c:
            with pytest.raises(VecdbClientError) as err:
                c.count("keyed")
            assert err.value.code.name == "UNAUTHENTICATED"
        cl.client_kw = {"api_key": "readkey"}
        cl.wait_in_sync("keyed")
    finally:
        cl.close()
