"""Analytics through the server vs raw FAISS doing the same work in-process (a
benchmark, not a test). Prints a table; ratios come from one run.

    python bench/analytics_bench.py                       # 200k clustering, 100k outliers
    python bench/analytics_bench.py --size 1000000        # the issue's 1M x 384

Data: synthetic clustered float32 (Gaussian blobs), 384-d, metric l2, one shard,
flat index (no ANN build competing for the cores). A ``vecdb-server`` subprocess
gets the points through the SDK; then

* k-means: ``client.cluster(k, iterations, seed, wait=True)`` (gather the vectors
  from the shard, faiss.Kmeans train, assign every point, sizes/inertia/typical
  members) vs ``faiss.Kmeans(..., init_method=k-means++).train(x)`` + ``assign(x)``
  on the same array;
  the centroids must agree (same seed, same order);
* outliers: ``client.outliers(n=10, k=10)`` (exact k-NN mean distance over every
  point) vs an IndexFlatL2 over the array searched by every point for k+1
  neighbours in batches of 4096, means, top 10; the ids must agree. Plus the
  sampled mode (``sample``) for scale.

Server times are wall clock at the client (the RPC, polling every 0.2 s for the
job, and decoding included); ratio = raw FAISS time / server time (1.0 = no
overhead; the issue's target is >= 0.8).
"""
from __future__ import annotations

import argparse
import os
import platform
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
for p in (ROOT, ROOT / "server", ROOT / "client"):
    sys.path.insert(0, str(p))

import faiss  # noqa: E402

from vecdb_client import Client  # noqa: E402

DIM = 384


def clustered(n: int, seed: int, blobs: int = 256) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((blobs, DIM)).astype(np.float32)
    out = np.empty((n, DIM), np.float32)
    for i in range(0, n, 100_000):
        m = min(100_000, n - i)
        out[i:i + m] = centers[rng.integers(0, blobs, m)] + \
            0.5 * rng.standard_normal((m, DIM), dtype=np.float32)
    return out


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    def __init__(self, workdir: Path):
        self.port = free_port()
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(str(p) for p in
                                                           (ROOT, ROOT / "server", ROOT / "client"))}
        self.log = open(workdir / "server.log", "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "vecdb_server", "--host", "127.0.0.1", "--port", str(self.port),
             "--data-dir", str(workdir / "data"), "--metrics-port", "-1", "--log-level", "WARNING"],
            stdout=self.log, stderr=subprocess.STDOUT, env=env)
        self.client = Client(f"127.0.0.1:{self.port}", timeout=3600)
        self.client.wait_ready(60)

    def close(self) -> None:
        self.client.close()
        self.proc.terminate()
        self.proc.wait(120)


def load(c: Client, name: str, x: np.ndarray) -> float:
    """Upsert, then wait until the background checkpoint has caught up (so it does
    not run during the measurements)."""
    c.create_collection(name, dim=DIM, metric="l2", index="flat")
    t0 = time.perf_counter()
    c.upsert(name, [f"p{i}" for i in range(len(x))], x)
    took = time.perf_counter() - t0
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        if all(s.checkpoint_seq >= s.applied_seq for s in c.describe_collection(name).shards):
            break
        time.sleep(1)
    return took


def wait_idle(pid: int, limit_s: float = 300.0) -> float:
    """Wait until the server process is idle (RocksDB flushes and compactions after a
    bulk load run in its background threads for a while): under 5% of a core for 3
    seconds in a row. Returns the seconds waited."""
    def cpu() -> float:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    t0, quiet, last = time.monotonic(), 0, cpu()
    while quiet < 3 and time.monotonic() - t0 < limit_s:
        time.sleep(1)
        now = cpu()
        quiet = quiet + 1 if now - last < 0.05 else 0
        last = now
    return time.monotonic() - t0


def bench_kmeans(c: Client, x: np.ndarray, k: int, iters: int, seed: int, repeat: int) -> list:
    """Server and raw alternately, ``repeat`` times each, medians. The server's first
    run is reported apart: it also pays for the VM's first touch of the memory its
    gathered copy lands in (guest pages the host has not backed yet)."""
    server_runs, raw_runs = [], []
    for _ in range(repeat + 1):
        t0 = time.perf_counter()
        job = c.cluster("km", k, iterations=iters, seed=seed, typical=5, wait=True)
        server_runs.append((time.perf_counter() - t0, job.progress.finished - job.progress.started))
        t0 = time.perf_counter()
        km = faiss.Kmeans(DIM, k, niter=iters, seed=seed,
                          init_method=faiss.ClusteringInitMethod_KMEANS_PLUS_PLUS)  # server default
        km.train(x)
        _, lab = km.assign(x)
        sizes = np.bincount(lab, minlength=k)
        raw_runs.append(time.perf_counter() - t0)
    print(f"  server runs (client wall, job): {server_runs}; raw: {raw_runs}", flush=True)
    same = np.allclose(job.result.centroids, km.centroids, atol=1e-4) and \
        job.result.sizes == sizes.tolist()
    server = float(np.median([s for s, _ in server_runs[1:]]))
    job_s = float(np.median([j for _, j in server_runs[1:]]))
    return [f"k-means {len(x):,} x {DIM}, k={k}, {iters} it (median of {repeat}; server's "
            f"1st run {server_runs[0][0]:.2f} s)", float(np.median(raw_runs[1:])), server, job_s, same]


def raw_outliers(x: np.ndarray, n: int, k: int, rows: np.ndarray | None = None) -> np.ndarray:
    index = faiss.IndexFlatL2(x.shape[1])
    index.add(x)
    rows = np.arange(len(x)) if rows is None else rows
    score = np.empty(len(rows))
    for i in range(0, len(rows), 4096):
        r = rows[i:i + 4096]
        d, nbr = index.search(x[r], k + 1)
        keep = nbr != r[:, None]
        keep[keep.all(axis=1), k] = False
        score[i:i + len(r)] = d[keep].reshape(len(r), k).mean(1)
    return rows[np.argsort(-score, kind="stable")[:n]]


def bench_outliers(c: Client, x: np.ndarray, sample: int | None, repeat: int) -> list:
    """Server and raw alternately, ``repeat`` times each; medians."""
    rows = None
    if sample is not None:
        rows = np.sort(np.random.default_rng(7).choice(len(x), sample, replace=False))
    server_runs, raw_runs = [], []
    for _ in range(repeat):
        t0 = time.perf_counter()
        got = c.outliers("out", 10, k=10, sample=sample, seed=7, with_payload=False)
        server_runs.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        want = raw_outliers(x, 10, 10, rows)
        raw_runs.append(time.perf_counter() - t0)
    print(f"  server runs: {server_runs}; raw: {raw_runs}", flush=True)
    same = [o.id for o in got] == [f"p{i}" for i in want.tolist()]
    what = f"outliers k-NN k=10, {len(x):,} pts" + (f", sample {sample:,}" if sample else " (exact)")
    what += f" (median of {repeat})" if repeat > 1 else ""
    return [what, float(np.median(raw_runs)), float(np.median(server_runs)), None, same]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=200_000, help="points clustered (default 200k)")
    ap.add_argument("--outliers-size", type=int, default=100_000,
                    help="default 100k; 0 = k-means only")
    ap.add_argument("--k", type=int, default=100, help="k-means clusters (default 100)")
    ap.add_argument("--iterations", type=int, default=20)
    ap.add_argument("--sample", type=int, default=10_000, help="outliers sampled mode (default 10k)")
    ap.add_argument("--skip-exact-outliers", action="store_true")
    ap.add_argument("--repeat", type=int, default=3,
                    help="runs per contender for k-means and sampled outliers (default 3; "
                         "exact outliers run once)")
    args = ap.parse_args()
    workdir = Path(tempfile.mkdtemp(prefix="vecdb-analytics-bench-"))
    print(f"# {platform.processor() or platform.machine()}, {os.cpu_count()} cores, "
          f"faiss {faiss.__version__}, {time.strftime('%Y-%m-%d %H:%M')}", flush=True)
    srv = Server(workdir)
    rows = []
    try:
        x = clustered(args.size, 1)
        print(f"loading {args.size:,} x {DIM} ...", flush=True)
        print(f"  upsert {load(srv.client, 'km', x):.1f} s", flush=True)
        print(f"  server idle after {wait_idle(srv.proc.pid):.0f} s", flush=True)
        rows.append(bench_kmeans(srv.client, x, args.k, args.iterations, 3, args.repeat))
        print(rows[-1], flush=True)
        del x
        srv.client.drop_collection("km")
        if args.outliers_size:
            y = clustered(args.outliers_size, 2)
            print(f"loading {args.outliers_size:,} x {DIM} ...", flush=True)
            print(f"  upsert {load(srv.client, 'out', y):.1f} s", flush=True)
            print(f"  server idle after {wait_idle(srv.proc.pid):.0f} s", flush=True)
            rows.append(bench_outliers(srv.client, y, args.sample, args.repeat))
            print(rows[-1], flush=True)
            if not args.skip_exact_outliers:
                rows.append(bench_outliers(srv.client, y, None, 1))
                print(rows[-1], flush=True)
    finally:
        srv.close()
        shutil.rmtree(workdir, ignore_errors=True)
    print(table(rows))


def table(rows: list) -> str:
    out = ["", "| work | raw FAISS s | server s (client wall) | server job s | ratio raw/server "
           "| same answer |", "|---|---|---|---|---|---|"]
    for what, raw, server, job, same in rows:
        job_s = "" if job is None else f"{job:.2f}"
        out.append(f"| {what} | {raw:.2f} | {server:.2f} | {job_s} | {raw / server:.2f}x | {same} |")
    return "\n".join(out)


if __name__ == "__main__":
    main()
