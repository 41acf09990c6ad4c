"""A collection: routes ids to shards, commits batches atomically, fans searches out.

Writers are serialized per collection (one lock held across prepare, the
RocksDB commit and apply), so WAL order equals apply order in every shard.
A mutation batch spanning several shards is ONE RocksDB WriteBatch: it is
all-or-nothing across shards.
"""
from __future__ import annotations

import base64
import binascii
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import checkpoint, validation
from .config import DatabaseOptions
from .errors import InvalidArgument, NotFound
from .index import higher_is_better, prepare
from .shard import Shard
from .storage import Store
from .topk import merge, shard_of
from .types import CollectionConfig, Point, ScrollPage, SearchParams, SearchResult, WriteResult


class Collection:
    def __init__(self, store: Store, config: CollectionConfig, directory: str,
                 options: DatabaseOptions, pool: ThreadPoolExecutor):
        self.store, self.config, self.dir, self.options, self.pool = store, config, directory, options, pool
        self.shards = [Shard(store, config, i, os.path.join(directory, f"shard-{i}"))
                       for i in range(config.shards)]
        self.write_lock = threading.Lock()
        self.retired = False

    def retire(self) -> None:
        """Called on drop: wait for in-flight writes and checkpoints, refuse later ones."""
        with self.write_lock:
            self.retired = True
            for shard in self.shards:
                shard.retire()

    def recover(self) -> None:
        for shard in self.shards:
            shard.recover()

    def _route(self, ids: list[str]) -> dict[int, list[int]]:
        groups: dict[int, list[int]] = {}
        for j, pid in enumerate(ids):
            groups.setdefault(shard_of(pid, self.config.shards), []).append(j)
        return groups

    # ---- writes -------------------------------------------------------------
    def upsert(self, ids, vectors, payloads=None, texts=None) -> WriteResult:
        ids = validation.ids(ids)
        if not ids:
            return WriteResult(0, {})
        vecs = validation.vectors(vectors, self.config.dim, len(ids))
        if self.config.metric == "cosine":
            zero = np.flatnonzero(~np.any(vecs, axis=1))
            if len(zero):
                raise InvalidArgument(f"vectors[{zero[0]}] is all zeros; cosine needs a non-zero vector",
                                      "vectors")
        pays = validation.payloads(payloads, len(ids), self.options.max_payload_bytes)
        txts = validation.texts(texts, len(ids), self.options.max_text_bytes)
        groups = self._route(ids)
        with self.write_lock:
            wb = self.store.batch()
            ops = []
            for s, rows in groups.items():
                ops.append((s, self.shards[s].prepare_upsert(
                    wb, [ids[j] for j in rows], vecs[rows], [pays[j] for j in rows], [txts[j] for j in rows])))
            return self._commit(wb, ops, len(ids))

    def delete(self, ids) -> WriteResult:
        ids = validation.ids(ids, unique=False)
        ids = list(dict.fromkeys(ids))
        groups = self._route(ids)
        with self.write_lock:
            wb = self.store.batch()
            ops = []
            for s, rows in groups.items():
                op = self.shards[s].prepare_delete(wb, [ids[j] for j in rows])
                if op is not None:
                    ops.append((s, op))
            return self._commit(wb, ops, sum(len(op.removed) for _, op in ops))

    def _commit(self, wb, ops, count: int) -> WriteResult:
        if self.retired:
            raise NotFound(f"collection {self.config.name!r} was dropped", "collection")
        if not ops:
            return WriteResult(0, {})
        self.store.write(wb)
        for s, op in ops:
            self.shards[s].apply(op)
        return WriteResult(count, {s: op.seq for s, op in ops})

    # ---- reads --------------------------------------------------------------
    def count(self) -> int:
        return sum(s.count for s in self.shards)

    def get(self, ids, with_vector: bool, with_payload: bool) -> list[Point]:
        ids = validation.ids(ids, unique=False)
        found: dict[str, Point] = {}
        for s, rows in self._route(ids).items():
            found.update(self.shards[s].get([ids[j] for j in rows], with_vector, with_payload))
        return [found[pid] for pid in ids if pid in found]

    def scroll(self, limit: int, cursor: str | None, with_vector: bool, with_payload: bool) -> ScrollPage:
        limit = validation.int_in(limit, 1, 10_000, "limit")
        after = _decode_cursor(cursor)
        candidates = sorted(pid for s in self.shards for pid in s.scroll_ids(after, limit + 1))
        page = candidates[:limit]
        points = self.get(page, with_vector, with_payload)
        more = len(candidates) > limit
        return ScrollPage(points, _encode_cursor(page[-1]) if more and page else None)

    def search(self, queries, k: int, params: SearchParams, with_payload: bool,
               with_vector: bool) -> list[SearchResult]:
        k = validation.k(k)
        q = validation.vectors(queries, self.config.dim, None, "queries")
        for name in ("nprobe", "ef_search"):
            v = getattr(params, name)
            if v is not None:
                validation.int_in(v, 1, 1 << 20, name)
        if len(q) == 0:
            return []
        q = prepare(q, self.config.metric)
        if len(self.shards) == 1:
            parts = [self.shards[0].search(q, k, params)]
        else:
            parts = list(self.pool.map(lambda s: s.search(q, k, params), self.shards))
        scores, which, labels = merge(parts, k, higher_is_better(self.config.metric))
        return self._hydrate(scores, which, labels, with_payload, with_vector)

    def _hydrate(self, scores, which, labels, with_payload, with_vector) -> list[SearchResult]:
        nq = scores.shape[0]
        valid = labels >= 0
        ids = np.empty(labels.shape, dtype=object)
        pays = np.empty(labels.shape, dtype=object)
        txts = np.empty(labels.shape, dtype=object)
        vecs = np.zeros(labels.shape + (self.config.dim,), np.float32) if with_vector else None
        for s in np.unique(which[valid]):
            mask = valid & (which == s)
            # result sets repeat labels across queries: fetch each once
            uniq, inverse = np.unique(labels[mask], return_inverse=True)
            got_ids, got_p, got_t, got_v = self.shards[int(s)].hydrate(uniq, with_payload, with_vector)
            ids[mask] = _objects(got_ids)[inverse]
            pays[mask] = _objects(got_p)[inverse]
            txts[mask] = _objects(got_t)[inverse]
            if with_vector:
                vecs[mask] = got_v[inverse]
        out = []
        for i in range(nq):
            m = valid[i]
            out.append(SearchResult(
                ids=ids[i][m].tolist(), scores=scores[i][m],
                payloads=pays[i][m].tolist() if with_payload else None,
                vectors=vecs[i][m] if with_vector else None,
                texts=txts[i][m].tolist() if with_payload else None))
        return out

    # ---- maintenance ----------------------------------------------------------
    def checkpoint(self) -> int:
        return sum(s.checkpoint(self.options.wal_retain) for s in self.shards)

    def build_indexes(self) -> int:
        return sum(s.build() for s in self.shards if s.needs_build())

    def bytes_on_disk(self) -> int:
        return sum(s.data_bytes for s in self.shards) + checkpoint.disk_bytes(self.dir)


def _objects(values: list) -> np.ndarray:
    arr = np.empty(len(values), dtype=object)
    arr[:] = values
    return arr


def _encode_cursor(last_id: str) -> str:
    """Opaque cursor: base64url of a version byte and the last id returned."""
    return base64.urlsafe_b64encode(b"\x01" + last_id.encode()).decode().rstrip("=")


def _decode_cursor(cursor: str | None) -> str | None:
    if not cursor:
        return None
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        if raw[:1] != b"\x01" or len(raw) < 2:
            raise ValueError("bad version")
        return raw[1:].decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise InvalidArgument("cursor is not a valid scroll cursor (pass back next_cursor unchanged)",
                              "cursor") from None
