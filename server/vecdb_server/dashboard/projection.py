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
"""
from __future__ import annotations

import importlib.util
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

log = logging.getLogger("vecdb_server.dashboard")
MAX_MAPS = 8  # cached maps (each up to the sample's ids, payloads, texts and 2 floats a point)


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
    x = np.asarray(vectors, dtype=np.float64)
    if len(x) == 0:
        return np.zeros((0, 2), np.float32)
    x = x - x.mean(axis=0)
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
    """One map: ``state`` running -> done | failed; the points are set when done."""
    ids: list[str]
    payloads: list[Any]
    texts: list[Any]
    method: str
    version: tuple  # the collection version sampled (shards' applied WAL sequences)
    state: str = "running"
    coords: np.ndarray | None = None
    error: str = ""
    done: threading.Event = field(default_factory=threading.Event)


class MapCache:
    """Maps by key; at most MAX_MAPS, least recently used dropped first."""

    def __init__(self) -> None:
        self._maps: OrderedDict[tuple, MapJob] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple) -> MapJob | None:
        with self._lock:
            job = self._maps.get(key)
            if job is not None:
                self._maps.move_to_end(key)
            return job

    def start(self, key: tuple, version: tuple, refresh: bool,
              gather: Callable[[], tuple[list, np.ndarray, list, list]],
              method: str) -> MapJob:
        """The cached job for ``key`` when it is of ``version`` (or, without ``refresh``,
        of any version: a page polling a running projection keeps its job while writes
        go on); else gather the sample now (in the caller's thread, with its key) and
        project it in a background thread."""
        job = self.get(key)
        if job is not None and (job.version == version or not refresh):
            return job
        ids, vectors, payloads, texts = gather()
        job = MapJob(ids, payloads, texts, method, version)
        with self._lock:
            self._maps[key] = job
            while len(self._maps) > MAX_MAPS:
                self._maps.popitem(last=False)
        threading.Thread(target=self._run, args=(job, vectors), name="vecdb-dashboard-map",
                         daemon=True).start()
        return job

    @staticmethod
    def _run(job: MapJob, vectors: np.ndarray) -> None:
        try:
            job.coords = project(vectors, job.method)
            job.state = "done"
        except Exception as exc:  # noqa: BLE001 - reported on the map, logged here
            log.exception("map projection (%s) failed", job.method)
            job.error, job.state = f"{job.method} projection failed: {type(exc).__name__}", \
                "failed"
        finally:
            job.done.set()
