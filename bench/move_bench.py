#!/usr/bin/env python3
"""Moving a shard: the time and bytes to move one shard of --n points x --dim from a node
to a node that joins (R=1, 2 shards: the rebalancer moves one), and search and write
latency through the source node while idle and during the move (a writer upserts one
point into each shard every --write-every-s: the longest write is the longest stall of
the moved shard's writes); for each --limits value of rebalance_max_bytes_per_s
(0 = none), side by side in one run. Real etcd and vecdb-server
processes (tests/cluster/cluster_harness.py). Not a test.

    python bench/move_bench.py --n 100000 --dim 384 --limits 0 50000000
"""
from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
for sub in ("tests/cluster", "client", "server", ""):
    sys.path.insert(0, str(ROOT / sub))

from cluster_harness import Cluster  # noqa: E402

COPY = re.compile(r"move copy of mv/\d to n1 \(full\): (\d+) bytes, (\d+) records in "
                  r"([\d.]+) s")
HELD = re.compile(r"replica n1 of shard mv/\d is in sync .*writes held ([\d.]+) ms")
REPLAYED = re.compile(r"replica n1 of shard mv/\d is in sync .*catch-up of (\d+) entries after "
                      r".*, (\d+) of them under the lock")


class Loop:
    """One call through node n0 in a loop, every ``every`` s at most: (time, seconds) of
    each; a call that fails (after the client's retries) counts as an error."""

    def __init__(self, cl: Cluster, call, every: float = 0.0):
        self.samples: list[tuple[float, float]] = []
        self.errors: list[float] = []
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, args=(cl, call, every), daemon=True)
        self._t.start()

    def _run(self, cl: Cluster, call, every: float) -> None:
        with cl.client([cl.node("n0")], timeout=60) as c:
            k = 0
            while not self._stop.wait(every):
                t0 = time.monotonic()
                try:
                    call(c, k)
                    self.samples.append((t0, time.monotonic() - t0))
                except Exception:  # noqa: BLE001 - counted
                    self.errors.append(t0)
                k += 1

    def between(self, a: float, b: float) -> dict:
        lat = np.array([s for t, s in self.samples if a <= t < b]) * 1000
        if not len(lat):
            return {"calls": 0}
        return {"calls": len(lat), "errors": sum(a <= t < b for t in self.errors),
                "p50_ms": round(float(np.percentile(lat, 50)), 1),
                "p99_ms": round(float(np.percentile(lat, 99)), 1),
                "max_ms": round(float(lat.max()), 1)}

    def stop(self) -> None:
        self._stop.set()
        self._t.join(120)


def _one_per_shard(n: int = 100_000) -> list[tuple[str, str]]:
    """n pairs of fresh ids: the first of each in shard 0, the second in shard 1."""
    from vecdb.topk import shard_of
    by = {0: [], 1: []}
    for j in range(4 * n):
        by[shard_of(f"w{j}", 2)].append(f"w{j}")
    return list(zip(by[0], by[1]))[:n]


def run(n: int, dim: int, limit: int, idle_s: float, write_every_s: float) -> dict:
    work = Path(tempfile.mkdtemp(prefix="move-bench-"))
    extra = ("--rebalance-max-bytes-per-s", str(limit))
    cl = Cluster(work, n=1, extra=extra)
    try:
        rng = np.random.default_rng(1)
        with cl.client(timeout=300) as c:
            c.create_collection("mv", dim=dim, shards=2, replication_factor=1, index="flat")
            for s in range(0, 2 * n, 5000):
                m = min(5000, 2 * n - s)
                c.upsert("mv", [f"p{s + j}" for j in range(m)],
                         rng.standard_normal((m, dim)).astype(np.float32))
        rng = np.random.default_rng(7)
        searcher = Loop(cl, lambda c, k: c.search(
            "mv", rng.standard_normal(dim).astype(np.float32), k=10))
        pairs, wrng = _one_per_shard(), np.random.default_rng(8)
        writer = Loop(cl, lambda c, k: c.upsert(
            "mv", list(pairs[k]), wrng.standard_normal((2, dim)).astype(
                np.float32), payloads=[{"k": k}] * 2), write_every_s)
        time.sleep(idle_s)
        start = time.monotonic()
        cl.add_node("n1", *extra)
        while True:
            with cl.client(timeout=30) as c:
                st = c.cluster_status()
            on_n1 = [s for s in st["shards"] if s["replicas"][0]["node"] == "n1"]
            if on_n1 and not st["moves"]:
                break
            time.sleep(0.2)
        done = time.monotonic()
        time.sleep(1)
        searcher.stop()
        writer.stop()
        logs = cl.node("n0").log()
        copy, held = COPY.search(logs), HELD.search(logs)
        replayed = REPLAYED.search(logs)  # (none before the copy replayed the log)
        moved = on_n1[0]["replicas"][0]["points"]
        return {"limit_bytes_per_s": limit, "points_moved": moved,
                "move_s": round(done - start, 2),
                "copy_bytes": int(copy[1]) if copy else None,
                "copy_s": float(copy[3]) if copy else None,
                "bytes_per_point": round(int(copy[1]) / moved, 1) if copy else None,
                "writes_held_ms": float(held[1]) if held else None,
                "log_entries_replayed": [int(replayed[1]), int(replayed[2])] if replayed
                else None,
                "search_idle": searcher.between(start - idle_s, start),
                "search_during_move": searcher.between(start, done),
                "write_idle": writer.between(start - idle_s, start),
                "write_during_move": writer.between(start, done)}
    finally:
        cl.close()
        shutil.rmtree(work, ignore_errors=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000, help="points per shard")
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--limits", type=int, nargs="+", default=[0, 50_000_000])
    ap.add_argument("--idle-s", type=float, default=5.0)
    ap.add_argument("--write-every-s", type=float, default=0.05)
    ns = ap.parse_args()
    for limit in ns.limits:
        print(json.dumps({"n": ns.n, "dim": ns.dim,
                          **run(ns.n, ns.dim, limit, ns.idle_s, ns.write_every_s)}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
