"""A collection: routes ids to shards, commits batches atomically, fans searches out.

Writers are serialized per collection (one lock held across prepare, the
RocksDB commit and apply), so WAL order equals apply order in every shard.
A mutation batch spanning several shards is ONE RocksDB WriteBatch: it is
all-or-nothing across shards.
"""
from __future__ import annotations

import base64
import binascii
import contextlib
import dataclasses
import os
import struct
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from . import checkpoint, filters, named_vectors, omp, records, tenant_search, validation
from . import sparse as sparse_vectors
from .expiry import now_ms
from .gpu_index import reserve_for_write
from .filters import Clause, TenantScope
from .config import DatabaseOptions
from .errors import InvalidArgument, NotFound
from .index import higher_is_better, prepare
from .shard import Shard
from .storage import Store
from .tenants import TenantRegistry
from .topk import merge, shard_of
from .types import (CollectionConfig, Point, ScrollPage, SearchParams, SearchResult, WriteResult,
                    live_hits)

SEARCH_TRIES = 3  # searches of a query one of whose hits was rewritten while it was read


class Collection:
    def __init__(self, store: Store, config: CollectionConfig, directory: str,
                 options: DatabaseOptions, pool: ThreadPoolExecutor, gpu=None,
                 build_due=None):
        self.store, self.config, self.dir, self.options, self.pool = store, config, directory, options, pool
        # "cpu", or the GPU backend ("faiss"/"torch") of vecdb.gpu.GpuContext ``gpu``
        # (quantized collections run on the CPU: their vectors live on disk, vecdb/quant.py)
        backend = ("cpu" if gpu is None or config.quantization or config.on_disk
                   else gpu.resolve(config.device, strict=False, name=config.name))
        self.shards = [Shard(store, config, i, os.path.join(directory, f"shard-{i}"), gpu, backend)
                       for i in range(config.shards)]
        for shard in self.shards:  # on-disk collections: writes kept in RAM before a merge
            shard.ondisk_delta_bytes = options.ondisk_delta_mb << 20
            shard.build_due = build_due
        self.write_lock = threading.Lock()
        # tenant validation, quotas, listing (vecdb/tenants.py); None without tenant_field
        self.tenants = TenantRegistry(self) if config.tenant_field else None
        self.retired = False
        # ids written or deleted while a re-embed job copies this collection (reembed.py)
        self._recorded: set[str] | None = None
        self.writers_inflight = 0  # public write calls running now (reembed waits for 0)
        self._inflight_lock = threading.Lock()

    def retire(self) -> None:
        """Called on drop: wait for in-flight writes and checkpoints, refuse later ones."""
        with self.write_lock:
            self.retired = True
            for shard in self.shards:
                shard.retire()

    def recover(self) -> None:
        for shard in self.shards:
            shard.recover()

    # ---- change recording (re-embed) ------------------------------------------
    def start_recording(self) -> None:
        with self.write_lock:
            self._recorded = set()

    def take_recorded(self) -> list[str]:
        """The ids changed since the last call (sorted), and start a new set."""
        with self._inflight_lock:
            got, self._recorded = self._recorded, (set() if self._recorded is not None else None)
        return sorted(got or ())

    def stop_recording(self) -> None:
        with self._inflight_lock:
            self._recorded = None

    def _record(self, ids) -> None:
        if self._recorded is not None:
            with self._inflight_lock:
                if self._recorded is not None:
                    self._recorded.update(ids)

    def count_writer(self, n: int) -> None:
        """A public write call starts (1) or ends (-1): reembed waits for none in flight."""
        with self._inflight_lock:
            self.writers_inflight += n

    def _writing(fn):  # noqa: N805 - decorator: counts the public write calls in flight
        def wrapper(self, *args, **kwargs):
            self.count_writer(1)
            try:
                return fn(self, *args, **kwargs)
            finally:
                self.count_writer(-1)
        wrapper.__name__, wrapper.__doc__ = fn.__name__, fn.__doc__
        return wrapper

    def _route(self, ids: list[str]) -> dict[int, list[int]]:
        if len(self.shards) == 1:  # (a cluster node's shard copies)
            return {0: list(range(len(ids)))} if ids else {}
        if self.tenants is not None:  # placed by tenant: found where stored (vecdb/tenants.py)
            return self.tenants.locate(ids)
        groups: dict[int, list[int]] = {}
        for j, pid in enumerate(ids):
            groups.setdefault(shard_of(pid, self.config.shards), []).append(j)
        return groups

    # ---- writes -------------------------------------------------------------
    @_writing
    def upsert(self, ids, vectors, payloads=None, texts=None, ttl=None, sparse=None,
               named=None) -> WriteResult:
        """``vectors`` None: the collection's encoder embeds ``texts`` (one per point,
        "document" kind) outside the write lock; given vectors are stored as they are.
        ``sparse``: one sparse vector (indices, values) or None per point (vecdb/sparse.py).
        ``named``: {field: vectors, one per point or None} of named vector fields
        (vecdb/named_vectors.py); the primary may be given there under its name. An upsert
        replaces the point: named fields not given are gone from it. With named fields a
        point may lack the primary (None in ``vectors``, or named vectors only)."""
        named, vectors = self._split_primary(named, vectors)
        vectors, absent = named_vectors.primary_absent(self.config, vectors, named, texts, ids)
        args = self.checked_upsert(ids, vectors, payloads, texts, ttl, sparse)
        if not args[0]:
            return WriteResult(0, {})
        named = named_vectors.check_batch(self.config, named, len(args[0]))
        named = named_vectors.embed_texts(self, named, texts, len(args[0]))
        named_vectors.check_carried(absent, named)
        if absent is not None:
            args[1][absent] = 0  # the placeholders
        with self.adding():
            return self._upsert_locked(*args, named, absent)

    @contextlib.contextmanager
    def adding(self):
        """The write lock, for a write that adds points (an upsert, a rewrite: a rewritten
        point is a new label in the index): first waits (bounded) for the shards whose
        background build missed as many points as it was built from, holding no lock, so
        other writers and snapshots go on."""
        self.await_builds()
        with self.write_lock:
            yield

    def await_builds(self) -> None:
        """Shard.await_build of every shard (``adding``; write_across, which takes the
        write locks of several collections, calls it for each before taking any)."""
        for shard in self.shards:
            shard.await_build()

    def _split_primary(self, named, vectors):
        """(named, vectors) with the primary taken out of ``named`` when given there under
        its own name or as "" (without named fields every point must carry it)."""
        name = self.config.vector_name
        if named and name not in named and "" in named:
            name = ""  # the primary, whatever its name (as reads send it, docs/server_api.md)
        if not named or name not in named or (not name and not self.config.vectors):
            return named, vectors
        named = dict(named)
        values = named.pop(name)
        if vectors is not None:
            raise InvalidArgument(f"vectors.{name}: the primary vector is given twice (as vectors "
                                  "and by its name)", f"vectors.{name}")
        if isinstance(values, (list, tuple)):
            missing = [i for i, v in enumerate(values) if v is None]
            if missing and not self.config.vectors:
                where = f"points[{missing[0]}].vectors.{name}"
                raise InvalidArgument(f"{where}: every point needs the primary vector {name!r}", where)
        return named, values

    def checked_upsert(self, ids, vectors, payloads=None, texts=None, ttl=None,
                       sparse=None) -> tuple:
        """upsert's arguments validated, texts embedded when there are no vectors:
        (ids, vectors, payloads, texts, expiry, sparse) as prepare_upsert takes them."""
        ids = validation.ids(ids)
        if not ids:
            return ids, None, None, None, None, None
        if vectors is None:
            txts = validation.texts(texts, len(ids), self.options.max_text_bytes)
            vecs = self._vectors(self._embed(validation.encode_texts(
                texts, len(ids), self.config.encoder, self.config.name), "document"), len(ids))
        else:
            vecs = self._vectors(vectors, len(ids))
            txts = validation.texts(texts, len(ids), self.options.max_text_bytes)
        pays = validation.payloads(payloads, len(ids), self.options.max_payload_bytes)
        expire = validation.ttl(ttl, len(ids), now_ms())
        sps = sparse_vectors.check_batch(sparse, len(ids), self.config.sparse_dim)
        return ids, vecs, pays, txts, expire, sps

    def encoder(self):
        """The shared handle of this collection's encoder (None without one)."""
        if self.config.encoder is None:
            return None
        from .encoders import EncoderOptions, get_encoder
        return get_encoder(self.config.encoder, EncoderOptions.from_database_options(self.options))

    def embed_queries(self, texts) -> np.ndarray:
        """Query texts (a string or a list) -> their vectors from the collection's encoder."""
        txt = validation.query_texts(texts, self.config.encoder, self.config.name)
        return self._embed(txt, "query") if txt else np.zeros((0, self.config.dim), np.float32)

    def field_encoder(self, field):
        """The shared handle of a named vector field's encoder."""
        from .encoders import EncoderOptions, get_encoder
        return get_encoder(field.encoder, EncoderOptions.from_database_options(self.options))

    def embed_field_queries(self, field, texts) -> np.ndarray:
        """Query texts -> vectors of the named vector field ``field`` (its encoder)."""
        if field.encoder is None:
            raise InvalidArgument(f"using: vector field {field.name!r} has no encoder; give query "
                                  "vectors", "texts")
        txt = validation.query_texts(texts, field.encoder, self.config.name)
        return (self.field_encoder(field).encode(txt, "query") if txt
                else np.zeros((0, field.dim), np.float32))

    def _embed(self, texts: list[str], kind: str) -> np.ndarray:
        return self.encoder().encode(texts, kind)

    def _vectors(self, vectors, n: int) -> np.ndarray:
        vecs = validation.vectors(vectors, self.config.dim, n)
        if self.config.metric == "cosine":
            zero = np.flatnonzero(~np.any(vecs, axis=1))
            if len(zero):
                raise InvalidArgument(f"vectors[{zero[0]}] is all zeros; cosine needs a non-zero vector",
                                      "vectors")
        return vecs

    def _upsert_locked(self, ids, vecs, pays, txts, expire, sparse=None, named=None,
                       absent=None) -> WriteResult:
        wb = self.store.batch()
        return self._commit(wb, self.prepare_upsert(wb, ids, vecs, pays, txts, expire, sparse, named,
                                                    absent), len(ids))

    def prepare_upsert(self, wb, ids, vecs, pays, txts, expire, sparse=None, named=None,
                       absent=None) -> list:
        """The shard ops of an upsert (write lock held), added to ``wb``; commit() them.
        ``named``: {field: (rows, vectors)} (named_vectors.check_batch); ``absent``: a mask
        of the points without the primary (their rows of ``vecs`` are zeros)."""
        groups = self.tenants.check_write(ids, pays, txts) if self.tenants is not None else None
        self._record(ids)
        ops = []
        groups = self._route(ids) if groups is None else groups
        per_shard = named_vectors.split(named, groups) if named else {}
        for s, rows in groups.items():
            ops.append((s, self.shards[s].prepare_upsert(
                wb, [ids[j] for j in rows], vecs[rows], [pays[j] for j in rows], [txts[j] for j in rows],
                None if expire is None else [expire[j] for j in rows],
                None if sparse is None else [sparse[j] for j in rows], per_shard.get(s),
                None if absent is None else absent[rows])))
        return ops

    @_writing
    def delete(self, ids=None, filter=None, tenant=None) -> WriteResult:
        """``tenant`` (a tenant key): ids of other tenants are skipped (checked under the
        write lock); a filter is a TenantScope already."""
        node = self._selection(ids, filter)
        with self.write_lock:
            ids = self._ids_matching(node) if node is not None else self._own(tenant, list(
                dict.fromkeys(validation.ids(ids, unique=False))))
            return self._delete_locked(ids)

    def _own(self, tenant, ids: list[str]) -> list[str]:
        """Under the write lock: those of ``ids`` in tenant ``tenant`` (all when None)."""
        return ids if tenant is None else self.tenants.own_ids(tenant, ids)

    def _delete_locked(self, ids: list[str]) -> WriteResult:
        wb = self.store.batch()
        ops = self.prepare_delete(wb, ids)
        return self._commit(wb, ops, sum(len(op.removed) for _, op in ops))

    def prepare_delete(self, wb, ids: list[str]) -> list:
        """The shard ops deleting ``ids`` (write lock held), added to ``wb``; commit() them."""
        self._record(ids)
        ops = []
        for s, rows in self._route(ids).items():
            op = self.shards[s].prepare_delete(wb, [ids[j] for j in rows])
            if op is not None:
                ops.append((s, op))
        return ops

    @_writing
    def update_payload(self, ids=None, filter=None, set_keys=None, overwrite=None,
                       delete_keys=None, tenant=None) -> WriteResult:
        """Partial payload update of the points with these ids (or matching the filter),
        as ONE atomic, WAL-logged batch: ``overwrite`` replaces the payload, then
        ``set_keys`` merges top-level keys, then ``delete_keys`` removes keys."""
        node = self._selection(ids, filter)
        if set_keys is None and overwrite is None and delete_keys is None:
            raise InvalidArgument("give at least one of set, overwrite, delete_keys", "set")
        for name, v in (("set", set_keys), ("overwrite", overwrite)):
            if v is not None and not isinstance(v, dict):
                raise InvalidArgument(f"{name} must be a JSON object", name)
        if delete_keys is not None and (not isinstance(delete_keys, list) or
                                        not all(isinstance(k, str) for k in delete_keys)):
            raise InvalidArgument("delete_keys must be a list of strings", "delete_keys")

        def change(point: Point) -> dict:
            pay = dict(overwrite) if overwrite is not None else dict(point.payload or {})
            pay.update(set_keys or {})
            for key in delete_keys or ():
                pay.pop(key, None)
            return pay
        return self._rewrite(ids, node, change, None, tenant=tenant)

    @_writing
    def update_vectors(self, ids, vectors, named=None, tenant=None) -> WriteResult:
        """Replace the vectors of existing points; payload, text and TTL stay. ``vectors``
        None: the primary stays; ``named`` ({field: vectors or None per point}): those
        fields are set, the point's other named vectors stay. ``tenant`` (a tenant key):
        ids of other tenants are skipped (checked under the write lock)."""
        ids = validation.ids(ids)
        named, vectors = self._split_primary(named, vectors)
        named = named_vectors.check_batch(self.config, named, len(ids))
        if vectors is None and not named:
            raise InvalidArgument("give vectors or named vectors to update", "vectors")
        new = None if vectors is None else dict(zip(ids, self._vectors(vectors, len(ids))))
        return self._rewrite(ids, None, None, new, named_vectors.by_id(ids, named), tenant)

    @_writing
    @_writing
    def set_payloads(self, shard: int, labels: np.ndarray, payloads_of) -> list[int]:
        """Payload-only update of points of one shard, addressed by label (analytics
        write_label): under the write lock, ``payloads_of(labels, ids, payloads)`` gets
        the live ones' current payloads and returns their new ones, written as ONE atomic
        RocksDB batch. Vectors, texts, TTLs and labels stay: no FAISS index is touched and
        no WAL entry is written (payloads are not in it), so the cost is one read and one
        write of the records. Labels no longer live are skipped. Nothing is written when
        ``payloads_of`` raises or a payload is invalid. Returns the labels written."""
        s = self.shards[shard]
        with self.write_lock:
            if self.retired:
                raise NotFound(f"collection {self.config.name!r} was dropped", "collection")
            found = [(int(lab), raw) for lab, raw in zip(labels, s.records_of(labels)) if raw is not None]
            if not found:
                return []
            points = [records.decode(raw) for _, raw in found]  # (id, payload, text)
            labs, old = [lab for lab, _ in found], [raw for _, raw in found]
            pays = payloads_of(labs, [p[0] for p in points], [p[1] for p in points])
            enc = validation.payloads(pays, len(found), self.options.max_payload_bytes)
            sized = None if self.tenants is None else self.tenants.check_payloads(points, enc)
            wb = self.store.batch()
            data_bytes = s.prepare_payloads(wb, labs, old, [records.with_payload(r, e)
                                                            for r, e in zip(old, enc)])
            self._record([p[0] for p in points])
            self.store.write(wb)
            s.apply_payloads(labs, pays, [p[2] for p in points], data_bytes)
            if sized is not None:
                sized(s, labs)
            return labs

    def _rewrite(self, ids, node, change, new_vectors, new_named=None, tenant=None) -> WriteResult:
        with self.adding():
            ids = self._ids_matching(node) if node is not None else self._own(
                tenant, validation.ids(ids, unique=False))
            ids = list(dict.fromkeys(ids))
            points, expire = self._current(ids)
            if not points:
                return WriteResult(0, {})
            ids = [p.id for p in points]
            if new_vectors is not None:
                vecs, absent = np.stack([new_vectors[p.id] for p in points]), None
            else:
                vecs, absent = named_vectors.stored_primary(points, self.config.dim)
            pays = [p.payload for p in points] if change is None else [change(p) for p in points]
            enc_pays = validation.payloads(pays, len(ids), self.options.max_payload_bytes)
            enc_txts = [None if p.text is None else p.text.encode("utf-8", "surrogatepass") for p in points]
            sps = sparse_vectors.stored(self, ids) if self.config.sparse_dim else None  # kept
            named = named_vectors.columns([{**(p.vectors or {}), **(new_named or {}).get(p.id, {})}
                                           for p in points]) if self.config.vectors else None
            return self._upsert_locked(ids, vecs, enc_pays, enc_txts, expire, sps, named, absent)

    def _current(self, ids: list[str]) -> tuple[list[Point], list[int | None] | None]:
        """Points (with vectors, payloads, texts) and their expiry, for a rewrite."""
        found: dict[str, tuple[Point, int | None]] = {}
        for s, rows in self._route(ids).items():
            found.update(self.shards[s].get_for_rewrite([ids[j] for j in rows]))
        points = [found[pid][0] for pid in ids if pid in found]
        expire = [found[p.id][1] for p in points]
        return points, (expire if any(e is not None for e in expire) else None)

    def _commit(self, wb, ops, count: int) -> WriteResult:
        return commit(self.store, wb, [(self, ops, count)])[0]

    def expire(self) -> int:
        """Delete the points whose TTL passed (the background reaper calls this)."""
        if not any(len(s.expiry) for s in self.shards):
            return 0
        with self.write_lock:
            ids = []
            for shard in self.shards:
                labels = shard.expiry.expired()
                if len(labels):
                    ids += [pid for lab, pid, _, _ in shard.iter_records(labels)
                            if shard.labels_of([pid])[0] == lab]  # not replaced since
            return self._delete_locked(ids).count if ids else 0

    # ---- filters --------------------------------------------------------------
    @staticmethod
    def _selection(ids, filter) -> Clause | None:
        """Exactly one of ids / filter; returns the parsed filter (None when ids)."""
        node = filters.parse(filter)
        if (ids is None) == (node is None):
            raise InvalidArgument("give either ids or a non-empty filter, not both or neither",
                                  "filter" if node is not None else "ids")
        return node

    def ids_matching(self, filter) -> list[str]:
        """The ids of the points a non-empty ``filter`` selects now, in one pass (those a
        delete or payload update by it would change)."""
        node = filters.parse(filter)
        if node is None:
            raise InvalidArgument("give a non-empty filter", "filter")
        return self._ids_matching(node)

    def _ids_matching(self, node: Clause | None) -> list[str]:
        out = []
        for shard in self.shards:
            out += [pid for _, pid, _, _ in shard.iter_records(shard.matching(node))]
        return out

    def create_payload_index(self, field: str, kind: str) -> None:
        for shard in self.shards:
            shard.build_payload_index(field, kind)

    def payload_index_states(self) -> dict:
        out = {}
        for f, kind in self.config.payload_indexes:
            ready = all(f in s.pindex.ready for s in self.shards)
            out[f] = {"type": kind, "state": "ready" if ready else "building"}
        return out

    # ---- reads --------------------------------------------------------------
    def count(self, filter=None) -> int:
        node = filters.parse(filter)
        if node is None:
            return sum(s.count_visible() for s in self.shards)
        return sum(len(s.matching(node)) for s in self.shards)

    def get(self, ids, with_vector: bool, with_payload: bool, tenant=None) -> list[Point]:
        """``tenant`` (a tenant key): points of other tenants are omitted, judged by the
        records read (a point may change tenant between the look-up and the read)."""
        ids = validation.ids(ids, unique=False)
        found: dict[str, Point] = {}
        for s, rows in self._route(ids).items():
            found.update(self.shards[s].get([ids[j] for j in rows], with_vector,
                                            with_payload or tenant is not None))
        points = [found[pid] for pid in ids if pid in found]
        if tenant is None:
            return points
        return [p if with_payload else dataclasses.replace(p, payload=None)
                for p in points if self.tenants.holds(tenant, p.payload)]

    def expiry_of(self, ids) -> dict[str, int]:
        """id -> expiry time (ms since the epoch) of those of ``ids`` that have a TTL."""
        ids = validation.ids(ids, unique=False)
        out: dict[str, int] = {}
        for s, rows in self._route(ids).items():
            out.update(self.shards[s].expiry_of([ids[j] for j in rows]))
        return out

    def scroll(self, limit: int, cursor: str | None, with_vector: bool, with_payload: bool,
               filter=None) -> ScrollPage:
        limit = validation.int_in(limit, 1, 10_000, "limit")
        node = filters.parse(filter)
        if isinstance(node, TenantScope):
            return self._scroll_tenant(node, limit, cursor, with_vector, with_payload)
        after = _decode_cursor(cursor)
        if node is None:
            candidates = sorted(pid for s in self.shards for pid in s.scroll_ids(after, limit + 1))
            page = candidates[:limit]
            points = self.get(page, with_vector, with_payload)
            more = len(candidates) > limit
            return ScrollPage(points, _encode_cursor(page[-1]) if more and page else None)
        matched = sorted(pid for pid in self._ids_matching(node) if after is None or pid > after)
        page = matched[:limit]
        points = self.get(page, with_vector, with_payload)
        return ScrollPage(points, _encode_cursor(page[-1]) if len(matched) > limit else None)

    def _scroll_tenant(self, node: TenantScope, limit: int, cursor: str | None,
                       with_vector: bool, with_payload: bool) -> ScrollPage:
        """A tenant's page in (shard, label) order, from its partition: it costs the page,
        whatever the tenant's size. The cursor holds the last shard and label."""
        s0, after = _decode_cursor(cursor, b"\x02", _TENANT_AT.unpack) or (0, -1)
        found: list[tuple[int, int]] = []
        for s in range(s0, len(self.shards)):
            labs = tenant_search.page(self.shards[s], node, after if s == s0 else -1,
                                      limit + 1 - len(found))
            found += [(s, lab) for lab in labs.tolist()]
            if len(found) > limit:
                break
        ids: list[str] = []
        for s in sorted({s for s, _ in found[:limit]}):
            labs = np.array([lab for t, lab in found[:limit] if t == s], np.int64)
            ids += [pid for pid in self.shards[s].hydrate(labs, False, False)[0] if pid]
        points = self.get(ids, with_vector, with_payload, node.key)
        more = len(found) > limit
        return ScrollPage(points, _pack_cursor(b"\x02" + _TENANT_AT.pack(*found[limit - 1]))
                          if more else None)

    def search(self, queries, k: int, params: SearchParams, with_payload: bool,
               with_vector: bool, filter=None, texts=None,
               raw_payloads: bool = False, shards: list[Shard] | None = None,
               using: str | None = None) -> list[SearchResult]:
        """Query vectors, or ``texts`` (one query each) embedded by the encoder.
        ``shards``: as search_prepared's. ``using``: a named vector field to search
        (vecdb/named_vectors.py; None or the primary's name: the primary)."""
        k = validation.k(k)
        field = self.config.vector_field(using)
        if field is not None:
            if texts is not None or queries is None:
                if queries is not None:
                    raise InvalidArgument("give query vectors or query texts, not both", "texts")
                queries = self.embed_field_queries(field, texts)
            return self.search_field(field, self.prepare_queries(queries, params, field), k, params,
                                     with_payload, with_vector, filters.parse(filter), raw_payloads)
        if texts is not None or queries is None:
            if queries is not None:
                raise InvalidArgument("give query vectors or query texts, not both", "texts")
            queries = self.embed_queries(texts)
        return self.search_prepared(self.prepare_queries(queries, params), k, params, with_payload,
                                    with_vector, filters.parse(filter), raw_payloads, shards)

    def search_prepared(self, q: np.ndarray, k: int, params: SearchParams, with_payload: bool,
                        with_vector: bool, node=None, raw_payloads: bool = False,
                        shards: list[Shard] | None = None, tries: int = SEARCH_TRIES
                        ) -> list[SearchResult]:
        """search() after validation: ``q`` from prepare_queries, ``k`` validated,
        ``node`` a parsed filter. ``shards``: search these instead of this collection's
        own, as one collection (a cluster node's local replicas of a collection's shards,
        each a 1-shard collection of this one's config). A hit whose point was rewritten
        (a new label) or deleted between the search and the read of its records is not
        returned: its query is searched again, ``tries`` times at most, then answered
        without it."""
        out = self._search_once(q, k, params, with_payload, with_vector, node, raw_payloads,
                                shards)
        stale = [i for i, r in enumerate(out) if "" in r.ids]
        if stale and tries > 1:
            again = self.search_prepared(q[stale], k, params, with_payload, with_vector, node,
                                         raw_payloads, shards, tries - 1)
            for i, r in zip(stale, again):
                out[i] = r
        elif stale:
            out = [live_hits(r) for r in out]
        return out

    def _search_once(self, q: np.ndarray, k: int, params: SearchParams, with_payload: bool,
                     with_vector: bool, node, raw_payloads: bool,
                     shards: list[Shard] | None) -> list[SearchResult]:
        shards = self.shards if shards is None else shards
        if len(q) == 0:
            return []
        if getattr(node, "inline", None) is not None:  # a tenant: only the shards holding it
            shards = [s for s in shards if node.key in s.tenants.labels] or shards[:1]
        if len(shards) == 1 or getattr(node, "inline", False):  # inline: a small tenant
            parts = [s.search(q, k, params, node) for s in shards]
        else:
            single = omp.is_single()  # a merged batch stays single-threaded in the pool

            def one(s: Shard):
                with omp.single_threaded(single):
                    return s.search(q, k, params, node)
            parts = list(self.pool.map(one, shards))
        plan = "; ".join(f"shard {i}: {p[2]}" for i, p in enumerate(parts))
        scores, which, labels = merge([p[:2] for p in parts], k, higher_is_better(self.config.metric))
        return self._hydrate_rows(scores, which, labels, with_payload, with_vector, plan,
                                  raw_payloads, shards)

    def search_field(self, field, q: np.ndarray, k: int, params: SearchParams, with_payload: bool,
                     with_vector: bool, node=None, raw_payloads: bool = False) -> list[SearchResult]:
        """search_prepared over the named vector field ``field`` (a VectorField); the hits'
        vectors are that field's."""
        if len(q) == 0:
            return []

        def one(s: Shard):
            return s.named.search(s, field.name, q, k, params, node)
        parts = [one(self.shards[0])] if len(self.shards) == 1 else list(self.pool.map(one, self.shards))
        plan = "; ".join(f"shard {i}: {p[2]}" for i, p in enumerate(parts))
        scores, which, labels = merge([p[:2] for p in parts], k, higher_is_better(field.metric))
        out = self._hydrate_rows(scores, which, labels, with_payload, False, plan, raw_payloads)
        return [live_hits(r) for r in (self._field_vectors(out, field, which, labels)
                                   if with_vector else out)]

    def _field_vectors(self, results: list[SearchResult], field, which, labels) -> list[SearchResult]:
        """``results`` (_hydrate_rows': one row per label) with each hit's vector of the
        named field ``field``."""
        out = []
        for i, res in enumerate(results):
            valid = labels[i] >= 0
            labs, where = labels[i][valid], which[i][valid]
            vecs = np.zeros((len(labs), field.dim), np.float32)
            for s in set(where.tolist()):
                rows = where == s
                vecs[rows] = self.shards[s].named.field_vectors(field.name, labs[rows])
            out.append(dataclasses.replace(res, vectors=vecs))
        return out

    def prepare_queries(self, queries, params: SearchParams, field=None) -> np.ndarray:
        """Validated query vectors in the index's form (normalized for cosine); ``field``: of
        that named vector field (a VectorField) instead of the primary."""
        dim, metric = (self.config.dim, self.config.metric) if field is None else (field.dim, field.metric)
        q = validation.vectors(queries, dim, None, "queries")
        for name in ("nprobe", "ef_search"):
            v = getattr(params, name)
            if v is not None:
                validation.int_in(v, 1, 1 << 20, name)
        return prepare(q, metric) if len(q) else q

    def range_search(self, queries, threshold: float, limit: int, params: SearchParams,
                     with_payload: bool, with_vector: bool, filter=None,
                     using: str | None = None) -> list[SearchResult]:
        """Every point scoring better than ``threshold`` (cosine/ip: score > threshold;
        l2: squared distance < threshold), best first, at most ``limit`` per query.
        ``using``: a named vector field, as search's."""
        field = self.config.vector_field(using)
        limit = validation.int_in(limit, 1, 100_000, "limit")
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or \
                not np.isfinite(threshold):
            raise InvalidArgument(f"threshold must be a finite number, got {threshold!r}", "threshold")
        q = self.prepare_queries(queries, params, field)
        node = filters.parse(filter)
        if len(q) == 0:
            return []
        if field is None:
            per_shard = [s.range_search(q, float(threshold), params, node) for s in self.shards]
        else:
            per_shard = [s.named.range_search(s, field.name, q, float(threshold), params, node)
                         for s in self.shards]
        higher = higher_is_better(self.config.metric if field is None else field.metric)
        width = min(limit, max([len(d) for part in per_shard for d, _ in part] + [0]) * len(self.shards))
        scores = np.full((len(q), max(width, 1)), np.nan, np.float32)
        labels = np.full((len(q), max(width, 1)), -1, np.int64)
        which = np.zeros((len(q), max(width, 1)), np.int32)
        for i in range(len(q)):
            d = np.concatenate([part[i][0] for part in per_shard])
            lab = np.concatenate([part[i][1] for part in per_shard])
            sh = np.concatenate([np.full(len(part[i][0]), j, np.int32) for j, part in enumerate(per_shard)])
            order = np.argsort(-d if higher else d, kind="stable")[:limit]
            scores[i, :len(order)], labels[i, :len(order)], which[i, :len(order)] = d[order], lab[order], sh[order]
        if field is None:
            return self._hydrate(scores, which, labels, with_payload, with_vector, None)
        out = self._hydrate_rows(scores, which, labels, with_payload, False, None)
        return [live_hits(r) for r in (self._field_vectors(out, field, which, labels)
                                   if with_vector else out)]

    def _hydrate(self, scores, which, labels, with_payload, with_vector, plan,
                 raw_payloads: bool = False, shards: list[Shard] | None = None
                 ) -> list[SearchResult]:
        """_hydrate_rows without the hits whose point was rewritten (a new label) or deleted
        since the search found it."""
        return [live_hits(r) for r in self._hydrate_rows(scores, which, labels, with_payload,
                                                     with_vector, plan, raw_payloads, shards)]

    def _hydrate_rows(self, scores, which, labels, with_payload, with_vector, plan,
                      raw_payloads: bool = False, shards: list[Shard] | None = None
                      ) -> list[SearchResult]:
        """SearchResults for merged (scores, shard, label) rows: one multi-get per shard
        for the distinct labels of the whole batch (result sets repeat labels); ids only:
        every hit's label looked up in its shard's id column (few reads, if any).
        ``shards``: what ``which`` indexes (default: this collection's)."""
        shards = self.shards if shards is None else shards
        valid = labels >= 0
        flat = labels[valid]
        hit_labels, hit_shards = flat.tolist(), which[valid].tolist()
        n = len(hit_labels)
        ids: list = [None] * n
        pays: list = [None] * n
        txts: list = [None] * n
        vecs = np.zeros((n, self.config.dim), np.float32) if with_vector else None
        for s in set(hit_shards):
            rows = [j for j in range(n) if hit_shards[j] == s] if len(shards) > 1 else range(n)
            if not with_payload and not with_vector:  # no read per distinct label needed
                if len(shards) == 1:
                    ids = shards[s].hydrate(flat, False, False)[0]
                else:
                    for j, pid in zip(rows, shards[s].hydrate(flat[rows], False, False)[0]):
                        ids[j] = pid
                continue
            first: dict[int, int] = {}  # label -> its position among the distinct labels
            slot = [first.setdefault(hit_labels[j], len(first)) for j in rows]
            got_ids, got_p, got_t, got_v = shards[s].hydrate(
                np.fromiter(first, np.int64, len(first)), with_payload, with_vector, raw_payloads)
            for j, u in zip(rows, slot):
                ids[j], pays[j], txts[j] = got_ids[u], got_p[u], got_t[u]
            if with_vector:
                vecs[list(rows)] = got_v[slot]
        out, start = [], 0
        full = n == valid.size  # every query has all its hits (the usual case): rows as they are
        for i, count in enumerate(valid.sum(axis=1).tolist()):
            end = start + count
            payloads = pays[start:end] if with_payload else None
            out.append(SearchResult(
                ids=ids[start:end], scores=scores[i] if full else scores[i][valid[i]],
                payloads=None if raw_payloads else payloads,
                payloads_json=payloads if raw_payloads else None,
                vectors=vecs[start:end] if with_vector else None,
                texts=txts[start:end] if with_payload else None, plan=plan))
            start = end
        return out

    # ---- maintenance ----------------------------------------------------------
    def checkpoint(self) -> int:
        return sum(s.checkpoint() for s in self.shards)

    def build_indexes(self) -> int:
        built = sum(s.build() for s in self.shards if s.needs_build())
        built += sum(s.named.build(s.lock) for s in self.shards if s.named is not None)
        for s in self.shards:
            s.refresh_gpu()
        return built

    def bytes_on_disk(self) -> int:
        return sum(s.data_bytes for s in self.shards) + checkpoint.disk_bytes(self.dir)


def commit(store: Store, wb, parts: list) -> list[WriteResult]:
    """Commit ``wb``, holding the prepared shard ops of one or more collections (each
    part: (collection, [(shard, op)], count); the caller holds their write locks), as
    ONE RocksDB write, then apply every op. A dropped collection: nothing is written."""
    for coll, _, _ in parts:
        if coll.retired:
            raise NotFound(f"collection {coll.config.name!r} was dropped", "collection")
    if not any(ops for _, ops, _ in parts):
        return [WriteResult(0, {}) for _ in parts]
    undo = reserve_for_write([(c.shards[s].gpu, len(op.removed), len(op.added))
                              for c, ops, _ in parts for s, op in ops
                              if c.shards[s].gpu is not None])
    try:
        store.write(wb)
    except BaseException:
        undo()
        raise
    for coll, ops, _ in parts:
        for s, op in ops:
            coll.shards[s].apply(op)
    return [WriteResult(count, {s: op.seq for s, op in ops}) if ops else WriteResult(0, {})
            for _, ops, count in parts]


_TENANT_AT = struct.Struct(">IQ")  # a tenant scroll cursor: the last (shard, label)


def _encode_cursor(last_id: str) -> str:
    """Opaque cursor: base64url of a version byte and the last id returned (\\x02: a
    tenant scroll's last shard and label)."""
    return _pack_cursor(b"\x01" + last_id.encode())


def _pack_cursor(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def _decode_cursor(cursor: str | None, version: bytes = b"\x01", parse=bytes.decode):
    if not cursor:
        return None
    try:
        raw = base64.b64decode(cursor + "=" * (-len(cursor) % 4), altchars=b"-_", validate=True)
        if raw[:1] != version or len(raw) < 2:
            raise ValueError("bad version")
        return parse(raw[1:])
    except (binascii.Error, UnicodeDecodeError, ValueError, struct.error):
        raise InvalidArgument("cursor is not a valid scroll cursor (pass back next_cursor unchanged)",
                              "cursor") from None
