"""Small typed result objects returned by the SDK (no protobuf in sight)."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import NamedTuple

import numpy as np


class Hit(NamedTuple):
    """One search hit. cosine/ip: higher score is better; l2: squared distance, lower is better."""

    id: str
    score: float
    payload: dict | None = None
    vector: np.ndarray | None = None
    text: str | None = None


class Group(NamedTuple):
    """One group of a grouped search (``search(..., group_by=...)``): the payload value
    ``key`` and its best hits, best first."""

    key: str | int | bool
    hits: list[Hit]


class Point(NamedTuple):
    """A stored point as returned by get() and scroll()."""

    id: str
    vector: np.ndarray | None = None
    payload: dict | None = None
    text: str | None = None
    # named vectors the point carries {field: vector} (read with vectors; docs/named_vectors.md)
    vectors: dict | None = None


class ScrollPage(NamedTuple):
    points: list[Point]
    next_cursor: str | None  # None when the scroll is finished


@dataclass(frozen=True)
class WriteResult:
    """count: points written (upsert) or actually deleted (delete);
    shard_seqs: shard number -> WAL sequence number of the write."""

    count: int
    shard_seqs: dict[int, int] = field(default_factory=dict)


@dataclass(frozen=True)
class CollectionConfig:
    name: str
    dim: int
    metric: str
    index: str
    index_params: dict[str, int]
    shards: int
    encoder: str | None = None
    # auto | cpu | gpu: the requested placement (where shards run: ShardStats.device)
    device: str = "auto"
    # cluster mode: copies per shard and the write concern ("" on a single node)
    replication_factor: int = 1
    write_concern: str = ""
    # "" = full precision; sq8 | rabitq | binary: codes in RAM, vectors on disk re-scoring
    # k * rescore candidates (rescore 0 = the mode's default)
    quantization: str = ""
    rescore: int = 0
    # "" = no full-text index; "plain" or a stemming language: keyword/hybrid search
    full_text: str = ""
    # 0 = no sparse vectors; else points may carry one with indices < sparse_dim
    sparse_dim: int = 0
    # "" = no tenants; else the payload key naming each point's tenant (docs/tenants.md)
    tenant_field: str = ""
    # named vectors (docs/named_vectors.md): the primary's field name and the named fields,
    # each {"name", "dim", "metric", "index", <index params>}
    vector_name: str = ""
    vectors: list = field(default_factory=list)
    # True: IVF-Flat whose inverted lists stay on the server's disk, memory-mapped and paged
    # in on demand (README "On-disk collections")
    on_disk: bool = False


@dataclass(frozen=True)
class ShardStats:
    points: int
    index_state: str
    index_type: str
    applied_seq: int
    checkpoint_seq: int
    deleted_pending: int
    device: str = "cpu"  # "cpu" or "cuda:N"
    gpu_memory_bytes: int = 0  # resident on that GPU
    # what the built ANN index really uses (automatic nlist/m included); {} while exact
    built_params: dict[str, int] = field(default_factory=dict)
    # GPU shards (docs/gpu.md "Counters"): searches served / failed on the GPU per backend
    # ("cpu": no usable GPU copy), the ANN kind on the GPU, placement failures and why
    gpu_served: dict[str, int] = field(default_factory=dict)
    gpu_fallbacks: dict[str, int] = field(default_factory=dict)
    gpu_ann: str = ""
    gpu_placement_failures: int = 0
    gpu_error: str = ""
    # host RAM of its vectors/codes and index (approximate; on-disk vectors not counted)
    memory_bytes: int = 0


class SnapshotInfo(NamedTuple):
    """A snapshot in the server's snapshot directory."""

    name: str
    collection: str
    created_at: float  # seconds since the epoch
    points: int
    bytes: int
    path: str  # on the server: copy it into another server's snapshot dir to move it


class ReembedProgress(NamedTuple):
    """A re-embed job (Client.reembed): state "running" | "done" | "failed";
    ``done`` of ``total`` points copied; ``caught_up``: writes replayed meanwhile."""

    source: str
    target: str
    encoder: str
    alias: str
    state: str
    done: int
    total: int
    caught_up: int
    error: str


class PayloadIndexInfo(NamedTuple):
    """type: keyword | integer | float | bool | datetime | text;
    state: "building" | "ready" (filters use it once ready)."""

    type: str
    state: str


@dataclass(frozen=True)
class CollectionInfo:
    config: CollectionConfig
    points: int
    shards: tuple[ShardStats, ...]
    index_state: str
    bytes_on_disk: int
    aliases: tuple[str, ...]
    # field ("$text" = the point text) -> PayloadIndexInfo
    payload_indexes: dict[str, PayloadIndexInfo] = field(default_factory=dict)
    # set while (and after) this collection is re-embedded or re-embedded into
    reembed: "ReembedProgress | None" = None
    # the collection's latest clustering job (Client.cluster), if any
    clustering: "ClusterProgress | None" = None  # vecdb_client.analytics.ClusterProgress
    # every parameter of the index type with the value the collection runs with
    # (unset ones at their defaults), and which of them are defaults
    effective_index_params: dict[str, int] = field(default_factory=dict)
    default_index_params: tuple[str, ...] = ()

    @property
    def name(self) -> str:
        return self.config.name

    @property
    def gpu_memory_bytes(self) -> int:
        """Bytes of the collection resident on GPUs (0 on the CPU)."""
        return sum(s.gpu_memory_bytes for s in self.shards)

    @property
    def memory_bytes(self) -> int:
        """Bytes of host RAM the shards' vectors/codes and indexes hold."""
        return sum(s.memory_bytes for s in self.shards)

    @property
    def dim(self) -> int:
        return self.config.dim
