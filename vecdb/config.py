"""Engine options. Each field documents its default and the trade-off."""
from __future__ import annotations

from dataclasses import dataclass, fields

from .errors import InvalidArgument
from .types import DURABILITY_MODES


@dataclass(frozen=True)
class DatabaseOptions:
    # "sync": a write returns only after the RocksDB WAL is fsynced, so an
    # acknowledged write survives kill -9 AND power loss. "async": the write
    # is in the OS page cache when acknowledged: survives kill -9 of the
    # server, but a power cut can lose the last few hundred milliseconds.
    # Use async only for bulk loads you can redo.
    durability: str = "sync"
    # Background checkpoint of FAISS indexes every N seconds when the shard
    # has changed. Lower = faster restarts (less WAL to replay), more disk I/O.
    checkpoint_interval_s: float = 30.0
    # Also checkpoint a shard once this many WAL entries piled up since the last.
    checkpoint_every_ops: int = 2_000
    # WAL entries kept below the checkpoint (for future replicas / change
    # streams). 0 truncates everything the checkpoint covers.
    wal_retain: int = 1_000
    # Maximum serialized size of one payload (JSON) in bytes.
    max_payload_bytes: int = 64 * 1024
    # Maximum size of a text attached to a point, in bytes.
    max_text_bytes: int = 1024 * 1024
    # Threads that fan a search out over shards (FAISS releases the GIL).
    # 0 = number of CPUs. More than the core count buys nothing.
    search_threads: int = 0
    # Threads FAISS may use inside one search call (OpenMP). 0 = leave FAISS's
    # default (all cores). 1 is best when many concurrent requests run.
    faiss_omp_threads: int = 0
    # RocksDB block cache in MiB (hot payloads/ids for result hydration).
    block_cache_mb: int = 256
    # Where snapshots are written and restored from; "" = <data dir>/snapshots.
    # Copy a snapshot (directory or .tar) here to restore it on another server.
    snapshot_dir: str = ""
    # Run background work (checkpoints, ANN builds) in threads. Tests turn it
    # off to make timing deterministic; call Database.maintain() by hand then.
    background: bool = True

    def __post_init__(self) -> None:
        if self.durability not in DURABILITY_MODES:
            raise InvalidArgument(
                f"durability must be one of {', '.join(DURABILITY_MODES)}, got {self.durability!r}",
                "durability")
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and v < 0:
                raise InvalidArgument(f"{f.name} must be >= 0, got {v}", f.name)
