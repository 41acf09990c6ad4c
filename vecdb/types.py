"""Records, configs and results shared by every layer (frozen where they can be)."""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any, Iterator, NamedTuple

import numpy as np

from .errors import InvalidArgument

METRICS = ("cosine", "ip", "l2")
INDEX_TYPES = ("flat", "ivf_flat", "ivf_pq", "hnsw", "auto")
DURABILITY_MODES = ("sync", "async")
# Quantized collections (vecdb/quant.py): codes in RAM, full-precision vectors on disk.
QUANTIZATIONS = ("sq8", "rabitq", "binary")
# Candidates re-scored exactly from the on-disk vectors = k * rescore. Defaults reach
# recall@10 >= 0.95 on clustered data (tests/unit/test_quantization.py, bench/quant_bench.py);
# higher = better recall, more disk reads per query.
RESCORE_DEFAULTS = {"sq8": 2, "rabitq": 4, "binary": 10}

# Documented index parameters, their defaults and what raising them trades.
# ``build_threshold``: live points a shard must hold before its ANN index is
#   built in the background; below it the shard answers exactly (flat), which
#   is both exact and fast at that size. Lower = ANN sooner, more rebuilds.
INDEX_PARAM_DEFAULTS: dict[str, dict[str, int]] = {
    "flat": {},
    # nlist 0 = auto: clamp(4*sqrt(n), 8, 65536) at training time.
    # nprobe: lists scanned per query; higher = better recall, slower search.
    "ivf_flat": {"nlist": 0, "nprobe": 32, "build_threshold": 10_000},
    # m 0 = auto (largest of 64/48/32/.../1 dividing dim, dim/m <= 16 preferred);
    # nbits: bits per sub-code; refine: candidates re-ranked exactly = k*refine.
    "ivf_pq": {"nlist": 0, "nprobe": 32, "m": 0, "nbits": 8, "refine": 4,
               "build_threshold": 10_000},
    # M: graph degree (memory, recall); ef_construction: build effort;
    # ef_search: default query effort (recall vs latency).
    "hnsw": {"M": 32, "ef_construction": 100, "ef_search": 128, "build_threshold": 10_000},
    # auto: exact below build_threshold, then IVF-Flat (cheap incremental adds,
    # real deletes, fast training on few cores).
    "auto": {"nlist": 0, "nprobe": 32, "build_threshold": 20_000},
}


@dataclass(frozen=True)
class IndexSpec:
    """Index type plus its parameters (every key must be one documented above)."""

    type: str = "auto"
    params: dict[str, int] = field(default_factory=dict)

    def param(self, key: str) -> int:
        return int(self.params.get(key, INDEX_PARAM_DEFAULTS[self.type][key]))

    def effective_params(self) -> dict[str, int]:
        """Every parameter of this index type: the ones set, the rest at their defaults."""
        return {**INDEX_PARAM_DEFAULTS[self.type], **self.params}

    def default_params(self) -> tuple[str, ...]:
        """The parameters left at their defaults (not set at creation), sorted."""
        return tuple(sorted(set(INDEX_PARAM_DEFAULTS[self.type]) - set(self.params)))

    def to_dict(self) -> dict[str, Any]:
        return {"type": self.type, "params": dict(self.params)}


@dataclass(frozen=True)
class VectorField:
    """A named dense vector field beside a collection's primary vector (vecdb/named_vectors.py):
    points may carry it or not; it has its own dimension, metric and index, and runs on the
    CPU. ``encoder``: embeds query texts searched with using=, and the point texts of an
    upsert that gives no vectors of this field (vecdb/named_vectors.py)."""

    name: str
    dim: int
    metric: str = "cosine"
    index: IndexSpec = field(default_factory=IndexSpec)
    encoder: str | None = None

    def to_dict(self) -> dict[str, Any]:
        out = {"name": self.name, "dim": self.dim, "metric": self.metric,
               "index": self.index.to_dict()}
        if self.encoder:
            out["encoder"] = self.encoder
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "VectorField":
        return cls(d["name"], int(d["dim"]), d["metric"],
                   IndexSpec(d["index"]["type"], dict(d["index"]["params"])), d.get("encoder"))


@dataclass(frozen=True)
class CollectionConfig:
    name: str
    dim: int
    metric: str = "cosine"
    index: IndexSpec = field(default_factory=IndexSpec)
    shards: int = 1
    encoder: str | None = None
    uid: int = 0  # internal key-space id; never reused, so drop+create is clean
    # declared payload indexes: ((field, type), ...) sorted by field
    payload_indexes: tuple[tuple[str, str], ...] = ()
    # auto | cpu | gpu (docs/gpu.md); catalogs written before it existed read as auto
    device: str = "auto"
    # "" = full precision in RAM; sq8 | rabitq | binary: codes in RAM, vectors on disk
    # (vecdb/quant.py); rescore 0 = RESCORE_DEFAULTS[quantization]
    quantization: str = ""
    rescore: int = 0
    # "" = no full-text index; "plain" or a stemming language: BM25 over the point texts
    # (vecdb/fulltext.py, the optional extra vecdb[hybrid])
    full_text: str = ""
    # 0 = no sparse vectors; else each point may carry one with indices < sparse_dim
    # (vecdb/sparse.py)
    sparse_dim: int = 0
    # the primary vector's field name ("" = unnamed, as before named vectors) and the named
    # vector fields beside it (vecdb/named_vectors.py); with named fields a point may lack
    # the primary (it carries at least one field)
    vector_name: str = ""
    vectors: tuple[VectorField, ...] = ()
    # "" = one shared space; else every point's tenant lives in this top-level payload
    # field and each shard partitions its points by it (vecdb/tenants.py)
    tenant_field: str = ""
    # False = the vectors in RAM; True: IVF-Flat whose inverted lists stay in a memory-mapped
    # file paged in on demand, for collections larger than RAM (vecdb/ondisk.py)
    on_disk: bool = False

    def vector_field(self, name: str | None) -> VectorField | None:
        """The named field ``name``; None for the primary (None, "" or its own name)."""
        if name is None or name == self.vector_name or name == "":
            return None
        for f in self.vectors:
            if f.name == name:
                return f
        known = ", ".join(repr(n) for n in [self.vector_name or ""] + [f.name for f in self.vectors])
        raise InvalidArgument(f"using: collection {self.name!r} has no vector field {name!r} "
                              f"(fields: {known})", "using")

    @property
    def rescore_factor(self) -> int:
        return self.rescore or RESCORE_DEFAULTS.get(self.quantization, 1)

    def to_dict(self) -> dict[str, Any]:
        out = {"name": self.name, "dim": self.dim, "metric": self.metric,
               "index": self.index.to_dict(), "shards": self.shards,
               "encoder": self.encoder, "uid": self.uid,
               "payload_indexes": [list(p) for p in self.payload_indexes],
               "device": self.device}
        if self.quantization:  # catalogs of full-precision collections stay as they were
            out.update(quantization=self.quantization, rescore=self.rescore)
        if self.full_text:
            out["full_text"] = self.full_text
        if self.sparse_dim:
            out["sparse_dim"] = self.sparse_dim
        if self.vectors or self.vector_name:
            out.update(vector_name=self.vector_name, vectors=[f.to_dict() for f in self.vectors])
        if self.tenant_field:
            out["tenant_field"] = self.tenant_field
        if self.on_disk:
            out["on_disk"] = True
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "CollectionConfig":
        return cls(name=d["name"], dim=int(d["dim"]), metric=d["metric"],
                   index=IndexSpec(d["index"]["type"], dict(d["index"]["params"])),
                   shards=int(d["shards"]), encoder=d.get("encoder"), uid=int(d["uid"]),
                   payload_indexes=tuple((f, t) for f, t in d.get("payload_indexes", [])),
                   device=d.get("device", "auto"), quantization=d.get("quantization", ""),
                   rescore=int(d.get("rescore", 0)), full_text=d.get("full_text", ""),
                   sparse_dim=int(d.get("sparse_dim", 0)), vector_name=d.get("vector_name", ""),
                   vectors=tuple(VectorField.from_dict(f) for f in d.get("vectors", ())),
                   tenant_field=d.get("tenant_field", ""), on_disk=bool(d.get("on_disk", False)))


@dataclass(frozen=True)
class ShardStats:
    points: int
    index_state: str  # "exact" | "training" | "built"
    index_type: str  # the ANN type in use ("flat" while exact)
    applied_seq: int
    checkpoint_seq: int
    deleted_pending: int  # tombstones not yet compacted (HNSW)
    device: str = "cpu"  # where the shard searches: "cpu" or "cuda:N" (docs/gpu.md)
    gpu_memory_bytes: int = 0  # bytes of its vectors/indexes resident on that GPU
    # what the built ANN index really uses (automatic nlist/m included); {} while exact
    built_params: dict = field(default_factory=dict)
    # GPU shards (docs/gpu.md "Counters"): searches served per backend (torch, faiss_flat,
    # ivf_flat, ivf_pq, cagra; cpu: no usable GPU copy for that search), searches that failed
    # on the GPU and ran on the CPU, the ANN kind on the GPU ("" none), placement failures
    # and the last one's reason ("" none)
    gpu_served: dict = field(default_factory=dict)
    gpu_fallbacks: dict = field(default_factory=dict)
    gpu_ann: str = ""
    gpu_placement_failures: int = 0
    gpu_error: str = ""
    # bytes of host RAM its vectors/codes and index hold (approximate: FAISS storage,
    # graph links, inverted-list ids, label columns); not the on-disk vectors
    memory_bytes: int = 0
    # named vector fields (vecdb/named_vectors.py): {field: {"points", "index_state",
    # "index_type"}} of this shard; {} without any
    vectors: dict = field(default_factory=dict)


@dataclass(frozen=True)
class CollectionDescription:
    config: CollectionConfig
    points: int
    shards: tuple[ShardStats, ...]
    index_state: str  # worst over shards: "exact" < "training" < "built"
    bytes_on_disk: int
    aliases: tuple[str, ...]
    payload_indexes: dict = field(default_factory=dict)  # field -> {"type", "state"}
    # Re-embedding into or out of this collection (Database.reembed), else None:
    # {"source", "target", "encoder", "alias", "state", "done", "total", "caught_up", "error"}
    reembed: dict | None = None
    # The latest clustering job of this collection (Database.cluster), else None:
    # {"job_id", "collection", "state", "phase", "done", "total", "k", "write_label", "error",
    #  "started", "finished"}
    clustering: dict | None = None

    @property
    def gpu_memory_bytes(self) -> int:
        """Bytes of this collection resident on GPUs (0 on the CPU)."""
        return sum(s.gpu_memory_bytes for s in self.shards)

    @property
    def memory_bytes(self) -> int:
        """Bytes of host RAM the shards' vectors/codes and indexes hold."""
        return sum(s.memory_bytes for s in self.shards)


@dataclass(frozen=True)
class SearchParams:
    """Per-request knobs. None means: use the collection's default."""

    nprobe: int | None = None
    ef_search: int | None = None
    exact: bool = False


@dataclass(frozen=True)
class Point:
    id: str
    vector: np.ndarray | None = None
    payload: dict | None = None
    text: str | None = None
    # named vectors the point carries, {field: vector} (named-vector collections, read with
    # vectors); the primary stays in ``vector``
    vectors: dict[str, np.ndarray] | None = None


class Hit(NamedTuple):
    id: str
    score: float
    payload: dict | None = None
    vector: np.ndarray | None = None
    text: str | None = None


@dataclass(frozen=True)
class SearchResult:
    """Hits of one query, stored column-wise (cheap to build and to serialize).

    Scores: cosine and ip higher is better; l2 is the squared distance, lower
    is better. Hits are ordered best first. Iterating yields :class:`Hit`.
    """

    ids: list[str]
    scores: np.ndarray  # float32, shape (n,)
    payloads: list[dict | None] | None = None
    vectors: np.ndarray | None = None  # float32, shape (n, dim)
    texts: list[str | None] | None = None
    plan: str | None = None  # how a filtered search ran, per shard (explain)
    # search(raw_payloads=True): the payloads as their stored JSON bytes (None =
    # no payload), passed through to the wire undecoded; ``payloads`` is None then.
    payloads_json: list[bytes | None] | None = None
    # grouped search (vecdb.grouping): the group value of each hit; hits come group by group
    group_keys: list | None = None
    # hits left out because their point was rewritten or deleted while the answer was read
    # (live_hits): a short answer with dropped > 0 does not mean fewer points matched
    dropped: int = 0

    def __len__(self) -> int:
        return len(self.ids)

    def __iter__(self) -> Iterator[Hit]:
        for i, pid in enumerate(self.ids):
            yield Hit(pid, float(self.scores[i]),
                      None if self.payloads is None else self.payloads[i],
                      None if self.vectors is None else self.vectors[i],
                      None if self.texts is None else self.texts[i])

    def __getitem__(self, i: int) -> Hit:
        return list(self)[i]


def take(res: SearchResult, rows: list[int]) -> SearchResult:
    """The given rows of a result, in that order."""
    def pick(col):
        return None if col is None else [col[i] for i in rows]
    return SearchResult(
        ids=[res.ids[i] for i in rows], scores=np.asarray(res.scores[rows], np.float32),
        payloads=pick(res.payloads), vectors=None if res.vectors is None else res.vectors[rows],
        texts=pick(res.texts), plan=res.plan, payloads_json=pick(res.payloads_json))


def live_hits(res: SearchResult) -> SearchResult:
    """``res`` less its hits whose label was no longer live when read (id "")."""
    if "" not in res.ids:
        return res
    kept = take(res, [j for j, pid in enumerate(res.ids) if pid])
    return replace(kept, dropped=res.dropped + len(res.ids) - len(kept.ids))


@dataclass(frozen=True)
class ScrollPage:
    points: list[Point]
    next_cursor: str | None  # opaque; None when the scroll is finished


@dataclass(frozen=True)
class WriteResult:
    """What a mutation did. ``seqs`` maps shard number to the WAL sequence it wrote."""

    count: int
    seqs: dict[int, int]
