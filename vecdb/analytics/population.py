"""The points an analytics call works on, and the distance every analytics call reports.

``gather`` copies the vectors of the live, unexpired points matching a filter out of
each shard's exact index into one array, in a fixed order: shard by shard (shard 0
first), and within a shard by label, i.e. in the order the points were last written.
That order is what k-means is fed, so a caller can reproduce a clustering with
``faiss.Kmeans`` on the same vectors (the tests do). Vectors are in the index's form:
normalized for cosine.

Consistency and locking: first, each shard's matching labels are copied under its read
lock (that fixes the shard's point set: a point-in-time view per shard); then the
vectors are copied GATHER_CHUNK rows at a time, each chunk under the read lock, so a
writer waits for one chunk's copy at most, never for the whole gather. A label's vector
never changes (a rewrite gives the point a new label), so every vector copied is the
one the point had when its shard's labels were taken; a point deleted or rewritten
before its chunk is copied is left out, and points written after that are not in.

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
GATHER_CHUNK = 65_536  # rows copied per read-lock hold


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
    picks = []
    for s in coll.shards:  # each shard's point set, fixed now (a copy of its labels)
        with s.lock.read():
            picks.append(_matching_labels(s, node))
    total = sum(len(p) for p in picks)
    if total == 0:
        where = "filter" if node is not None else "collection"
        raise FailedPrecondition(f"no points {'match the filter' if node is not None else 'in collection'}"
                                 f"{'' if node is not None else ' ' + repr(coll.config.name)}", where)
    vectors, live, at = np.empty((total, coll.config.dim), np.float32), np.ones(total, bool), 0
    for s, labs in zip(coll.shards, picks):
        _copy_vectors(s, labs, vectors[at:at + len(labs)], live[at:at + len(labs)])
        at += len(labs)
    shard = np.repeat(np.arange(len(picks), dtype=np.int32), [len(p) for p in picks])
    labels = np.concatenate(picks)
    if not live.all():  # deleted or rewritten before their chunk was copied
        kept = _compact(vectors, live)
        vectors, shard, labels = vectors[:kept], shard[live], labels[live]
    return Population(vectors, shard, labels)


def _matching_labels(s, node) -> np.ndarray:
    """Sorted labels of the shard's live, unexpired points matching ``node`` (a copy)."""
    if not s.exact.ntotal:
        return np.zeros(0, np.int64)
    exclude = s.expiry.expired()
    if node is None and not len(exclude):
        return np.sort(s.live_labels())  # a copy (quantized shards keep them on a column)
    return np.array(s.with_primary(planner.matching(s, node, exclude)[0]), np.int64)  # sorted


def _copy_vectors(s, labels: np.ndarray, out: np.ndarray, live: np.ndarray) -> None:
    """Copy the vectors of ``labels`` (sorted) into ``out``, GATHER_CHUNK at a time, each
    chunk under the shard's read lock (writers wait for one chunk's copy at most). Rows
    move when points are removed, so labels are mapped to rows again after any write;
    a label gone meanwhile is marked False in ``live``."""
    seq, rows_of = None, None
    for i in range(0, len(labels), GATHER_CHUNK):
        chunk = labels[i:i + GATHER_CHUNK]
        with s.lock.read():
            if not hasattr(s.exact, "id_map"):  # a vector store other than an in-RAM IndexFlat
                found = np.isin(chunk, planner.universe(s), assume_unique=True)
                live[i:i + len(chunk)] = found
                out[i:i + len(chunk)][found] = s.exact.reconstruct_batch(chunk[found])
                continue
            if rows_of is None or s.applied_seq != seq:
                seq, rows_of = s.applied_seq, _row_finder(faiss.vector_to_array(s.exact.id_map))
            rows, found = rows_of(chunk)
            n, dim = s.exact.ntotal, s.exact.d
            stored = faiss.rev_swig_ptr(faiss.downcast_index(s.exact.index).get_xb(),
                                        n * dim).reshape(n, dim) if n else np.zeros((0, dim), np.float32)
            dst = out[i:i + len(chunk)]
            if not found.all():
                live[i:i + len(chunk)] = found
                dst[found] = stored[rows[found]]
            elif rows[-1] - rows[0] == len(rows) - 1:  # consecutive rows: one straight copy
                dst[:] = stored[rows[0]:rows[-1] + 1]
            else:
                np.take(stored, rows, axis=0, out=dst)


def _row_finder(id_map: np.ndarray):
    """labels -> (their rows in the index, found?) for the index's current id map (in
    label order in practice: labels grow and removals keep the order; sorted here if not)."""
    sorter = None if np.all(id_map[1:] > id_map[:-1]) else np.argsort(id_map, kind="stable")
    by_label = id_map if sorter is None else id_map[sorter]

    def rows_of(labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        if not len(by_label):
            return np.zeros(len(labels), np.int64), np.zeros(len(labels), bool)
        at = np.minimum(np.searchsorted(by_label, labels), len(by_label) - 1)
        return (at if sorter is None else sorter[at]), by_label[at] == labels
    return rows_of


def _compact(vectors: np.ndarray, live: np.ndarray) -> int:
    """Move the live rows to the front in place, in order, a chunk at a time; returns
    how many there are."""
    keep, dst = np.flatnonzero(live), 0
    for i in range(0, len(keep), GATHER_CHUNK):
        src = keep[i:i + GATHER_CHUNK]
        vectors[dst:dst + len(src)] = vectors[src]  # src >= dst: a later row is never overwritten
        dst += len(src)
    return dst


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


def range_search(queries: np.ndarray, points: np.ndarray, radius: float, metric: str):
    """FAISS range search of ``queries`` over the rows of ``points`` (C-contiguous float32
    arrays, no index built): (lims, scores, rows) as Index.range_search answers, with
    the scores ``to_distance`` converts; ``radius`` from ``radius_for``."""
    nq, nb, dim = len(queries), len(points), points.shape[1]
    res = faiss.RangeSearchResult(nq)
    search = faiss.range_search_L2sqr if metric == "l2" else faiss.range_search_inner_product
    search(faiss.swig_ptr(queries), faiss.swig_ptr(points), dim, nq, nb, radius, res)
    lims = faiss.rev_swig_ptr(res.lims, nq + 1).copy()
    hits = int(lims[-1])
    return (lims, faiss.rev_swig_ptr(res.distances, hits).copy(),
            faiss.rev_swig_ptr(res.labels, hits).copy())


def to_distance(scores: np.ndarray, metric: str) -> np.ndarray:
    """FAISS scores (L2: squared distances, else inner products) -> distances (module doc)."""
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
