"""Idempotency keys of writes (docs/cluster.md "Retries and idempotency keys").

The SDK sends one key per write call (x-vecdb-idempotency-key, the same on every
retry). Each shard part is recorded under (its replica's local name, key) with a
digest of the client's request (the router sends it with each part) and the primary's
answer to the part: by the primary when it acknowledges, and by every in-sync replica
when it applies the replicated write (the primary sends the record along), so a primary
elected after a failover knows the keys its predecessor acknowledged. A write whose key
is recorded is not applied again: the recorded answer is returned (a different request
under the same key is INVALID_ARGUMENT). A replica
rebuilt by a full copy gets the primary's records instead of its own (its data is
replaced by the primary's); one caught up from the primary's replication log gets those
of the writes it receives (the log keeps each write's record: catchup.py).

Records live in a small RocksDB beside the engine's (<data dir>/cluster-write-keys),
written through its WAL without an fsync of their own: they survive a killed process,
not a power loss of every replica at once. Kept for WINDOW_S and at most MAX_KEYS per
node (every shard copy on it together), oldest dropped first: under heavy keyed write
load the effective window is MAX_KEYS writes' worth, which can be seconds; /metrics
shows it (vecdb_cluster_write_keys_oldest_age_seconds, Collector below).
"""
from __future__ import annotations

import hashlib
import json
import os
import threading
import time
from collections import OrderedDict

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from rocksdict import Rdict, WriteBatch

from vecdb.errors import InvalidArgument

HEADER = "x-vecdb-idempotency-key"
RECORD = "x-vecdb-write-record"  # primary -> replicas: "<digest> <answer, base64>"
DIGEST = "x-vecdb-write-digest"  # router -> primary: digest() of the client's request
DIR = "cluster-write-keys"
WINDOW_S = 24 * 3600.0
MAX_KEYS = 200_000
MAX_KEY_LEN = 128


def key_of(metadata: object) -> str | None:
    """The call's idempotency key, checked; None without one."""
    key = next((v for k, v in (metadata or ()) if k == HEADER and isinstance(v, str)), None)
    if key is None:
        return None
    if not key or len(key) > MAX_KEY_LEN or not key.isascii() or not key.isprintable():
        raise InvalidArgument(f"the idempotency key must be 1..{MAX_KEY_LEN} printable ASCII "
                              f"characters, got {key[:MAX_KEY_LEN + 1]!r}", HEADER)
    return key


def derived(key: str, part: int) -> str:
    """The key of part ``part`` of a keyed stream (the same for every retry of it)."""
    return hashlib.sha256(f"{key}/{part}".encode()).hexdigest()[:32]


def digest(method: str, request: object) -> str:
    """What a key stands for: the RPC and the client's request (all of it: every shard
    part of the call is recorded with this digest; the router that splits the call sends
    it to each primary)."""
    body = request.SerializeToString(deterministic=True)  # type: ignore[attr-defined]
    return hashlib.sha256(method.encode() + b"\0" + body).hexdigest()[:32]


class WriteKeys:
    def __init__(self, data_dir: str):
        os.makedirs(data_dir, exist_ok=True)
        self._db = Rdict(os.path.join(data_dir, DIR))
        self._lock = threading.Lock()
        self._mem: OrderedDict[str, tuple[float, str, str]] = OrderedDict()
        rows = []
        for k, v in self._db.items():
            t, d, answer = json.loads(v)
            rows.append((t, k, d, answer))
        for t, k, d, answer in sorted(rows):
            self._mem[k] = (t, d, answer)
        self._prune(time.time())

    def get(self, local: str, key: str, want: str) -> str | None:
        """The recorded answer (base64) of ``key`` on this shard replica, or None. A record
        with another digest: INVALID_ARGUMENT (the key was used for another request)."""
        with self._lock:
            got = self._mem.get(f"{local}\0{key}")
        if got is None or got[0] < time.time() - WINDOW_S:
            return None
        if got[1] != want:
            raise InvalidArgument(f"idempotency key {key!r} was used for a different write "
                                  "(each write call needs its own key)", HEADER)
        return got[2]

    def put(self, local: str, key: str, want: str, answer: str,
            at: float | None = None) -> None:
        """Record ``key``; ``at``: when the primary recorded it (a full copy's records)."""
        self.put_many([(local, key, want, answer)], at)

    def put_many(self, records: list[tuple[str, str, str, str]],
                 at: float | None = None) -> None:
        """Record several (local, key, digest, answer) in one write."""
        now, wb = time.time(), WriteBatch()
        rows = [(f"{local}\0{key}", (at or now, want, answer))
                for local, key, want, answer in records]
        for name, row in rows:
            wb.put(name, json.dumps(list(row)))
        with self._lock:
            self._db.write(wb)
            for name, row in rows:
                self._mem[name] = row
                self._mem.move_to_end(name)
            self._prune(now)

    def oldest(self) -> tuple[int, float | None]:
        """How many records this node keeps, and when the oldest was written."""
        with self._lock:
            first = next(iter(self._mem.values()), None)
            return len(self._mem), None if first is None else first[0]

    def records(self, local: str) -> list[tuple[str, float, str, str]]:
        """(key, recorded at, digest, answer) of every record of a replica in the window
        (what a full copy of it carries)."""
        prefix, since = f"{local}\0", time.time() - WINDOW_S
        with self._lock:
            return [(n[len(prefix):], t, d, a) for n, (t, d, a) in self._mem.items()
                    if n.startswith(prefix) and t >= since]

    def forget(self, local: str) -> None:
        """Drop every record of a replica (a resync replaces its data: a record of a write
        that copy held but the new data lacks must not answer a retry)."""
        prefix = f"{local}\0"
        with self._lock:
            for name in [n for n in self._mem if n.startswith(prefix)]:
                del self._mem[name]
                del self._db[name]

    def _prune(self, now: float) -> None:
        while self._mem:
            name, (t, _, _) = next(iter(self._mem.items()))
            if len(self._mem) <= MAX_KEYS and t >= now - WINDOW_S:
                return
            del self._mem[name]
            del self._db[name]


class KeysCollector(Collector):
    """The idempotency-key window as /metrics gauges, read at scrape time."""

    def __init__(self, keys: WriteKeys):
        self._keys = keys

    def describe(self) -> list:
        return []

    def collect(self) -> list[GaugeMetricFamily]:
        count, oldest = self._keys.oldest()
        age = GaugeMetricFamily(
            "vecdb_cluster_write_keys_oldest_age_seconds", "age of the oldest idempotency-key "
            "record this node keeps: the window in which a retried write is applied once "
            f"(at most {WINDOW_S:g} s; shorter once {MAX_KEYS} records are kept)")
        age.add_metric([], 0.0 if oldest is None else max(0.0, time.time() - oldest))
        n = GaugeMetricFamily("vecdb_cluster_write_keys", "idempotency-key records this "
                              f"node keeps (every shard copy together, at most {MAX_KEYS})")
        n.add_metric([], count)
        return [age, n]
