"""GPU copies of a shard's vectors searched by FAISS (docs/gpu.md "What runs where").

* ``FaissFlatMirror``: the exact mirror on FAISS GPU flat indexes, as segments: an
  immutable *base* (every live vector when it was made) and a small growing *tail* that
  takes the adds, searched beside it. GpuIndexFlat's add re-allocates its whole storage
  and recomputes every norm, so adding to the base would move the whole shard per write;
  the tail's add moves only the tail. Deleted rows of either are masked and filtered from
  an over-fetched top-k. A background merge (``ShardGpu.maintain``) folds both into a new
  base once the tail or the dead rows pass their limits.
* ``AnnMirror``: a GPU copy of the built IVF index, or a CAGRA graph over the live vectors.

None of these take locks: the caller (``vecdb.gpu_index.ShardGpu``) holds the GPU's lock
around every call that allocates, searches or frees, and ``close()`` drops the GPU objects
(their last reference) under it.
"""
from __future__ import annotations

from typing import Callable

import numpy as np

from .topk import merge

DEAD_SHARE = 0.25  # torch: compact a mirror once this share of its rows are deleted
GPU_MAX_K = 2048  # largest k FAISS GPU indexes return
ANN_MAX_GONE = 1024  # deletes an ANN mirror filters out before it is re-copied
TAIL_MIN = 16384  # the flat tail may hold max(TAIL_MIN, base / TAIL_DIV) rows before a merge
TAIL_DIV = 16
MAX_DEAD = 1024  # dead rows (base + tail) before a merge
_EMPTY = np.zeros(0, np.int64)


class Rows:
    """Host-side row -> label map of a mirror, with a liveness mask."""

    def __init__(self, max_dead: int | None = None):
        self.labels = np.zeros(0, np.int64)
        self.alive = np.zeros(0, bool)
        self.n = 0  # rows in use (dead ones included)
        self.dead = 0
        self.max_dead = max_dead

    def find(self, labels: np.ndarray) -> np.ndarray:
        """Rows of those ``labels`` that are present and alive."""
        if self.n == 0 or len(labels) == 0:
            return _EMPTY
        lab = self.labels[:self.n]
        idx = np.minimum(np.searchsorted(lab, labels), self.n - 1)
        ok = (lab[idx] == labels) & self.alive[idx]
        return idx[ok]

    def live(self) -> np.ndarray:
        return self.labels[:self.n][self.alive[:self.n]]

    def plan(self, n_removed: int, n_added: int) -> tuple[bool, int]:
        """(compact?, rows in use after) for an op removing/adding that many labels."""
        dead, rows = self.dead + n_removed, self.n
        compact = dead > 0 and (dead > DEAD_SHARE * rows or
                                (self.max_dead is not None and dead > self.max_dead))
        return compact, (rows - dead if compact else rows) + n_added

    def kill(self, labels: np.ndarray) -> np.ndarray:
        rows = self.find(labels)
        self.alive[rows] = False
        self.dead += len(rows)
        return rows

    def compact(self) -> np.ndarray:
        """Drop dead rows; returns the old positions of the rows kept, in order."""
        keep = np.flatnonzero(self.alive[:self.n])
        m = len(keep)
        self.labels[:m] = self.labels[keep]
        self.alive[:m], self.alive[m:self.n] = True, False
        self.n, self.dead = m, 0
        return keep

    def append(self, labels: np.ndarray) -> tuple[int, int]:
        """Rows [start, end) for new labels; they must be increasing and above every label
        held (the engine's labels only grow); ValueError otherwise."""
        m = len(labels)
        if m and ((self.n and labels[0] <= self.labels[self.n - 1]) or np.any(np.diff(labels) <= 0)):
            raise ValueError("mirror labels must be added in increasing order")
        if self.n + m > len(self.labels):
            size = max(1024, 2 * (self.n + m))
            self.labels = np.concatenate([self.labels[:self.n], np.zeros(size - self.n, np.int64)])
            self.alive = np.concatenate([self.alive[:self.n], np.zeros(size - self.n, bool)])
        start = self.n
        self.labels[start:start + m] = labels
        self.alive[start:start + m] = True
        self.n += m
        return start, start + m


def first_valid(scores: np.ndarray, labels: np.ndarray, valid: np.ndarray, k: int):
    """Per row, the first k entries where ``valid`` (order kept); -1/NaN pad."""
    order = np.argsort(~valid, axis=1, kind="stable")[:, :k]
    s = np.take_along_axis(scores, order, 1).astype(np.float32)
    lab = np.take_along_axis(labels, order, 1).copy()
    bad = ~np.take_along_axis(valid, order, 1)
    s[bad], lab[bad] = np.nan, -1
    return s, lab


def padded(scores: np.ndarray, labels: np.ndarray, k: int):
    if scores.shape[1] < k:
        pad = ((0, 0), (0, k - scores.shape[1]))
        scores = np.pad(scores, pad, constant_values=np.nan)
        labels = np.pad(labels, pad, constant_values=-1)
    return scores, labels


class Segment:
    """One FAISS flat index (rows by position) and its row map."""

    def __init__(self, index, max_dead: int | None = None):
        self.index, self.rows = index, Rows(max_dead)

    def search(self, queries: np.ndarray, k: int):
        """(scores, labels) of the k best live rows, or None when the over-fetch for dead
        rows would pass the GPU's top-k limit."""
        kk = min(k + self.rows.dead, self.rows.n)
        if kk > GPU_MAX_K:
            return None
        dist, rows = self.index.search(queries, kk)
        valid = rows >= 0
        valid[valid] = self.rows.alive[rows[valid]]
        labels = np.where(valid, self.rows.labels[np.maximum(rows, 0)], -1)
        return first_valid(dist, labels, valid, min(k, kk))


class FaissFlatMirror:
    """Exact mirror on FAISS flat indexes: base + tail segments (module docstring).
    ``new_index()`` makes an empty flat index on the mirror's GPU (caller holds its lock)."""

    def __init__(self, new_index: Callable[[], object], dim: int, metric: str, fp16: bool):
        self.new_index, self.metric = new_index, metric
        self.base = Segment(new_index())
        try:
            self.tail = Segment(new_index())
        except BaseException:
            self.base.index = None  # freed here, under the caller's GPU lock
            raise
        # vectors + the float32 norm GpuIndexFlat keeps per row (for every metric)
        self.row_bytes = dim * (2 if fp16 else 4) + 4
        self.pending: list | None = None  # ops applied while a merge runs

    @property
    def rows(self) -> int:
        return self.base.rows.n + self.tail.rows.n

    @property
    def dead(self) -> int:
        return self.base.rows.dead + self.tail.rows.dead

    @property
    def live_count(self) -> int:
        return self.rows - self.dead

    @property
    def nbytes(self) -> int:
        return self.rows * self.row_bytes

    def tail_max(self) -> int:
        return max(TAIL_MIN, self.base.rows.n // TAIL_DIV)

    def needs_merge(self) -> bool:
        return self.tail.rows.n > self.tail_max() or self.dead > MAX_DEAD

    def planned_bytes(self, n_removed: int, n_added: int) -> int:
        """Bytes held during a write: the tail's add allocates the grown tail before it
        frees the old one. Deleted rows stay until the next merge."""
        return (self.rows + n_added + (self.tail.rows.n if n_added else 0)) * self.row_bytes

    def live_labels(self) -> np.ndarray:
        return np.concatenate([self.base.rows.live(), self.tail.rows.live()])

    def max_label(self) -> int:
        for seg in (self.tail, self.base):
            if seg.rows.n:
                return int(seg.rows.labels[seg.rows.n - 1])
        return 0

    def load(self, labels: np.ndarray, vectors: np.ndarray) -> None:
        """Fill the (empty) base with every live vector, in label order."""
        self.base.rows.append(labels)
        if len(labels):
            self.base.index.add(np.ascontiguousarray(vectors, dtype=np.float32))

    def apply(self, removed: np.ndarray, added: np.ndarray, vectors: np.ndarray) -> None:
        self.base.rows.kill(removed)
        self.tail.rows.kill(removed)
        if len(added):
            self.tail.rows.append(added)
            self.tail.index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        if self.pending is not None:
            self.pending.append((removed, added, vectors))

    def search(self, queries: np.ndarray, k: int):
        """(scores, labels) (q, k), or None when a segment's over-fetch would pass the GPU
        top-k limit (the shard then searches on the CPU)."""
        nq = len(queries)
        parts = []
        for seg in (self.base, self.tail):
            if seg.rows.n - seg.rows.dead > 0:
                got = seg.search(queries, k)
                if got is None:
                    return None
                parts.append(got)
        if not parts:
            return np.full((nq, k), np.nan, np.float32), np.full((nq, k), -1, np.int64)
        scores, _, labels = merge(parts, k, self.metric != "l2")
        scores[labels < 0] = np.nan
        return padded(scores, labels, k)

    def new_base(self, labels: np.ndarray, vectors: np.ndarray) -> Segment:
        """A base segment over a snapshot (``labels`` sorted) of the CPU store, taken when
        ``pending`` was started. Caller holds the GPU's lock, not the shard's."""
        seg = Segment(self.new_index())
        try:
            seg.rows.append(labels)
            if len(labels):
                seg.index.add(np.ascontiguousarray(vectors, dtype=np.float32))
        except BaseException:
            seg.index = None  # freed here, under the caller's GPU lock (not by a traceback)
            raise
        return seg

    def merged(self, base: Segment) -> "FaissFlatMirror":
        """This mirror with ``base`` as its base and the ops applied since the snapshot
        replayed (deletes masked, adds in a new tail). Caller holds the shard's write lock
        (no op lands meanwhile) and the GPU's lock."""
        new = FaissFlatMirror.__new__(FaissFlatMirror)
        new.new_index, new.metric, new.row_bytes, new.pending = \
            self.new_index, self.metric, self.row_bytes, None
        new.base, new.tail = base, Segment(self.new_index())
        for removed, added, vecs in self.pending or ():
            new.apply(removed, added, vecs)
        return new

    def close(self) -> None:
        """Drop the GPU indexes (the caller holds the GPU's lock)."""
        self.base.index = self.tail.index = None


class AnnMirror:
    """A GPU copy of a shard's ANN index as of one instant. Adds go in when the copy
    takes them (IVF: ids kept); deleted labels are filtered from an over-fetched top-k.
    ``row_labels`` (CAGRA): the index returns rows, mapped to labels here; it takes no
    adds. ``stale`` once it cannot follow (an add it cannot take, too many deletes):
    the shard then searches the CPU index until it is copied again."""

    def __init__(self, index, kind: str, source, row_labels: np.ndarray | None, row_bytes: int,
                 fixed_bytes: int = 0):
        self.index, self.kind, self.source, self.row_labels = index, kind, source, row_labels
        self.row_bytes, self.fixed_bytes = row_bytes, fixed_bytes
        self.ntotal = int(index.ntotal)
        self.gone: set[int] = set()
        self._gone_arr = _EMPTY
        self.stale = False

    @property
    def nbytes(self) -> int:
        return self.ntotal * self.row_bytes + self.fixed_bytes

    def planned_bytes(self, n_added: int) -> int:
        return self.nbytes + (n_added * self.row_bytes if self.row_labels is None else 0)

    def forget(self, labels: np.ndarray) -> None:
        if len(labels):
            self.gone.update(int(x) for x in labels)
            self._gone_arr = np.fromiter(self.gone, np.int64)
            self.stale |= len(self.gone) > ANN_MAX_GONE

    def apply(self, removed: np.ndarray, added: np.ndarray, vectors: np.ndarray) -> None:
        self.forget(removed)
        if len(added):
            if self.row_labels is not None:
                self.stale = True
            elif not self.stale:
                self.index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), added)
                self.ntotal += len(added)

    def search(self, queries: np.ndarray, k: int, params):
        index = self.index  # None once closed
        kk = min(k + len(self.gone), self.ntotal)
        if index is None or self.stale or kk > GPU_MAX_K or kk == 0:
            return None
        params = params(kk) if callable(params) else params  # CAGRA: per k
        dist, got = index.search(queries, kk, params=params)
        if self.row_labels is not None:
            got = np.where(got >= 0, self.row_labels[np.maximum(got, 0)], -1)
        valid = got >= 0
        if len(self._gone_arr):
            valid &= ~np.isin(got, self._gone_arr)
        return first_valid(dist, got, valid, k)

    def close(self) -> None:
        """Drop the GPU index (the caller holds the GPU's lock)."""
        self.index = None
