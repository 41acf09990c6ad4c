"""The full-precision vectors of a quantized shard, on disk (vecdb/quant.py holds its codes).

A :class:`VectorFile` stands where a full-precision shard keeps its exact IndexFlat and
answers the same calls (``ntotal``, ``d``, ``search``, ``range_search``,
``reconstruct_batch``, ``add_with_ids``, ``remove_ids``), reading the vectors from
``<shard dir>/vectors-<gen>.f32`` instead of RAM:

- Rows are appended in label order (labels only grow), so RAM holds just the row
  labels and a live flag (9 bytes a row); label -> row is a binary search.
- Rows are read with pread, never memory-mapped: the OS page cache keeps the hot ones,
  outside the process's RSS (a mapping would count every page it touched, and a fault
  maps whole large folios around a row: 130 MB of a 150 MB file after 1,000 queries,
  measured). Random rows (re-scoring candidates) are one pread each, about as fast as
  the mapping was; a dense sorted run is one read; full scans (exact search) read
  chunks into a reused buffer.
- The file is derived state like the FAISS checkpoint: a checkpoint fsyncs it and
  records (gen, rows) with the label/live columns; on open the file is cut back to
  those rows and the WAL replayed. Deleted rows are dropped by :meth:`compacted`
  (a new generation), when they pass half the file.
- Not thread-safe for writers on its own: the shard's lock serializes writes against
  reads (reads may run concurrently).
"""
from __future__ import annotations

import os

import faiss
import numpy as np

from .index import faiss_metric

SCAN_ROWS_BYTES = 32 << 20
COMPACT_DEAD_RATIO = 0.5
COMPACT_MIN_ROWS = 1024


def file_name(gen: int) -> str:
    return f"vectors-{gen:08d}.f32"


def _gens(directory: str) -> list[int]:
    if not os.path.isdir(directory):
        return []
    return [int(n[8:16]) for n in os.listdir(directory)
            if n.startswith("vectors-") and n.endswith(".f32") and n[8:16].isdigit()]


def remove_other_gens(directory: str, keep: int) -> None:
    """Delete vector files of every generation but ``keep`` (stale after a checkpoint,
    a compaction or a rebuild)."""
    for gen in _gens(directory):
        if gen != keep:
            os.unlink(os.path.join(directory, file_name(gen)))


class VectorFile:
    def __init__(self, directory: str, dim: int, metric: str, gen: int = 1, rows: int = 0,
                 labels: np.ndarray | None = None, live: np.ndarray | None = None):
        """Open (creating it when missing) generation ``gen``, cut back to ``rows``
        rows described by ``labels``/``live`` (a checkpoint's columns)."""
        os.makedirs(directory, exist_ok=True)
        self.dir, self.d, self.metric, self.gen = directory, dim, metric, gen
        self.path = os.path.join(directory, file_name(gen))
        self.row_bytes = dim * 4
        self._fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        if os.fstat(self._fd).st_size < rows * self.row_bytes:
            os.close(self._fd)
            raise ValueError(f"{self.path} holds fewer than the {rows} rows recorded")
        os.ftruncate(self._fd, rows * self.row_bytes)
        cap = max(rows, 1024)
        self._labels = np.zeros(cap, np.int64)
        self._live = np.zeros(cap, bool)
        if rows:
            self._labels[:rows], self._live[:rows] = labels[:rows], live[:rows]
        self.rows, self.ntotal = rows, int(self._live[:rows].sum())

    @classmethod
    def fresh(cls, directory: str, dim: int, metric: str) -> "VectorFile":
        """An empty file of a generation newer than any on disk (those stay untouched)."""
        return cls(directory, dim, metric, max(_gens(directory), default=0) + 1)

    # ---- writes (shard write lock held) ------------------------------------------
    def add_with_ids(self, vectors: np.ndarray, labels: np.ndarray) -> None:
        n = len(labels)
        if not n:
            return
        if self.rows and int(labels[0]) <= int(self._labels[self.rows - 1]):
            raise ValueError("labels must grow")  # a shard never reuses or reorders labels
        data = np.ascontiguousarray(vectors, dtype=np.float32).tobytes()
        os.pwrite(self._fd, data, self.rows * self.row_bytes)
        end = self.rows + n
        if end > len(self._labels):
            cap = max(end, 2 * len(self._labels))
            self._labels = np.resize(self._labels, cap)
            self._live = np.resize(self._live, cap)
        self._labels[self.rows:end] = labels
        self._live[self.rows:end] = True
        self.rows, self.ntotal = end, self.ntotal + n

    def remove_ids(self, labels: np.ndarray) -> int:
        rows, found = self._rows_of(np.asarray(labels, np.int64))
        rows = rows[found]
        rows = rows[self._live[rows]]
        self._live[rows] = False
        self.ntotal -= len(rows)
        return len(rows)

    def sync(self) -> None:
        os.fsync(self._fd)

    def needs_compaction(self) -> bool:
        dead = self.rows - self.ntotal
        return self.rows >= COMPACT_MIN_ROWS and dead > COMPACT_DEAD_RATIO * self.rows

    def compacted(self) -> "VectorFile":
        """A new generation holding the live rows only (this one stays readable until
        :meth:`close`; delete its file once a checkpoint names the new one)."""
        out = VectorFile.fresh(self.dir, self.d, self.metric)
        for rows, vecs in self.scan():
            out.add_with_ids(vecs, self.row_labels(rows))
        out.sync()
        return out

    def close(self, delete: bool = False) -> None:
        """Idempotent (a dropped collection's shard is released again at Database.close)."""
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1
        if delete:
            os.unlink(self.path)

    # ---- reads -------------------------------------------------------------------
    def labels(self) -> np.ndarray:
        """Live labels, sorted."""
        n = self.rows
        return self._labels[:n][self._live[:n]]

    def row_labels(self, rows: np.ndarray) -> np.ndarray:
        return self._labels[rows]

    def columns(self) -> tuple[np.ndarray, np.ndarray]:
        return self._labels[:self.rows].copy(), self._live[:self.rows].copy()

    def memory_bytes(self) -> int:
        return self._labels.nbytes + self._live.nbytes

    def _rows_of(self, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        known = self._labels[:self.rows]
        rows = np.minimum(np.searchsorted(known, labels), max(self.rows - 1, 0))
        found = (known[rows] == labels) if self.rows else np.zeros(len(labels), bool)
        return rows, found

    def reconstruct_batch(self, labels: np.ndarray) -> np.ndarray:
        """The vectors of live ``labels`` (KeyError for one not stored)."""
        labels = np.asarray(labels, np.int64).ravel()
        rows, found = self._rows_of(labels)
        if not found.all():
            raise KeyError(f"label {int(labels[~found][0])} is not stored")
        if not len(rows):
            return np.zeros((0, self.d), np.float32)
        rb = self.row_bytes
        lo, hi = int(rows.min()), int(rows.max()) + 1
        if len(rows) > 64 and hi - lo <= 4 * len(rows):  # a dense run: one read
            span = np.frombuffer(os.pread(self._fd, (hi - lo) * rb, lo * rb), np.float32)
            return span.reshape(-1, self.d)[rows - lo]
        raw = b"".join([os.pread(self._fd, rb, r * rb) for r in rows.tolist()])
        return np.frombuffer(raw, np.float32).reshape(-1, self.d).copy()

    def scan(self, chunk_rows: int | None = None, upto: int | None = None):
        """(rows, vectors) of the live rows (of the first ``upto`` rows), chunk by chunk,
        read into a reused buffer (valid until the next chunk)."""
        step = chunk_rows or max(1, SCAN_ROWS_BYTES // self.row_bytes)
        buf = np.empty((step, self.d), np.float32)
        upto = self.rows if upto is None else upto
        for start in range(0, upto, step):
            end = min(start + step, upto)
            live = np.flatnonzero(self._live[start:end])
            if not len(live):
                continue
            view = buf[:end - start]
            got = os.preadv(self._fd, [memoryview(view).cast("B")], start * self.row_bytes)
            if got != view.nbytes:
                raise OSError(f"{self.path}: short read at row {start}")
            yield start + live, (view if len(live) == end - start else view[live])

    def _chunk_index(self, rows: np.ndarray, vecs: np.ndarray):
        idx = faiss.IndexIDMap(faiss.IndexFlat(self.d, faiss_metric(self.metric)))
        idx.add_with_ids(vecs, self._labels[rows])
        return idx

    def search(self, queries: np.ndarray, k: int, params=None):
        """Exact top-k over the live rows (``params``: faiss SearchParameters, e.g. a selector)."""
        q = len(queries)
        lower = self.metric == "l2"
        best_d = np.full((q, k), np.inf if lower else -np.inf, np.float32)
        best_i = np.full((q, k), -1, np.int64)
        for rows, vecs in self.scan():
            d, i = self._chunk_index(rows, vecs).search(queries, k, params=params)
            d = np.where(i >= 0, d, np.inf if lower else -np.inf).astype(np.float32)
            all_d, all_i = np.hstack([best_d, d]), np.hstack([best_i, i])
            order = np.argsort(all_d if lower else -all_d, axis=1, kind="stable")[:, :k]
            best_d = np.take_along_axis(all_d, order, 1)
            best_i = np.take_along_axis(all_i, order, 1)
        best_d[best_i < 0] = np.inf if lower else -np.inf
        return best_d, best_i

    def range_search(self, queries: np.ndarray, threshold: float, params=None):
        """faiss-style (lims, distances, labels) of every live row past ``threshold``."""
        parts = [[] for _ in range(len(queries))]
        for rows, vecs in self.scan():
            lims, d, i = self._chunk_index(rows, vecs).range_search(queries, threshold, params=params)
            for j in range(len(queries)):
                parts[j].append((d[lims[j]:lims[j + 1]], i[lims[j]:lims[j + 1]]))
        dist = [np.concatenate([p[0] for p in ps]) if ps else np.zeros(0, np.float32) for ps in parts]
        labs = [np.concatenate([p[1] for p in ps]) if ps else np.zeros(0, np.int64) for ps in parts]
        lims = np.concatenate([[0], np.cumsum([len(x) for x in dist])]).astype(np.int64)
        return (lims, np.concatenate(dist) if dist else np.zeros(0, np.float32),
                np.concatenate(labs) if labs else np.zeros(0, np.int64))
