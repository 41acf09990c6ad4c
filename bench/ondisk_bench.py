"""On-disk vs in-RAM IVF-Flat over the same data, side by side in one run (not a test).

    python bench/ondisk_bench.py [--n 1000000] [--dim 128] [--queries 500] [--limit-mb 192]

Every variant runs in fresh engine processes over one data set (tests/quant_data.py
embeddings):
  build   create an ivf_flat collection (on_disk or not), upsert in batches of 10,000,
          maintain() every 100,000 (first build, merges of the in-RAM delta, retrains),
          checkpoint, close (DatabaseOptions: block_cache_mb 8, ondisk_delta_mb 64).
  serve   drop the data directory's pages from the page cache (posix_fadvise DONTNEED on
          every file: nothing maps them between the two processes), open it, then one
          query per call, single thread, no payloads: the first pass over the queries is
          "cold" (every list it probes comes from disk, except those an earlier query of
          the pass already read), the second pass over the same queries "warm".
  disk@limit  the on-disk serve inside a memory cgroup (v1 memory.limit_in_bytes; the
          limit counts the page cache the process pulls in too): the collection's files
          are several times the limit and it still answers.
RSS = VmRSS of the serving process after both passes (RssAnon: its own memory; RssFile:
mapped file pages, i.e. the shared libraries and the lists paged in, which the kernel
takes back under pressure); cg peak = the cgroup's max_usage_in_bytes.
recall@10 against exact top-10 (faiss.IndexFlatIP) at the default nprobe.
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import shutil
import subprocess
import sys
import tempfile
import time

import numpy as np

from quant_bench import status  # this process's VmRSS, VmHWM, RssAnon, RssFile

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)
CGROUP = "/sys/fs/cgroup/memory"


def child_build(work: str, variant: str) -> dict:
    from vecdb import Database, DatabaseOptions
    path, dim = os.path.join(work, "base.f32"), int(open(os.path.join(work, "dim")).read())
    n = os.path.getsize(path) // (4 * dim)
    db = Database.open(os.path.join(work, variant),
                       DatabaseOptions(background=False, block_cache_mb=8, ondisk_delta_mb=64))
    t = time.perf_counter()
    db.create_collection("c", dim, "cosine", "ivf_flat", on_disk=variant == "disk")
    step = 10_000
    for lo in range(0, n, step):  # plain reads: no mapping of the data in this process's RSS
        chunk = np.fromfile(path, np.float32, min(step, n - lo) * dim, offset=lo * dim * 4).reshape(-1, dim)
        db.upsert("c", [f"p{i}" for i in range(lo, lo + len(chunk))], chunk)
        if (lo + step) % 100_000 == 0:
            db.maintain()
    while db.maintain():
        pass
    build_s = time.perf_counter() - t
    db.checkpoint()
    desc = db.describe_collection("c")
    db.close()
    return {"build_s": build_s, "build_peak": status()["VmHWM"], "state": desc.index_state,
            "params": desc.shards[0].built_params}


def drop_pages(directory: str) -> None:
    for root, _dirs, files in os.walk(directory):
        for name in files:
            fd = os.open(os.path.join(root, name), os.O_RDONLY)
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
            os.close(fd)


def child_serve(work: str, variant: str, cgroup: str) -> dict:
    if cgroup:
        with open(os.path.join(cgroup, "cgroup.procs"), "w") as f:
            f.write(str(os.getpid()))
    from vecdb import Database, DatabaseOptions
    queries = np.load(os.path.join(work, "queries.npy"))
    gt = np.load(os.path.join(work, "gt.npy"))
    data = os.path.join(work, variant.split("@")[0])
    drop_pages(data)
    t = time.perf_counter()
    db = Database.open(data, DatabaseOptions(background=False, block_cache_mb=8))
    open_s = time.perf_counter() - t
    passes = []
    for _ in range(2):  # cold, then warm
        lat, found = [], []
        for q in queries:
            t = time.perf_counter()
            found.append(db.search("c", q[None], 10, with_payload=False)[0].ids)
            lat.append(time.perf_counter() - t)
        passes.append((np.array(lat) * 1000, found))
    truth = [{f"p{j}" for j in row} for row in gt]
    recall = float(np.mean([len(set(f) & tr) / 10 for f, tr in zip(passes[1][1], truth)]))
    st = status()
    mem = db.describe_collection("c").memory_bytes
    db.close()
    out = {"open_s": open_s, "recall": recall, "rss": st["VmRSS"], "rss_anon": st["RssAnon"],
           "rss_file": st["RssFile"], "peak": st["VmHWM"], "mem": mem}
    for name, (lat, _) in zip(("cold", "warm"), passes):
        out[name] = {"p50": float(np.percentile(lat, 50)), "p99": float(np.percentile(lat, 99)),
                     "qps": float(1000 * len(lat) / lat.sum())}
    if cgroup:
        out["cg_peak"] = int(open(os.path.join(cgroup, "memory.max_usage_in_bytes")).read())
    return out


def run_child(*args: str) -> dict:
    out = subprocess.run([sys.executable, __file__, "--child", *args],
                         capture_output=True, text=True, check=False)
    if out.returncode:
        raise SystemExit(f"{args} failed:\n{out.stderr[-3000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def make_cgroup(limit_mb: int) -> str:
    """A memory cgroup (v1) limited to ``limit_mb``; "" where none can be made here."""
    path = os.path.join(CGROUP, f"vecdb_ondisk_bench_{os.getpid()}")
    try:
        os.mkdir(path)
        with open(os.path.join(path, "memory.limit_in_bytes"), "w") as f:
            f.write(str(limit_mb << 20))
    except OSError as e:
        print(f"no memory cgroup ({e}); disk@limit is skipped", file=sys.stderr)
        return ""
    return path


def dir_bytes(directory: str, suffix: str = "") -> int:
    seen, total = set(), 0
    for root, _dirs, files in os.walk(directory):
        for name in files:
            st = os.stat(os.path.join(root, name))
            if name.endswith(suffix) and st.st_ino not in seen:  # hard links once
                seen.add(st.st_ino)
                total += st.st_size
    return total


def mb(x: float) -> str:
    return f"{x / 1e6:,.0f}"


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        if sys.argv[2] == "build":
            print(json.dumps(child_build(sys.argv[3], sys.argv[4])))
        else:
            print(json.dumps(child_serve(sys.argv[3], sys.argv[4], sys.argv[5])))
        return 0
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--limit-mb", type=int, default=192, help="memory cgroup of disk@limit")
    ap.add_argument("--work", default="", help="scratch directory (default: a temp dir)")
    ns = ap.parse_args()
    work = ns.work or tempfile.mkdtemp(prefix="ondisk_bench_")
    os.makedirs(work, exist_ok=True)
    from tests.quant_data import embeddings
    with open(os.path.join(work, "base.f32"), "wb") as f:
        for lo in range(0, ns.n, 100_000):  # one stream of points, written in blocks
            f.write(embeddings(min(100_000, ns.n - lo), ns.dim, seed=1000 + lo).tobytes())
    open(os.path.join(work, "dim"), "w").write(str(ns.dim))
    queries = embeddings(ns.queries, ns.dim, seed=1)
    np.save(os.path.join(work, "queries.npy"), queries)
    import faiss
    flat = faiss.IndexFlatIP(ns.dim)
    base = np.fromfile(os.path.join(work, "base.f32"), np.float32).reshape(-1, ns.dim)
    flat.add(base)
    np.save(os.path.join(work, "gt.npy"), flat.search(queries, 10)[1])
    del flat, base
    builds = {v: run_child("build", work, v) for v in ("ram", "disk")}
    cgroup = make_cgroup(ns.limit_mb)
    serves = {"ram": run_child("serve", work, "ram", ""),
              "disk": run_child("serve", work, "disk", "")}
    if cgroup:
        serves["disk@limit"] = run_child("serve", work, "disk@limit", cgroup)
        os.rmdir(cgroup)
    sizes = {v: dir_bytes(os.path.join(work, v)) for v in ("ram", "disk")}
    lists = dir_bytes(os.path.join(work, "disk"), ".ivfdata")
    print(f"# ondisk_bench {datetime.date.today()} {platform.node()} ({os.cpu_count()} CPUs): "
          f"{ns.n:,} x {ns.dim} embeddings, {ns.queries} queries, one per call; vectors "
          f"{mb(ns.n * ns.dim * 4)} MB; disk: lists file {mb(lists)} MB, data dir "
          f"{mb(sizes['disk'])} MB (ram: {mb(sizes['ram'])} MB)")
    print("| variant | build s | build peak MB | open s | cold p50/p99 ms | warm p50/p99 ms "
          "| warm q/s | recall@10 | RSS MB (anon / file) | mem MB | cgroup peak MB |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for v, s in serves.items():
        b = builds[v.split("@")[0]]
        print(f"| {v} | {b['build_s']:.0f} | {mb(b['build_peak'])} | {s['open_s']:.1f} "
              f"| {s['cold']['p50']:.2f} / {s['cold']['p99']:.2f} "
              f"| {s['warm']['p50']:.2f} / {s['warm']['p99']:.2f} | {s['warm']['qps']:.0f} "
              f"| {s['recall']:.3f} | {mb(s['rss'])} ({mb(s['rss_anon'])} / {mb(s['rss_file'])}) "
              f"| {mb(s['mem'])} | {mb(s['cg_peak']) if 'cg_peak' in s else '-'} |")
    print(f"built params: {builds['disk']['params']}; limit of disk@limit: {ns.limit_mb} MiB")
    if not ns.work:
        shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
