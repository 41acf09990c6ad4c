"""Outliers: the points farthest from the rest, with their score.

Scores (higher = more of an outlier; distances as population.py defines them):
  knn       the mean distance of a point to its ``k`` nearest neighbours among the
            population (the points matching the filter), itself excluded. Exact:
            faiss.knn of every scored point over the gathered array (no index, no
            second copy), in batches of SEARCH_BATCH (k+1 neighbours, itself dropped).
            Cost: N x S x dim multiply-adds for S scored points of N (S = N by
            default: quadratic; 100k x 384 takes about a minute on 2 cores).
  centroid  the distance to the nearest of the given centroids (e.g. a clustering
            result's): cosine 1 - similarity, l2 and ip the squared L2 distance (the
            k-means geometry). Cost: S x centroids x dim.
Sampled mode (``sample=S``): only S random points (``default_rng(seed)``) are scored,
each exactly against the whole population; the answer is the top ``n`` of the
sample. For large collections, where all-pairs is too slow.
"""
from __future__ import annotations

from dataclasses import dataclass

import faiss
import numpy as np

from .. import validation
from ..errors import InvalidArgument
from . import population

SEARCH_BATCH = 4096
MAX_N = 10_000
MAX_K = 1024
METHODS = ("knn", "centroid")


@dataclass
class Outlier:
    id: str
    score: float
    payload: dict | None
    text: str | None


@dataclass
class OutliersResult:
    outliers: list  # of Outlier, highest score first
    scored: int  # points scored (the sample, or the whole population)
    population: int  # points matching the filter


def knn_scores(pop_vectors: np.ndarray, rows: np.ndarray | None, k: int, metric: str) -> np.ndarray:
    """Mean distance of each of ``rows`` (None: every point) to its k nearest other points
    of the population. Brute force straight over the gathered array (faiss.knn: no index,
    no second copy of the population)."""
    n = len(pop_vectors) if rows is None else len(rows)
    kind = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
    out = np.empty(n, np.float64)
    for i in range(0, n, SEARCH_BATCH):
        r = np.arange(i, min(n, i + SEARCH_BATCH)) if rows is None else rows[i:i + SEARCH_BATCH]
        q = pop_vectors[i:i + len(r)] if rows is None else pop_vectors[r]
        scores, nbr = faiss.knn(q, pop_vectors, k + 1, metric=kind)
        dist = population.to_distance(scores, metric).astype(np.float64)
        self_hit = nbr == r[:, None]
        # drop the point itself; where it is not among the k+1 (ties, or ip), the last
        keep = ~self_hit
        keep[~self_hit.any(axis=1), k] = False
        out[i:i + len(r)] = dist[keep].reshape(len(r), k).mean(axis=1)
    return out


def centroid_scores(vectors: np.ndarray, centroids: np.ndarray, metric: str) -> np.ndarray:
    """Distance of each vector to its nearest centroid."""
    c = np.ascontiguousarray(centroids, dtype=np.float32)
    if metric == "cosine":
        norms = np.linalg.norm(c, axis=1, keepdims=True)
        norms[norms == 0] = 1.0
        sim, _ = faiss.knn(vectors, np.ascontiguousarray(c / norms), 1, metric=faiss.METRIC_INNER_PRODUCT)
        return 1.0 - sim[:, 0].astype(np.float64)
    d, _ = faiss.knn(vectors, c, 1)
    return d[:, 0].astype(np.float64)


def outliers(coll, n: int = 10, method: str = "knn", k: int = 10, filter=None,
             sample: int | None = None, centroids=None, seed: int = 0,
             with_payload: bool = True) -> OutliersResult:
    n = validation.int_in(n, 1, MAX_N, "n")
    if method not in METHODS:
        raise InvalidArgument(f"method must be one of {', '.join(METHODS)}, got {method!r}", "method")
    k = validation.int_in(k, 1, MAX_K, "k")
    sample, seed = population.check_sample(sample), population.check_seed(seed)
    dim, metric = coll.config.dim, coll.config.metric
    if method == "centroid":
        if centroids is None:
            raise InvalidArgument("method centroid needs the centroids (e.g. a clustering "
                                  "result's)", "centroids")
        centroids = validation.vectors(centroids, dim, None, "centroids")
        if len(centroids) == 0:
            raise InvalidArgument("centroids is empty", "centroids")
    elif centroids is not None:
        raise InvalidArgument("centroids are for method centroid", "centroids")
    population.all_threads()
    pop = population.gather(coll, filter)
    if method == "knn" and k >= len(pop):
        raise InvalidArgument(f"k={k} needs more than k points; {len(pop)} match", "k")
    rows = population.sample_rows(len(pop), sample, seed)  # None: score every point
    if method == "knn":
        scores = knn_scores(pop.vectors, rows, k, metric)
    else:
        scores = centroid_scores(pop.vectors if rows is None else pop.vectors[rows], centroids, metric)
    top = np.argsort(-scores, kind="stable")[:n]
    ids, pays, txts = population.hydrate(coll, pop, top if rows is None else rows[top], with_payload)
    found = [Outlier(pid, float(scores[t]), p, x)
             for pid, t, p, x in zip(ids, top.tolist(), pays, txts) if pid]
    return OutliersResult(found, len(scores), len(pop))
