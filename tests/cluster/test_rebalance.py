"""Rebalancing with a real etcd and real node processes (docs/cluster.md "Rebalancing"):
a node joining under continuous ingest receives replicas (R=1 and R=2) with nothing
acknowledged lost and the counts per node within one; `cluster remove` moves a node's
replicas off before it goes; a process killed mid-move (target, source, the rebalancer, etcd,
the leader of a 3-member etcd) leaves a consistent map and the move completes or rolls back."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

from cluster_harness import SRC_PATHS, Cluster
from test_cluster import DIM, Ingest, check_acked, rand
from vecdb_client import FailedPreconditionError, NotFoundError
from vecdb_server.cluster import state as st
from vecdb_server.cluster.etcd import Etcd as EtcdClient


def wait(pred, timeout: float, what: str):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = pred()
            if last:
                return last
        except Exception as exc:  # noqa: BLE001 - nodes restarting: ask again
            last = exc
        time.sleep(0.2)
    raise AssertionError(f"{what} not reached in {timeout} s (last: {last})")


def consistent(status: dict, names: dict[str, int], live: set[str]) -> bool:
    """The map is settled: no move in progress, every shard of each collection has R
    distinct replicas on live nodes, all in sync with equal point counts, the primary
    among them."""
    if status["moves"]:
        return False
    for name, rf in names.items():
        shards = [s for s in status["shards"] if s["collection"] == name]
        if not shards:
            return False
        for s in shards:
            nodes = [r["node"] for r in s["replicas"]]
            if len(nodes) != rf or len(set(nodes)) != rf or not set(nodes) <= live \
                    or s["primary"] not in nodes:
                return False
            if not all(r["in_sync"] for r in s["replicas"]) or \
                    len({r["points"] for r in s["replicas"]}) != 1:
                return False
    return True


def balanced(status: dict, live: set[str]) -> bool:
    counts = [n["replicas"] for n in status["nodes"] if n["id"] in live and not n["removing"]]
    return max(counts) - min(counts) <= 1


def settle(cl: Cluster, names: dict[str, int], live: set[str], timeout: float = 90) -> dict:
    def ok():
        with cl.client(timeout=5) as c:
            s = c.cluster_status()
            return s if consistent(s, names, live) and balanced(s, live) else False
    return wait(ok, timeout, f"a settled, balanced map over {sorted(live)}")


def vecdbctl(cl: Cluster, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(SRC_PATHS)}
    out = subprocess.run([sys.executable, "-m", "vecdb_client.cli", "--host",
                          cl.nodes[0].target, *args], capture_output=True, text=True,
                         env=env, timeout=60)
    assert out.returncode == 0, out.stderr
    return out.stdout


class MovesSampler:
    """The most move records seen in etcd at once (the throttle's bound)."""

    def __init__(self, url: str):
        self.etcd, self.most = EtcdClient(url), 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop.wait(0.01):
            self.most = max(self.most, len(self.etcd.range(st.MOVES)[0]))

    def stop(self) -> int:
        self._stop.set()
        self._t.join(5)
        return self.most


class Searches:
    """Searches both collections in a loop through every node; counts the failures."""

    def __init__(self, cl: Cluster, names: list[str]):
        self.cl, self.names = cl, names
        self.done, self.failed = 0, []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        with self.cl.client(timeout=10, max_retries=0) as c:
            while not self._stop.is_set():
                for name in self.names:
                    try:
                        assert len(c.search(name, rand(1, self.done)[0], k=5)) == 5
                        self.done += 1
                    except Exception as exc:  # noqa: BLE001 - recorded, asserted on
                        self.failed.append(repr(exc))

    def stop(self) -> "Searches":
        self._stop.set()
        self._t.join(30)
        return self


def test_join_under_ingest_then_remove(tmp_path):
    cl = Cluster(tmp_path, n=2)
    try:
        with cl.client() as c:
            c.create_collection("r2", dim=DIM, shards=4, replication_factor=2,
                                write_concern="all", index="flat")
            c.create_collection("r1", dim=DIM, shards=3, replication_factor=1, index="flat")
            c.upsert("r1", [f"a{i}" for i in range(300)], rand(300, 5))
        load, load1 = Ingest(cl, "r2"), Ingest(cl, "r1")
        time.sleep(1.0)
        sampler, searches = MovesSampler(cl.etcd.url), Searches(cl, ["r1", "r2"])
        cl.add_node("n2")
        status = settle(cl, {"r2": 2, "r1": 1}, {"n0", "n1", "n2"})
        assert sampler.stop() == 2  # rebalance_max_concurrent_moves (default 2) at once
        searches.stop()
        assert searches.done > 20 and not searches.failed, searches.failed[:3]
        load.stop()
        load1.stop()
        counts = {n["id"]: n["replicas"] for n in status["nodes"]}
        assert counts["n2"] >= 3 and sum(counts.values()) == 11, counts  # 8 + 3 replicas
        assert len(load.acked) > 50 and len(load1.acked) > 50, (len(load.acked), len(load1.acked))
        check_acked(cl, "r2", load.acked)
        check_acked(cl, "r1", load1.acked)  # R=1: every primary moved with the copy
        with cl.client() as c:
            assert c.count("r1") >= 300 + len(load1.acked)
            got = c.get("r1", [f"a{i}" for i in range(300)], with_vectors=True)
            np.testing.assert_array_equal(np.stack([p.vector for p in got]), rand(300, 5))
            # a balanced cluster plans nothing
            assert c.rebalance_plan()["planned"] == []
        out = json.loads(vecdbctl(cl, "cluster", "rebalance", "--dry-run", "-o", "json"))
        assert out["planned"] == [] and out["in_progress"] == []
        assert "balanced" in vecdbctl(cl, "cluster", "rebalance", "--wait-timeout", "30")

        # remove n0 for good under ingest: its replicas (and primaries) move off first
        load, load1 = Ingest(cl, "r2", batch=10), Ingest(cl, "r1")
        searches = Searches(cl, ["r1", "r2"])
        with cl.client() as c:
            with pytest.raises(NotFoundError):
                c.remove_node("nobody")
        out = json.loads(vecdbctl(cl, "cluster", "remove", "n0", "-o", "json"))
        assert out == {"node": "n0", "replicas": counts["n0"]}
        table = vecdbctl(cl, "cluster", "status")  # moves in progress (or done by now)
        assert "replica moves in progress (rebalancer: n" in table and "removing" in table
        status = settle(cl, {"r2": 2, "r1": 1}, {"n1", "n2"})
        load.stop()
        load1.stop()
        searches.stop()
        assert searches.done > 20 and not searches.failed, searches.failed[:3]
        n0 = next(n for n in status["nodes"] if n["id"] == "n0")
        assert n0["removing"] and n0["replicas"] == 0 and n0["primaries"] == 0
        with cl.client() as c:
            with pytest.raises(FailedPreconditionError) as err:  # R=2 needs 2 other nodes
                c.remove_node("n1")
            assert err.value.field == "node"
        # n0 still runs and still routes; then it stops for good and nothing is lost
        wait(lambda: "dropping local replica" in cl.node("n0").log(), 30, "n0 dropping copies")
        cl.node("n0").kill()
        cl.nodes.remove(cl.node("n0"))
        check_acked(cl, "r2", load.acked)
        check_acked(cl, "r1", load1.acked)
        with cl.client() as c:
            # the removed node's mark goes once it has stopped holding nothing
            wait(lambda: not EtcdClient(cl.etcd.url).get(st.removed_key("n0")), 30,
                 "the removal mark gone")
    finally:
        cl.close()


class KillAtFirstMove:
    """Watches etcd from before a trigger; the moment the first move record appears it
    SIGKILLs ``pick(move)`` (so the move cannot have raced ahead to its end)."""

    def __init__(self, etcd: EtcdClient, pick):
        self.etcd, self.pick = etcd, pick
        self.move: st.Move | None = None
        self.killed = None
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            kvs, _ = self.etcd.range(st.MOVES)
            if kvs:
                name, _, shard = kvs[0].key[len(st.MOVES):].rpartition("/")
                self.move = st.Move.from_json(name, int(shard), kvs[0].value)
                self.killed = self.pick(self.move)
                self.killed.kill()
                return
            time.sleep(0.005)

    def result(self):
        self._t.join(70)
        assert self.move is not None, "no move started"
        return self.move, self.killed


def shard_entry(etcd: EtcdClient, m: st.Move) -> dict:
    return json.loads(etcd.get(st.shard_key(m.collection, m.shard)).value)


def test_a_node_killed_mid_move_leaves_a_consistent_map(tmp_path):
    """Each round makes the rebalancer start moves and kills one process the moment the
    first move is recorded: the target (the move rolls back), the source (it completes
    without it), the rebalancer (another node takes the key and resumes), etcd (the
    moves end from what it recorded once it is back)."""
    cl = Cluster(tmp_path, n=3)
    etcd = EtcdClient(cl.etcd.url)
    names = {"big": 2}
    try:
        with cl.client() as c:
            c.create_collection("big", dim=DIM, shards=3, replication_factor=2, index="flat")
            for s in range(0, 6000, 2000):
                c.upsert("big", [f"b{i}" for i in range(s, s + 2000)], rand(2000, s),
                         payloads=[{"n": i} for i in range(s, s + 2000)])
        want = {f"b{i}": v for s in range(0, 6000, 2000)
                for i, v in zip(range(s, s + 2000), rand(2000, s))}
        live = {"n0", "n1", "n2"}
        settle(cl, names, live)

        # 1. the target dies mid-move: the move rolls back
        watch = KillAtFirstMove(etcd, lambda m: cl.node(m.target))
        target = cl.add_node("n3", ready=False)
        m, killed = watch.result()
        assert killed is target
        wait(lambda: not etcd.range(st.MOVES)[0], 30, "the move rolled back")
        assert "n3" not in shard_entry(etcd, m)["replicas"]
        settle(cl, names, live)
        target.start()  # back: the moves to it complete this time
        live.add("n3")
        settle(cl, names, live)
        check_acked(cl, "big", want)

        # 2. the source dies mid-move: the move completes without it
        watch = KillAtFirstMove(etcd, lambda m: cl.node(m.source))
        cl.add_node("n4")
        live.add("n4")
        m, source = watch.result()
        live.discard(source.id)
        wait(lambda: not etcd.range(st.MOVES)[0], 60, "the move finished")
        entry = shard_entry(etcd, m)
        assert m.source not in entry["replicas"] and m.target in entry["in_sync"], entry
        source.start()
        live.add(source.id)
        settle(cl, names, live)
        check_acked(cl, "big", want)

        # 3. the rebalancer dies mid-move: another node takes the key and resumes
        watch = KillAtFirstMove(etcd, lambda m: cl.node(etcd.get(st.REBALANCER).value))
        gone = m.target
        with cl.client() as c:
            c.remove_node(gone)  # its replicas must move
        m, leader = watch.result()
        live.discard(leader.id)
        wait(lambda: (kv := etcd.get(st.REBALANCER)) and kv.value != leader.id, 30,
             "a new rebalancer")
        if leader.id != gone:  # back (replicas on a dead node stay: it may return)
            leader.start()
            live.add(leader.id)
        status = settle(cl, names, live - {gone})
        assert next(n for n in status["nodes"] if n["id"] == gone)["replicas"] == 0 \
            if leader.id != gone else all(n["id"] != gone for n in status["nodes"])
        check_acked(cl, "big", want)

        # 4. etcd (its leader: the one member) dies mid-move and comes back: the move
        # finishes or rolls back from what etcd recorded, and the map settles
        watch = KillAtFirstMove(etcd, lambda m: cl.etcd)
        cl.add_node("n5", ready=False)
        m, killed = watch.result()
        assert killed is cl.etcd
        time.sleep(1.0)
        cl.etcd.start()
        live.add("n5")
        wait(lambda: not etcd.range(st.MOVES)[0], 60, "the moves ended after etcd's return")
        settle(cl, names, live - {gone})
        check_acked(cl, "big", want)
        with cl.client() as c:
            assert c.count("big") == 6000
    finally:
        cl.close()


def test_dry_run_shows_the_plan_and_zero_moves_means_off(tmp_path):
    """rebalance_max_concurrent_moves 0: a joining node gets nothing, while the dry run
    lists the moves that would balance it (onto the new node, from the loaded ones)."""
    cl = Cluster(tmp_path, n=2, extra=("--rebalance-max-concurrent-moves", "0"))
    try:
        with cl.client() as c:
            c.create_collection("idle", dim=DIM, shards=4, replication_factor=2)
        cl.add_node("n2", "--rebalance-max-concurrent-moves", "0")

        def plan_once_n2_is_seen():
            with cl.client() as c:
                if all(n["id"] != "n2" for n in c.cluster_status()["nodes"]):
                    return None
            return json.loads(vecdbctl(cl, "cluster", "rebalance", "--dry-run", "-o", "json"))
        out = wait(plan_once_n2_is_seen, 30, "n2 in the view")
        assert out["in_progress"] == [] and out["rebalancer"] in {"n0", "n1", "n2"}
        planned = out["planned"]
        assert len(planned) == 2 and {m["target"] for m in planned} == {"n2"}
        assert len({(m["collection"], m["shard"]) for m in planned}) == 2
        text = vecdbctl(cl, "cluster", "rebalance", "--dry-run")
        assert "planned next" in text and "idle/" in text
        time.sleep(2.0)  # several maintenance rounds: still nothing moves
        with cl.client() as c:
            status = c.cluster_status()
        assert status["moves"] == []
        assert {n["id"]: n["replicas"] for n in status["nodes"]} == {"n0": 4, "n1": 4, "n2": 0}
    finally:
        cl.close()


def test_etcd_leader_killed_mid_move_with_three_members(tmp_path):
    """etcd as production runs it, 3 members: its leader is SIGKILLed the moment the
    first move is recorded. The two left elect another, the nodes go on through them
    (their endpoints name all three), the moves end, the map settles balanced and
    nothing acknowledged under continuous ingest is lost; the member restarted rejoins."""
    cl = Cluster(tmp_path, n=3, etcd_members=3)
    etcd = EtcdClient(cl.etcd.url)
    names, live = {"big": 2}, {"n0", "n1", "n2"}
    try:
        with cl.client() as c:
            c.create_collection("big", dim=DIM, shards=3, replication_factor=2, index="flat")
            c.upsert("big", [f"b{i}" for i in range(3000)], rand(3000, 3))
        settle(cl, names, live)
        load, searches = Ingest(cl, "big"), Searches(cl, ["big"])
        watch = KillAtFirstMove(etcd, lambda m: cl.etcd.leader())
        cl.add_node("n3")
        _, killed = watch.result()
        assert killed in cl.etcd.members and not killed.alive()
        live.add("n3")
        wait(lambda: not etcd.range(st.MOVES)[0], 90, "the moves ended without the leader")
        settle(cl, names, live)
        load.stop()
        searches.stop()
        assert len(load.acked) > 50, len(load.acked)
        assert searches.done > 20 and not searches.failed, searches.failed[:3]
        check_acked(cl, "big", load.acked)
        cl.etcd.start()  # the killed member rejoins
        assert cl.etcd.leader() in cl.etcd.members
        with cl.client() as c:
            assert c.count("big") == 3000 + len(load.acked)
    finally:
        cl.close()
