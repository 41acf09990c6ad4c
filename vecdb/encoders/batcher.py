"""Micro-batching: concurrent encode calls are merged into one model call.

One worker thread per encoder takes the oldest waiting request, then keeps
collecting requests of the same kind ("document" / "query") until either
``max_batch`` texts are gathered or ``max_wait_s`` has passed since it took the
first one (bounded wait: a lone request waits at most ``max_wait_s``, 2 ms by
default). The merged texts go to the model in ONE call; each caller gets its
own rows back. A request bigger than ``max_batch`` is never split here (the
model batches internally) and is never merged with others. Requests of the
other kind wait for the next round. If the model call raises, every caller of
that merged call gets the exception.

The model runs one call at a time: on CPU torch already uses every core
inside a call, on a GPU one larger batch beats two concurrent ones.
"""
from __future__ import annotations

import collections
import threading
import time
from concurrent.futures import Future
from typing import Callable

import numpy as np


class MicroBatcher:
    def __init__(self, fn: Callable[[list[str], str], np.ndarray], max_batch: int = 64,
                 max_wait_s: float = 0.002, name: str = "vecdb-encoder"):
        self.fn, self.max_batch, self.max_wait_s = fn, max(1, int(max_batch)), max_wait_s
        self._cond = threading.Condition()
        self._pending: collections.deque[tuple[list[str], str, Future]] = collections.deque()
        self._closed = False
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()
        self.calls = 0  # model calls made (tests and benchmarks read it)

    def submit(self, texts: list[str], kind: str) -> np.ndarray:
        """Blocks until this request's rows are encoded; returns them."""
        fut: Future = Future()
        with self._cond:
            if self._closed:
                raise RuntimeError("encoder batcher is closed")
            self._pending.append((texts, kind, fut))
            self._cond.notify_all()
        return fut.result()

    def close(self) -> None:
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join(5)

    def _take(self) -> list[tuple[list[str], str, Future]] | None:
        """The next merged batch (same kind, bounded size and wait); None once closed."""
        with self._cond:
            while not self._pending:
                if self._closed:
                    return None
                self._cond.wait()
            first = self._pending.popleft()
            batch, size, kind = [first], len(first[0]), first[1]
            deadline = time.monotonic() + self.max_wait_s
            while size < self.max_batch:
                # take every waiting request of this kind that still fits
                for item in list(self._pending):
                    if item[1] == kind and size + len(item[0]) <= self.max_batch:
                        self._pending.remove(item)
                        batch.append(item)
                        size += len(item[0])
                left = deadline - time.monotonic()
                if size >= self.max_batch or left <= 0 or self._closed:
                    break
                self._cond.wait(left)
            return batch

    def _run(self) -> None:
        while True:
            batch = self._take()
            if batch is None:
                return
            texts = [t for item in batch for t in item[0]]
            try:
                out = self.fn(texts, batch[0][1])
            except BaseException as exc:  # noqa: BLE001 - handed to every caller
                for _, _, fut in batch:
                    fut.set_exception(exc)
                continue
            finally:
                self.calls += 1
            start = 0
            for item_texts, _, fut in batch:
                fut.set_result(out[start:start + len(item_texts)])
                start += len(item_texts)
