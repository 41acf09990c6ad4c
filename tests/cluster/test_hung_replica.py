"""A replica that hangs (SIGSTOP: alive to the kernel, silent, like a cut network), real
etcd and node processes: the primary's writes waiting on it give it up as soon as its
node leaves the cluster (its lease lapses, node_ttl_s), not when their 10 s call timeout
ends; so writes behind the shard's lock are acknowledged within a client's 8 s deadline,
and the replica catches up once it wakes. A hung primary holds a write forwarded to it
only as long as the client's deadline."""
from __future__ import annotations

import signal
import threading

from cluster_harness import Cluster
from test_cluster import rand
from test_rebalance import wait
from vecdb_client import VecdbClientError


def one_shard_of_three(cl: Cluster, name: str) -> tuple:
    """A 1-shard collection on all 3 nodes, in sync: (its primary, another node)."""
    with cl.client() as c:
        c.create_collection(name, dim=8, shards=1, replication_factor=3,
                            write_concern="majority", index="flat")
    primary = cl.node(cl.wait_in_sync(name)["shards"][0]["primary"])
    return primary, next(n for n in cl.nodes if n is not primary)


def test_writes_give_a_hung_replica_up_when_its_lease_lapses(tmp_path):
    cl = Cluster(tmp_path, n=3)
    try:
        primary, hung = one_shard_of_three(cl, "h")
        hung.stop_signal(signal.SIGSTOP)
        acked, errors = [], []

        def write(w: int) -> None:
            with cl.client([primary], timeout=8, max_retries=0) as c:
                for k in range(5):
                    pid = f"w{w}-{k}"
                    try:
                        c.upsert("h", [pid], rand(1, 10 * w + k))
                        acked.append(pid)
                    except Exception as exc:  # noqa: BLE001 - what went wrong is the result
                        errors.append(str(exc))
        threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(120)
        assert errors == [], errors[:3]
        assert "left the cluster (its lease lapsed) before it answered" in primary.log()
        hung.stop_signal(signal.SIGCONT)
        cl.wait_in_sync("h", timeout=60)
        with cl.client() as c:
            wait(lambda: c.count("h") == 20, 30, "every acknowledged point counted")
            assert len(c.get("h", acked)) == 20
    finally:
        cl.close()


def test_a_write_forwarded_to_a_hung_primary_frees_its_worker_with_the_clients_deadline(
        tmp_path):
    """One client worker per node; the primary hangs. A write sent to another node is
    forwarded to it and waits as long as its client does (3 s), not the forward's 30 s
    timeout, so that node's only worker then answers a read at once."""
    cl = Cluster(tmp_path, n=3, extra=("--max-workers", "1"))
    try:
        hung, via = one_shard_of_three(cl, "hp")
        with cl.client([via], timeout=10) as c:
            c.upsert("hp", ["a"], rand(1, 1))  # (via's channel to the primary is up)
        hung.stop_signal(signal.SIGSTOP)
        with cl.client([via], timeout=3, max_retries=0) as c:
            try:
                c.upsert("hp", ["b"], rand(1, 2))
            except VecdbClientError:
                pass  # (its fate is unknown to the client: not asserted)
        with cl.client([via], timeout=6, max_retries=0) as c:
            assert c.get("hp", ["a"])[0].id == "a"
        hung.stop_signal(signal.SIGCONT)
    finally:
        cl.close()
