"""The points an analytics call works on, and the distance every analytics call reports.

``gather`` copies the vectors of the live, unexpired points matching a filter out of
each shard's exact index (under the shard's read lock, one shard at a time), in a
fixed order: shard by shard (shard 0 first), and within a shard by label, i.e. in the
order the points were last written. That order is what k-means is fed, so a caller
can reproduce a clustering with ``faiss.Kmeans`` on the same vectors (the tests do).
Vectors are in the index's form: normalized for cosine.

Distance (lower = closer), one notion for outliers and duplicates:
  cosine  1 - cosine similarity, in [0, 2]
  l2      squared Euclidean distance (the metric's own score)
  ip      minus the inner product (any real number)
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import faiss
import numpy as np

from .. import filters, omp, planner
from ..errors import FailedPrecondition, InvalidArgument

MAX_SAMPLE = 1 << 31


@dataclass
class Population:
    vectors: np.ndarray  # (n, dim) float32, index form
    shard: np.ndarray  # (n,) int32: the shard each point lives in
    labels: np.ndarray  # (n,) int64: its label in that shard

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, rows: np.ndarray) -> "Population":
        return Population(self.vectors[rows], self.shard[rows], self.labels[rows])


def gather(coll, filter=None) -> Population:
    """Every live point matching ``filter`` (a filter dict or None). FailedPrecondition
    (field ``filter``, or ``collection`` without one) when none does."""
    node = filters.parse(filter)
    vecs, shard_of, labels = [], [], []
    for i, s in enumerate(coll.shards):
        with s.lock.read():  # writers wait for the copy only (~0.3 s per 1M x 384 warm)
            n, dim = s.exact.ntotal, s.exact.d
            labs = faiss.vector_to_array(s.exact.id_map).copy() if n else np.zeros(0, np.int64)
            exclude = s.expiry.expired()
            rows = None
            if node is not None or len(exclude):
                rows = np.flatnonzero(np.isin(labs, planner.matching(s, node, exclude)[0]))
            order = np.argsort(labs if rows is None else labs[rows], kind="stable")
            if rows is not None:
                order = rows[order]
            elif np.array_equal(order, np.arange(n)):
                order = None  # already in label order: one straight copy
            v = rows_buffer(len(labs) if order is None else len(order), dim)
            if len(v):
                stored = faiss.rev_swig_ptr(faiss.downcast_index(s.exact.index).get_xb(),
                                            n * dim).reshape(n, dim)
                if order is None:
                    v[:] = stored
                else:
                    np.take(stored, order, axis=0, out=v)
        labs = labs if order is None else labs[order]
        vecs.append(v)
        labels.append(labs)
        shard_of.append(np.full(len(labs), i, np.int32))
    if len(vecs) == 1:
        joined = vecs[0]
    else:
        joined = rows_buffer(sum(len(v) for v in vecs), coll.config.dim)
        np.concatenate(vecs, out=joined)
    pop = Population(joined, np.concatenate(shard_of), np.concatenate(labels))
    if len(pop) == 0:
        where = "filter" if node is not None else "collection"
        raise FailedPrecondition(f"no points {'match the filter' if node is not None else 'in collection'}"
                                 f"{'' if node is not None else ' ' + repr(coll.config.name)}", where)
    return pop


def rows_buffer(n: int, dim: int) -> np.ndarray:
    """The (n, dim) float32 array a gather copies into: one copy straight out of the
    index (no intermediate snapshot). Huge-page-advised mappings were tried: on the VM
    they were slower once memory had been used (direct compaction, 0.3-2.7 s vs a
    steady 0.3 s for 1M x 384)."""
    return np.empty((n, dim), np.float32)


def sample_rows(n: int, sample: int | None, seed: int) -> np.ndarray | None:
    """Sorted rows of a random sample of ``sample`` out of ``n`` (None: all of them)."""
    if sample is None or sample >= n:
        return None
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=sample, replace=False))


def check_sample(sample, field: str = "sample") -> int | None:
    if sample is None:
        return None
    if isinstance(sample, bool) or not isinstance(sample, (int, np.integer)) or not 1 <= sample < MAX_SAMPLE:
        raise InvalidArgument(f"{field} must be a positive integer, got {sample!r}", field)
    return int(sample)


def check_seed(seed) -> int:
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not 0 <= seed < 1 << 31:
        raise InvalidArgument(f"seed must be an integer in [0, 2^31), got {seed!r}", "seed")
    return int(seed)


def check_threshold(threshold, metric: str) -> float:
    """A distance threshold (see the module doc) valid for ``metric``."""
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float, np.floating)) \
            or not math.isfinite(threshold):
        raise InvalidArgument(f"threshold must be a finite number, got {threshold!r}", "threshold")
    t = float(threshold)
    if metric == "cosine" and not 0 < t <= 2:
        raise InvalidArgument(f"threshold is a cosine distance (1 - similarity) and must be in "
                              f"(0, 2], got {t!r}", "threshold")
    if metric == "l2" and t <= 0:
        raise InvalidArgument(f"threshold is a squared L2 distance and must be > 0, got {t!r}",
                              "threshold")
    return t


def flat_index(vectors: np.ndarray, metric: str) -> faiss.Index:
    """An exact FAISS index over ``vectors`` whose scores ``to_distance`` converts."""
    index = faiss.IndexFlatL2(vectors.shape[1]) if metric == "l2" else faiss.IndexFlatIP(vectors.shape[1])
    index.add(vectors)
    return index


def to_distance(scores: np.ndarray, metric: str) -> np.ndarray:
    """FAISS scores of ``flat_index`` -> distances (module doc)."""
    if metric == "l2":
        return scores
    if metric == "cosine":
        return 1.0 - scores
    return -scores


def radius_for(threshold: float, metric: str) -> float:
    """The FAISS range_search radius selecting distance < threshold."""
    return {"l2": threshold, "cosine": 1.0 - threshold}.get(metric, -threshold)


def all_threads() -> None:
    """Analytics runs its FAISS calls on every core allowed (faiss_omp_threads)."""
    faiss.omp_set_num_threads(max(1, omp._cap or omp.CORES))


def hydrate(coll, pop: Population, rows: np.ndarray, with_payload: bool):
    """ids, payloads, texts of these rows (a point deleted since the gather: id "")."""
    rows = np.asarray(rows, np.int64)
    ids: list = [""] * len(rows)
    pays: list = [None] * len(rows)
    txts: list = [None] * len(rows)
    shards = pop.shard[rows]
    for s in np.unique(shards).tolist():
        where = np.flatnonzero(shards == s)
        got_ids, got_p, got_t, _ = coll.shards[s].hydrate(pop.labels[rows[where]], with_payload, False)
        for j, w in enumerate(where.tolist()):
            ids[w], pays[w], txts[w] = got_ids[j], got_p[j], got_t[j]
    return ids, pays, txts
