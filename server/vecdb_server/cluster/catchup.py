"""The replication log: what an incremental catch-up streams (docs/cluster.md "Catch-up").

Every node records each write it applies to a shard copy, under the key the primary
gave it: (term, n), the primary's term and the write's number within that term. The
value is the complete mutation as replicas apply it (the replicable request: records,
payloads, texts with their vectors, TTLs, deletes), the wall time it was first applied
(a TTL is replayed with what is left of it), the idempotency-key record if the write had
one, and this node's engine sequence after it. A term has one primary, so two copies
holding the same key hold the same write, and a copy's position (its last key) names its
whole history: a replica whose position is in the primary's log lacks exactly the
entries after it. A position the primary's log no longer holds (pruned, or a write of an
older term the primary never had: never acknowledged) means a full copy.

Kept per copy: at most ``retain`` entries (the engine's ``wal_retain``) and MAX_BYTES,
oldest dropped first; the ``floor`` is the position just before the oldest entry kept.
Written to a small RocksDB beside the engine's (<data dir>/cluster-repl-log) through its
WAL without an fsync of its own (it survives a killed process), after the engine applied
the write.
"""
from __future__ import annotations

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
HEAD = struct.Struct("<dQ")  # written at (ms since the epoch), engine seq after the write
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
        # local -> (floor, engine seq at the floor, deque of (key, bytes, engine seq))
        self._copies: dict[str, tuple[list, deque]] = {}

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
        return got

    def position(self, local: str) -> tuple[Pos, int]:
        """The copy's last key and the engine sequence recorded with it."""
        with self._lock:
            floor, keys = self._copy(local)
            return (keys[-1][0], keys[-1][2]) if keys else ((floor[0], floor[1]), floor[2])

    def append(self, local: str, key: Pos, method: str, request: Any, engine_seq: int,
               written_ms: float | None = None, record: tuple[str, str] | None = None) -> None:
        rec = "\n".join(record) if record else ""  # a key is printable: no newline
        value = b"".join([HEAD.pack(written_ms or time.time() * 1000, engine_seq),
                          f"{method}\0{request.DESCRIPTOR.full_name}\0{rec}\0".encode(),
                          request.SerializeToString()])
        with self._lock:
            floor, keys = self._copy(local)
            self._db[self._prefix(local) + KEY.pack(*key)] = value
            keys.append((key, len(value), engine_seq))
            total = sum(size for _, size, _ in keys)  # one pass: few thousand entries at most
            while keys and (len(keys) > self.retain or total > self.max_bytes):
                old, size, seq = keys.popleft()
                total -= size
                floor[:] = [old[0], old[1], seq]
                self._db[b"f" + local.encode()] = KEY.pack(*old) + struct.pack("<Q", seq)
                del self._db[self._prefix(local) + KEY.pack(*old)]

    def entries_after(self, local: str, pos: Pos, limit: int) -> list[Entry] | None:
        """Up to ``limit`` entries after ``pos``, oldest first; None when this log cannot
        tell what follows ``pos`` (not the floor nor a key it holds)."""
        with self._lock:
            floor, keys = self._copy(local)
            if pos != (floor[0], floor[1]) and not any(k == pos for k, _, _ in keys):
                return None
            prefix = self._prefix(local)
            out = []
            for k, v in self._db.items(from_key=prefix + KEY.pack(*pos)):
                if not k.startswith(prefix) or len(out) >= limit:
                    break
                key = KEY.unpack(k[len(prefix):])
                if key == pos:
                    continue
                out.append(_decode(key, v))
            return out

    def reset(self, local: str, floor: Pos = (0, 0), engine_seq: int = 0) -> None:
        """Forget the copy's entries: its data is now ``floor``'s (a full copy; (0, 0):
        a new, empty copy)."""
        with self._lock:
            _, keys = self._copy(local)
            for key, _, _ in keys:
                del self._db[self._prefix(local) + KEY.pack(*key)]
            self._db[b"f" + local.encode()] = KEY.pack(*floor) + struct.pack("<Q", engine_seq)
            self._copies[local] = ([floor[0], floor[1], engine_seq], deque())

    def drop(self, local: str) -> None:
        """The copy is gone: its entries and floor too."""
        self.reset(local)
        with self._lock:
            del self._db[b"f" + local.encode()]
            self._copies.pop(local, None)

    def close(self) -> None:
        self._db.close()


def _decode(key: Pos, raw: bytes) -> Entry:
    written_ms, _ = HEAD.unpack_from(raw)
    off = HEAD.size
    parts = []
    for _ in range(3):
        end = raw.index(b"\0", off)
        parts.append(raw[off:end].decode())
        off = end + 1
    method, type_name, rec = parts
    request = REQUESTS[type_name].FromString(raw[off:])
    key_, _, record = rec.partition("\n")
    return Entry(key, method, request, written_ms, (key_, record) if rec else None)
