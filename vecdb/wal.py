"""The sequenced operation log: a versioned binary record per mutation batch.

An entry is written in the same RocksDB WriteBatch as the records it
describes, under key S<uid><shard>w<seq>. It holds what the FAISS index of
the shard needs to replay the batch: labels removed, labels added with
their vectors, and the string ids of the added points (for change streams
and replicas later). Payloads are not repeated here; they live in the
point records written in the same batch.

Format v1 (little-endian):
    u8  version (=1)  u8 op (1 upsert, 2 delete, 3 update)  u32 n_add  u32 n_remove  u32 dim
    i64[n_remove] removed labels
    i64[n_add]    added labels
    f32[n_add*dim] added vectors
    n_add x (u16 len, utf-8 id)
Format v2 (named vectors, vecdb/named_vectors.py): v1 with version 2, then
    u16 n_fields, per field: u16 len, utf-8 name, u32 n, u32 dim, i64[n] labels, f32[n*dim]
    and, when some points added or removed carry no primary vector (added rows: zeros):
    u32 n, i64[n] those added, u32 m, i64[m] those removed (absent in entries written
    before: every point had it)
Entries without named vectors are written as v1, so single-vector shards write what
they always wrote.
"""
from __future__ import annotations

import struct
from dataclasses import dataclass

import numpy as np

from .errors import FailedPrecondition

VERSION = 1
VERSION_NAMED = 2
OP_UPSERT, OP_DELETE = 1, 2
HEADER = struct.Struct("<BBIII")


@dataclass(frozen=True)
class WalEntry:
    op: int
    removed: np.ndarray  # int64
    added: np.ndarray  # int64
    vectors: np.ndarray  # float32 (n_add, dim)
    ids: list[str]
    named: dict | None = None  # field -> (labels int64, vectors float32 (n, dim))
    bare: np.ndarray | None = None  # added labels without the primary vector (int64)
    bare_removed: np.ndarray | None = None  # removed labels that had none


def encode(op: int, removed: np.ndarray, added: np.ndarray, vectors: np.ndarray,
           ids: list[str], named: dict | None = None, bare: np.ndarray | None = None,
           bare_removed: np.ndarray | None = None) -> bytes:
    dim = vectors.shape[1] if vectors.ndim == 2 else 0
    tail = None  # single-vector entries (the hot path) build no tail
    if (bare is not None and len(bare)) or (bare_removed is not None and len(bare_removed)):
        tail = [np.zeros(0, np.int64) if x is None else x for x in (bare, bare_removed)]
    parts = [HEADER.pack(VERSION_NAMED if named or tail else VERSION, op, len(added),
                         len(removed), dim),
             np.ascontiguousarray(removed, dtype="<i8").tobytes(),
             np.ascontiguousarray(added, dtype="<i8").tobytes(),
             np.ascontiguousarray(vectors, dtype="<f4").tobytes()]
    for pid in ids:
        raw = pid.encode()
        parts.append(struct.pack("<H", len(raw)))
        parts.append(raw)
    if named or tail:
        parts.append(struct.pack("<H", len(named or {})))
        for name, (labels, vecs) in (named or {}).items():
            raw = name.encode()
            parts += [struct.pack("<H", len(raw)), raw, struct.pack("<II", len(labels), vecs.shape[1]),
                      np.ascontiguousarray(labels, dtype="<i8").tobytes(),
                      np.ascontiguousarray(vecs, dtype="<f4").tobytes()]
    for labels in tail or ():
        parts += [struct.pack("<I", len(labels)), np.ascontiguousarray(labels, dtype="<i8").tobytes()]
    return b"".join(parts)


def decode(raw: bytes) -> WalEntry:
    version, op, n_add, n_rem, dim = HEADER.unpack_from(raw, 0)
    if version not in (VERSION, VERSION_NAMED):
        raise FailedPrecondition(f"WAL entry has unsupported format version {version}", "wal")
    off = HEADER.size
    removed = np.frombuffer(raw, dtype="<i8", count=n_rem, offset=off)
    off += 8 * n_rem
    added = np.frombuffer(raw, dtype="<i8", count=n_add, offset=off)
    off += 8 * n_add
    vectors = np.frombuffer(raw, dtype="<f4", count=n_add * dim, offset=off).reshape(n_add, dim)
    off += 4 * n_add * dim
    ids = []
    for _ in range(n_add):
        (ln,) = struct.unpack_from("<H", raw, off)
        off += 2
        ids.append(raw[off:off + ln].decode())
        off += ln
    named, bare, gone = _decode_named(raw, off) if version == VERSION_NAMED else (None,) * 3
    return WalEntry(op, removed, added, vectors, ids, named, bare, gone)


def _decode_named(raw: bytes, off: int) -> tuple:
    (count,) = struct.unpack_from("<H", raw, off)
    off += 2
    named = {}
    for _ in range(count):
        (ln,) = struct.unpack_from("<H", raw, off)
        name = raw[off + 2:off + 2 + ln].decode()
        n, dim = struct.unpack_from("<II", raw, off + 2 + ln)
        off += 10 + ln
        labels = np.frombuffer(raw, dtype="<i8", count=n, offset=off)
        off += 8 * n
        named[name] = (labels, np.frombuffer(raw, dtype="<f4", count=n * dim, offset=off).reshape(n, dim))
        off += 4 * n * dim
    if off >= len(raw):
        return named, None, None
    (n,) = struct.unpack_from("<I", raw, off)
    bare = np.frombuffer(raw, dtype="<i8", count=n, offset=off + 4)
    off += 4 + 8 * n
    (m,) = struct.unpack_from("<I", raw, off)
    return named, bare, np.frombuffer(raw, dtype="<i8", count=m, offset=off + 4)
