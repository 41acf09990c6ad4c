"""Grouped search: the best ``group_size`` hits for each of the best ``groups`` values
of a scalar payload field (string, integer or bool), groups ranked by their best hit.

Points without the field (or with null) are skipped; an array or object value is
INVALID_ARGUMENT naming ``group_by``. Never under-filled: the answer is the one an
exhaustive pass over every matching point would give (on exact indexes), however
the groups are spread:

1. one search over-fetches k' = max(2 * groups * group_size, 64) hits; walking
   them best first, groups appear in the order of their best hit, and every
   group seen there outranks every group not seen (all its points rank lower);
   k' grows x4 (up to max(16 * groups * group_size, 2048)) while the first
   ``groups`` groups are not all full;
2. while fewer than ``groups`` groups were seen and the search was not
   exhausted, the next search skips the groups already seen (filter: the field
   exists and is none of their values), so each round finds the next groups;
3. the chosen groups with fewer than ``group_size`` hits among the candidates
   are searched once more together (filter: field is one of their values; k
   growing x4 until each is full or the search is exhausted): a filtered
   search's exact top hits of each of them.
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
                  exclude: frozenset | set = frozenset(), scope=filters.parse
                  ) -> list[SearchResult]:
    """One grouped result per prepared query row of ``q`` (arguments checked by check()).
    ``scope``: a raw filter -> the node searched (a tenant's TenantScope, vecdb/tenants.py)."""
    node = scope(filter)
    return [_one(coll, q[i:i + 1], group_by, group_size, groups, params, with_payload,
                 with_vector, filter, node, exclude, scope) for i in range(len(q))]


def _one(coll, q, key, size, count, params, with_payload, with_vector, flt, node, exclude,
         scope):
    want, extra = count * size, len(exclude)
    kk, limit = max(2 * want, 64) + extra, max(16 * want, 2048) + extra

    def run(k, n):
        got = coll.search_prepared(q, k, params, True, with_vector, n)
        return got[0] if got else SearchResult([], np.zeros(0, np.float32))

    values: dict[tuple, object] = {}

    def walk(res: SearchResult, into: dict) -> dict:
        for i, pid in enumerate(res.ids):
            if pid in exclude:
                continue
            v = group_value(res.payloads[i], key, pid)
            if v is not None:
                gk = filters.scalar_key(v)
                values.setdefault(gk, v)
                into.setdefault(gk, []).append((res, i))
        return into

    def complete(order: dict) -> bool:
        return len(order) >= count and all(len(order[g]) >= size for g in list(order)[:count])

    while True:  # 1. over-fetch, growing while the groups are not settled
        first = run(kk, node)
        order = walk(first, {})  # group key -> [(result, row)], best first
        exhausted = len(first.ids) + first.dropped < kk
        if exhausted or complete(order) or kk >= limit:
            break
        kk = min(kk * 4, limit)
    done = exhausted
    while not done and len(order) < count:  # 2. the next groups, skipping those seen
        cond = {"must": [{"key": key, "exists": True}],
                "must_not": [{"key": key, "any": list(values.values())}] if values else []}
        res = run(kk, scope(_and(flt, cond)))
        before = len(order)
        walk(res, order)
        done = len(res.ids) + res.dropped < kk or len(order) == before
    chosen = list(order)[:count]
    under = [] if exhausted else [g for g in chosen if len(order[g]) < size]
    k2 = size * len(under) + extra
    while under:  # 3. under-filled chosen groups: their own best hits, one search for all
        res = run(k2, scope(_and(flt, {"key": key, "any": [values[g] for g in under]})))
        got = walk(res, {})
        for g in under:
            order[g] = got.get(g, [])
        under = [] if len(res.ids) + res.dropped < k2 else [g for g in under if len(order[g]) < size]
        k2 *= 4
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
