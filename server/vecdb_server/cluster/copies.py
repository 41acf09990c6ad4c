"""Copies of a shard to a replica in progress on this node (their primary): what each
has sent, for `vecdbctl cluster status`, and the bandwidth limit of the copies that
move a replica (rebalance_max_bytes_per_s, docs/cluster.md "Rebalancing").

A copy counts the bytes of the requests it sends to the replica (the serialized pages
of a full copy and the replication-log entries replayed after it, the entries of an
incremental catch-up) and the records in them (the points of a full copy: its entries
count as bytes only; or log entries). A move's copy is paced by one Throttle per node,
shared by all its move copies: after each request it sleeps until the bytes sent so far
(since the copy's previous request) fit the limit, so a copy of B bytes takes at least B / limit seconds (one request of up
to 2,000 points goes at full speed, then the pause). Catch-ups that are not moves (a
restarted or wiped replica: redundancy coming back) are not throttled, nor the replay of
the writes made during a full copy (once its pages are sent: it must catch the writes). A move's copy
is logged when it ends: bytes, records, seconds, the rate and the time paused. A
reshard's page copies (reshard.py) take from the same Throttle between pages.
"""
from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field
from typing import Callable

log = logging.getLogger("vecdb_server.cluster")
Key = tuple[str, int, str]  # collection, shard, target node


class Throttle:
    """Paces sends to ``bytes_per_s`` on average (0 = no limit)."""

    def __init__(self, bytes_per_s: int, sleep: Callable[[float], None] = time.sleep,
                 clock: Callable[[], float] = time.monotonic):
        self.rate, self._sleep, self._clock = bytes_per_s, sleep, clock
        self._free_at = 0.0  # when everything taken so far has gone at the rate
        self._lock = threading.Lock()
        self.sleeps, self.slept_s = 0, 0.0

    def take(self, n: int, since: float) -> float:
        """Account ``n`` bytes sent since ``since`` (a clock reading); sleep until they
        fit the rate. Returns the wait."""
        if self.rate <= 0:
            return 0.0
        with self._lock:
            now = self._clock()
            self._free_at = max(since, self._free_at) + n / self.rate
            wait = self._free_at - now
            if wait > 0:
                self.sleeps += 1
                self.slept_s += wait
        if wait > 0:
            self._sleep(wait)
        return max(0.0, wait)


@dataclass
class Copy:
    collection: str
    shard: int
    target: str
    move: bool  # a move's copy (logged when it ends)
    throttle: Throttle | None  # a move's copy under a limit: paced
    kind: str = "incremental"  # or "full"
    total: int = 0  # points at the primary when a full copy began (0: incremental)
    sent_bytes: int = 0
    records: int = 0
    slept_s: float = 0.0
    started: float = field(default_factory=time.monotonic)
    mark: float = field(default_factory=time.monotonic)  # since the last sent()

    def restart(self, kind: str, total: int) -> None:
        """The catch-up goes on as a ``kind`` copy of ``total`` points: counted anew."""
        self.kind, self.total, self.sent_bytes, self.records = kind, total, 0, 0
        self.slept_s = 0.0
        self.started = self.mark = time.monotonic()

    def sent(self, nbytes: int, records: int, pace: bool = True) -> None:
        """A request of ``nbytes`` holding ``records`` went to the target; ``pace``: may
        wait for the limit (not under the shard's write lock of a catch-up's last step)."""
        self.sent_bytes += nbytes
        self.records += records
        if pace and self.throttle is not None:
            self.slept_s += self.throttle.take(nbytes, self.mark)
        self.mark = time.monotonic()


class Copies:
    """The copies this node is making now, by (collection, shard, target)."""

    def __init__(self, is_move: Callable[[str, int, str], bool]):
        self.is_move = is_move  # (collection, shard, target): a move's copy?
        self.throttle = Throttle(0)  # set by limit()
        self._now: dict[Key, Copy] = {}
        self._lock = threading.Lock()

    def limit(self, bytes_per_s: int) -> None:
        self.throttle = Throttle(bytes_per_s)

    def begin(self, collection: str, shard: int, target: str) -> Copy:
        """A catch-up of ``target`` starts (incremental until restart says otherwise)."""
        move = self.is_move(collection, shard, target)
        cp = Copy(collection, shard, target, move,
                  self.throttle if move and self.throttle.rate > 0 else None)
        with self._lock:
            self._now[(collection, shard, target)] = cp
        return cp

    def end(self, cp: Copy) -> None:
        with self._lock:
            if self._now.get((cp.collection, cp.shard, cp.target)) is cp:
                del self._now[(cp.collection, cp.shard, cp.target)]
        if cp.move and cp.sent_bytes:
            took = time.monotonic() - cp.started
            log.info("move copy of %s/%d to %s (%s): %d bytes, %d records in %.2f s "
                     "(%.0f bytes/s; limit %d, paused %.2f s)", cp.collection, cp.shard,
                     cp.target, cp.kind, cp.sent_bytes, cp.records, took,
                     cp.sent_bytes / took if took > 0 else 0.0,
                     cp.throttle.rate if cp.throttle else 0, cp.slept_s)

    def now(self) -> list[Copy]:
        with self._lock:
            return list(self._now.values())
