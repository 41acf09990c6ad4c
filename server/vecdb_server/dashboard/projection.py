"""The map: 2-D projections of a sample of a collection's vectors, computed in the
background and cached per collection version.

``pca`` (numpy, always there) is the default; ``tsne`` when scikit-learn is installed
and ``umap`` when umap-learn is; neither is a dependency. A map is keyed by
(collection, sample size, filter, method) and remembers the collection version it
sampled (the shards' applied WAL sequence numbers). A request that asks for a fresh
map (the page's Draw) gets a new one when a write made a new version, and the cached
one otherwise, so an unchanged collection is projected once; the page's polls while
a projection runs keep to that job even if writes go on. The cache holds no key material:
the sample is gathered with the caller's key in the caller's request, and every later
request re-checks the caller's access (DescribeCollection) before a map is served.

Bounded, since a read-only key can ask for maps: at most MAX_RUNNING jobs gather or
project at once server-wide (more get 429 with Retry-After), an identical request joins
the job in flight instead of starting another, a running job is never dropped from the
cache, and the sample is capped by method (MAX_SAMPLE) and by its vectors' bytes
(MAX_SAMPLE_BYTES).
"""
from __future__ import annotations

import importlib.util
import itertools
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable

import grpc
import numpy as np

from .calls import CallError

log = logging.getLogger("vecdb_server.dashboard")
MAX_MAPS = 8  # cached maps (each up to the sample's ids, payloads, texts and 2 floats a point)
MAX_RUNNING = 2  # maps gathered or projected at once, server-wide; more answer 429
RETRY_AFTER_MS = 5000  # the Retry-After of that 429
MAX_SAMPLE = {"pca": 50_000, "tsne": 10_000, "umap": 10_000}  # points on a map, by method
MAX_SAMPLE_BYTES = 64 << 20  # sample x dim x 4 (float32): the vectors a map may gather


def methods() -> list[str]:
    """Projection methods this server can run, default first."""
    out = ["pca"]
    if importlib.util.find_spec("sklearn") is not None:
        out.append("tsne")
    if importlib.util.find_spec("umap") is not None:
        out.append("umap")
    return out


def pca_2d(vectors: np.ndarray) -> np.ndarray:
    """The first two principal components' coordinates, shape (n, 2); deterministic
    (each axis' sign makes its largest loading positive)."""
    if len(vectors) == 0:
        return np.zeros((0, 2), np.float32)
    x = np.array(vectors, dtype=np.float64)  # the one copy: centred in place
    x -= x.mean(axis=0)
    if len(x) <= x.shape[1]:
        axes = np.linalg.svd(x, full_matrices=False)[2][:2]
    else:  # a d x d eigenproblem is cheaper than the SVD of a tall matrix
        vals, vecs = np.linalg.eigh(x.T @ x)
        axes = vecs[:, np.argsort(vals)[::-1][:2]].T
    axes = axes * np.sign(axes[np.arange(len(axes)), np.abs(axes).argmax(axis=1)])[:, None]
    out = np.zeros((len(x), 2))
    out[:, :len(axes)] = x @ axes.T
    return out.astype(np.float32)


def project(vectors: np.ndarray, method: str) -> np.ndarray:
    if method == "pca" or len(vectors) < 5:
        return pca_2d(vectors)
    if method == "tsne":
        from sklearn.manifold import TSNE
        perplexity = min(30.0, (len(vectors) - 1) / 3)
        return TSNE(2, init="pca", perplexity=perplexity,
                    random_state=0).fit_transform(vectors).astype(np.float32)
    import umap  # method == "umap"
    return umap.UMAP(n_components=2, random_state=0).fit_transform(vectors).astype(np.float32)


@dataclass
class MapJob:
    """One map: ``state`` running -> done | failed; the points are set when gathered,
    the coordinates when done. ``seq`` tells one job from another (the API's ``job``)."""
    seq: int
    method: str
    version: tuple  # the collection version sampled (shards' applied WAL sequences)
    ids: list[str] = field(default_factory=list)
    payloads: list[Any] = field(default_factory=list)
    texts: list[Any] = field(default_factory=list)
    state: str = "running"
    coords: np.ndarray | None = None
    error: str = ""
    done: threading.Event = field(default_factory=threading.Event)


class MapCache:
    """Maps by key; at most MAX_MAPS (least recently used finished map dropped first) and
    at most MAX_RUNNING jobs gathering or projecting at once, server-wide."""

    def __init__(self) -> None:
        self._maps: OrderedDict[tuple, MapJob] = OrderedDict()
        self._lock = threading.Lock()
        self._running = 0
        self._seq = itertools.count(1)

    def start(self, key: tuple, version: tuple, refresh: bool,
              gather: Callable[[], tuple[list, np.ndarray, list, list]],
              method: str) -> MapJob:
        """The cached job for ``key`` when it is running (an identical request shares it),
        of ``version``, or (without ``refresh``) of any version: a page polling a running
        projection keeps its job while writes go on. Else a new job: the sample is gathered
        now (in the caller's thread, with its key) and projected in a background thread.
        CallError RESOURCE_EXHAUSTED (429) when MAX_RUNNING jobs are already running."""
        with self._lock:
            job = self._maps.get(key)
            if job is not None and (not job.done.is_set() or job.version == version
                                    or not refresh):
                self._maps.move_to_end(key)
                return job
            if self._running >= MAX_RUNNING:
                raise CallError(grpc.StatusCode.RESOURCE_EXHAUSTED,
                                f"the dashboard is already drawing {self._running} map(s), its "
                                f"limit; try again when one is done",
                                retry_after_ms=str(RETRY_AFTER_MS))
            self._running += 1
            job = MapJob(next(self._seq), method, version)
            self._maps[key] = job
            self._maps.move_to_end(key)
            finished = [k for k, j in self._maps.items() if j.done.is_set()]
            for old in finished[:max(0, len(self._maps) - MAX_MAPS)]:
                del self._maps[old]
        try:
            job.ids, vectors, job.payloads, job.texts = gather()
            threading.Thread(target=self._run, args=(job, vectors),
                             name="vecdb-dashboard-map", daemon=True).start()
        except BaseException as exc:
            with self._lock:
                if self._maps.get(key) is job:
                    del self._maps[key]
            self._finish(job, "failed", f"the sample could not be read: "
                         f"{getattr(exc, 'message', type(exc).__name__)}")
            raise
        return job

    def _finish(self, job: MapJob, state: str, error: str = "") -> None:
        job.error, job.state = error, state
        with self._lock:
            self._running -= 1
        job.done.set()

    def _run(self, job: MapJob, vectors: np.ndarray) -> None:
        try:
            job.coords = project(vectors, job.method)
        except Exception as exc:  # noqa: BLE001 - reported on the map, logged here
            log.exception("map projection (%s) failed", job.method)
            self._finish(job, "failed", f"{job.method} projection failed: "
                         f"{type(exc).__name__}")
        else:
            self._finish(job, "done")
