"""Grouped search: the best ``group_size`` hits for each of the best ``groups`` values
of a scalar payload field (string, integer or bool), groups ranked by their best hit.

Points without the field (or with null) are skipped; an array or object value is
INVALID_ARGUMENT naming ``group_by``. Never under-filled: the answer is the one an
exhaustive pass over every matching point would give (on exact indexes), however
the groups are spread:

1. one search over-fetches k' = max(2 * groups * group_size, 64) hits; walking
   them best first, groups appear in the order of their best hit, and every
   group seen there outranks every group not seen (all its points rank lower);
2. while fewer than ``groups`` groups were seen and the search was not
   exhausted, the next search skips the groups already seen (filter: the field
   exists and is none of their values), so each round finds the next groups;
3. a chosen group with fewer than ``group_size`` hits among the candidates is
   searched once more on its own (filter: field == its value), which is the
   filtered search's exact top-k for that group.
"""
from __future__ import annotations

import numpy as np

from . import filters, validation
from .errors import InvalidArgument
from .filters import TEXT_KEY
from .types import SearchParams, SearchResult

_FIELD = "group_by"


def check(group_by, group_size, groups) -> tuple[str, int, int]:
    if not isinstance(group_by, str) or group_by == TEXT_KEY or not group_by or \
            len(group_by) > 256 or any(not part for part in group_by.split(".")):
        raise InvalidArgument(f"group_by must be a dotted payload field like 'author' or "
                              f"'meta.source', got {group_by!r}", _FIELD)
    size = validation.int_in(group_size, 1, validation.MAX_K, "group_size")
    count = validation.int_in(groups, 1, validation.MAX_K, "groups")
    if size * count > validation.MAX_K:
        raise InvalidArgument(f"groups x group_size = {count * size} hits; the limit is "
                              f"{validation.MAX_K}", "groups")
    return group_by, size, count


def group_value(payload: dict | None, key: str, pid: str):
    """The point's scalar value of ``key`` (None when missing or null)."""
    vals = filters.raw_values_at(payload, key)
    if not vals:
        return None
    v = vals[0]
    if len(vals) > 1 or isinstance(v, (list, dict)):
        raise InvalidArgument(f"group_by field {key!r} is not a scalar in point {pid!r} (it holds "
                              "an array or object); group by a string, integer or bool field",
                              _FIELD)
    if isinstance(v, float):
        raise InvalidArgument(f"group_by field {key!r} holds a float in point {pid!r}; group by "
                              "a string, integer or bool field", _FIELD)
    return v


def _and(flt, cond: dict) -> dict:
    return {"must": [cond]} if flt is None else {"must": [flt, cond]}


def search_groups(coll, q: np.ndarray, group_by: str, group_size: int, groups: int,
                  params: SearchParams, with_payload: bool, with_vector: bool, filter=None,
                  exclude: frozenset | set = frozenset()) -> list[SearchResult]:
    """One grouped result per prepared query row of ``q`` (arguments checked by check())."""
    node = filters.parse(filter)
    return [_one(coll, q[i:i + 1], group_by, group_size, groups, params, with_payload,
                 with_vector, filter, node, exclude) for i in range(len(q))]


def _one(coll, q, key, size, count, params, with_payload, with_vector, flt, node, exclude):
    kk = max(2 * count * size, 64) + len(exclude)

    def run(k, n):
        got = coll.search_prepared(q, k, params, True, with_vector, n)
        return got[0] if got else SearchResult([], np.zeros(0, np.float32))

    order: dict[tuple, list] = {}  # group key -> [(result, row)], best first
    values: dict[tuple, object] = {}

    def walk(res: SearchResult) -> None:
        for i, pid in enumerate(res.ids):
            if pid in exclude:
                continue
            v = group_value(res.payloads[i], key, pid)
            if v is None:
                continue
            gk = filters.scalar_key(v)
            values.setdefault(gk, v)
            order.setdefault(gk, []).append((res, i))

    first = run(kk, node)
    walk(first)
    exhausted = len(first.ids) < kk
    done = exhausted
    while not done and len(order) < count:
        cond = {"must": [{"key": key, "exists": True}],
                "must_not": [{"key": key, "any": list(values.values())}] if values else []}
        res = run(kk, filters.parse(_and(flt, cond)))
        before = len(order)
        walk(res)
        done = len(res.ids) < kk or len(order) == before
    chosen = list(order)[:count]
    for gk in chosen:
        if len(order[gk]) < size and not exhausted:
            res = run(size + len(exclude), filters.parse(_and(flt, {"key": key, "match": values[gk]})))
            order[gk] = [(res, i) for i, pid in enumerate(res.ids) if pid not in exclude]
    picks = [(gk, hit) for gk in chosen for hit in order[gk][:size]]
    return _build(picks, values, with_payload, with_vector, first.plan)


def _build(picks, values, with_payload, with_vector, plan) -> SearchResult:
    rows = [hit for _, hit in picks]
    return SearchResult(
        ids=[r.ids[i] for r, i in rows],
        scores=np.array([r.scores[i] for r, i in rows], np.float32),
        payloads=[r.payloads[i] for r, i in rows] if with_payload else None,
        vectors=(np.stack([r.vectors[i] for r, i in rows]) if rows else None) if with_vector else None,
        texts=[r.texts[i] for r, i in rows] if with_payload else None,
        plan=plan, group_keys=[values[gk] for gk, _ in picks])
