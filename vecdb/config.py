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
    # Cluster mode: writes kept per shard copy in the replication log (a replica
    # down for more gets a full copy). The engine's WAL keeps only the entries
    # after the newest checkpoint (what recovery needs), whatever this is.
    wal_retain: int = 1_000
    # Maximum serialized size of one payload (JSON) in bytes.
    max_payload_bytes: int = 64 * 1024
    # Maximum size of a text attached to a point, in bytes.
    max_text_bytes: int = 1024 * 1024
    # Threads that fan a search out over shards (FAISS releases the GIL).
    # 0 = number of CPUs. More than the core count buys nothing.
    search_threads: int = 0
    # Most threads FAISS may use inside one batch search (OpenMP), split across the
    # shards searched in parallel; 0 = all cores. A single-query search always runs
    # on one thread (see vecdb/omp.py).
    faiss_omp_threads: int = 0
    # Dynamic batching of concurrent searches (vecdb/coalesce.py): searches with
    # the same collection, k, params and no filter that arrive while one per core
    # already runs are merged into one FAISS call of up to this many queries; a
    # lone request never waits. 0 or 1 = off.
    search_batch_max: int = 256
    # How long a search waits for company before running (ms); 0 = never waits
    # (batches form only from requests that queued behind a running search).
    # Raise it (0.5-2) when batches are much cheaper per query, e.g. on a GPU.
    search_batch_wait_ms: float = 0.0
    # RocksDB block cache in MiB (hot payloads/ids for result hydration).
    block_cache_mb: int = 256
    # On-disk collections (vecdb/ondisk.py): writes kept in RAM (the delta) before they are
    # merged into the mapped lists file, in MiB (or 1/8 of that file when larger). Higher =
    # fewer, larger merges (each rewrites the file), more RAM; 0 = merge at every build round.
    ondisk_delta_mb: int = 64
    # Analytics operations at once (k-means jobs while they run, outliers calls,
    # duplicates scans); more get RESOURCE_EXHAUSTED. Each uses every core and memory
    # in proportion to the collection. 0 = no limit.
    max_analytics_jobs: int = 2
    # Where snapshots are written and restored from; "" = <data dir>/snapshots.
    # Copy a snapshot (directory or .tar) here to restore it on another server.
    snapshot_dir: str = ""
    # --- GPU (docs/gpu.md) ---
    # Where collections run: auto (a GPU when one is usable: FAISS GPU indexes,
    # or exact search in torch CUDA; else the CPU, logged once), cpu (never
    # probes, never imports torch) or gpu (the server refuses to open without a
    # usable GPU). A collection's own device (auto follows this) can still ask
    # for cpu or gpu.
    device: str = "auto"
    # GPU memory each GPU may hold for collection vectors and indexes, in MiB;
    # 0 = no limit. A write that would pass it fails with RESOURCE_EXHAUSTED
    # (nothing written); a shard that does not fit at open runs on the CPU.
    gpu_memory_budget_mb: int = 0
    # Keep GPU-resident vectors in fp16: half the GPU memory and about twice
    # the exact-search speed; scores differ by ~1e-3 (recall@10 >= 0.99).
    gpu_fp16: bool = False
    # Run background work (checkpoints, ANN builds) in threads. Tests turn it
    # off to make timing deterministic; call Database.maintain() by hand then.
    background: bool = True
    # --- text encoders (docs/encoders.md; need `pip install 'vecdb[encoders]'`) ---
    # Where sentence-transformers models run: auto (cuda when torch sees a GPU,
    # else cpu), cpu or cuda.
    encoder_device: str = "auto"
    # Half-precision weights on cuda (about 2x faster, vectors differ ~1e-3);
    # ignored on cpu.
    encoder_fp16: bool = False
    # Most texts in one model call; concurrent requests are merged up to this.
    encoder_batch_size: int = 64
    # How long an encode call waits for concurrent ones to merge with (ms).
    # Higher = bigger batches under load, more latency for a lone request.
    encoder_batch_wait_ms: float = 2.0
    # Encoders to load when the database opens ("minilm,openai:m"); "" = load
    # each lazily on its first use (the first call then pays the model load).
    encoder_warmup: str = ""
    # openai:<model> encoders: base URL including /v1 ("" = $OPENAI_BASE_URL,
    # else https://api.openai.com/v1). The API key comes from $OPENAI_API_KEY or
    # from this file (a mounted secret; first line) so it never sits in a config
    # dump or a log; "" + no env = no Authorization header (local servers).
    openai_base_url: str = ""
    openai_api_key_file: str = ""
    # Per HTTP request timeout, and extra attempts on 429/5xx/timeouts (backoff).
    openai_timeout_s: float = 30.0
    openai_max_retries: int = 3
    # Texts per HTTP request.
    openai_batch_size: int = 256
    # Cut each text to this many characters before sending; 0 = send it whole.
    openai_max_chars: int = 0

    def __post_init__(self) -> None:
        if self.device not in ("auto", "cpu", "gpu"):
            raise InvalidArgument(f"device must be auto, cpu or gpu, got {self.device!r}", "device")
        if self.encoder_device not in ("auto", "cpu", "cuda"):
            raise InvalidArgument(f"encoder_device must be auto, cpu or cuda, got "
                                  f"{self.encoder_device!r}", "encoder_device")
        if self.encoder_batch_size < 1 or self.openai_batch_size < 1:
            raise InvalidArgument("encoder_batch_size and openai_batch_size must be >= 1",
                                  "encoder_batch_size")
        if self.durability not in DURABILITY_MODES:
            raise InvalidArgument(
                f"durability must be one of {', '.join(DURABILITY_MODES)}, got {self.durability!r}",
                "durability")
        if isinstance(self.ondisk_delta_mb, bool) or not isinstance(self.ondisk_delta_mb, int):
            raise InvalidArgument(f"ondisk_delta_mb must be a whole number of MiB, got "
                                  f"{self.ondisk_delta_mb!r}", "ondisk_delta_mb")
        for f in fields(self):
            v = getattr(self, f.name)
            if isinstance(v, (int, float)) and not isinstance(v, bool) and v < 0:
                raise InvalidArgument(f"{f.name} must be >= 0, got {v}", f.name)
