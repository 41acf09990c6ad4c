"""GPU copies of a shard's indexes, and the glue the shard calls (docs/gpu.md).

The CPU indexes stay the shard's truth: checkpoints, filtered/selector/range
searches, IVF-PQ re-ranking and ANN builds use them as before. A GPU shard
also keeps
- an exact *mirror* of every live vector on its GPU (``TorchFlat`` in
  torch, or ``FaissFlatMirror`` on a FAISS GPU flat index) that answers
  unfiltered exact searches (flat collections, ``exact=True``, shards below
  their build threshold), and
- with FAISS GPU support, an ``AnnMirror``: a GPU copy of the built IVF index
  (``index_cpu_to_gpu``) or, for HNSW collections when FAISS has cuVS, a
  CAGRA graph over the same vectors; it answers unfiltered ANN searches.

Mutations reach the mirrors under the shard's write lock right after the CPU
indexes; searches run concurrently under its read lock. Anything failing on
the GPU falls back to the CPU path (logged): a search then runs on the CPU,
a failed mutation drops the GPU copy (the shard stays correct on the CPU).

Row bookkeeping: mirrors store rows in label order (labels only grow, so a
label's row is a binary search away); deleted rows are masked until they
pass a quarter of the rows (or ``max_dead``), then compacted.
"""
from __future__ import annotations

import contextlib
import logging
import time
from typing import Callable

import faiss
import numpy as np

from .errors import ResourceExhausted
from .index import faiss_metric

log = logging.getLogger("vecdb.gpu")
DEAD_SHARE = 0.25  # compact a mirror once this share of its rows are deleted
GPU_MAX_K = 2048  # largest k FAISS GPU indexes return
ANN_MAX_GONE = 1024  # deletes an ANN mirror filters out before it is re-copied
ANN_REFRESH_S = 30.0  # at most one ANN re-copy per shard this often
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


class FaissFlatMirror:
    """Exact mirror on a FAISS flat index (GpuIndexFlat in production). It cannot
    remove rows: dead rows are filtered from an over-fetched top-k, and past
    ``max_dead`` of them it is refilled from ``source`` (the CPU exact store)."""

    MAX_DEAD = 1024

    def __init__(self, index, dim: int, metric: str, fp16: bool,
                 source: Callable[[], tuple[np.ndarray, np.ndarray]]):
        self.index, self.source = index, source
        self.rows = Rows(self.MAX_DEAD)
        self.row_bytes = dim * (2 if fp16 else 4) + (4 if metric == "l2" else 0)

    @property
    def nbytes(self) -> int:
        return self.rows.n * self.row_bytes

    def planned_bytes(self, n_removed: int, n_added: int) -> int:
        return self.rows.plan(n_removed, n_added)[1] * self.row_bytes

    def apply(self, removed: np.ndarray, added: np.ndarray, vectors: np.ndarray) -> None:
        compact, _ = self.rows.plan(len(removed), len(added))
        self.rows.kill(removed)
        if compact:  # the source already holds this op: refill from it
            labels, vecs = self.source()
            order = np.argsort(labels, kind="stable")
            self.index.reset()
            self.rows = Rows(self.MAX_DEAD)
            self.rows.append(labels[order])
            if len(order):
                self.index.add(np.ascontiguousarray(vecs[order]))
        elif len(added):
            self.rows.append(added)
            self.index.add(np.ascontiguousarray(vectors, dtype=np.float32))

    def search(self, queries: np.ndarray, k: int):
        """(scores, labels) (q, k), or None when the over-fetch would pass the GPU limit."""
        kk = min(k + self.rows.dead, self.rows.n)
        if kk > GPU_MAX_K:
            return None
        if kk == 0:
            return np.full((len(queries), k), np.nan, np.float32), np.full((len(queries), k), -1, np.int64)
        dist, rows = self.index.search(queries, kk)
        valid = rows >= 0
        valid[valid] = self.rows.alive[rows[valid]]
        labels = np.where(valid, self.rows.labels[np.maximum(rows, 0)], -1)
        return first_valid(dist, labels, valid, k)


class AnnMirror:
    """A GPU copy of a shard's ANN index as of one instant. Adds go in when the copy
    takes them (IVF: ids kept); deleted labels are filtered from an over-fetched top-k.
    ``row_labels`` (CAGRA): the index returns rows, mapped to labels here; it takes no
    adds. ``stale`` once it cannot follow (an add it cannot take, too many deletes):
    the shard then searches the CPU index until it is copied again."""

    def __init__(self, index, kind: str, source, row_labels: np.ndarray | None, row_bytes: int):
        self.index, self.kind, self.source, self.row_labels = index, kind, source, row_labels
        self.row_bytes = row_bytes
        self.gone: set[int] = set()
        self._gone_arr = _EMPTY
        self.stale = False

    @property
    def nbytes(self) -> int:
        return int(self.index.ntotal) * self.row_bytes

    def planned_bytes(self, n_added: int) -> int:
        return self.nbytes + (n_added * self.row_bytes if self.row_labels is None else 0)

    def apply(self, removed: np.ndarray, added: np.ndarray, vectors: np.ndarray) -> None:
        if len(removed):
            self.gone.update(int(x) for x in removed)
            self._gone_arr = np.fromiter(self.gone, np.int64)
            self.stale |= len(self.gone) > ANN_MAX_GONE
        if len(added):
            if self.row_labels is not None:
                self.stale = True
            elif not self.stale:
                self.index.add_with_ids(np.ascontiguousarray(vectors, dtype=np.float32), added)

    def search(self, queries: np.ndarray, k: int, params):
        kk = min(k + len(self.gone), int(self.index.ntotal))
        if self.stale or kk > GPU_MAX_K or kk == 0:
            return None
        params = params(kk) if callable(params) else params  # CAGRA: per k
        dist, got = self.index.search(queries, kk, params=params)
        if self.row_labels is not None:
            got = np.where(got >= 0, self.row_labels[np.maximum(got, 0)], -1)
        valid = got >= 0
        if len(self._gone_arr):
            valid &= ~np.isin(got, self._gone_arr)
        return first_valid(dist, got, valid, k)


class ShardGpu:
    """The GPU side of one shard: its mirrors, its budget reservation, its fallbacks.
    ``source()`` returns (labels, vectors) of the shard's CPU exact store."""

    def __init__(self, ctx, backend: str, gpu: int, dim: int, metric: str, name: str,
                 source: Callable[[], tuple[np.ndarray, np.ndarray]]):
        self.ctx, self.backend, self.gpu = ctx, backend, gpu
        self.dim, self.metric, self.name, self.source = dim, metric, name, source
        self.exact = None
        self.ann: AnnMirror | None = None
        self._ann_for = None  # the CPU Ann the ANN mirror was last tried for
        self._ann_at = -ANN_REFRESH_S
        # FAISS GPU calls on one GPU are serialized (vecdb.gpu.GpuContext.gpu_lock)
        self._gpu_lock = ctx.gpu_lock(gpu) if backend == "faiss" else contextlib.nullcontext()
        self.served = 0  # searches answered on the GPU
        self.fallbacks = 0  # searches that failed on the GPU and ran on the CPU

    @property
    def device(self) -> str:
        return f"cuda:{self.gpu}" if self.exact is not None else "cpu"

    @property
    def nbytes(self) -> int:
        if self.exact is None:
            return 0
        return self.exact.nbytes + (self.ann.nbytes if self.ann is not None else 0)

    def _new_exact(self):
        if self.backend == "torch":
            from .torch_flat import TorchFlat  # torch is imported only here
            return TorchFlat(self.dim, self.metric, self.ctx.torch_device(self.gpu), self.ctx.fp16)
        index = self.ctx.faiss_flat(self.gpu, self.dim, faiss_metric(self.metric))
        return FaissFlatMirror(index, self.dim, self.metric, self.ctx.fp16, self.source)

    def _settle(self) -> None:
        """Make the budget reservation what is actually held."""
        self.ctx.budget.restore({self: (self.gpu, self.nbytes)})

    def drop(self, why: str, exc: bool = False) -> None:
        """Give the GPU copy up: the shard runs on the CPU from now on."""
        (log.exception if exc else log.warning)("shard %s: %s; it runs on the CPU", self.name, why)
        self.exact = self.ann = None
        self.ctx.budget.release(self)

    def load(self) -> bool:
        """(Re)build the exact mirror from the CPU store. False (CPU from now on) when it
        would pass the GPU memory budget or fails."""
        labels, vectors = self.source()
        order = np.argsort(labels, kind="stable")
        self.exact = self.ann = None
        try:
            mirror = self._new_exact()
            self.ctx.budget.reserve({self: (self.gpu, mirror.planned_bytes(0, len(labels)))})
            with self._gpu_lock:
                mirror.apply(_EMPTY, labels[order], vectors[order])
        except ResourceExhausted as e:
            self.drop(e.message)
            return False
        except Exception:  # noqa: BLE001 - any GPU failure: stay correct on the CPU
            self.drop(f"could not place {len(labels)} vectors on cuda:{self.gpu}", exc=True)
            return False
        self.exact = mirror
        self._settle()
        (log.info if len(labels) else log.debug)(
            "shard %s: %d vectors on cuda:%d (%s%s, %.1f MiB)", self.name, len(labels),
                 self.gpu, self.backend, ", fp16" if self.ctx.fp16 else "", self.nbytes / (1 << 20))
        return True

    def planned_bytes(self, n_removed: int, n_added: int) -> int:
        ann = self.ann.planned_bytes(n_added) if self.ann is not None and not self.ann.stale else 0
        return self.exact.planned_bytes(n_removed, n_added) + ann

    def apply(self, removed: np.ndarray, added: np.ndarray, vectors: np.ndarray) -> None:
        if self.exact is None:
            return
        try:
            with self._gpu_lock:
                self.exact.apply(removed, added, vectors)
                if self.ann is not None:
                    self.ann.apply(removed, added, vectors)
        except Exception:  # noqa: BLE001
            self.drop("a write failed on the GPU copy", exc=True)
            return
        if self.ann is not None and self.ann.stale:
            self.ann = None
        self._settle()

    def _searched(self, fn):
        try:
            with self._gpu_lock:
                got = fn()
        except Exception:  # noqa: BLE001 - e.g. out of GPU memory for a huge batch
            self.fallbacks += 1
            if self.fallbacks == 1 or self.fallbacks % 1000 == 0:
                log.exception("shard %s: GPU search failed (%d so far); ran on the CPU",
                              self.name, self.fallbacks)
            return None
        if got is not None:
            self.served += 1
        return got

    def search_exact(self, queries: np.ndarray, k: int):
        """(scores, labels) (q, k), or None: search on the CPU."""
        mirror = self.exact
        return None if mirror is None else self._searched(lambda: mirror.search(queries, k))

    def search_ann(self, queries: np.ndarray, k: int, params, spec):
        """Unfiltered ANN top-k on the GPU copy, or None: search on the CPU.
        ``params``: the request's SearchParams; ``spec``: the collection's IndexSpec."""
        ann = self.ann
        if ann is None:
            return None
        if ann.kind == "cagra":  # sized for the over-fetched k the mirror asks for
            ef = params.ef_search or spec.param("ef_search")
            sp = lambda kk: self.ctx.cagra_params(kk, ef)  # noqa: E731
        else:
            sp = faiss.SearchParametersIVF(nprobe=params.nprobe or spec.param("nprobe"))
        return self._searched(lambda: ann.search(queries, k, sp))

    def refresh_ann(self, ann, graph_degree: int) -> None:
        """Copy the shard's built CPU ANN index to the GPU when there is no usable copy of
        it (FAISS GPU backend only; at most every ANN_REFRESH_S per shard). The caller
        holds the shard's read lock, so no write runs meanwhile."""
        if self.backend != "faiss" or self.exact is None or ann is None:
            self.ann = None
            return
        if self.ann is not None and self.ann.source is ann:
            return
        if self._ann_for is ann and time.monotonic() - self._ann_at < ANN_REFRESH_S:
            return
        self._ann_for, self._ann_at, self.ann = ann, time.monotonic(), None
        self._settle()
        cagra = ann.kind == "hnsw"
        if cagra:  # a graph over the live vectors, rows mapped to labels here
            n, per = self.exact.rows.n - self.exact.rows.dead, (self.dim + graph_degree) * 4
        else:
            n = int(ann.index.ntotal)
            per = self.dim * 4 + 8 if ann.kind == "ivf_flat" else int(ann.index.code_size) + 8
        try:  # reserve first: nothing is allocated on the GPU past the budget
            self.ctx.budget.reserve({self: (self.gpu, self.exact.nbytes + n * per)})
        except ResourceExhausted as e:
            log.warning("shard %s: the %s index stays on the CPU: %s", self.name, ann.kind, e.message)
            self._ann_at = float("inf")  # not again for this index (a rebuild retries)
            return
        try:
            fm = faiss_metric(self.metric)
            with self._gpu_lock:
                mirror = self._copy_ann(ann, cagra, fm, graph_degree, per)
        except Exception:  # noqa: BLE001
            log.exception("shard %s: copying the %s index to cuda:%d failed; ANN searches "
                          "stay on the CPU", self.name, ann.kind, self.gpu)
            mirror = None
        if mirror is None:  # (no cuVS in this FAISS: HNSW searches stay on the CPU)
            self._settle()
            return
        self.ann = mirror
        self._settle()
        log.info("shard %s: %s index on cuda:%d (%d vectors)", self.name, mirror.kind, self.gpu,
                 mirror.index.ntotal)

    def _copy_ann(self, ann, cagra: bool, fm: int, graph_degree: int, per: int):
        """The GPU mirror of a CPU ANN index (None: no cuVS for CAGRA)."""
        if cagra:
            labels, vecs = self.source()
            order = np.argsort(labels, kind="stable")
            index = self.ctx.cagra(self.gpu, self.dim, fm, np.ascontiguousarray(vecs[order]),
                                   graph_degree)
            return None if index is None else AnnMirror(index, "cagra", ann, labels[order], per)
        return AnnMirror(self.ctx.faiss_clone(self.gpu, ann.index), ann.kind, ann, None, per)

    def release(self) -> None:
        self.exact = self.ann = None
        self.ctx.budget.release(self)


def reserve_for_write(plans: list[tuple[ShardGpu, int, int]]) -> Callable[[], None]:
    """Reserve GPU memory for a write about to be committed: (shard gpu, removed, added)
    per shard touched. Raises ResourceExhausted (nothing reserved); returns an undo."""
    items = {g: (g.gpu, g.planned_bytes(nr, na)) for g, nr, na in plans if g.exact is not None}
    if not items:
        return lambda: None
    budget = next(iter(items)).ctx.budget
    prev = budget.reserve(items)
    return lambda: budget.restore(prev)
