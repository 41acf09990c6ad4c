"""Online resharding when something goes wrong midway (docs/cluster.md "Resharding"),
with a real etcd and real node processes: a write that reaches the old layout but not
the new one makes the copy start over (nothing the old layout answered comes back after
the switch); the hidden collection of a reshard is not the clients' to name; a scroll
cursor from before a switch is refused."""
from __future__ import annotations

import json
import signal

import pytest

from cluster_harness import Cluster
from test_cluster import DIM, rand
from test_rebalance import wait
from test_reshard import preload
from vecdb.topk import shard_of
from vecdb_client import FailedPreconditionError, NotFoundError, VecdbClientError
from vecdb_server.cluster import state as st
from vecdb_server.cluster.etcd import Etcd as EtcdClient, delete


PACE = 50_000  # bytes/s of a reshard's page copies: a copy of 6,000 points lasts seconds


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("reshard-faults"),
                extra=("--rebalance-max-bytes-per-s", str(PACE)))
    yield c
    c.close()


def record(et: EtcdClient, name: str) -> dict | None:
    kv = et.get(st.reshard_key(name))
    return json.loads(kv.value) if kv is not None else None


def entry(et: EtcdClient, name: str, i: int) -> st.ShardState:
    return st.ShardState.from_json(et.get(st.shard_key(name, i)).value)


def copying_from_one_shard(cl: Cluster, name: str, et: EtcdClient, n: int,
                           shards: int) -> tuple[dict, str, str]:
    """A 1-shard collection of ``n`` points being resharded to ``shards``, its copy begun:
    its model, the old shard's primary, the new layout's name."""
    with cl.client() as c:
        c.create_collection(name, dim=DIM, metric="l2", shards=1, replication_factor=1,
                            index="flat")
    model, _ = preload(cl, name, n)
    with cl.client(timeout=30) as c:
        assert not c.reshard_collection(name, shards, timeout=1.1)["done"]
    shadow = record(et, name)["shadow"]
    wait(lambda: record(et, name)["state"] == "copying", 60, "copying")
    return model, entry(et, name, 0).primary, shadow


def test_hidden_collection_is_not_the_clients(cluster):
    cl, name, et = cluster, "hz", EtcdClient(cluster.etcd.url)
    with cl.client() as c:
        c.create_collection(name, dim=DIM, metric="l2", shards=1, replication_factor=1,
                            index="flat")
    model, _ = preload(cl, name, 1500)
    via = [cl.node(entry(et, name, 0).primary)]  # the node that begins it knows the shadow
    with cl.client(via, timeout=5, max_retries=0) as c:
        assert not c.reshard_collection(name, 2, timeout=1.1)["done"]
        shadow = record(et, name)["shadow"]
        for call in (lambda: c.drop_collection(shadow), lambda: c.get(shadow, ["p1"]),
                     lambda: c.upsert(shadow, ["z"], rand(1, 5)),
                     lambda: c.describe_collection(shadow),
                     lambda: c.create_alias("hz-alias", shadow),
                     lambda: c.outliers(shadow, 3)):
            with pytest.raises(NotFoundError) as exc:
                call()
            assert shadow in str(exc.value)
    assert et.get(st.collection_key(shadow)) is not None  # still there: the calls refused
    with cl.client(timeout=60) as c:
        res = c.reshard_collection(name, 2)
        assert res["done"] and res["shards"] == 2, res
        assert c.count(name) == len(model)
        assert "hz-alias" not in c.list_aliases()


def test_missing_shadow_starts_a_new_generation(cluster):
    """A record whose hidden collection is gone (deleted behind the cluster's back) does
    not hold the collection's reshard forever: the lead makes a new one."""
    cl, name, et = cluster, "hm", EtcdClient(cluster.etcd.url)
    with cl.client() as c:
        c.create_collection(name, dim=DIM, metric="l2", shards=1, replication_factor=1,
                            index="flat")
    model, _ = preload(cl, name, 1000)
    with cl.client(timeout=5) as c:
        assert not c.reshard_collection(name, 2, timeout=1.1)["done"]
    rec = record(et, name)
    assert et.txn([], [delete(st.collection_key(rec["shadow"]))])
    with cl.client(timeout=60) as c:
        res = c.reshard_collection(name, 2)
        assert res["done"] and res["shards"] == 2, res
        assert c.count(name) == len(model)


def test_scroll_cursor_from_before_a_switch_is_refused(cluster):
    cl, name = cluster, "hs"
    with cl.client() as c:
        c.create_collection(name, dim=DIM, metric="l2", shards=2, replication_factor=1,
                            index="flat")
    preload(cl, name, 600)
    with cl.client(timeout=60) as c:
        page = c.scroll(name, limit=50)
        assert page.next_cursor is not None
        assert len(c.scroll(name, limit=50, cursor=page.next_cursor).points) == 50
        assert c.reshard_collection(name, 3)["done"]
        with pytest.raises(FailedPreconditionError) as exc:
            c.scroll(name, limit=50, cursor=page.next_cursor)
        assert exc.value.field == "cursor" and "restart the scroll" in str(exc.value)


def test_write_missing_the_new_layout_starts_the_copy_over(cluster):
    """A delete the old layout applied but the new layout's primary (killed) never got:
    refused, and gone from the old layout; after the switch it must still be gone (the
    page copy only upserts: without a new copy the point would come back)."""
    cl, name, et = cluster, "hd", EtcdClient(cluster.etcd.url)
    model, a, shadow = copying_from_one_shard(cl, name, et, 6000, 3)
    with cl.client(timeout=30) as c:
        first = c.scroll(name, limit=400).points  # the first page the copy writes
    j, b = next((j, e.primary) for j in range(3)
                for e in [entry(et, shadow, j)] if e.primary != a)
    p = next(q.id for q in first if shard_of(q.id, 3) == j)

    def copied_into_j() -> bool:
        with cl.client(timeout=5) as c:
            return any(e["collection"] == shadow and e["shard"] == j and
                       e["replicas"][0]["points"] > 0 for e in c.cluster_status()["shards"])
    wait(copied_into_j, 60, f"the first page in {shadow}/{j}")
    victim = cl.node(b)
    victim.stop_signal(signal.SIGSTOP)  # frozen at once: the copy cannot finish
    assert 0 not in record(et, name)["copied"], "copied before the kill: make it larger"
    victim.kill()
    alive = [n for n in cl.nodes if n.id != b]
    with cl.client(alive, timeout=10, max_retries=0) as c:
        with pytest.raises(VecdbClientError):
            c.delete(name, [p])
        assert c.get(name, [p]) == []  # the old layout applied it
    victim.start()
    with cl.client(timeout=120) as c:
        res = c.reshard_collection(name, 3)
        assert res["done"] and res["shards"] == 3, res
        assert c.get(name, [p]) == [], f"{p}: its refused delete was undone by the switch"
        assert c.count(name) == len(model) - 1


def test_batch_with_a_failed_part_reaches_the_new_layout(tmp_path):
    """One node is the primary of both shards and applies a batch in one engine write
    (local_writes.py); the replica of one shard is killed, so that part fails and the
    batch is refused, while the old layout holds all of it. Every point of it must be
    in the new layout too: with the other part's key recorded and its dual write
    skipped, the client's retry under that key was answered without writing and the
    acknowledged points were missing after the switch."""
    cl, name = Cluster(tmp_path), "kb"
    try:
        et = EtcdClient(cl.etcd.url)
        with cl.client() as c:  # placement (state.place, fresh nodes): n0 holds both
            c.create_collection(name, dim=DIM, metric="l2", shards=2, replication_factor=2,
                                write_concern="all", index="flat")
            cl.wait_in_sync(name)
            s0, s1 = entry(et, name, 0), entry(et, name, 1)
            a = (set(s0.replicas) & set(s1.replicas)).pop()
            v = next(r for r in s1.replicas if r != a)
            assert v not in s0.replicas
            if s1.primary != a:
                c.drain_node(s1.primary)
            if s0.primary != a:
                c.drain_node(s0.primary)
            wait(lambda: entry(et, name, 0).primary == a == entry(et, name, 1).primary, 30,
                 "the primaries on one node")
            cl.wait_in_sync(name)
            for d in ("d1", "d2"):  # the new layout's place: away from v
                c.create_collection(d, dim=DIM, shards=1, replication_factor=1)
        model, _ = preload(cl, name, 20_000)
        with cl.client(timeout=30) as c:
            assert not c.reshard_collection(name, 1, timeout=1.1)["done"]
        shadow = record(et, name)["shadow"]
        wait(lambda: record(et, name)["state"] == "copying", 60, "copying")
        assert v not in entry(et, shadow, 0).replicas

        def copying_past_the_batch() -> bool:  # ("a..." ids sort before the "p..." ones)
            with cl.client(timeout=5) as c:
                return any(e["collection"] == shadow and e["replicas"][0]["points"] >= 3000
                           for e in c.cluster_status()["shards"])
        wait(copying_past_the_batch, 60, "pages of both old shards copied")
        cl.node(v).kill()
        batch = [f"a{i:03d}" for i in range(20)]
        assert {shard_of(p, 2) for p in batch} == {0, 1}
        with cl.client([cl.node(a)], timeout=10, max_retries=0) as c:
            with pytest.raises(VecdbClientError):
                c.upsert(name, batch, rand(20, 77))
            assert len(c.get(name, batch)) == 20  # the old layout holds it all
            assert c.describe_collection(name).config.shards == 2, "switched too early"
        with cl.client([n for n in cl.nodes if n.id != v], timeout=120) as c:
            res = c.reshard_collection(name, 1)
            assert res["done"] and res["shards"] == 1, res
            assert len(c.get(name, batch)) == 20, "the batch's points are not in the new layout"
            assert c.count(name) == len(model) + 20
    finally:
        cl.close()


def test_rebalancing_leaves_a_resharding_collection_alone(tmp_path):
    """A move changes a shard's terms (the reshard would copy again) and holds the switch:
    the planner plans none for a collection being resharded nor for its new layout."""
    hold = ("--rebalance-max-concurrent-moves", "0")  # planned, never started
    cl, name = Cluster(tmp_path, extra=hold), "rp"
    try:
        with cl.client() as c:
            c.create_collection(name, dim=DIM, metric="l2", shards=2, replication_factor=3,
                                index="flat")
        model, _ = preload(cl, name, 1000)
        cl.add_node("n3", *hold)  # 2 replicas on each node, none there: moves to it
        et = EtcdClient(cl.etcd.url)
        with cl.client(timeout=30) as c:
            wait(lambda: c.rebalance_plan()["planned"], 30, "moves planned to n3")
            assert not c.reshard_collection(name, 1, timeout=1.1)["done"]
            # (the new layout's 3 replicas: n3 and two nodes of 2, which stay uneven)
            planned = c.rebalance_plan()["planned"]
            assert record(et, name) is not None, "the reshard ended before the plan was read"
            assert planned == [], planned
            res = c.reshard_collection(name, 1)
            assert res["done"] and res["shards"] == 1, res
            assert c.count(name) == len(model)
    finally:
        cl.close()


def test_primary_restarted_while_copying_starts_a_new_generation(cluster):
    """An old primary SIGKILLed while copying and restarted with the same term (one
    replica: no failover) may have applied writes its new layout never got (one it
    applied just before the kill, one its restart re-applies): the copy starts over in a
    new generation before it takes a write, and nothing is lost."""
    cl, name, et = cluster, "hr", EtcdClient(cluster.etcd.url)
    with cl.client() as c:
        c.create_collection(name, dim=DIM, metric="l2", shards=1, replication_factor=1,
                            index="flat")
    model, _ = preload(cl, name, 20_000)
    a = cl.node(entry(et, name, 0).primary)
    with cl.client(timeout=30) as c:
        assert not c.reshard_collection(name, 2, timeout=1.1)["done"]
    wait(lambda: record(et, name)["state"] == "copying", 60, "copying")
    a.kill()
    first = record(et, name)
    assert first is not None and first["copied"] == [], "copied before the kill: make it larger"
    term = entry(et, name, 0).term
    a.start()
    seen = []

    def moved_on() -> bool:  # a new generation, or the record gone (switched)
        seen.append(record(et, name))
        return seen[-1] is None or seen[-1]["uid"] != first["uid"]
    wait(moved_on, 30, "the reshard moved on")
    assert seen[-1] is not None, "switched in the generation the restarted primary began"
    assert entry(et, name, 0).term == term  # the same primary, the same term
    with cl.client(timeout=120) as c:
        res = c.reshard_collection(name, 2)
        assert res["done"] and res["shards"] == 2, res
        assert c.count(name) == len(model)


def test_write_missing_the_new_layout_while_etcd_is_down_holds_the_shard(cluster):
    """The new layout's primary killed, then etcd: a delete the old layout applies misses
    the new layout and its generation cannot be marked in etcd, so the old shard refuses
    every later write (UNAVAILABLE, nothing applied) until etcd records it; then the copy
    starts over, and after the switch the delete holds and the refused write never
    happened."""
    cl, name, et = cluster, "he", EtcdClient(cluster.etcd.url)
    model, a, shadow = copying_from_one_shard(cl, name, et, 6000, 3)
    j, b = next((j, e.primary) for j in range(3)
                for e in [entry(et, shadow, j)] if e.primary != a)
    victim = cl.node(b)
    victim.stop_signal(signal.SIGSTOP)
    assert 0 not in record(et, name)["copied"], "copied before the kill: make it larger"
    victim.kill()
    p, q = [x for x in sorted(model) if shard_of(x, 3) == j][:2]  # both to the victim
    try:
        cl.etcd.kill()
        with cl.client([cl.node(a)], timeout=10, max_retries=0) as c:
            with pytest.raises(VecdbClientError):
                c.delete(name, [p])
            assert c.get(name, [p]) == []  # the old layout applied it
            with pytest.raises(VecdbClientError) as exc:
                c.delete(name, [q])
            assert "etcd has not recorded it yet" in str(exc.value)
            assert len(c.get(name, [q])) == 1  # refused before it was applied
    finally:
        cl.etcd.start()
    victim.start()
    with cl.client(timeout=120) as c:
        res = c.reshard_collection(name, 3)
        assert res["done"] and res["shards"] == 3, res
        assert c.get(name, [p]) == [], f"{p}: its refused delete was undone by the switch"
        assert len(c.get(name, [q])) == 1, f"{q}: a write refused unapplied was applied"
        assert c.count(name) == len(model) - 1
