"""A small builder for filter dicts: ``F.must(F.match("lang", "en"), F.range("year", gte=2020))``.

Every function returns the plain dict form that ``filter=`` accepts everywhere
(search, range_search, count, scroll, iter_points, delete, update_payload), so
builder calls and hand-written dicts mix freely::

    from vecdb_client.filters import F
    F.must(F.match("lang", "en"), F.range("year", gte=2020))
    == {"must": [{"key": "lang", "match": "en"}, {"key": "year", "range": {"gte": 2020}}]}

The language itself (operators, arrays, missing fields) is described in
docs/server_api.md, section "Filters".
"""
from __future__ import annotations

from typing import Any, Iterable

Filter = dict  # a clause {"must"/"should"/"must_not"/"min_should"} or one condition


class F:
    """Namespace of builder functions (all static; no instances)."""

    # ---- clauses: each item is a condition or a nested clause
    @staticmethod
    def must(*items: Filter) -> Filter:
        """Every item matches."""
        return {"must": list(items)}

    @staticmethod
    def should(*items: Filter, min_should: int | None = None) -> Filter:
        """At least ``min_should`` items match (default 1)."""
        out: Filter = {"should": list(items)}
        if min_should is not None:
            out["min_should"] = min_should
        return out

    @staticmethod
    def must_not(*items: Filter) -> Filter:
        """No item matches."""
        return {"must_not": list(items)}

    @staticmethod
    def clause(must: Iterable[Filter] = (), should: Iterable[Filter] = (),
               must_not: Iterable[Filter] = (), min_should: int | None = None) -> Filter:
        """All three parts in one clause."""
        out: Filter = {"must": list(must), "should": list(should), "must_not": list(must_not)}
        if min_should is not None:
            out["min_should"] = min_should
        return out

    # ---- conditions on a payload key (a dotted path)
    @staticmethod
    def match(key: str, value: str | int | bool) -> Filter:
        """Equal to ``value`` (string, integer or bool)."""
        return {"key": key, "match": value}

    @staticmethod
    def any(key: str, values: Iterable[str | int | bool]) -> Filter:
        """Equal to one of ``values``."""
        return {"key": key, "any": list(values)}

    @staticmethod
    def except_(key: str, values: Iterable[str | int | bool]) -> Filter:
        """Present and equal to none of ``values``."""
        return {"key": key, "except": list(values)}

    @staticmethod
    def range(key: str, *, gt: Any = None, gte: Any = None, lt: Any = None,
              lte: Any = None) -> Filter:
        """Numbers, or datetimes (ISO-8601 strings or ``datetime`` objects; naive = UTC)."""
        bounds = {"gt": gt, "gte": gte, "lt": lt, "lte": lte}
        return {"key": key, "range": {op: v for op, v in bounds.items() if v is not None}}

    @staticmethod
    def exists(key: str, value: bool = True) -> Filter:
        """Present and not null."""
        return {"key": key, "exists": value}

    @staticmethod
    def is_null(key: str, value: bool = True) -> Filter:
        """Present and null."""
        return {"key": key, "is_null": value}

    @staticmethod
    def is_empty(key: str, value: bool = True) -> Filter:
        """Missing, null or an empty list."""
        return {"key": key, "is_empty": value}

    @staticmethod
    def text(words: str, key: str | None = None) -> Filter:
        """Every word of ``words`` occurs (case-insensitive) in the point's stored text,
        or with ``key=`` in the payload string(s) under that key."""
        return {"text": words} if key is None else {"key": key, "text": words}

    # ---- ids
    @staticmethod
    def has_id(*ids: str | Iterable[str]) -> Filter:
        """The point id is one of these: ``F.has_id("a", "b")`` or ``F.has_id(id_list)``."""
        if len(ids) == 1 and not isinstance(ids[0], str):
            return {"has_id": list(ids[0])}
        return {"has_id": list(ids)}


__all__ = ["F", "Filter"]
