"""Incremental catch-up of a replica from the primary's replication log (docs/cluster.md
"Failover, fencing, catch-up"): real etcd, 3 real node processes, SIGKILL."""
from __future__ import annotations

import re
import threading
import time

import numpy as np
import pytest
from cluster_harness import Cluster
from vecdb_client.errors import VecdbClientError

from vecdb import Database, DatabaseOptions

DIM = 8
RETAIN = 300  # replication-log entries kept per shard copy (--wal-retain)


def rand(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)


@pytest.fixture()
def cluster(tmp_path):
    c = Cluster(tmp_path, extra=("--wal-retain", str(RETAIN)))
    yield c
    c.close()


class Writer:
    """Mixed writes through the cluster (upserts with payloads, some with a TTL, payload
    updates, deletes) until stopped; counts the acknowledged ones."""

    def __init__(self, cluster: Cluster, name: str):
        self.cluster, self.name, self.acked = cluster, name, 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        i = 0
        with self.cluster.client(timeout=10, max_retries=8) as c:
            while not self._stop.is_set():
                try:
                    write(c, self.name, i)
                    self.acked += 1
                except VecdbClientError:
                    time.sleep(0.05)
                i += 1
                time.sleep(0.02)

    def stop(self) -> None:
        self._stop.set()
        self._t.join(60)


def write(c, name: str, i: int) -> None:
    """Write number i of a fixed mix."""
    if i % 7 == 3:
        c.update_payload(name, [f"p{i - 1}", f"p{i - 2}"], set={"touched": i})
    elif i % 7 == 5:
        c.delete(name, [f"p{i - 4}"])
    else:
        ids = [f"p{i + 1}", f"p{i // 2}"]  # new ids and overwrites
        c.upsert(name, ids, rand(2, i), payloads=[{"n": i, "s": "x" * (i % 5)}, {"n": -i}],
                 ttl=3600.0 if i % 3 == 0 else None)


def primary_of(cluster: Cluster, name: str) -> str:
    with cluster.client() as c:
        return next(s["primary"] for s in c.cluster_status()["shards"]
                    if s["collection"] == name)


def catchups(log: str, replica: str) -> list[tuple[str, float]]:
    """(how, ms the shard's writes were held) of every catch-up of ``replica`` logged."""
    return [(m.group(1), float(m.group(2))) for m in re.finditer(
        rf"replica {replica} of shard \S+ is in sync \(term \d+\): (\w+) catch-up of .*? "
        r"writes held ([\d.]+) ms", log)]


def copies(cluster: Cluster) -> dict[str, dict]:
    """Every node's copy of every shard, read from its data dir (nodes stopped): id ->
    (vector bytes, payload, text, expiry ms)."""
    out = {}
    for n in cluster.nodes:
        n.kill()
        db = Database.open(str(n.data_dir), DatabaseOptions())
        try:
            got = {}
            for info in db.list_collections():
                points, cursor = [], None
                while True:
                    page = db.scroll(info.name, 1000, cursor, with_vector=True)
                    points += page.points
                    if page.next_cursor is None:
                        break
                    cursor = page.next_cursor
                expiry = db.expiry_of(info.name, [p.id for p in points])
                got[info.name] = {p.id: (p.vector.tobytes(), p.payload, p.text,
                                         expiry.get(p.id)) for p in points}
            out[n.id] = got
        finally:
            db.close()
    return out


def assert_equal_copies(got: dict[str, dict]) -> None:
    (first, ref), *rest = got.items()
    assert ref and all(ref.values())
    for node, colls in rest:
        assert colls.keys() == ref.keys()
        for name, points in colls.items():
            assert points.keys() == ref[name].keys(), (node, name)
            for pid, (vec, payload, text, expiry) in points.items():
                r = ref[name][pid]
                assert (vec, payload, text) == r[:3], (node, pid)
                # a TTL is counted from when each copy applied the write (ms apart)
                assert (expiry is None) == (r[3] is None), (node, pid)
                if expiry is not None:
                    assert abs(expiry - r[3]) < 5000, (node, pid, expiry, r[3])


def test_a_restarted_replica_catches_up_incrementally_then_fully_beyond_the_log(cluster):
    with cluster.client() as c:
        c.create_collection("cu", dim=DIM, shards=1, replication_factor=3,
                            write_concern="majority")
        for i in range(40):
            write(c, "cu", i)
    cluster.wait_in_sync("cu")
    primary = primary_of(cluster, "cu")
    victim = next(n for n in cluster.nodes if n.id != primary)
    plog = cluster.node(primary)

    # under continuous ingest: killed, restarted, caught up from the log
    writer = Writer(cluster, "cu")
    time.sleep(1.0)
    victim.kill()
    before = writer.acked
    time.sleep(2.0)
    victim.start()
    cluster.wait_in_sync("cu")
    time.sleep(1.0)
    writer.stop()
    assert writer.acked > before  # writes went on while it was down and catching up
    got = catchups(plog.log(), victim.id)
    assert got and got[-1][0] == "incremental", got
    cluster.wait_in_sync("cu")

    # down for more writes than the log keeps: a full copy
    victim.kill()
    with cluster.client() as c:
        for i in range(10_000, 10_000 + RETAIN + 20):
            write(c, "cu", i)
    victim.start()
    cluster.wait_in_sync("cu")
    got = catchups(plog.log(), victim.id)
    assert got[-1][0] == "full", got
    assert_equal_copies(copies(cluster))
    # the full copy carried the primary's idempotency-key records of the shard
    records = {n.id: key_records(n) for n in (plog, victim)}
    assert len(records[primary]) >= RETAIN and records[victim.id] == records[primary]


def key_records(node) -> dict:
    """A stopped node's idempotency-key records (cluster/write_keys.py)."""
    from rocksdict import Rdict
    db = Rdict(str(node.data_dir / "cluster-write-keys"))
    try:
        return dict(db.items())
    finally:
        db.close()


def test_replication_log_keeps_the_last_entries_and_knows_its_floor(tmp_path):
    from vecdb_client._proto.vecdb.v1 import points_pb2 as ppb
    from vecdb_server.cluster.catchup import ReplLog, next_key

    log, pos = ReplLog(str(tmp_path), retain=4), (0, 0)
    for j in range(7):  # term 3 then term 4
        pos = next_key(pos, 3 if j < 3 else 4)
        log.append("c1-s0", pos, "Delete", ppb.DeleteRequest(collection="c1-s0", ids=[f"x{j}"]),
                   j, record=("k", "digest answer") if j == 5 else None)
    assert pos == (4, 4) and log.position("c1-s0") == ((4, 4), 6, True)
    assert log.entries_after("c1-s0", (3, 1), 10) is None  # pruned: 4 entries are kept
    got = log.entries_after("c1-s0", (3, 3), 10)  # the floor: the entry before the oldest
    assert [(e.key, list(e.request.ids), e.record) for e in got] == [
        ((4, 1), ["x3"], None), ((4, 2), ["x4"], None), ((4, 3), ["x5"], ("k", "digest answer")),
        ((4, 4), ["x6"], None)]
    assert [e.key for e in log.entries_after("c1-s0", (4, 2), 1)] == [(4, 3)]
    assert log.entries_after("c1-s0", (4, 5), 10) is None  # a write this log never had
    log.close()
    log = ReplLog(str(tmp_path), retain=4)  # reopened: the same
    assert log.position("c1-s0") == ((4, 4), 6, True)
    assert [e.key for e in log.entries_after("c1-s0", (3, 3), 10)] == [(4, 1), (4, 2), (4, 3),
                                                                        (4, 4)]
    log.reset("c1-s0", (4, 4), 9)  # a full copy's end
    assert log.position("c1-s0") == ((4, 4), 9, False)
    assert log.entries_after("c1-s0", (4, 4), 10) == []
    assert log.entries_after("c1-s0", (4, 1), 10) is None


def test_node_to_node_calls_do_not_wait_behind_client_calls(tmp_path):
    """One client worker thread per node: a write sent to the replica that is not the
    primary occupies that node's only client worker while the primary replicates back
    to it; node-to-node calls have their own server and workers, so it is acknowledged
    (sharing one pool, the replication would wait for the client call it serves)."""
    cl = Cluster(tmp_path, n=2, extra=("--max-workers", "1"))
    try:
        with cl.client() as c:
            c.create_collection("w1", dim=DIM, shards=1, replication_factor=2,
                                write_concern="all")
        cl.wait_in_sync("w1")
        other = next(n for n in cl.nodes if n.id != primary_of(cl, "w1"))
        with cl.client([other], timeout=8, max_retries=0) as c:
            for i in range(5):
                c.upsert("w1", [f"a{i}"], rand(1, i))
            assert c.count("w1") == 5
            status = c.cluster_status()
        assert all(r["in_sync"] for s in status["shards"] for r in s["replicas"])
        assert "missed a write" not in "".join(n.log() for n in cl.nodes)
    finally:
        cl.close()


def test_replication_log_never_gives_a_dropped_key_again_nor_reads_a_pending_entry(tmp_path):
    """A catch-up reading while writes go on stops before the entry whose write is under
    way; a dropped entry's key is not the next write's (on reopen too), so a replica that
    holds it is not in this log (a full copy) rather than taking the next write as held."""
    from vecdb_client._proto.vecdb.v1 import points_pb2 as ppb
    from vecdb_server.cluster.catchup import ReplLog

    def entry(j):
        return ppb.DeleteRequest(collection="c1-s0", ids=[f"x{j}"])

    log = ReplLog(str(tmp_path), retain=16)
    for j in range(2):
        key = log.next_key("c1-s0", 5)
        log.append("c1-s0", key, "Delete", entry(j), j, pending=True)
        assert [e.key for e in log.entries_after("c1-s0", (0, 0), 10)] == [(5, 1)][:j]
        log.commit("c1-s0")
    assert [e.key for e in log.entries_after("c1-s0", (0, 0), 10)] == [(5, 1), (5, 2)]
    log.append("c1-s0", log.next_key("c1-s0", 5), "Delete", entry(2), 2, pending=True)
    assert [e.key for e in log.entries_after("c1-s0", (5, 1), 10)] == [(5, 2)]
    log.drop_last("c1-s0")  # the engine refused (5, 3)
    assert log.position("c1-s0")[0] == (5, 2)
    assert log.next_key("c1-s0", 5) == (5, 4)
    log.close()
    log = ReplLog(str(tmp_path), retain=16)  # reopened: (5, 3) is still never reused
    assert log.next_key("c1-s0", 5) == (5, 4) and log.next_key("c1-s0", 6) == (6, 1)
    log.append("c1-s0", (5, 4), "Delete", entry(3), 2)
    assert [e.key for e in log.entries_after("c1-s0", (5, 2), 10)] == [(5, 4)]
    assert log.entries_after("c1-s0", (5, 3), 10) is None  # the dropped write: a full copy
    log.reset("c1-s0", (5, 4), 3)
    assert log.next_key("c1-s0", 5) == (5, 5)
    log.close()


def test_a_log_retaining_nothing_keeps_the_newest_entry_for_a_refused_write(tmp_path):
    """retain=0 (allowed): the entry of the write under way stays until it is settled, so
    a refused write drops it (it raised IndexError, which hid the engine's error)."""
    from vecdb_client._proto.vecdb.v1 import points_pb2 as ppb
    from vecdb_server.cluster.catchup import ReplLog

    log = ReplLog(str(tmp_path), retain=0)
    for j in range(3):
        key = log.next_key("c1-s0", 2)
        log.append("c1-s0", key, "Delete", ppb.DeleteRequest(collection="c1-s0", ids=["x"]),
                   j, pending=True)
        assert log.position("c1-s0")[0] == key
        if j == 1:
            log.drop_last("c1-s0")  # refused: the key before it is the position again
            assert log.position("c1-s0")[0] == (2, 1)
        else:
            log.commit("c1-s0")
    assert log.next_key("c1-s0", 2) == (2, 4)
    log.close()
