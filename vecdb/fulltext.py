"""Full-text BM25 over the points' texts: one tantivy index per shard, in RAM.

Like the FAISS indexes it is derived state: it follows every applied op (upsert,
delete, replacement, TTL expiry, which deletes) and is rebuilt from the texts in
RocksDB when the shard opens (``Shard.recover``), so a crash at any point loses
nothing. tantivy is the optional extra ``vecdb[hybrid]``; it is imported only by
collections created with ``full_text``.

Tokenizer (both for the indexed texts and the queries): Unicode word splitting
(runs of letters and digits; anything else separates), lower-casing, tokens over
255 bytes dropped, then Snowball stemming when the option names a language
("plain": no stemming). No stop words. Scripts written without spaces (CJK) are
not segmented: a run is one token.

Scoring: tantivy's BM25, k1 = 1.2, b = 0.75, idf = ln(1 + (N - n + 0.5) / (n + 0.5));
a query's score is the sum over its distinct terms. N, n and the average length
are per shard and, like Lucene's, still count deleted texts until segments merge.
Text lengths are stored in one byte (exact up to 40 tokens, then about 10%).
"""
from __future__ import annotations

import importlib
import threading

import numpy as np

from .errors import FailedPrecondition, InvalidArgument

# Snowball stemmers tantivy ships, plus "plain" (no stemming)
LANGUAGES = ("plain", "arabic", "danish", "dutch", "english", "finnish", "french", "german",
             "greek", "hungarian", "italian", "norwegian", "portuguese", "romanian", "russian",
             "spanish", "swedish", "tamil", "turkish")
EXTRA = "pip install 'vecdb[hybrid]'"
# a filter matching at most this many points (in a shard) is pushed into the query (a term
# set: its cost grows with the set, about 60 us a label);
# larger ones filter an over-fetched top list
_TERM_SET_MAX = 256
_MAX_QUERY_CHARS = 10_000


def check_option(value) -> str:
    """The ``full_text`` collection option: "" (off), "plain", or a stemming language."""
    if value is None or value == "":
        return ""
    if not isinstance(value, str) or value.lower() not in LANGUAGES:
        raise InvalidArgument(f"full_text must be one of {', '.join(LANGUAGES)} (or empty: off), "
                              f"got {value!r}", "full_text")
    _tantivy()
    return value.lower()


def _tantivy():
    try:
        return importlib.import_module("tantivy")
    except ImportError:
        raise FailedPrecondition(f"full_text needs the optional extra hybrid ({EXTRA})",
                                 "full_text") from None


def check_query(text, field: str = "keywords") -> str:
    if not isinstance(text, str) or not text.strip():
        raise InvalidArgument(f"{field} must be a non-empty string", field)
    if len(text) > _MAX_QUERY_CHARS:
        raise InvalidArgument(f"{field} is longer than {_MAX_QUERY_CHARS} characters", field)
    return text


class TextIndex:
    """The BM25 index of one shard's texts, keyed by label. The caller serializes
    ``apply``/``rebuild`` against ``search`` (the shard's write/read lock); changes
    become searchable at the next search (one tantivy commit per batch of changes)."""

    def __init__(self, language: str):
        tv = self._tv = _tantivy()
        sb = tv.SchemaBuilder()
        sb.add_integer_field("label", indexed=True, fast=True)
        sb.add_text_field("text", tokenizer_name="vecdb", index_option="freq")
        self._schema = sb.build()
        b = tv.TextAnalyzerBuilder(tv.Tokenizer.simple()).filter(tv.Filter.remove_long(255)) \
            .filter(tv.Filter.lowercase())
        if language != "plain":
            b = b.filter(tv.Filter.stemmer(language))
        self._analyzer = b.build()
        self.language = language
        self._index = tv.Index(self._schema)
        self._index.register_tokenizer("vecdb", self._analyzer)
        self._writer = self._index.writer(15_000_000, 1)
        self._dirty = False
        self._commit_lock = threading.Lock()

    def terms(self, text: str) -> list[str]:
        """The distinct query terms of ``text``, in first-seen order."""
        return list(dict.fromkeys(self._analyzer.analyze(text)))

    def apply(self, removed: np.ndarray, added: np.ndarray, texts: list | None) -> None:
        """Remove ``removed`` labels, index ``added`` with their texts (utf-8 bytes or None)."""
        for lab in np.asarray(removed).tolist():
            self._writer.delete_documents_by_term("label", lab)
        if texts:
            for lab, t in zip(np.asarray(added).tolist(), texts):
                if t:
                    self._add(lab, t.decode("utf-8", "replace") if isinstance(t, bytes) else t)
        self._dirty = self._dirty or bool(len(removed)) or bool(texts)

    def rebuild(self, pairs) -> None:
        """Index exactly the (label, text) pairs given (recovery from RocksDB)."""
        self._writer.delete_all_documents()
        for lab, text in pairs:
            if text:
                self._add(lab, text)
        self._dirty = True

    def _add(self, label: int, text: str) -> None:
        self._writer.add_document(self._tv.Document(label=label, text=text))

    def _searcher(self):
        if self._dirty:
            with self._commit_lock:  # concurrent readers: one commits
                if self._dirty:
                    self._writer.commit()
                    self._index.reload()
                    self._dirty = False
        return self._index.searcher()

    def search(self, terms: list[str], k: int, allowed: np.ndarray | None,
               exclude: np.ndarray, accept=None) -> tuple[np.ndarray, np.ndarray]:
        """(scores, labels) of the best ``k`` texts by BM25, best first: only ``allowed``
        labels (sorted; None: all), none of ``exclude``, and only those ``accept(labels)``
        (the matching ones, sorted) returns when given: a filter evaluated on the hits
        of an over-fetched list. Texts sharing no term are not hits."""
        empty = np.zeros(0, np.float32), np.zeros(0, np.int64)
        if not terms or (allowed is not None and not len(allowed)):
            return empty
        tv = self._tv
        query = tv.Query.boolean_query([(tv.Occur.Should, tv.Query.term_query(self._schema, "text", t))
                                        for t in terms])
        if allowed is not None and len(allowed) <= _TERM_SET_MAX:
            only = tv.Query.const_score_query(
                tv.Query.term_set_query(self._schema, "label", allowed.tolist()), 0.0)
            query = tv.Query.boolean_query([(tv.Occur.Must, query), (tv.Occur.Must, only)])
            allowed = None
        searcher = self._searcher()
        limit = k + len(exclude) if allowed is None and accept is None else 4 * k
        while True:
            hits = searcher.search(query, limit, count=False).hits
            scores = np.array([s for s, _ in hits], np.float32)
            labels = np.array(searcher.fast_field_values("label", [a for _, a in hits]), np.int64)
            keep = np.ones(len(hits), bool)
            if len(exclude):
                keep &= ~np.isin(labels, exclude)
            if allowed is not None:
                keep &= np.isin(labels, allowed)
            if accept is not None:
                keep &= np.isin(labels, accept(np.sort(labels[keep])))
            if keep.sum() >= k or len(hits) < limit:
                return scores[keep][:k], labels[keep][:k]
            limit *= 4
