"""Wire <-> engine for the queries beyond nearest neighbours: Recommend, expression
search and grouped search (the rest of the conversions are in convert.py)."""
from __future__ import annotations

from typing import Any

import numpy as np
from vecdb_client._proto.vecdb.v1 import points_pb2 as ppb

from vecdb.errors import InvalidArgument

from .convert import (
    DEFAULT_K,
    F32,
    _opt,
    _with_payload,
    from_proto_filter_field,
    from_proto_search_params,
    from_proto_vectors,
)

DEFAULT_GROUPS = 10
DEFAULT_GROUP_SIZE = 1


def from_proto_term(msg: ppb.QueryTerm, field: str) -> dict[str, Any]:
    """-> the engine's typed term {"id"|"text"|"vector": ..., "weight": w}."""
    kind = msg.WhichOneof("term")
    if kind is None:
        raise InvalidArgument(f"{field} is empty: set id, text or vector", field)
    value: Any = getattr(msg, kind)
    if kind == "vector":
        if len(value) % 4:
            raise InvalidArgument(f"{field}.vector has {len(value)} bytes, not a whole number of "
                                  "float32", field)
        value = np.frombuffer(value, dtype=F32)
    out = {kind: value}
    if msg.HasField("weight"):
        out["weight"] = msg.weight
    return out


def _terms(items: Any, field: str) -> list[dict[str, Any]]:
    return [from_proto_term(t, f"{field}[{i}]") for i, t in enumerate(items)]


def from_proto_recommend(msg: ppb.RecommendRequest) -> dict[str, Any]:
    """-> keyword arguments of Database.recommend."""
    return {"collection": msg.collection, "positive": _terms(msg.positive, "positive"),
            "negative": _terms(msg.negative, "negative"), "strategy": msg.strategy or "average",
            "k": _opt(msg, "k", DEFAULT_K), "params": from_proto_search_params(msg.params),
            "with_payload": _with_payload(msg), "with_vector": msg.with_vector,
            "filter": from_proto_filter_field(msg), "include_examples": msg.include_examples,
            **({"using": msg.using} if msg.using else {})}


def is_beyond(msg: ppb.SearchRequest) -> bool:
    """A Search that is not a plain nearest-neighbour search (expression or group_by)."""
    return msg.HasField("group_by") or msg.WhichOneof("query") == "expression"


def from_proto_search_beyond(msg: ppb.SearchRequest) -> tuple[str, dict[str, Any]]:
    """-> ("groups", Database.search_groups kwargs) or ("expression", search_expression kwargs)."""
    if msg.HasField("keywords"):
        raise InvalidArgument("keywords cannot be combined with expression or group_by", "keywords")
    which = msg.WhichOneof("query")
    common = {"collection": msg.collection, "params": from_proto_search_params(msg.params),
              "with_payload": _with_payload(msg), "with_vector": msg.with_vector,
              "filter": from_proto_filter_field(msg)}
    expression = include = None
    if which == "expression":
        expression = _terms(msg.expression.terms, "expression")
        if not expression:
            raise InvalidArgument("expression needs at least one term", "expression")
        include = msg.expression.include_terms
    if not msg.HasField("group_by"):
        return "expression", {**common, "expression": expression, "include_terms": include,
                              "k": _opt(msg, "k", DEFAULT_K)}
    kwargs = {**common, "group_by": msg.group_by,
              "group_size": _opt(msg, "group_size", DEFAULT_GROUP_SIZE),
              "groups": _opt(msg, "groups", DEFAULT_GROUPS)}
    if which == "expression":
        kwargs.update(expression=expression, include_terms=include)
    elif which == "texts":
        kwargs["texts"] = list(msg.texts.texts)
    elif which == "vectors":
        kwargs["queries"] = from_proto_vectors(msg.vectors, "vectors")
    else:
        raise InvalidArgument("query: set vectors, texts or expression", "vectors")
    return "groups", kwargs
