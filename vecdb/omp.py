"""OpenMP threads for FAISS searches, set per call in the searching thread.

libgomp keeps the thread count per calling thread: ``faiss.omp_set_num_threads``
in one thread does not reach the gRPC worker or shard pool threads that run the
searches, which otherwise use every core. FAISS parallelises a search over its
queries, so a single-query search gains nothing from a team of threads, but pays
for it: every parallel region ends in a barrier, and when the cores are busy
(other requests, ingest, an encoder) the idle team members are descheduled and
the barrier waits for them. Measured on a loaded 2-core VM, 20k x 384 HNSW,
single queries: 126 QPS with 2 threads vs 1,115 with 1.

So a search of one query runs on one thread; a batch gets up to ``cap`` threads
(``faiss_omp_threads``; 0 = all cores) split across the shards searched in
parallel, and never more threads than queries. A batch merged from concurrent
requests (vecdb.coalesce) runs on one thread: the cores are busy with the
other requests already, several merged batches run side by side instead.
"""
from __future__ import annotations

import contextlib
import os
import threading

import faiss

CORES = os.cpu_count() or 1
_cap = 0  # threads a whole batch may use (0 = all cores)
_local = threading.local()


def configure(max_threads: int) -> None:
    """The cap for batch searches (DatabaseOptions.faiss_omp_threads; 0 = all cores)."""
    global _cap
    _cap = max(0, int(max_threads))


def for_search(queries: int, shards: int = 1) -> None:
    """Set this thread's FAISS thread count for a search of ``queries`` queries that
    runs beside ``shards - 1`` other shard searches."""
    cap = 1 if is_single() else max(1, (_cap or CORES) // max(1, shards))
    faiss.omp_set_num_threads(max(1, min(queries, cap)))


def for_add(points: int) -> None:
    """Set this thread's FAISS thread count for adding ``points`` vectors to an ANN index
    (HNSW inserts run in parallel over a batch) under the shard's write lock: searches
    wait for it, so it may use ``cap`` threads, whatever this thread's last search set."""
    faiss.omp_set_num_threads(max(1, min(points, _cap or CORES)))


def is_single() -> bool:
    return getattr(_local, "single", False)


@contextlib.contextmanager
def single_threaded(on: bool = True):
    """Searches in this block (in this thread) use one thread whatever their size: for
    merged batches of concurrent requests (vecdb.coalesce), whose parallelism is the
    other requests running beside them on the other cores. Pool threads searching
    shards for such a batch enter it with the caller's ``is_single()``."""
    before, _local.single = is_single(), on
    try:
        yield
    finally:
        _local.single = before
