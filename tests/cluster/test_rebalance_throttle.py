"""The bandwidth limit of replica moves (rebalance_max_bytes_per_s) and the progress of
a move's copy in `cluster status`: the pacing arithmetic on a stepped clock, then a real
move between node processes (real etcd) whose copy must take at least bytes / limit
(and whose target is not ready, readiness.IN_SYNC, until it is in sync)."""
from __future__ import annotations

import json
import re

from cluster_harness import Cluster
from test_cluster import rand
from test_node_readiness import NOT_SERVING, SERVING, health
from test_rebalance import settle, vecdbctl, wait
from vecdb_server.cluster.copies import Throttle
from vecdb_server.cluster.readiness import IN_SYNC

LIMIT = 100_000  # bytes/s
DIM = 64
POINTS = 2500  # per shard: ~0.7 MB, so its copy takes >= ~7 s at LIMIT


class SteppedClock:
    """Time that moves only when the throttle sleeps (plus ``step`` per reading)."""

    def __init__(self, step: float = 0.0):
        self.t, self.step = 100.0, step

    def __call__(self) -> float:
        self.t += self.step
        return self.t

    def sleep(self, s: float) -> None:
        self.t += s


def test_throttle_paces_to_the_rate():
    clock = SteppedClock()
    th = Throttle(1000, sleep=clock.sleep, clock=clock)
    start = clock.t
    for _ in range(10):
        th.take(500, clock())
    # 5000 bytes at 1000 B/s: done no earlier than 5 s after the start
    assert clock.t - start >= 5.0 - 1e-9
    assert th.sleeps == 10 and abs(th.slept_s - 5.0) < 1e-9
    # sends slower than the rate never wait; the unlimited throttle never does
    slow = SteppedClock(step=2.0)
    th = Throttle(1000, sleep=slow.sleep, clock=slow)
    for _ in range(5):
        sent_from = slow()  # the send takes 2 s (the next reading)
        th.take(1000, sent_from)
    assert th.sleeps == 0
    assert Throttle(0).take(10**9, 0.0) == 0.0


def test_a_move_copy_respects_the_bandwidth_limit_and_shows_progress(tmp_path):
    cl = Cluster(tmp_path, n=1, extra=("--rebalance-max-bytes-per-s", str(LIMIT)))
    try:
        with cl.client() as c:
            c.create_collection("big", dim=DIM, shards=2, replication_factor=1, index="flat")
            for s in range(0, 2 * POINTS, 1000):
                c.upsert("big", [f"p{i}" for i in range(s, s + 1000)], rand(1000, s)[:, :1]
                         .repeat(DIM, axis=1) + rand(1000, s + 1)[:, :1])
        cl.add_node("n1", "--rebalance-max-bytes-per-s", str(LIMIT))
        # mid-copy, cluster status (from either node) shows what the primary has sent
        seen = []

        def copying():
            with cl.client(timeout=5) as c:
                for m in c.cluster_status()["moves"]:
                    if m["copy"] == "full" and 0 < m["copied_records"] < m["total_records"]:
                        seen.append(m)
                        return True
            return False
        wait(copying, 30, "a move's copy in progress")
        # the last page's pause (>= 1 s at LIMIT) is still ahead: the target is not ready
        # (readiness is evaluated every 0.5 s: it may still say SERVING from before the
        # move made n1 a replica; it failed so once in CI)
        wait(lambda: health(cl.node("n1").target, IN_SYNC) == NOT_SERVING, 5,
             "n1 not ready while copying")
        with cl.client(timeout=5) as c:  # (seen while the copy still ran)
            assert any(m["copy"] == "full" for m in c.cluster_status()["moves"])
        m = seen[-1]
        assert m["total_records"] == POINTS and m["copied_bytes"] > 0 and m["target"] == "n1"
        table = vecdbctl(cl, "cluster", "status")
        assert re.search(rf"\d+/{POINTS} points, [\d.]+ MiB \(full copy\)", table), table
        plan = json.loads(vecdbctl(cl, "cluster", "rebalance", "--dry-run", "-o", "json"))
        assert [p["copied_bytes"] > 0 for p in plan["in_progress"]] == [True]
        settle(cl, {"big": 1}, {"n0", "n1"}, timeout=120)
        wait(lambda: health(cl.node("n1").target, IN_SYNC) == SERVING, 10, "n1 ready")
        line = wait(lambda: re.search(
            r"move copy of big/\d to n1 \(full\): (\d+) bytes, (\d+) records in ([\d.]+) s",
            cl.node("n0").log()), 10, "the copy's log line")
        nbytes, records, took = int(line[1]), int(line[2]), float(line[3])
        assert records == POINTS and nbytes > 5 * LIMIT  # long enough for the limit to bind
        assert nbytes / took <= LIMIT * 1.02, (nbytes, took)  # paced: never faster
        with cl.client() as c:
            assert c.count("big") == 2 * POINTS
    finally:
        cl.close()
