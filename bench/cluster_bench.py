#!/usr/bin/env python3
"""Cluster overhead and scaling: the single-node server vs clusters of 1, 2 and 4 nodes
(plus replicated variants) on this machine, same data, same clients. Not a test.

For each configuration: ingest throughput (points/s) and the latency of one
acknowledged batch (p50/p99), then single-query search QPS and p50/p99 with --clients
client threads spread over the nodes (each with its own Client). Ratios are against the
single-node server measured in the same run. On a machine with few cores only the
overhead is meaningful (every node shares the same cores).

    python bench/cluster_bench.py                 # prints a table
    python bench/cluster_bench.py --n 20000 --seconds 3 --results bench/RESULTS.md
    python bench/cluster_bench.py --only 1 --rounds 5   # the 1-node overhead, medians
"""
from __future__ import annotations

import argparse
import datetime
import os
import platform
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
for sub in ("", "server", "client", "tests/cluster", "tests/integration"):
    if str(ROOT / sub) not in sys.path:
        sys.path.insert(0, str(ROOT / sub))

from cluster_harness import Etcd, Node  # noqa: E402
from harness import ServerProcess  # noqa: E402
from vecdb_client import Client  # noqa: E402

CONFIGS = [  # (label, nodes, replication_factor, write_concern); nodes 0 = single server
    ("single-node server", 0, 1, "majority"),
    ("cluster, 1 node", 1, 1, "majority"),
    ("cluster, 2 nodes", 2, 1, "majority"),
    ("cluster, 4 nodes", 4, 1, "majority"),
    ("cluster, 2 nodes, R=2 all", 2, 2, "all"),
    ("cluster, 4 nodes, R=3 majority", 4, 3, "majority"),
]


def pct(xs: list[float], p: float) -> float:
    return float(np.percentile(np.array(xs) * 1000, p)) if xs else float("nan")


def measure(targets: list[str], a: argparse.Namespace, rf: int, wc: str, cluster: bool) -> dict:
    rng = np.random.default_rng(1)
    vecs = rng.standard_normal((a.n, a.dim)).astype(np.float32)
    kw = {"replication_factor": rf, "write_concern": wc} if cluster else {}
    with Client(targets, timeout=120) as c:
        c.create_collection("bench", dim=a.dim, shards=a.shards, index="flat", **kw)
        lat, t0 = [], time.perf_counter()
        for s in range(0, a.n, a.batch):
            t = time.perf_counter()
            c.upsert("bench", [f"p{i}" for i in range(s, min(s + a.batch, a.n))],
                     vecs[s:s + a.batch], payloads=[{"i": i} for i in range(s, min(s + a.batch, a.n))])
            lat.append(time.perf_counter() - t)
        ingest = a.n / (time.perf_counter() - t0)
        assert c.count("bench") == a.n
    queries = rng.standard_normal((1024, a.dim)).astype(np.float32)
    per: list[list[float]] = [[] for _ in range(a.clients)]
    stop, start = threading.Event(), threading.Barrier(a.clients + 1)

    def worker(t: int) -> None:
        with Client(targets[t % len(targets)], timeout=60) as cl:
            cl.search("bench", vector=queries[t], k=10)
            start.wait()
            j = t
            while not stop.is_set():
                s = time.perf_counter()
                cl.search("bench", vector=queries[j % 1024], k=10)
                per[t].append(time.perf_counter() - s)
                j += a.clients
    threads = [threading.Thread(target=worker, args=(t,)) for t in range(a.clients)]
    for th in threads:
        th.start()
    start.wait()
    t0 = time.perf_counter()
    time.sleep(a.seconds)
    stop.set()
    for th in threads:
        th.join()
    flat = [x for p in per for x in p]
    return {"ingest": ingest, "batch_p50": pct(lat, 50), "batch_p99": pct(lat, 99),
            "qps": len(flat) / (time.perf_counter() - t0), "p50": pct(flat, 50),
            "p99": pct(flat, 99)}


def run_config(label: str, nodes: int, rf: int, wc: str, a: argparse.Namespace,
               work: Path) -> dict:
    if nodes == 0:
        srv = ServerProcess(work / "single")
        try:
            return measure([srv.target], a, rf, wc, cluster=False)
        finally:
            srv.close()
    etcd = Etcd(work)
    members: list[Node] = []
    try:
        members = [Node(work, f"n{i}", etcd.url) for i in range(nodes)]
        time.sleep(1.0)
        return measure([n.target for n in members], a, rf, wc, cluster=True)
    finally:
        for m in members:
            m.close()
        etcd.close()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--dim", type=int, default=64)
    ap.add_argument("--shards", type=int, default=4)
    ap.add_argument("--batch", type=int, default=500)
    ap.add_argument("--clients", type=int, default=8)
    ap.add_argument("--seconds", type=float, default=4.0)
    ap.add_argument("--results", type=Path, help="append the table to this markdown file")
    ap.add_argument("--only", default="", help="comma-separated row numbers of the table to run "
                    "(0 = the single-node server, always run: ratios need it), e.g. 1,4")
    ap.add_argument("--rounds", type=int, default=1, help="measure the rows this many times "
                    "(fresh processes each time) and report medians; a ratio is the median of "
                    "each round's ratio to the single server measured just before it (on a "
                    "shared machine the load drifts between rows)")
    a = ap.parse_args(argv)
    picked = {0, *(int(x) for x in a.only.split(",") if x.strip())} if a.only else None
    rows: dict[str, list[dict]] = {}
    for _ in range(a.rounds):
        for row, (label, nodes, rf, wc) in enumerate(CONFIGS):
            if picked is not None and row not in picked:
                continue
            work = Path(tempfile.mkdtemp(prefix="cluster-bench-"))
            try:
                print(f"  {label} ...", flush=True)
                rows.setdefault(label, []).append(run_config(label, nodes, rf, wc, a, work))
            finally:
                shutil.rmtree(work, ignore_errors=True)
    base = rows[CONFIGS[0][0]]
    head = (f"| configuration | ingest pts/s | x single | batch p50 ms | batch p99 ms | "
            f"search q/s | x single | p50 ms | p99 ms |")
    lines = [head, "|" + "---|" * 9]
    for label, runs in rows.items():
        r = {k: float(np.median([x[k] for x in runs])) for k in runs[0]}
        x_ingest, x_qps = (float(np.median([x[k] / b[k] for x, b in zip(runs, base)]))
                           for k in ("ingest", "qps"))
        lines.append(f"| {label} | {r['ingest']:,.0f} | {x_ingest:.2f} | "
                     f"{r['batch_p50']:.1f} | {r['batch_p99']:.1f} | {r['qps']:,.0f} | "
                     f"{x_qps:.2f} | {r['p50']:.2f} | {r['p99']:.2f} |")
    rounds = f"medians of {a.rounds} rounds; " if a.rounds > 1 else ""
    note = (f"{a.n:,} x {a.dim} points, {a.shards} shards, flat, batches of {a.batch}; "
            f"{a.clients} search clients spread over the nodes, {a.seconds:g} s; {rounds}"
            f"{os.cpu_count()} cores ({platform.processor() or platform.machine()}), "
            f"{datetime.date.today()}; every process on this one machine.")
    table = "\n".join(lines)
    print("\n" + table + "\n\n" + note)
    if a.results:
        with open(a.results, "a") as f:
            f.write(f"\n## Cluster overhead (bench/cluster_bench.py)\n\n{note}\n\n{table}\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
