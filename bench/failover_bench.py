#!/usr/bin/env python3
"""Write downtime of a failover: 3 nodes (R=3, majority), a preloaded collection and a
writer acknowledging small batches; the primary of shard 0 is SIGKILLed and we measure
the time from the kill to the next acknowledged write (node_ttl_s of failure detection,
the election, then the new primary must bring one more replica in sync: majority).
Also what the new primary logged about that catch-up (incremental or full, the time the
shard's writes were held). Not a test.

--trees runs the same measurement with the code of other checkouts (e.g. a worktree of
the commit before incremental catch-up), side by side in one run:

    git worktree add /tmp/before <commit>
    python bench/failover_bench.py --trees /tmp/before . --n 50000
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "bench"))
from bench_trees import run_in_tree  # noqa: E402

RUN = r"""
import sys, time, threading, re, json, shutil, tempfile
from pathlib import Path
import numpy as np
tree, n, dim = Path(sys.argv[1]).resolve(), int(sys.argv[2]), int(sys.argv[3])
for sub in ("tests/cluster", "client", "server", ""):
    sys.path.insert(0, str(tree / sub))
from cluster_harness import Cluster
from vecdb_client import Client
from vecdb_client.errors import VecdbClientError
work = Path(tempfile.mkdtemp(prefix="failover-bench-"))
cl = Cluster(work)
try:
    rng = np.random.default_rng(1)
    with cl.client(timeout=120) as c:
        c.create_collection("fb", dim=dim, shards=2, replication_factor=3,
                            write_concern="majority", index="flat")
        for s in range(0, n, 2000):
            m = min(2000, n - s)
            c.upsert("fb", [f"p{s + j}" for j in range(m)],
                     rng.standard_normal((m, dim)).astype(np.float32))
    cl.wait_in_sync("fb", 120)
    with cl.client() as c:
        primary = next(s["primary"] for s in c.cluster_status()["shards"]
                       if s["collection"] == "fb" and s["shard"] == 0)
    acks, stop = [], threading.Event()
    def writer():
        i = 0
        with cl.client(timeout=30, max_retries=20) as c:
            while not stop.is_set():
                try:
                    c.upsert("fb", [f"w{i}", f"w{i}x"], rng.standard_normal((2, dim)).astype(np.float32))
                    acks.append(time.monotonic())
                except VecdbClientError:
                    pass
                i += 1
                time.sleep(0.01)
    t = threading.Thread(target=writer, daemon=True)
    t.start()
    time.sleep(2)
    killed = time.monotonic()
    cl.node(primary).kill()
    while not [a for a in acks if a > killed + 0.05] and time.monotonic() < killed + 120:
        time.sleep(0.01)
    first = min([a for a in acks if a > killed + 0.05], default=float("nan"))
    time.sleep(1)
    stop.set()
    t.join(60)
    logs = "".join(x.log() for x in cl.nodes if x.id != primary)
    held = re.findall(r"shard fb/0 is in sync \(term [2-9]\d*\)(?:: (\w+) catch-up of (.*?) "
                      r"in [\d.]+ ms, writes held ([\d.]+) ms)?", logs)
    full = re.search(r"resyncing shard fb/0 to \S+", logs)
    print(json.dumps({"downtime_s": first - killed, "catchups": held,
                      "full_copy_logged": bool(full)}))
finally:
    cl.close()
    shutil.rmtree(work, ignore_errors=True)
"""


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trees", nargs="+", default=[str(ROOT)])
    ap.add_argument("--n", type=int, default=50_000, help="points preloaded")
    ap.add_argument("--dim", type=int, default=64)
    a = ap.parse_args(argv)
    print(f"failover write downtime, {a.n} points x {a.dim} dims, 2 shards, R=3 majority, "
          f"node_ttl_s 2, {os.cpu_count()} cores")
    for tree in a.trees:
        result, failed = run_in_tree(RUN, tree, a.n, a.dim)
        print(f"{tree}: {json.dumps(result) if result else failed}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
