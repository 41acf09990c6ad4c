"""glibc allocator settings (server/vecdb_server/malloc.py): time of multi-MB upserts and
1,000-query batch searches through gRPC, and server RSS, with glibc's defaults, the
server's arena cap, and an mmap threshold fixed at 128 KiB, side by side in one run.

    python bench/malloc_bench.py [--points 40000] [--batch 4000] [--queries 1000]

Each variant is a fresh ``vecdb_server`` on an empty data directory (flat index: the
request path, not an index build, is what is timed); the client is this process.
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "bench"), str(ROOT / "client")]
from bench_peers import free_port  # noqa: E402
from vecdb_client import Client  # noqa: E402

# the server's own __main__ with the variant's allocator setting: "default" (glibc's, the
# server's cap off), "arenas" (the server's: malloc.limit_arenas), or an mmap threshold
# fixed at that many bytes (the server's cap off; what malloc.py did before)
SERVE = """
import ctypes, runpy, sys
import vecdb_server.malloc as m
variant = sys.argv.pop(1)
if variant != "arenas":
    m.limit_arenas = lambda: False
if variant.isdigit():
    ctypes.CDLL("libc.so.6").mallopt(-3, int(variant))  # M_MMAP_THRESHOLD
runpy.run_module("vecdb_server", run_name="__main__", alter_sys=True)
"""
VARIANTS = {"glibc default": "default", "arenas capped at 2": "arenas",
            "mmap threshold 128 KiB": str(128 << 10), "glibc default again": "default",
            "arenas capped at 2 again": "arenas", "mmap threshold 128 KiB again": str(128 << 10)}


def rss(pid: int) -> tuple[float, float]:
    st = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, val = line.partition(":")
            st[key] = int(val.split()[0]) / 1024 if key in ("VmRSS", "VmHWM") else None
    return st["VmRSS"], st["VmHWM"]


def run(variant: str, X: np.ndarray, Q: np.ndarray, batch: int) -> dict:
    port = free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(ROOT / s) for s in ("", "server", "client"))}
    with tempfile.TemporaryDirectory() as data:
        proc = subprocess.Popen([sys.executable, "-c", SERVE, variant, "--host", "127.0.0.1",
                                 "--port", str(port), "--data-dir", data, "--metrics-port", "-1",
                                 "--log-level", "WARNING"], env=env)
        try:
            c = Client(f"127.0.0.1:{port}", timeout=300)
            c.wait_ready(120)
            c.create_collection("c", X.shape[1], index="flat")
            t0 = time.perf_counter()
            for lo in range(0, len(X), batch):
                c.upsert("c", [f"p{i}" for i in range(lo, lo + batch)], X[lo:lo + batch])
            upsert_s = time.perf_counter() - t0
            c.search("c", vectors=Q, k=10, with_payload=False)  # warm-up
            times = []
            for _ in range(5):
                t = time.perf_counter()
                c.search("c", vectors=Q, k=10, with_payload=False)
                times.append(time.perf_counter() - t)
            now, peak = rss(proc.pid)
            return {"upsert_s": upsert_s, "batch_ms": statistics.median(times) * 1e3,
                    "rss_mb": now, "peak_mb": peak}
        finally:
            proc.terminate()
            proc.wait(30)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--points", type=int, default=40000)
    ap.add_argument("--batch", type=int, default=4000)
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--dim", type=int, default=384)
    a = ap.parse_args()
    rng = np.random.default_rng(0)
    X = rng.standard_normal((a.points, a.dim)).astype(np.float32)
    Q = rng.standard_normal((a.queries, a.dim)).astype(np.float32)
    print(f"{a.points} x {a.dim} upserted in batches of {a.batch} ({a.batch * a.dim * 4 >> 20} MiB "
          f"of vectors each); batch search of {a.queries} queries, k 10, median of 5")
    base = None
    for name, variant in VARIANTS.items():
        r = run(variant, X, Q, a.batch)
        base = base or r
        print(f"{name:24s} upsert {r['upsert_s']:6.2f} s ({r['upsert_s'] / base['upsert_s']:.2f}x)  "
              f"batch search {r['batch_ms']:7.1f} ms ({r['batch_ms'] / base['batch_ms']:.2f}x)  "
              f"RSS {r['rss_mb']:5.0f} MB, peak {r['peak_mb']:5.0f} MB", flush=True)


if __name__ == "__main__":
    main()
