"""Dynamic batching of concurrent searches ("batch while busy").

FAISS answers a batch of queries far more cheaply per query than the same
queries one call at a time (one pass over the lists or the graph per thread, BLAS
for flat indexes, one OpenMP team instead of many, one RocksDB multi-get for the
payloads). Concurrent single-query requests are therefore merged:

* Requests with the same key (collection object, k, search params, what to
  return) share a queue. A request finding fewer than ``max_inflight``
  searches of its key running (default: one per core) runs at once: a lone
  client never waits.
* Requests arriving while ``max_inflight`` searches of their key run queue up.
  When a running search finishes, its thread hands the whole queue (up to
  ``max_batch`` queries) to the first queued request, which runs it as ONE
  search, single-threaded (vecdb.omp: the other cores run the other
  searches), and hands every other request its own rows. Throughput grows
  with concurrency instead of collapsing into contention.
* ``max_wait_s`` > 0 additionally lets a fresh leader wait that long for
  company before running (bigger batches for a GPU, at a latency cost); the
  default 0 adds no wait at all.
* A request of ``max_batch`` queries or more runs directly.

Results are those of running each request alone: FAISS searches each query of
a batch independently. If the merged search raises, every request is run again
on its own, so one request's error never reaches another.
"""
from __future__ import annotations

import threading
import time
from typing import Any, Callable, Hashable

import numpy as np

from . import omp


class _Request:
    __slots__ = ("queries", "done", "result", "error", "batch")

    def __init__(self, queries: np.ndarray):
        self.queries = queries
        self.done = threading.Event()
        self.result: list | None = None
        self.error: BaseException | None = None
        self.batch: list[_Request] | None = None  # set when handed a batch to run


class Coalescer:
    def __init__(self, max_batch: int = 256, max_wait_s: float = 0.0,
                 max_inflight: int = omp.CORES):
        self.max_batch, self.max_wait_s = max(1, int(max_batch)), max(0.0, float(max_wait_s))
        self.max_inflight = max(1, int(max_inflight))
        self._lock = threading.Lock()
        # key -> [searches running, queued requests, the batch a leader is gathering
        # (max_wait_s > 0) or None]; present while one runs
        self._queues: dict[Hashable, list] = {}
        self.batches = 0  # merged searches run (tests and benchmarks read them)
        self.merged = 0   # requests that ran inside another request's search

    def run(self, key: Hashable, queries: np.ndarray,
            search: Callable[[np.ndarray], list]) -> list:
        """``search(queries)`` -> one result per query, possibly merged with the
        queries of concurrent calls with the same ``key``."""
        if len(queries) >= self.max_batch:
            return search(queries)
        me = _Request(queries)
        with self._lock:
            state = self._queues.setdefault(key, [0, [], None])
            gathering = state[2]
            if gathering is not None and (sum(len(r.queries) for r in gathering)
                                          + len(queries) <= self.max_batch):
                gathering.append(me)  # a leader is waiting for company: join it
                batch = None
            elif state[0] < self.max_inflight:
                state[0] += 1
                batch = [me]
                if self.max_wait_s:
                    state[2] = batch
            else:
                state[1].append(me)
                batch = None
        if batch is None:
            me.done.wait()
            if me.batch is None:  # another thread ran our queries
                if me.error is not None:
                    raise me.error
                return me.result
            batch = me.batch  # we lead the next batch
        elif self.max_wait_s:
            batch = self._gather(key, batch)
        self._lead(key, batch, search)
        if me.error is not None:
            raise me.error
        return me.result

    def _gather(self, key: Hashable, batch: list[_Request]) -> list[_Request]:
        """Wait max_wait_s while later requests join ``batch``; then close it."""
        time.sleep(self.max_wait_s)
        with self._lock:
            state = self._queues[key]
            if state[2] is batch:
                state[2] = None
            return self._take(state[1], batch)

    def _take(self, queue: list[_Request], batch: list[_Request]) -> list[_Request]:
        """Move requests from ``queue`` into ``batch`` while they fit (lock held)."""
        size = sum(len(r.queries) for r in batch)
        while queue and (size + len(queue[0].queries) <= self.max_batch or not batch):
            r = queue.pop(0)
            batch.append(r)
            size += len(r.queries)
        return batch

    def _lead(self, key: Hashable, batch: list[_Request], search: Callable) -> None:
        try:
            self._search(batch, search)
        finally:
            with self._lock:
                state = self._queues[key]
                nxt = self._take(state[1], []) if state[1] else None
                if nxt is None:  # this runner retires
                    state[0] -= 1
                    if not state[0]:
                        del self._queues[key]
            if nxt is not None:  # hand the queue over before handing results out
                nxt[0].batch = nxt
                nxt[0].done.set()
            for r in batch[1:]:
                r.done.set()

    def _search(self, batch: list[_Request], search: Callable) -> None:
        if len(batch) == 1:
            _settle(batch[0], search)
            return
        self.batches += 1
        self.merged += len(batch) - 1
        try:
            with omp.single_threaded():
                out = search(np.concatenate([r.queries for r in batch]))
        except Exception:  # noqa: BLE001 - run each alone: errors stay with their request
            for r in batch:
                _settle(r, search)
            return
        except BaseException as exc:  # e.g. KeyboardInterrupt: nobody may wake empty-handed
            for r in batch:
                r.error = exc
            raise
        start = 0
        for r in batch:
            r.result = out[start:start + len(r.queries)]
            start += len(r.queries)


def _settle(r: _Request, search: Callable[[np.ndarray], Any]) -> None:
    try:
        r.result = search(r.queries)
    except BaseException as exc:  # noqa: BLE001 - re-raised in the request's own thread
        r.error = exc
