"""Named vector fields of one shard: a FAISS index per field beside the primary's.

A collection may declare named dense vector fields besides its primary vector
(CollectionConfig.vectors). Every field is optional per point, the primary included
(a point carries at least one; one without the primary has a marker key ...o<label> and
is a member of the shard outside the primary's indexes, vecdb/shard.py). The fields share the shard's int64 label space, so filters,
payloads, TTLs and deletes work by label as for the primary.

Storage: the vector of field F of label L is S<uid><shard>n<F>\\x00<L:8> (the
primary stays under ...v<L>), written in the point's WriteBatch. WAL entries
with named vectors are format v2 (vecdb/wal.py): replay rebuilds every field.
Deleting or replacing a point removes its label from every field.

In memory each field has an exact store (IndexIDMap2 over IndexFlat) of just
the points that carry it, and an ANN index built in the background past the
field's build_threshold, like the primary's. Checkpoints go to
<shard dir>/named-<F>/ckpt-<seq>/ (vecdb/checkpoint.py), dumped under the
shard's read lock together with the primary's and committed before it; a field
whose checkpoint is missing or damaged is rebuilt from RocksDB on open.

Thread safety: the owning Shard's lock guards every call (read for searches,
write for apply), except build(), which snapshots under it and trains without.
"""
from __future__ import annotations

import dataclasses
import logging
import os

import faiss
import numpy as np

from . import checkpoint, omp, planner, quant, validation
from .errors import InvalidArgument
from .index import (
    Ann,
    build_ann,
    min_build_points,
    new_exact,
    prepare,
    range_search,
    rerank,
    search_params,
    snapshot,
)
from .storage import U64
from .types import CollectionConfig, SearchParams, VectorField

log = logging.getLogger("vecdb.named_vectors")
MAX_FIELDS = 16


# ---- validation (before anything is written) -----------------------------------------
def check_fields(vector_name, fields, primary_dim_given: bool,
                 encoder_dim=None) -> tuple[str, tuple[VectorField, ...]]:
    """The primary's field name and the named fields of a new collection. ``fields``: a list
    of VectorField or {"name", "dim", "metric", "index", "index_params", "encoder"} dicts.
    ``encoder_dim(spec)``: the dimension an encoder makes (a field with an encoder takes it
    when its dim is unset or 0; another dim is refused)."""
    vector_name = "" if vector_name is None else vector_name
    if vector_name != "":
        validation.name(vector_name, "vector_name")
    items = list(fields or ())
    if not isinstance(fields or [], (list, tuple)) or len(items) > MAX_FIELDS:
        raise InvalidArgument(f"vectors must be a list of at most {MAX_FIELDS} vector fields",
                              "vectors")
    out, seen = [], {vector_name}
    for i, f in enumerate(items):
        where = f"vectors[{i}]"
        if isinstance(f, dict):
            extra = set(f) - {"name", "dim", "metric", "index", "index_params", "encoder"}
            if extra:
                raise InvalidArgument(f"{where}: unknown keys {sorted(extra)}", where)
            f = VectorField(f.get("name"), f.get("dim"), f.get("metric", "cosine"),
                            validation.index_spec(f.get("index", "auto"), f.get("index_params")),
                            f.get("encoder"))
        elif not isinstance(f, VectorField):
            raise InvalidArgument(f"{where} must be a vector field {{name, dim, metric, index}}",
                                  where)
        name = validation.name(f.name, f"{where}.name")
        if name in seen:
            raise InvalidArgument(f"{where}.name: vector field {name!r} is declared twice (or is "
                                  "the primary's name)", f"{where}.name")
        seen.add(name)
        encoder = validation.encoder(f.encoder)
        dim = f.dim
        if encoder is not None:
            enc_dim = encoder_dim(encoder)
            if dim is None or (not isinstance(dim, bool) and dim == 0):
                dim = enc_dim
            elif dim != enc_dim:
                raise InvalidArgument(f"{where}.dim {dim} does not match encoder {encoder!r}, which "
                                      f"makes {enc_dim}-d vectors (leave it 0)", f"{where}.dim")
        out.append(VectorField(name, validation.int_in(dim, 1, validation.MAX_DIM, f"{where}.dim"),
                               _metric(f.metric, f"{where}.metric"),
                               validation.index_spec(f.index.type, f.index.params), encoder))
    if vector_name and not primary_dim_given:
        raise InvalidArgument("vector_name names the primary vector: give its dim too", "dim")
    return vector_name, tuple(out)


def _metric(value, where: str) -> str:
    try:
        return validation.metric(value)
    except InvalidArgument as e:
        raise InvalidArgument(f"{where}: {e.message}", where) from None


def check_batch(config: CollectionConfig, named, n: int) -> dict:
    """Named vectors of an upsert of ``n`` points -> {field: (rows, float32 vectors)}.
    ``named``: {field: (n, dim) array, or n entries each a vector or None (absent)}. Unknown
    fields, wrong dimensions, NaN/Inf and zero cosine vectors are refused naming the point
    and field, e.g. ``points[3].vectors.image``."""
    if not named:
        return {}
    if not isinstance(named, dict):
        raise InvalidArgument("vectors: named vectors must be a mapping {field: vectors}", "vectors")
    specs = {f.name: f for f in config.vectors}
    out = {}
    for name, values in named.items():
        f = specs.get(name)
        if f is None:
            known = ", ".join(repr(x) for x in specs) or "none"
            raise InvalidArgument(f"vectors.{name}: collection {config.name!r} has no vector field "
                                  f"{name!r} (named fields: {known})", f"vectors.{name}")
        if isinstance(values, np.ndarray) and values.ndim == 2:
            rows, vecs = np.arange(n), validation.vectors(values, f.dim, n, f"vectors.{name}")
        else:
            if isinstance(values, (str, bytes, dict)) or len(values) != n:
                raise InvalidArgument(f"vectors.{name} must have one entry (a vector or None) per "
                                      f"point: {n} points", f"vectors.{name}")
            rows = np.array([i for i, v in enumerate(values) if v is not None], np.int64)
            vecs = np.zeros((len(rows), f.dim), np.float32)
            for j, i in enumerate(rows.tolist()):
                vecs[j] = validation.vectors(values[i], f.dim, 1, f"points[{i}].vectors.{name}")[0]
        if f.metric == "cosine" and len(vecs):
            zero = np.flatnonzero(~np.any(vecs, axis=1))
            if len(zero):
                where = f"points[{int(rows[zero[0]])}].vectors.{name}"
                raise InvalidArgument(f"{where} is all zeros; cosine needs a non-zero vector", where)
        if len(rows):
            out[name] = (rows, vecs)
    return out


def primary_absent(config: CollectionConfig, vectors, named, texts, ids):
    """(vectors, absent) of an upsert: with named fields declared a point may lack the
    primary (None in a ``vectors`` list; every point when only named vectors are given and
    no texts for the collection's encoder). ``absent``: a mask of those points (None when
    every point has it); their rows of the returned vectors are placeholders (ones) that
    pass the checks and are zeroed after them. Without named fields: unchanged."""
    if not config.vectors:
        return vectors, None
    if vectors is None:
        if not named or (config.encoder is not None and texts):
            return vectors, None
        n = len(validation.ids(ids))
        return np.ones((n, config.dim), np.float32), np.ones(n, bool)
    if isinstance(vectors, (list, tuple)) and any(v is None for v in vectors):
        absent = np.array([v is None for v in vectors])
        return [np.ones(config.dim, np.float32) if v is None else v for v in vectors], absent
    return vectors, None


def check_carried(absent, named: dict) -> None:
    """A point without the primary must carry a named vector (``named``: check_batch's)."""
    if absent is None:
        return
    bare = absent.copy()
    for rows, _ in named.values():
        bare[rows] = False
    if bare.any():
        where = f"points[{int(np.flatnonzero(bare)[0])}].vectors"
        raise InvalidArgument(f"{where}: a point needs at least one vector (the primary or a "
                              "named field)", where)


def stored_primary(points, dim: int):
    """(vectors, absent) of stored points for a rewrite: zeros and a mask where a point
    has no primary vector (absent None when all have it)."""
    absent = np.array([p.vector is None for p in points])
    if not absent.any():
        return np.stack([p.vector for p in points]), None
    vecs = np.zeros((len(points), dim), np.float32)
    for j, p in enumerate(points):
        if p.vector is not None:
            vecs[j] = p.vector
    return vecs, absent


def embed_texts(coll, named: dict, texts, n: int) -> dict:
    """``named`` plus, for each field with an encoder that the upsert gives no vectors of,
    the point texts embedded into it ("document" kind; points without a text stay without
    the field)."""
    if not texts:
        return named
    for f in coll.config.vectors:
        if f.encoder is None or f.name in named:
            continue
        rows = np.array([i for i, t in enumerate(texts) if t], np.int64)
        if len(rows):
            vecs = coll.field_encoder(f).encode([texts[i] for i in rows.tolist()], "document")
            named = {**named, f.name: (rows, validation.vectors(vecs, f.dim, len(rows),
                                                                f"vectors.{f.name}"))}
    return named


def split(named: dict, groups: dict[int, list[int]]) -> dict[int, dict]:
    """{shard: {field: (rows within that shard's ids, vectors)}} for a routed batch."""
    out: dict[int, dict] = {}
    for s, rows in groups.items():
        pos = np.full(max(rows) + 1, -1, np.int64)
        pos[rows] = np.arange(len(rows))
        per = {}
        for name, (r, vecs) in named.items():
            idx = np.flatnonzero(r <= max(rows))
            keep = idx[pos[r[idx]] >= 0]
            if len(keep):
                per[name] = (pos[r[keep]], vecs[keep])
        out[s] = per
    return out


class Field:
    """One named field's FAISS state in one shard."""

    def __init__(self, spec: VectorField, directory: str, config: CollectionConfig):
        self.spec, self.dir = spec, directory
        # what checkpoint.load checks a field's files against
        self.ckpt_config = dataclasses.replace(config, dim=spec.dim, metric=spec.metric,
                                               index=spec.index, quantization="", vectors=())
        self.exact = new_exact(spec.dim, spec.metric)
        self.ann: Ann | None = None
        self.applied_seq = 0
        self.building = False
        self.pending: list | None = None
        self.failed_at = -1
        self.dirty = False  # an ANN index was swapped in since the last checkpoint
        self.ascending: bool | None = True  # exact's id_map in increasing order (None: unknown)

    def apply(self, seq: int, removed: np.ndarray, added: np.ndarray, vecs: np.ndarray) -> None:
        """``vecs`` prepared for the metric. Idempotent by ``seq``."""
        if seq <= self.applied_seq:
            return
        if len(removed):
            removed = self._members(removed)
        if len(removed):
            self.exact.remove_ids(removed)
            if self.ann is not None:
                self.ann.remove(removed)
        if len(added):
            if self.ascending:  # removals keep the order; labels come increasing (new points)
                ids = self._ids()
                self.ascending = bool((not len(ids) or added[0] > ids[-1])
                                      and np.all(added[1:] > added[:-1]))
            self.exact.add_with_ids(vecs, added)
            if self.ann is not None:
                self.ann.add(added, vecs)
        if self.pending is not None:
            self.pending.append((removed, added, vecs))
        self.applied_seq = seq

    def _ids(self) -> np.ndarray:
        """The label of every row of the exact store (a view of its id_map, no copy)."""
        n = int(self.exact.ntotal)
        return faiss.rev_swig_ptr(self.exact.id_map.data(), n) if n else np.zeros(0, np.int64)

    def _members(self, labels: np.ndarray) -> np.ndarray:
        """The labels that carry this field (a removal names every field of a point): an HNSW
        index would keep the others as tombstones and rebuild for them. One look-up over the
        id_map: a binary search while it is ascending (as labels are given), else np.isin."""
        ids = self._ids()
        if not len(ids):
            return labels[:0]
        if self.ascending is None:  # a loaded or rebuilt store: checked once
            self.ascending = bool(np.all(ids[1:] > ids[:-1]))
        if not self.ascending:
            return labels[np.isin(labels, ids)]
        pos = np.minimum(np.searchsorted(ids, labels), len(ids) - 1)
        return labels[ids[pos] == labels]

    def search(self, q: np.ndarray, k: int, params: SearchParams, sel) -> tuple[np.ndarray, np.ndarray]:
        """Top k of the points carrying this field (``sel``: allowed labels or None). With a
        selector the ANN answer is kept only when every query got min(k, field points)."""
        n, ann, spec = self.exact.ntotal, self.ann, self.spec.index
        if n == 0:
            return np.zeros((len(q), 0), np.float32), np.zeros((len(q), 0), np.int64)
        if ann is not None and not params.exact:
            kk = min(k * spec.param("refine"), n) if ann.kind == "ivf_pq" else k
            got = ann.index.search(q, kk, params=search_params(ann, spec, k, params.nprobe,
                                                                params.ef_search, sel=sel))
            if ann.kind == "ivf_pq":
                got = rerank(self.exact, q, got[1], k, "l2" if self.spec.metric == "l2" else "ip")
            if sel is None or ((got[1] >= 0).sum(axis=1) >= min(k, n)).all():
                return got
        sp = faiss.SearchParameters(sel=sel) if sel is not None else None
        return self.exact.search(q, min(k, n), params=sp)

    def range_search(self, q: np.ndarray, threshold: float, params: SearchParams, sel):
        if self.exact.ntotal == 0:
            return [(np.zeros(0, np.float32), np.zeros(0, np.int64))] * len(q)
        return range_search(self.exact, self.ann, self.spec.index, q, threshold, params.nprobe,
                            params.exact, sel)

    def needs_build(self) -> bool:
        spec = self.spec.index
        if spec.type == "flat" or self.building or self.failed_at == self.applied_seq:
            return False
        if self.ann is None:
            return self.exact.ntotal >= min_build_points(spec)
        return self.ann.needs_rebuild(self.exact.ntotal, spec)

    def build(self, lock) -> bool:
        """Build the ANN index from a snapshot without the lock, replay what was applied
        meanwhile, swap it in (as Shard.build does for the primary)."""
        with lock.write():
            if not self.needs_build():
                return False
            self.building, self.pending = True, []
            labels, vecs = snapshot(self.exact)
        try:
            ann = build_ann(self.spec.index, self.spec.metric, labels, vecs)
        except Exception:
            log.exception("vector field %s: index build failed; staying exact", self.spec.name)
            ann = None
        del labels, vecs
        with lock.write():
            if ann is None:
                self.failed_at = self.applied_seq
            else:
                for removed, added, v in self.pending:
                    if len(removed):
                        ann.remove(removed)
                    if len(added):
                        ann.add(added, v)
                self.ann, self.dirty = ann, True
            self.building, self.pending = False, None
        return ann is not None


class NamedVectors:
    """The named fields of one shard, keyed by name (the Shard holds one when its
    collection declares any)."""

    def __init__(self, store, prefix: bytes, config: CollectionConfig, shard_dir: str):
        self.store, self.prefix = store, prefix
        self.fields = {f.name: Field(f, os.path.join(shard_dir, f"named-{f.name}"), config)
                       for f in config.vectors}

    # ---- keys and writes (inside the caller's WriteBatch) -----------------------------
    def _key(self, name: str, label: int) -> bytes:
        return self.prefix + b"n" + name.encode() + b"\x00" + U64.pack(int(label))

    def put(self, wb, labels: np.ndarray, named: dict) -> int:
        """Write ``named`` ({field: (rows into labels, vectors)}); returns the bytes written."""
        total = 0
        for name, (rows, vecs) in named.items():
            for r, vec in zip(rows.tolist(), vecs):
                raw = vec.tobytes()
                wb.put(self._key(name, labels[r]), raw)
                total += len(raw)
        return total

    def delete(self, wb, labels) -> None:
        for lab in labels:
            for name in self.fields:
                wb.delete(self._key(name, lab))

    def stored_bytes(self, labels) -> int:
        keys = [self._key(name, lab) for lab in labels for name in self.fields]
        return sum(len(r) for r in self.store.multi_get(keys) if r) if keys else 0

    def vectors_of(self, labels: list[int]) -> list[dict[str, np.ndarray]]:
        """{field: vector} per label (fields the point does not carry are absent)."""
        out: list[dict] = [{} for _ in labels]
        for name in self.fields:
            for j, raw in enumerate(self.store.multi_get([self._key(name, lab) for lab in labels])):
                if raw is not None:
                    out[j][name] = np.frombuffer(raw, dtype=np.float32).copy()
        return out

    def field_vectors(self, name: str, labels: np.ndarray) -> np.ndarray:
        """Vectors of field ``name`` for labels (zeros where a label has none)."""
        dim = self.fields[name].spec.dim
        raws = self.store.multi_get([self._key(name, lab) for lab in labels.tolist()])
        return np.frombuffer(b"".join(r or bytes(dim * 4) for r in raws),
                             dtype=np.float32).reshape(-1, dim)

    # ---- in memory (under the shard's write lock) -------------------------------------
    def apply(self, seq: int, removed: np.ndarray, added: np.ndarray, named: dict | None) -> None:
        """``named``: {field: (labels, raw vectors)} of the added points."""
        for name, f in self.fields.items():
            labels, vecs = (named or {}).get(name, (added[:0], None))
            f.apply(seq, removed, np.asarray(labels, np.int64),
                    prepare(np.array(vecs, np.float32), f.spec.metric) if len(labels) else vecs)

    # ---- recovery ---------------------------------------------------------------------
    def load(self, last_seq: int) -> None:
        """Each field from its newest usable checkpoint, else rebuilt from RocksDB."""
        for f in self.fields.values():
            loaded = checkpoint.load(f.dir, f.ckpt_config)
            if loaded is None:
                self.rebuild_field(f, last_seq)
            else:
                f.exact, f.ann, f.applied_seq = loaded.exact, loaded.ann, loaded.seq
                f.ascending = None

    def replay_from(self) -> int:
        return min(f.applied_seq for f in self.fields.values())

    def rebuild(self, last_seq: int) -> None:
        for f in self.fields.values():
            self.rebuild_field(f, last_seq)

    def rebuild_field(self, f: Field, last_seq: int) -> None:
        head = self.prefix + b"n" + f.spec.name.encode()
        labels, chunks = [], []
        for key, raw in self.store.scan(head + b"\x00", head + b"\x01"):
            labels.append(U64.unpack(key[-8:])[0])
            chunks.append(raw)
        f.exact, f.ann, f.ascending = new_exact(f.spec.dim, f.spec.metric), None, True  # key order
        if labels:
            vecs = np.frombuffer(b"".join(chunks), dtype=np.float32).reshape(-1, f.spec.dim)
            f.exact.add_with_ids(prepare(vecs.copy(), f.spec.metric), np.array(labels, np.int64))
        f.applied_seq, f.dirty = last_seq, True

    # ---- checkpoints ------------------------------------------------------------------
    def dump(self) -> list:
        return [(f, checkpoint.dump(f.dir, f.exact, f.ann)) for f in self.fields.values()]

    @staticmethod
    def commit(seq: int, dumped: list) -> None:
        for f, d in dumped:
            checkpoint.commit(f.dir, seq, d)
            f.dirty = False

    @property
    def dirty(self) -> bool:
        return any(f.dirty for f in self.fields.values())

    # ---- reads ------------------------------------------------------------------------
    @staticmethod
    def _allowed(shard, node):
        """A selector of the shard's live unexpired labels matching ``node``; None = all."""
        exclude = shard.expiry.expired()
        if node is None and not len(exclude):
            return None
        return planner.selector(planner.matching(shard, node, exclude)[0])

    def search(self, shard, name: str, q: np.ndarray, k: int, params: SearchParams, node):
        """(scores, labels, plan) of field ``name`` in ``shard`` (``q`` prepared)."""
        omp.for_search(len(q), shard.config.shards)
        with shard.lock.read():
            sel = self._allowed(shard, node)
            return (*self.fields[name].search(q, k, params, sel),
                    f"{name}: " + ("selector" if sel is not None else "all"))

    def range_search(self, shard, name: str, q: np.ndarray, threshold: float, params, node):
        omp.for_search(len(q))
        with shard.lock.read():
            return self.fields[name].range_search(q, threshold, params, self._allowed(shard, node))

    def build(self, lock) -> int:
        return sum(f.build(lock) for f in self.fields.values() if f.needs_build())

    def memory_bytes(self) -> int:
        """Host RAM of every field's exact store and ANN index."""
        return sum(quant.index_bytes(f.exact) + (quant.index_bytes(f.ann.index) if f.ann else 0)
                   for f in self.fields.values())

    def stats(self) -> dict:
        """{field: {"points", "index_state", "index_type"}} of this shard."""
        return {name: {"points": f.exact.ntotal,
                       "index_state": "training" if f.building else ("built" if f.ann else "exact"),
                       "index_type": f.ann.kind if f.ann else "flat"}
                for name, f in self.fields.items()}


def columns(per_point: list[dict]) -> dict:
    """[{field: vector}, ...] (one per point) -> {field: (rows, vectors)}."""
    out: dict = {}
    for i, vecs in enumerate(per_point):
        for name, v in vecs.items():
            out.setdefault(name, ([], []))
            out[name][0].append(i)
            out[name][1].append(v)
    return {name: (np.array(r, np.int64), np.stack(v).astype(np.float32)) for name, (r, v) in out.items()}


def by_id(ids: list[str], named: dict) -> dict[str, dict]:
    """{field: (rows, vectors)} of a batch of ``ids`` -> {id: {field: vector}}."""
    out: dict[str, dict] = {}
    for name, (rows, vecs) in named.items():
        for r, v in zip(rows.tolist(), vecs):
            out.setdefault(ids[r], {})[name] = v
    return out


class FieldView:
    """A collection seen through one named vector field: what vecdb/recommend.py reads
    (config, get, search_prepared), so recommend(using=...) resolves example ids to that
    field's vectors and searches it. Points without the field are "not found" as examples."""

    def __init__(self, coll, field: VectorField):
        self.coll, self.field = coll, field
        self.config = dataclasses.replace(coll.config, dim=field.dim, metric=field.metric,
                                          index=field.index, encoder=field.encoder)

    def embed_queries(self, texts) -> np.ndarray:
        return self.coll.embed_field_queries(self.field, texts)

    def get(self, ids, with_vector: bool, with_payload: bool):
        name = self.field.name
        return [dataclasses.replace(p, vector=p.vectors[name])
                for p in self.coll.get(ids, True, with_payload) if name in (p.vectors or {})]

    def search_prepared(self, q, k, params, with_payload, with_vector, node=None,
                        raw_payloads=False):
        return self.coll.search_field(self.field, q, k, params, with_payload, with_vector, node,
                                      raw_payloads)
