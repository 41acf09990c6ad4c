"""Keyword (BM25) and hybrid search in cluster mode, routed over the shards.

Keyword search alone: every shard answers its best k by BM25 and the answers merge by
score, as a single node merges its shards' lists. Hybrid (keywords plus vectors or
texts): each retriever runs on its own over all shards (its best ``hybrid.candidates(k)``
per query, merged by score), then the merged lists are fused here as a single node
fuses them (vecdb.fusion), so a cluster answers what one node with the same shards
answers. BM25 statistics (N, n, average length) are each shard's own, in a cluster as
on one node: the same point scores the same wherever its shard lives. Sparse vectors
are not replicated yet: sparse search is refused (FAILED_PRECONDITION).
"""
from __future__ import annotations

import base64
from typing import Any

import numpy as np
from vecdb_client._proto.vecdb.v1 import collections_pb2 as cpb
from vecdb_client._proto.vecdb.v1 import points_pb2 as ppb

from vecdb import fusion, hybrid
from vecdb.errors import InvalidArgument

from . import merge

_HYBRID_FIELDS = ("keywords", "fusion", "fusion_weights", "rrf_k", "explain", "keywords_field")


def search(svc: Any, request: ppb.SearchRequest, context: Any) -> ppb.SearchResponse:
    spec = svc.node.spec(request.collection)
    if not cpb.CreateCollectionRequest.FromString(base64.b64decode(spec.request)).full_text:
        raise InvalidArgument(f"keywords: collection {spec.name!r} has no full-text index "
                              "(create it with full_text)", "keywords")
    k = request.k if request.HasField("k") else 10
    partial = request.allow_partial
    if request.WhichOneof("query") is None:  # keyword search alone
        answers = svc.all_shards(spec, "Search", request, context, partial)
        return ppb.SearchResponse(partial=len(answers) < spec.shards, results=[
            merge.merge_results([answers[i].results[q] for i in sorted(answers)], k, True,
                                request.explain)
            for q in range(len(answers[min(answers)].results))])
    queries = (request.vectors.count if request.WhichOneof("query") == "vectors"
               else len(request.texts.texts))
    if len(request.keywords.texts) != queries:
        raise InvalidArgument(f"keywords: {len(request.keywords.texts)} queries where the others "
                              f"have {queries}; give one per query", "keywords")
    name, weights, rrf_k = fusion.check(request.fusion or None, list(request.fusion_weights),
                                        request.rrf_k if request.HasField("rrf_k") else None, 2)
    n = hybrid.candidates(k)
    dense, words = ppb.SearchRequest(), ppb.SearchRequest()
    dense.CopyFrom(request)
    words.CopyFrom(request)
    for f in _HYBRID_FIELDS:
        dense.ClearField(f)
    dense.explain = words.explain = request.explain
    words.ClearField("query")
    dense.k = words.k = n
    got = [svc.all_shards(spec, "Search", r, context, partial) for r in (dense, words)]
    hib = (svc.higher_is_better(spec), True)
    results, plan = [], ""
    for q in range(queries):
        merged = [merge.merge_results([g[i].results[q] for i in sorted(g)], n, h, request.explain)
                  for g, h in zip(got, hib)]
        lists = [(list(m.ids), np.frombuffer(m.scores, merge.F32).tolist() if m.ids else [], h)
                 for m, h in zip(merged, hib)]
        hits: dict = {}
        for h in merge._hits(merged):
            hits.setdefault(h[3], h)
        fused = fusion.fuse(lists, name, weights, rrf_k)[:k]
        results.append(merge._result([(score, *hits[pid][1:]) for pid, score in fused], merged,
                                     False))
        if request.explain:
            if not plan:
                plan = f"dense: {merged[0].plan}; keywords: bm25; fusion: {name}"
            ids = [pid for pid, _ in fused]
            plan += f"; query {q} hits: " + fusion.explain(["dense", "keywords"], lists, ids, ids)
    for r in results:  # one plan for the whole call, as on a single node
        r.plan = plan
    return ppb.SearchResponse(partial=min(len(g) for g in got) < spec.shards, results=results)
