"""Filtered reads of one shard: which labels match, and the filtered-search planner.

Every function here runs with the shard's read lock held by the caller.

Matching set. Conditions a ready payload index can answer are resolved from
posting lists (and has_id from RocksDB); the rest are evaluated on the stored
payloads of the candidates the indexed part leaves (all points if none).

Search plans, chosen per shard and reported in ``plan``:
  prefilter    the matching set is known and small (<= max(20k, 10% of the
               shard)): brute force over exactly those vectors. Exact.
  selector     the matching set is known and large: the ANN (or flat) index
               searched with an IDSelector of it; if it comes back short of
               min(k, matches), the exact index with the same selector.
  postfilter   some condition has no index and the candidates are many: the
               index is searched for k' candidates, their payloads checked,
               and k' grown (by the observed selectivity) until every query
               has k matches or the shard is exhausted; once one query's k'
               would pass a quarter of the shard, or all queries' candidates
               together twice the shard, the matching set is computed by one
               scan instead.
Whatever the plan, a query gets min(k, matches in the shard) results: never
fewer because of filtering.
"""
from __future__ import annotations

import math

import faiss
import numpy as np

from .filters import Clause, Cond, Node, TenantScope, matches
from .index import faiss_metric

PREFILTER_MIN = 20_000
PREFILTER_FRACTION = 0.10
POSTFILTER_SCAN_FRACTION = 0.25
_EMPTY = np.zeros(0, np.int64)


def universe(shard) -> np.ndarray:
    """Every live label of the shard, with or without the primary vector (sorted; cached
    until the next applied write)."""
    if shard.count == 0:
        return _EMPTY
    cached = shard.universe_cache
    if cached is None or cached[0] != shard.applied_seq:
        cached = shard.universe_cache = (shard.applied_seq, np.sort(shard.members()))
    return cached[1]


def selector(labels: np.ndarray):
    """An IDSelector allowing exactly ``labels`` (sorted): a bitmap over the label range
    (one bit test per candidate), or a hash set when the labels are few and far apart."""
    if len(labels) == 0 or len(labels) * 64 < int(labels[-1]):
        return faiss.IDSelectorBatch(labels)
    flags = np.zeros(int(labels[-1]) + 1, bool)
    flags[labels] = True
    bits = np.packbits(flags, bitorder="little")
    sel = faiss.IDSelectorBitmap(len(bits), faiss.swig_ptr(bits))  # n: bytes, not bits
    sel.referenced_bits = bits  # the selector reads this buffer: keep it alive with it
    return sel


def _has_ids(shard, ids) -> np.ndarray:
    labs = [lab for lab in shard.labels_of(sorted(ids)) if lab is not None]
    return np.unique(np.array(labs, dtype=np.int64))


def index_candidates(shard, node: Node, everything: np.ndarray,
                     within: bool = False) -> tuple[np.ndarray | None, bool]:
    """(labels, exact): a superset of the matches from indexes (None: no constraint);
    exact=True when it IS the matching set. ``within``: the indexes answer for the labels
    of ``everything`` only, from their values (a small tenant: vecdb/tenant_search.py)."""
    if isinstance(node, Cond):
        if node.op == "has_id":
            return np.intersect1d(_has_ids(shard, node.value), everything, assume_unique=True), True
        got = shard.pindex.lookup(node, everything if within else None)
        return (None, False) if got is None else (got, True)
    parts, exact = [], True
    for child in node.must:
        got, ex = index_candidates(shard, child, everything, within)
        exact &= ex
        if got is not None:
            parts.append(got)
    if node.should and node.min_should:
        subs = [index_candidates(shard, c, everything, within) for c in node.should]
        if all(ex for _, ex in subs):
            sets = [everything if g is None else g for g, _ in subs]
            labels, counts = np.unique(np.concatenate(sets), return_counts=True)
            parts.append(labels[counts >= node.min_should])
        else:
            exact = False
    if node.must_not:
        subs = [index_candidates(shard, c, everything, within) for c in node.must_not]
        if all(ex for _, ex in subs):
            banned = np.unique(np.concatenate([everything if g is None else g for g, _ in subs]))
            parts.append(np.setdiff1d(everything, banned, assume_unique=True))
        else:
            exact = False
    if not parts:
        return None, exact
    out = parts[0]
    for p in parts[1:]:
        out = np.intersect1d(out, p, assume_unique=True)
    return out, exact


def evaluate(shard, node: Node, labels: np.ndarray | None) -> np.ndarray:
    """Labels (of ``labels``, or of every stored point) whose payload matches ``node``."""
    hits = [lab for lab, pid, pay, txt in shard.iter_records(labels) if matches(node, pid, pay, txt)]
    return np.array(sorted(hits), dtype=np.int64)


def matching(shard, node: Clause | None, exclude: np.ndarray,
             planned: tuple | None = None) -> tuple[np.ndarray, str]:
    """The exact matching set (sorted labels, live, not excluded) and how it was found.
    ``planned``: index_candidates' answer when the caller already has it."""
    if isinstance(node, TenantScope):  # the tenant's partition, not the whole shard
        from . import tenant_search
        return tenant_search.labels(shard, node, exclude)
    everything = universe(shard)
    if node is None:
        how, got = "all", everything
    else:
        cand, exact = planned or index_candidates(shard, node, everything)
        if exact:
            how, got = "index", everything if cand is None else cand
        else:
            how = "scan" if cand is None else "index+scan"
            got = evaluate(shard, node, cand)
            got = np.intersect1d(got, everything, assume_unique=True)  # committed but not yet applied
    if len(exclude):
        got = np.setdiff1d(got, exclude, assume_unique=True)
    return got, how


def _prefilter(shard, queries: np.ndarray, k: int, labels: np.ndarray):
    if len(labels) == 0:
        return _empty(len(queries))
    vecs = shard.exact.reconstruct_batch(labels)
    kk = min(k, len(labels))
    dist, idx = faiss.knn(queries, vecs, kk, metric=faiss_metric(shard.metric))
    return dist, np.where(idx >= 0, labels[np.maximum(idx, 0)], -1)


def _selector_search(shard, queries, k, params, labels: np.ndarray):
    sel = selector(labels)
    want = min(k, len(labels))
    ann = shard.ann
    if ann is not None and not params.exact:
        scores, got = shard.ann_search(queries, k, params, sel, len(labels))
        if ((got >= 0).sum(axis=1) >= want).all():
            return scores, got, "selector"
    scores, got = shard.exact.search(queries, want, params=faiss.SearchParameters(sel=sel))
    return scores, got, "selector(exact)" if ann is not None and not params.exact else "selector"


def _raw_search(shard, queries, kk, params, sel):
    ann = shard.ann
    if ann is None or params.exact:
        sp = faiss.SearchParameters(sel=sel) if sel is not None else None
        return shard.exact.search(queries, kk, params=sp), True
    return shard.ann_search(queries, kk, params, sel, shard.exact.ntotal), False


def _postfilter(shard, queries, k, params, node, cand, exclude):
    n = shard.exact.ntotal
    pool = n if cand is None else len(cand)
    allowed = cand if cand is not None else None
    if allowed is not None and len(exclude):
        allowed = np.setdiff1d(allowed, exclude, assume_unique=True)
    sel = selector(allowed) if allowed is not None else None
    verdict: dict[int, bool] = {}
    kk, rounds = min(pool, max(4 * k, 64)), 0
    banned = set(exclude.tolist())
    while True:
        rounds += 1
        (scores, labels), exact = _raw_search(shard, queries, kk, params, sel)
        fresh = np.unique(labels[labels >= 0])
        if verdict:
            fresh = np.setdiff1d(fresh, np.fromiter(verdict, np.int64), assume_unique=True)
        if len(fresh):
            ok = set(evaluate(shard, node, fresh).tolist())
            verdict.update((int(x), int(x) in ok and int(x) not in banned) for x in fresh)
        good = np.fromiter((lab for lab, ok in verdict.items() if ok), np.int64)
        keep = np.isin(labels, good) & (labels >= 0)
        found = keep.sum(axis=1)
        exhausted = exact and (labels >= 0).sum(axis=1).min() < kk
        if found.min() >= k or exhausted or kk >= pool and exact:
            return _compact(scores, labels, keep, k), f"postfilter({rounds} rounds, k'={kk})"
        seen = max(len(verdict), 1)
        sel_est = max(sum(verdict.values()) / seen, 1.0 / max(n, 1))
        nxt = min(pool, max(2 * kk, math.ceil(k / sel_est * 1.5)))
        # the next round would look at a good part of the shard anyway (all queries'
        # candidates together): computing the matching set by one scan is cheaper
        if nxt > POSTFILTER_SCAN_FRACTION * n or nxt * len(queries) > 2 * n or kk >= pool:
            return None, f"postfilter({rounds} rounds)->"
        kk = nxt


def _compact(scores, labels, keep, k):
    q = len(scores)
    out_s = np.full((q, k), np.nan, np.float32)
    out_l = np.full((q, k), -1, np.int64)
    for i in range(q):
        s, lab = scores[i][keep[i]][:k], labels[i][keep[i]][:k]
        out_s[i, :len(s)], out_l[i, :len(lab)] = s, lab
    return out_s, out_l


def _empty(q: int):
    return np.zeros((q, 0), np.float32), np.zeros((q, 0), np.int64)


def search(shard, queries: np.ndarray, k: int, params, node: Clause | None,
           exclude: np.ndarray) -> tuple[np.ndarray, np.ndarray, str]:
    """Filtered top-k of one shard: (scores, labels, plan); labels -1 pad."""
    n = shard.exact.ntotal
    if n == 0:
        return (*_empty(len(queries)), "empty")
    if isinstance(node, TenantScope):
        from . import tenant_search
        return tenant_search.search(shard, queries, k, params, node, exclude)
    small = max(PREFILTER_MIN, PREFILTER_FRACTION * n)
    prefix, planned = "", None
    if node is not None:
        planned = cand, exact = index_candidates(shard, node, universe(shard))
        if not exact and (cand is None or len(cand) > small):
            got, plan = _postfilter(shard, queries, k, params, node, cand, exclude)
            if got is not None:
                return (*got, plan)
            prefix = plan
    labels, how = matching(shard, node, exclude, planned)
    labels = shard.with_primary(labels)  # the points without the primary are not searched
    if len(labels) <= small:
        return (*_prefilter(shard, queries, k, labels), f"{prefix}prefilter({how}, {len(labels)} matches)")
    scores, got, plan = _selector_search(shard, queries, k, params, labels)
    return scores, got, f"{prefix}{plan}({how}, {len(labels)} matches)"
