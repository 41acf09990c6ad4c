#!/usr/bin/env python3
"""Through-the-server cost vs the engine in-process, threaded vs grpc.aio server, and
the SDK's embedded face (``vecdb.connect``: the Client API with no server).

Not a test. Builds one data set, measures the engine in-process, then starts
``python -m vecdb_server`` on the same data directory once per server mode (and opens
a copy with ``vecdb.connect`` for mode ``embedded``) and measures the same operations
through the SDK:

* batch search throughput (queries/s) at --batch queries per call (target: server >= 0.9x engine)
* single-query QPS and p50/p99 latency with 1, 4 and 16 concurrent clients
  (client threads in this process, one Client/channel each)
* upsert throughput (points/s) in batches of --upsert-batch points

    python bench/grpc_bench.py                      # full run, prints a table of ratios
    python bench/grpc_bench.py --modes threaded,embedded
    python bench/grpc_bench.py --n 20000 --seconds 1 --json out.json
"""
from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
for sub in ("", "server", "client"):  # run from a checkout without installing
    if str(ROOT / sub) not in sys.path:
        sys.path.insert(0, str(ROOT / sub))

from vecdb import Database, DatabaseOptions  # noqa: E402
from vecdb_client import Client  # noqa: E402

CONCURRENCY = (1, 4, 16)


def clustered(n: int, dim: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    centers = rng.standard_normal((64, dim)).astype(np.float32)
    return (centers[rng.integers(0, 64, n)] + 0.35 * rng.standard_normal((n, dim))).astype(
        np.float32)


# ------------------------------------------------------------------ measurement kernels
def batch_qps(search: Callable[[np.ndarray], object], queries: np.ndarray, batch: int,
              seconds: float) -> float:
    search(queries[:batch])  # warm up
    done, i, t0 = 0, 0, time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        q = queries[i:i + batch]
        if len(q) < batch:
            i, q = 0, queries[:batch]
        search(q)
        done += batch
        i += batch
    return done / (time.perf_counter() - t0)


def concurrent_single(make_search: Callable[[], tuple[Callable, Callable]],
                      queries: np.ndarray, threads: int, seconds: float) -> dict:
    """Each thread: its own searcher (and client), single-query calls in a loop."""
    lat: list[list[float]] = [[] for _ in range(threads)]
    start, stop = threading.Barrier(threads + 1), threading.Event()

    def worker(t: int) -> None:
        search, close = make_search()
        search(queries[t])
        start.wait()
        j = t
        while not stop.is_set():
            t0 = time.perf_counter()
            search(queries[j % len(queries)])
            lat[t].append(time.perf_counter() - t0)
            j += threads
        close()

    pool = [threading.Thread(target=worker, args=(t,)) for t in range(threads)]
    for th in pool:
        th.start()
    start.wait()
    t0 = time.perf_counter()
    time.sleep(seconds)
    stop.set()
    for th in pool:
        th.join()
    elapsed = time.perf_counter() - t0
    all_lat = np.array([x for per in lat for x in per]) * 1000
    return {"qps": len(all_lat) / elapsed, "p50_ms": float(np.percentile(all_lat, 50)),
            "p99_ms": float(np.percentile(all_lat, 99))}


def upsert_rate(upsert: Callable[[list, np.ndarray, list], object], ids: list[str],
                vecs: np.ndarray, payloads: list[dict]) -> float:
    t0 = time.perf_counter()
    upsert(ids, vecs, payloads)
    return len(ids) / (time.perf_counter() - t0)


# ------------------------------------------------------------------ the two sides
class Side:
    """One way of calling the engine: in-process or through a server via the SDK."""

    def __init__(self, name: str, search: Callable, make_single: Callable,
                 upsert_run: Callable[[int], float]):
        self.name, self.search, self.make_single, self.upsert_run = (
            name, search, make_single, upsert_run)


def engine_side(db: Database, a: argparse.Namespace, extra: np.ndarray) -> Side:
    def upsert_run(r: int) -> float:
        db.create_collection(f"upsert_bench{r}", dim=a.dim, index="flat")
        ids, pays = [f"u{i}" for i in range(len(extra))], [{"i": i} for i in range(len(extra))]

        def go(ids, vecs, pays):
            for s in range(0, len(ids), a.upsert_batch):
                db.upsert(f"upsert_bench{r}", ids[s:s + a.upsert_batch],
                          vecs[s:s + a.upsert_batch], pays[s:s + a.upsert_batch])
        rate = upsert_rate(go, ids, extra, pays)
        db.drop_collection(f"upsert_bench{r}")
        return rate
    return Side("engine", lambda q: db.search("bench", q, k=a.k),
                lambda: ((lambda q: db.search("bench", q[None, :], k=a.k)), lambda: None),
                upsert_run)


def server_side(mode: str, c: Client, target: str | None, a: argparse.Namespace,
                extra: np.ndarray) -> Side:
    """Through the SDK: a server at ``target`` (one Client per client thread), or the
    embedded face ``c`` itself (target None: every thread shares it, as one process would)."""
    def make_single() -> tuple[Callable, Callable]:
        cl = Client(target, timeout=60) if target else c
        return (lambda q: cl.search("bench", vector=q, k=a.k)), (
            cl.close if target else (lambda: None))

    def upsert_run(r: int) -> float:
        name = f"upsert_bench{r}"
        c.create_collection(name, dim=a.dim, index="flat")
        rate = upsert_rate(lambda i, v, p: c.upsert(name, i, v, p),
                           [f"u{i}" for i in range(len(extra))], extra,
                           [{"i": i} for i in range(len(extra))])
        c.drop_collection(name)
        return rate
    return Side(mode, lambda q: c.search("bench", vectors=q, k=a.k), make_single, upsert_run)


def compare(sides: list[Side], a: argparse.Namespace, queries: np.ndarray) -> dict:
    """Rounds rotate through every side (engine first in the list) so that drifting
    background load hits all of them alike; ratios are taken within a round."""
    out: dict = {side.name: {} for side in sides}
    out["ratio"] = {side.name: {} for side in sides[1:]}

    def rounds(key: str, measure: Callable[[Side, int], float | dict]) -> None:
        vals: dict[str, list] = {side.name: [] for side in sides}
        for r in range(a.rounds):
            for side in sides[r % len(sides):] + sides[:r % len(sides)]:
                vals[side.name].append(measure(side, r))
        for name, got in vals.items():
            out[name][key] = got
        base = _num(vals[sides[0].name])
        for side in sides[1:]:
            out["ratio"][side.name][key] = [x / e for x, e in zip(_num(vals[side.name]), base)]

    rounds("batch_qps", lambda s, r: batch_qps(s.search, queries, a.batch, a.seconds))
    for c in CONCURRENCY:
        rounds(f"single_c{c}", lambda s, r, c=c: concurrent_single(s.make_single, queries, c,
                                                                   a.seconds))
    rounds("upsert_pps", lambda s, r: s.upsert_run(r))
    return out


def _num(vals: list) -> list[float]:
    return [v["qps"] if isinstance(v, dict) else v for v in vals]


def summarize(vals: list) -> dict[str, float]:
    if isinstance(vals[0], dict):
        return {k: float(np.median([v[k] for v in vals])) for k in vals[0]}
    return {"value": float(np.median(vals))}


# ------------------------------------------------------------------ setup
def load(data_dir: Path, a: argparse.Namespace, data: np.ndarray) -> None:
    db = Database.open(str(data_dir), DatabaseOptions(background=False))
    try:
        db.create_collection("bench", dim=a.dim, index="flat")
        ids = [f"p{i}" for i in range(a.n)]
        payloads = [{"i": i, "tag": f"t{i % 10}"} for i in range(a.n)]
        t0 = time.perf_counter()
        for s in range(0, a.n, 5000):
            db.upsert("bench", ids[s:s + 5000], data[s:s + 5000], payloads[s:s + 5000])
        print(f"  loaded {a.n} x {a.dim} in {time.perf_counter() - t0:.1f}s", flush=True)
    finally:
        db.close()  # checkpoints: both copies below start from the same index file


class ServerProc:
    """``python -m vecdb_server`` on a data directory, started and SERVING."""

    def __init__(self, data_dir: Path, mode: str, log: Path):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            str(ROOT / s) for s in ("", "server", "client"))}
        self._fh = open(log, "w")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "vecdb_server", "--port", "0", "--data-dir", str(data_dir),
             "--server-mode", mode, "--background", "false", "--metrics-port", "-1",
             "--recall-sample-rate", "0"],
            stdout=self._fh, stderr=subprocess.STDOUT, env=env)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.proc.poll() is None:
            m = re.search(r"listening on [\d.]+:(\d+)", log.read_text())
            if m:
                self.target = f"127.0.0.1:{m.group(1)}"
                with Client(self.target) as c:
                    c.wait_ready(60)
                return
            time.sleep(0.05)
        raise RuntimeError(f"server did not start:\n{log.read_text()}")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(60)
        self._fh.close()


# ------------------------------------------------------------------ report
def table(res: dict, modes: list[str], a: argparse.Namespace) -> str:
    keys = [("batch_qps", "value", f"batch search q/s (batch {a.batch})")]
    for c in CONCURRENCY:
        keys += [(f"single_c{c}", "qps", f"single-query QPS, {c} clients"),
                 (f"single_c{c}", "p50_ms", f"  p50 ms, {c} clients"),
                 (f"single_c{c}", "p99_ms", f"  p99 ms, {c} clients")]
    keys.append(("upsert_pps", "value", f"upsert points/s ({a.upsert_batch}/batch)"))
    head = f"{'metric':32}{'engine':>10}" + "".join(f"{m:>10}{'x eng':>7}" for m in modes)
    lines = [head, "-" * len(head)]
    for key, field, label in keys:
        eng = summarize(res["engine"][key])[field]
        line = f"{label:32}{eng:10.1f}"
        for m in modes:
            val = summarize(res[m][key])[field]
            ratio = (float(np.median(res["ratio"][m][key])) if field in ("value", "qps")
                     else val / eng)
            line += f"{val:10.1f}{ratio:7.2f}"
        lines.append(line)
    lines.append("x eng: server/engine, median of per-round ratios (latency: server/engine)")
    if "threaded" in modes and "aio" in modes:
        m1, m2 = "threaded", "aio"

        def r(key: str) -> float:
            return float(np.median([y / x for x, y in zip(_num(res[m1][key]),
                                                          _num(res[m2][key]))]))
        lines.append(f"{m2} / {m1} (per round): batch {r('batch_qps'):.2f}x, "
                     + ", ".join(f"c{c} QPS {r(f'single_c{c}'):.2f}x" for c in CONCURRENCY)
                     + f", upsert {r('upsert_pps'):.2f}x")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=100_000, help="points in the search collection")
    ap.add_argument("--dim", type=int, default=128)
    ap.add_argument("--k", type=int, default=10)
    ap.add_argument("--batch", type=int, default=100, help="queries per batch-search call")
    ap.add_argument("--seconds", type=float, default=2.0, help="length of one round")
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds per metric")
    ap.add_argument("--upsert-n", type=int, default=10_000, help="points per upsert round")
    ap.add_argument("--upsert-batch", type=int, default=1000)
    ap.add_argument("--modes", default="threaded,aio,embedded",
                    help="threaded, aio (servers) and/or embedded (vecdb.connect)")
    ap.add_argument("--workdir", type=Path, default=ROOT / "bench" / ".cache" / "grpc_bench")
    ap.add_argument("--json", type=Path, help="also write the raw numbers here")
    a = ap.parse_args(argv)
    modes = a.modes.split(",")
    shutil.rmtree(a.workdir, ignore_errors=True)
    a.workdir.mkdir(parents=True)
    print(f"grpc_bench: n={a.n} dim={a.dim} k={a.k} batch={a.batch} flat index, "
          f"{os.cpu_count()} cpus, {a.rounds} rounds x {a.seconds}s", flush=True)
    load(a.workdir / "engine", a, clustered(a.n, a.dim, seed=1))
    for m in modes:  # one identical copy of the data directory per server
        shutil.copytree(a.workdir / "engine", a.workdir / m)
    queries = clustered(4096, a.dim, seed=2)
    extra = clustered(a.upsert_n, a.dim, seed=3)
    db = Database.open(str(a.workdir / "engine"), DatabaseOptions(background=False))
    servers: list[ServerProc] = []
    clients: list[Client] = []
    try:
        sides = [engine_side(db, a, extra)]
        for m in modes:
            target = None
            if m == "embedded":
                import vecdb
                clients.append(vecdb.connect(a.workdir / m, timeout=120,
                                             chunk_points=a.upsert_batch,
                                             options=DatabaseOptions(background=False)))
            else:
                servers.append(ServerProc(a.workdir / m, m, a.workdir / f"server-{m}.log"))
                target = servers[-1].target
                clients.append(Client(target, timeout=120, chunk_points=a.upsert_batch))
            assert clients[-1].count("bench") == a.n
            sides.append(server_side(m, clients[-1], target, a, extra))
        print(f"measuring engine, {', '.join(modes)} (interleaved) ...", flush=True)
        res = compare(sides, a, queries)
    finally:
        for c in clients:
            c.close()
        for srv in servers:
            srv.stop()
        db.close()
    print()
    print(table(res, modes, a))
    if a.json:
        a.json.write_text(json.dumps({"args": {k: str(v) for k, v in vars(a).items()},
                                      "results": res}, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
