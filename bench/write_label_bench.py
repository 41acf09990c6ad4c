"""How long k-means ``write_label`` blocks writers (a benchmark, not a test).

    python bench/write_label_bench.py                  # 50k x 128, HNSW
    python bench/write_label_bench.py --size 100000 --dim 384

One in-process Database (background maintenance off), one shard, an HNSW index built
over the points. While a labelling runs, a writer thread upserts one point at a time
and records each call's latency; the table shows the labelling's wall time and the
writer's worst and median latency, side by side for

* ``rewrite``: the labels written as ONE update_payload batch over every point, i.e.
  the full point rewrite (re-adding every vector to HNSW) that write_label used before;
* ``payload-only``: ``cluster(write_label=...)`` (its labelling phase: the payload-only
  path, 4096 points per write-lock hold; the job's other phases are timed apart).
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from vecdb import Database, DatabaseOptions  # noqa: E402


def writer_latencies(db, dim: int, stop: threading.Event, out: list[float]) -> None:
    rng, i = np.random.default_rng(9), 0
    while not stop.is_set():
        t0 = time.perf_counter()
        db.upsert("c", [f"w{i % 50}"], rng.standard_normal((1, dim)).astype(np.float32))
        out.append(time.perf_counter() - t0)
        i += 1
        time.sleep(0.002)


def measure(db, dim: int, label) -> tuple[float, list[float]]:
    stop, lat = threading.Event(), []
    t = threading.Thread(target=writer_latencies, args=(db, dim, stop, lat))
    t.start()
    time.sleep(0.2)
    t0 = time.perf_counter()
    label()
    took = time.perf_counter() - t0
    stop.set()
    t.join()
    return took, lat


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=50_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--k", type=int, default=16)
    args = ap.parse_args()
    rng = np.random.default_rng(0)
    x = rng.standard_normal((args.size, args.dim)).astype(np.float32)
    ids = [f"p{i}" for i in range(args.size)]
    with tempfile.TemporaryDirectory() as d, \
            Database.open(d, DatabaseOptions(background=False)) as db:
        db.create_collection("c", args.dim, metric="l2", index="hnsw", shards=1,
                             index_params={"build_threshold": 1000})
        for i in range(0, args.size, 10_000):
            db.upsert("c", ids[i:i + 10_000], x[i:i + 10_000], [{"i": j} for j in range(i, i + 10_000)])
        t0 = time.perf_counter()
        db.maintain()
        print(f"{args.size} x {args.dim}, HNSW built in {time.perf_counter() - t0:.1f}s")
        job = None

        def payload_only():
            nonlocal job
            job = db.cluster("c", args.k, seed=1, iterations=5, write_label="topic", wait=True)
        rows = [("rewrite", *measure(db, args.dim, lambda: db.update_payload(
                    "c", ids=ids, set={"topic_old": 1}))),
                ("payload-only", *measure(db, args.dim, payload_only))]
        print(f"{'path':<14}{'labelling s':>12}{'writer max s':>14}{'writer p50 ms':>15}{'writes':>8}")
        for name, took, lat in rows:
            if name == "payload-only":
                took = job.timings.get("writing", took)
            print(f"{name:<14}{took:>12.2f}{max(lat):>14.3f}{1000 * float(np.median(lat)):>15.2f}"
                  f"{len(lat):>8}")
        print("k-means phases:", ", ".join(f"{k} {v:.2f}s" for k, v in job.timings.items()))


if __name__ == "__main__":
    main()
