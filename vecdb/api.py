"""The engine facade: ``Database.open(path)`` and every collection/point call.

Every data call accepts a collection name or an alias. Thread-safe: calls
may come from many threads (the gRPC server's pool) at once.
"""
from __future__ import annotations

import contextlib
import logging
import os
import shutil
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Iterator

import numpy as np

from . import (analytics, checkpoint, filters, fulltext, grouping, hybrid, jobs, named_vectors, omp,
               ondisk, quant, recommend, reembed, snapshot, tenants, validation, write_across)
from . import sparse as sparse_vectors
from .catalog import Catalog
from .coalesce import Coalescer
from .collection import Collection
from .config import DatabaseOptions
from .gpu import GpuContext, check_device
from .errors import (AlreadyExists, FailedPrecondition, InvalidArgument, NotFound, ResourceExhausted,
                     VecdbError)
from .payload_index import check_type as check_payload_index_type
from .storage import DirLock, Store, shard_prefix
from .types import (CollectionConfig, CollectionDescription, Point, ScrollPage, SearchParams,
                    SearchResult, WriteResult)

log = logging.getLogger("vecdb")
_STATE_ORDER = {"exact": 0, "training": 1, "built": 2}


class Database:
    def __init__(self, path: str, options: DatabaseOptions, gpu: GpuContext | None = None):
        self.path, self.options = os.path.abspath(path), options
        # GPU placement, budget and factories (vecdb.gpu); tests pass CPU stand-ins
        self.gpu = gpu or GpuContext.from_options(options)
        self.ready = False
        self._closed = False
        # Called as on_checkpoint(collection, shard, seconds) after each checkpoint written
        # (the server's metrics set it; must be fast and must not raise).
        self.on_checkpoint = None
        os.makedirs(self.path, exist_ok=True)
        self._lock = DirLock(self.path)
        try:
            self._open()
        except BaseException:
            self._lock.release()
            raise

    @classmethod
    def open(cls, path: str, options: DatabaseOptions | None = None,
             gpu: GpuContext | None = None) -> "Database":
        """Open or create a data directory, recover every shard, start background work.
        FailedPrecondition (field ``device``) with device=gpu and no usable GPU."""
        return cls(path, options or DatabaseOptions(), gpu)

    def _open(self) -> None:
        opts = self.options
        self.gpu.check_server()
        omp.configure(opts.faiss_omp_threads)
        self.store = Store(os.path.join(self.path, "rocksdb"), opts.block_cache_mb, opts.durability == "sync")
        self._coalescer = (Coalescer(opts.search_batch_max, opts.search_batch_wait_ms / 1000.0)
                           if opts.search_batch_max > 1 else None)
        self.pool = ThreadPoolExecutor(opts.search_threads or os.cpu_count() or 2, thread_name_prefix="vecdb-search")
        self.catalog = Catalog(self.store, os.path.join(self.path, "collections"))
        if self.catalog.finish_drops():
            log.info("finished interrupted drops")
        for stray in self.catalog.stray_dirs():
            log.info("removing stray collection directory %s", stray)
            shutil.rmtree(stray, ignore_errors=True)
        self.collections: dict[str, Collection] = {}
        # set when a shard is due its first index build: the maintenance thread starts it
        # at once instead of at its next round (a bulk load goes on meanwhile)
        self._wake = threading.Event()
        t0 = time.monotonic()
        for cfg in self.catalog.configs.values():
            coll = self._collection(cfg)
            coll.recover()
            self.collections[cfg.name] = coll
        log.info("recovered %d collections in %.2fs", len(self.collections), time.monotonic() - t0)
        self._reembeds: dict[str, reembed.Reembed] = {}  # source and target name -> job
        self._clusterings = analytics.Jobs()  # k-means jobs (vecdb/analytics/kmeans.py)
        self._analytics = jobs.Slots(opts.max_analytics_jobs)  # k-means, outliers, duplicates
        self._warm_up()
        self.ready = True
        self._stop = threading.Event()
        self._bg = None
        if opts.background:
            self._bg = threading.Thread(target=self._background, name="vecdb-maintenance", daemon=True)
            self._bg.start()

    # ---- encoders ---------------------------------------------------------------------
    def encoder(self, spec: str):
        """The process-wide handle of an encoder spec (vecdb.encoders), with this database's
        encoder options. The model loads on first use."""
        from .encoders import EncoderOptions, get_encoder
        return get_encoder(validation.encoder(spec), EncoderOptions.from_database_options(self.options))

    def _warm_up(self) -> None:
        """Load the encoders named in ``encoder_warmup`` now (a failure is logged: the
        server still starts, and calls needing that encoder fail with its error)."""
        for spec in filter(None, (s.strip() for s in self.options.encoder_warmup.split(","))):
            t0 = time.monotonic()
            try:
                handle = self.encoder(spec)
                handle.load()
                handle.encode(["warm-up"], "query")
                log.info("encoder %s warmed up in %.2fs", spec, time.monotonic() - t0)
            except VecdbError as exc:
                log.warning("encoder warm-up of %s failed: %s", spec, exc.message)

    def _collection(self, cfg: CollectionConfig) -> Collection:
        return Collection(self.store, cfg, self.catalog.dir_of(cfg.uid), self.options, self.pool,
                          self.gpu, self._wake.set)

    @contextlib.contextmanager
    def _writer(self, name: str) -> Iterator[Collection]:
        """The collection a write names, counted as a writer in flight from the moment its
        name is resolved (under the catalog lock, as a re-embed's alias swap is): a write
        that resolved the alias to the source before the swap is waited for and replayed
        (reembed._drain), never applied to the source unseen after it."""
        with self.catalog.lock:
            coll = self._get(name)
            coll.count_writer(1)
        try:
            yield coll
        finally:
            coll.count_writer(-1)

    def _get(self, name: str) -> Collection:
        if self._closed:
            raise FailedPrecondition("database is closed", "database")
        if not isinstance(name, str):
            validation.name(name, "collection")
        real = self.catalog.resolve(name).name
        coll = self.collections.get(real)
        if coll is None:  # the catalog has it, its object is not made yet (or is dropped)
            raise NotFound(f"collection {real!r} is being created or dropped; retry",
                           "collection")
        return coll

    # ---- collections ----------------------------------------------------------
    def create_collection(self, name: str, dim: int | None = None, metric: str = "cosine",
                          index: str = "auto", index_params: dict | None = None, shards: int = 1,
                          encoder: str | None = None,
                          payload_indexes: dict[str, str] | None = None,
                          device: str = "auto", quantization: str | None = None,
                          rescore: int | None = None, full_text: str | None = None,
                          sparse_dim: int | None = None,
                          tenant_field: str | None = None, vector_name: str | None = None,
                          vectors: list | None = None,
                          on_disk: bool | None = None) -> CollectionDescription:
        """Create a collection. ``payload_indexes``: {field: type} to index from the start
        (types: keyword, integer, float, bool, datetime, text; field "$text" = the point text).
        ``encoder`` (e.g. "minilm"): texts can be upserted and searched without vectors; the
        dimension comes from the encoder (``dim`` None/0, or equal to it). The model itself
        loads on first encode (its dimension is read from its config files when they tell).
        ``device``: auto | cpu | gpu (docs/gpu.md); gpu without a usable GPU is
        FailedPrecondition naming ``device``. ``quantization`` (sq8 | rabitq | binary): codes
        in RAM, full-precision vectors on disk re-scoring the top k*``rescore`` candidates
        (0/None = the mode's default; vecdb/quant.py). ``full_text`` ("plain" or a stemming
        language, e.g. "english"): BM25 keyword search over the point texts
        (vecdb/fulltext.py; FailedPrecondition naming it without the extra vecdb[hybrid]).
        ``sparse_dim``: points may carry a sparse vector with indices below it (vecdb/sparse.py).
        ``tenant_field``: a top-level payload key naming each point's tenant; every read and
        write then names its tenant (vecdb/tenants.py, docs/tenants.md).
        ``vectors``: named vector fields besides the primary, each {"name", "dim", "metric",
        "index", "index_params"} (or a VectorField); ``vector_name``: the primary's own field
        name ("" = unnamed). Points carry any non-empty subset of the fields, the primary
        included (vecdb/named_vectors.py); not combinable with quantization or tenant_field yet.
        ``on_disk``: IVF-Flat with its inverted lists memory-mapped from disk and paged in on
        demand, for collections larger than RAM (vecdb/ondisk.py; index ivf_flat or auto)."""
        if self._closed:
            raise FailedPrecondition("database is closed", "database")
        validation.name(name)
        self.gpu.resolve(check_device(device), strict=True, name=name)
        encoder = validation.encoder(encoder)
        if encoder is not None:
            enc_dim = self.encoder(encoder).dimension  # FailedPrecondition without the extra
            if dim is None or (not isinstance(dim, bool) and dim == 0):
                dim = enc_dim
            elif validation.int_in(dim, 1, validation.MAX_DIM, "dim") != enc_dim:
                raise InvalidArgument(f"dim {dim} does not match encoder {encoder!r}, which makes "
                                      f"{enc_dim}-d vectors; leave dim unset (0) to take the "
                                      "encoder's", "dim")
        quantization, rescore, spec = quant.validate(quantization, rescore,
                                                     validation.index_spec(index, index_params), device)
        on_disk, spec = ondisk.validate(on_disk, spec, device, quantization)
        vector_name, fields = named_vectors.check_fields(vector_name, vectors, dim is not None,
                                                         lambda spec: self.encoder(spec).dimension)
        for option, value in (("quantization", quantization), ("tenant_field", tenant_field),
                              ("on_disk", on_disk)):
            if fields and value:
                raise InvalidArgument(f"vectors: named vector fields cannot be combined with "
                                      f"{option} yet", "vectors")
        cfg = CollectionConfig(
            name=validation.name(name), dim=validation.int_in(dim, 1, validation.MAX_DIM, "dim"),
            metric=validation.metric(metric), index=spec,
            shards=validation.int_in(shards, 1, validation.MAX_SHARDS, "shards"),
            encoder=encoder,
            payload_indexes=tuple(sorted((validation.payload_field(f), check_payload_index_type(t))
                                         for f, t in validation.mapping(payload_indexes,
                                                                        "payload_indexes").items())),
            device=device, quantization=quantization, rescore=rescore,
            full_text=fulltext.check_option(full_text), sparse_dim=sparse_vectors.check_dim(sparse_dim),
            tenant_field=tenants.check_field(tenant_field) if tenant_field else "",
            vector_name=vector_name, vectors=fields, on_disk=on_disk)
        with self.catalog.lock:
            cfg = self.catalog.create(cfg)
            self.collections[cfg.name] = self._collection(cfg)
        log.info("created collection %s (dim=%d metric=%s index=%s shards=%d device=%s)",
                 cfg.name, cfg.dim, cfg.metric, cfg.index.type, cfg.shards, cfg.device)
        return self.describe_collection(cfg.name)

    def list_collections(self) -> list[CollectionConfig]:
        return sorted(self.catalog.configs.values(), key=lambda c: c.name)

    def describe_collection(self, name: str) -> CollectionDescription:
        coll = self._get(name)
        stats = tuple(s.stats() for s in coll.shards)
        state = min((s.index_state for s in stats), key=_STATE_ORDER.__getitem__)
        aliases = tuple(sorted(a for a, c in self.catalog.aliases.items() if c == coll.config.name))
        job = self._reembeds.get(coll.config.name)
        clustering = self._clusterings.latest(coll.config.name)
        return CollectionDescription(coll.config, coll.count(), stats, state,
                                     coll.bytes_on_disk(), aliases, coll.payload_index_states(),
                                     None if job is None else job.progress(),
                                     None if clustering is None else clustering.progress())

    def drop_collection(self, name: str) -> None:
        if self._closed:
            raise FailedPrecondition("database is closed", "database")
        with self.catalog.lock:
            cfg = self.catalog.drop(name)  # durable drop marker: a crash from here on finishes the drop
            coll = self.collections.pop(cfg.name)
        coll.retire()  # in-flight writes and checkpoints finish; later ones are refused
        self.catalog.purge(cfg.uid)
        log.info("dropped collection %s", cfg.name)

    # ---- aliases ----------------------------------------------------------------
    def create_alias(self, alias: str, collection: str) -> None:
        self.catalog.set_alias(validation.name(alias, "alias"), collection, create_only=True)

    def set_alias(self, alias: str, collection: str) -> None:
        """Create the alias or atomically re-point it to another collection."""
        self.catalog.set_alias(validation.name(alias, "alias"), collection, create_only=False)

    def delete_alias(self, alias: str) -> None:
        self.catalog.delete_alias(alias)

    def list_aliases(self, collection: str | None = None) -> dict[str, str]:
        return {a: c for a, c in sorted(self.catalog.aliases.items()) if collection in (None, c)}

    # ---- re-embedding (model migration) -----------------------------------------------
    def reembed(self, collection: str, encoder: str, alias: str | None = None,
                target: str | None = None, batch_size: int = 256,
                wait: bool = False) -> CollectionDescription:
        """Re-embed a collection with another encoder without downtime: creates the
        target collection (default ``<source>__<encoder>``; same metric, index, shards,
        payload indexes and tenant_field; tenant quotas are copied at the swap), copies
        every point's text, payload and TTL into it in the background (embedding the
        texts with ``encoder``), replays writes the source got meanwhile, then atomically points ``alias`` at the target. Readers that use the
        alias never see an error. ``collection`` may be that alias (then ``alias`` defaults
        to it). Progress: describe_collection(...).reembed. The source is kept (drop it
        when done). Returns the source's description."""
        if self._closed:
            raise FailedPrecondition("database is closed", "database")
        src = self._get(collection)
        if src.config.sparse_dim or src.config.vectors:  # the copy carries texts, payloads, TTLs
            kind = "sparse vectors" if src.config.sparse_dim else "named vector fields"
            raise FailedPrecondition(f"re-embedding a collection with {kind} is not supported "
                                     "(they would not be copied)", "collection")
        if alias is None:
            if collection == src.config.name:
                raise InvalidArgument("give alias=: the alias readers use, re-pointed to the new "
                                      "collection when it is ready", "alias")
            alias = collection
        alias = validation.name(alias, "alias")
        if alias in self.collections:
            raise InvalidArgument(f"alias {alias!r} is a collection name", "alias")
        batch_size = validation.int_in(batch_size, 1, 10_000, "batch_size")
        encoder = validation.encoder(encoder)
        if encoder is None:
            raise InvalidArgument("give the encoder to re-embed with", "encoder")
        target = target or reembed.target_name(src.config.name, encoder)
        validation.name(target, "target")
        with self.catalog.lock:
            running = self._reembeds.get(src.config.name)
            if running is not None and running.state == "running":
                raise FailedPrecondition(f"collection {src.config.name!r} is already being "
                                         f"re-embedded into {running.target!r}", "collection")
        cfg = src.config
        self.create_collection(target, None, cfg.metric, cfg.index.type, dict(cfg.index.params),
                               cfg.shards, encoder, dict(cfg.payload_indexes), cfg.device,
                               tenant_field=cfg.tenant_field or None)
        job = reembed.Reembed(self, src, self.collections[target], encoder, alias, batch_size)
        with self.catalog.lock:
            self._reembeds[src.config.name] = self._reembeds[target] = job
        if wait or not self.options.background:
            job.run()
        else:
            job.start()
        return self.describe_collection(src.config.name)

    # ---- analytics (vecdb/analytics/) ---------------------------------------------------
    def cluster(self, collection: str, k: int, filter=None, sample: int | None = None,
                iterations: int = 20, write_label: str | None = None, seed: int = 1234,
                typical: int = 5, wait: bool = False,
                init: str = "kmeans++") -> "analytics.ClusterJob":
        """Start k-means over the points matching ``filter`` (analytics/kmeans.py) as a
        background job; returns it (``job.progress()``, ``job.result`` once done).
        ``wait``: run it before returning (a failure then raises)."""
        if self._closed:
            raise FailedPrecondition("database is closed", "database")
        coll = self._get(collection)
        tenants.refuse(coll, "clustering")
        spec = analytics.ClusterSpec.check(k, filter, sample, iterations, write_label, seed, typical,
                                           init)
        matching = coll.count(filter)
        if matching == 0:
            raise FailedPrecondition("no points match the filter" if filter else
                                     f"collection {coll.config.name!r} is empty",
                                     "filter" if filter else "collection")
        if spec.k > min(matching, spec.sample or matching):
            raise InvalidArgument(f"k={spec.k} is larger than the {min(matching, spec.sample or matching)} "
                                  f"points to cluster{' (the sample)' if (spec.sample or matching) < matching else ''}",
                                  "k")
        give_back = self._analytics.take("cluster")
        job = self._clusterings.add(analytics.ClusterJob(self, coll, spec, give_back))
        if wait or not self.options.background:
            job.run()
            if job.state == "failed" and job.failure is not None:
                raise job.failure
        else:
            job.start()
        return job

    def cluster_job(self, collection: str, job_id: str) -> "analytics.ClusterJob":
        """A clustering job of this collection (NotFound naming ``job_id``)."""
        return self._clusterings.get(self._get(collection).config.name, job_id)

    def outliers(self, collection: str, n: int = 10, method: str = "knn", k: int = 10,
                 filter=None, sample: int | None = None, centroids=None, seed: int = 1234,
                 with_payload: bool = True) -> "analytics.OutliersResult":
        """The ``n`` points with the highest outlier score (analytics/outliers.py)."""
        coll = self._get(collection)
        tenants.refuse(coll, "outlier detection")
        give_back = self._analytics.take("outliers")
        try:
            return analytics.outliers(coll, n, method, k, filter, sample, centroids, seed,
                                      with_payload)
        finally:
            give_back()

    def duplicates(self, collection: str, threshold: float, filter=None, limit: int = 100_000,
                   batch: int = analytics.DEFAULT_BATCH):
        """Pairs of points closer than ``threshold`` (a distance: analytics/population.py),
        streamed as DuplicatesChunks; the last one holds the groups. Holds an analytics
        slot (max_analytics_jobs) until the stream ends or is dropped."""
        coll = self._get(collection)
        tenants.refuse(coll, "duplicate detection")
        give_back = self._analytics.take("duplicates")
        try:
            return jobs.Held(analytics.duplicates(coll, threshold, filter, limit, batch), give_back)
        except BaseException:
            give_back()
            raise

    # ---- snapshots ------------------------------------------------------------------
    @property
    def snapshot_dir(self) -> str:
        return self.options.snapshot_dir or os.path.join(self.path, "snapshots")

    def create_snapshot(self, collection: str, name: str | None = None,
                        tarball: bool = False) -> snapshot.SnapshotInfo:
        """Consistent online snapshot of a collection into the snapshot directory."""
        coll = self._get(collection)
        name = name or f"{coll.config.name}-{time.strftime('%Y%m%dT%H%M%S')}-{os.urandom(2).hex()}"
        got = snapshot.take(coll, self.store, self.snapshot_dir, name, tarball)
        log.info("snapshot %s of collection %s: %d points, %d bytes", got.name, got.collection,
                 got.points, got.bytes)
        return got

    def list_snapshots(self) -> list[snapshot.SnapshotInfo]:
        return snapshot.list_all(self.snapshot_dir)

    def delete_snapshot(self, name: str) -> None:
        path = snapshot.locate(self.snapshot_dir, name)
        (os.remove if os.path.isfile(path) else shutil.rmtree)(path)

    def restore_snapshot(self, name: str, collection: str | None = None) -> CollectionDescription:
        """Restore a snapshot as a new collection (its original name, or ``collection``).
        A damaged snapshot is refused before anything is written."""
        if self._closed:
            raise FailedPrecondition("database is closed", "database")
        path = snapshot.locate(self.snapshot_dir, name)
        with tempfile.TemporaryDirectory(dir=self.snapshot_dir, prefix=".restore-") as scratch:
            src = snapshot.unpack(path, scratch)
            manifest = snapshot.read_manifest(src)
            new_name = validation.name(collection or manifest["collection"]["name"])
            uid = self.catalog.reserve_uid(new_name)
            cfg = CollectionConfig.from_dict({**manifest["collection"], "name": new_name, "uid": uid})
            for meta in manifest["shards"]:
                n = meta["number"]
                prefix = shard_prefix(uid, n)
                wb, size = self.store.batch(), 0
                for key, value in snapshot.records(os.path.join(src, f"shard-{n}", "records.bin")):
                    wb.put(prefix + key, value)
                    size += len(key) + len(value)
                    if size > 8 << 20:
                        self.store.write(wb, sync=False)
                        wb, size = self.store.batch(), 0
                self.store.write(wb, sync=True)
                ckpt = os.path.join(src, f"shard-{n}", "ckpt")
                if os.path.isdir(ckpt):
                    dst = os.path.join(self.catalog.dir_of(uid), f"shard-{n}")
                    os.makedirs(dst, exist_ok=True)
                    shutil.copytree(ckpt, os.path.join(dst, f"{checkpoint.PREFIX}{meta['seq']:020d}"))
            if manifest.get("tenant_quotas"):
                wb = self.store.batch()
                tenants.put_quotas(wb, uid, manifest["tenant_quotas"])
                self.store.write(wb, sync=True)
            coll = self._collection(cfg)
            coll.recover()
            with self.catalog.lock:
                self.catalog.commit_restore(cfg)
                self.collections[cfg.name] = coll
        log.info("restored snapshot %s as collection %s (%d points)", name, cfg.name, coll.count())
        return self.describe_collection(cfg.name)

    # ---- payload indexes ---------------------------------------------------------
    def create_payload_index(self, collection: str, field: str, type: str, wait: bool = False) -> None:
        """Declare a payload index (durable at once) and build it from RocksDB in the
        background while writes continue; filters use it once every shard has it
        (describe shows "building" until then). ``wait`` builds before returning."""
        field, kind = validation.payload_field(field), check_payload_index_type(type)
        with self.catalog.lock:
            coll = self._get(collection)
            declared = dict(coll.config.payload_indexes)
            if field in declared:
                raise AlreadyExists(f"field {field!r} already has a {declared[field]} index", "field")
            declared[field] = kind
            cfg = self.catalog.update(replace(coll.config, payload_indexes=tuple(sorted(declared.items()))))
            coll.config = cfg
        log.info("collection %s: building %s payload index on %r", cfg.name, kind, field)
        if wait or not self.options.background:
            coll.create_payload_index(field, kind)
        else:
            threading.Thread(target=coll.create_payload_index, args=(field, kind),
                             name=f"vecdb-pindex-{cfg.name}", daemon=True).start()

    def drop_payload_index(self, collection: str, field: str) -> None:
        with self.catalog.lock:
            coll = self._get(collection)
            declared = dict(coll.config.payload_indexes)
            if field not in declared:
                raise NotFound(f"field {field!r} has no payload index", "field")
            del declared[field]
            coll.config = self.catalog.update(replace(coll.config,
                                                      payload_indexes=tuple(sorted(declared.items()))))
        for shard in coll.shards:
            shard.drop_payload_index(field)

    # ---- points -----------------------------------------------------------------
    def upsert(self, collection: str, ids, vectors=None, payloads=None, texts=None,
               ttl=None, sparse=None, tenant=None, named=None) -> WriteResult:
        """Insert or replace points. ``ttl``: seconds to live (one for all, or per point).
        ``named``: {field: vectors (one per point, None = absent)} of named vector fields;
        the point is replaced: its named vectors are the ones given.
        ``tenant`` (tenant collections): every payload gets it in the tenant field; without
        it each payload must name its tenant there.
        ``sparse``: one sparse vector (indices, values) or None per point (``sparse_dim``).
        ``vectors`` None: every point needs a text, embedded by the collection's encoder;
        with vectors, texts are only stored (docs/encoders.md "Mixing rules")."""
        with self._writer(collection) as coll:
            payloads = tenants.write_payloads(coll, tenant, ids, payloads)
            return coll.upsert(ids, vectors, payloads, texts, ttl, sparse, named)

    def upsert_across(self, parts: dict[str, list[int]], ids, vectors=None, payloads=None,
                      texts=None, ttl=None, before_write=None) -> dict[str, WriteResult]:
        """upsert() of one batch split over several collections of one configuration
        (``parts``: collection -> the positions in ``ids`` of its points, each position in
        one) in ONE RocksDB write: all-or-nothing, one WAL sync (vecdb/write_across.py; a
        cluster node applies a batch over the shards it is primary of this way).
        ``before_write()``: called once the batch passed its checks, before any write."""
        names = list(parts)
        got = write_across.upsert([self._get(n) for n in names], [parts[n] for n in names],
                                  ids, vectors, payloads, texts, ttl, before_write)
        return dict(zip(names, got))

    def delete(self, collection: str, ids=None, filter=None, tenant=None) -> WriteResult:
        """Delete by ids, or every point matching ``filter`` (of ``tenant``: ids of other
        tenants are not there for it)."""
        with self._writer(collection) as coll:
            return coll.delete(*tenants.selection(coll, tenant, ids, filter))

    def update_payload(self, collection: str, ids=None, filter=None, set=None, overwrite=None,
                       delete_keys=None, tenant=None) -> WriteResult:
        with self._writer(collection) as coll:
            ids, filter, key = tenants.selection(coll, tenant, ids, filter)
            overwrite = tenants.update_args(coll, tenant, overwrite, set, delete_keys)
            return coll.update_payload(ids, filter, set, overwrite, delete_keys, key)

    def update_vectors(self, collection: str, ids, vectors=None, tenant=None, named=None) -> WriteResult:
        """Replace vectors of existing points: the primary (``vectors``) and/or the named
        fields in ``named`` (on a tenant collection: the primary under its ``vector_name``);
        the point's other vectors, payload, text and TTL stay. ``tenant``: ids of other
        tenants are skipped."""
        with self._writer(collection) as coll:
            return coll.update_vectors(ids, vectors, named, tenants.key_for(coll, tenant))

    def get(self, collection: str, ids, with_vector: bool = False, with_payload: bool = True,
            tenant=None) -> list[Point]:
        coll = self._get(collection)
        return coll.get(ids, with_vector, with_payload, tenants.key_for(coll, tenant))

    def expiry_of(self, collection: str, ids) -> dict[str, int]:
        """id -> expiry time (ms since the epoch) of those of ``ids`` that have a TTL (what a
        copy of the points needs to expire at the same instant: cluster resync)."""
        return self._get(collection).expiry_of(ids)

    def ids_matching(self, collection: str, filter) -> list[str]:
        """The ids of the points ``filter`` selects now (one pass: a cluster primary logs
        a delete or payload update by filter as these ids)."""
        return self._get(collection).ids_matching(filter)

    def count(self, collection: str, filter=None, tenant=None) -> int:
        coll = self._get(collection)
        return coll.count(tenants.read_filter(coll, tenant, filter))

    def scroll(self, collection: str, limit: int = 100, cursor: str | None = None,
               with_vector: bool = False, with_payload: bool = True, filter=None,
               tenant=None) -> ScrollPage:
        coll = self._get(collection)
        return coll.scroll(limit, cursor, with_vector, with_payload,
                           tenants.read_filter(coll, tenant, filter))

    def search(self, collection: str, queries=None, k: int = 10, params: SearchParams | None = None,
               with_payload: bool = True, with_vector: bool = False, filter=None,
               texts=None, raw_payloads: bool = False, keywords=None, fusion: str | None = None,
               weights=None, rrf_k: float | None = None, explain: bool = False,
               keywords_field: str | None = None,
               sparse=None, tenant=None, using: str | None = None) -> list[SearchResult]:
        """Query vectors, or ``texts`` (a string or a list: one query each) embedded with
        the collection's encoder ("query" kind). Exactly one of the two, unless ``keywords``
        (a string or a list) is given on a ``full_text`` collection: alone, BM25 keyword
        search; with vectors or texts (one keyword query each), hybrid search fused by
        ``fusion`` "rrf" (default, constant ``rrf_k``, default 60) or "weighted", with
        ``weights`` (dense, keywords), default equal (vecdb/hybrid.py, vecdb/fusion.py);
        ``explain``: a hybrid plan gives every hit's rank and score in each retriever.
        ``sparse`` ((indices, values), or a list: one per query) on a ``sparse_dim``
        collection: exact sparse dot-product search, alone or fused like ``keywords``
        (weights in the order dense, keywords, sparse). ``keywords_field``: the keywords
        score that payload field (it needs a ``text`` payload index) instead of the texts.
        ``raw_payloads``: payloads in ``SearchResult.payloads_json`` as their stored JSON
        bytes, undecoded (the server sends them on as they are).
        Concurrent unfiltered searches may be answered by one merged FAISS call
        (``search_batch_max``, vecdb/coalesce.py); results are the same.
        ``tenant`` (tenant collections): search that tenant's points only (its partition,
        vecdb/tenant_search.py).
        ``using``: a named vector field to search (None or the primary's name: the primary)."""
        coll, params = self._get(collection), params or SearchParams()
        if keywords_field is not None and keywords is None:
            raise InvalidArgument("keywords_field goes with keywords", "keywords_field")
        filter = tenants.read_filter(coll, tenant, filter)
        if coll.config.vector_field(using) is not None:
            if keywords is not None or sparse is not None:
                raise InvalidArgument("using: keyword, sparse and hybrid search run on the primary "
                                      "vector only", "using")
            return coll.search(queries, k, params, with_payload, with_vector, filter, texts,
                               raw_payloads, using=using)
        if keywords is not None or sparse is not None:  # a tenant: its hits only (TenantScope)
            return hybrid.search(coll, queries, texts, keywords, k, params, with_payload, with_vector,
                                 filter, raw_payloads, fusion, weights, rrf_k, explain, sparse,
                                 keywords_field)
        return self._search_in(coll, None, coll, queries, k, params, with_payload, with_vector,
                               filter, texts, raw_payloads)

    def _search_in(self, coll: Collection, shards, key, queries, k, params, with_payload,
                   with_vector, filter, texts, raw_payloads) -> list[SearchResult]:
        """search() on ``coll`` (``shards``: these instead of its own, search_across);
        unfiltered vector queries coalesce with concurrent ones of the same ``key``."""
        if (self._coalescer is None or filter is not None or texts is not None
                or queries is None):
            return coll.search(queries, k, params, with_payload, with_vector, filter, texts,
                               raw_payloads, shards)
        k, q = validation.k(k), coll.prepare_queries(queries, params)  # errors stay per request
        with_payload, with_vector, raw_payloads = bool(with_payload), bool(with_vector), bool(raw_payloads)
        return self._coalescer.run(
            (key, k, params, with_payload, with_vector, raw_payloads), q,
            lambda batch: coll.search_prepared(batch, k, params, with_payload, with_vector,
                                               None, raw_payloads, shards))

    def search_across(self, collections: list[str], queries=None, k: int = 10,
                      params: SearchParams | None = None, with_payload: bool = True,
                      with_vector: bool = False, filter=None, texts=None,
                      raw_payloads: bool = False) -> list[SearchResult]:
        """search() over several collections of one configuration as if their shards
        were one collection's: one fan-out, one merge, one hydration (a cluster node
        holding every shard of a collection answers a search with this one call).
        Arguments as search(); concurrent calls over the same collections coalesce."""
        colls = [self._get(c) for c in collections]
        for c in colls:
            tenants.refuse(c, "search across collections")
        if not colls:
            raise InvalidArgument("collections: name at least one", "collections")
        first, params = colls[0], params or SearchParams()
        if any(c.config.dim != first.config.dim or c.config.metric != first.config.metric
               for c in colls):
            raise InvalidArgument("collections: all must have one dimension and metric",
                                  "collections")
        return self._search_in(first, [s for c in colls for s in c.shards], tuple(colls),
                               queries, k, params, with_payload, with_vector, filter, texts,
                               raw_payloads)

    # ---- beyond nearest neighbours (vecdb.recommend, vecdb.grouping) --------------------
    def recommend(self, collection: str, positive, negative=None, strategy: str = "average",
                  k: int = 10, params: SearchParams | None = None, with_payload: bool = True,
                  with_vector: bool = False, filter=None, include_examples: bool = False,
                  raw_payloads: bool = False, using: str | None = None,
                  tenant=None) -> SearchResult:
        """Points like the ``positive`` examples and unlike the ``negative`` ones. Examples:
        a stored id (str), {"id"|"text"|"vector": ...}, or a vector. Strategies "average" and
        "best_score" (vecdb/recommend.py). Stored examples are not returned unless
        ``include_examples``. ``using``: a named vector field (examples' vectors and the
        search are that field's; strategy "average" only). ``tenant`` (tenant collections):
        stored examples of other tenants are not found (like absent ids), and the hits are
        the tenant's points only."""
        coll = self._get(collection)
        filter, key = tenants.read_filter(coll, tenant, filter), tenants.key_for(coll, tenant)
        field = coll.config.vector_field(using)
        if field is not None:
            if strategy == "best_score":
                raise InvalidArgument("strategy: best_score runs on the primary vector only; use "
                                      "average with using", "strategy")
            coll = named_vectors.FieldView(coll, field)
        return recommend.recommend(coll, positive, negative, strategy, k,
                                   params, with_payload, with_vector, filter, include_examples,
                                   raw_payloads, key)

    def search_expression(self, collection: str, expression, k: int = 10,
                          params: SearchParams | None = None, with_payload: bool = True,
                          with_vector: bool = False, filter=None, include_terms: bool = False,
                          raw_payloads: bool = False, tenant=None) -> SearchResult:
        """Vector arithmetic: search with sum(weight * term), e.g. [("+", "id:king"),
        ("-", "text:man"), ("+", "text:woman")]. Stored ids used as terms are not returned
        unless ``include_terms``. ``tenant``: ids of other tenants are not found, hits are
        the tenant's."""
        coll = self._get(collection)
        filter, key = tenants.read_filter(coll, tenant, filter), tenants.key_for(coll, tenant)
        return recommend.search_expression(coll, expression, k,
                                           params or SearchParams(), with_payload, with_vector,
                                           filter, include_terms, raw_payloads, key)

    def search_groups(self, collection: str, queries=None, group_by: str = "",
                      group_size: int = 1, groups: int = 10, params: SearchParams | None = None,
                      with_payload: bool = True, with_vector: bool = False, filter=None,
                      texts=None, expression=None, include_terms: bool = False,
                      tenant=None) -> list[SearchResult]:
        """Grouped search (vecdb/grouping.py): per query (vectors, texts, or one
        expression) the best ``group_size`` hits of each of the best ``groups`` values of
        the payload field ``group_by``; ``SearchResult.group_keys`` names each hit's group.
        ``tenant``: groups of the tenant's points only (an expression's ids: its own)."""
        coll, params = self._get(collection), params or SearchParams()
        key = tenants.key_for(coll, tenant)
        group_by, group_size, groups = grouping.check(group_by, group_size, groups)
        filters.parse(filter)  # a bad filter fails before anything is read
        if sum(x is not None for x in (queries, texts, expression)) != 1:
            raise InvalidArgument("give exactly one of query vectors, texts or an expression",
                                  "vectors")
        exclude: set[str] = set()
        if expression is not None:
            q, used = recommend.expression_query(coll, expression, key)
            exclude = set() if include_terms else used
        elif texts is not None:
            q = coll.prepare_queries(coll.embed_queries(texts), params)
        else:
            q = coll.prepare_queries(queries, params)
        return grouping.search_groups(coll, q, group_by, group_size, groups, params,
                                      with_payload, with_vector, filter, exclude,
                                      lambda f: filters.parse(tenants.read_filter(coll, tenant, f)))

    def embed_queries(self, collection: str, texts, using: str | None = None) -> np.ndarray:
        """Query texts -> vectors with the collection's encoder ("query" kind), as
        ``search(texts=...)`` embeds them; ``using``: with that named vector field's."""
        coll = self._get(collection)
        field = coll.config.vector_field(using)
        return coll.embed_queries(texts) if field is None else coll.embed_field_queries(field, texts)

    def range_search(self, collection: str, queries, threshold: float, limit: int = 1000,
                     params: SearchParams | None = None, with_payload: bool = True,
                     with_vector: bool = False, filter=None, tenant=None,
                     using: str | None = None) -> list[SearchResult]:
        coll = self._get(collection)
        return coll.range_search(queries, threshold, limit, params or SearchParams(),
                                 with_payload, with_vector, tenants.read_filter(coll, tenant, filter),
                                 using)

    # ---- tenants (vecdb/tenants.py) ------------------------------------------------
    def list_tenants(self, collection: str) -> list[dict]:
        """Every tenant of a tenant collection: {tenant, points, bytes, max_points,
        max_bytes} (0: no limit), strings first, sorted."""
        return self._registry(collection).list()

    def tenant_info(self, collection: str, tenant) -> dict:
        reg = self._registry(collection)
        return reg.info(reg.key(tenant))

    def set_tenant_quota(self, collection: str, tenant, max_points: int = 0,
                         max_bytes: int = 0) -> dict:
        """Limit a tenant (0: no limit); writes past a limit are ResourceExhausted. A
        tenant without points is listed from then on."""
        return self._registry(collection).set_quota(tenant, max_points, max_bytes)

    def drop_tenant(self, collection: str, tenant) -> int:
        """Delete every point of ``tenant`` (and its quota) atomically; returns how many."""
        return self._registry(collection).drop(tenant)

    def _registry(self, collection: str):
        coll = self._get(collection)
        if coll.tenants is None:
            raise FailedPrecondition(f"collection {coll.config.name!r} has no tenant_field",
                                     "collection")
        return coll.tenants

    def expire(self) -> int:
        """Delete every point whose TTL passed; returns how many (the background does this)."""
        return sum(c.expire() for c in list(self.collections.values()))

    # ---- maintenance --------------------------------------------------------------
    def checkpoint(self) -> int:
        """Checkpoint every changed shard now; returns how many were written."""
        return sum(self._checkpoint_shard(c, s) for c in list(self.collections.values())
                   for s in c.shards)

    def _checkpoint_shard(self, coll: Collection, shard) -> bool:
        t0 = time.monotonic()
        wrote = shard.checkpoint()
        if wrote and self.on_checkpoint is not None:
            self.on_checkpoint(coll.config.name, shard.number, time.monotonic() - t0)
        return wrote

    @property
    def disk_full(self) -> bool:
        """True while writes are refused after a disk-full error (reads still work)."""
        return self.store.failed is not None

    def recover_storage(self) -> bool:
        """After a disk-full write error: reopen RocksDB so writes resume (the background
        thread calls this every few seconds). True when writes are accepted again; raises
        while the disk is still full. Writers are paused meanwhile."""
        if self.store.failed is None:
            return True
        with contextlib.ExitStack() as stack:
            stack.enter_context(self.catalog.lock)
            for coll in sorted(self.collections.values(), key=lambda c: c.config.name):
                stack.enter_context(coll.write_lock)
            self.store.reopen()
        log.warning("writes accepted again after the disk-full error")
        return True

    def maintain(self) -> int:
        """Build/rebuild ANN indexes that are due (synchronously); returns how many."""
        return sum(c.build_indexes() for c in list(self.collections.values()))

    def _background(self) -> None:
        last_ckpt = last_reopen = time.monotonic()
        while True:
            self._wake.wait(0.5)
            self._wake.clear()
            if self._stop.is_set():
                return
            if self.store.failed is not None:  # disk full: no checkpoints/expiry; retry the store
                if time.monotonic() - last_reopen >= 2.0:
                    last_reopen = time.monotonic()
                    try:
                        self.recover_storage()
                    except Exception as e:
                        log.warning("disk full, writes still refused: %s", e)
                continue
            try:
                self.expire()
                self.maintain()
                due = time.monotonic() - last_ckpt >= self.options.checkpoint_interval_s
                for coll in list(self.collections.values()):
                    for shard in coll.shards:
                        if due or shard.applied_seq - shard.checkpoint_seq >= self.options.checkpoint_every_ops:
                            self._checkpoint_shard(coll, shard)
                if due:
                    last_ckpt = time.monotonic()
            except Exception:  # keep the maintenance thread alive; the next round retries
                log.exception("background maintenance failed")

    def close(self) -> None:
        """Stop background work, checkpoint every shard, release the directory. Idempotent."""
        if self._closed:
            return
        self._closed = True
        self._stop.set()
        self._wake.set()
        for job in {id(j): j for j in self._reembeds.values()}.values():
            job.stop()  # a running re-embed ends as "failed" (does not resume on open)
        self._clusterings.stop_all()
        if self._bg is not None:
            self._bg.join()
        try:
            self.checkpoint()
        except OSError as e:  # disk full: the WAL in RocksDB still holds every write
            log.warning("checkpoint at close failed (%s); the next open replays the WAL", e)
        except ResourceExhausted as e:
            log.warning("checkpoint at close incomplete (%s); the next open replays the WAL", e)
        finally:
            for coll in self.collections.values():  # GPU copies, vector file handles
                for shard in coll.shards:
                    shard.release()
            self.pool.shutdown()
            self.store.close()
            self._lock.release()
            self.ready = False

    def __enter__(self) -> "Database":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
