#!/usr/bin/env python3
"""Cost of recommend, vector arithmetic and grouped search next to a plain search, in the
engine (no server). Not a test.

Builds one flat collection of clustered vectors (payload ``author``: --authors values,
``big``: one value on 90% of the points, 50 others), then times each call (mean of
--reps runs after one warm-up), unindexed and again with keyword payload indexes on the
group_by fields. The figures in docs/server_api.md come from the defaults on 2 cores.

    python bench/beyond_bench.py
    python bench/beyond_bench.py --n 20000 --dim 64 --shards 1 --reps 5
"""
from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

from vecdb import Database, DatabaseOptions


def clustered(n: int, dim: int, clusters: int = 64, seed: int = 1) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((clusters, dim)).astype(np.float32)
    return (centers[rng.integers(0, clusters, n)]
            + 0.35 * rng.standard_normal((n, dim))).astype(np.float32)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--shards", type=int, default=2)
    ap.add_argument("--authors", type=int, default=1000)
    ap.add_argument("--reps", type=int, default=20)
    a = ap.parse_args()
    X = clustered(a.n, a.dim)
    ids = [f"p{i}" for i in range(a.n)]
    with tempfile.TemporaryDirectory() as tmp:
        db = Database.open(tmp, DatabaseOptions(background=False))
        db.create_collection("b", dim=a.dim, index="flat", shards=a.shards)
        for s in range(0, a.n, 20_000):
            e = min(a.n, s + 20_000)
            db.upsert("b", ids[s:e], X[s:e],
                      payloads=[{"author": f"a{i % a.authors}", "big": "x" if i % 10 else f"b{i // 10 % 50}"}
                                for i in range(s, e)])

        def t(name: str, fn, reps: int = a.reps) -> None:
            fn()
            t0 = time.perf_counter()
            for _ in range(reps):
                res = fn()
            ms = (time.perf_counter() - t0) / reps * 1000
            print(f"{name:52s} {ms:9.2f} ms   {getattr(res, 'plan', '')}")

        slow = max(1, a.reps // 5)
        print(f"{a.n} x {a.dim}, {a.shards} shard(s), flat")
        t("plain search k=10", lambda: db.search("b", X[:1], k=10)[0])
        t("recommend average 3 pos / 2 neg, k=10",
          lambda: db.recommend("b", ["p1", "p2", "p3"], ["p4", "p5"], k=10))
        t("recommend best_score 3 pos / 2 neg, k=10",
          lambda: db.recommend("b", ["p1", "p2", "p3"], ["p4", "p5"], strategy="best_score", k=10))
        t("recommend best_score, negative = positive (scan)",
          lambda: db.recommend("b", ["p1"], [X[1]], strategy="best_score", k=10), slow)
        t("expression 3 terms, k=10",
          lambda: db.search_expression("b", [("+", "id:p1"), ("-", "id:p2"), ("+", "id:p3")], k=10))
        for label in ("", "[keyword index] "):
            t(f"{label}group_by author, 10 groups x 1",
              lambda: db.search_groups("b", X[:1], group_by="author")[0])
            t(f"{label}group_by author, 10 groups x 3",
              lambda: db.search_groups("b", X[:1], group_by="author", group_size=3)[0], slow)
            t(f"{label}group_by big (90% one value), 10 x 2",
              lambda: db.search_groups("b", X[:1], group_by="big", group_size=2)[0], slow)
            if not label:
                db.create_payload_index("b", "author", "keyword", wait=True)
                db.create_payload_index("b", "big", "keyword", wait=True)
        db.close()


if __name__ == "__main__":
    main()
