"""Keyword (BM25) search, sparse-vector search, and hybrid search fusing them with dense.

Retrievers: dense (the query vector, or the query text through the encoder), keywords
(each shard's TextIndex, BM25 over the point texts; or with ``keywords_field``, the
FieldText of that field's ``text`` payload index) and sparse (each shard's SparseIndex,
exact dot product). Each answers under the filter (expired points never); the shards'
lists merge by score. One retriever alone (keywords or sparse): its best k with its
scores. Several: each returns its best ``candidates(k)``, vecdb.fusion fuses them in
the order dense, keywords, sparse (the order of ``weights``) and the best k carry the
fused score.
"""
from __future__ import annotations

from dataclasses import replace

import numpy as np

from . import filters, fulltext, fusion, planner, sparse as sparse_vectors, validation
from .errors import FailedPrecondition, InvalidArgument
from .filters import TEXT_KEY, TenantScope
from .index import higher_is_better
from .topk import merge
from .types import SearchParams, SearchResult, live_hits


def candidates(k: int) -> int:
    """How many hits each retriever of a hybrid search contributes."""
    return max(2 * k, 100)


def search(coll, queries, texts, keywords, k: int, params: SearchParams, with_payload: bool,
           with_vector: bool, filter, raw_payloads: bool, fusion_name, weights, rrf_k,
           explain: bool = False, sparse=None, keywords_field: str | None = None
           ) -> list[SearchResult]:
    """One result per query: ``keywords`` (a string or a list), ``sparse`` ((indices,
    values), or a list of them) and/or query vectors or texts, as many of each.
    ``explain``: a fused plan also gives every hit's rank and score in each retriever.
    ``keywords_field``: the keywords score a payload field with a ``text`` payload
    index instead of the point texts (None or "$text": the point texts)."""
    k, node = validation.k(k), filters.parse(filter)
    shards, given = coll.shards, []  # (name, per-query queries, one shard's retrieval)
    if keywords is not None:
        if not coll.config.full_text:
            raise InvalidArgument(f"keywords: collection {coll.config.name!r} has no full-text "
                                  "index (create it with full_text)", "keywords")
        keywords = [keywords] if isinstance(keywords, str) else keywords
        if not isinstance(keywords, (list, tuple)) or not keywords:
            raise InvalidArgument("keywords must be a non-empty string or a list of them", "keywords")
        terms = [shards[0].text_index.terms(fulltext.check_query(t)) for t in keywords]
        given.append(("keywords", terms, _keyword_fetch(coll, keywords_field)))
    elif keywords_field is not None:
        raise InvalidArgument("keywords_field goes with keywords", "keywords_field")
    if sparse is not None:
        if not coll.config.sparse_dim:
            raise InvalidArgument(f"sparse: collection {coll.config.name!r} has no sparse vectors "
                                  "(create it with sparse_dim)", "sparse")
        batch = [sparse] if isinstance(sparse, (tuple, dict)) else sparse
        if not isinstance(batch, list) or not batch:
            raise InvalidArgument("sparse must be (indices, values) or a non-empty list of them",
                                  "sparse")
        packed = [sparse_vectors.pack(v, coll.config.sparse_dim, f"sparse[{i}]")
                  for i, v in enumerate(batch)]
        given.append(("sparse", packed, lambda s, v, *a: s.sparse_index.search(v, *a)))
    q = None
    if queries is not None or texts is not None:
        if queries is not None and texts is not None:
            raise InvalidArgument("give query vectors or query texts, not both", "texts")
        q = coll.prepare_queries(coll.embed_queries(texts) if texts is not None else queries, params)
    counts = {name: len(per) for name, per, _ in given} | ({} if q is None else {"dense": len(q)})
    if len(set(counts.values())) > 1:
        name = given[-1][0]
        raise InvalidArgument(f"{name}: {counts[name]} queries where the others have "
                              f"{max(counts.values())}; give one per query", name)
    if q is None and len(given) == 1:  # one retriever: its own scores
        name, per, fetch = given[0]
        rows = [_retrieve(shards, fetch, one, k, node) for one in per]
        return coll._hydrate(*_rows(rows), with_payload, with_vector,
                             "keywords: bm25" if name == "keywords" else "sparse: dot product",
                             raw_payloads)
    names = (["dense"] if q is not None else []) + [name for name, _, _ in given]
    fusion_name, weights, rrf_k = fusion.check(fusion_name, weights, rrf_k, len(names))
    n = candidates(k)
    plan, dense_rows = "", None
    if q is not None:
        parts = [s.search(q, n, params, node) for s in shards]
        plan = "dense: " + "; ".join(f"shard {i}: {p[2]}" for i, p in enumerate(parts)) + "; "
        dense_rows = merge([p[:2] for p in parts], n, higher_is_better(coll.config.metric))
    plan += "".join(f"{name}: {'bm25' if name == 'keywords' else 'dot product'}; "
                    for name, _, _ in given) + f"fusion: {fusion_name}"
    rows, why = [], []
    for i in range(max(counts.values())):
        lists = []  # (keys best first, scores, higher_is_better)
        if dense_rows is not None:
            d_scores, d_which, d_labels = dense_rows
            ok = d_labels[i] >= 0
            lists.append((list(zip(d_which[i][ok].tolist(), d_labels[i][ok].tolist())),
                          d_scores[i][ok].tolist(), higher_is_better(coll.config.metric)))
        for _, per, fetch in given:
            scores, which, labels = _retrieve(shards, fetch, per[i], n, node)
            lists.append((list(zip(which.tolist(), labels.tolist())), scores.tolist(), True))
        fused = fusion.fuse(lists, fusion_name, weights, rrf_k)[:k]
        rows.append((np.array([s for _, s in fused], np.float32),
                     np.array([w for (w, _), _ in fused], np.int32),
                     np.array([lab for (_, lab), _ in fused], np.int64)))
        if explain:
            why.append((lists, [key for key, _ in fused]))
    out = coll._hydrate_rows(*_rows(rows), with_payload, with_vector, plan, raw_payloads)
    if explain:  # one plan for the whole call, as for any search
        plan += "".join(f"; query {i} hits: " + fusion.explain(
            names, lists, [key for key, pid in zip(keys, res.ids) if pid],
            [pid for pid in res.ids if pid]) for i, (res, (lists, keys)) in
            enumerate(zip(out, why)))
        out = [replace(res, plan=plan) for res in out]
    return [live_hits(res) for res in out]


def _keyword_fetch(coll, field: str | None):
    """The keyword retriever of one shard: BM25 over the point texts, or over ``field``."""
    if field is None or field == TEXT_KEY:
        return lambda s, t, *a: s.text_index.search(t, *a)
    if (field, "text") not in coll.config.payload_indexes:
        raise InvalidArgument(f"keywords_field: {field!r} has no text payload index in collection "
                              f"{coll.config.name!r} (create_payload_index(..., {field!r}, "
                              "'text'))", "keywords_field")

    def fetch(s, terms, *args):
        fi = s.pindex.ready.get(field)
        if fi is None:
            raise FailedPrecondition(f"keywords_field: the text payload index of {field!r} is "
                                     "still being built", "keywords_field")
        return next(p for p in fi.parts if isinstance(p, fulltext.FieldText)).index.search(terms, *args)
    return fetch


def _retrieve(shards, fetch, query, k: int, node) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(scores, shard numbers, labels) of the best k over the shards, best first:
    ``fetch(shard, query, k, allowed, exclude, accept)`` answers one shard."""
    parts = []
    for s in shards:
        with s.lock.read():
            exclude, allowed, accept = s.expiry.expired(), None, None
            if isinstance(node, TenantScope):  # a tenant's labels, from its partition
                allowed = planner.matching(s, node, exclude)[0]
            elif node is not None:  # the payload indexes' exact answer, else a post-filter
                everything = planner.universe(s)
                cand, exact = planner.index_candidates(s, node, everything)
                if exact:
                    allowed = everything if cand is None else cand
                else:
                    def accept(labels, s=s):
                        return planner.evaluate(s, node, labels)
            scores, labels = fetch(s, query, k, allowed, exclude, accept)
        parts.append((scores[None], labels[None]))
    scores, which, labels = merge(parts, k, True)
    ok = labels[0] >= 0
    return scores[0][ok], which[0][ok], labels[0][ok]


def _rows(rows):
    """Per-query (scores, shards, labels) lists -> (q, width) arrays, label -1 = no hit."""
    width = max([len(r[0]) for r in rows] + [1])
    scores = np.zeros((len(rows), width), np.float32)
    which = np.zeros((len(rows), width), np.int32)
    labels = np.full((len(rows), width), -1, np.int64)
    for i, (s, w, lab) in enumerate(rows):
        scores[i, :len(s)], which[i, :len(s)], labels[i, :len(s)] = s, w, lab
    return scores, which, labels
