"""Requests and results of recommend, expression search and grouped search (no grpc here;
the plain search codec is in _codec.py)."""
from __future__ import annotations

import json
from typing import Any

import numpy as np

from . import _codec
from ._filters import to_proto_filter
from ._proto.vecdb.v1 import points_pb2 as ppb
from ._proto.vecdb.v1 import types_pb2 as tpb
from .errors import InvalidArgumentError
from .models import Group

_F32 = np.dtype("<f4")


def _fail(message: str, field: str) -> InvalidArgumentError:
    return InvalidArgumentError(message, field=field)


def _vector_bytes(value: Any, field: str) -> bytes:
    try:
        arr = np.asarray(value, dtype=_F32)
    except (TypeError, ValueError):
        raise _fail(f"{field} must be a 1-D vector of numbers", field) from None
    if arr.ndim != 1 or arr.size == 0:
        raise _fail(f"{field} must be a 1-D vector, got shape {arr.shape}", field)
    return arr.tobytes()


def _is_vector(item: Any) -> bool:
    return isinstance(item, np.ndarray) or (
        isinstance(item, (list, tuple)) and len(item) > 0
        and all(isinstance(x, (int, float, np.number)) and not isinstance(x, bool) for x in item))


def _weight(value: Any, field: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise _fail(f"{field} must be a number, got {value!r}", field)
    return float(value)


def _typed(item: dict, field: str, weight: float | None) -> ppb.QueryTerm:
    kinds = [k for k in ("id", "text", "vector") if k in item]
    if len(kinds) != 1 or set(item) - {"id", "text", "vector", "weight"}:
        raise _fail(f"{field} must have exactly one of id, text, vector (and an optional "
                    f"weight), got keys {sorted(item)}", field)
    kind = kinds[0]
    term = ppb.QueryTerm()
    if kind == "vector":
        term.vector = _vector_bytes(item["vector"], field)
    elif not isinstance(item[kind], str):
        raise _fail(f"{field}: the {kind} must be a string, got {type(item[kind]).__name__}",
                    field)
    else:
        setattr(term, kind, item[kind])
    if "weight" in item:  # inside (sign, dict): the sign times the dict's weight
        w = _weight(item["weight"], f"{field}.weight")
        weight = w if weight is None else weight * w
    if weight is not None:
        term.weight = weight
    return term


def example(item: Any, field: str) -> ppb.QueryTerm:
    """A recommend example: an id (str), {"id"|"text"|"vector": ...} or a vector."""
    if isinstance(item, str):
        return ppb.QueryTerm(id=item)
    if isinstance(item, dict):
        return _typed(item, field, None)
    if _is_vector(item):
        return ppb.QueryTerm(vector=_vector_bytes(item, field))
    raise _fail(f"{field} must be an id, {{'id'|'text'|'vector': ...}} or a vector, got "
                f"{type(item).__name__}", field)


def expression_term(item: Any, field: str) -> ppb.QueryTerm:
    """("+"|"-"|weight, "id:X"|"text:Y"|vector|dict) or {"id"|"text"|"vector": ..., "weight": w}."""
    if isinstance(item, dict):
        return _typed(item, field, None)
    if not isinstance(item, (list, tuple)) or len(item) != 2:
        raise _fail(f"{field} must be (sign, term), (weight, term) or a dict like "
                    "{'id': ..., 'weight': -1}", field)
    sign, term = item
    weight = 1.0 if sign == "+" else -1.0 if sign == "-" else _weight(sign, field)
    if isinstance(term, str):
        kind, sep, value = term.partition(":")
        if not sep or kind not in ("id", "text"):
            raise _fail(f"{field}: a string term must start with 'id:' or 'text:', got "
                        f"{term!r}", field)
        return ppb.QueryTerm(weight=weight, **{kind: value})
    if isinstance(term, dict):
        return _typed(term, field, weight)
    if _is_vector(term):
        return ppb.QueryTerm(vector=_vector_bytes(term, field), weight=weight)
    raise _fail(f"{field}: the term must be 'id:...', 'text:...', a vector or a dict", field)


def _examples(items: Any, field: str) -> list[ppb.QueryTerm]:
    """A list of examples; a lone id, dict or 1-D array counts as a list of one."""
    if items is None:
        return []
    if isinstance(items, (str, dict)):
        items = [items]
    elif isinstance(items, np.ndarray):
        items = list(items) if items.ndim == 2 else [items]
    return [example(x, f"{field}[{i}]") for i, x in enumerate(items)]


def recommend_request(collection: str, positive: Any, negative: Any, strategy: str, k: int, *,
                      nprobe: int | None, ef_search: int | None, exact: bool,
                      with_payload: bool, with_vectors: bool, filter: Any,
                      include_examples: bool) -> ppb.RecommendRequest:
    return ppb.RecommendRequest(
        collection=collection, positive=_examples(positive, "positive"),
        negative=_examples(negative, "negative"), strategy=strategy, k=k,
        params=tpb.SearchParams(nprobe=nprobe, ef_search=ef_search, exact=exact),
        with_payload=with_payload, with_vector=with_vectors, filter=to_proto_filter(filter),
        include_examples=include_examples)


def search_request(collection: str, vector: Any, vectors: Any, k: int, *, expression: Any,
                   include_terms: bool, group_by: str | None, group_size: int | None,
                   groups: int | None, **kw: Any) -> tuple[ppb.SearchRequest, bool]:
    """A Search with an expression and/or group_by (the plain one is _codec.search_request)."""
    if expression is None:
        req, single = _codec.search_request(collection, vector, vectors, k, **kw)
    else:
        if any(v is not None for v in (vector, vectors, kw.get("text"), kw.get("texts"))):
            raise _fail("pass expression= alone, without vector=, vectors=, text= or texts=",
                        "expression")
        if isinstance(expression, (str, dict)) or not isinstance(expression, (list, tuple)):
            raise _fail("expression must be a list of terms, e.g. [('+', 'id:a'), "
                        "('-', 'text:b')]", "expression")
        req = ppb.SearchRequest(
            collection=collection, k=k, with_payload=kw["with_payload"],
            with_vector=kw["with_vectors"], filter=to_proto_filter(kw.get("filter")),
            params=tpb.SearchParams(nprobe=kw["nprobe"], ef_search=kw["ef_search"],
                                    exact=kw["exact"]),
            expression=ppb.Expression(
                terms=[expression_term(t, f"expression[{i}]") for i, t in enumerate(expression)],
                include_terms=include_terms))
        single = True
    if group_by is not None:
        req.group_by = group_by
        if group_size is not None:
            req.group_size = group_size
        if groups is not None:
            req.groups = groups
    return req, single


def from_proto_groups(res: ppb.QueryResult) -> list[Group]:
    hits = _codec.from_proto_query_result(res)
    keys = json.loads(res.group_keys) if res.group_keys else []
    out: list[Group] = []
    for key, hit in zip(keys, hits):
        if not out or out[-1].key != key or type(out[-1].key) is not type(key):
            out.append(Group(key, []))
        out[-1].hits.append(hit)
    return out


def from_proto_search(msg: ppb.SearchResponse, single: bool, grouped: bool,
                      explain: bool) -> Any:
    if not grouped:
        return _codec.from_proto_search(msg, single, explain)
    results = [from_proto_groups(r) for r in msg.results]
    out: Any = results[0] if single else results
    if explain:
        return out, msg.results[0].plan if msg.results else ""
    return out
