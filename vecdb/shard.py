"""One shard: WAL-sequenced mutations applied to RocksDB records and a FAISS index.

Write protocol (the caller, Collection, serializes writers):
  1. ``prepare_*`` reads what it needs and adds the records, the WAL entry
     (seq = last_seq + 1) and the shard meta to a shared WriteBatch.
  2. The caller commits the batch (one atomic, synced RocksDB write).
  3. ``apply`` mutates the in-memory FAISS state. Applying is idempotent:
     an op with seq <= applied_seq is ignored, so WAL replay after a crash at
     any point is safe.
Recovery: load the newest valid checkpoint, replay WAL entries after it; if
no checkpoint is usable or the WAL has a gap, rebuild from the vectors in
RocksDB (logged, never a crash).
"""
from __future__ import annotations

import contextlib
import logging
import os
import threading
import time
from dataclasses import dataclass
from typing import Callable

import numpy as np

import faiss

from . import checkpoint, fulltext, omp, ondisk, planner, quant, records, wal
from .expiry import ExpiryMap
from .filters import Clause
from .fulltext import TextIndex
from .id_column import IdColumn
from .named_vectors import NamedVectors
from .sparse import SparseIndex
from .tenants import TenantIndex
from .payload_index import FieldIndex, PayloadIndexes
from .quant_store import VectorFile, remove_other_gens
from .gpu_index import ShardGpu
from .index import (Ann, AnnVectors, build_ann, built_params, exact_from_ann, min_build_points,
                    new_exact, prepare, range_search, replay, rerank, search_params, snapshot)
from .rwlock import RWLock
from .storage import META, U64, WAL_COMPACT_BYTES, Store, shard_prefix
from .types import CollectionConfig, Point, SearchParams, ShardStats

log = logging.getLogger("vecdb.shard")
_I64 = np.dtype(">i8")
# how long at most a write waits for a build that missed as many points as it was built
# from (Shard.await_build); then it goes on, holding the missed vectors beside the build
BUILD_WAIT_S = 30.0
GET_TRIES = 8  # looks-up of a point rewritten while get() read it (each try: a rewrite raced it)


@dataclass
class Op:
    seq: int
    removed: np.ndarray  # int64 labels
    added: np.ndarray  # int64 labels
    vectors: np.ndarray  # float32, raw (not normalized)
    next_label: int
    data_bytes: int
    payloads: list | None = None  # JSON bytes per added label (for payload indexes)
    texts: list | None = None     # utf-8 bytes per added label
    expire_ms: list | None = None  # expiry per added label (None: never)
    sparse: list | None = None     # packed sparse vector per added label (vecdb/sparse.py)
    named: dict | None = None      # field -> (labels, raw vectors) (vecdb/named_vectors.py)
    bare: np.ndarray | None = None  # added labels without the primary (their vector rows: zeros)
    bare_removed: np.ndarray | None = None  # removed labels that had no primary


class Shard:
    def __init__(self, store: Store, config: CollectionConfig, number: int, directory: str,
                 gpu_ctx=None, backend: str = "cpu"):
        self.store, self.config, self.number, self.dir = store, config, number, directory
        self.prefix = shard_prefix(config.uid, number)
        self.metric = config.metric
        self.lock = RWLock()
        self._ckpt_lock = threading.Lock()
        self.retired = False
        # the exact store: an IndexFlat in RAM, or for a quantized collection the vectors on
        # disk (quant_store.VectorFile, same calls; its codes are the ANN index)
        self.quant = config.quantization
        self.ondisk_delta_bytes = 64 << 20  # DatabaseOptions.ondisk_delta_mb (Collection sets it)
        self.exact = self._empty_exact()
        self.ann: Ann | None = None
        self.building = False
        self._pending: list[tuple[np.ndarray, np.ndarray]] | None = None  # (removed, added)
        # a build's memory bound: once the writes it missed add as many points as it was
        # built from, writers wait for it (await_build) instead of growing the exact store
        # beside the new graph
        self._pending_added = 0
        self._build_size = 0
        self._built = threading.Event()
        self._built.set()
        # called (no lock taken) once a write makes the first build due: wakes the
        # database's maintenance thread (Database._wake); None: it finds it in its round
        self.build_due: Callable[[], None] | None = None
        raw = store.get(self.prefix + b"m")
        self.next_label, self.last_seq, self.data_bytes = META.unpack(raw) if raw else (1, 0, 0)
        self.applied_seq = 0
        self.checkpoint_seq = 0
        self._wal_compacted_label = 0  # next_label when deleted WAL entries were last compacted
        self._ann_dirty = False
        self._failed_at = -1
        self.pindex = PayloadIndexes()
        self.universe_cache: tuple[int, np.ndarray] | None = None  # (applied_seq, live labels)
        for f, kind in config.payload_indexes:  # empty; recover() fills them from RocksDB
            self.pindex.ready[f] = FieldIndex(f, kind, config.full_text)
        self.expiry = ExpiryMap()
        self.id_column = IdColumn()  # ids of the labels hydrated so far (vecdb/id_column.py)
        # BM25 over the texts (vecdb/fulltext.py), on disk with its own checkpoint
        self.text_index = TextIndex(config.full_text, directory) if config.full_text else None
        self.sparse_index = SparseIndex() if config.sparse_dim else None  # vecdb/sparse.py
        # the tenant partition (vecdb/tenants.py); recover() fills it from RocksDB
        self.tenants = TenantIndex(config.tenant_field, config.dim) if config.tenant_field else None
        # one FAISS index per named vector field (vecdb/named_vectors.py); None without any
        self.named = NamedVectors(store, self.prefix, config, directory) if config.vectors else None
        # labels of the points that carry no primary vector (named fields only; each has a
        # marker key ...o<label>): members of the shard, absent from the primary's indexes
        self.bare: set[int] = set()
        self._bare_sorted: np.ndarray | None = None  # self.bare as a sorted array (cache)
        # GPU copies of the indexes (vecdb.gpu_index); None on the CPU
        self.gpu: ShardGpu | None = None
        if backend != "cpu":
            self.gpu = ShardGpu(gpu_ctx, backend, gpu_ctx.gpu_of(backend, number), config.dim,
                                config.metric, f"{config.name}/{number}", lambda: snapshot(self.exact))
            self.gpu.load()

    def _empty_exact(self):
        if self.quant:
            return VectorFile.fresh(self.dir, self.config.dim, self.metric)
        return new_exact(self.config.dim, self.metric)

    def _set_exact(self, exact) -> None:
        """Swap the exact store (recovery, compaction), closing a replaced vector file."""
        old, self.exact = self.exact, exact
        if isinstance(old, VectorFile) and old is not exact:
            old.close()

    def _exact_of(self, ann: Ann):
        """The exact store over a built ANN index's own vectors, else the current one."""
        if isinstance(ann, ondisk.DiskIvf):
            return ondisk.DiskVectors(ann)
        return exact_from_ann(ann) or self.exact

    def _attach(self, ann) -> None:
        """What an on-disk index takes from its shard: re-reads from RocksDB, the delta size."""
        ann.fetch, ann.delta_min = self._fetch, self.ondisk_delta_bytes

    def _fetch(self, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(prepared vectors, found mask) of labels from RocksDB (an on-disk shard's
        re-reads). A label not found there is live in memory still, its remove committed
        but not applied yet; its row is zeros."""
        raws = self.store.multi_get(self._label_keys(b"v", labels))
        found = np.array([r is not None for r in raws], bool)
        blank = bytes(self.config.dim * 4)
        vecs = np.frombuffer(b"".join(r or blank for r in raws), np.float32).reshape(-1, self.config.dim)
        return prepare(vecs.copy(), self.metric), found

    def live_labels(self) -> np.ndarray:
        """Every live label (unsorted for the in-RAM store)."""
        if isinstance(self.exact, (VectorFile, AnnVectors)):
            return self.exact.labels()
        return faiss.vector_to_array(self.exact.id_map)

    # ---- keys -------------------------------------------------------------
    def _k(self, kind: bytes, label_or_id) -> bytes:
        if isinstance(label_or_id, str):
            return self.prefix + kind + label_or_id.encode()
        return self.prefix + kind + U64.pack(int(label_or_id))

    def labels_of(self, ids: list[str]) -> list[int | None]:
        got = self.store.multi_get([self._k(b"i", pid) for pid in ids])
        return [None if v is None else U64.unpack(v)[0] for v in got]

    # ---- write path -------------------------------------------------------
    def prepare_upsert(self, wb, ids: list[str], vectors: np.ndarray,
                       payloads: list[bytes | None], texts: list[bytes | None],
                       expire_ms: list[int | None] | None = None,
                       sparse: list[bytes | None] | None = None, named: dict | None = None,
                       absent: np.ndarray | None = None) -> Op:
        """``named``: {field: (rows of ``ids``, vectors)} of the named vectors given;
        ``absent``: a mask of the points without the primary (their rows of ``vectors``
        are zeros and not stored)."""
        old = [lab for lab in self.labels_of(ids) if lab is not None]
        data_bytes = self.data_bytes - self._record_bytes(old)
        n = len(ids)
        labels = np.arange(self.next_label, self.next_label + n, dtype=np.int64)
        vec_size = vectors.shape[1] * 4
        for lab in old:
            wb.delete(self._k(b"p", lab))
            wb.delete(self._k(b"v", lab))
            wb.delete(self._k(b"e", lab))
            wb.delete(self._k(b"s", lab))
            if lab in self.bare:
                wb.delete(self._k(b"o", lab))
        # the per-point loop of a bulk load: keys and values built from whole-batch bytes
        # (big-endian labels, the vectors' rows) rather than per-point struct/ndarray calls
        put, enc, pre = wb.put, records.encode, self.prefix
        pre_i, pre_p, pre_v = pre + b"i", pre + b"p", pre + b"v"
        packed = np.ascontiguousarray(labels, dtype=_I64).tobytes()  # as _label_keys
        rows = np.ascontiguousarray(vectors, dtype=np.float32).tobytes()
        rec_bytes = 0
        for j, pid in enumerate(ids):
            lab = packed[8 * j:8 * j + 8]
            raw_id = pid.encode()
            rec = enc(raw_id, payloads[j], texts[j])
            put(pre_i + raw_id, lab)
            put(pre_p + lab, rec)
            rec_bytes += len(rec)
            if absent is not None and absent[j]:
                put(pre + b"o" + lab, b"")
                data_bytes -= vec_size
            else:
                put(pre_v + lab, rows[vec_size * j:vec_size * (j + 1)])
            if expire_ms is not None and expire_ms[j] is not None:
                put(pre + b"e" + lab, U64.pack(expire_ms[j]))
            if sparse is not None and sparse[j]:
                put(pre + b"s" + lab, sparse[j])
        data_bytes += rec_bytes + n * vec_size
        if self.named is not None:
            self.named.delete(wb, old)
            data_bytes += self.named.put(wb, labels, named or {})
        op = Op(self.last_seq + 1, np.array(old, dtype=np.int64), labels, vectors,
                self.next_label + n, data_bytes, payloads, texts, expire_ms, sparse,
                {f: (labels[rows], v) for f, (rows, v) in named.items()} if named else None,
                labels[absent] if absent is not None and absent.any() else None,
                self._bare_of(old))
        self._put_wal(wb, op, wal.OP_UPSERT, ids)
        return op

    def records_of(self, labels: np.ndarray) -> list[bytes | None]:
        """The stored records (records.py) of these labels; None where not live."""
        return self.store.multi_get(self._label_keys(b"p", labels))

    def prepare_payloads(self, wb, labels: list[int], old: list[bytes], new: list[bytes]) -> int:
        """Replace live labels' records ``old`` with ``new`` (only the payload differs: id,
        text, vector and label stay, so the FAISS indexes and the WAL are untouched);
        returns the shard's data_bytes after the write (apply_payloads takes it)."""
        data_bytes = self.data_bytes + sum(map(len, new)) - sum(map(len, old))
        for lab, rec in zip(labels, new):
            wb.put(self._k(b"p", lab), rec)
        wb.put(self.prefix + b"m", META.pack(self.next_label, self.last_seq, data_bytes))
        return data_bytes

    def apply_payloads(self, labels: list[int], payloads: list, texts: list, data_bytes: int) -> None:
        """After prepare_payloads' batch is committed: the payload indexes follow."""
        self.id_column.forget(labels)
        with self.lock.write():
            self.data_bytes = data_bytes
            if self.pindex.active:
                self.pindex.replace(labels, payloads, texts)

    def prepare_delete(self, wb, ids: list[str]) -> Op | None:
        pairs = [(pid, lab) for pid, lab in zip(ids, self.labels_of(ids)) if lab is not None]
        if not pairs:
            return None
        removed = np.array([lab for _, lab in pairs], dtype=np.int64)
        data_bytes = self.data_bytes - self._record_bytes(removed.tolist())
        for pid, lab in pairs:
            wb.delete(self._k(b"i", pid))
            wb.delete(self._k(b"p", lab))
            wb.delete(self._k(b"v", lab))
            wb.delete(self._k(b"e", lab))
            wb.delete(self._k(b"s", lab))
            if lab in self.bare:
                wb.delete(self._k(b"o", lab))
        if self.named is not None:
            self.named.delete(wb, removed.tolist())
        op = Op(self.last_seq + 1, removed, np.zeros(0, np.int64),
                np.zeros((0, self.config.dim), np.float32), self.next_label, data_bytes,
                bare_removed=self._bare_of(removed.tolist()))
        self._put_wal(wb, op, wal.OP_DELETE, [])
        return op

    def _bare_of(self, labels: list[int]) -> np.ndarray | None:
        """Those of ``labels`` without the primary (None when there are none)."""
        got = [lab for lab in labels if lab in self.bare] if self.bare else None
        return np.array(got, np.int64) if got else None

    def _record_bytes(self, labels: list[int]) -> int:
        if not labels:
            return 0
        recs = self.store.multi_get([self._k(b"p", lab) for lab in labels])
        named = self.named.stored_bytes(labels) if self.named is not None else 0
        with_primary = len(labels) - (sum(lab in self.bare for lab in labels) if self.bare else 0)
        return sum(len(r) for r in recs if r) + with_primary * self.config.dim * 4 + named

    def _put_wal(self, wb, op: Op, kind: int, ids: list[str]) -> None:
        wb.put(self.prefix + b"w" + U64.pack(op.seq),
               wal.encode(kind, op.removed, op.added, op.vectors, ids, op.named, op.bare,
                          op.bare_removed))
        wb.put(self.prefix + b"m", META.pack(op.next_label, op.seq, op.data_bytes))

    def apply(self, op: Op) -> None:
        """Apply a committed op to memory. Idempotent by sequence number."""
        due = False
        with self.lock.write():
            self.next_label = max(self.next_label, op.next_label)
            self.last_seq = max(self.last_seq, op.seq)
            self.data_bytes = op.data_bytes
            if op.seq <= self.applied_seq:
                return
            removed, added, vecs = self._primary_part(op.removed, op.added, op.vectors, op.bare,
                                                      op.bare_removed)
            vecs = prepare(vecs, self.metric)
            if self.ann is not None and len(added) > 1:
                omp.for_add(len(added))
            self._apply_index(self.exact, self.ann, removed, added, vecs)
            if self.gpu is not None:
                self.gpu.apply(removed, added, vecs)
            if self.named is not None:
                self.named.apply(op.seq, op.removed, op.added, op.named)
            self._apply_meta(op)
            if self._pending is not None:
                self._pending.append((removed, added))  # vectors: in self.exact
                self._pending_added += len(added)
            self.applied_seq = op.seq
            # (a failed build is retried at the maintenance thread's pace, not per write)
            due = self.ann is None and not self.building and self.build_due is not None \
                and self._failed_at < 0 and len(added) and self.needs_build()
        if due:
            self.build_due()

    def await_build(self, timeout: float = BUILD_WAIT_S) -> None:
        """Hold a write that adds points back (before it takes the collection's write lock
        and commits; Collection.adding) while a background build has missed as many
        added points as it was built from: the build then catches up (its replay) and
        swaps, freeing the exact store, before more vectors pile up in it. Without this a
        bulk load kept every vector twice at the swap (the exact store and the new graph),
        and the replay under the write lock grew with the load. At most ``timeout``
        seconds: then the write goes on. A quantized shard's exact store is on disk."""
        end = time.monotonic() + timeout
        while self.building and not self.quant and self._pending_added >= max(self._build_size, 1):
            left = end - time.monotonic()
            if left <= 0:
                return
            self._built.wait(min(left, 1.0))  # the loop re-checks: a build that ended sets it

    def _primary_part(self, removed, added, vectors, bare, bare_removed):
        """(removed, added, vectors) of an op for the primary's indexes: the points without
        the primary (``bare`` added, ``bare_removed`` removed) are left out, and self.bare
        follows the op (as sets: replaying onto the set read from RocksDB is exact)."""
        if bare_removed is not None and len(bare_removed):
            self.bare.difference_update(np.asarray(bare_removed).tolist())
            self._bare_sorted = None
            removed = removed[~np.isin(removed, bare_removed)]
        if bare is not None and len(bare):
            self.bare.update(np.asarray(bare).tolist())
            self._bare_sorted = None
            keep = ~np.isin(added, bare)
            added, vectors = added[keep], vectors[keep]
        return removed, added, vectors

    def _apply_meta(self, op: Op) -> None:
        """Payload indexes and expiry times follow every applied op."""
        self.expiry.remove(op.removed)
        self.id_column.forget(op.removed)
        if op.expire_ms is not None:
            self.expiry.set(op.added, op.expire_ms)
        if self.text_index is not None:
            self.text_index.apply(op.removed, op.added, op.texts, op.seq)
        if self.sparse_index is not None:
            self.sparse_index.apply(op.removed, op.added, op.sparse)
        if self.tenants is not None:
            self.tenants.apply(op.removed, op.added, op.payloads, op.texts)
        if self.pindex.active:
            n = len(op.added)
            pays = [records.load_json(b) for b in op.payloads] if op.payloads else [None] * n
            txts = [None if t is None else t.decode("utf-8", "surrogatepass") for t in op.texts] \
                if op.texts else [None] * n
            self.pindex.apply(op.removed, op.added, pays, txts)

    @staticmethod
    def _apply_index(exact, ann: Ann | None, removed, added, vecs) -> None:
        """Apply one op to the exact store and/or the ANN index (either may be None)."""
        if len(removed):
            if exact is not None:
                exact.remove_ids(removed)
            if ann is not None:
                ann.remove(removed)
        if len(added):
            if exact is not None:
                exact.add_with_ids(vecs, added)
            if ann is not None:
                ann.add(added, vecs)

    # ---- recovery ---------------------------------------------------------
    def recover(self) -> None:
        if self.named is not None:
            self.bare = {U64.unpack(key[-8:])[0] for key, _ in
                         self.store.scan(self.prefix + b"o", self.prefix + b"p")}
            self._bare_sorted = None
        self._recover_faiss()
        if self.gpu is not None:
            self.gpu.load()
            self.refresh_gpu()
        for key, raw in self.store.scan(self.prefix + b"e", self.prefix + b"f"):
            self.expiry.at[U64.unpack(key[-8:])[0]] = U64.unpack(raw)[0]
        if self.pindex.ready:
            for lab, _, pay, txt in self.iter_records():
                for fi in self.pindex.ready.values():
                    fi.add(lab, pay, txt)
        if self.text_index is not None:
            fulltext.recover(self)
        if self.sparse_index is not None:
            self.sparse_index.rebuild((U64.unpack(key[-8:])[0], raw) for key, raw in
                                      self.store.scan(self.prefix + b"s", self.prefix + b"t"))
        if self.tenants is not None:
            self.tenants.rebuild((U64.unpack(key[-8:])[0], raw) for key, raw in
                                 self.store.scan(self.prefix + b"p", self.prefix + b"q"))

    def iter_records(self, labels: np.ndarray | None = None):
        """(label, id, payload, text) of every point (or of the given labels) from RocksDB."""
        if labels is None:
            n = len(self.prefix) + 1
            for key, raw in self.store.scan(self.prefix + b"p", self.prefix + b"q"):
                pid, pay, txt = records.decode(raw)
                yield int.from_bytes(key[n:n + 8], "big"), pid, pay, txt
            return
        for lab, raw in zip(labels.tolist(), self.store.multi_get(self._label_keys(b"p", labels))):
            if raw is not None:
                yield (lab, *records.decode(raw))

    def _recover_faiss(self) -> None:
        loaded = checkpoint.load(self.dir, self.config, share=True, vectors=self._vector_chunks)
        if loaded is not None:
            if self.named is not None:
                self.named.load(self.last_seq)
            self._set_exact(loaded.exact)
            self.ann, self.applied_seq = loaded.ann, loaded.seq
            if isinstance(self.ann, ondisk.DiskIvf):
                self._attach(self.ann)
            self.checkpoint_seq = loaded.seq
            # an older checkpoint's exact.faiss beside HNSW was not read: the next one drops it
            self._ann_dirty = loaded.rewrite
            if self._replay_wal():
                if self.quant:
                    remove_other_gens(self.dir, self.exact.gen)
                return
            log.warning("shard %s/%d: WAL gap after checkpoint %d; rebuilding from RocksDB",
                        self.config.name, self.number, loaded.seq)
        elif self.last_seq:
            log.warning("shard %s/%d: no usable checkpoint; rebuilding index from RocksDB",
                        self.config.name, self.number)
        self._rebuild_from_records()

    def _replay_wal(self) -> bool:
        expect = self.applied_seq + 1
        if self.named is not None:  # a named field may be behind (or ahead of) the primary
            expect = min(expect, self.named.replay_from() + 1)
        start = self.prefix + b"w" + U64.pack(expect)
        for key, raw in self.store.scan(start, self.prefix + b"x"):
            seq = U64.unpack(key[-8:])[0]
            if seq != expect:
                return False
            e = wal.decode(raw)
            if seq > self.applied_seq:
                removed, added, vecs = self._primary_part(e.removed, e.added, e.vectors, e.bare,
                                                          e.bare_removed)
                self._apply_index(self.exact, self.ann, removed, added,
                                  prepare(np.array(vecs), self.metric))
                self.applied_seq = seq
            if self.named is not None:
                self.named.apply(seq, e.removed, e.added, e.named)
            expect = seq + 1
        return self.applied_seq == self.last_seq and (
            self.named is None or self.named.replay_from() == self.last_seq)

    def _vector_chunks(self, size: int = 4_096):
        """(labels, raw vectors) of every stored primary vector, in label order, in chunks
        (a lean checkpoint's graph is refilled from them)."""
        labels, chunks, dim = [], [], self.config.dim
        for key, raw in self.store.scan(self.prefix + b"v", self.prefix + b"w", fill_cache=False):
            labels.append(key[-8:])
            chunks.append(raw)
            if len(labels) >= size:
                yield (np.frombuffer(b"".join(labels), _I64).astype(np.int64),
                       np.frombuffer(b"".join(chunks), np.float32).reshape(-1, dim))
                labels, chunks = [], []
        if labels:
            yield (np.frombuffer(b"".join(labels), _I64).astype(np.int64),
                   np.frombuffer(b"".join(chunks), np.float32).reshape(-1, dim))

    def _rebuild_from_records(self) -> None:
        self._set_exact(self._empty_exact())
        self.ann = None
        if self.config.on_disk and self._rebuild_on_disk():
            return
        for labels, vecs in self._vector_chunks():
            self.exact.add_with_ids(prepare(vecs.copy(), self.metric), labels)
        if self.quant:
            remove_other_gens(self.dir, self.exact.gen)
        if self.named is not None:
            self.named.rebuild(self.last_seq)
        self.applied_seq = self.last_seq
        self.checkpoint_seq = -1  # force a fresh checkpoint

    def _rebuild_on_disk(self) -> bool:
        """An on-disk shard past its build threshold streams RocksDB's vectors into a new
        base (ondisk.rebuild; never all in RAM); False below it (rebuilt in RAM, flat)."""
        n = sum(1 for _ in self.store.scan(self.prefix + b"v", self.prefix + b"w"))
        if n < min_build_points(self.config.index):
            return False
        chunks = lambda: ((labels, prepare(vecs.copy(), self.metric))  # noqa: E731
                          for labels, vecs in self._vector_chunks())
        self.ann = ondisk.rebuild(self.dir, self.config.index, self.metric, self.config.dim, n, chunks)
        self._attach(self.ann)
        self._set_exact(ondisk.DiskVectors(self.ann))
        self.applied_seq = self.last_seq
        self.checkpoint_seq = -1  # force a fresh checkpoint
        return True

    # ---- reads ------------------------------------------------------------
    @property
    def count(self) -> int:
        """The live points (with or without the primary vector)."""
        return self.exact.ntotal + len(self.bare)

    def members(self) -> np.ndarray:
        """Every live label, unsorted: the primary's and those without it."""
        labels = self.live_labels()
        if not self.bare:
            return labels
        return np.concatenate([labels, self._bare_labels()])

    def _bare_labels(self) -> np.ndarray:
        """self.bare as a sorted array, built once per change of the set (filtered searches
        of the primary read it on every call)."""
        if self._bare_sorted is None:
            self._bare_sorted = np.sort(np.fromiter(self.bare, np.int64, len(self.bare)))
        return self._bare_sorted

    def with_primary(self, labels: np.ndarray) -> np.ndarray:
        """Those of ``labels`` that carry the primary vector (order kept)."""
        if not self.bare or not len(labels):
            return labels
        bare = self._bare_labels()
        at = np.minimum(np.searchsorted(bare, labels), len(bare) - 1)
        return labels[bare[at] != labels]

    def search(self, queries: np.ndarray, k: int, params: SearchParams,
               node: Clause | None = None) -> tuple[np.ndarray, np.ndarray, str]:
        """(scores, labels, plan): each (q, <=k); labels -1 where fewer hits exist.
        ``node``: a parsed filter. Expired points are never returned."""
        omp.for_search(len(queries), self.config.shards)
        with self.lock.read():
            exclude = self.expiry.expired()
            if node is None and not len(exclude):
                return (*self._search_locked(queries, k, params), "ann" if self.ann and not params.exact
                        else "exact")
            return planner.search(self, queries, k, params, node, exclude)

    def matching(self, node: Clause | None) -> np.ndarray:
        """Sorted labels of the live, unexpired points matching ``node``."""
        with self.lock.read():
            return planner.matching(self, node, self.expiry.expired())[0]

    def count_visible(self) -> int:
        with self.lock.read():
            return self.count - len(self.expiry.expired())

    def range_search(self, queries: np.ndarray, threshold: float, params: SearchParams,
                     node: Clause | None) -> list[tuple[np.ndarray, np.ndarray]]:
        """Per query (scores, labels) of every point scoring better than ``threshold``
        (ip/cosine: score > threshold; l2: distance < threshold). Unsorted."""
        omp.for_search(len(queries))
        with self.lock.read():
            if self.exact.ntotal == 0:
                return [(np.zeros(0, np.float32), np.zeros(0, np.int64))] * len(queries)
            exclude = self.expiry.expired()
            sel = None
            if node is not None or len(exclude):
                sel = planner.selector(planner.matching(self, node, exclude)[0])
            return range_search(self.exact, self.ann, self.config.index, queries, threshold,
                                params.nprobe, params.exact, sel)

    def _search_locked(self, queries: np.ndarray, k: int, params: SearchParams):
        ann, n = self.ann, self.exact.ntotal
        if n == 0:
            return np.zeros((len(queries), 0), np.float32), np.zeros((len(queries), 0), np.int64)
        if params.exact or ann is None:
            got = self.gpu.search_exact(queries, min(k, n)) if self.gpu is not None else None
            return got if got is not None else self.exact.search(queries, min(k, n))
        return self.ann_search(queries, k, params, None, n)

    def ann_search(self, queries: np.ndarray, k: int, params: SearchParams, sel, pool: int):
        """Search the built ANN index (caller holds the read lock). ``sel``: allowed labels
        or None; ``pool``: how many points it could return at most (bounds the IVF-PQ
        candidates, k*refine, that are re-scored exactly)."""
        spec, ann = self.config.index, self.ann
        if ann.quant:  # codes pick k*rescore candidates, re-scored from the on-disk vectors
            kk = min(k * self.config.rescore_factor, pool)
        else:
            kk = min(k * spec.param("refine"), pool) if ann.kind == "ivf_pq" else k
        got = None
        if sel is None and self.gpu is not None:
            got = self.gpu.search_ann(queries, kk, params, spec)
        if got is None:
            sp = search_params(ann, spec, kk if ann.quant else k, params.nprobe, params.ef_search,
                               sel=sel)
            if isinstance(ann, ondisk.DiskIvf):  # reads the lists to probe ahead
                ann.prefetch(queries, sp.nprobe)
            got = ann.index.search(queries, kk, params=sp)
        if ann.kind == "ivf_pq" or ann.quant:
            return rerank(self.exact, queries, got[1], k, "l2" if self.metric == "l2" else "ip")
        return got

    def _label_keys(self, kind: bytes, labels: np.ndarray) -> list[bytes]:
        raw = np.ascontiguousarray(labels, dtype=_I64).tobytes()
        head = self.prefix + kind
        return [head + raw[i:i + 8] for i in range(0, len(raw), 8)]

    def hydrate(self, labels: np.ndarray, with_payload: bool, with_vector: bool,
                raw_payloads: bool = False):
        """ids, payloads, texts, vectors for labels (id "" where not live); ``raw_payloads``:
        payloads as their stored JSON bytes. Ids come from the id column where it knows
        them; records are read (one multi-get) for the others, and for the payloads and
        texts of the points not known to have none. What is read is learned (while
        payloads are read and no plain point is known yet: the plain ones only)."""
        ids, known = self.id_column.lookup(labels, with_payload)
        n = len(ids)
        payloads, texts = [None] * n, [None] * n
        need = [j for j, pid in enumerate(ids) if pid is None]
        if need:
            epoch = self.id_column.epoch
            labs = labels[need] if len(need) < n else labels
            recs = self.store.multi_get(self._label_keys(b"p", labs))
            new_labs, new_recs = [], []
            for j, lab, r in zip(need, labs.tolist(), recs):
                if r is None:
                    ids[j] = ""
                    continue
                ids[j], pay, txt = records.decode(r, with_payload, with_payload, raw_payloads)
                payloads[j], texts[j] = pay, txt
                if (pay is None and txt is None) if known is None else not known[j]:
                    new_labs.append(lab)
                    new_recs.append(r)
            if new_labs:
                self.id_column.learn(new_labs, new_recs, epoch)
        vectors = None
        if with_vector:
            vectors, gone = self._vectors(labels)
            for j in gone:  # rewritten or deleted since its label was read: not live
                ids[j], payloads[j], texts[j] = "", None, None
        return ids, payloads, texts, vectors

    def _vectors(self, labels: np.ndarray) -> tuple[np.ndarray, list[int]]:
        """The labels' vectors (zeros where none) and the rows whose vector is gone. A
        point without the primary vector has none by design: its ``o`` marker, written in
        the same batch as its records, says so (``self.bare`` follows only once the
        write is applied, after its commit)."""
        raws = self.store.multi_get(self._label_keys(b"v", labels))
        dim = self.config.dim
        gone = [j for j, r in enumerate(raws) if r is None]
        if gone and self.config.vectors:  # (named vector fields: points may be bare)
            marks = self.store.multi_get(self._label_keys(b"o", labels[gone]))
            gone = [j for j, m in zip(gone, marks) if m is None]
        vecs = np.frombuffer(b"".join(r or bytes(dim * 4) for r in raws), dtype=np.float32)
        return vecs.reshape(-1, dim), gone

    def get(self, ids: list[str], with_vector: bool, with_payload: bool) -> dict[str, Point]:
        """The live ones of ``ids``. Reads take no lock: a point rewritten (an upsert, a
        payload update: a new label) between the look-up of its label and the read of its
        records is looked up again, so it comes back whole, never half read."""
        out: dict[str, Point] = {}
        for _ in range(GET_TRIES):
            again = self._get_once(ids, with_vector, with_payload, out)
            if not again:
                break
            ids = again
        return out

    def _get_once(self, ids: list[str], with_vector: bool, with_payload: bool,
                  out: dict[str, Point]) -> list[str]:
        """Adds those of ``ids`` read whole to ``out``; returns those whose records went
        between the look-up and the read."""
        found = [(pid, lab) for pid, lab in zip(ids, self.labels_of(ids)) if lab is not None]
        if found and len(self.expiry):
            expired = set(self.expiry.expired().tolist())
            found = [(pid, lab) for pid, lab in found if lab not in expired]
        if not found:
            return []
        labels = np.array([lab for _, lab in found], dtype=np.int64)
        got, payloads, texts, vectors = self.hydrate(labels, with_payload, with_vector)
        named = (self.named.vectors_of(labels.tolist()) if with_vector and self.named is not None
                 else None)
        bare: set[int] = set()
        if named is not None:  # read after the records: the label must still be theirs
            now = self.labels_of([pid for pid, _ in found])
            got = ["" if a != lab else g for g, a, (_, lab) in zip(got, now, found)]
            bare = self._bare_rows(labels, vectors)
        again = []
        for j, (pid, lab) in enumerate(found):
            if got[j] == "":
                again.append(pid)
                continue
            out[pid] = Point(pid, None if vectors is None or lab in self.bare or j in bare
                             else vectors[j].copy(), payloads[j], texts[j],
                             None if named is None else named[j])
        return again

    def _bare_rows(self, labels: np.ndarray, vectors: np.ndarray | None) -> set[int]:
        """Rows of points without the primary vector by their ``o`` markers (``self.bare``
        follows a write only once it is applied, after its commit)."""
        if vectors is None:
            return set()
        zero = np.flatnonzero(~vectors.any(axis=1))
        if not len(zero):
            return set()
        marks = self.store.multi_get(self._label_keys(b"o", labels[zero]))
        return {int(j) for j, m in zip(zero, marks) if m is not None}

    def expiry_of(self, ids: list[str]) -> dict[str, int]:
        """id -> expiry (ms since the epoch) of the given points that have a TTL."""
        if not self.expiry.at:
            return {}
        return {pid: self.expiry.at[lab] for pid, lab in zip(ids, self.labels_of(ids))
                if lab is not None and lab in self.expiry.at}

    def get_for_rewrite(self, ids: list[str]) -> dict[str, tuple[Point, int | None]]:
        """Unexpired points with vector, payload and text, plus their expiry (ms or None)."""
        got = self.get(ids, with_vector=True, with_payload=True)
        labels = dict(zip(ids, self.labels_of(ids)))
        return {pid: (p, self.expiry.at.get(labels[pid])) for pid, p in got.items()}

    def scroll_ids(self, after: str | None, limit: int) -> list[str]:
        start = self.prefix + b"i" + (after.encode() + b"\x00" if after is not None else b"")
        out = []
        for key, _ in self.store.scan(start, self.prefix + b"j"):
            out.append(key[len(self.prefix) + 1:].decode())
            if len(out) >= limit:
                break
        return out

    # ---- background work ------------------------------------------------------
    def needs_build(self) -> bool:
        spec = self.config.index
        if spec.type == "flat" or self.building:
            return False
        if self._failed_at == self.applied_seq:
            return False  # the last build failed on this exact state; wait for more writes
        if self.ann is None:
            return self.exact.ntotal >= min_build_points(spec)
        return self.ann.needs_rebuild(self.exact.ntotal, spec)

    def build(self) -> bool:
        """Build (or rebuild) the ANN index from a snapshot, then swap it in. However the
        build ends (an error, a MemoryError in the snapshot, KeyboardInterrupt) the shard
        leaves the "training" state and writers held back by await_build go on."""
        started = ended = False
        try:
            with self.lock.write():
                if not self.needs_build():
                    return False
                self.building, self._pending, self._pending_added = True, [], 0
                started = True
                self._built.clear()
                self._build_size = self.exact.ntotal
                frozen = self.ann.frozen() if isinstance(self.ann, ondisk.DiskIvf) else None
                if self.quant:  # trained and filled from the vector file: no copy in RAM
                    store, upto = self.exact, self.exact.rows
                elif frozen is None:
                    labels, vecs = snapshot(self.exact)
            try:
                if self.quant:
                    ann: Ann | None = quant.build(self.quant, self.config.index, self.metric, store, upto)
                elif frozen is not None:  # a new base generation: merged, or retrained (ondisk.py)
                    ann = ondisk.merge(frozen, self.config.index, self.metric)
                else:
                    ann = build_ann(self.config.index, self.metric, labels, vecs)
                    if self.config.on_disk:
                        ann = ondisk.from_ann(ann, self.dir)
            except Exception:
                log.exception("shard %s/%d: index build failed; staying on the current index",
                              self.config.name, self.number)
                ann = None
            if not self.quant and frozen is None:
                del labels, vecs
            del frozen
            with self.lock.write():
                try:
                    if ann is None:
                        self._failed_at = self.applied_seq
                    else:
                        if isinstance(ann, ondisk.DiskIvf):
                            self._attach(ann)
                        replay(ann, self.exact, self.live_labels(), self._pending)
                        self.ann, self._ann_dirty = ann, True
                        self._set_exact(self._exact_of(ann))  # one copy of the vectors
                finally:
                    ended = True
                    self._end_build()
        finally:
            if started and not ended:  # raised before the swap: the current index stays
                with self.lock.write():
                    self._end_build()
        if ann is None:
            return False
        log.info("shard %s/%d: %s index built over %d points", self.config.name, self.number,
                 ann.kind, ann.trained_on)
        self.refresh_gpu()
        return True

    def _end_build(self) -> None:
        """Out of the "training" state (write lock held): the missed writes are no longer
        kept, and writers held back by await_build go on."""
        self.building, self._pending = False, None
        self._built.set()

    def refresh_gpu(self) -> None:
        """GPU background work (vecdb.gpu_index.ShardGpu.maintain): merge the flat segments
        when due, copy the built ANN index to the GPU when its copy is missing or stale (an
        IVF copy is made under the read lock: writes wait; a CAGRA graph is built from a
        snapshot without the lock). Not while an ANN build runs."""
        if self.gpu is None:
            return
        ann = None if self.building else self.ann
        degree = 2 * self.config.index.param("M") if ann is not None and ann.kind == "hnsw" else 0
        self.gpu.maintain(self.lock, ann, degree)

    def build_payload_index(self, field: str, kind: str) -> None:
        """Index a field from RocksDB while writes continue, then make it usable.

        The index is registered first, so every op applied from then on updates
        it; the records are then read. A label removed meanwhile may still be
        read from the scan: labels are never reused, so removing those again at
        the end is exact. A payload replaced meanwhile (apply_payloads) may be read
        old from the scan: those are indexed again at the end."""
        fi = FieldIndex(field, kind, self.config.full_text)
        with self.lock.write():
            self.pindex.building[field] = fi
            self.pindex.removed_while_building[field] = removed = set()
            self.pindex.replaced_while_building[field] = replaced = {}
        batch: list = []
        for rec in self.iter_records():  # read without the lock, indexed under it (in
            batch.append(rec)            # batches): the writers update the same index
            if len(batch) >= 4096:
                with self.lock.write():
                    for lab, _, pay, txt in batch:
                        fi.add(lab, pay, txt)
                batch = []
        with self.lock.write():
            for lab, _, pay, txt in batch:
                fi.add(lab, pay, txt)
            for lab, (pay, txt) in replaced.items():
                fi.remove(lab)
                fi.add(lab, pay, txt)
            for lab in removed:
                fi.remove(lab)
            del self.pindex.building[field], self.pindex.removed_while_building[field]
            del self.pindex.replaced_while_building[field]
            self.pindex.ready[field] = fi

    def drop_payload_index(self, field: str) -> None:
        with self.lock.write():
            self.pindex.ready.pop(field, None)

    @contextlib.contextmanager
    def checkpoint_files(self):
        """(seq, directory) of the current checkpoint, held still (no new checkpoint
        replaces it) while the caller copies it; directory None when there is none."""
        with self._ckpt_lock:
            path = os.path.join(self.dir, f"{checkpoint.PREFIX}{self.checkpoint_seq:020d}")
            yield self.checkpoint_seq, path if os.path.isdir(path) else None

    def retire(self) -> None:
        """The collection is being dropped: wait for a running checkpoint, skip later ones."""
        with self._ckpt_lock:
            self.retired = True
        self.release()

    def release(self) -> None:
        """Free what the shard holds outside Python's memory: its GPU copies (under their
        GPU's lock) and a quantized shard's vector file handle."""
        if self.gpu is not None:
            self.gpu.release()
        if isinstance(self.exact, VectorFile):
            with self.lock.write():  # searches in flight finish first
                self.exact.close()
        if self.text_index is not None:
            with self.lock.write():
                self.text_index.close()

    def checkpoint(self) -> bool:
        with self._ckpt_lock:
            if self.retired:
                return False
            stale = self._compact_vectors()
            with self.lock.read():
                if self.text_index is not None:  # its own checkpoint (vecdb/fulltext.py)
                    self.text_index.commit(marker=True)
                seq = self.applied_seq
                named_dirty = self.named is not None and self.named.dirty
                if seq == self.checkpoint_seq and not self._ann_dirty and not named_dirty:
                    return False
                # writers wait; an HNSW graph's vectors are left to the records (lean)
                dumped = checkpoint.dump(self.dir, self.exact, self.ann, lean=True)
                named = self.named.dump() if self.named is not None else []
                self._ann_dirty = False
            try:
                NamedVectors.commit(seq, named)  # before the primary's: WAL truncation follows it
                checkpoint.commit(self.dir, seq, dumped)
            except BaseException:
                self._ann_dirty = True  # the next round writes the whole state again
                raise
            self.checkpoint_seq = seq
            if isinstance(self.ann, ondisk.DiskIvf):  # older base generations are unnamed now
                ondisk.remove_gens(self.dir, self.ann.gen, older_only=True)
            if stale is not None:  # the new checkpoint names the compacted file
                remove_other_gens(self.dir, self.exact.gen)
            # the WAL keeps what recovery needs: the entries after this checkpoint (replicas
            # catch up from the cluster's replication log, server/vecdb_server/cluster/catchup.py)
            wb = self.store.batch()
            wb.delete_range(self.prefix + b"w", self.prefix + b"w" + U64.pack(seq + 1))
            self.store.write(wb, sync=False)
            # deleted entries hold their space until compacted: after a bulk load that is a
            # second copy of its vectors on disk
            if (self.next_label - self._wal_compacted_label) * self.config.dim * 4 >= WAL_COMPACT_BYTES:
                self.store.compact(self.prefix + b"w", self.prefix + b"x")
                self._wal_compacted_label = self.next_label
            return True

    def _compact_vectors(self) -> int | None:
        """Rewrite a quantized shard's vector file without its deleted rows when they pass
        half of it (under the write lock: writes and searches wait for the copy). Returns
        the replaced generation (deleted once a checkpoint names the new one), else None."""
        if not self.quant or self.building or not self.exact.needs_compaction():
            return None
        with self.lock.write():
            if self.building or not self.exact.needs_compaction():
                return None
            old = self.exact
            self.exact = old.compacted()
            old.close()
            self.universe_cache = None
            self._ann_dirty = True  # a checkpoint must name the new file
            return old.gen

    def memory_bytes(self) -> int:
        """Host RAM of the exact store (the label columns only when quantized), the ANN index,
        the named vector fields' indexes and the id column (vecdb/id_column.py)."""
        exact = self.exact.memory_bytes() if isinstance(self.exact, (VectorFile, AnnVectors)) \
            else quant.index_bytes(self.exact)
        named = (self.named.memory_bytes() if self.named is not None else 0) + self.id_column.nbytes
        if isinstance(self.ann, ondisk.DiskIvf):  # its mapped lists are page cache
            return exact + self.ann.memory_bytes() + named
        return exact + (quant.index_bytes(self.ann.index) if self.ann is not None else 0) + named

    def stats(self) -> ShardStats:
        state = "training" if self.building else ("built" if self.ann else "exact")
        return ShardStats(points=self.count, index_state=state,
                          index_type=self.ann.kind if self.ann else "flat",
                          applied_seq=self.applied_seq, checkpoint_seq=max(self.checkpoint_seq, 0),
                          deleted_pending=len(self.ann.tombstones) if self.ann else 0,
                          device=self.gpu.device if self.gpu is not None else "cpu",
                          gpu_memory_bytes=self.gpu.nbytes if self.gpu is not None else 0,
                          built_params=built_params(self.ann) if self.ann else {},
                          memory_bytes=self.memory_bytes(),
                          vectors=self.named.stats() if self.named is not None else {},
                          **(self.gpu.stats() if self.gpu is not None else {}))
