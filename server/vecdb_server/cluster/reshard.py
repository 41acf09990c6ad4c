"""Online resharding in cluster mode (docs/cluster.md "Resharding").

A reshard of collection X (uid U, S shards) to N shards, all of it recorded in etcd
(state.Reshard at /vecdb/reshards/X), every step a compare-and-swap:

1. preparing: the new layout is an ordinary collection of the cluster, hidden
   (``X.reshard-<uid>``, state.shadow_name), placed like any new collection; the nodes
   make its copies and the primaries resync its replicas as for any collection.
2. copying (once every shadow shard is in sync): the primary of each old shard i
   writes every write it applies to shard i to the shadow as well (``after_write``,
   under shard i's write lock, before the write is acknowledged), and copies shard i
   into the shadow page by page, each page read and written under that same lock;
   then it lists i in ``copied``. Per id the old shard's lock orders the writes, their
   copies to the shadow and the page copies, so a page copied later never undoes a
   newer write, and a deleted point is never copied back (the page is read after the
   delete). A dual write by filter is applied to the shadow by the ids the filter
   matches there among shard i's own ids (the shadow holds the state before the write
   for every id already copied; the others are copied later, after the write).
3. the switch: when every old shard is copied and the shadow's live replicas are in
   sync, one transaction (compared against the record, the collection, every shard
   entry of both layouts, and no move of either) makes X's record uid=<uid>, shards=N
   with the shadow's shard entries, and deletes the shadow's keys and the record.
   Every node then drops its copies of uid U (node._reconcile_local). A write still
   under way on an old copy fails (``after_write`` finds X on the new uid: not
   acknowledged, the client retries on the new layout).

A copy of shard i is only valid while shard i keeps the primary that made it (it saw
the record before its copy began, so every later write it applied went to both
layouts): when any old shard's term differs from the record's ``terms`` (a failover,
a handover), the primary of old shard 0 starts a new generation (a fresh, empty
shadow; the old one is dropped) and the copies begin again. A record whose collection
was dropped (or made anew) is removed with its shadow. So a node or etcd restart at
any point leaves a record that the surviving nodes resume from.
"""
from __future__ import annotations

import logging
import threading
import time
import uuid
from dataclasses import replace
from typing import Any

from vecdb_client._proto.vecdb.v1 import cluster_pb2 as clpb
from vecdb_client._proto.vecdb.v1 import collections_pb2 as cpb
from vecdb_client._proto.vecdb.v1 import points_pb2 as ppb
from vecdb_client._proto.vecdb.v1 import types_pb2 as tpb

from vecdb.errors import FailedPrecondition, NotFound, Unavailable, VecdbError
from vecdb.topk import shard_of

from . import merge
from . import state as st
from .etcd import EtcdError, EtcdUnavailable, absent, delete, holds, put, unchanged
from .router import Router

log = logging.getLogger("vecdb_server.cluster")
PAGE = 500  # points copied per page (each page holds the old shard's writes meanwhile)
STEP_S = 0.3  # how often each node looks at the reshards in progress
SCAN = 10_000  # ids per page when a dual write by filter looks its ids up


class Resharder:
    """Drives the reshards this node takes part in (a thread, every STEP_S), writes the
    writes of resharded shards it leads to the new layout, and answers
    ReshardCollection."""

    def __init__(self, router: Router):
        self.r, self.node = router, router.node
        self._copying: set[tuple[str, int]] = set()  # (generation uid, old shard)
        # (collection, old shard) -> the generation a write reached without its dual write
        # (or, this process restarted, may have): that shard's writes are refused until
        # the record says so (``terms`` emptied: the lead starts a new generation)
        self._tainted: dict[tuple[str, int], str] = {}
        self._tlock = threading.Lock()
        self._no_shadow: dict[str, str] = {}  # collection -> generation without a shadow
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        router.after_write = self.after_write
        router.resharder = self

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="vecdb-reshard", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def _loop(self) -> None:
        while not self._stop.wait(STEP_S):
            try:
                self.step()
            except Exception:  # noqa: BLE001 - keep stepping; logged
                log.exception("reshard step failed")

    # ---- the request ---------------------------------------------------------------------
    def request(self, request: clpb.ReshardCollectionRequest,
                context: Any) -> clpb.ReshardCollectionResponse:
        st.validate_cluster_args(request.shards, 1, "one")
        spec = self.node.spec(request.collection)
        if st.is_shadow(spec.name):
            raise NotFound(f"collection {request.collection!r} does not exist", "collection")
        rec = self.node.reshards.get(spec.name)
        if rec is None and spec.shards != request.shards:
            self._begin(spec, request.shards)
        elif rec is not None and rec.shards != request.shards:
            raise FailedPrecondition(f"a reshard of {spec.name!r} to {rec.shards} shards is "
                                     "under way; wait for it to finish", "shards")
        left = context.time_remaining() if context is not None else None
        wait_s = 600.0 if left is None else max(0.0, left - 1.0)
        self.node.wait_for(lambda: self._done(spec.name, request.shards), wait_s)
        return self.progress(spec.name)

    def _done(self, name: str, shards: int) -> bool:
        spec = self.node.collections.get(name)
        return spec is None or (spec.shards == shards and name not in self.node.reshards)

    def progress(self, name: str) -> clpb.ReshardCollectionResponse:
        spec = self.node.spec(name)
        rec = self.node.reshards.get(name)
        if rec is None:
            return clpb.ReshardCollectionResponse(done=True, shards=spec.shards)
        return clpb.ReshardCollectionResponse(done=False, shards=spec.shards, state=rec.state,
                                              copied=len(rec.copied))

    def describe(self) -> list[str]:
        """The reshards in progress, one line each (cluster status)."""
        with self.node._lock:
            recs = sorted(self.node.reshards.items())
            specs = dict(self.node.collections)
        return [f"{name} -> {rec.shards} shards: {rec.state}, {len(rec.copied)}/"
                f"{specs[name].shards if name in specs else '?'} copied"
                for name, rec in recs]

    def _begin(self, spec: st.CollectionSpec, shards: int) -> None:
        terms = tuple(self.node.shard(spec.name, i).term for i in range(spec.shards))
        rec = st.Reshard(spec.name, spec.uid, shards, "", "", "preparing", terms, ())
        if not self._new_generation(spec, rec, [absent(st.reshard_key(spec.name))], []):
            raise FailedPrecondition(f"collection {spec.name!r} changed meanwhile (another "
                                     "reshard began, or it was dropped); retry", "collection")
        log.info("resharding %s: %d -> %d shards", spec.name, spec.shards, shards)

    def _new_generation(self, spec: st.CollectionSpec, rec: st.Reshard, compare: list,
                        ops: list) -> bool:
        """Record ``rec`` with a fresh, empty shadow (placed on the live nodes), in one
        transaction with ``ops`` if ``compare`` and the collection's record hold."""
        uid = uuid.uuid4().hex[:10]
        shadow = st.shadow_name(spec.name, uid)
        placement = st.place(rec.shards, spec.replication_factor, self.node.live_nodes(),
                             self.node.replica_load())
        new = rec.with_(uid=uid, shadow=shadow, state="preparing", copied=())
        ops = [*ops, put(st.reshard_key(spec.name), new.to_json()),
               put(st.collection_key(shadow), replace(spec, name=shadow, uid=uid,
                                                       shards=rec.shards).to_json()),
               *(put(st.shard_key(shadow, j), s.to_json()) for j, s in enumerate(placement))]
        won = self.node.etcd.txn([*compare, holds(st.collection_key(spec.name),
                                                  spec.to_json())], ops)
        if won:
            self.node._load()
        return won

    # ---- writes ---------------------------------------------------------------------------
    def after_write(self, name: str, parts: list[tuple[int, str]], method: str,
                    request: Any) -> None:
        """A primary applied ``request`` to its copies ``parts`` of collection ``name``
        (under their write locks): while a reshard copies, the write goes to the new
        layout too; a write whose copies a switch has retired meanwhile is refused (not
        acknowledged: the client retries on the new layout)."""
        with self.node._lock:
            spec = self.node.collections.get(name)
            rec = self.node.reshards.get(name)
            shadow = self.node.collections.get(rec.shadow) if rec is not None else None
        if spec is None or not all(local == st.local_name(spec.uid, i) for i, local in parts):
            raise Unavailable(f"collection {name!r} was resharded meanwhile; retry",
                              "collection")
        if rec is None or rec.state != "copying" or rec.source_uid != spec.uid:
            return
        try:
            if shadow is None:
                raise Unavailable("the new layout is missing", "collection")
            if method in ("Delete", "UpdatePayload") and not request.ids:
                if not request.HasField("filter"):  # the primary's filter selected no id
                    return
                ids = self._matching(shadow, spec, parts[0][0], request)
                if not ids:
                    return
                sub = type(request)()
                sub.CopyFrom(request)
                sub.ClearField("filter")
                sub.ids.extend(ids)
                request = sub
            if method == "Upsert" and request.points.texts and not request.points.vectors.data:
                for sub in self._embedded(spec, parts, request):  # not embedded again
                    self._write(shadow, method, sub)
            else:
                self._write(shadow, method, request)
        except Exception as exc:  # noqa: BLE001 - the layouts differ now: start over
            log.info("reshard of %s: a write missed the new layout (%s); it starts over",
                     name, exc)
            self._taint(name, [i for i, _ in parts], rec.uid)
            raise Unavailable(f"collection {name!r} is being resharded and the write did "
                              "not reach its new layout (the copy starts over); retry",
                              "collection") from None

    def _embedded(self, spec: st.CollectionSpec, parts: list[tuple[int, str]],
                  request: ppb.UpsertRequest) -> list[ppb.UpsertRequest]:
        """An upsert of texts as each part's rows with the vectors its primary embedded
        (read back from its copies here, as replicas get them: router._replicable)."""
        rows = merge.split_ids(request.points.ids, spec.shards)
        out = []
        for i, local in parts:
            if i in rows:
                sub = ppb.UpsertRequest(collection=local,
                                        points=merge.slice_batch(request.points, rows[i]))
                out.append(self.r._replicable("Upsert", sub))
        return out

    # ---- a write that missed the new layout --------------------------------------------
    def _taint(self, name: str, shards: list[int], uid: str) -> None:
        with self._tlock:
            for i in shards:
                self._tainted[(name, i)] = uid
        self._record_taints()

    def refuses(self, name: str, i: int) -> None:
        """Before a primary's write to old shard i of ``name`` (router.begin_primary):
        UNAVAILABLE while a write that missed the new layout is not yet recorded (etcd
        unreachable), and first, if this process did not see the copying generation
        begin (a restart: what it applied meanwhile may not be in the new layout)."""
        with self.node._lock:
            rec = self.node.reshards.get(name)
            restarted = rec is not None and rec.state == "copying" and rec.terms \
                and rec.uid not in self.node.reshards_begun
        if restarted:
            self._taint(name, [i], rec.uid)
        with self._tlock:
            waiting = (name, i) in self._tainted
        if waiting:
            raise Unavailable(f"collection {name!r} is being resharded and its copy starts "
                              "over (etcd has not recorded it yet); retry", "collection")

    def _record_taints(self) -> None:
        """Empty the ``terms`` of each generation a write missed (so the switch, which
        compares the record, cannot go ahead, and the lead starts a new generation)."""
        with self._tlock:
            todo = dict(self._tainted)
        for (name, i), uid in todo.items():
            try:
                for _ in range(5):
                    with self.node._lock:
                        rec = self.node.reshards.get(name)
                    if rec is None or rec.uid != uid or not rec.terms or \
                            self._cas(rec, rec.with_(terms=())):
                        break
                    if self.node.etcd.get(st.reshard_key(name)) is None:
                        break  # switched or abandoned meanwhile
                    self.node.refresh(st.reshard_key(name))
                else:
                    continue
            except (EtcdUnavailable, EtcdError) as exc:
                log.info("reshard of %s: the write that missed the new layout waits to be "
                         "recorded: %s", name, exc)
                continue
            with self._tlock:
                if self._tainted.get((name, i)) == uid:
                    del self._tainted[(name, i)]

    def _write(self, spec: st.CollectionSpec, method: str, request: Any) -> None:
        """``request`` (by ids) on the shards of ``spec`` it touches, one after another
        in this thread (it may be a router pool thread: nothing here waits on the pool)."""
        if method == "Upsert":
            ids, batch = request.points.ids, request.points
        elif method == "UpdateVectors":
            ids, batch = request.ids, tpb.PointBatch(ids=request.ids, vectors=request.vectors)
        else:
            ids, batch = request.ids, None
        parts = merge.split_ids(ids, spec.shards)
        for j in sorted(parts):
            sub = type(request)()
            sub.CopyFrom(request)
            sub.collection = st.local_name(spec.uid, j)
            if method == "Upsert":
                sub.points.CopyFrom(merge.slice_batch(batch, parts[j]))
            elif method == "UpdateVectors":
                rows = merge.slice_batch(batch, parts[j])
                sub.vectors.CopyFrom(rows.vectors)
                del sub.ids[:]
                sub.ids.extend(rows.ids)
            else:
                del sub.ids[:]
                sub.ids.extend(ids[p] for p in parts[j])
            self.r.write_shard(spec, j, method, sub)

    def _matching(self, shadow: st.CollectionSpec, spec: st.CollectionSpec, i: int,
                  request: Any) -> list[str]:
        """The ids of old shard i that ``request``'s filter matches in the shadow."""
        out: list[str] = []
        for j in range(shadow.shards):
            scroll = ppb.ScrollRequest(collection=st.local_name(shadow.uid, j), limit=SCAN,
                                       with_vector=False, with_payload=False,
                                       filter=request.filter)
            if request.HasField("tenant"):
                scroll.tenant.CopyFrom(request.tenant)
            while True:
                page = self.r.read_shard(shadow, j, "Scroll", scroll, primary_only=True)
                out += [pid for pid in page.points.ids if shard_of(pid, spec.shards) == i]
                if not page.HasField("next_cursor"):
                    break
                scroll.cursor = page.next_cursor
        return out

    # ---- the steps -------------------------------------------------------------------------
    def step(self) -> None:
        if self._tainted:
            self._record_taints()
        with self.node._lock:
            recs = list(self.node.reshards.values())
            live = self.node.id in self.node.nodes
        if not live:
            return
        for rec in recs:
            try:
                self._step_one(rec)
            except (EtcdUnavailable, EtcdError, VecdbError) as exc:
                log.info("reshard of %s waits: %s", rec.name, exc)

    def _step_one(self, rec: st.Reshard) -> None:
        node = self.node
        with node._lock:
            spec = node.collections.get(rec.name)
            olds = [node.shards.get((rec.name, i)) for i in range(spec.shards)] if spec else []
        if spec is None or spec.uid != rec.source_uid:  # dropped (or made anew): give up
            self._abandon(rec, spec)
            return
        if any(s is None for s in olds):
            return
        lead = olds[0].primary == node.id
        terms = tuple(s.term for s in olds)
        with node._lock:
            shadow = rec.shadow in node.collections
        missing = not shadow and self._no_shadow.get(rec.name) == rec.uid  # (two steps:
        if shadow:  # not a record seen before its shadow)
            self._no_shadow.pop(rec.name, None)
        else:
            self._no_shadow[rec.name] = rec.uid
        if terms != rec.terms or missing:  # a primary changed (its copy may miss writes),
            if lead:  # a write missed the new layout (terms emptied), or it is gone
                log.info("reshard of %s: %s; copying again into a new layout", rec.name,
                         "the new layout is missing" if missing else
                         f"terms {rec.terms} -> {terms}")
                self._new_generation(spec, rec.with_(terms=terms),
                                     [unchanged(st.reshard_key(rec.name), rec.mod_revision)],
                                     self._drop_shadow_ops(rec)[1:])
            return
        if rec.state == "copying" and rec.uid not in node.reshards_begun:
            mine = [i for i, s in enumerate(olds) if s.primary == node.id]
            if mine:  # this process restarted while copying: start over
                self._taint(rec.name, mine, rec.uid)
                return
        if rec.state == "preparing":
            if lead and self._shadow_ready(rec, copies=True):
                self._cas(rec, rec.with_(state="copying"))
            return
        for i, s in enumerate(olds):
            if s.primary == node.id and i not in rec.copied \
                    and (rec.uid, i) not in self._copying:
                self._copying.add((rec.uid, i))
                threading.Thread(target=self._copy_shard, args=(rec, spec, i), daemon=True,
                                 name=f"vecdb-reshard-{rec.name}-{i}").start()
        if lead and set(rec.copied) == set(range(spec.shards)) and self._shadow_ready(rec):
            self._switch(rec, spec, olds)

    def _shadow_ready(self, rec: st.Reshard, copies: bool = False) -> bool:
        """Every live replica of every shadow shard in sync, at least write_concern of
        them, and no move of the collection or its shadow; with ``copies``, each
        shadow primary also answers for its copy."""
        node = self.node
        with node._lock:
            spec = node.collections.get(rec.shadow)
            shards = [node.shards.get((rec.shadow, j)) for j in range(rec.shards)]
            moving = any(n in (rec.name, rec.shadow) for n, _ in node.moves)
            live = set(node.nodes)
        if spec is None or moving or any(s is None for s in shards):
            return False
        for s in shards:
            if len(s.in_sync) < spec.required_in_sync() or \
                    any(r in live and r not in s.in_sync for r in s.replicas):
                return False
        if copies:
            for j in range(rec.shards):
                try:
                    self.r.read_shard(spec, j, "DescribeCollection", cpb.DescribeCollectionRequest(
                        collection=st.local_name(spec.uid, j)), 5.0)
                except (NotFound, Unavailable):
                    return False
        return True

    def _copy_shard(self, rec: st.Reshard, spec: st.CollectionSpec, i: int) -> None:
        """Copy old shard i (led here) into the shadow, a page at a time under the shard's
        write lock; then list it in the record's ``copied``."""
        try:
            local, cursor, points, t0 = st.local_name(spec.uid, i), None, 0, time.monotonic()
            mark = t0
            while True:
                with self.node.write_lock(rec.name, i):
                    if not self._still_copying(rec, i):
                        return
                    page = self.r.local("Scroll", ppb.ScrollRequest(
                        collection=local, limit=PAGE, cursor=cursor, with_vector=True))
                    if page.points.ids:
                        self.r._carry_ttls(local, page.points)
                        self._write(self.node.spec(rec.shadow), "Upsert",
                                    ppb.UpsertRequest(points=page.points))
                        points += len(page.points.ids)
                if not page.HasField("next_cursor"):
                    break
                cursor = page.next_cursor
                self.r.copies.throttle.take(page.points.ByteSize(), mark)  # not under the lock
                mark = time.monotonic()
            while self._still_copying(rec, i):
                cur = self.node.reshards[rec.name]
                if self._cas(cur, cur.with_(copied=tuple(sorted({*cur.copied, i})))):
                    log.info("reshard of %s: shard %d copied (%d points, %.0f ms)", rec.name,
                             i, points, (time.monotonic() - t0) * 1000)
                    return
                self.node.refresh(st.reshard_key(rec.name))
        except Exception as exc:  # noqa: BLE001 - the next step starts it again
            log.warning("reshard of %s: copying shard %d failed: %s", rec.name, i, exc)
            time.sleep(1.0)
        finally:
            self._copying.discard((rec.uid, i))

    def _still_copying(self, rec: st.Reshard, i: int) -> bool:
        with self.node._lock:
            cur = self.node.reshards.get(rec.name)
            s = self.node.shards.get((rec.name, i))
        return cur is not None and cur.uid == rec.uid and cur.state == "copying" \
            and cur.terms == rec.terms and i not in cur.copied and s is not None and s.primary == self.node.id \
            and s.term == rec.terms[i]

    def _switch(self, rec: st.Reshard, spec: st.CollectionSpec,
                olds: list[st.ShardState]) -> None:
        """The new layout becomes the collection's, in one transaction."""
        with self.node._lock:
            news = [self.node.shards[(rec.shadow, j)] for j in range(rec.shards)]
        name, most = rec.name, max(spec.shards, rec.shards)
        compare = [unchanged(st.reshard_key(name), rec.mod_revision),
                   holds(st.collection_key(name), spec.to_json()),
                   *(unchanged(st.shard_key(name, i), s.mod_revision) for i, s in enumerate(olds)),
                   *(unchanged(st.shard_key(rec.shadow, j), s.mod_revision)
                     for j, s in enumerate(news)),
                   *(absent(st.move_key(name, i)) for i in range(most)),
                   *(absent(st.move_key(rec.shadow, j)) for j in range(rec.shards))]
        ops = [put(st.collection_key(name), replace(spec, uid=rec.uid,
                                                     shards=rec.shards).to_json()),
               *(put(st.shard_key(name, j), s.to_json()) for j, s in enumerate(news)),
               *(delete(st.shard_key(name, i)) for i in range(rec.shards, spec.shards)),
               *self._drop_shadow_ops(rec)]
        if self.node.etcd.txn(compare, ops):
            log.info("resharded %s: %d -> %d shards (uid %s)", name, spec.shards, rec.shards,
                     rec.uid)
            self.node._load()

    def _drop_shadow_ops(self, rec: st.Reshard) -> list[dict]:
        return [delete(st.reshard_key(rec.name)), delete(st.collection_key(rec.shadow)),
                delete(f"{st.SHARDS}{rec.shadow}/", prefix=True),
                delete(f"{st.MOVES}{rec.shadow}/", prefix=True)]  # (none left behind)

    def _abandon(self, rec: st.Reshard, spec: st.CollectionSpec | None) -> None:
        """Delete the record and its shadow, if etcd agrees the collection is ``spec``
        (None: absent)."""
        key = st.collection_key(rec.name)
        if self.node.etcd.txn([unchanged(st.reshard_key(rec.name), rec.mod_revision),
                               absent(key) if spec is None else holds(key, spec.to_json())],
                              self._drop_shadow_ops(rec)):
            log.info("reshard of %s abandoned: the collection was dropped", rec.name)
            self.node._load()

    def _cas(self, old: st.Reshard, new: st.Reshard) -> bool:
        key = st.reshard_key(old.name)
        won, rev = self.node.etcd.txn_rev([unchanged(key, old.mod_revision)],
                                          [put(key, new.to_json())])
        if won:
            self.node.apply_own(key, new.to_json(), rev)
        return won
