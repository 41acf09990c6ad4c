"""Full-text BM25 over the points' texts: one tantivy index per shard, on disk.

Like the FAISS indexes it is derived state: it follows every applied op (upsert,
delete, replacement, TTL expiry, which deletes). It lives in ``<shard dir>/text/``;
every tantivy commit (at the first search after writes, and at each shard checkpoint)
is durable and followed by ``<shard dir>/text.json``, its own checkpoint: the WAL
sequence number it holds, the tantivy commit (opstamp) and its number of texts. On
open (:func:`recover`) the index is reused when it opens whole, at the marker's
commit holding as many texts as the marker says (or at a later commit: a crash came
before its marker), and the WAL entries after the marker's sequence are applied to
it (their texts read from the records: a point's text never changes under its label;
applying is idempotent, so an index ahead of its marker is fine). A missing, torn or damaged
index or marker, or a WAL gap after it, means a rebuild from the texts in RocksDB:
a crash at any point loses nothing. tantivy is the optional extra ``vecdb[hybrid]``;
it is imported only by collections created with ``full_text``.

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
import json
import logging
import os
import shutil
import threading

import numpy as np

from . import wal
from .errors import FailedPrecondition, InvalidArgument
from .storage import U64

log = logging.getLogger("vecdb.fulltext")

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
MARKER = "text.json"  # in the shard directory, beside text/
_FORMAT = 1


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
    """The BM25 index of one shard's texts, keyed by label: in ``directory``/text with
    its marker (see the module docstring), or in RAM (``directory`` None). The caller
    serializes ``apply``/``rebuild`` against ``search``/``commit`` (the shard's
    write/read lock); changes become searchable at the next search (one tantivy commit
    per batch of changes). ``close`` releases the index's writer."""

    def __init__(self, language: str, directory: str | None = None):
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
        self.seq = 0  # the WAL sequence number of the last op applied
        self._marked = -1  # the sequence number the marker on disk holds
        self._dir, self._damaged = directory, False
        self._index = self._open()
        self._index.register_tokenizer("vecdb", self._analyzer)
        self._writer = self._index.writer(15_000_000, 1)
        self._dirty = False
        self._commit_lock = threading.Lock()

    def _open(self):
        if self._dir is None:
            return self._tv.Index(self._schema)
        path = os.path.join(self._dir, "text")
        os.makedirs(path, exist_ok=True)
        try:
            return self._tv.Index(self._schema, path=path)
        except ValueError as e:  # tantivy: a torn or damaged file
            log.warning("text index %s unusable (%s); rebuilding it", path, e)
            shutil.rmtree(path, ignore_errors=True)
            os.makedirs(path)
            self._damaged = True
            return self._tv.Index(self._schema, path=path)

    def load(self) -> int | None:
        """The WAL sequence number the index on disk holds, or None (rebuild it): no
        marker, a marker torn or of another format or language, or an index older than
        the marker's commit or holding another number of texts at that commit."""
        if self._dir is None or self._damaged:
            return None
        try:
            with open(os.path.join(self._dir, MARKER)) as f:
                meta = json.load(f)
            if meta["format"] != _FORMAT or meta["language"] != self.language:
                raise ValueError(f"format {meta['format']}, language {meta['language']}")
            # a commit a crash left without its marker is ahead (replaying is idempotent)
            stamp, docs = self._writer.commit_opstamp, self._index.searcher().num_docs
            if stamp < meta["opstamp"] or (stamp == meta["opstamp"] and docs != meta["docs"]):
                raise ValueError(f"commit {stamp} holding {docs} texts where the marker says "
                                 f"{meta['opstamp']} holding {meta['docs']}")
            self.seq = self._marked = int(meta["seq"])
            return self.seq
        except FileNotFoundError:
            return None
        except (OSError, ValueError, KeyError, TypeError) as e:
            log.warning("text index marker %s unusable (%s); rebuilding the index",
                        os.path.join(self._dir, MARKER), e)
            return None

    def commit(self, marker: bool = False) -> None:
        """Make the applied changes searchable (on disk: durable, then the marker);
        ``marker``: also when only the sequence number moved (ops without texts), so
        the marker never lags behind the WAL a shard checkpoint truncates."""
        if not self._dirty and not (marker and self._dir is not None and self._marked != self.seq):
            return
        with self._commit_lock:  # concurrent readers: one commits
            changed = self._dirty
            if changed:
                self._writer.commit()
                self._index.reload()
                self._dirty = False
            if self._dir is not None and (changed or self._marked != self.seq):
                self._write_marker()

    def _write_marker(self) -> None:
        meta = {"format": _FORMAT, "language": self.language, "seq": self.seq,
                "opstamp": self._writer.commit_opstamp, "docs": self._index.searcher().num_docs}
        path = os.path.join(self._dir, MARKER)
        with open(path + ".tmp", "w") as f:
            json.dump(meta, f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(path + ".tmp", path)
        fd = os.open(self._dir, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        self._marked = meta["seq"]

    def close(self) -> None:
        """Release the writer (its lock on the directory); the index is not used after."""
        self._writer = None

    def terms(self, text: str) -> list[str]:
        """The distinct query terms of ``text``, in first-seen order."""
        return list(dict.fromkeys(self._analyzer.analyze(text)))

    def apply(self, removed: np.ndarray, added: np.ndarray, texts: list | None, seq: int = 0) -> None:
        """Remove ``removed`` labels, index ``added`` with their texts (utf-8 bytes, str or
        None); ``seq``: the op's WAL sequence number."""
        self.seq = max(self.seq, seq)
        for lab in np.asarray(removed).tolist():
            self._writer.delete_documents_by_term("label", lab)
        if texts:
            for lab, t in zip(np.asarray(added).tolist(), texts):
                if t:
                    self._add(lab, t.decode("utf-8", "replace") if isinstance(t, bytes) else t)
        self._dirty = self._dirty or bool(len(removed)) or bool(texts)

    def rebuild(self, pairs, seq: int = 0) -> None:
        """Index exactly the (label, text) pairs given (recovery from RocksDB at ``seq``)."""
        self.seq = seq
        self._writer.delete_all_documents()
        for lab, text in pairs:
            if text:
                self._add(lab, text)
        self._dirty = True

    def _add(self, label: int, text: str) -> None:
        self._writer.add_document(self._tv.Document(label=label, text=text))

    def _searcher(self):
        self.commit()
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


class FieldText:
    """BM25 over the strings of one payload field: the part a ``text`` payload index of
    a ``full_text`` collection adds (vecdb/payload_index.py FieldIndex), in RAM and,
    like the payload indexes, rebuilt from the records when the shard opens. A point's
    strings under the field (every one along its path, arrays flattened) are one text,
    joined by line breaks; a point without any is not indexed. Same tokenizer and
    scoring as the point texts; statistics over the points holding the field."""

    def __init__(self, language: str):
        self.index = TextIndex(language)
        self._held: set[int] = set()

    def add(self, label: int, values: list) -> None:
        text = "\n".join(v for v in values if isinstance(v, str))
        if text:
            self.index.apply(np.zeros(0, np.int64), np.array([label], np.int64), [text])
            self._held.add(label)

    def remove(self, label: int) -> None:
        if label in self._held:
            self._held.discard(label)
            self.index.apply(np.array([label], np.int64), np.zeros(0, np.int64), None)

    def lookup(self, c) -> None:
        """Filters are answered by the field's token index, not here."""
        return None

    def within(self, c, labels) -> None:
        return None


def recover(shard) -> None:
    """Bring ``shard.text_index`` to the shard's last sequence number: its checkpoint
    plus the WAL entries after it, else a rebuild from the records (module docstring)."""
    ti, prefix = shard.text_index, shard.prefix
    seq = ti.load()
    if seq is not None and seq <= shard.last_seq:
        expect = seq + 1
        for key, raw in shard.store.scan(prefix + b"w" + U64.pack(expect), prefix + b"x"):
            if U64.unpack(key[-8:])[0] != expect:
                break
            e = wal.decode(raw)
            added = np.asarray(e.added, np.int64)
            texts = {lab: txt for lab, _, _, txt in shard.iter_records(added)}
            # the added labels are removed first: the index may hold them already
            ti.apply(np.concatenate([np.asarray(e.removed, np.int64), added]), added,
                     [texts.get(lab) for lab in added.tolist()], expect)
            expect += 1
        if expect == shard.last_seq + 1:
            ti.commit()
            log.info("text index of shard %s/%d: checkpoint %d and %d WAL entries after it",
                     shard.config.name, shard.number, seq, expect - seq - 1)
            return
        log.warning("text index of shard %s/%d: WAL gap after its checkpoint %d; rebuilding it",
                    shard.config.name, shard.number, seq)
    ti.rebuild(((lab, txt) for lab, _, _, txt in shard.iter_records()), shard.last_seq)
    ti.commit()
    log.info("text index of shard %s/%d: rebuilt from the records", shard.config.name, shard.number)
