"""Near-duplicates: every pair of points closer than a threshold, and their groups.

Exact, straight over the gathered array (no index, no second copy of the population):
the points are taken ``batch`` at a time as queries, each batch range-searched
(faiss range_search_L2sqr / range_search_inner_product, radius population.radius_for)
against the points after its first one only, BLOCK points at a time, so each pair is
computed once (the upper triangle: half of N x N x dim). Each pair is reported once,
by the point that comes first in gather order, with its distance (population.py),
batch by batch in (first, second) order. After the last batch come the connected
groups (the components of the graph of reported pairs, largest first).

Memory: the population, plus at most ``limit`` pairs, plus one (batch x BLOCK)
block's hits. A batch keeps only the pairs the answer can still use: once more than
the ``limit`` left were found, it keeps the first ones in order and drops the rest.
``limit`` bounds the pairs reported; when it is reached the scan stops and the end
says ``truncated`` (the groups then cover only the reported pairs).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .. import validation
from . import population

MAX_LIMIT = 10_000_000
DEFAULT_BATCH = 1024
BLOCK = 4096  # points range-searched by one batch at a time


@dataclass
class DuplicatesChunk:
    """One streamed part: ``pairs`` [(id_a, id_b, distance)]; the last one has ``done``,
    ``groups`` (lists of ids) and ``truncated``."""
    pairs: list = field(default_factory=list)
    done: bool = False
    truncated: bool = False
    groups: list = field(default_factory=list)
    scanned: int = 0  # points whose neighbourhood was searched so far
    population: int = 0


def duplicates(coll, threshold: float, filter=None, limit: int = 100_000,
               batch: int = DEFAULT_BATCH):
    """Validates now (errors before the first chunk), returns an iterator of
    DuplicatesChunk."""
    metric = coll.config.metric
    threshold = population.check_threshold(threshold, metric)
    limit = validation.int_in(limit, 1, MAX_LIMIT, "limit")
    batch = validation.int_in(batch, 1, 65_536, "batch")
    population.all_threads()
    pop = population.gather(coll, filter)
    return _scan(coll, pop, threshold, limit, batch)


def _batch_pairs(x: np.ndarray, start: int, stop: int, radius: float, metric: str,
                 keep: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(a, b, distance) of the pairs a < b closer than the threshold with a in
    [start, stop), the first ``keep`` of them in (a, b) order."""
    found: list[tuple[np.ndarray, np.ndarray, np.ndarray]] = []
    held = 0
    for j in range(start, len(x), BLOCK):
        lims, scores, nbr = population.range_search(x[start:stop], x[j:j + BLOCK], radius, metric)
        a = np.repeat(np.arange(start, stop), np.diff(lims).astype(np.int64))
        b = nbr + j
        upper = b > a  # each pair once, never a point with itself
        found.append((a[upper], b[upper], scores[upper]))
        held += int(upper.sum())
        if held > keep:  # only the first ``keep`` can still be reported
            found = [_first(*map(np.concatenate, zip(*found)), keep)]
            held = keep
    if not found:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32)
    a, b, sc = _first(*map(np.concatenate, zip(*found)), keep)
    return a, b, population.to_distance(sc, metric)


def _first(a, b, sc, keep: int):
    order = np.lexsort((b, a))[:keep]
    return a[order], b[order], sc[order]


def _scan(coll, pop, threshold: float, limit: int, batch: int):
    metric = coll.config.metric
    radius = population.radius_for(threshold, metric)
    n, reported, truncated = len(pop), 0, False
    parent = {}  # union-find over gather rows of reported pairs

    def find(a: int) -> int:
        while parent.setdefault(a, a) != a:
            parent[a] = parent[parent[a]]
            a = parent[a]
        return a
    ids_of: dict[int, str] = {}
    for i in range(0, n, batch):
        population.all_threads()
        a, b, d = _batch_pairs(pop.vectors, i, min(n, i + batch), radius, metric,
                               limit - reported + 1)
        if reported + len(a) > limit:
            a, b, d = a[:limit - reported], b[:limit - reported], d[:limit - reported]
            truncated = True
        need = np.unique(np.concatenate([a, b]))
        need = need[[r not in ids_of for r in need.tolist()]] if ids_of else need
        if len(need):
            got, _, _ = population.hydrate(coll, pop, need, False)
            ids_of.update(zip(need.tolist(), got))
        pairs = []
        for x, y, dist in zip(a.tolist(), b.tolist(), d.tolist()):
            ix, iy = ids_of[x], ids_of[y]
            if ix and iy:  # not deleted since the gather
                pairs.append((ix, iy, float(dist)))
                ra, rb = find(x), find(y)
                if ra != rb:
                    parent[ra] = rb
        reported += len(pairs)
        if pairs or truncated:
            yield DuplicatesChunk(pairs, scanned=min(n, i + batch), population=n)
        if truncated:
            break
    groups: dict[int, list[str]] = {}
    for r in parent:
        groups.setdefault(find(r), []).append(ids_of[r])
    ordered = sorted((sorted(g) for g in groups.values()), key=lambda g: (-len(g), g[0]))
    yield DuplicatesChunk([], done=True, truncated=truncated, groups=ordered,
                          scanned=n if not truncated else min(n, i + batch), population=n)
