"""Keyword (BM25) search and hybrid search: dense and keyword retrievers fused.

Keyword-only: each shard's TextIndex answers its best k under the filter (expired
points never), the shards' lists merge by BM25 score. Hybrid: the dense retriever
(the query vector, or the query text through the encoder) and the keyword retriever
each return their best ``candidates(k)`` under the same filter; vecdb.fusion fuses
them and the best k are returned with the fused score.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from . import filters, fulltext, fusion, planner, validation
from .errors import InvalidArgument
from .index import higher_is_better
from .topk import merge
from .types import SearchParams, SearchResult


def candidates(k: int) -> int:
    """How many hits each retriever of a hybrid search contributes."""
    return max(2 * k, 100)


def search(coll, queries, texts, keywords, k: int, params: SearchParams, with_payload: bool,
           with_vector: bool, filter, raw_payloads: bool, fusion_name, weights, rrf_k,
           explain: bool = False) -> list[SearchResult]:
    """One result per keyword query; with query vectors or texts (as many), hybrid.
    ``explain``: the plan also gives every hit's rank and score in each retriever."""
    k, node = validation.k(k), filters.parse(filter)
    if not coll.config.full_text:
        raise InvalidArgument(f"keywords: collection {coll.config.name!r} has no full-text index "
                              "(create it with full_text)", "keywords")
    keywords = [keywords] if isinstance(keywords, str) else keywords
    if not isinstance(keywords, (list, tuple)) or not keywords:
        raise InvalidArgument("keywords must be a non-empty string or a list of them", "keywords")
    keywords = [fulltext.check_query(t) for t in keywords]
    q = None
    if queries is not None or texts is not None:
        if queries is not None and texts is not None:
            raise InvalidArgument("give query vectors or query texts, not both", "texts")
        fusion_name, weights, rrf_k = fusion.check(fusion_name, weights, rrf_k, 2)
        q = coll.prepare_queries(coll.embed_queries(texts) if texts is not None else queries, params)
        if len(q) != len(keywords):
            raise InvalidArgument(f"keywords: {len(keywords)} keyword queries for {len(q)} "
                                  "dense queries; give one per query", "keywords")
    shards = coll.shards
    terms = [shards[0].text_index.terms(t) for t in keywords]
    if q is None:
        kw = [_keywords(shards, t, k, node) for t in terms]
        width = max([len(s) for s, _, _ in kw] + [1])
        return coll._hydrate(*_rows(kw, width), with_payload, with_vector, "keywords: bm25",
                             raw_payloads)
    n = candidates(k)
    parts = [s.search(q, n, params, node) for s in shards]
    plan = "dense: " + "; ".join(f"shard {i}: {p[2]}" for i, p in enumerate(parts)) + \
        f"; keywords: bm25; fusion: {fusion_name}"
    higher = higher_is_better(coll.config.metric)
    d_scores, d_which, d_labels = merge([p[:2] for p in parts], n, higher)
    rows, why = [], []
    for i, t in enumerate(terms):
        ok = d_labels[i] >= 0
        dense = list(zip(d_which[i][ok].tolist(), d_labels[i][ok].tolist()))
        ks, kw_which, kw_labels = _keywords(shards, t, n, node)
        kw = list(zip(kw_which.tolist(), kw_labels.tolist()))
        if fusion_name == "rrf":
            fused = fusion.rrf([dense, kw], weights, rrf_k)
        else:
            fused = fusion.weighted([(dense, d_scores[i][ok].tolist(), higher),
                                     (kw, ks.tolist(), True)], weights)
        fused = fused[:k]
        rows.append((np.array([s for _, s in fused], np.float32),
                     np.array([w for (w, _), _ in fused], np.int32),
                     np.array([lab for (_, lab), _ in fused], np.int64)))
        if explain:
            why.append([(_place(dense, d_scores[i][ok], key), _place(kw, ks, key))
                        for key, _ in fused])
    out = coll._hydrate(*_rows(rows, max([len(r[0]) for r in rows] + [1])), with_payload,
                        with_vector, plan, raw_payloads)
    if explain:  # one plan for the whole call, as for any search
        plan += "".join(f"; query {i} hits: " + ", ".join(
            f"{pid} (dense {d}, keywords {w})" for pid, (d, w) in zip(res.ids, why[i]))
            for i, res in enumerate(out))
        out = [replace(res, plan=plan) for res in out]
    return out


def _place(keys: list, scores, key) -> str:
    """'#rank score' of ``key`` in a retriever's list, '-' when it is not there."""
    try:
        at = keys.index(key)
    except ValueError:
        return "-"
    return f"#{at + 1} {float(scores[at]):.6g}"


def _keywords(shards, terms: list[str], k: int, node) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(scores, shard numbers, labels) of the best k texts over the shards, best first."""
    parts = []
    for s in shards:
        with s.lock.read():
            exclude, allowed, accept = s.expiry.expired(), None, None
            if node is not None:  # the payload indexes' exact answer, else a post-filter
                everything = planner.universe(s)
                cand, exact = planner.index_candidates(s, node, everything)
                if exact:
                    allowed = everything if cand is None else cand
                else:
                    def accept(labels, s=s):
                        return planner.evaluate(s, node, labels)
            scores, labels = s.text_index.search(terms, k, allowed, exclude, accept)
        parts.append((scores[None], labels[None]))
    scores, which, labels = merge(parts, k, True)
    ok = labels[0] >= 0
    return scores[0][ok], which[0][ok], labels[0][ok]


def _rows(rows, width: int):
    """Per-query (scores, shards, labels) lists -> (q, width) arrays, label -1 = no hit."""
    scores = np.zeros((len(rows), width), np.float32)
    which = np.zeros((len(rows), width), np.int32)
    labels = np.full((len(rows), width), -1, np.int64)
    for i, (s, w, lab) in enumerate(rows):
        scores[i, :len(s)], which[i, :len(s)], labels[i, :len(s)] = s, w, lab
    return scores, which, labels
