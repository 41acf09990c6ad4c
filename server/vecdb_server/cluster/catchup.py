"""The replication log: what an incremental catch-up streams (docs/cluster.md "Catch-up").

Every node records each write it applies to a shard copy, under the key the primary
gave it: (term, n), the primary's term and the write's number within that term. The
value is the complete mutation as replicas apply it (the replicable request: records,
payloads, texts with their vectors, TTLs, deletes), the wall time it was first applied
(a TTL is replayed with what is left of it), the idempotency-key record if the write had
one (beside it: the primary knows it only once applied), and this node's engine sequence
before it. A term has one primary, so two copies
holding the same key hold the same write, and a copy's position (its last key) names its
whole history: a replica whose position is in the primary's log lacks exactly the
entries after it. A position the primary's log no longer holds (pruned, or a write of an
older term the primary never had: never acknowledged) means a full copy.

Kept per copy: at most ``retain`` entries (the engine's ``wal_retain``) and MAX_BYTES,
oldest dropped first; the ``floor`` is the position just before the oldest entry kept.
Written to a small RocksDB beside the engine's (<data dir>/cluster-repl-log) through its
WAL without an fsync of its own (it survives a killed process), before the engine applies
the write: a last entry whose write the engine lacks (its sequence is still the one
before) is applied again when the copy is next used (router.Router._settle).

A key is never given twice: an entry dropped (its write refused) leaves its key as the
copy's high-water mark (kept on disk), and the next key follows it, so a replica that was
sent the dropped entry is found not in this log (a full copy) instead of taking a later
write with the same key for one it holds. An entry appended ``pending`` (the primary's,
before its engine write) is not read by entries_after until ``commit`` (its write done,
its request final) or dropped.

A full copy taken while writes go on (router.Router._full_copy) ``pin``s the position it
starts from: entries after it are kept past ``retain`` (not past MAX_BYTES) until it is
unpinned, so the replay of the writes made during the copy finds them all. A ``reset``
(the copy's history starts over: e.g. a write made while the shard had no other replica,
which is not logged) drops the pins of the copy; ``pinned`` then says so.
"""
from __future__ import annotations

import bisect
import os
import struct
import threading
import time
from collections import deque
from typing import Any

from rocksdict import Options, Rdict
from vecdb_client._proto.vecdb.v1 import points_pb2 as ppb

DIR = "cluster-repl-log"
MAX_BYTES = 256 << 20  # per shard copy
KEY = struct.Struct(">QQ")  # term, n (big-endian: RocksDB order is history order)
HEAD = struct.Struct("<dQ")  # written at (ms since the epoch), engine seq before the write
REQUESTS = {c.DESCRIPTOR.full_name: c for c in (
    ppb.UpsertRequest, ppb.DeleteRequest, ppb.UpdatePayloadRequest, ppb.UpdateVectorsRequest)}
Pos = tuple[int, int]


def parse(text: str) -> Pos:
    term, _, n = text.partition(" ")
    return int(term), int(n)


def show(pos: Pos) -> str:
    return f"{pos[0]} {pos[1]}"


def next_key(last: Pos, term: int) -> Pos:
    """The key the primary of ``term`` gives its next write after position ``last``."""
    return (term, last[1] + 1) if last[0] == term else (term, 1)


class Entry:
    __slots__ = ("key", "method", "request", "written_ms", "record")

    def __init__(self, key: Pos, method: str, request: Any, written_ms: float,
                 record: tuple[str, str] | None):
        self.key, self.method, self.request = key, method, request
        self.written_ms, self.record = written_ms, record

    def replayed(self) -> Any:
        """The request to send now: a TTL keeps only what is left of it."""
        ttls = getattr(getattr(self.request, "points", None), "ttl_seconds", None)
        if not ttls:
            return self.request
        gone = max(0.0, time.time() * 1000 - self.written_ms) / 1000
        out = type(self.request)()
        out.CopyFrom(self.request)
        out.points.ttl_seconds[:] = [max(0.001, t - gone) if t > 0 else 0.0 for t in ttls]
        return out


class ReplLog:
    def __init__(self, data_dir: str, retain: int, max_bytes: int = MAX_BYTES):
        os.makedirs(data_dir, exist_ok=True)
        self._db = Rdict(os.path.join(data_dir, DIR), Options(raw_mode=True))
        self.retain, self.max_bytes = max(0, retain), max_bytes
        self._lock = threading.Lock()
        # local -> ([floor term, n, engine seq at the floor], deque of (key, bytes, engine
        # seq before the entry))
        self._copies: dict[str, tuple[list, deque]] = {}
        self._high: dict[str, Pos] = {}  # local -> the highest key dropped (never reused)
        self._pending: dict[str, Pos] = {}  # local -> its entry whose write is under way
        self._pins: dict[str, dict[int, Pos]] = {}  # local -> pin token -> position
        self._bytes: dict[str, int] = {}  # local -> the size of its entries kept
        self._tokens = 0

    @staticmethod
    def _prefix(local: str) -> bytes:
        return b"e" + local.encode() + b"\0"

    def _copy(self, local: str) -> tuple[list, deque]:
        got = self._copies.get(local)
        if got is None:
            raw = self._db.get(b"f" + local.encode())
            floor = list(KEY.unpack(raw[:16])) + [struct.unpack("<Q", raw[16:])[0]] \
                if raw else [0, 0, 0]
            keys: deque = deque()
            prefix = self._prefix(local)
            for k, v in self._db.items(from_key=prefix):
                if not k.startswith(prefix):
                    break
                keys.append((KEY.unpack(k[len(prefix):]), len(v), HEAD.unpack_from(v)[1]))
            got = self._copies[local] = (floor, keys)
            self._bytes[local] = sum(size for _, size, _ in keys)
            high = self._db.get(b"h" + local.encode())
            self._high[local] = KEY.unpack(high) if high else (0, 0)
        return got

    def next_key(self, local: str, term: int) -> Pos:
        """The key the primary of ``term`` gives the copy's next write: after its position
        and after any key dropped (a key is never reused)."""
        with self._lock:
            floor, keys = self._copy(local)
            last = keys[-1][0] if keys else (floor[0], floor[1])
            return next_key(max(last, self._high[local]), term)

    def position(self, local: str) -> tuple[Pos, int, bool]:
        """The copy's last key, the engine sequence recorded with it (before that entry;
        at the floor when no entry is kept) and whether it is an entry."""
        with self._lock:
            floor, keys = self._copy(local)
            return (keys[-1][0], keys[-1][2], True) if keys else \
                ((floor[0], floor[1]), floor[2], False)

    def last(self, local: str) -> Entry:
        """The copy's last entry (there is one: see position)."""
        with self._lock:
            _, keys = self._copy(local)
            key = keys[-1][0]
            return _decode(key, self._db[self._prefix(local) + KEY.pack(*key)], None)

    def drop_last(self, local: str) -> None:
        """Remove the last entry (its write was refused: it never happened); its key is
        never given again."""
        with self._lock:
            _, keys = self._copy(local)
            key, size, _ = keys.pop()
            self._bytes[local] -= size
            self._delete(local, key)
            if self._pending.get(local) == key:
                del self._pending[local]
            if key > self._high[local]:
                self._high[local] = key
                self._db[b"h" + local.encode()] = KEY.pack(*key)

    def commit(self, local: str) -> None:
        """The pending entry's write is done and the entry final: catch-ups may read it."""
        with self._lock:
            self._pending.pop(local, None)

    def rewrite(self, local: str, key: Pos, method: str, request: Any, engine_seq: int,
                written_ms: float) -> None:
        """Replace the last entry's request (the primary's texts, now with vectors)."""
        value = _encode(method, request, engine_seq, written_ms)
        with self._lock:
            self._db[self._prefix(local) + KEY.pack(*key)] = value
            _, keys = self._copy(local)
            if keys and keys[-1][0] == key:  # its size as kept (MAX_BYTES counts it)
                self._bytes[local] += len(value) - keys[-1][1]
                keys[-1] = (key, len(value), keys[-1][2])

    def set_record(self, local: str, key: Pos, record: tuple[str, str]) -> None:
        """The idempotency-key record of entry ``key``: (key, "<digest> <answer>")."""
        with self._lock:
            self._db[b"r" + self._prefix(local) + KEY.pack(*key)] = \
                "\n".join(record).encode()  # a key is printable: no newline

    def append(self, local: str, key: Pos, method: str, request: Any, engine_seq: int,
               written_ms: float | None = None, record: tuple[str, str] | None = None,
               pending: bool = False) -> None:
        """``pending``: the write is yet to be applied (see commit)."""
        value = _encode(method, request, engine_seq, written_ms or time.time() * 1000)
        with self._lock:
            floor, keys = self._copy(local)
            if pending:
                self._pending[local] = key
            else:
                self._pending.pop(local, None)
            self._db[self._prefix(local) + KEY.pack(*key)] = value
            keys.append((key, len(value), engine_seq))
            self._bytes[local] += len(value)
            if record:
                self._db[b"r" + self._prefix(local) + KEY.pack(*key)] = \
                    "\n".join(record).encode()
            pin = min(self._pins.get(local, {}).values(), default=None)
            # the newest entry always stays: a refused write drops it, a primary rewrites it
            while len(keys) > 1 and (self._bytes[local] > self.max_bytes or len(keys) >
                                     self.retain and (pin is None or keys[0][0] <= pin)):
                old, size, seq = keys.popleft()
                self._bytes[local] -= size
                floor[:] = [old[0], old[1], seq + 1]  # (only used once no entry is left)
                self._db[b"f" + local.encode()] = KEY.pack(*old) + struct.pack("<Q", seq + 1)
                self._delete(local, old)

    def pin(self, local: str, pos: Pos) -> int:
        """Keep the entries after ``pos`` (see the module doc); a token for unpin."""
        with self._lock:
            self._tokens += 1
            self._pins.setdefault(local, {})[self._tokens] = pos
            return self._tokens

    def unpin(self, local: str, token: int) -> None:
        with self._lock:
            pins = self._pins.get(local, {})
            pins.pop(token, None)
            if not pins:
                self._pins.pop(local, None)

    def pinned(self, local: str, token: int) -> bool:
        """The pin holds: no reset since (every write after its position is logged) and
        no entry after its position dropped (MAX_BYTES prunes past a pin)."""
        with self._lock:
            pos = self._pins.get(local, {}).get(token)
            if pos is None:
                return False
            floor, _ = self._copy(local)
            return (floor[0], floor[1]) <= pos

    def _after(self, local: str, pos: Pos) -> int | None:
        """The index in the copy's keys of the first entry after ``pos``; None when
        ``pos`` is neither the floor nor a key held (keys increase: a bisection)."""
        floor, keys = self._copy(local)
        if pos == (floor[0], floor[1]):
            return 0
        at = bisect.bisect_left(keys, pos, key=lambda k: k[0])
        return at + 1 if at < len(keys) and keys[at][0] == pos else None

    def backlog(self, local: str, pos: Pos) -> int | None:
        """How many entries follow ``pos`` (a pending one included); None as entries_after."""
        with self._lock:
            at = self._after(local, pos)
            return None if at is None else len(self._copy(local)[1]) - at

    def entries_after(self, local: str, pos: Pos, limit: int) -> list[Entry] | None:
        """Up to ``limit`` entries after ``pos``, oldest first, up to a pending one (not
        included); None when this log cannot tell what follows ``pos`` (not the floor nor
        a key it holds)."""
        with self._lock:
            if self._after(local, pos) is None:
                return None
            prefix, pending = self._prefix(local), self._pending.get(local)
            out = []
            for k, v in self._db.items(from_key=prefix + KEY.pack(*pos)):
                if not k.startswith(prefix) or len(out) >= limit:
                    break
                key = KEY.unpack(k[len(prefix):])
                if key == pos:
                    continue
                if key == pending:
                    break
                rec = self._db.get(b"r" + k)
                out.append(_decode(key, v, tuple(rec.decode().split("\n", 1)) if rec else None))
            return out

    def _delete(self, local: str, key: Pos) -> None:
        k = self._prefix(local) + KEY.pack(*key)
        del self._db[k]
        del self._db[b"r" + k]

    def reset(self, local: str, floor: Pos = (0, 0), engine_seq: int = 0) -> None:
        """Forget the copy's entries: its data is now ``floor``'s (a full copy; (0, 0):
        a new, empty copy)."""
        with self._lock:
            _, keys = self._copy(local)
            for key, _, _ in keys:
                self._delete(local, key)
            self._db[b"f" + local.encode()] = KEY.pack(*floor) + struct.pack("<Q", engine_seq)
            self._copies[local] = ([floor[0], floor[1], engine_seq], deque())
            self._bytes[local] = 0
            self._pending.pop(local, None)
            self._pins.pop(local, None)
            self._high[local] = (0, 0)  # the copy's history starts at ``floor``
            del self._db[b"h" + local.encode()]

    def drop(self, local: str) -> None:
        """The copy is gone: its entries and floor too."""
        self.reset(local)
        with self._lock:
            del self._db[b"f" + local.encode()]
            self._copies.pop(local, None)
            self._high.pop(local, None)
            self._bytes.pop(local, None)

    def close(self) -> None:
        self._db.close()


def _encode(method: str, request: Any, engine_seq: int, written_ms: float) -> bytes:
    return b"".join([HEAD.pack(written_ms, engine_seq),
                     f"{method}\0{request.DESCRIPTOR.full_name}\0".encode(),
                     request.SerializeToString()])


def _decode(key: Pos, raw: bytes, record: tuple | None) -> Entry:
    written_ms, _ = HEAD.unpack_from(raw)
    end = raw.index(b"\0", HEAD.size)
    method = raw[HEAD.size:end].decode()
    end2 = raw.index(b"\0", end + 1)
    request = REQUESTS[raw[end + 1:end2].decode()].FromString(raw[end2 + 1:])
    return Entry(key, method, request, written_ms, record)
