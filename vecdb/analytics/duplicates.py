"""Near-duplicates: every pair of points closer than a threshold, and their groups.

One flat FAISS index over the population (the points matching the filter); every
point range-searches it (population.radius_for) in batches of ``batch`` queries, so
memory stays bounded by one batch's hits. Each pair is reported once, by the point
that comes first in gather order, with its distance (population.py). The pairs
stream out batch by batch; after the last batch come the connected groups (the
components of the graph of reported pairs, largest first). Cost: N x N x dim, like
exact k-NN outliers.

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


def _scan(coll, pop, threshold: float, limit: int, batch: int):
    metric = coll.config.metric
    index = population.flat_index(pop.vectors, metric)
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
        lims, scores, nbr = index.range_search(pop.vectors[i:i + batch], radius)
        q = np.repeat(np.arange(i, i + len(lims) - 1), np.diff(lims).astype(np.int64))
        keep = nbr > q  # each pair once, never a point with itself
        a, b = q[keep], nbr[keep]
        d = population.to_distance(scores[keep], metric)
        order = np.lexsort((b, a))
        a, b, d = a[order], b[order], d[order]
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
