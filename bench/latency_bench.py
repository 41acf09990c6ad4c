#!/usr/bin/env python3
"""One client through the gRPC server vs raw FAISS: single-query latency and batch search,
payloads off and on; optionally a second checkout's server interleaved (before/after).

Not a test. Builds (once, cached in --workdir) two HNSW collections over the same
116,033 x 384 embedding-like vectors (tests/quant_data.py, as ``compare.py --data
embeddings``; M=32, efC=100, cosine): ``ids`` (no payloads) and ``pay`` (a small payload
per point). Starts ``python -m vecdb_server`` on a copy of them for this checkout (and
for ``--before DIR``, another checkout), then runs rounds that rotate through the sides:
each side's SDK client in its own process (its checkout's vecdb_client), and raw FAISS
on the checkpoint's own index file (1 thread for single queries, all cores for batches,
as compare.py). Ratios are taken within a round; medians are printed.

    python bench/latency_bench.py --rounds 6 --seconds 2
    python bench/latency_bench.py --before /tmp/old-checkout   # git worktree add ... <rev>
"""
from __future__ import annotations

import argparse
import glob
import json
import os
import shutil
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
N, EF, K = 116_033, 32, 10
# measure key -> (collection, single query?, with_payload)
KEYS = {"batch, payloads off": ("ids", False, False), "single, payloads off": ("ids", True, False),
        "batch, payloads on": ("pay", False, True), "single, payloads on": ("pay", True, True)}


def _env(root: Path) -> dict:
    return {**os.environ, "PYTHONPATH": os.pathsep.join(str(root / s) for s in ("", "server", "client"))}


def vectors(workdir: Path) -> tuple[np.ndarray, np.ndarray]:
    cache = workdir / "vectors.npz"
    if not cache.exists():
        sys.path.insert(0, str(ROOT))
        from tests.quant_data import embeddings
        np.savez(cache, base=embeddings(N, seed=0), queries=embeddings(1000, seed=1))
    z = np.load(cache)
    return z["base"], np.ascontiguousarray(z["queries"])


def build(workdir: Path) -> Path:
    data = workdir / "data"
    if (workdir / "built").exists():
        return data
    sys.path[:0] = [str(ROOT / s) for s in ("", "server", "client")]
    from vecdb import Database, DatabaseOptions
    base, _ = vectors(workdir)
    shutil.rmtree(data, ignore_errors=True)
    db = Database.open(str(data), DatabaseOptions(background=False))
    ids = [str(i) for i in range(N)]
    for name in ("ids", "pay"):
        db.create_collection(name, base.shape[1], metric="cosine", index="hnsw",
                             index_params={"M": 32, "ef_construction": 100, "ef_search": EF})
        for lo in range(0, N, 10_000):
            hi = min(lo + 10_000, N)
            pays = [{"i": i, "tag": f"t{i % 10}", "title": f"gloss number {i}"}
                    for i in range(lo, hi)] if name == "pay" else None
            db.upsert(name, ids[lo:hi], base[lo:hi], pays)
        db.maintain()
        print(f"  built {name}: {db.describe_collection(name).index_state}", flush=True)
    db.close()
    (workdir / "built").touch()
    return data


def start_server(root: Path, data: Path, log: Path) -> tuple[subprocess.Popen, str]:
    sys.path[:0] = [str(ROOT / "bench")]
    from bench_peers import free_port  # the port helper compare.py uses
    port = free_port()
    with open(log, "w") as out:  # the server keeps its own copy of the descriptor
        proc = subprocess.Popen(
            [sys.executable, "-m", "vecdb_server", "--host", "127.0.0.1", "--port", str(port),
             "--data-dir", str(data), "--metrics-port", "-1", "--recall-sample-rate", "0",
             "--log-level", "WARNING"], env=_env(root), stdout=out, stderr=subprocess.STDOUT)
    return proc, f"127.0.0.1:{port}"


def client(target: str, seconds: float, queries_file: str) -> dict:
    """Runs in a child process with the side's own SDK: every KEYS measure once."""
    from vecdb_client import Client
    q = np.load(queries_file)["queries"]
    c = Client(target, timeout=300)
    c.wait_ready(120)
    out = {}
    for key, (coll, single, wp) in KEYS.items():
        def call(i, coll=coll, single=single, wp=wp):
            if single:
                return c.search(coll, vector=q[i % len(q)], k=K, ef_search=EF, with_payload=wp)
            return c.search(coll, vectors=q, k=K, ef_search=EF, with_payload=wp)
        for i in range(50 if single else 1):  # warm-up
            call(i)
        lat, t0, i = [], time.perf_counter(), 0
        while time.perf_counter() - t0 < seconds:
            t = time.perf_counter()
            call(i)
            lat.append(time.perf_counter() - t)
            i += 1
        wall = time.perf_counter() - t0
        out[key] = {"qps": len(lat) * (1 if single else len(q)) / wall,
                    "p50_ms": float(np.median(lat) * 1000)}
    c.close()
    return out


def raw_faiss(data: Path, seconds: float, queries_file: str) -> dict:
    import faiss
    q = np.load(queries_file)["queries"]
    q = q / np.linalg.norm(q, axis=1, keepdims=True)
    index = faiss.read_index(glob.glob(str(data / "collections/1/shard-0/ckpt-*/ann.faiss"))[0])
    params = faiss.SearchParametersHNSW(efSearch=EF)
    out = {}
    for key, threads, rows in (("single", 1, 1), ("batch", os.cpu_count() or 1, len(q))):
        faiss.omp_set_num_threads(threads)
        index.search(q[:rows], K, params=params)
        lat, t0, i = [], time.perf_counter(), 0
        while time.perf_counter() - t0 < seconds:
            lo = (i * rows) % len(q)
            t = time.perf_counter()
            index.search(q[lo:lo + rows], K, params=params)
            lat.append(time.perf_counter() - t)
            i += 1
        out[key] = {"qps": len(lat) * rows / (time.perf_counter() - t0),
                    "p50_ms": float(np.median(lat) * 1000)}
    return out


def child(kind: str, root: Path, *args: str) -> dict:
    got = subprocess.run([sys.executable, __file__, "--child", kind, *args], env=_env(root),
                         capture_output=True, text=True, check=True)
    return json.loads(got.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=6)
    ap.add_argument("--seconds", type=float, default=2.0, help="per measure and round")
    ap.add_argument("--before", type=Path, help="another checkout whose server runs beside")
    ap.add_argument("--workdir", type=Path, default=ROOT / "bench" / ".cache" / "latency_bench")
    ap.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    a = ap.parse_args(argv)
    if a.child:
        kind, *rest = a.child
        out = client(rest[0], float(rest[1]), rest[2]) if kind == "client" else \
            raw_faiss(Path(rest[0]), float(rest[1]), rest[2])
        print(json.dumps(out))
        return 0
    a.workdir.mkdir(parents=True, exist_ok=True)
    data = build(a.workdir)
    _, queries = vectors(a.workdir)
    qfile = str(a.workdir / "queries.npz")
    np.savez(qfile, queries=queries)
    sides = {"after": ROOT} if a.before is None else {"before": a.before.resolve(), "after": ROOT}
    procs, targets = [], {}
    try:
        for name, root in sides.items():
            copy = a.workdir / f"data-{name}"
            shutil.rmtree(copy, ignore_errors=True)
            shutil.copytree(data, copy)
            proc, targets[name] = start_server(root, copy, a.workdir / f"server-{name}.log")
            procs.append(proc)
        res: dict = {name: [] for name in (*sides, "faiss")}
        order = list(sides)
        for r in range(a.rounds):
            for name in order[r % len(order):] + order[:r % len(order)]:
                res[name].append(child("client", sides[name], targets[name], str(a.seconds), qfile))
            res["faiss"].append(child("faiss", ROOT, str(data), str(a.seconds), qfile))
            print(f"  round {r + 1}/{a.rounds} done", flush=True)
    finally:
        for proc in procs:
            proc.terminate()
            proc.wait(60)
    print(f"\n{a.rounds} rounds x {a.seconds} s, medians; ratios per round, then the median")
    for key, (_, single, _) in KEYS.items():
        raw = [f["single" if single else "batch"]["qps"] for f in res["faiss"]]
        line = f"{key:22} raw FAISS {np.median(raw):8,.0f} q/s |"
        for name in sides:
            qps = [x[key]["qps"] for x in res[name]]
            p50 = [x[key]["p50_ms"] for x in res[name]]
            line += (f" {name} {np.median(qps):7,.0f} q/s, p50 {np.median(p50):6.2f} ms, "
                     f"x FAISS {np.median(np.divide(qps, raw)):.2f} |")
        if a.before is not None:
            line += " after/before q/s {:.2f}".format(np.median(np.divide(
                [x[key]["qps"] for x in res["after"]], [x[key]["qps"] for x in res["before"]])))
        print(line)
    (a.workdir / "result.json").write_text(json.dumps(res, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
