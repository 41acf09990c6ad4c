"""Filtered search cost relative to unfiltered search, same data, one run (not a test).

    python bench/filter_bench.py [--n 100000] [--dim 128] [--queries 200] [--index ivf_flat]

Every point has payload {"sel": r, "sel_u": r} with r a random permutation of
0..n-1, so the filter ``sel < s*n`` selects exactly a fraction s. "sel" has an
integer payload index, "sel_u" the same values without one. For each
selectivity (0.1%, 1%, 10%, 50%) the table shows the filtered batch-search QPS
as a ratio of the unfiltered QPS measured in the same run, with and without
the payload index, the plan the engine chose, and the number of results
(always min(k, matches)).
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from engine_bench import best_of, clustered  # noqa: E402

from vecdb import Database, DatabaseOptions, __version__  # noqa: E402

SELECTIVITY = (0.001, 0.01, 0.1, 0.5)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--index", default="ivf_flat", choices=["flat", "ivf_flat", "hnsw"])
    ap.add_argument("--shards", type=int, default=1)
    a = ap.parse_args()
    X = clustered(a.n, a.dim)
    Q = clustered(a.queries, a.dim, seed=1)
    rank = np.random.default_rng(2).permutation(a.n)
    with tempfile.TemporaryDirectory() as tmp:
        db = Database.open(os.path.join(tmp, "data"), DatabaseOptions(durability="async", background=False))
        params = None if a.index == "flat" else {"build_threshold": 1000}
        db.create_collection("b", a.dim, metric="l2", index=a.index, index_params=params, shards=a.shards,
                             payload_indexes={"sel": "integer"})
        ids = [f"p{i}" for i in range(a.n)]
        for lo in range(0, a.n, 10_000):
            db.upsert("b", ids[lo:lo + 10_000], X[lo:lo + 10_000],
                      [{"sel": int(r), "sel_u": int(r)} for r in rank[lo:lo + 10_000]])
        db.maintain()

        def qps(filt):
            run = lambda: db.search("b", Q, k=a.k, filter=filt, with_payload=False)  # noqa: E731
            res = run()
            return a.queries / best_of(run, 3), res

        base, _ = qps(None)
        print(f"# filter_bench  n={a.n} dim={a.dim} queries={a.queries} k={a.k} index={a.index} "
              f"shards={a.shards}  {platform.machine()} {os.cpu_count()} cpus  vecdb {__version__}  "
              f"{time.strftime('%Y-%m-%d')}")
        print(f"\nunfiltered: {base:,.0f} QPS (batch of {a.queries})\n")
        print("| selectivity | indexed QPS | ratio | plan | unindexed QPS | ratio | plan | results/query |")
        print("|---|---|---|---|---|---|---|---|")
        for s in SELECTIVITY:
            limit = int(s * a.n)
            q_i, r_i = qps({"key": "sel", "range": {"lt": limit}})
            q_u, r_u = qps({"key": "sel_u", "range": {"lt": limit}})
            got = min(len(r) for r in r_i + r_u)
            assert got == min(a.k, limit), (s, got)
            print(f"| {s:.1%} | {q_i:,.0f} | {q_i / base:.2f}x | {r_i[0].plan.split(': ', 1)[1]} | "
                  f"{q_u:,.0f} | {q_u / base:.2f}x | {r_u[0].plan.split(': ', 1)[1]} | {got} |")
        db.close()


if __name__ == "__main__":
    main()
