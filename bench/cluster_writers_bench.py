#!/usr/bin/env python3
"""Many concurrent writers through a cluster: acknowledged batches per second, latency
and refusals, for source trees side by side. Not a test.

A real etcd and --nodes real node processes on loopback; one collection of --shards
shards (R=2, flat). --writers threads, each with its own client on one node (round
robin), upsert batches of --batch fresh ids (spanning shards, so most parts are
forwarded to other nodes' primaries, which replicate back) for --seconds. Each
(tree, writers) cell runs in its own process with that tree's code; the cells of one
round run one after another, the rounds interleaved, so trees compare within a round.

    python bench/cluster_writers_bench.py
    python bench/cluster_writers_bench.py --trees /tmp/before . --writers 8 48 --rounds 2
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from bench_trees import run_in_tree  # noqa: E402

CHILD = r"""
import json, shutil, sys, tempfile, threading, time
from pathlib import Path
tree = Path(sys.argv[1]).resolve()
nodes, writers, batch, seconds, shards = map(float, sys.argv[2:7])
for sub in ("tests/cluster", "client", "server", ""):
    sys.path.insert(0, str(tree / sub))
import numpy as np
from cluster_harness import Cluster
work = Path(tempfile.mkdtemp(prefix="writers-bench-"))
cl = Cluster(work, n=int(nodes))
try:
    with cl.client() as c:
        c.create_collection("w", dim=16, shards=int(shards), replication_factor=2, index="flat")
    cl.wait_in_sync("w")
    lat, refused, stop = [], [], threading.Event()
    def write(t):
        rng = np.random.default_rng(t)
        with cl.client([cl.nodes[t % len(cl.nodes)]], timeout=30, max_retries=0) as c:
            k = 0
            while not stop.is_set():
                ids = [f"t{t}-{k}-{j}" for j in range(int(batch))]
                began = time.monotonic()
                try:
                    c.upsert("w", ids, rng.standard_normal((len(ids), 16)).astype(np.float32))
                    lat.append(time.monotonic() - began)
                except Exception as exc:
                    refused.append(type(exc).__name__)
                k += 1
    threads = [threading.Thread(target=write, args=(t,)) for t in range(int(writers))]
    began = time.monotonic()
    for t in threads:
        t.start()
    time.sleep(seconds)
    stop.set()
    for t in threads:
        t.join()
    took = time.monotonic() - began
    lat.sort()
    q = lambda p: round(lat[min(len(lat) - 1, int(p * len(lat)))] * 1000, 1) if lat else None
    print(json.dumps({"acked": len(lat), "acked_per_s": round(len(lat) / took, 1),
                      "p50_ms": q(0.5), "p99_ms": q(0.99), "max_ms": q(1.0),
                      "refused": len(refused), "kinds": sorted(set(refused))}))
finally:
    cl.close()
    shutil.rmtree(work, ignore_errors=True)
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trees", nargs="+", default=[str(ROOT)])
    ap.add_argument("--writers", type=int, nargs="+", default=[8, 48])
    ap.add_argument("--nodes", type=int, default=3)
    ap.add_argument("--shards", type=int, default=3)
    ap.add_argument("--batch", type=int, default=10)
    ap.add_argument("--seconds", type=float, default=15.0)
    ap.add_argument("--rounds", type=int, default=1)
    a = ap.parse_args(argv)
    print(f"{a.nodes} nodes, {a.shards} shards R=2, batches of {a.batch} x 16-d, "
          f"{a.seconds:g} s per cell, {os.cpu_count()} cores")
    print("| round | tree | writers | acked/s | p50 ms | p99 ms | max ms | refused |")
    print("|---|---|---|---|---|---|---|---|")
    for rnd in range(a.rounds):
        for writers in a.writers:
            for tree in a.trees:
                r, failed = run_in_tree(CHILD, tree, a.nodes, writers, a.batch, a.seconds,
                                        a.shards)
                if r is None:
                    print(f"| {rnd} | {tree} | {writers} | failed: {failed[-500:]!r} |")
                    continue
                print(f"| {rnd} | {tree} | {writers} | {r['acked_per_s']} | {r['p50_ms']} | "
                      f"{r['p99_ms']} | {r['max_ms']} | {r['refused']} "
                      f"{' '.join(r['kinds'])} |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
