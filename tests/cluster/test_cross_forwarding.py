"""Two real nodes on a real etcd, each the primary of one shard, each sent writes for the
other's shard by concurrent clients: every forwarded write waits on its shard's lock in a
node-to-node worker while the lock's holder replicates to the other node, so when those
workers were as few as the client workers, the two nodes' workers filled with waiters and
every write stalled until its lock wait ran out (UNAVAILABLE after 10 s)."""
from __future__ import annotations

import threading
import time

from cluster_harness import Cluster
from test_cluster import rand
from vecdb.topk import shard_of

WRITERS = 4  # per direction, twice the client workers of each node


def test_two_nodes_forwarding_writes_at_each_other_never_stall(tmp_path):
    cl = Cluster(tmp_path, n=2, extra=("--max-workers", "2"))
    try:
        with cl.client() as c:
            c.create_collection("x", dim=8, shards=2, replication_factor=2, index="flat")
        status = cl.wait_in_sync("x")
        primary = {s["shard"]: s["primary"] for s in status["shards"]}
        assert sorted(primary.values()) == ["n0", "n1"], primary  # one shard each
        ids: dict[int, list[str]] = {0: [], 1: []}
        for j in range(4000):
            ids[shard_of(f"i{j}", 2)].append(f"i{j}")
        acked: list[str] = []
        errors: list[str] = []
        stop = threading.Event()

        def write(shard: int, w: int) -> None:
            other = next(n for n in cl.nodes if n.id != primary[shard])
            with cl.client([other], timeout=30, max_retries=0) as c:
                for k in range(w, len(ids[shard]), WRITERS):
                    if stop.is_set():
                        return
                    began = time.monotonic()
                    try:
                        c.upsert("x", [ids[shard][k]], rand(1, k))
                        acked.append(ids[shard][k])
                    except Exception as exc:  # noqa: BLE001 - what went wrong is the result
                        errors.append(f"after {time.monotonic() - began:.1f} s: {exc}")

        threads = [threading.Thread(target=write, args=(s, w))
                   for s in (0, 1) for w in range(WRITERS)]
        for t in threads:
            t.start()
        time.sleep(3)
        stop.set()
        for t in threads:
            t.join(60)
        assert errors == [], errors[:3]
        assert len(acked) > 2 * WRITERS
        with cl.client() as c:
            assert c.count("x") == len(acked)
            got = c.get("x", acked, with_vectors=False)
        assert sorted(p.id for p in got) == sorted(acked)
    finally:
        cl.close()
