"""The filter language: parse + validate a plain-dict filter, evaluate it on a point.

A filter is a clause ``{"must": [...], "should": [...], "must_not": [...],
"min_should": n}``; every item is a condition or a nested clause. Conditions::

    {"key": "lang", "match": "en"}                   equal (str, int, bool)
    {"key": "lang", "any": ["en", "de"]}             in
    {"key": "lang", "except": ["fr"]}                not in (the field must exist)
    {"key": "year", "range": {"gte": 2020, "lt": 2024}}   numbers or ISO-8601 datetimes
    {"key": "tags", "exists": true}                  present and not null
    {"key": "tags", "is_null": true}                 present and null
    {"key": "tags", "is_empty": true}                missing, null or []
    {"has_id": ["a", "b"]}
    {"text": "error budget"}                         every token in the point's text
    {"key": "title", "text": "error budget"}         ... or in a payload string

Keys are dotted paths into nested objects; arrays along the path are
flattened, and a condition on an array matches when any element matches.
Errors name the place inside the filter, e.g. ``filter.must[1].range.gte``.
"""
from __future__ import annotations

import datetime as _dt
import json
import re
from dataclasses import dataclass
from typing import Any

from .errors import InvalidArgument

MAX_DEPTH = 8
MAX_CONDITIONS = 1024
MAX_FILTER_BYTES = 256 * 1024
MAX_LIST = 10_000
RANGE_OPS = ("gt", "gte", "lt", "lte")
TEXT_KEY = "$text"  # the point's stored text, for text conditions and text indexes
_TOKEN = re.compile(r"\w+", re.UNICODE)
_CLAUSE_KEYS = {"must", "should", "must_not", "min_should"}
_OPS = ("match", "any", "except", "range", "exists", "is_null", "is_empty", "text")


def tokens(text: str) -> set[str]:
    """Case-insensitive word tokens (letters, digits, underscore; any script)."""
    return set(_TOKEN.findall(text.casefold()))


def parse_datetime(value: str) -> float:
    """ISO-8601 -> POSIX seconds; naive values are UTC. Raises ValueError."""
    v = value.strip()
    if v.endswith(("Z", "z")):
        v = v[:-1] + "+00:00"
    t = _dt.datetime.fromisoformat(v)
    if t.tzinfo is None:
        t = t.replace(tzinfo=_dt.timezone.utc)
    return t.timestamp()


def is_number(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


def scalar_key(v: Any) -> tuple:
    """A hashable key that keeps True, 1 and 1.0 apart the way JSON does (bool != number)."""
    if isinstance(v, bool):
        return ("b", v)
    if is_number(v):
        return ("n", float(v))
    return ("s", v)


# ---- the parsed tree -------------------------------------------------------------
@dataclass(frozen=True)
class Cond:
    key: str | None          # None for has_id and for text on the stored text
    op: str                  # one of _OPS or "has_id"
    value: Any               # match: scalar key; any/except: frozenset; range: (lo, lo_incl, hi, hi_incl, kind)
    path: str                # where it came from, for messages


@dataclass(frozen=True)
class Clause:
    must: tuple
    should: tuple
    must_not: tuple
    min_should: int


Node = Cond | Clause


@dataclass(frozen=True)
class TenantScope(Clause):
    """A read restricted to one tenant (vecdb/tenants.py): ``must`` is the tenant match
    and the caller's filter, so anything evaluating it as a Clause is right; the
    planner answers it from the shard's tenant partition (vecdb/tenant_search.py)."""
    key: tuple = ()
    inner: Clause | None = None
    inline: bool = False  # small: the shards are searched in the caller's thread

    @classmethod
    def of(cls, match: Cond, inner: Clause | None, key: tuple,
           inline: bool = False) -> "TenantScope":
        return cls((match,) if inner is None else (match, inner), (), (), 0, key, inner, inline)


def parse(raw: Any, field: str = "filter") -> Clause | None:
    """Validate a filter given as a dict (or JSON text); None means "no filter".
    An already parsed Clause (a TenantScope) is returned as it is."""
    if raw is None or raw == {} or raw == "":
        return None
    if isinstance(raw, Clause):
        return raw
    if isinstance(raw, (str, bytes)):
        if len(raw) > MAX_FILTER_BYTES:
            raise InvalidArgument(f"{field} is larger than {MAX_FILTER_BYTES} bytes", field)
        try:
            raw = json.loads(raw)
        except ValueError as exc:
            raise InvalidArgument(f"{field} is not valid JSON: {exc}", field) from None
    elif len(json.dumps(raw, default=str)) > MAX_FILTER_BYTES:
        raise InvalidArgument(f"{field} is larger than {MAX_FILTER_BYTES} bytes", field)
    counter = [0]
    if isinstance(raw, dict) and not set(raw) & _CLAUSE_KEYS:  # a lone condition
        return Clause((_item(raw, field, 1, counter),), (), (), 0)
    return _clause(raw, field, 1, counter)


def _clause(raw: Any, path: str, depth: int, counter: list[int]) -> Clause:
    if not isinstance(raw, dict):
        raise InvalidArgument(f"{path} must be an object with must/should/must_not", path)
    if depth > MAX_DEPTH:
        raise InvalidArgument(f"{path} nests deeper than {MAX_DEPTH} levels", path)
    unknown = set(raw) - _CLAUSE_KEYS
    if unknown:
        raise InvalidArgument(f"{path}: unknown key {sorted(unknown)[0]!r}; a clause has "
                              "must, should, must_not, min_should", f"{path}.{sorted(unknown)[0]}")
    parts = {}
    for name in ("must", "should", "must_not"):
        items = raw.get(name, [])
        if isinstance(items, dict):
            items = [items]
        if not isinstance(items, list):
            raise InvalidArgument(f"{path}.{name} must be a list of conditions", f"{path}.{name}")
        parts[name] = tuple(_item(it, f"{path}.{name}[{i}]", depth, counter) for i, it in enumerate(items))
    min_should = raw.get("min_should", 1 if parts["should"] else 0)
    if not isinstance(min_should, int) or isinstance(min_should, bool) or not \
            0 <= min_should <= len(parts["should"]):
        raise InvalidArgument(f"{path}.min_should must be an integer in 0..{len(parts['should'])}, "
                              f"got {min_should!r}", f"{path}.min_should")
    return Clause(parts["must"], parts["should"], parts["must_not"], min_should)


def _item(raw: Any, path: str, depth: int, counter: list[int]) -> Node:
    if isinstance(raw, dict) and set(raw) & _CLAUSE_KEYS and not set(raw) & {"key", "has_id", *_OPS}:
        return _clause(raw, path, depth + 1, counter)
    counter[0] += 1
    if counter[0] > MAX_CONDITIONS:
        raise InvalidArgument(f"filter has more than {MAX_CONDITIONS} conditions", path)
    return _condition(raw, path)


def _condition(raw: Any, path: str) -> Cond:
    if not isinstance(raw, dict):
        raise InvalidArgument(f"{path} must be a condition object like "
                              '{"key": "field", "match": value}', path)
    if "has_id" in raw:
        ids = raw["has_id"]
        if set(raw) != {"has_id"} or not isinstance(ids, list) or len(ids) > MAX_LIST or \
                not all(isinstance(i, str) for i in ids):
            raise InvalidArgument(f"{path}.has_id must be a list of string ids (at most {MAX_LIST})",
                                  f"{path}.has_id")
        return Cond(None, "has_id", frozenset(ids), path)
    ops = [op for op in _OPS if op in raw]
    unknown = set(raw) - {"key", *_OPS}
    if unknown:
        bad = sorted(unknown)[0]
        raise InvalidArgument(f"{path}: unknown operator {bad!r}; use one of "
                              f"{', '.join(_OPS)}, has_id", f"{path}.{bad}")
    if len(ops) != 1:
        raise InvalidArgument(f"{path} must have exactly one operator ({', '.join(_OPS)}), "
                              f"got {len(ops)}", path)
    op = ops[0]
    key = raw.get("key")
    if op == "text" and key is None:
        key = TEXT_KEY
    if not isinstance(key, str) or not key or any(not p for p in key.split(".")):
        raise InvalidArgument(f"{path}.key must be a non-empty dotted path, got {key!r}", f"{path}.key")
    value, vpath = raw[op], f"{path}.{op}"
    if op == "match":
        if not isinstance(value, (str, int, bool)) or isinstance(value, float):
            raise InvalidArgument(f"{vpath} must be a string, integer or bool, got {_tn(value)}", vpath)
        return Cond(key, op, scalar_key(value), path)
    if op in ("any", "except"):
        if not isinstance(value, list) or len(value) > MAX_LIST:
            raise InvalidArgument(f"{vpath} must be a list (at most {MAX_LIST} values)", vpath)
        for i, v in enumerate(value):
            if not isinstance(v, (str, int, bool)) or isinstance(v, float):
                raise InvalidArgument(f"{vpath}[{i}] must be a string, integer or bool, got {_tn(v)}",
                                      f"{vpath}[{i}]")
        return Cond(key, op, frozenset(scalar_key(v) for v in value), path)
    if op == "range":
        return Cond(key, op, _range(value, vpath), path)
    if op == "text":
        if not isinstance(value, str) or not tokens(value):
            raise InvalidArgument(f"{vpath} must be a string with at least one word", vpath)
        return Cond(key, op, frozenset(tokens(value)), path)
    if value is not True and value is not False:
        raise InvalidArgument(f"{vpath} must be true or false, got {_tn(value)}", vpath)
    return Cond(key, op, value, path)


def _range(value: Any, path: str) -> tuple:
    if not isinstance(value, dict) or not value:
        raise InvalidArgument(f"{path} must be an object with gt/gte/lt/lte", path)
    kinds, bounds = set(), {}
    for op, v in value.items():
        if op not in RANGE_OPS:
            raise InvalidArgument(f"{path}: unknown operator {op!r}; use gt, gte, lt, lte", f"{path}.{op}")
        if is_number(v):
            kinds.add("number")
            bounds[op] = float(v)
        elif isinstance(v, str):
            try:
                bounds[op] = parse_datetime(v)
            except ValueError:
                raise InvalidArgument(f"{path}.{op}: {v!r} is not an ISO-8601 datetime",
                                      f"{path}.{op}") from None
            kinds.add("datetime")
        else:
            raise InvalidArgument(f"{path}.{op} must be a number or an ISO-8601 datetime, got {_tn(v)}",
                                  f"{path}.{op}")
    if len(kinds) > 1:
        raise InvalidArgument(f"{path} mixes numbers and datetimes", path)
    if "gt" in bounds and "gte" in bounds or "lt" in bounds and "lte" in bounds:
        raise InvalidArgument(f"{path} has two lower or two upper bounds", path)
    lo = bounds.get("gt", bounds.get("gte", float("-inf")))
    hi = bounds.get("lt", bounds.get("lte", float("inf")))
    return (lo, "gt" not in bounds, hi, "lt" not in bounds, kinds.pop())


def _tn(v: Any) -> str:
    return "null" if v is None else type(v).__name__


# ---- evaluation on one point --------------------------------------------------
def raw_values_at(payload: dict | None, key: str) -> list:
    """Values under a dotted path, arrays along the way flattened, the last ones kept whole.
    A present null yields [None]; a missing key yields []."""
    cur = [payload] if payload is not None else []
    for part in key.split("."):
        nxt = []
        for obj in cur:
            for o in (obj if isinstance(obj, list) else [obj]):
                if isinstance(o, dict) and part in o:
                    nxt.append(o[part])
        cur = nxt
    return cur


def values_at(payload: dict | None, key: str) -> list:
    """Leaf values under a dotted path: like raw_values_at with arrays at the end flattened."""
    out = []
    for v in raw_values_at(payload, key):
        if isinstance(v, list):
            out.extend(v)
        else:
            out.append(v)
    return out


def text_tokens(payload: dict | None, key: str, text: str | None) -> set[str]:
    """Tokens a text condition sees: the stored text, or every string under a payload key."""
    if key == TEXT_KEY:
        return tokens(text) if text is not None else set()
    out: set[str] = set()
    for v in values_at(payload, key):
        if isinstance(v, str):
            out |= tokens(v)
    return out


def range_key(v: Any, kind: str) -> float | None:
    """The comparable number of a stored value for a range of this kind, or None."""
    if kind == "number":
        return float(v) if is_number(v) else None
    if isinstance(v, str):
        try:
            return parse_datetime(v)
        except ValueError:
            return None
    return None


def in_range(x: float, r: tuple) -> bool:
    lo, lo_incl, hi, hi_incl, _ = r
    return (x > lo or (lo_incl and x == lo)) and (x < hi or (hi_incl and x == hi))


def matches(node: Node, pid: str, payload: dict | None, text: str | None) -> bool:
    if isinstance(node, Clause):
        if not all(matches(c, pid, payload, text) for c in node.must):
            return False
        if any(matches(c, pid, payload, text) for c in node.must_not):
            return False
        if node.min_should:
            hits = 0
            for c in node.should:
                hits += matches(c, pid, payload, text)
                if hits >= node.min_should:
                    return True
            return False
        return True
    return _cond(node, pid, payload, text)


def _cond(c: Cond, pid: str, payload: dict | None, text: str | None) -> bool:
    op = c.op
    if op == "has_id":
        return pid in c.value
    if op == "text":
        return c.value <= text_tokens(payload, c.key, text)
    if op == "is_empty":
        raw = raw_values_at(payload, c.key)
        empty = not raw or all(v is None or v == [] for v in raw)
        return empty == c.value
    vals = values_at(payload, c.key)
    if op == "exists":
        return any(v is not None for v in vals) == c.value
    if op == "is_null":
        return (None in vals and not any(v is not None for v in vals)) == c.value
    if op == "match":
        return any(v is not None and not isinstance(v, (dict, list)) and scalar_key(v) == c.value
                   for v in vals)
    if op == "any":
        return any(v is not None and not isinstance(v, (dict, list)) and scalar_key(v) in c.value
                   for v in vals)
    if op == "except":
        return any(v is not None and not isinstance(v, (dict, list)) and scalar_key(v) not in c.value
                   for v in vals)
    if op == "range":
        kind = c.value[4]
        return any((x := range_key(v, kind)) is not None and in_range(x, c.value) for v in vals)
    raise AssertionError(op)


def conditions(node: Node):
    """Every condition in the tree (for planning)."""
    if isinstance(node, Cond):
        yield node
        return
    for part in (node.must, node.should, node.must_not):
        for child in part:
            yield from conditions(child)
