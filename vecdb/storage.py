"""RocksDB (rocksdict) access: the key layout, the directory lock, batched I/O.

Key layout (all keys bytes, big-endian integers so they sort numerically):

    C<name>                     catalog entry of a collection (JSON)
    A<alias>                    alias -> collection name
    U                           next collection uid (u32)
    D<uid:4>                    drop in progress (crash-safe drop)
    S<uid:4><shard:1>m          shard meta: next label, last WAL seq, data bytes
    S<uid:4><shard:1>i<id>      string id -> int64 label
    S<uid:4><shard:1>p<label:8> point record: id, payload, text
    S<uid:4><shard:1>v<label:8> float32 vector bytes
    S<uid:4><shard:1>n<field>\x00<label:8>  float32 bytes of a named vector (named_vectors.py)
    S<uid:4><shard:1>w<seq:8>   WAL entry (see vecdb.wal)

Collections get a never-reused uid so a dropped and re-created name never
sees old keys; dropping deletes the key range S<uid>..S<uid+1>.
"""
from __future__ import annotations

import fcntl
import os
import struct
from typing import Iterator

from rocksdict import AccessType, Checkpoint, Options, Rdict, ReadOptions, WriteBatch, WriteOptions

from .errors import FailedPrecondition, ResourceExhausted
from .rwlock import RWLock

# a checkpoint compacts its shard's deleted WAL range once about this many bytes of vectors
# were written since the last time (vecdb.shard.Shard.checkpoint)
WAL_COMPACT_BYTES = 64 << 20
# RocksDB memtable size (its default, 64 MiB, held twice while one flushes, was a tenth of
# the server's peak RSS during a bulk load of 116k x 384 vectors)
MEMTABLE_BYTES = 32 << 20
U32 = struct.Struct(">I")
U64 = struct.Struct(">Q")
META = struct.Struct(">QQQ")  # next_label, last_seq, data_bytes


def shard_prefix(uid: int, shard: int) -> bytes:
    return b"S" + U32.pack(uid) + bytes([shard])


def collection_range(uid: int) -> tuple[bytes, bytes]:
    return b"S" + U32.pack(uid), b"S" + U32.pack(uid + 1)


class DirLock:
    """An exclusive flock on <dir>/LOCK.vecdb held for the life of the Database."""

    def __init__(self, path: str):
        self.path = os.path.join(path, "LOCK.vecdb")
        self.fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self.fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.pread(self.fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(self.fd)
            raise FailedPrecondition(
                f"data directory {path!r} is already open by another process (pid {holder})",
                "data_dir") from None
        os.ftruncate(self.fd, 0)
        os.pwrite(self.fd, str(os.getpid()).encode(), 0)

    def release(self) -> None:
        if self.fd >= 0:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = -1


class Store:
    """Thin wrapper over one Rdict in raw (bytes) mode."""

    def __init__(self, path: str, cache_mb: int, sync: bool):
        opts = Options(raw_mode=True)
        opts.create_if_missing(True)
        opts.set_max_background_jobs(2)
        opts.increase_parallelism(2)
        opts.set_write_buffer_size(MEMTABLE_BYTES)
        if cache_mb:
            from rocksdict import BlockBasedOptions, Cache
            bbo = BlockBasedOptions()
            bbo.set_block_cache(Cache(cache_mb * 1024 * 1024))
            bbo.set_bloom_filter(10, False)
            opts.set_block_based_table_factory(bbo)
        self.db = Rdict(path, opts)
        self.write_opts = WriteOptions()
        self.write_opts.sync = sync
        self.path = path
        self._opts = opts
        # Disk full: RocksDB refuses every write after an ENOSPC until it is reopened.
        # ``failed`` holds the error text while writes are refused (see reopen()).
        self.failed: str | None = None
        self._seq_at_failure = 0
        self._swap = RWLock()  # shared by every call, exclusive while reopen() swaps self.db

    def batch(self) -> WriteBatch:
        return WriteBatch(raw_mode=True)

    def write(self, batch: WriteBatch, sync: bool | None = None) -> None:
        opts = self.write_opts
        if sync is not None and sync != opts.sync:
            opts = WriteOptions()
            opts.sync = sync
        with self._swap.read():
            if self.failed is not None:
                raise ResourceExhausted(f"disk full: writes are refused until space is freed on the "
                                        f"data directory's filesystem; reads still work ({self.failed})",
                                        "data_dir")
            try:
                self.db.write(batch, opts)
            except Exception as e:  # rocksdict raises plain exceptions with the RocksDB status text
                text = str(e)
                if "No space" in text or "ENOSPC" in text:
                    self.failed = text
                    self._seq_at_failure = max(self._seq_at_failure, self.db.latest_sequence_number())
                    raise ResourceExhausted(f"disk full: write rejected ({text})", "data_dir") from None
                raise

    def reopen(self) -> None:
        """Leave the disk-full state: close RocksDB and open it again (RocksDB stays
        read-only after ENOSPC and rocksdict has no resume). Recovery drops the torn
        WAL record of the failed write. Raises (and stays refusing writes, still
        readable) when it cannot reopen yet, e.g. no space or a scan still running."""
        with self._swap.write():
            if self.failed is None:
                return
            try:
                self.db.close()
            except Exception:  # "Writer has previous error": expected after ENOSPC
                pass
            try:
                db = Rdict(self.path, self._opts)
            except Exception:
                self.db = Rdict(self.path, Options(raw_mode=True), access_type=AccessType.read_only())
                raise
            if db.latest_sequence_number() > self._seq_at_failure:
                # a write reported as failed turned out durable: memory no longer matches
                db.close()
                self.db = Rdict(self.path, Options(raw_mode=True), access_type=AccessType.read_only())
                self.failed = ("a write that failed on the full disk was recovered by RocksDB; "
                               "restart the server to reload its state")
                raise ResourceExhausted(self.failed, "data_dir")
            self.db, self.failed = db, None

    def get(self, key: bytes) -> bytes | None:
        with self._swap.read():
            return self.db.get(key)

    def multi_get(self, keys: list[bytes]) -> list[bytes | None]:
        if not keys:
            return []
        with self._swap.read():
            return self.db.get(keys)

    def scan(self, start: bytes, end: bytes, fill_cache: bool = True) -> Iterator[tuple[bytes, bytes]]:
        """Yield (key, value) for start <= key < end in key order. ``fill_cache=False``: the
        blocks read are not kept in the block cache (a full pass over the vectors at open
        would fill it, and the server's RSS, with data no search reads)."""
        ro = ReadOptions()
        ro.set_iterate_upper_bound(end)
        ro.fill_cache(fill_cache)
        with self._swap.read():
            it = self.db.iter(ro)  # keeps its RocksDB instance alive across a reopen()
            it.seek(start)
        while it.valid():
            yield it.key(), it.value()
            it.next()

    def compact(self, start: bytes, end: bytes) -> None:
        """Compact [start, end): deleted keys there give their space back now (RocksDB keeps
        them in its files until a compaction reaches them)."""
        with self._swap.read():
            self.db.compact_range(start, end)

    def checkpoint_to(self, path: str) -> None:
        """A RocksDB checkpoint (hard links where possible) of this instant at ``path``.
        (rocksdict's Snapshot does not isolate reads in raw mode, so this is how a
        consistent view is pinned.)"""
        Checkpoint(self.db).create_checkpoint(path)

    @staticmethod
    def scan_copy(path: str, start: bytes, end: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Scan [start, end) of a checkpoint made by checkpoint_to, opened read-only."""
        db = Rdict(path, Options(raw_mode=True), access_type=AccessType.read_only())
        try:
            ro = ReadOptions()
            ro.set_iterate_upper_bound(end)
            it = db.iter(ro)
            it.seek(start)
            while it.valid():
                yield it.key(), it.value()
                it.next()
            del it
        finally:
            db.close()

    def delete_range(self, start: bytes, end: bytes) -> None:
        wb = self.batch()
        wb.delete_range(start, end)
        self.write(wb, sync=True)

    def close(self) -> None:
        if self.failed is not None:  # nothing unflushed was acknowledged; RocksDB refuses to flush
            try:
                self.db.close()
            except Exception:
                pass
            return
        try:
            self.db.flush_wal(True)
        finally:
            self.db.close()
