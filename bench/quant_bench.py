"""Full-precision HNSW vs quantized collections, side by side in one run (not a test).

    python bench/quant_bench.py [--n 200000] [--dim 384] [--queries 1000] [--data embeddings|blobs]
                                [--only full-hnsw,sq8-hnsw,...] [--rounds 3]

Every variant runs in fresh engine processes over one data set:
  build   create, upsert in batches of 10,000 (durability sync), build the index, checkpoint,
          close. "build s" = upsert + index build; "build peak" = that process's peak RSS.
  serve   open the data directory (restart), one query per call for every query, single
          thread, no payloads. Once every variant is built, the serve runs go round robin
          (``--rounds`` times each, so load from other work on the machine hits them all
          alike); QPS is the best round, the rest from the last. "RSS" = the process's
          resident set after the searches (its anonymous part in parentheses: the rest is
          file pages, mostly the shared libraries), "peak" = its peak RSS.
recall@10 against exact top-10 (faiss.IndexFlatIP); "mem" = describe's memory_bytes.
Data: ``embeddings`` (tests/quant_data.py: clustered, low intrinsic dimension like real
embeddings) or ``blobs`` (bench/bench_data.clustered: 1,024 Gaussian blobs in the full
dimension, where neighbours inside a blob are near random and every ANN index loses recall).
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import resource
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

# name -> (index, quantization)
VARIANTS = {"full-hnsw": ("hnsw", ""), "sq8-hnsw": ("hnsw", "sq8"), "sq8-ivf": ("auto", "sq8"),
            "rabitq-ivf": ("auto", "rabitq"), "binary-hnsw": ("hnsw", "binary")}


def status() -> dict[str, int]:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM", "RssAnon", "RssFile"):
                out[key] = int(rest.split()[0]) * 1024
    return out


def child_build(work: str, variant: str) -> dict:
    from vecdb import Database, DatabaseOptions
    index, quant = VARIANTS[variant]
    path, dim = os.path.join(work, "base.f32"), int(open(os.path.join(work, "dim")).read())
    n = os.path.getsize(path) // (4 * dim)
    db = Database.open(os.path.join(work, variant), DatabaseOptions(background=False))
    t = time.perf_counter()
    db.create_collection("c", dim, "cosine", index, quantization=quant or None)
    step = 10_000
    for lo in range(0, n, step):  # plain reads: no mapping of the data in this process's RSS
        chunk = np.fromfile(path, np.float32, min(step, n - lo) * dim, offset=lo * dim * 4).reshape(-1, dim)
        db.upsert("c", [f"p{i}" for i in range(lo, lo + len(chunk))], chunk)
    while db.maintain():
        pass
    build_s = time.perf_counter() - t
    db.checkpoint()
    state = db.describe_collection("c").index_state
    db.close()
    return {"build_s": build_s, "build_peak": status()["VmHWM"], "state": state}


def child_serve(work: str, variant: str) -> dict:
    from vecdb import Database, DatabaseOptions
    queries = np.load(os.path.join(work, "queries.npy"))
    gt = np.load(os.path.join(work, "gt.npy"))
    t = time.perf_counter()
    db = Database.open(os.path.join(work, variant), DatabaseOptions(background=False))
    open_s = time.perf_counter() - t
    for q in queries[:100]:  # warm-up
        db.search("c", q[None], 10, with_payload=False)
    t = time.perf_counter()
    found = [db.search("c", q[None], 10, with_payload=False)[0].ids for q in queries]
    qps = len(queries) / (time.perf_counter() - t)
    truth = [{f"p{j}" for j in row} for row in gt]
    recall = float(np.mean([len(set(f) & tr) / 10 for f, tr in zip(found, truth)]))
    st = status()
    mem = db.describe_collection("c").memory_bytes
    db.close()
    return {"open_s": open_s, "qps": qps, "recall": recall, "rss": st["VmRSS"],
            "rss_anon": st["RssAnon"], "peak": st["VmHWM"], "mem": mem}


def run_child(phase: str, work: str, variant: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", phase, work, variant],
                         capture_output=True, text=True, check=False)
    if out.returncode:
        raise SystemExit(f"{variant} {phase} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def make_data(kind: str, n: int, dim: int, nq: int):
    if kind == "blobs":
        sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
        from bench_data import clustered
        return clustered(n, dim, seed=0), clustered(nq, dim, seed=1)
    from tests.quant_data import embeddings
    return embeddings(n, dim, seed=0), embeddings(nq, dim, seed=1)


def ground_truth(base: np.ndarray, queries: np.ndarray, k: int = 10) -> np.ndarray:
    import faiss
    index = faiss.IndexFlatIP(base.shape[1])
    index.add(base)
    return index.search(queries, k)[1]


def mb(x: float) -> str:
    return f"{x / 1e6:,.0f}"


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        phase, work, variant = sys.argv[2:5]
        print(json.dumps((child_build if phase == "build" else child_serve)(work, variant)))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=200_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--data", choices=("embeddings", "blobs"), default="embeddings")
    ap.add_argument("--only", default=",".join(VARIANTS), help="comma-separated variants")
    ap.add_argument("--rounds", type=int, default=3, help="serve runs per variant")
    ap.add_argument("--work", default="", help="scratch directory (default: a temp dir)")
    ns = ap.parse_args()
    work = ns.work or tempfile.mkdtemp(prefix="quant_bench_")
    os.makedirs(work, exist_ok=True)
    t = time.perf_counter()
    base, queries = make_data(ns.data, ns.n, ns.dim, ns.queries)
    base.tofile(os.path.join(work, "base.f32"))
    with open(os.path.join(work, "dim"), "w") as f:
        f.write(str(ns.dim))
    np.save(os.path.join(work, "queries.npy"), queries)
    np.save(os.path.join(work, "gt.npy"), ground_truth(base, queries))
    del base
    print(f"# quant_bench {datetime.date.today()} {platform.node()} {os.cpu_count()} CPUs: "
          f"{ns.data} {ns.n:,} x {ns.dim}, {ns.queries} queries (data + truth in "
          f"{time.perf_counter() - t:.0f} s); float32 vectors = {mb(ns.n * ns.dim * 4)} MB",
          flush=True)
    variants = ns.only.split(",")
    built = {}
    for variant in variants:
        built[variant] = run_child("build", work, variant)
        print(f"  {variant} build: {json.dumps(built[variant])}", flush=True)
    served: dict[str, dict] = {}
    for rnd in range(ns.rounds):
        for variant in variants:
            s = run_child("serve", work, variant)
            s["qps"] = max(s["qps"], served.get(variant, {}).get("qps", 0))
            served[variant] = s
            print(f"  {variant} serve {rnd}: {json.dumps(s)}", flush=True)
    rows = [(v, built[v], served[v]) for v in variants]
    ref = next((s for v, _, s in rows if v == "full-hnsw"), None)
    print()
    print("| variant | recall@10 | QPS (1 query/call) | QPS vs full | RSS MB (anon) | serve peak MB "
          "| build peak MB | mem MB (describe) | build s | open s |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for variant, b, s in rows:
        ratio = f"{s['qps'] / ref['qps']:.2f}x" if ref else "-"
        print(f"| {variant} | {s['recall']:.3f} | {s['qps']:,.0f} | {ratio} | {mb(s['rss'])} "
              f"({mb(s['rss_anon'])}) | {mb(s['peak'])} | {mb(b['build_peak'])} | {mb(s['mem'])} "
              f"| {b['build_s']:.1f} | {s['open_s']:.1f} |")
    if not ns.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
