"""A brute-force filter evaluator written independently of vecdb.filters, for tests.

Semantics (documented in vecdb/filters.py): dotted keys walk nested objects,
arrays along the way and at the end are flattened; a condition on several
values matches when any value matches; booleans are not numbers; missing
fields match nothing except is_empty (and must_not).
"""
from __future__ import annotations

import datetime as dt
import re


def _walk(obj, parts):
    if not parts:
        return [obj]
    out = []
    items = obj if isinstance(obj, list) else [obj]
    for o in items:
        if isinstance(o, dict) and parts[0] in o:
            out += _walk(o[parts[0]], parts[1:])
    return out


def leaves(payload, key):
    raw = _walk(payload, key.split(".")) if payload is not None else []
    flat = []
    for v in raw:
        flat += v if isinstance(v, list) else [v]
    return raw, flat


def _num(v):
    return v if type(v) in (int, float) else None


def _when(v):
    if not isinstance(v, str):
        return None
    try:
        t = dt.datetime.fromisoformat(v.replace("Z", "+00:00"))
    except ValueError:
        return None
    return (t if t.tzinfo else t.replace(tzinfo=dt.timezone.utc)).timestamp()


def _same(a, b):
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, str) or isinstance(b, str):
        return isinstance(a, str) and isinstance(b, str) and a == b
    return a == b


def _words(s):
    return set(re.findall(r"\w+", s.casefold()))


def cond(c, pid, payload, text):
    if "has_id" in c:
        return pid in c["has_id"]
    key = c.get("key", "$text")
    raw, vals = leaves(payload, key)
    scalars = [v for v in vals if v is not None and not isinstance(v, (dict, list))]
    if "match" in c:
        return any(_same(v, c["match"]) for v in scalars)
    if "any" in c:
        return any(any(_same(v, w) for w in c["any"]) for v in scalars)
    if "except" in c:
        return any(not any(_same(v, w) for w in c["except"]) for v in scalars)
    if "range" in c:
        r = c["range"]
        dates = any(isinstance(b, str) for b in r.values())
        conv = _when if dates else _num
        bounds = {k: (conv(b) if dates else b) for k, b in r.items()}
        for v in vals:
            x = conv(v)
            if x is None:
                continue
            if ("gt" not in bounds or x > bounds["gt"]) and ("gte" not in bounds or x >= bounds["gte"]) \
                    and ("lt" not in bounds or x < bounds["lt"]) and ("lte" not in bounds or x <= bounds["lte"]):
                return True
        return False
    if "exists" in c:
        return any(v is not None for v in vals) == c["exists"]
    if "is_null" in c:
        return (len(vals) > 0 and all(v is None for v in vals)) == c["is_null"]
    if "is_empty" in c:
        return all(v is None or v == [] for v in raw) == c["is_empty"]
    if "text" in c:
        want = _words(c["text"])
        if key == "$text":
            return text is not None and want <= _words(text)
        have = set()
        for v in vals:
            if isinstance(v, str):
                have |= _words(v)
        return want <= have
    raise ValueError(c)


def evaluate(f, pid, payload, text) -> bool:
    if not any(k in f for k in ("must", "should", "must_not")):
        return cond(f, pid, payload, text)
    sub = lambda x: evaluate(x, pid, payload, text)  # noqa: E731
    if not all(sub(x) for x in f.get("must", [])):
        return False
    if any(sub(x) for x in f.get("must_not", [])):
        return False
    should = f.get("should", [])
    need = f.get("min_should", 1 if should else 0)
    return sum(sub(x) for x in should) >= need
