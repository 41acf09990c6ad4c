"""A delete or payload update by filter is logged and replicated as the ids it selects
(router.Router._by_ids): many ids go as several writes, each within what a replica's
server takes (max_batch_points ids, max_message_bytes), so the replicas keep up and the
shard keeps taking writes. Small limits make a few hundred points enough."""
from __future__ import annotations

import numpy as np
from cluster_harness import Cluster

BATCH = 300  # max_batch_points of every node
MESSAGE = 120_000  # max_message_bytes of every node


def _points(c, prefix: str, n: int, group: int, id_len: int = 0) -> list[str]:
    ids = [f"{prefix}{j:05d}".ljust(id_len, "x") for j in range(n)]
    rng = np.random.default_rng(group)
    for s in range(0, n, 100):
        part = ids[s:s + 100]
        c.upsert("split", part, rng.standard_normal((len(part), 4)).astype(np.float32),
                 payloads=[{"g": group}] * len(part))
    return ids


def test_a_filter_selecting_more_than_a_replica_takes_is_replicated_in_parts(tmp_path):
    cl = Cluster(tmp_path, n=2, extra=("--max-batch-points", str(BATCH),
                                       "--max-message-bytes", str(MESSAGE),
                                       "--rebalance-max-concurrent-moves", "0"))
    try:
        with cl.client() as c:
            c.create_collection("split", dim=4, shards=1, replication_factor=2)
            _points(c, "a", 400, 1)  # 400 ids > max_batch_points
            long_ids = _points(c, "b", 250, 2, id_len=500)  # 250 x 500 bytes > MESSAGE
            _points(c, "c", 50, 3)
            cl.wait_in_sync("split", 30)
            assert c.delete("split", filter={"must": [{"key": "g", "match": 1}]}).count == 400
            assert c.update_payload("split", filter={"must": [{"key": "g", "match": 2}]},
                                    set={"seen": True}).count == 250
            c.upsert("split", ["later"], np.ones((1, 4), np.float32))  # still takes writes
            status = cl.wait_in_sync("split", 20)  # no replica left the in-sync set for good
            assert [r["points"] for r in status["shards"][0]["replicas"]] == [301, 301]
            assert c.count("split") == 301
            for node in cl.nodes:  # each copy holds the update (read from that node alone)
                with cl.client(nodes=[node]) as one:
                    got = one.get("split", long_ids[::50])
                    assert [p.payload for p in got] == [{"g": 2, "seen": True}] * 5
        for node in cl.nodes:
            assert "RESOURCE_EXHAUSTED" not in node.log()
            assert "missed a write" not in node.log()
    finally:
        cl.close()


def test_a_full_copy_is_not_held_to_the_client_batch_limit(tmp_path):
    """A full copy's pages (2,000 points) and replicated writes are node-to-node calls:
    a replica's guard does not refuse them for max_batch_points (clients are held to it
    where they come in)."""
    cl = Cluster(tmp_path, n=2, extra=("--max-batch-points", "100", "--wal-retain", "2",
                                       "--rebalance-max-concurrent-moves", "0"))
    try:
        with cl.client() as c:
            c.create_collection("split", dim=4, shards=1, replication_factor=2,
                                write_concern="one")
            _points(c, "a", 300, 1)
            cl.wait_in_sync("split", 30)
            primary = c.cluster_status()["shards"][0]["primary"]
            other = next(n for n in cl.nodes if n.id != primary)
            other.wipe()  # its copy is gone, the log holds 2 writes: a full copy of 300
            # points in one page
            other.start()
            status = cl.wait_in_sync("split", 30)
            assert [r["points"] for r in status["shards"][0]["replicas"]] == [300, 300]
        assert "full copy" in cl.node(primary).log()
    finally:
        cl.close()
