"""Online resharding with a real etcd and real node processes (docs/cluster.md
"Resharding"): 1 -> 4 -> 2 shards under continuous writes (new points, overwrites,
deletes by id and by filter), exact (flat) search equal to numpy brute force over the
acknowledged points before and after, nothing acknowledged lost or resurrected; a node
SIGKILLed mid-reshard leaves a record the cluster finishes from; a single node refuses."""
from __future__ import annotations

import asyncio
import json
import threading
import time

import numpy as np
import pytest

from cluster_harness import Cluster
from test_cluster import DIM, rand
from test_rebalance import vecdbctl, wait
from vecdb_client import (AsyncClient, FailedPreconditionError, InvalidArgumentError,
                          UnavailableError, VecdbClientError)
from vecdb_server.cluster import state as st
from vecdb_server.cluster.etcd import Etcd as EtcdClient

GROUPS = 40  # payload "g": a delete by filter removes one group


class Writer:
    """One thread of writes in a fixed order, each retried until acknowledged, so the
    model (id -> vector; deleted ids absent) is exactly what the cluster must hold."""

    def __init__(self, cl: Cluster, name: str, model: dict[str, np.ndarray],
                 groups: dict[str, int], start: int, via: list | None = None):
        self.cl, self.name, self.model, self.groups, self.via = cl, name, model, groups, via
        self.n, self.ops, self.retries = start, 0, 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _acked(self, c, fn) -> None:
        for _ in range(200):
            try:
                fn()
                self.ops += 1
                return
            except VecdbClientError:
                self.retries += 1
                time.sleep(0.05)
        raise AssertionError("a write was not acknowledged after 200 tries")

    def _run(self) -> None:
        rng = np.random.default_rng(7)
        with self.cl.client(self.via, timeout=10, max_retries=2) as c:
            while not self._stop.is_set():
                kind = self.ops % 10
                live = sorted(self.model)
                if kind == 9 and live:  # delete by filter: a whole group
                    g = int(rng.integers(GROUPS))
                    self._acked(c, lambda: c.delete(self.name, filter={"key": "g", "match": g}))
                    for pid in [p for p in live if self.groups[p] == g]:
                        del self.model[pid]
                elif kind in (3, 6) and live:  # delete or overwrite a few existing ids
                    ids = [live[int(j)] for j in rng.choice(len(live), 3, replace=False)]
                    if kind == 3:
                        self._acked(c, lambda: c.delete(self.name, ids))
                        for pid in ids:
                            del self.model[pid]
                    else:
                        vecs = rand(3, 50_000 + self.ops)
                        self._acked(c, lambda: c.upsert(self.name, ids, vecs, payloads=[
                            {"g": self.groups[p]} for p in ids]))
                        self.model.update(zip(ids, vecs))
                else:  # new points
                    ids = [f"p{self.n + j}" for j in range(10)]
                    vecs = rand(10, self.n)
                    grp = {p: (self.n + j) % GROUPS for j, p in enumerate(ids)}
                    self._acked(c, lambda: c.upsert(self.name, ids, vecs, payloads=[
                        {"g": grp[p]} for p in ids]))
                    self.groups.update(grp)
                    self.model.update(zip(ids, vecs))
                    self.n += 10

    def stop(self) -> None:
        self._stop.set()
        self._t.join(60)
        assert not self._t.is_alive()


class NoopDeletes:
    """Deletes by a filter that matches nothing, in a loop (with replicas the primary
    applies and logs such a write as no ids and no filter: it must delete nothing in the
    new layout either)."""

    def __init__(self, cl: Cluster, name: str, via: list):
        self.cl, self.name, self.via, self.done, self.failed = cl, name, via, 0, []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        with self.cl.client(self.via, timeout=10, max_retries=0) as c:
            while not self._stop.wait(0.01):
                try:
                    c.delete(self.name, filter={"key": "g", "match": -1})
                    self.done += 1
                except VecdbClientError as exc:
                    self.failed.append(exc)

    def stop(self) -> int:
        """How many were acknowledged; refused ones must be about the kill (UNAVAILABLE)."""
        self._stop.set()
        self._t.join(30)
        assert all(isinstance(e, UnavailableError) for e in self.failed), self.failed[:3]
        return self.done


def preload(cl: Cluster, name: str, n: int) -> tuple[dict, dict]:
    ids = [f"p{i}" for i in range(n)]
    vecs = rand(n, 0)
    groups = {p: i % GROUPS for i, p in enumerate(ids)}
    with cl.client() as c:
        for s in range(0, n, 500):
            c.upsert(name, ids[s:s + 500], vecs[s:s + 500],
                     payloads=[{"g": groups[p]} for p in ids[s:s + 500]])
    return dict(zip(ids, vecs)), groups


def check_exact(cl: Cluster, name: str, model: dict[str, np.ndarray], shards: int) -> None:
    """Every acknowledged point there with its vector, nothing else, and exact search
    equal to brute force over the model (l2: squared distance, lower first)."""
    ids = sorted(model)
    mat = np.stack([model[p] for p in ids])
    with cl.client() as c:
        info = c.describe_collection(name)
        assert info.config.shards == shards and len(info.shards) == shards
        assert c.count(name) == len(ids)
        got = {}
        for s in range(0, len(ids), 2000):
            got.update({p.id: p.vector for p in c.get(name, ids[s:s + 2000],
                                                       with_vectors=True)})
        missing = [p for p in ids if p not in got]
        assert not missing, f"{len(missing)} acknowledged points lost, e.g. {missing[:5]}"
        for p in ids:
            np.testing.assert_array_equal(got[p], model[p])
        queries = rand(12, 999)
        for q in queries:
            want = np.argsort(((mat - q) ** 2).sum(1), kind="stable")[:10]
            hits = c.search(name, q, k=10)
            assert [h.id for h in hits] == [ids[j] for j in want]
            np.testing.assert_allclose([h.score for h in hits],
                                       ((mat[want] - q) ** 2).sum(1), rtol=1e-4, atol=1e-4)


def settled(cl: Cluster, name: str, shards: int) -> dict:
    """No reshard record left, the map has ``shards`` shards of the collection (all
    replicas in sync) and no copy of a retired layout is left on any node."""
    def ok():
        with cl.client(timeout=5) as c:
            s = c.cluster_status()
        mine = [e for e in s["shards"] if e["collection"] == name]
        hidden = [e for e in s["shards"] if st.SHADOW_MARK in e["collection"]]
        return s if (not s["reshards"] and not hidden and len(mine) == shards and all(
            r["in_sync"] for e in mine for r in e["replicas"])) else False
    return wait(ok, 60, f"{name} settled at {shards} shards")


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("reshard"))
    yield c
    c.close()


def test_reshard_1_to_4_to_2_under_writes(cluster):
    cl, name = cluster, "rs"
    with cl.client() as c:
        # one copy per shard: a delete by filter reaches the new layout as a filter (with
        # replicas the primary logs it as the ids it selected: the kill test below)
        c.create_collection(name, dim=DIM, metric="l2", shards=1, replication_factor=1,
                            index="flat")
        uid0 = EtcdClient(cl.etcd.url).get(st.collection_key(name)).value
        held = [r["node"] for e in c.cluster_status()["shards"] if e["collection"] == name
                for r in e["replicas"]]
    model, groups = preload(cl, name, 2000)
    check_exact(cl, name, model, 1)

    w = Writer(cl, name, model, groups, 2000)
    try:
        time.sleep(0.5)
        out = json.loads(vecdbctl(cl, "-o", "json", "collections", "reshard", name,
                                  "--shards", "4"))
        assert out["done"] and out["shards"] == 4
        settled(cl, name, 4)
        time.sleep(0.5)
        with cl.client(timeout=120) as c:  # etcd restarted while the 4 -> 2 goes on
            assert not c.reshard_collection(name, 2, timeout=1.1)["done"]
            cl.etcd.kill()
            time.sleep(0.5)
            cl.etcd.start()
            res = c.reshard_collection(name, 2)
        assert res["done"] and res["shards"] == 2
        time.sleep(0.5)
    finally:
        w.stop()
    assert w.ops > 50, w.ops
    check_exact(cl, name, model, 2)
    settled(cl, name, 2)
    spec = st.CollectionSpec.from_json(EtcdClient(cl.etcd.url).get(
        st.collection_key(name)).value)
    assert spec.shards == 2 and spec.uid != st.CollectionSpec.from_json(uid0).uid
    # the 1-shard layout's copies are dropped on the nodes that held them
    old = f"c{st.CollectionSpec.from_json(uid0).uid}-s0"
    wait(lambda: all(f"dropping local replica {old}" in cl.node(r).log() for r in held), 30,
         f"{old} dropped on {held}")
    with cl.client() as c:
        assert c.reshard_collection(name, 2)["done"]  # already there: at once
        with pytest.raises(InvalidArgumentError) as exc:
            c.reshard_collection(name, 65)
        assert exc.value.field == "shards"
        assert [x.name for x in c.list_collections()] == [name]
        with pytest.raises(InvalidArgumentError) as exc:  # the hidden collections' names
            c.create_collection(f"{name}.reshard-0", dim=DIM)
        assert exc.value.field == "name"


def test_node_killed_mid_reshard_finishes(cluster):
    cl, name = cluster, "rk"
    with cl.client() as c:
        c.create_collection(name, dim=DIM, metric="l2", shards=2, replication_factor=3,
                            write_concern="majority", index="flat")
        lead = next(e["primary"] for e in c.cluster_status()["shards"]
                    if e["collection"] == name and e["shard"] == 0)
    model, groups = preload(cl, name, 1500)
    others = [n for n in cl.nodes if n.id != lead]  # the writes go on through them
    w, noop = Writer(cl, name, model, groups, 1500, others), NoopDeletes(cl, name, others)
    try:
        with cl.client(others) as c:
            res = c.reshard_collection(name, 3, timeout=1.1)  # begun; not waited for
            assert not res["done"] and res["shards"] == 2, res
        victim = cl.node(lead)
        victim.kill()
        with cl.client(others) as c:
            assert any(r.startswith(f"{name} -> 3 shards: ")
                       for r in c.cluster_status()["reshards"])
        time.sleep(3)
        victim.start()
        with cl.client(others, timeout=120) as c:
            res = c.reshard_collection(name, 3)
        assert res["done"] and res["shards"] == 3, res
    finally:
        w.stop()
        assert noop.stop() > 10
    check_exact(cl, name, model, 3)
    settled(cl, name, 3)


def test_single_node_refuses_reshard(tmp_path):
    import sys
    from pathlib import Path
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "integration"))
    from harness import InProcessServer
    srv = InProcessServer(tmp_path / "data")
    try:
        with srv.client() as c:
            c.create_collection("one", dim=DIM)
            with pytest.raises(FailedPreconditionError) as exc:
                c.reshard_collection("one", 2)
            assert exc.value.field == "cluster_etcd"
            assert c.describe_collection("one").config.shards == 1

        async def refused_async() -> str:
            async with AsyncClient(srv.target) as ac:
                with pytest.raises(FailedPreconditionError) as exc:
                    await ac.reshard_collection("one", 2)
                return exc.value.field
        assert asyncio.run(refused_async()) == "cluster_etcd"
    finally:
        srv.stop()
