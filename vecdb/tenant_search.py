"""Reads scoped to one tenant, answered from a shard's tenant partition (vecdb/tenants.py).

Runs with the shard's read lock held (planner.matching / planner.search call it for a
TenantScope node). The tenant's labels come from the partition (a cached sorted array),
never from the whole shard, so the cost follows the tenant's size:

  tenant exact     the tenant holds <= TENANT_EXACT_MAX matching points in the shard (or
                   the shard has no ANN index): brute force over exactly their vectors
                   (gathered from the flat or on-disk vector store). A 100-point tenant
                   costs what a 100-point collection costs, whatever else the shard holds.
  tenant selector  a large tenant: the shard's ANN index searched with an IDSelector of
                   the tenant's labels (planner's selector plan, falling back to the exact
                   index with the same selector when the ANN answer comes back short).

A filter inside the tenant is resolved over the tenant's labels only: payload indexes
narrow them (a small tenant's from its own labels' indexed values, not the shard-wide
postings), the rest is evaluated on those labels' stored payloads.
"""
from __future__ import annotations

import numpy as np

from . import planner

# Above this many matching points in one shard a tenant search uses the ANN index with
# the tenant's IDSelector; at or below, exact brute force over the tenant's vectors.
# Raising it keeps larger tenants exact (recall 1, cost linear in the tenant); lowering
# it sends more tenants to the shared ANN index (sublinear, approximate).
TENANT_EXACT_MAX = 20_000
# In a tenant of at most this many points in the shard, the payload indexes answer a
# filter from each of the tenant's labels' indexed values (about 0.5 us a label and
# condition) instead of building their shard-wide postings (a sort of every matching
# label of the shard: 10-30 ms at 100k). Larger tenants intersect the postings.
TENANT_WITHIN_MAX = 2_000


def labels(shard, node, exclude: np.ndarray) -> tuple[np.ndarray, str]:
    """Sorted live labels of the tenant matching the node's inner filter, and how."""
    got = shard.tenants.sorted_labels(node.key)
    if len(exclude) and len(got):
        got = np.setdiff1d(got, exclude, assume_unique=True)
    if node.inner is None or not len(got):
        return got, "tenant"
    return _filtered(shard, node.inner, got, len(got) <= TENANT_WITHIN_MAX), "tenant+filter"


def _filtered(shard, inner, got: np.ndarray, within: bool) -> np.ndarray:
    """Those of the sorted labels ``got`` that match the filter ``inner``."""
    cand, exact = planner.index_candidates(shard, inner, got, within=within)
    if cand is not None:
        got = np.intersect1d(got, cand, assume_unique=True)
    if not exact:
        got = planner.evaluate(shard, inner, got)
    return got


def page(shard, node, after: int, want: int) -> np.ndarray:
    """Up to ``want`` sorted live labels of the tenant above label ``after`` matching the
    node's inner filter (a tenant scroll page, Collection.scroll): read from the cached
    sorted labels chunk by chunk, so a page costs its size (over the filter's
    selectivity), not the tenant's. Takes the shard's read lock."""
    with shard.lock.read():
        labs = shard.tenants.sorted_labels(node.key)
        i = int(np.searchsorted(labs, after, "right"))
        expired = shard.expiry.expired()
        out, n, step = [], 0, max(want, 64)
        while i < len(labs) and n < want:
            chunk = labs[i:i + step]
            i, step = i + len(chunk), min(2 * step, TENANT_WITHIN_MAX)
            if len(expired):
                chunk = np.setdiff1d(chunk, expired, assume_unique=True)
            if node.inner is not None and len(chunk):
                chunk = _filtered(shard, node.inner, chunk, True)
            out.append(chunk)
            n += len(chunk)
    return np.concatenate(out)[:want] if out else labs[:0]


def search(shard, queries: np.ndarray, k: int, params, node,
           exclude: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    got, how = labels(shard, node, exclude)
    if len(got) <= TENANT_EXACT_MAX or shard.ann is None:
        return (*planner._prefilter(shard, queries, k, got), f"tenant exact({how}, {len(got)})")
    scores, hits, plan = planner._selector_search(shard, queries, k, params, got)
    return scores, hits, f"tenant {plan}({how}, {len(got)})"
