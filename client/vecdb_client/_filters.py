"""Filter dicts -> the typed ``vecdb.v1.Filter`` tree (client side, no grpc here).

Only what the proto cannot carry is refused here (an unknown operator, a float
where the wire has string/integer/bool, two operators in one condition...),
with the same error paths as the server, e.g. ``filter.must[1].range.gte``.
Meaning (datetime syntax, nesting depth, min_should range, limits) is the
server's to check. A lone condition ``{"key": ..., "match": ...}`` travels as
``{"must": [condition]}``, so its paths start with ``filter.must[0]``.
"""
from __future__ import annotations

import datetime as _dt
from typing import Any

import numpy as np

from ._proto.vecdb.v1 import types_pb2 as tpb
from .errors import InvalidArgumentError

CLAUSE_KEYS = ("must", "should", "must_not", "min_should")
OPS = ("match", "any", "except", "range", "exists", "is_null", "is_empty", "text")
RANGE_OPS = ("gt", "gte", "lt", "lte")
_BOOL_OPS = ("exists", "is_null", "is_empty")
_CONDITION_KEYS = frozenset(("key", "has_id", *OPS))
# Guard against runaway recursion only; the server's limit (8) is far below it.
_WIRE_DEPTH = 32
_INT64 = (-(1 << 63), (1 << 63) - 1)


def _fail(path: str, problem: str, field: str | None = None) -> InvalidArgumentError:
    return InvalidArgumentError(f"{path} {problem}", field=field or path)


def _type_name(v: Any) -> str:
    return "null" if v is None else type(v).__name__


def _is_number(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool)


def to_proto_filter(raw: Any, field: str = "filter") -> tpb.Filter | None:
    """A filter dict (or a lone condition dict) -> Filter; None / {} -> None (no filter)."""
    if raw is None or (isinstance(raw, dict) and not raw):
        return None
    if isinstance(raw, tpb.Filter):
        return raw
    if not isinstance(raw, dict):
        raise _fail(field, f"must be a dict like {{'must': [...]}}, got {_type_name(raw)}")
    if not set(raw) & set(CLAUSE_KEYS):
        raw = {"must": [raw]}
    return _clause(raw, field, 1)


def _clause(raw: dict, path: str, depth: int) -> tpb.Filter:
    if depth > _WIRE_DEPTH:
        raise _fail(path, f"nests deeper than {_WIRE_DEPTH} levels")
    unknown = sorted(set(raw) - set(CLAUSE_KEYS))
    if unknown:
        raise _fail(path, f"has unknown key {unknown[0]!r}; a clause has "
                    f"{', '.join(CLAUSE_KEYS)}", f"{path}.{unknown[0]}")
    msg = tpb.Filter()
    for name in CLAUSE_KEYS[:3]:
        items = raw.get(name, [])
        if isinstance(items, dict):
            items = [items]
        if not isinstance(items, (list, tuple)):
            raise _fail(f"{path}.{name}", "must be a list of conditions")
        target = getattr(msg, name)
        for i, item in enumerate(items):
            target.append(_item(item, f"{path}.{name}[{i}]", depth))
    if "min_should" in raw:
        n = raw["min_should"]
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or not 0 <= n < 1 << 32:
            raise _fail(f"{path}.min_should", f"must be an integer >= 0, got {n!r}")
        msg.min_should = int(n)
    return msg


def _item(raw: Any, path: str, depth: int) -> tpb.FilterItem:
    if not isinstance(raw, dict):
        raise _fail(path, 'must be a condition like {"key": "field", "match": value} or a '
                    f"nested clause, got {_type_name(raw)}")
    if set(raw) & set(CLAUSE_KEYS) and not set(raw) & _CONDITION_KEYS:
        return tpb.FilterItem(filter=_clause(raw, path, depth + 1))
    return tpb.FilterItem(condition=_condition(raw, path))


def _condition(raw: dict, path: str) -> tpb.Condition:
    if "has_id" in raw:
        ids = raw["has_id"]
        if set(raw) != {"has_id"} or not isinstance(ids, (list, tuple)) or \
                not all(isinstance(i, str) for i in ids):
            raise _fail(f"{path}.has_id", "must be a list of string ids (and nothing else)")
        return tpb.Condition(has_id=tpb.IdList(ids=list(ids)))
    unknown = sorted(set(raw) - _CONDITION_KEYS)
    if unknown:
        raise _fail(path, f"has unknown operator {unknown[0]!r}; use one of "
                    f"{', '.join(OPS)}, has_id", f"{path}.{unknown[0]}")
    ops = [op for op in OPS if op in raw]
    if len(ops) != 1:
        raise _fail(path, f"must have exactly one operator ({', '.join(OPS)}), got {len(ops)}")
    op, key = ops[0], raw.get("key")
    if key is not None and not isinstance(key, str):
        raise _fail(f"{path}.key", f"must be a dotted path string, got {_type_name(key)}")
    cond = tpb.Condition(key=key or "")
    value, vpath = raw[op], f"{path}.{op}"
    if op == "match":
        cond.match.CopyFrom(_value(value, vpath))
    elif op in ("any", "except"):
        if not isinstance(value, (list, tuple, set, frozenset)):
            raise _fail(vpath, f"must be a list of values, got {_type_name(value)}")
        getattr(cond, op).values.extend(_value(v, f"{vpath}[{i}]") for i, v in enumerate(value))
    elif op == "range":
        _range(cond.range, value, vpath)
    elif op in _BOOL_OPS:
        if not isinstance(value, (bool, np.bool_)):
            raise _fail(vpath, f"must be true or false, got {_type_name(value)}")
        setattr(cond, op, bool(value))
    else:  # text
        if not isinstance(value, str):
            raise _fail(vpath, f"must be a string, got {_type_name(value)}")
        cond.text = value
    return cond


def _value(v: Any, path: str) -> tpb.Value:
    if isinstance(v, (bool, np.bool_)):
        return tpb.Value(b=bool(v))
    if isinstance(v, (int, np.integer)):
        if not _INT64[0] <= v <= _INT64[1]:
            raise _fail(path, f"is outside the 64-bit integer range: {v}")
        return tpb.Value(i=int(v))
    if isinstance(v, str):
        return tpb.Value(s=v)
    raise _fail(path, f"must be a string, integer or bool, got {_type_name(v)}")


def _range(msg: tpb.Range, value: Any, path: str) -> None:
    if not isinstance(value, dict):
        raise _fail(path, f"must be a dict with gt/gte/lt/lte, got {_type_name(value)}")
    msg.SetInParent()  # an empty range still reaches the server, which names the problem
    for op, v in value.items():
        if op not in RANGE_OPS:
            raise _fail(path, f"has unknown operator {op!r}; use gt, gte, lt, lte", f"{path}.{op}")
        bound = getattr(msg, op)
        if _is_number(v):
            bound.number = float(v)
        elif isinstance(v, str):
            bound.datetime = v
        elif isinstance(v, _dt.date):  # datetime too; naive = UTC on the server
            bound.datetime = v.isoformat()
        else:
            raise _fail(f"{path}.{op}", "must be a number or an ISO-8601 datetime string, "
                        f"got {_type_name(v)}")
