"""A shard's point ids by label, in RAM: search hits get their ids without RocksDB.

A read-through cache over the point records (records.py): hydration learns the id of
every label whose record it reads, and whether that record holds a payload or a text
("plain" when it holds neither). Ids-only answers, and answers with payloads over plain
points, then read nothing from RocksDB. A label's id never changes while the label
lives (an upsert of the same id takes a new label) and labels are never reused, so a
learned entry stays true until its label is removed (Shard.apply forgets removed
labels) or its payload is replaced (apply_payloads). A read that overlapped such a
change is not learned: every forget moves ``epoch`` on.

Compact: the ids in one str (a hit's id is a slice of it: no decoding per hit), and per
label (sorted int64 labels) one int64 entry, offset << 16 | plain bit | length in
characters (16 bytes a point beside its id); new entries wait in a small dict, appended
to the arrays once it grows. Only labels read since the shard was opened are held, and
only while they live.
"""
from __future__ import annotations

import sys
import threading

import numpy as np

from . import records

_PLAIN = 0x8000  # entry bit: the record holds neither a payload nor a text
_LEN = 0x7FFF    # entry bits: the id's length in characters (ids are at most 512 bytes)
_GONE = -1       # entry of a forgotten label (dropped at the next merge)
_END = np.iinfo(np.int64).max  # the last label: searchsorted never runs past the arrays
_MERGE_MIN = 1024  # pending entries before a merge, at least (else 1/8 of the arrays)
_SMALL = 64  # lookups of at most this many labels go entry by entry (lookup)


class IdColumn:
    def __init__(self):
        self._lock = threading.Lock()
        self._labels = np.array([_END], np.int64)  # sorted, _END last
        self._entries = np.array([_GONE], np.int64)
        self._text = ""  # the ids of the arrays' entries, end to end
        self._garbage = 0  # characters of _text whose entries were forgotten
        self._pending: dict[int, tuple[str, bool]] = {}  # label -> (id, plain)
        self._has_plain = False  # a plain entry was ever learned
        self.epoch = 0

    @property
    def nbytes(self) -> int:
        """RAM held (the pending dict counted at ~120 bytes an entry)."""
        return (sys.getsizeof(self._text) + self._labels.nbytes + self._entries.nbytes
                + 120 * len(self._pending))

    def _entries_of(self, labels: np.ndarray) -> np.ndarray:
        """The entry of each label in the arrays, _GONE where none (lock held)."""
        pos = np.searchsorted(self._labels, labels)
        return np.where(self._labels[pos] == labels, self._entries[pos], _GONE)

    def _find(self, labels: np.ndarray) -> list[int]:
        return self._entries_of(labels).tolist()

    def lookup(self, labels: np.ndarray, with_payload: bool
               ) -> tuple[list[str | None], list[bool] | None]:
        """(ids, known) of ``labels``. ids: the id where the column answers for the label
        (known; and, ``with_payload``, known to have no payload or text), else None (the
        record is to be read). known: whether the column holds each label; None when it
        was not looked up at all (payloads wanted and no plain point known yet)."""
        n = len(labels)
        if with_payload and not self._has_plain:
            return [None] * n, None
        mask = _PLAIN if with_payload else 0
        with self._lock:
            if n <= _SMALL:  # a query's hits: per-entry Python beats numpy's call overheads
                entries, text = self._find(labels), self._text
                ids = [text[e >> 16:(e >> 16) + (e & _LEN)] if e >= 0 and e & mask == mask
                       else None for e in entries]
                known = [e >= 0 for e in entries]
            else:  # a batch's: the bounds in numpy, the slices in one pass
                ids, known = self._lookup_many(labels, mask)
            if self._pending:
                get = self._pending.get
                for j, lab in enumerate(labels.tolist()):
                    if not known[j] and (got := get(lab)) is not None:
                        known[j] = True
                        if got[1] or not with_payload:
                            ids[j] = got[0]
        return ids, known

    def _lookup_many(self, labels: np.ndarray, mask: int) -> tuple[list, list[bool]]:
        entries = self._entries_of(labels)
        text, known = self._text, entries >= 0
        ok = known & ((entries & mask) == mask) if mask else known
        starts = entries >> 16
        bounds = zip(starts.tolist(), (starts + (entries & _LEN)).tolist())
        if ok.all():  # the usual case: every hit known (no test per hit)
            return [text[a:b] for a, b in bounds], known.tolist()
        return [text[a:b] if k else None for (a, b), k in zip(bounds, ok.tolist())], known.tolist()

    def learn(self, labels: list[int], raws: list[bytes], epoch: int) -> None:
        """Records ``raws`` (none None) of ``labels``, read when ``epoch`` was current."""
        with self._lock:
            if epoch != self.epoch:  # a label may have been removed or rewritten meanwhile
                return
            known = self._find(np.asarray(labels, np.int64))  # learned by another thread?
            for lab, raw, e in zip(labels, raws, known):
                if e < 0:
                    pid, plain = records.head(raw)
                    self._pending[lab] = (pid.decode(), plain)
                    self._has_plain = self._has_plain or plain
            if len(self._pending) >= max(_MERGE_MIN, len(self._labels) >> 3):
                self._merge()

    def forget(self, labels) -> None:
        """Labels removed, or whose records were rewritten: not known any more."""
        if not len(labels):
            return
        labels = np.asarray(labels, np.int64)
        with self._lock:
            self.epoch += 1
            pos = np.unique(np.searchsorted(self._labels, labels))
            pos = pos[np.isin(self._labels[pos], labels) & (self._entries[pos] >= 0)]
            self._garbage += int((self._entries[pos] & _LEN).sum())
            self._entries[pos] = _GONE
            for lab in labels.tolist():
                self._pending.pop(lab, None)

    def _merge(self) -> None:
        """The pending entries into the arrays, forgotten ones dropped; the text rewritten
        once more than half of it is garbage (lock held)."""
        keep = self._entries >= 0
        labels, entries = self._labels[keep], self._entries[keep]  # _END's entry is _GONE
        ids = [pid for pid, _ in self._pending.values()]
        lens = np.fromiter(map(len, ids), np.int64, len(ids))
        plain = np.fromiter((p for _, p in self._pending.values()), bool, len(ids))
        new = ((len(self._text) + np.cumsum(lens) - lens) << 16) | lens | (plain * _PLAIN)
        labels = np.concatenate([labels, np.fromiter(self._pending, np.int64, len(ids))])
        entries = np.concatenate([entries, new])
        self._text += "".join(ids)
        if self._garbage * 2 > len(self._text):
            starts, lens = entries >> 16, entries & _LEN
            text = self._text
            self._text = "".join([text[a:a + n] for a, n in zip(starts.tolist(), lens.tolist())])
            entries = ((np.cumsum(lens) - lens) << 16) | (entries & 0xFFFF)
            self._garbage = 0
        order = np.argsort(labels, kind="stable")
        self._labels = np.append(labels[order], _END)
        self._entries = np.append(entries[order], _GONE)
        self._pending = {}
