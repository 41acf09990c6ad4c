"""Framework filter syntaxes -> vecdb filter dicts (docs/server_api.md "Filters").

Pure functions, no framework imports, so they are testable on their own:

- :func:`from_langchain`: a vecdb filter dict passes through unchanged; anything
  else is read as the Mongo-style metadata filter that LangChain stores commonly
  take (``{"lang": "en", "year": {"$gte": 2020}}``, ``$and``/``$or``/``$not``).
- :func:`from_llama_index`: LlamaIndex ``MetadataFilters`` (read by attribute, so
  llama_index is not imported here).

Equality on a float uses a closed range (``match`` takes strings, integers and
bools only); equality on ``None`` matches a missing or null key, as in MongoDB.
"""
from __future__ import annotations

from datetime import date, datetime
from typing import Any, Iterable

CLAUSE_KEYS = frozenset({"must", "should", "must_not", "min_should"})
CONDITION_OPS = frozenset({"match", "any", "except", "range", "exists", "is_null",
                           "is_empty", "text"})
RANGE_OPS = {"$gt": "gt", "$gte": "gte", "$lt": "lt", "$lte": "lte"}


def is_native(flt: Any) -> bool:
    """True for a dict already in vecdb's filter language: a clause (must/should/
    must_not/min_should), a ``has_id`` condition, or ``{"key": K, <operator>: V}``.
    A bare ``{"text": ...}`` reads as the metadata equality ``text == ...`` (the
    frameworks' convention); wrap vecdb's keyless text condition in a clause:
    ``{"must": [{"text": "..."}]}``."""
    if not isinstance(flt, dict) or not flt:
        return False
    keys = set(flt)
    if keys <= CLAUSE_KEYS or keys == {"has_id"}:
        return True
    return "key" in keys and len(keys) == 2 and (keys - {"key"}) <= CONDITION_OPS


def _plain(value: Any) -> bool:
    """A value ``match``/``any`` can carry: string, integer or bool."""
    return isinstance(value, (str, bool, int))


def _bound(value: Any) -> Any:
    return value.isoformat() if isinstance(value, (datetime, date)) else value


def eq(key: str, value: Any) -> dict:
    """key == value (a float compares as a closed range; None = missing or null)."""
    if value is None:
        return {"key": key, "exists": False}
    if _plain(value):
        return {"key": key, "match": value}
    if isinstance(value, float):
        return {"key": key, "range": {"gte": value, "lte": value}}
    if isinstance(value, (datetime, date)):
        return {"key": key, "range": {"gte": _bound(value), "lte": _bound(value)}}
    raise ValueError(f"filter on {key!r}: cannot compare with {type(value).__name__} {value!r}")


def is_in(key: str, values: Iterable[Any]) -> dict:
    """key equals one of values."""
    values = list(values)
    if not values:  # matches nothing
        return {"must": [{"key": key, "exists": True}], "must_not": [{"key": key, "exists": True}]}
    if all(_plain(v) for v in values):
        return {"key": key, "any": values}
    return {"should": [eq(key, v) for v in values], "min_should": 1}


def all_of(items: list[dict]) -> dict:
    return items[0] if len(items) == 1 else {"must": items}


# ------------------------------------------------------------------ LangChain
def from_langchain(flt: dict | None) -> dict | None:
    """A LangChain ``filter=`` argument -> a vecdb filter dict (None = no filter)."""
    if not flt:
        return None
    if not isinstance(flt, dict):
        raise ValueError(f"filter must be a dict, got {type(flt).__name__}")
    if is_native(flt):
        return flt
    return _mongo(flt)


def _mongo(flt: dict) -> dict:
    items: list[dict] = []
    for key, value in flt.items():
        if key == "$and":
            items.append({"must": [_mongo(x) for x in value]})
        elif key == "$or":
            items.append({"should": [_mongo(x) for x in value], "min_should": 1})
        elif key in ("$not", "$nor"):
            subs = value if isinstance(value, list) else [value]
            items.append({"must_not": [_mongo(x) for x in subs]})
        elif key.startswith("$"):
            raise ValueError(f"unsupported filter operator {key!r}; supported: $and, $or, "
                             "$not, $nor and per field $eq, $ne, $gt, $gte, $lt, $lte, $in, "
                             "$nin, $exists")
        elif isinstance(value, dict) and value and all(str(k).startswith("$") for k in value):
            items.extend(_field_ops(key, value))
        else:
            items.append(eq(key, value))
    if not items:
        raise ValueError("empty filter")
    return all_of(items)


def _field_ops(key: str, ops: dict) -> list[dict]:
    out: list[dict] = []
    bounds: dict[str, Any] = {}
    for op, value in ops.items():
        if op in RANGE_OPS:
            if not isinstance(value, (int, float, datetime, date, str)) or isinstance(value, bool):
                raise ValueError(f"filter on {key!r}: {op} needs a number or datetime")
            bounds[RANGE_OPS[op]] = _bound(value)
        elif op == "$eq":
            out.append(eq(key, value))
        elif op == "$ne":
            out.append({"must_not": [eq(key, value)]})
        elif op == "$in":
            out.append(is_in(key, value))
        elif op == "$nin":
            out.append({"must_not": [is_in(key, value)]})
        elif op == "$exists":
            out.append({"key": key, "exists": bool(value)})
        else:
            raise ValueError(f"filter on {key!r}: unsupported operator {op!r}; supported: "
                             "$eq, $ne, $gt, $gte, $lt, $lte, $in, $nin, $exists")
    if bounds:
        out.append({"key": key, "range": bounds})
    return out


# ------------------------------------------------------------------ LlamaIndex
_LLAMA_RANGE = {">": "gt", ">=": "gte", "<": "lt", "<=": "lte"}


def from_llama_index(filters: Any) -> dict | None:
    """LlamaIndex ``MetadataFilters`` (nested ones too) -> a vecdb filter dict.

    Operators: ==, !=, >, >=, <, <=, in, nin, any, all, contains, is_empty,
    text_match and text_match_insensitive (both as vecdb's word match: every
    word occurs, case-insensitive). Conditions: and, or, not (none matches)."""
    if filters is None or not getattr(filters, "filters", None):
        return None
    items = [_llama_item(f) for f in filters.filters]
    cond = getattr(filters.condition, "value", filters.condition) or "and"
    if cond == "and":
        return all_of(items)
    if cond == "or":
        return {"should": items, "min_should": 1}
    if cond == "not":
        return {"must_not": items}
    raise ValueError(f"unsupported filter condition {cond!r}")


def _llama_item(f: Any) -> dict:
    if hasattr(f, "filters"):  # nested MetadataFilters
        nested = from_llama_index(f)
        if nested is None:
            raise ValueError("empty nested MetadataFilters")
        return nested
    key, value = f.key, f.value
    op = getattr(f, "operator", "==")
    op = getattr(op, "value", op)
    if op == "==":
        return eq(key, value)
    if op == "!=":
        return {"must_not": [eq(key, value)]}
    if op in _LLAMA_RANGE:
        return {"key": key, "range": {_LLAMA_RANGE[op]: _bound(value)}}
    if op in ("in", "any"):
        return is_in(key, _as_list(key, op, value))
    if op == "nin":
        return {"must_not": [is_in(key, _as_list(key, op, value))]}
    if op == "all":
        return {"must": [eq(key, v) for v in _as_list(key, op, value)]}
    if op == "contains":
        return eq(key, value)
    if op == "is_empty":
        return {"should": [{"key": key, "is_empty": True}, {"key": key, "match": ""}],
                "min_should": 1}
    if op in ("text_match", "text_match_insensitive"):
        return {"key": key, "text": str(value)}
    raise ValueError(f"unsupported filter operator {op!r} on {key!r}")


def _as_list(key: str, op: str, value: Any) -> list:
    if isinstance(value, (list, tuple)):
        return list(value)
    if value is None:
        raise ValueError(f"filter on {key!r}: {op} needs a list")
    return [value]


__all__ = ["from_langchain", "from_llama_index", "is_native", "eq", "is_in"]
