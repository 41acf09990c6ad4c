"""A shard's point ids by label, in RAM: search hits get their ids without RocksDB.

A read-through cache over the point records (records.py): hydration learns the id of
every label whose record it reads, and whether that record holds a payload or a text
("plain" when it holds neither). Ids-only answers, and answers with payloads over plain
points, then read nothing from RocksDB. A label's id never changes while the label
lives (an upsert of the same id takes a new label) and labels are never reused, so a
learned entry stays true until its label is removed (Shard.apply forgets removed
labels) or its payload is replaced (apply_payloads). A read that overlapped such a
change is not learned: every forget moves ``epoch`` on.

Compact: the ids' utf-8 bytes in one buffer, and per label (sorted int64 labels) one
int64 entry, offset << 16 | plain bit | length (16 bytes a point beside its id's
bytes); new entries wait in a small dict, merged into the arrays once it grows. Only
labels read since the shard was opened are held, and only while they live.
"""
from __future__ import annotations

import threading

import numpy as np

from . import records

_PLAIN = 0x8000  # entry bit: the record holds neither a payload nor a text
_LEN = 0x7FFF    # entry bits: the id's length in bytes (ids are at most 512)
_GONE = -1       # entry of a forgotten label (dropped at the next merge)
_END = np.iinfo(np.int64).max  # the last label: searchsorted never runs past the arrays
_MERGE_MIN = 1024  # pending entries before a merge, at least (else 1/8 of the arrays)


class IdColumn:
    def __init__(self):
        self._lock = threading.Lock()
        self._labels = np.array([_END], np.int64)  # sorted, _END last
        self._entries = np.array([_GONE], np.int64)
        self._blob = bytearray()
        self._pending: dict[int, int] = {}  # label -> entry
        self._used = 0  # bytes of _blob that known entries use
        self.epoch = 0

    @property
    def nbytes(self) -> int:
        """RAM held (the pending dict counted at ~100 bytes an entry)."""
        return (len(self._blob) + self._labels.nbytes + self._entries.nbytes
                + 100 * len(self._pending))

    def _find(self, labels: np.ndarray) -> list[int]:
        """The entry of each label in the arrays, _GONE where none (lock held)."""
        pos = np.searchsorted(self._labels, labels)
        return np.where(self._labels[pos] == labels, self._entries[pos], _GONE).tolist()

    def lookup(self, labels: np.ndarray) -> tuple[list[str | None], list[bool]]:
        """(ids, plain) of ``labels``: the id, None where not known; plain: the label's
        record is known to hold neither a payload nor a text."""
        with self._lock:
            entries = self._find(labels)
            if self._pending:
                get = self._pending.get
                entries = [e if e >= 0 else get(lab, _GONE)
                           for e, lab in zip(entries, labels.tolist())]
            blob = self._blob
            ids = [None if e < 0 else blob[e >> 16:(e >> 16) + (e & _LEN)].decode()
                   for e in entries]
        return ids, [e >= 0 and e & _PLAIN != 0 for e in entries]

    def learn(self, labels: list[int], raws: list[bytes], epoch: int) -> None:
        """Records ``raws`` (none None) of ``labels``, read when ``epoch`` was current."""
        with self._lock:
            if epoch != self.epoch:  # a label may have been removed or rewritten meanwhile
                return
            known = self._find(np.asarray(labels, np.int64))  # learned by another thread?
            for lab, raw, e in zip(labels, raws, known):
                if e >= 0 or lab in self._pending:
                    continue
                pid, plain = records.head(raw)
                self._pending[lab] = (len(self._blob) << 16) | len(pid) | (_PLAIN if plain else 0)
                self._blob += pid
                self._used += len(pid)
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
            self._used -= int((self._entries[pos] & _LEN).sum())
            self._entries[pos] = _GONE
            for lab in labels.tolist():
                e = self._pending.pop(lab, None)
                if e is not None:
                    self._used -= e & _LEN

    def _merge(self) -> None:
        """The pending entries into the sorted arrays, forgotten ones dropped; the buffer
        rewritten once less than half of it is in use (lock held)."""
        keep = self._entries >= 0
        n = len(self._pending)
        labels = np.concatenate([self._labels[keep], np.fromiter(self._pending, np.int64, n)])
        entries = np.concatenate([self._entries[keep],
                                  np.fromiter(self._pending.values(), np.int64, n)])
        order = np.argsort(labels, kind="stable")
        labels, entries = labels[order], entries[order]
        if self._used * 2 < len(self._blob):
            starts, lens = (entries >> 16).tolist(), entries & _LEN
            blob = self._blob
            self._blob = bytearray(b"".join(blob[s:s + m] for s, m in zip(starts, lens.tolist())))
            entries = ((np.cumsum(lens) - lens) << 16) | (entries & 0xFFFF)
        self._labels = np.append(labels, _END)
        self._entries = np.append(entries, _GONE)
        self._pending = {}
