"""Model migration without downtime: re-embed a collection into a new one, swap an alias.

``Database.reembed(source, encoder, alias)`` creates the target collection with the
new encoder, and one background thread then

1. scrolls the source in id order and copies each page: the stored texts are
   embedded with the new encoder ("document" kind); ids, texts, payloads and
   TTLs (the exact expiry instant) are written as they are;
2. replays the ids the source wrote or deleted meanwhile (the source records
   them while a job runs), in rounds, until few are left;
3. under the source's write lock (writers to the source wait; readers never do):
   replays the last ones and atomically points ``alias`` at the target;
4. waits for writes that resolved the alias just before the swap to finish and
   replays those too, then stops recording.

Readers that go through the alias see the source until the swap and the target
after it: never an error, never a partial collection. Writes through the alias
keep working throughout. A point without a text cannot be re-embedded: the job
fails (state "failed", the error names the id), the alias is not touched, and the
half-built target stays for inspection (drop it, fix the data, start again).
Progress lives in memory (describe_collection(...).reembed on the source and the
target); a job interrupted by a restart does not resume: drop the target and call
reembed again.
"""
from __future__ import annotations

import logging
import re
import time

from . import validation
from .errors import NotFound
from .jobs import Job, Stopped

log = logging.getLogger("vecdb")
FINAL_ROUND = 32  # ids replayed under the source's write lock at the swap, at most about


def target_name(source: str, encoder: str) -> str:
    """``<source>__<encoder>`` made a valid collection name (64 characters at most)."""
    tail = encoder.rstrip("/").rsplit("/", 1)[-1].rsplit(":", 1)[-1]  # model / directory name
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", tail)
    slug = slug.strip("-_") or "encoder"
    return f"{source}__{slug}"[:64]


class Reembed(Job):
    def __init__(self, db, source, target, encoder: str, alias: str, batch_size: int):
        super().__init__(db, f"vecdb-reembed-{source.config.name}")
        self.src, self.tgt = source, target
        self.encoder, self.alias, self.batch_size = encoder, alias, batch_size
        self.source, self.target = source.config.name, target.config.name
        self.done = self.caught_up = 0
        self.total = source.count()
        self.started = time.time()
        source.start_recording()

    def progress(self) -> dict:
        return {"source": self.source, "target": self.target, "encoder": self.encoder,
                "alias": self.alias, "state": self.state, "done": self.done, "total": self.total,
                "caught_up": self.caught_up, "error": self.error}

    # ---- the job ------------------------------------------------------------------
    def what(self) -> str:
        return f"re-embedding {self.source} into {self.target}"

    def finish(self) -> None:
        self.src.stop_recording()

    def work(self) -> None:
        t0 = time.monotonic()
        log.info("re-embedding %s into %s with %s (%d points); alias %s swaps when done",
                 self.source, self.target, self.encoder, self.total, self.alias)
        cursor = None
        while True:
            self._check()
            page = self.src.scroll(self.batch_size, cursor, False, False)
            self.done += self._copy([p.id for p in page.points])
            cursor = page.next_cursor
            if cursor is None:
                break
        while True:  # catch up with writes made meanwhile, round by round
            self._check()
            pending = self.src.take_recorded()
            if len(pending) <= FINAL_ROUND:
                self._copy(pending)
                self.caught_up += len(pending)
                break
            for i in range(0, len(pending), self.batch_size):
                self._copy(pending[i:i + self.batch_size])
            self.caught_up += len(pending)
        # catalog lock first, then the write lock: the order recover_storage uses
        with self.db.catalog.lock, self.src.write_lock:  # source writers wait, readers do not
            self._check()
            pending = self.src.take_recorded()
            self._copy(pending)
            self.caught_up += len(pending)
            if self.tgt.tenants is not None:  # the quotas as they are at the swap
                self.tgt.tenants.copy_quotas(self.src.tenants)
            self.db.set_alias(self.alias, self.target)
        self._drain()
        log.info("re-embedded %s into %s in %.1fs (%d points, %d replayed); alias %s -> %s",
                 self.source, self.target, time.monotonic() - t0, self.done, self.caught_up,
                 self.alias, self.target)

    def _drain(self) -> None:
        """Writes that resolved the alias to the source just before the swap: wait for them
        (at most 10 s), then replay what they changed."""
        deadline = time.monotonic() + 10.0
        while self.src.writers_inflight and time.monotonic() < deadline:
            time.sleep(0.005)
        with self.src.write_lock:
            pending = self.src.take_recorded()
            self._copy(pending)
            self.caught_up += len(pending)

    def _check(self) -> None:
        self.check_closing()
        if self.src.retired:
            raise Stopped(f"source collection {self.source!r} was dropped")
        if self.tgt.retired:
            raise Stopped(f"target collection {self.target!r} was dropped")

    def _copy(self, ids: list[str]) -> int:
        """Copy these ids' current state from the source (deleting the ones gone)."""
        if not ids:
            return 0
        points, expire = self.src._current(ids)
        found = {p.id for p in points}
        gone = [pid for pid in ids if pid not in found]
        if gone:
            with self.tgt.write_lock:
                self.tgt._delete_locked(gone)
        if not points:
            return 0
        missing = next((p.id for p in points if not p.text), None)
        if missing is not None:
            raise Stopped(f"point {missing!r} has no text to re-embed")
        n, opts = len(points), self.tgt.options
        vecs = self.tgt._vectors(self.tgt._embed([p.text for p in points], "document"), n)
        pays = validation.payloads([p.payload for p in points], n, opts.max_payload_bytes)
        txts = [p.text.encode("utf-8", "surrogatepass") for p in points]
        with self.tgt.adding():
            if self.tgt.retired:
                raise NotFound(f"target collection {self.target!r} was dropped", "collection")
            moved = [] if self.tgt.tenants is None else self.tgt.tenants.others(points)
            if moved:  # re-created in another tenant since copied: a point never moves
                self.tgt._delete_locked(moved)
            self.tgt._upsert_locked([p.id for p in points], vecs, pays, txts, expire)
        return n
