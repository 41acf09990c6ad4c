"""The GPU side of a shard: its copies, their budget, counters and fallbacks (docs/gpu.md).

The CPU indexes stay the shard's truth: checkpoints, filtered/selector/range
searches, IVF-PQ re-ranking and ANN builds use them as before. A GPU shard
also keeps
- an exact *mirror* of every live vector on its GPU (``TorchFlat`` in torch,
  or ``FaissFlatMirror``: FAISS GPU flat segments) that answers unfiltered exact
  searches (flat collections, ``exact=True``, shards below their build threshold), and
- with FAISS GPU support, an ``AnnMirror``: a GPU copy of the built IVF index
  (``index_cpu_to_gpu``) or, for HNSW collections when FAISS has cuVS, a CAGRA
  graph over the same vectors; it answers unfiltered ANN searches.

Locking: mutations reach the mirrors under the shard's write lock right after the
CPU indexes; searches run under its read lock. Every FAISS GPU allocation, search
and free also holds the GPU's lock (``vecdb.gpu_res``): GPU objects are never
dropped by whichever thread happens to hold the last reference, they are closed
(``close()``) under that lock. Background work (``maintain``): the flat merge and
the CAGRA build run without the shard's lock, on snapshots, and are swapped in.

Counters (``describe`` and ``/metrics``): searches served per backend (``torch``,
``faiss_flat``, ``ivf_flat``, ``ivf_pq``, ``cagra``; ``cpu`` when this GPU shard had
no usable copy for the search), searches that failed on the GPU and ran on the CPU
(``fallbacks``), and placement failures with the last one's reason (``error``).
"""
from __future__ import annotations

import contextlib
import logging
import threading
import time
from collections import Counter
from typing import Callable

import faiss
import numpy as np

from .errors import ResourceExhausted
from .gpu_mirrors import AnnMirror, FaissFlatMirror
from .gpu_res import ivf_gpu_bytes
from .index import faiss_metric

log = logging.getLogger("vecdb.gpu")
ANN_REFRESH_S = 30.0  # at most one ANN re-copy per shard this often
_EMPTY = np.zeros(0, np.int64)


class ShardGpu:
    """The GPU side of one shard. ``source()`` returns (labels, vectors) of the shard's
    CPU exact store (call it under the shard's lock)."""

    def __init__(self, ctx, backend: str, gpu: int, dim: int, metric: str, name: str,
                 source: Callable[[], tuple[np.ndarray, np.ndarray]]):
        self.ctx, self.backend, self.gpu = ctx, backend, gpu
        self.dim, self.metric, self.name, self.source = dim, metric, name, source
        self.exact = None
        self.ann: AnnMirror | None = None
        self._ann_for = None  # the CPU Ann the ANN mirror was last tried for
        self._ann_at = -ANN_REFRESH_S
        # FAISS GPU objects on one GPU: every call under its lock (vecdb.gpu_res)
        self._gpu_lock = ctx.gpu_lock(gpu) if backend == "faiss" else contextlib.nullcontext()
        self._maint = threading.Lock()  # one maintain() at a time
        self._count_lock = threading.Lock()
        self.served: Counter = Counter()  # backend -> searches answered ("cpu": no usable copy)
        self.fallbacks: Counter = Counter()  # backend -> searches that failed on the GPU
        self.placement_failures = 0
        self.error = ""  # why the last placement failed ("" when none did)

    @property
    def device(self) -> str:
        return f"cuda:{self.gpu}" if self.exact is not None else "cpu"

    @property
    def exact_backend(self) -> str:
        return "torch" if self.backend == "torch" else "faiss_flat"

    @property
    def ann_kind(self) -> str:
        ann = self.ann
        return ann.kind if ann is not None else ""

    @property
    def nbytes(self) -> int:
        exact, ann = self.exact, self.ann
        if exact is None:
            return 0
        return exact.nbytes + (ann.nbytes if ann is not None else 0)

    # ---- bookkeeping ------------------------------------------------------------
    def _count(self, counter: Counter, key: str) -> None:
        with self._count_lock:
            counter[key] += 1

    def _failed(self, what: str, why: str) -> None:
        """A placement failed: counted and shown (describe, /metrics), logged without a
        traceback; the searches it would have served run on the CPU."""
        self.placement_failures += 1
        self.error = f"{what} on cuda:{self.gpu} failed: {why}"
        log.warning("shard %s: %s; those searches run on the CPU", self.name, self.error)

    def _settle(self) -> None:
        """Make the budget reservation what is actually held."""
        self.ctx.budget.restore({self: (self.gpu, self.nbytes)})

    def _close(self, *mirrors) -> None:
        """Free GPU copies under the GPU's lock (never by whoever drops the last reference)."""
        with self._gpu_lock:
            for m in mirrors:
                if m is not None:
                    m.close()

    def _set_ann(self, mirror: AnnMirror | None) -> None:
        old, self.ann = self.ann, mirror
        if old is not mirror:
            self._close(old)

    def drop(self, why: str, exc: bool = False) -> None:
        """Give the GPU copies up: the shard runs on the CPU from now on."""
        (log.exception if exc else log.warning)("shard %s: %s; it runs on the CPU", self.name, why)
        old = (self.exact, self.ann)
        self.exact = self.ann = None
        self._close(*old)
        self.ctx.budget.release(self)

    def release(self) -> None:
        old = (self.exact, self.ann)
        self.exact = self.ann = None
        self._close(*old)
        self.ctx.budget.release(self)

    # ---- the exact mirror -------------------------------------------------------
    def _new_exact(self):
        if self.backend == "torch":
            from .torch_flat import TorchFlat  # torch is imported only here
            self.ctx.reserve_scratch(self.gpu)
            return TorchFlat(self.dim, self.metric, self.ctx.torch_device(self.gpu), self.ctx.fp16,
                             scratch_bytes=self.ctx.torch_scratch_bytes,
                             slots=self.ctx.search_slots(self.gpu))
        fm = faiss_metric(self.metric)
        return FaissFlatMirror(lambda: self.ctx.faiss_flat(self.gpu, self.dim, fm), self.dim,
                               self.metric, self.ctx.fp16)

    def load(self) -> bool:
        """(Re)build the exact mirror from the CPU store (caller holds the shard's lock).
        False (CPU from now on, the reason in ``error``) when it does not fit the GPU memory
        budget or fails."""
        labels, vectors = self.source()
        order = np.argsort(labels, kind="stable")
        self.release()
        mirror = None
        try:
            with self._gpu_lock:
                mirror = self._new_exact()
                self.ctx.budget.reserve({self: (self.gpu, mirror.planned_bytes(0, len(labels)))})
                mirror.load(labels[order], vectors[order])
        except Exception as e:  # noqa: BLE001 - any GPU failure: stay correct on the CPU
            self._close(mirror)
            self.ctx.budget.release(self)
            self._failed(f"placing {len(labels)} vectors", _why(e))
            log.debug("shard %s: placement failure", self.name, exc_info=e)
            return False
        self.exact = mirror
        self._settle()
        (log.info if len(labels) else log.debug)(
            "shard %s: %d vectors on cuda:%d (%s%s, %.1f MiB)", self.name, len(labels),
            self.gpu, self.backend, ", fp16" if self.ctx.fp16 else "", self.nbytes / (1 << 20))
        return True

    def planned_bytes(self, n_removed: int, n_added: int) -> int:
        ann = self.ann
        extra = ann.planned_bytes(n_added) if ann is not None and not ann.stale else 0
        return self.exact.planned_bytes(n_removed, n_added) + extra

    def apply(self, removed: np.ndarray, added: np.ndarray, vectors: np.ndarray) -> None:
        """Follow one applied op (caller holds the shard's write lock)."""
        if self.exact is None:
            return
        try:
            with self._gpu_lock:
                self.exact.apply(removed, added, vectors)
                if self.ann is not None:
                    self.ann.apply(removed, added, vectors)
        except Exception as e:  # noqa: BLE001
            self._failed("a write to the GPU copy", _why(e))
            self.drop("a write failed on the GPU copy", exc=True)
            return
        if self.ann is not None and self.ann.stale:
            self._set_ann(None)
        self._settle()

    # ---- searches -----------------------------------------------------------------
    def _searched(self, backend: str, fn):
        try:
            with self._gpu_lock:
                got = fn()
        except Exception:  # noqa: BLE001 - e.g. out of GPU memory for a huge batch
            self._count(self.fallbacks, backend)
            n = self.fallbacks[backend]
            if n == 1 or n % 1000 == 0:
                log.exception("shard %s: GPU search (%s) failed (%d so far); ran on the CPU",
                              self.name, backend, n)
            return None
        self._count(self.served, backend if got is not None else "cpu")
        return got

    def search_exact(self, queries: np.ndarray, k: int):
        """(scores, labels) (q, k), or None: search on the CPU."""
        mirror = self.exact
        if mirror is None:
            return None
        return self._searched(self.exact_backend, lambda: mirror.search(queries, k))

    def search_ann(self, queries: np.ndarray, k: int, params, spec):
        """Unfiltered ANN top-k on the GPU copy, or None: search on the CPU.
        ``params``: the request's SearchParams; ``spec``: the collection's IndexSpec."""
        ann = self.ann
        if ann is None:
            self._count(self.served, "cpu")
            return None
        if ann.kind == "cagra":  # sized for the over-fetched k the mirror asks for
            ef = params.ef_search or spec.param("ef_search")
            sp = lambda kk: self.ctx.cagra_params(kk, ef)  # noqa: E731
        else:
            sp = faiss.SearchParametersIVF(nprobe=params.nprobe or spec.param("nprobe"))
        return self._searched(ann.kind, lambda: ann.search(queries, k, sp))

    # ---- background work ------------------------------------------------------------
    def maintain(self, lock, ann, graph_degree: int) -> None:
        """Background maintenance (``lock``: the shard's RWLock, not held by the caller):
        merge the flat segments when due, copy the built CPU ANN index ``ann`` (None while
        it is being built or when there is none) to the GPU when there is no usable copy."""
        if self.exact is None or not self._maint.acquire(blocking=False):
            return
        try:
            if isinstance(self.exact, FaissFlatMirror) and self.exact.needs_merge():
                self._merge(lock)
            if self.backend == "faiss" and ann is not None:
                self._refresh_ann(lock, ann, graph_degree)
        finally:
            self._maint.release()

    def _merge(self, lock) -> None:
        """Fold the flat tail and the dead rows into a new base, built from a snapshot
        without the shard's lock; the ops applied meanwhile are replayed at the swap."""
        with lock.read():
            mirror = self.exact
            if mirror is None:
                return
            labels, vectors = self.source()
            mirror.pending = []
        try:
            order = np.argsort(labels, kind="stable")
            peak = mirror.nbytes + len(labels) * mirror.row_bytes
            self.ctx.budget.reserve({self: (self.gpu, peak)})
            with self._gpu_lock:
                base = mirror.new_base(labels[order], vectors[order])
            del labels, vectors
            with lock.write(), self._gpu_lock:
                if self.exact is not mirror:  # dropped meanwhile
                    base.index = None
                    return
                try:
                    self.exact = mirror.merged(base)
                except BaseException:
                    base.index = None  # freed under the lock, not by the traceback
                    raise
                mirror.close()
        except ResourceExhausted as e:
            log.warning("shard %s: flat segments not merged (%s); dead rows stay masked",
                        self.name, e.message)
        except Exception:  # noqa: BLE001
            log.exception("shard %s: merging the GPU flat segments failed", self.name)
        finally:
            mirror.pending = None
            self._settle()

    def _refresh_ann(self, lock, ann, graph_degree: int) -> None:
        """Copy the shard's built CPU ANN index to the GPU when there is no usable copy of
        it. A failed placement is not retried for the same CPU index (a rebuild retries);
        a copy gone stale (CAGRA after an add) is redone at most every ANN_REFRESH_S."""
        if self.ann is not None and self.ann.source is ann:
            return
        if self._ann_for is ann and time.monotonic() - self._ann_at < ANN_REFRESH_S:
            return
        self._ann_for, self._ann_at = ann, time.monotonic()
        if ann.kind == "hnsw":
            self._refresh_cagra(lock, ann, graph_degree)
            return
        with lock.read():  # IVF: copied as it is; writes wait meanwhile
            if self.exact is None:
                return
            fm = faiss_metric(self.metric)
            per, fixed = ivf_gpu_bytes(ann.index, ann.kind, fm)
            if not self._reserve_ann(ann.kind, int(ann.index.ntotal) * per + fixed):
                return
            try:
                with self._gpu_lock:
                    mirror = AnnMirror(self.ctx.faiss_clone(self.gpu, ann.index, ann.kind),
                                       ann.kind, ann, None, per, fixed)
            except Exception as e:  # noqa: BLE001 - e.g. GpuIndexIVFPQ refusing the settings
                self._ann_failed(ann, e)
                return
            self._set_ann(mirror)
            self._settle()
        log.info("shard %s: %s index on cuda:%d (%d vectors)", self.name, ann.kind, self.gpu,
                 mirror.ntotal)

    def _reserve_ann(self, kind: str, nbytes: int) -> bool:
        """Reserve the exact mirror + an ANN copy of ``nbytes`` (the old copy is dropped)."""
        self._set_ann(None)
        try:
            self.ctx.budget.reserve({self: (self.gpu, self.exact.nbytes + nbytes)})
            return True
        except ResourceExhausted as e:
            self._settle()
            self._ann_at = float("inf")  # not again for this index (a rebuild retries)
            self._failed(f"placing the {kind} index", e.message)
            return False

    def _ann_failed(self, ann, exc: Exception) -> None:
        self._settle()
        self._ann_at = float("inf")
        self._failed(f"copying the {ann.kind} index", _why(exc))
        log.debug("shard %s: copy failure", self.name, exc_info=exc)

    def _refresh_cagra(self, lock, ann, graph_degree: int) -> None:
        """Build a CAGRA graph over a snapshot of the live vectors without the shard's lock
        or the GPU's serving lock, load it, and swap it in unless points were added since
        the snapshot (CAGRA takes no adds); deletes since then are filtered."""
        if not self.ctx.has_cagra():
            if not self.error.startswith("HNSW"):
                self._failed("HNSW on the GPU", "this FAISS has no GpuIndexCagra (needs cuVS)")
            self._ann_at = float("inf")
            return
        with lock.read():
            if self.exact is None:
                return
            labels, vectors = self.source()
        order = np.argsort(labels, kind="stable")
        labels = labels[order]
        per = (self.dim + graph_degree) * 4
        if not self._reserve_ann("cagra", len(labels) * per):
            return
        mirror = None
        try:
            host = self.ctx.cagra_build(self.gpu, self.dim, faiss_metric(self.metric),
                                        np.ascontiguousarray(vectors[order]), graph_degree)
            del vectors
            with self._gpu_lock:
                mirror = AnnMirror(self.ctx.cagra_load(self.gpu, host), "cagra", ann, labels, per)
            del host
        except Exception as e:  # noqa: BLE001
            self._close(mirror)
            self._ann_failed(ann, e)
            return
        with lock.read():  # writes wait: the state is the one the swap sees
            exact = self.exact
            if exact is None or exact.max_label() > (labels[-1] if len(labels) else 0):
                self._close(mirror)  # added to since the snapshot: a later round rebuilds
                self._settle()
                return
            mirror.forget(np.setdiff1d(labels, exact.live_labels(), assume_unique=True))
            self._set_ann(mirror)
            self._settle()
        log.info("shard %s: cagra graph on cuda:%d (%d vectors)", self.name, self.gpu, len(labels))

    def stats(self) -> dict:
        return {"gpu_served": dict(self.served), "gpu_fallbacks": dict(self.fallbacks),
                "gpu_ann": self.ann_kind, "gpu_error": self.error,
                "gpu_placement_failures": self.placement_failures}


def _why(exc: Exception) -> str:
    """One line saying why: a domain error's message, else the last line of the exception
    (FAISS puts its reason after the C++ location), at most 300 characters."""
    if isinstance(exc, ResourceExhausted):
        return exc.message
    lines = [x.strip() for x in str(exc).splitlines() if x.strip()]
    return f"{exc.__class__.__name__}: {lines[-1] if lines else ''}"[:300]


def reserve_for_write(plans: list[tuple[ShardGpu, int, int]]) -> Callable[[], None]:
    """Reserve GPU memory for a write about to be committed: (shard gpu, removed, added)
    per shard touched. Raises ResourceExhausted (nothing reserved); returns an undo."""
    items = {g: (g.gpu, g.planned_bytes(nr, na)) for g, nr, na in plans if g.exact is not None}
    if not items:
        return lambda: None
    budget = next(iter(items)).ctx.budget
    prev = budget.reserve(items)
    return lambda: budget.restore(prev)
