"""Measurement kernels for bench/compare.py (not a test): recall, batch and single-query
throughput, concurrent clients (threads or processes), memory from /proc.

Everything here is system-agnostic: a system is reached through plain callables
(``search_batch(Q) -> (q, k) rows``, ``search_one(q) -> (k,) rows``), or, for
client processes, through a picklable connection dict that ``bench_servers.remote_searcher``
turns into a callable inside the worker process.
"""
from __future__ import annotations

import multiprocessing as mp
import os
import threading
import time
from pathlib import Path
from typing import Callable

import numpy as np


# ------------------------------------------------------------------ quality
def recall_at(found: np.ndarray, gt: np.ndarray, k: int) -> float:
    """Mean |found[:k] & gt[:k]| / k over queries (rows; -1 = no result)."""
    hits = 0
    for row, truth in zip(found[:, :k], gt[:, :k]):
        hits += len(np.intersect1d(row[row >= 0], truth, assume_unique=False))
    return hits / (k * len(gt))


# ------------------------------------------------------------------ memory (/proc)
def _status(pid: int) -> dict[str, int]:
    out = {}
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                key, _, val = line.partition(":")
                if key in ("VmRSS", "VmHWM"):
                    out[key] = int(val.split()[0]) * 1024
    except (FileNotFoundError, ProcessLookupError):
        pass
    return out


def descendants(pid: int) -> list[int]:
    """pid and every process below it (from /proc/*/stat parent links)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                with open(f"/proc/{entry}/stat") as fh:
                    ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        todo.extend(children.get(p, []))
    return out


def tree_memory_mb(pid: int) -> dict[str, float]:
    """RSS now and peak RSS (VmHWM, summed over the process tree: an upper bound
    when peaks of different processes did not coincide), in MB."""
    rss = hwm = 0
    for p in descendants(pid):
        st = _status(p)
        rss += st.get("VmRSS", 0)
        hwm += st.get("VmHWM", 0)
    return {"rss_mb": rss / 1e6, "peak_mb": hwm / 1e6}


def self_memory_mb() -> dict[str, float]:
    st = _status(os.getpid())
    return {"rss_mb": st.get("VmRSS", 0) / 1e6, "peak_mb": st.get("VmHWM", 0) / 1e6}


# ------------------------------------------------------------------ throughput
def batch_run(search_batch: Callable[[np.ndarray], np.ndarray], queries: np.ndarray,
              min_seconds: float, batch: int) -> tuple[float, np.ndarray]:
    """(queries/s, found rows of the first pass). Passes over all queries in calls of
    ``batch`` queries until ``min_seconds`` passed (at least one pass)."""
    search_batch(queries[:batch])  # warm-up
    found, n, t0 = [], 0, time.perf_counter()
    while True:
        for lo in range(0, len(queries), batch):
            rows = search_batch(queries[lo:lo + batch])
            if len(found) * batch < len(queries):
                found.append(rows)
            n += len(rows)
        if time.perf_counter() - t0 >= min_seconds:
            break
    return n / (time.perf_counter() - t0), np.concatenate(found)[:len(queries)]


def single_run(search_one: Callable[[np.ndarray], np.ndarray], queries: np.ndarray,
               seconds: float) -> dict:
    """One client, one query per call, sequentially, until ``seconds`` or every query."""
    for q in queries[:3]:
        search_one(q)
    lat = []
    t0 = time.perf_counter()
    for q in queries:
        t = time.perf_counter()
        search_one(q)
        lat.append(time.perf_counter() - t)
        if t - t0 >= seconds:
            break
    return _summary(lat, time.perf_counter() - t0)


def _summary(lat: list[float], elapsed: float) -> dict:
    ms = np.array(lat) * 1000 if lat else np.zeros(1)
    return {"qps": len(lat) / elapsed, "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99)), "n": len(lat)}


def _loop(search: Callable, queries: np.ndarray, offset: int, stride: int,
          ready: Callable[[], None], go: Callable[[], float], seconds: float, out: list) -> None:
    """One client: warm up (connect), say ready, wait for the common start, then send one
    query per call until the window ends. Appends its latencies, or an error text."""
    try:
        search(queries[offset % len(queries)])
    except Exception as exc:  # reported by the caller
        out.append(f"{type(exc).__name__}: {exc}")
        return
    finally:
        ready()
    start_at = go()
    while time.time() < start_at:
        time.sleep(0.0005)
    end, j, lat = start_at + seconds, offset, []
    try:
        while True:
            t = time.perf_counter()
            search(queries[j % len(queries)])
            lat.append(time.perf_counter() - t)
            j += stride
            if time.time() >= end:
                break
    except Exception as exc:
        out.append(f"{type(exc).__name__}: {exc}")
        return
    out.append(lat)


def _threads(make_searcher: Callable[[], Callable], queries: np.ndarray, clients: int,
             seconds: float, offset: int, stride: int, ready: Callable[[], None],
             go: Callable[[], float]) -> list:
    out: list = []
    pool = []
    for t in range(clients):
        try:
            search = make_searcher()
        except Exception as exc:
            out.append(f"{type(exc).__name__}: {exc}")
            ready()
            continue
        pool.append(threading.Thread(target=_loop, daemon=True, args=(
            search, queries, offset + t, stride, ready, go, seconds, out)))
    for th in pool:
        th.start()
    for th in pool:
        th.join(seconds + 300)
    return out


def _collect(per_client: list, seconds: float, clients: int, mode: str) -> dict:
    errors = [x for x in per_client if isinstance(x, str)]
    if errors:
        raise RuntimeError(f"{len(errors)} client(s) failed: {errors[0]}")
    res = _summary([x for per in per_client for x in per], seconds)
    res.update(clients=clients, mode=mode)
    return res


def concurrent_threads(make_searcher: Callable[[], Callable], queries: np.ndarray,
                       clients: int, seconds: float) -> dict:
    """``clients`` threads in this process, each with its own searcher."""
    readies, started, start = threading.Semaphore(0), threading.Event(), [0.0]
    got: list = []
    runner = threading.Thread(target=lambda: got.extend(_threads(
        make_searcher, queries, clients, seconds, 0, clients, readies.release,
        lambda: (started.wait(), start[0])[1])), daemon=True)
    runner.start()
    for _ in range(clients):
        readies.acquire(timeout=300)
    start[0] = time.time() + 0.05
    started.set()
    runner.join(seconds + 400)
    return _collect(got, seconds, clients, "threads")


def _proc_main(conn: dict, queries_path: str, threads: int, offset: int, stride: int,
               seconds: float, ready_q, go_event, start_value, out_q) -> None:
    try:
        from bench_servers import remote_searcher  # lazy: only the client library is imported
        queries = np.load(queries_path)
    except Exception as exc:
        for _ in range(threads):
            ready_q.put(1)
        out_q.put([f"{type(exc).__name__}: {exc}"])
        return
    try:
        out = _threads(lambda: remote_searcher(conn), queries, threads, seconds, offset, stride,
                       lambda: ready_q.put(1), lambda: (go_event.wait(), start_value.value)[1])
    except Exception as exc:
        out = [f"{type(exc).__name__}: {exc}"]
    out_q.put(out)


def concurrent_procs(conn: dict, queries: np.ndarray, clients: int, seconds: float,
                     procs: int, scratch: Path) -> dict:
    """``clients`` clients spread over ``procs`` spawned processes (threads inside each):
    the clients' own Python cost (GIL) is not serialized in one interpreter. Every client
    connects and sends a warm-up query before the common start."""
    procs = max(1, min(procs, clients))
    path = scratch / "queries.npy"
    if not path.exists():
        np.save(path, queries)
    ctx = mp.get_context("spawn")
    ready_q, out_q, go = ctx.Queue(), ctx.Queue(), ctx.Event()
    start = ctx.Value("d", 0.0)
    per = [clients // procs + (1 if i < clients % procs else 0) for i in range(procs)]
    workers, offset = [], 0
    for n in per:
        p = ctx.Process(target=_proc_main, daemon=True, args=(
            conn, str(path), n, offset, clients, seconds, ready_q, go, start, out_q))
        p.start()
        workers.append(p)
        offset += n
    try:
        for _ in range(clients):
            ready_q.get(timeout=300)
    finally:
        start.value = time.time() + 0.1
        go.set()
    got = []
    for _ in workers:
        got.extend(out_q.get(timeout=seconds + 400))
    for p in workers:
        p.join(30)
    return _collect(got, seconds, clients, f"{procs} processes")
