"""A shard move copies without holding the shard's writes (router.Router._full_copy):
with real etcd and node processes, a move's copy slowed by rebalance_max_bytes_per_s
(so it is deterministically in progress for seconds, not a timing assertion) keeps
acknowledging writes to the shard it copies, and the new replica ends with every write
made during the copy in its final state: overwrites, deletes by id and by filter,
payload updates by id and by filter (a filter is logged as the ids it selected: replayed
as the filter over the copy, which already holds later writes, it would select others),
beside continuous ingest with nothing acknowledged lost."""
from __future__ import annotations

import threading

import numpy as np

from cluster_harness import Cluster
from test_cluster import check_acked
from test_rebalance import settle, wait
from vecdb.topk import shard_of
from vecdb_client import VecdbClientError

LIMIT = 100_000  # bytes/s: a page of 2,000 points (~0.6 MB) is followed by a ~6 s pause
DIM = 64
POINTS = 2500  # per shard (two pages: the second is read after the pause)


def rand(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)


class PacedIngest(threading.Thread):
    """Fresh ids, 5 every 50 ms (below LIMIT, so the copy's paced catch-up gains on
    them), through the cluster; every acknowledged one recorded as check_acked wants."""

    def __init__(self, cl: Cluster):
        super().__init__(daemon=True)
        self.cl, self.acked, self.halt = cl, {}, threading.Event()
        self.start()

    def run(self) -> None:
        with self.cl.client(timeout=10, max_retries=2) as c:
            for i in range(0, 10**6, 5):
                if self.halt.wait(0.05):
                    return
                ids, v = [f"w{i + j}" for j in range(5)], rand(5, 1000 + i)
                try:
                    c.upsert("mv", ids, v, payloads=[{"n": i + j} for j in range(5)])
                except VecdbClientError:
                    continue  # not acknowledged: not checked
                self.acked.update(zip(ids, v))

    def stop(self) -> None:
        self.halt.set()
        self.join(30)
        assert not self.is_alive()


def test_writes_go_on_during_a_move_copy_and_end_up_final_on_the_new_replica(tmp_path):
    cl = Cluster(tmp_path, n=1, extra=("--rebalance-max-bytes-per-s", str(LIMIT)))
    try:
        ids = [f"p{i:05d}" for i in range(2 * POINTS)]
        vecs = rand(len(ids), 5)
        model = {x: (v, {"g": i % 4}) for i, (x, v) in enumerate(zip(ids, vecs))}
        with cl.client() as c:
            c.create_collection("mv", dim=DIM, shards=2, replication_factor=1, index="flat")
            for s in range(0, len(ids), 1000):
                c.upsert("mv", ids[s:s + 1000], vecs[s:s + 1000],
                         payloads=[model[x][1] for x in ids[s:s + 1000]])
        ingest = PacedIngest(cl)
        cl.add_node("n1", "--rebalance-max-bytes-per-s", str(LIMIT))

        def copying():
            with cl.client(timeout=5) as c:
                return next((m for m in c.cluster_status()["moves"] if m["copy"] == "full"
                             and 0 < m["copied_records"] < m["total_records"]), None)
        m = wait(copying, 60, "a move's copy in progress")
        moved = [x for x in ids if shard_of(x, 2) == m["shard"]]
        first, second = moved[:2000], moved[2000:]  # the copy's pages (id order)
        with cl.client() as c:
            # overwrites and deletes by id on both pages, fresh ids
            new = rand(40, 7)
            over = first[:10] + second[:10]
            c.upsert("mv", over, new[:20], payloads=[{"g": 0, "v": 2}] * 20)
            model.update((x, (v, {"g": 0, "v": 2})) for x, v in zip(over, new[:20]))
            fresh = [f"q{i}" for i in range(20)]
            c.upsert("mv", fresh, new[20:], payloads=[{"g": 1}] * 20)
            model.update((x, (v, {"g": 1})) for x, v in zip(fresh, new[20:]))
            gone = first[10:15] + second[10:15]
            c.delete("mv", gone)
            # by filter: g == 1 goes (every shard); then points of g == 2 on the page
            # still to copy get g = 1 (a replay of the filter would delete them too)
            c.delete("mv", filter={"key": "g", "match": 1})
            later = [x for x in second[15:] if model[x][1]["g"] == 2][:20]
            c.update_payload("mv", later, set={"g": 1})
            c.update_payload("mv", filter={"key": "g", "match": 3}, set={"h": "x"})
            # every write above was acknowledged while the copy was still in progress
            assert copying(), "the copy ended before the writes were acknowledged"
        for x in set(gone) | {x for x, (_, p) in model.items() if p["g"] == 1}:
            model.pop(x)
        for x in later:
            model[x] = (model[x][0], {"g": 1})
        for x, (v, p) in model.items():
            if p["g"] == 3:
                model[x] = (v, {**p, "h": "x"})
        status = settle(cl, {"mv": 1}, {"n0", "n1"}, timeout=120)
        ingest.stop()
        assert [s["replicas"][0]["node"] for s in status["shards"]
                if s["shard"] == m["shard"]] == ["n1"]
        check_acked(cl, "mv", ingest.acked)
        with cl.client() as c:
            got = {p.id: p for p in c.get("mv", ids + fresh, with_vectors=True)}
            assert c.count("mv") == len(model) + len(ingest.acked)
        assert sorted(got) == sorted(model)
        for x, (v, p) in model.items():
            np.testing.assert_array_equal(got[x].vector, v)
            assert got[x].payload == p, x
    finally:
        cl.close()
