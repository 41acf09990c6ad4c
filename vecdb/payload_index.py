"""In-memory payload indexes of one shard: field -> posting lists of FAISS labels.

Derived state like the FAISS index: rebuilt from the RocksDB records when a
shard opens, kept current by every applied write, and built for a new field in
the background while writes continue (see Shard.build_payload_index). Labels
are never reused, so adding and removing labels is idempotent.

An index answers a condition EXACTLY as filters.matches would, or not at all
(lookup returns None and the planner evaluates the condition on payloads).
"""
from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from .errors import InvalidArgument
from .filters import TEXT_KEY, Cond, range_key, scalar_key, text_tokens, values_at
from .fulltext import FieldText

INDEX_TYPES = ("keyword", "integer", "float", "bool", "datetime", "text")
_EMPTY = np.zeros(0, np.int64)


def _array(labels: Iterable[int]) -> np.ndarray:
    arr = np.fromiter(labels, np.int64)
    arr.sort()
    return arr


class ValueIndex:
    """Exact scalar values (keyword, integer, bool): match, any, except."""

    def __init__(self) -> None:
        self.postings: dict[tuple, set[int]] = {}
        self.of: dict[int, tuple] = {}

    def add(self, label: int, values: list) -> None:
        keys = tuple({scalar_key(v) for v in values
                      if v is not None and not isinstance(v, (dict, list))})
        if keys:
            self.of[label] = keys
            for k in keys:
                self.postings.setdefault(k, set()).add(label)

    def remove(self, label: int) -> None:
        for k in self.of.pop(label, ()):
            post = self.postings.get(k)
            if post is not None:
                post.discard(label)
                if not post:
                    del self.postings[k]

    def lookup(self, c: Cond) -> np.ndarray | None:
        if c.op == "match":
            return _array(self.postings.get(c.value, ()))
        if c.op == "any":
            out: set[int] = set()
            for k in c.value:
                out |= self.postings.get(k, set())
            return _array(out)
        if c.op == "except":
            out = set()
            for k, post in self.postings.items():
                if k not in c.value:
                    out |= post
            return _array(out)
        return None

    def within(self, c: Cond, labels: np.ndarray) -> np.ndarray | None:
        """lookup() for ``labels`` (sorted) only, from their values: costs len(labels)."""
        if c.op not in ("match", "any", "except"):
            return None
        of, value = self.of, c.value
        if c.op == "except":
            return _array(lab for lab in labels.tolist()
                          if any(k not in value for k in of.get(lab, ())))
        want = {value} if c.op == "match" else set(value)
        return _array(lab for lab in labels.tolist() if not want.isdisjoint(of.get(lab, ())))


class RangeIndex:
    """Numbers or datetimes (as POSIX seconds): range. Sorted arrays rebuilt lazily."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self.of: dict[int, tuple[float, ...]] = {}
        self._sorted: tuple[np.ndarray, np.ndarray] | None = None

    def add(self, label: int, values: list) -> None:
        keys = tuple(x for x in (range_key(v, self.kind) for v in values) if x is not None)
        if keys:
            self.of[label] = keys
            self._sorted = None

    def remove(self, label: int) -> None:
        if self.of.pop(label, None) is not None:
            self._sorted = None

    def lookup(self, c: Cond) -> np.ndarray | None:
        if c.op != "range" or c.value[4] != self.kind:
            return None
        if self._sorted is None:
            n = sum(len(v) for v in self.of.values())
            vals = np.fromiter((x for v in self.of.values() for x in v), np.float64, n)
            labs = np.fromiter((lab for lab, v in self.of.items() for _ in v), np.int64, n)
            order = np.argsort(vals, kind="stable")
            self._sorted = (vals[order], labs[order])
        vals, labs = self._sorted
        lo, lo_incl, hi, hi_incl, _ = c.value
        a = np.searchsorted(vals, lo, "left" if lo_incl else "right")
        b = np.searchsorted(vals, hi, "right" if hi_incl else "left")
        return np.unique(labs[a:b]) if b > a else _EMPTY

    def within(self, c: Cond, labels: np.ndarray) -> np.ndarray | None:
        """lookup() for ``labels`` (sorted) only, from their values: costs len(labels)."""
        if c.op != "range" or c.value[4] != self.kind:
            return None
        lo, lo_incl, hi, hi_incl, _ = c.value

        def inside(x: float) -> bool:
            return (x > lo or (lo_incl and x == lo)) and (x < hi or (hi_incl and x == hi))
        of = self.of
        return _array(lab for lab in labels.tolist() if any(inside(x) for x in of.get(lab, ())))


class TokenIndex:
    """Word tokens of strings (or of the stored text): text conditions."""

    def __init__(self) -> None:
        self.postings: dict[str, set[int]] = {}
        self.of: dict[int, tuple[str, ...]] = {}

    def add_tokens(self, label: int, toks: set[str]) -> None:
        if toks:
            self.of[label] = tuple(toks)
            for t in toks:
                self.postings.setdefault(t, set()).add(label)

    remove = ValueIndex.remove

    def lookup(self, c: Cond) -> np.ndarray | None:
        if c.op != "text":
            return None
        posts = sorted((self.postings.get(t, set()) for t in c.value), key=len)
        out = set(posts[0])
        for p in posts[1:]:
            out &= p
        return _array(out)

    def within(self, c: Cond, labels: np.ndarray) -> np.ndarray | None:
        """lookup() for ``labels`` (sorted) only, from their tokens: costs len(labels)."""
        if c.op != "text":
            return None
        of = self.of
        return _array(lab for lab in labels.tolist()
                      if all(t in of.get(lab, ()) for t in c.value))


class FieldIndex:
    """Every structure one declared (field, type) needs; ``language``: the collection's
    full_text option (a ``text`` index of a payload field then also scores BM25 on it)."""

    def __init__(self, field: str, kind: str, language: str = "") -> None:
        self.field, self.kind = field, kind
        self.parts: list = []
        if kind in ("keyword", "integer", "bool"):
            self.parts.append(ValueIndex())
        if kind in ("integer", "float"):
            self.parts.append(RangeIndex("number"))
        if kind == "datetime":
            self.parts.append(RangeIndex("datetime"))
        if kind == "text":
            self.parts.append(TokenIndex())
            if language and field != TEXT_KEY:
                self.parts.append(FieldText(language))

    def add(self, label: int, payload: dict | None, text: str | None) -> None:
        """Index ``label`` under these values, replacing what it was indexed under (a
        build's scan may add a label a payload-only update indexed meanwhile)."""
        for part in self.parts:
            part.remove(label)
        for part in self.parts:
            if isinstance(part, TokenIndex):
                part.add_tokens(label, text_tokens(payload, self.field, text))
            else:
                part.add(label, values_at(payload, self.field))

    def remove(self, label: int) -> None:
        for part in self.parts:
            part.remove(label)

    def lookup(self, c: Cond, within: np.ndarray | None = None) -> np.ndarray | None:
        """The labels matching ``c`` (None: not answerable here); ``within``: of these
        sorted labels only, read from their values instead of the postings."""
        if c.key != self.field:
            return None
        for part in self.parts:
            got = part.lookup(c) if within is None else part.within(c, within)
            if got is not None:
                return got
        return None


class PayloadIndexes:
    """The ready field indexes of a shard, plus those being built (not used for lookups)."""

    def __init__(self) -> None:
        self.ready: dict[str, FieldIndex] = {}
        self.building: dict[str, FieldIndex] = {}
        self.removed_while_building: dict[str, set[int]] = {}
        self.replaced_while_building: dict[str, dict[int, tuple]] = {}  # label -> (payload, text)

    @property
    def active(self) -> bool:
        return bool(self.ready or self.building)

    def apply(self, removed: np.ndarray, added: np.ndarray, payloads: list, texts: list) -> None:
        for gone in self.removed_while_building.values():
            gone.update(removed.tolist())
        for fi in (*self.ready.values(), *self.building.values()):
            for lab in removed.tolist():
                fi.remove(lab)
            for lab, pay, txt in zip(added.tolist(), payloads, texts):
                fi.add(lab, pay, txt)

    def replace(self, labels: list[int], payloads: list, texts: list) -> None:
        """New payloads of live labels (a payload-only update: the label stays)."""
        for pending in self.replaced_while_building.values():
            pending.update(zip(labels, zip(payloads, texts)))
        for fi in (*self.ready.values(), *self.building.values()):
            for lab, pay, txt in zip(labels, payloads, texts):
                fi.remove(lab)
                fi.add(lab, pay, txt)

    def lookup(self, c: Cond, within: np.ndarray | None = None) -> np.ndarray | None:
        fi = self.ready.get(c.key) if c.key is not None else None
        return fi.lookup(c, within) if fi is not None else None


def check_type(kind: Any) -> str:
    if kind not in INDEX_TYPES:
        raise InvalidArgument(f"payload index type must be one of {', '.join(INDEX_TYPES)}, "
                              f"got {kind!r}", "type")
    return kind
