"""Engine vs raw FAISS, in-process, same data, same index type (not a test).

    python bench/engine_bench.py [--n 100000] [--dim 384] [--queries 1000]

Prints one table: ingest vectors/s (engine with durability=sync, batches of
1,000, vs faiss add) and batch-search QPS (engine vs the same FAISS index
searched directly), with ratios. Data: clustered Gaussian blobs, fixed seed.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time

import faiss
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from vecdb import Database, DatabaseOptions  # noqa: E402


def clustered(n, dim, clusters=100, seed=0):
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((clusters, dim)).astype(np.float32)
    out = np.empty((n, dim), np.float32)
    for lo in range(0, n, 100_000):
        hi = min(n, lo + 100_000)
        out[lo:hi] = centers[rng.integers(0, clusters, hi - lo)] + 0.4 * rng.standard_normal((hi - lo, dim))
    return out


def best_of(fn, repeat=3):
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def raw_faiss(kind, X, ids, spec_params, engine_shard):
    """The same index the engine built, rebuilt from scratch with plain FAISS."""
    d = X.shape[1]
    if kind == "flat":
        idx = faiss.IndexIDMap2(faiss.IndexFlatL2(d))
    elif kind == "hnsw":
        inner = faiss.IndexHNSWFlat(d, spec_params["M"], faiss.METRIC_L2)
        inner.hnsw.efConstruction = spec_params["ef_construction"]
        idx = faiss.IndexIDMap(inner)
    else:
        nlist = engine_shard.ann.index.nlist
        idx = faiss.IndexIVFFlat(faiss.IndexFlatL2(d), d, nlist, faiss.METRIC_L2)
        idx.train(X[: 256 * nlist])
    t = time.perf_counter()
    idx.add_with_ids(X, ids)
    return idx, time.perf_counter() - t


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--kinds", default="flat,ivf_flat,hnsw")
    a = ap.parse_args()
    X = clustered(a.n, a.dim)
    Q = clustered(a.queries, a.dim, seed=1)
    labels = np.arange(1, a.n + 1, dtype=np.int64)
    ids = [f"doc-{i}" for i in range(a.n)]
    print(f"# engine_bench  n={a.n} dim={a.dim} queries={a.queries} k={a.k}  "
          f"{platform.machine()} {os.cpu_count()} cpus  faiss {faiss.__version__}  {time.strftime('%Y-%m-%d')}")
    rows = []
    for kind in a.kinds.split(","):
        params = {"hnsw": {"M": 32, "ef_construction": 100, "ef_search": 128},
                  "ivf_flat": {"nprobe": 32}}.get(kind, {})
        if kind != "flat":
            params["build_threshold"] = 1
        with tempfile.TemporaryDirectory() as tmp:
            db = Database.open(tmp, DatabaseOptions(background=False, durability="sync"))
            db.create_collection("b", a.dim, metric="l2", index=kind, index_params=params, shards=1)
            t = time.perf_counter()
            for lo in range(0, a.n, 1000):
                db.upsert("b", ids[lo:lo + 1000], X[lo:lo + 1000])
            ingest = a.n / (time.perf_counter() - t)
            t = time.perf_counter()
            db.maintain()
            build_s = time.perf_counter() - t
            shard = db.collections["b"].shards[0]
            raw, raw_add_s = raw_faiss(kind, X, labels, {**{"M": 32, "ef_construction": 100}, **params}, shard)
            sp = None
            if kind == "hnsw":
                sp = faiss.SearchParametersHNSW(efSearch=128)
            elif kind == "ivf_flat":
                sp = faiss.SearchParametersIVF(nprobe=32)
            t_raw = best_of(lambda: raw.search(Q, a.k, params=sp))
            t_eng = best_of(lambda: db.search("b", Q, k=a.k))
            t_eng_ids = best_of(lambda: db.search("b", Q, k=a.k, with_payload=False))
            rows.append((kind, ingest, a.n / raw_add_s if kind == "flat" else a.n / (raw_add_s or 1e-9),
                         build_s, a.queries / t_raw, a.queries / t_eng, a.queries / t_eng_ids))
            db.close()
    print()
    print("| index | engine ingest (sync) vec/s | raw faiss add vec/s | ANN build s | raw faiss QPS | "
          "engine QPS (payloads) | engine QPS (ids only) | ratio payloads | ratio ids |")
    print("|---|---|---|---|---|---|---|---|---|")
    for kind, ing, raw_add, build, qr, qe, qi in rows:
        print(f"| {kind} | {ing:,.0f} | {raw_add:,.0f} | {build:.1f} | {qr:,.0f} | {qe:,.0f} | {qi:,.0f} | "
              f"{qe / qr:.2f}x | {qi / qr:.2f}x |")


if __name__ == "__main__":
    main()
