"""Recommend, vector-arithmetic (expression) and grouped search through the cluster,
answering as a single node holding the same data.

* Examples and terms given by id are read once, from the shards owning them (the write
  hash), and sent to every shard as raw vectors, so every shard builds the same query
  vector (texts are embedded by each shard's copy of the same encoder). A missing id is
  NOT_FOUND naming its field, as on one node.
* Stored examples are left out of the hits the way one node does it: each shard returns
  k + len(examples) hits, the merge drops the examples and keeps the best k.
* Grouped search takes two rounds: 1. every shard's best ``groups`` groups (one hit
  each): a group's best hit overall is among its own shard's best groups, so the best
  ``groups`` groups overall are the best of these; 2. every shard's best ``group_size``
  hits of each chosen group (filter: the field is one of the chosen values), merged per
  group. Terms of an expression are left out by a must_not has_id filter instead.
"""
from __future__ import annotations

from typing import Any

from vecdb_client._proto.vecdb.v1 import points_pb2 as ppb
from vecdb_client._proto.vecdb.v1 import types_pb2 as tpb

from vecdb import filters, grouping, recommend, validation
from vecdb.errors import InvalidArgument, NotFound, Unavailable

from .. import convert_query
from . import merge
from . import state as st


def _id_terms(terms: Any, field: str) -> list[tuple[str, str]]:
    return [(f"{field}[{j}]", t.id) for j, t in enumerate(terms) if t.WhichOneof("term") == "id"]


def _with_vectors(terms: Any, vectors: dict[str, bytes]) -> list[ppb.QueryTerm]:
    """The terms with every stored id replaced by its vector (weights kept)."""
    out = []
    for t in terms:
        new = ppb.QueryTerm()
        new.CopyFrom(t)
        if t.WhichOneof("term") == "id":
            new.vector = vectors[t.id]
        out.append(new)
    return out


def fetch_vectors(svc: Any, spec: st.CollectionSpec, wanted: list[tuple[str, str]],
                  primary: bool = False) -> dict[str, bytes]:
    """id -> its stored vector (float32 bytes), read from the owning shards (their
    primaries alone with ``primary``: consistency="primary"); NOT_FOUND names the first
    missing one's field, as a single node does."""
    if not wanted:
        return {}
    batch = svc.get_points(spec, list(dict.fromkeys(i for _, i in wanted)), with_vector=True,
                           primary=primary)
    n = len(batch.ids)
    row = len(batch.vectors.data) // max(1, n)
    found = {pid: batch.vectors.data[j * row:(j + 1) * row] for j, pid in enumerate(batch.ids)}
    for field, pid in wanted:
        if pid not in found:
            raise NotFound(f"{field}: point {pid!r} not found in collection {spec.name!r}",
                           field)
    return found


def _answers(svc: Any, spec: st.CollectionSpec, method: str, request: Any, context: Any,
             partial: bool) -> tuple[list[Any], bool]:
    got = svc.all_shards(spec, method, request, context, partial)
    return [got[i] for i in sorted(got)], len(got) < spec.shards


# ---- recommend and expression search (one query, examples left out by the merge) -----
def recommend_search(svc: Any, request: ppb.RecommendRequest, context: Any
                     ) -> ppb.SearchResponse:
    spec = svc.node.spec(request.collection)
    args = convert_query.from_proto_recommend(request)  # the engine's own checks, in order
    k = validation.k(args["k"])
    filters.parse(args["filter"])
    if args["strategy"] not in recommend.STRATEGIES:
        raise InvalidArgument(f"strategy must be one of {', '.join(recommend.STRATEGIES)}, "
                              f"got {args['strategy']!r}", "strategy")
    recommend.parse_examples(args["positive"], "positive", required=True)
    recommend.parse_examples(args["negative"], "negative", required=False)
    ids = _id_terms(request.positive, "positive") + _id_terms(request.negative, "negative")
    vectors = fetch_vectors(svc, spec, ids, st.reads_primary(request))
    exclude = frozenset() if request.include_examples else frozenset(i for _, i in ids)
    sub = ppb.RecommendRequest()
    sub.CopyFrom(request)
    del sub.positive[:], sub.negative[:]
    sub.positive.extend(_with_vectors(request.positive, vectors))
    sub.negative.extend(_with_vectors(request.negative, vectors))
    sub.include_examples, sub.k = True, min(k + len(exclude), validation.MAX_K)
    answers, _ = _answers(svc, spec, "Recommend", sub, context, False)
    hib = args["strategy"] == "best_score" or svc.higher_is_better(spec)
    return ppb.SearchResponse(results=[merge.merge_results(
        [a.results[0] for a in answers], k, hib, False, exclude)])


def _expression_terms(svc: Any, spec: st.CollectionSpec, request: ppb.SearchRequest
                      ) -> tuple[ppb.SearchRequest, frozenset]:
    """The request with its stored terms as vectors, and the ids to leave out."""
    ids = _id_terms(request.expression.terms, "expression")
    vectors = fetch_vectors(svc, spec, ids, st.reads_primary(request))
    sub = ppb.SearchRequest()
    sub.CopyFrom(request)
    del sub.expression.terms[:]
    sub.expression.terms.extend(_with_vectors(request.expression.terms, vectors))
    sub.expression.include_terms = True
    return sub, (frozenset() if request.expression.include_terms
                 else frozenset(i for _, i in ids))


def search_beyond(svc: Any, request: ppb.SearchRequest, context: Any) -> ppb.SearchResponse:
    """A Search with an expression and/or group_by."""
    spec = svc.node.spec(request.collection)
    kind, args = convert_query.from_proto_search_beyond(request)
    filters.parse(args["filter"])
    if args.get("expression") is not None:
        recommend.parse_expression(args["expression"])
    if kind == "groups":
        return _grouped(svc, spec, request, context, *grouping.check(
            args["group_by"], args["group_size"], args["groups"]))
    k = validation.k(args["k"])
    sub, exclude = _expression_terms(svc, spec, request)
    sub.k = min(k + len(exclude), validation.MAX_K)
    answers, partial = _answers(svc, spec, "Search", sub, context, request.allow_partial)
    return ppb.SearchResponse(partial=partial, results=[merge.merge_results(
        [a.results[0] for a in answers], k, svc.higher_is_better(spec), True, exclude)])


# ---- grouped search --------------------------------------------------------------------
def _value(v: object) -> tpb.Value:
    if isinstance(v, bool):
        return tpb.Value(b=v)
    if isinstance(v, int):
        return tpb.Value(i=v)
    return tpb.Value(s=str(v))


def _and(request: Any, item: tpb.FilterItem, negate: bool = False) -> tpb.Filter:
    out = tpb.Filter()
    if request.HasField("filter"):
        out.must.append(tpb.FilterItem(filter=request.filter))
    (out.must_not if negate else out.must).append(item)
    return out


def _one_query(request: ppb.SearchRequest, q: int) -> ppb.SearchRequest:
    sub = ppb.SearchRequest()
    sub.CopyFrom(request)
    which = request.WhichOneof("query")
    if which == "vectors":
        dim = request.vectors.dim
        row = request.vectors.data[q * dim * 4:(q + 1) * dim * 4]
        sub.vectors.CopyFrom(tpb.Vectors(count=1, dim=dim, data=row))
    elif which == "texts":
        del sub.texts.texts[:]
        sub.texts.texts.append(request.texts.texts[q])
    return sub


def _grouped(svc: Any, spec: st.CollectionSpec, request: ppb.SearchRequest, context: Any,
             key: str, size: int, count: int) -> ppb.SearchResponse:
    sub = request
    if request.WhichOneof("query") == "expression":
        sub, exclude = _expression_terms(svc, spec, request)
        if exclude:
            sub.filter.CopyFrom(_and(sub, tpb.FilterItem(condition=tpb.Condition(
                has_id=tpb.IdList(ids=sorted(exclude)))), negate=True))
    allow = request.allow_partial
    if spec.shards == 1:
        answers, partial = _answers(svc, spec, "Search", sub, context, allow)
        out = answers[0] if answers else ppb.SearchResponse()
        out.partial = partial
        return out
    first = ppb.SearchRequest()
    first.CopyFrom(sub)
    first.group_size = 1
    answers, partial = _answers(svc, spec, "Search", first, context, allow)
    if not answers:
        raise Unavailable(f"no shard of {spec.name!r} has a reachable replica", "collection")
    hib = svc.higher_is_better(spec)
    results = []
    for q in range(len(answers[0].results)):
        chosen = merge.best_groups([a.results[q] for a in answers], count, hib)
        if not chosen:
            results.append(ppb.QueryResult(group_keys="[]"))
            continue
        second = _one_query(sub, q)
        second.filter.CopyFrom(_and(sub, tpb.FilterItem(condition=tpb.Condition(
            key=key, any=tpb.ValueList(values=[_value(v) for v in chosen])))))
        second.groups = len(chosen)
        per_group, missed = _answers(svc, spec, "Search", second, context, allow)
        partial |= missed
        results.append(merge.merge_groups([a.results[0] for a in per_group], chosen, size,
                                          hib, True))
    return ppb.SearchResponse(results=results, partial=partial)
