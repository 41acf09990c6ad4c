#!/usr/bin/env python3
"""Where an HNSW bulk load's peak memory and time to searchable go, in-process (not a test).

    python bench/build_peak_bench.py --n 116033 --dim 384

Loads ``--n`` embedding-like vectors (tests/quant_data.py) into a one-shard cosine HNSW
collection (M=32, efC=100, background builds) in batches like the SDK's, while a thread
samples VmRSS every 20 ms; reports the peak (VmHWM) with the phase it fell in (ingest /
build / after), the seconds until the index is built and the last point found, the
checkpoint's bytes, and the restart (close, open, first search) time and RSS.
"""
from __future__ import annotations

import argparse
import os
import shutil
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402

from tests.quant_data import embeddings  # noqa: E402
from vecdb import Database, DatabaseOptions, SearchParams  # noqa: E402
from vecdb.checkpoint import disk_bytes  # noqa: E402


def status() -> dict[str, float]:
    out = {}
    with open("/proc/self/status") as f:
        for line in f:
            key, _, val = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                out[key] = int(val.split()[0]) / 1024  # MB (MiB)
    return out


class Sampler(threading.Thread):
    def __init__(self):
        super().__init__(daemon=True)
        self.phase, self.peak, self.stop = "ingest", (0.0, ""), False

    def run(self):
        while not self.stop:
            rss = status()["VmRSS"]
            if rss > self.peak[0]:
                self.peak = (rss, self.phase)
            time.sleep(0.02)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=116_033)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--batch", type=int, default=2_000)
    ap.add_argument("--threshold", type=int, default=0, help="build_threshold (0: the default)")
    a = ap.parse_args()
    base = embeddings(a.n, a.dim, seed=0)
    ids = [str(i) for i in range(a.n)]
    start_rss = status()["VmRSS"]
    path = tempfile.mkdtemp(prefix="peak-", dir=os.environ.get("TMPDIR"))
    db = Database.open(path, DatabaseOptions())
    params = {"M": 32, "ef_construction": 100}
    if a.threshold:
        params["build_threshold"] = a.threshold
    db.create_collection("c", a.dim, metric="cosine", index="hnsw", index_params=params)
    s = Sampler()
    s.start()
    t0 = time.perf_counter()
    for lo in range(0, a.n, a.batch):
        db.upsert("c", ids[lo:lo + a.batch], base[lo:lo + a.batch])
        if s.phase == "ingest" and db.describe_collection("c").index_state == "training":
            s.phase = "ingest+build"
    ingest = time.perf_counter() - t0
    s.phase = "built-wait"
    while db.describe_collection("c").index_state != "built":
        time.sleep(0.05)
    while db.search("c", base[-1:], k=1, with_payload=False)[0].ids[:1] != [ids[-1]]:
        time.sleep(0.05)
    searchable = time.perf_counter() - t0
    s.phase = "checkpoint"
    db.checkpoint()
    s.stop = True
    s.join()
    peak = status()
    ckpt = disk_bytes(path)
    db.close()
    t1 = time.perf_counter()
    db = Database.open(path, DatabaseOptions())
    hit = db.search("c", base[:1], k=10, with_payload=False, params=SearchParams(ef_search=16))
    restart = time.perf_counter() - t1
    print(f"n={a.n} dim={a.dim}: start RSS {start_rss:.0f} MB (data {base.nbytes / 2**20:.0f} MB "
          f"in this process), peak VmHWM {peak['VmHWM']:.0f} MB, sampled peak {s.peak[0]:.0f} MB "
          f"during {s.peak[1]}; ingest {ingest:.1f} s, searchable {searchable:.1f} s; "
          f"data dir {ckpt / 2**20:.0f} MB; restart to first search {restart:.2f} s "
          f"(found itself: {hit[0].ids[0] == ids[0]})")
    db.close()
    shutil.rmtree(path, ignore_errors=True)


if __name__ == "__main__":
    main()
