"""ClusterNode: this server's membership in the cluster and its view of the metadata.

* Membership: the node's key lives under an etcd lease renewed every node_ttl_s / 3;
  a node that stops renewing is dead when the lease expires. A graceful stop revokes
  the lease (immediate failover).
* View: every key under /vecdb/ read once, then followed by an etcd watch. No node holds
  private truth about placement: every change is an etcd transaction that compares the
  key's mod_revision, so two nodes can never both win a race.
* Maintenance (every 0.3 s): create the local engine collections of the replicas placed
  here (dropping those of dropped collections); failover (the first live in-sync replica
  of a shard whose primary died takes over with term + 1 and in_sync = itself); resync
  (a primary catches up every live replica that is not in sync, from its replication
  log or by a full copy, then adds it to the in-sync set: router.Router.resync); a local
  copy the map no longer places here (moved away) is dropped after DROP_GRACE_S; then
  the rebalancer step
  (moves.py: acts only on the node elected to drive replica moves).
"""
from __future__ import annotations

import base64
import json
import logging
import os
import re
import socket
import threading
import time
from collections import defaultdict
from typing import Any, Callable

from vecdb.errors import NotFound, Unavailable

from ..engine import EngineHolder
from . import state as st
from .etcd import (KV, Etcd, EtcdError, EtcdUnavailable, Event, _unb64, delete, holds, put,
                   unchanged)
from .moves import Mover
from .payload_indexes import Aligner
from .state import CollectionSpec, Node, ShardState

log = logging.getLogger("vecdb_server.cluster")
JOIN_RETRY_MAX_S = 5.0  # the longest wait between two tries to join while etcd is away
LOCAL_NAME = re.compile(r"^c([0-9a-f]+)-s(\d+)$")
RESYNC_MARKS = "cluster-resync-marks.json"  # in the data dir
# a copy that left the map (moved away) is dropped this long after, so reads routed by
# a view that still lists it finish first
DROP_GRACE_S = 5.0


class ClusterNode:
    def __init__(self, etcd: Etcd, node: Node, ttl: int, engine: EngineHolder):
        self.etcd, self.me, self.ttl, self.engine = etcd, node, ttl, engine
        self.id = node.id
        self._lock = threading.RLock()
        self.nodes: dict[str, Node] = {}
        self.collections: dict[str, CollectionSpec] = {}
        self.shards: dict[tuple[str, int], ShardState] = {}
        self.aliases: dict[str, str] = {}
        self.moves: dict[tuple[str, int], st.Move] = {}  # replica moves in progress
        self.removed: set[str] = set()  # nodes being removed for good
        self.rebalancer = ""  # the node that drives moves (moves.py)
        self.reshards: dict[str, st.Reshard] = {}  # reshards in progress (reshard.py)
        # the reshard generations this process saw "preparing": one it first sees copying
        # began before this process did (reshard.py: a restarted primary starts it over)
        self.reshards_begun: set[str] = set()
        self.mover: Mover | None = None  # set by the wiring: runs in maintain()
        self._revs: dict[str, int] = {}  # key -> the revision of the view's last change of it
        self._known_uids: set[str] = set()  # collections seen in the map by this process
        marks = os.path.join(engine.data_dir, RESYNC_MARKS)
        # local copies that must leave the in-sync set (they were found missing)
        self._needs_resync: set[str] = set(json.load(open(marks))) if os.path.exists(marks) \
            else set()
        self.revision = 0
        self.lease = 0
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._write_locks: dict[tuple[str, int], threading.Lock] = defaultdict(threading.Lock)
        self._resyncing: set[tuple[str, int, str]] = set()
        self._unplaced_since: dict[str, float] = {}  # local copy -> when it left the map
        # set by the router: copies shard (coll, shard) to node r (see router.resync)
        self.resync: Callable[[str, int, str], None] | None = None
        # set by the wiring: the replicas that missed an unacknowledged write of shard
        # (coll, shard) at term t, as this node's router (their primary) knows them
        self.missed: Callable[[str, int, int], set[str]] = lambda name, i, term: set()
        # set by the router: a local copy was dropped here (its replication log goes too)
        self.dropped: Callable[[str], None] = lambda local: None
        self.on_change = threading.Condition(self._lock)
        self.indexes = Aligner()  # local copies' payload indexes follow the spec
        self.loaded = False  # set once the first full read of etcd is in the view

    # ---- life cycle ----------------------------------------------------------------------
    def start(self) -> None:
        """Join: register, read the map, then keep the lease and the view. While etcd is
        unreachable (all its members down, or an election under way) the join is tried
        again, backing off to JOIN_RETRY_MAX_S, until it succeeds or stop() is called
        (then EtcdUnavailable): a node started then must not stay up unjoined."""
        delay = 0.2
        while True:
            try:
                self._register()
                self._load()
                break
            except EtcdUnavailable as exc:
                log.warning("cannot join the cluster yet (%s); trying again in %.1f s",
                            exc, delay)
                if self._stop.wait(delay):
                    raise
                delay = min(2 * delay, JOIN_RETRY_MAX_S)
        if self._stop.is_set():  # stopped while a try that then succeeded was under way
            self.stop()
            raise EtcdUnavailable(",".join(self.etcd.endpoints), "stopped while joining")
        for target, name in ((self._keepalive_loop, "keepalive"), (self._watch_loop, "watch"),
                             (self._maintain_loop, "maintain")):
            t = threading.Thread(target=target, name=f"vecdb-cluster-{name}", daemon=True)
            t.start()
            self._threads.append(t)
        log.info("joined the cluster as %s (%s)", self.id, self.me.address)

    def stop(self) -> None:
        self._stop.set()
        try:
            if self.lease:  # (none when stopped before it joined; revoked once)
                lease, self.lease = self.lease, 0
                self.etcd.lease_revoke(lease)  # leave now: failover need not wait the TTL
        except EtcdUnavailable:
            pass
        for t in self._threads:
            t.join(timeout=5)

    def _register(self) -> None:
        self.lease = self.etcd.lease_grant(self.ttl)
        self.etcd.put(st.node_key(self.id), self.me.to_json(), lease=self.lease)

    def _load(self) -> None:
        """Read everything once more and merge it key by key: a snapshot never rolls back
        what the view already has from a newer revision (a watch event or our own CAS)."""
        self._merge(*self.etcd.range(st.ROOT))

    def _merge(self, kvs: list[KV], rev: int) -> None:
        """Install a range read taken at revision ``rev`` (see _load)."""
        with self._lock:
            seen = set()
            for kv in kvs:
                seen.add(kv.key)
                self._apply(Event("PUT", kv))
            for key, at in list(self._revs.items()):
                if key not in seen and at <= rev:  # gone by the snapshot's revision
                    self._apply(Event("DELETE", KV(key, "", rev, 0)))
            self.revision = max(self.revision, rev)
            self.loaded = True
            self.on_change.notify_all()

    # ---- the view ------------------------------------------------------------------------
    def _apply(self, ev: Event) -> None:
        """One key's change, unless the view already holds a newer revision of that key."""
        key, gone = ev.kv.key, ev.type == "DELETE"
        if ev.kv.mod_revision < self._revs.get(key, 0):
            return
        self._revs[key] = ev.kv.mod_revision
        if key.startswith(st.NODES):
            nid = key[len(st.NODES):]
            if gone:
                self.nodes.pop(nid, None)
            else:
                self.nodes[nid] = Node.from_json(ev.kv.value)
        elif key.startswith(st.COLLECTIONS):
            name = key[len(st.COLLECTIONS):]
            if gone:
                self.collections.pop(name, None)
            else:
                spec = self.collections[name] = CollectionSpec.from_json(ev.kv.value)
                self._known_uids.add(spec.uid)
        elif key.startswith(st.ALIASES):
            alias = key[len(st.ALIASES):]
            if gone:
                self.aliases.pop(alias, None)
            else:
                self.aliases[alias] = ev.kv.value
        elif key.startswith(st.MOVES):
            name, _, shard = key[len(st.MOVES):].rpartition("/")
            if gone:
                self.moves.pop((name, int(shard)), None)
            else:
                self.moves[(name, int(shard))] = st.Move.from_json(
                    name, int(shard), ev.kv.value, ev.kv.mod_revision)
        elif key.startswith(st.REMOVED):
            (self.removed.discard if gone else self.removed.add)(key[len(st.REMOVED):])
        elif key.startswith(st.RESHARDS):
            name = key[len(st.RESHARDS):]
            if gone:
                self.reshards.pop(name, None)
            else:
                rec = self.reshards[name] = st.Reshard.from_json(name, ev.kv.value,
                                                                 ev.kv.mod_revision)
                if rec.state == "preparing":
                    self.reshards_begun.add(rec.uid)
        elif key == st.REBALANCER:
            self.rebalancer = "" if gone else ev.kv.value
        elif key.startswith(st.SHARDS):
            name, _, shard = key[len(st.SHARDS):].rpartition("/")
            k = (name, int(shard))
            if gone:
                self.shards.pop(k, None)
            else:
                self.shards[k] = ShardState.from_json(ev.kv.value, ev.kv.mod_revision)

    def spec(self, name: str) -> CollectionSpec:
        """The collection ``name`` (or the one the alias ``name`` points to)."""
        with self._lock:
            spec = self.collections.get(self.aliases.get(name, name))
        if spec is None:
            raise NotFound(f"collection {name!r} does not exist", "collection")
        return spec

    def shard(self, name: str, shard: int) -> ShardState:
        with self._lock:
            s = self.shards.get((name, shard))
        if s is None:
            raise Unavailable(f"shard {name}/{shard} has no map entry yet; retry", "collection")
        return s

    def is_move_target(self, name: str, shard: int, node_id: str) -> bool:
        """A replica move of shard (name, shard) to ``node_id`` is in progress."""
        with self._lock:
            m = self.moves.get((name, shard))
        return m is not None and m.target == node_id

    def alive(self, node_id: str) -> bool:
        with self._lock:
            return node_id in self.nodes

    def address(self, node_id: str) -> str:
        with self._lock:
            n = self.nodes.get(node_id)
        if n is None:
            raise Unavailable(f"node {node_id} is not live", "collection")
        return n.address

    def write_lock(self, name: str, shard: int) -> threading.Lock:
        """The lock of the shard's copy here, by its local name: a reshard's new layout
        (a hidden collection until the switch, then ``name``'s) keeps one lock."""
        with self._lock:
            spec = self.collections.get(name)
            return self._write_locks[st.local_name(spec.uid, shard) if spec else (name, shard)]

    def change_shard(self, name: str, shard: int, old: ShardState, new: ShardState) -> bool:
        """Compare-and-swap of a shard's map entry; True when it won. The view follows at
        once (the watch confirms it)."""
        key = st.shard_key(name, shard)
        won, rev = self.etcd.txn_rev([unchanged(key, old.mod_revision)], [put(key, new.to_json())])
        if won:  # the view follows from the txn's own revision: no second read to lose
            with self._lock:
                self._apply(Event("PUT", KV(key, new.to_json(), rev, 0)))
                self.on_change.notify_all()
        return won

    def apply_own(self, key: str, value: str | None, rev: int) -> None:
        """A change this node made by a won transaction at ``rev`` (None: a delete)."""
        with self._lock:
            self._apply(Event("DELETE" if value is None else "PUT", KV(key, value or "", rev, 0)))
            self.on_change.notify_all()

    def apply_ops(self, ops: list[dict], rev: int) -> None:
        """The puts and (single-key) deletes of a won transaction at ``rev``, entering
        the view together."""
        with self._lock:
            for op in ops:
                if "request_put" in op:
                    req = op["request_put"]
                    self.apply_own(_unb64(req["key"]), _unb64(req["value"]), rev)
                else:
                    self.apply_own(_unb64(op["request_delete_range"]["key"]), None, rev)

    def refresh(self, key: str) -> None:
        """One key read from etcd now, into the view (a key just written: no need to
        wait for the watch)."""
        got = self.etcd.get(key)
        with self._lock:
            if got is not None:
                self._apply(Event("PUT", got))
                self.on_change.notify_all()

    def refresh_shard(self, name: str, shard: int) -> ShardState:
        """The shard's entry read from etcd now (after a lost compare-and-swap)."""
        got = self.etcd.get(st.shard_key(name, shard))
        with self._lock:
            if got is not None:
                self._apply(Event("PUT", got))
        return self.shard(name, shard)

    def create_collection(self, spec: CollectionSpec, shards: list[ShardState]) -> bool:
        ops = [put(st.collection_key(spec.name), spec.to_json())]
        ops += [put(st.shard_key(spec.name, i), s.to_json()) for i, s in enumerate(shards)]
        won = self.etcd.txn([_absent(st.collection_key(spec.name))], ops)
        if won:
            self._load()
        return won

    def drop_collection(self, name: str) -> bool:
        with self._lock:
            aliases = [a for a, c in self.aliases.items() if c == name]
        won = self.etcd.txn([_exists(st.collection_key(name))],
                            [delete(st.collection_key(name)),
                             delete(f"{st.SHARDS}{name}/", prefix=True),
                             *(delete(st.alias_key(a)) for a in aliases)])
        if won:
            self._load()
        return won

    def set_alias(self, alias: str, name: str, create: bool) -> bool:
        """Point ``alias`` at collection ``name`` (only if it is new, with ``create``); the
        collection must exist at that instant (compared in the same transaction)."""
        compare = [_exists(st.collection_key(name))]
        if create:
            compare.append(_absent(st.alias_key(alias)))
        won = self.etcd.txn(compare, [put(st.alias_key(alias), name)])
        if won:
            self._load()
        return won

    def delete_alias(self, alias: str) -> bool:
        won = self.etcd.txn([_exists(st.alias_key(alias))], [delete(st.alias_key(alias))])
        if won:
            self._load()
        return won

    def update_spec(self, old: CollectionSpec, new: CollectionSpec) -> bool:
        """Replace the collection's record if it is still ``old`` (so a reshard's switch
        meanwhile is never undone); True when it was."""
        key = st.collection_key(old.name)
        won = self.etcd.txn([holds(key, old.to_json())], [put(key, new.to_json())])
        if won:
            self._load()
        return won

    def replica_load(self) -> dict[str, int]:
        with self._lock:
            load: dict[str, int] = defaultdict(int)
            for s in self.shards.values():
                for r in s.replicas:
                    load[r] += 1
            return dict(load)

    def live_nodes(self) -> list[Node]:
        """Live nodes that take new replicas (not those being removed)."""
        with self._lock:
            return sorted((n for n in self.nodes.values() if n.id not in self.removed),
                          key=lambda n: n.id)

    def wait_for(self, predicate: Callable[[], bool], timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        with self._lock:
            while not predicate():
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self.on_change.wait(min(left, 0.2))
        return True

    # ---- threads -------------------------------------------------------------------------
    def _keepalive_loop(self) -> None:
        while not self._stop.wait(max(0.3, self.ttl / 3)):
            try:
                if self.etcd.lease_keepalive(self.lease) <= 0:
                    log.warning("lease expired (paused or cut off from etcd): re-registering")
                    self._register()
            except EtcdUnavailable as exc:
                log.warning("cannot renew the node lease: %s", exc.message)
            except EtcdError as exc:
                log.warning("lease renewal refused (%s): re-registering", exc)
                try:
                    self._register()
                except (EtcdUnavailable, EtcdError):
                    pass
            except Exception:  # noqa: BLE001 - the renewal thread must not die
                log.exception("unexpected error renewing the node lease")

    def _watch_loop(self) -> None:
        while not self._stop.is_set():
            try:
                for events in self.etcd.watch(st.ROOT, self.revision + 1, self._stop):
                    with self._lock:
                        for ev in events:
                            self._apply(ev)
                        # what the watch delivered (not our own CAS results): resume here
                        self.revision = max(self.revision, *(e.kv.mod_revision for e in events))
                        self.on_change.notify_all()
                continue  # an idle stream ended: watch on from the same revision
            except EtcdError:
                self._safe(self._load)  # compacted: read everything again
            except Exception as exc:  # noqa: BLE001 - etcd gone, a torn chunk...: never die
                log.debug("watch broke (%s); resuming", exc)
            if not self._stop.wait(0.3):
                self._safe(self._load)  # catch up on anything missed while broken

    def _safe(self, fn: Callable[[], None]) -> None:
        try:
            fn()
        except (EtcdUnavailable, EtcdError) as exc:
            log.debug("etcd: %s", exc)

    def _maintain_loop(self) -> None:
        while not self._stop.wait(0.3):
            try:
                self.maintain()
            except Exception:  # noqa: BLE001 - keep maintaining; logged
                log.exception("cluster maintenance step failed")

    # ---- maintenance ---------------------------------------------------------------------
    def maintain(self) -> None:
        with self._lock:
            shards = dict(self.shards)
            specs = dict(self.collections)
            live = set(self.nodes)
        if self.id not in live:
            return  # not registered (etcd down, or the lease lapsed): change nothing
        for (name, i), s in shards.items():  # failover first: nothing else may delay it
            if s.primary not in live and self.id in s.in_sync \
                    and not self.needs_resync(st.local_name(specs[name].uid, i)
                                              if name in specs else ""):
                self._failover(name, i, s, live)
        self._reconcile_local(shards, specs)
        for (name, i), s in shards.items():
            if s.primary == self.id and self.resync is not None:
                for r in s.replicas:
                    if r != self.id and r in live and r not in s.in_sync \
                            and (name, i, r) not in self._resyncing:
                        self._start_resync(name, i, r)
        with self._lock:
            moves = dict(self.moves)
        for k, m in moves.items():
            s = shards.get(k)
            if s is not None and s.primary == self.id == m.source and m.target in s.in_sync \
                    and m.target in live:
                self.hand_over(m.collection, m.shard, m)
        if self.mover is not None:
            self.mover.step()

    def hand_over(self, name: str, i: int, move: st.Move | None = None) -> bool:
        """Give up the primary of shard (name, i), which this node leads, under the
        shard's write lock (no write in flight here): the new primary (``move``'s target,
        else the first other live in-sync replica) takes term + 1. Replicas that missed
        an unacknowledged write of this term leave the in-sync set with it (their copy
        may differ from the new primary's, e.g. in the idempotency keys it recorded): the
        new primary resyncs them. With ``move`` (the last step of a move away from here,
        moves.py) this node also leaves the replicas and the move record goes in the same
        transaction; if the target itself missed a write, only the in-sync set changes
        now and the move waits for its resync. Without (DrainNode), this node stays a
        replica, out of sync until resynced. True when the primary moved."""
        key = st.shard_key(name, i)
        with self.write_lock(name, i):
            s = self.shard(name, i)
            if s.primary != self.id:
                return False
            missed = self.missed(name, i, s.term)
            ok = [r for r in s.in_sync if r != self.id and r not in missed and self.alive(r)]
            to = move.target if move is not None else (ok[0] if ok else None)
            compare = [unchanged(key, s.mod_revision)]
            if move is not None:
                compare.append(unchanged(move.key(), move.mod_revision))
            if to in ok:
                new = s.with_(primary=to, term=s.term + 1, in_sync=tuple(
                    r for r in s.in_sync if r != self.id and r not in missed))
                ops = [put(key, new.to_json())]
                if move is not None:
                    new = new.with_(replicas=tuple(r for r in s.replicas if r != self.id))
                    ops = [put(key, new.to_json()), delete(move.key())]
            elif move is not None and to in missed:
                new = s.with_(in_sync=tuple(r for r in s.in_sync if r not in missed))
                ops = [put(key, new.to_json())]
            else:
                return False
            try:
                won, rev = self.etcd.txn_rev(compare, ops)
            except (EtcdUnavailable, EtcdError) as exc:
                log.warning("handover of %s/%d waits for etcd: %s", name, i, exc)
                return False
            if won:
                self.apply_ops(ops, rev)
            if won and new.primary == to:
                log.info("handed over %s/%d from %s to %s (term %d%s)", name, i, self.id, to,
                         new.term, ", move finished" if move is not None else "")
            return won and new.primary == to

    def _reconcile_local(self, shards: dict, specs: dict[str, CollectionSpec]) -> None:
        mine = {st.local_name(specs[n].uid, i): (n, i) for (n, i), s in shards.items()
                if self.id in s.replicas and n in specs}
        with self.engine.session() as db:
            have = {c.name for c in db.list_collections()}
            for local, (name, i) in mine.items():
                try:
                    if local not in have:
                        if self.id in shards[(name, i)].in_sync:
                            # the copy vanished (a wiped disk): out of sync until resynced;
                            # marked on disk, so a restart meanwhile still knows; marked
                            # before the empty copy exists, so no read ever answers from it
                            log.warning("replica %s of %s/%d was missing here: leaving the "
                                        "in-sync set", local, name, i)
                            self._mark_resync(local, True)
                        db.create_collection(**create_kwargs(specs[name], local))
                    if local in self._needs_resync:
                        self._leave_in_sync(local, name, i, shards[(name, i)])
                    self.indexes.align(db, local, specs[name])
                except Exception:  # noqa: BLE001 - the other replicas still get their turn
                    log.exception("could not set up local replica %s", local)
            by_uid = {spec.uid: name for name, spec in specs.items()}
            for local in have - set(mine):
                m = LOCAL_NAME.match(local)
                # only copies of collections this process saw in the map and then lost:
                # an empty or different etcd never makes a node drop its data
                if m and m.group(1) in self._known_uids and m.group(1) not in by_uid:
                    self._drop_local(db, local, "its collection was dropped")
                    with self._lock:  # (its uid never comes back: e.g. a reshard's old layout)
                        self._write_locks.pop(local, None)
                elif m and (by_uid.get(m.group(1)), int(m.group(2))) in shards:
                    # the map places this shard elsewhere now (moved away): after a grace
                    since = self._unplaced_since.setdefault(local, time.monotonic())
                    if time.monotonic() - since >= DROP_GRACE_S:
                        self._drop_local(db, local, "the shard moved to other nodes")
            for local in list(self._unplaced_since):
                if local in mine or local not in have:
                    self._unplaced_since.pop(local, None)

    def _drop_local(self, db: Any, local: str, why: str) -> None:
        log.info("dropping local replica %s (%s)", local, why)
        try:
            db.drop_collection(local)
        except NotFound:
            pass
        self.dropped(local)
        self._unplaced_since.pop(local, None)
        if local in self._needs_resync:
            self._mark_resync(local, False)

    def _leave_in_sync(self, local: str, name: str, i: int, s: ShardState) -> None:
        """A marked copy leaves the in-sync set (retried every step until it has); as the
        primary it hands over to another in-sync replica, or stays if it is the only one."""
        if self.id not in s.in_sync or s.in_sync == (self.id,):
            self._mark_resync(local, False)
            return
        rest = tuple(r for r in s.in_sync if r != self.id)
        new = s.with_(in_sync=rest, primary=rest[0] if s.primary == self.id else s.primary,
                      term=s.term + (s.primary == self.id))
        try:
            if self.change_shard(name, i, s, new):
                self._mark_resync(local, False)
        except (EtcdUnavailable, EtcdError) as exc:
            log.warning("replica %s cannot leave the in-sync set yet: %s", local, exc)

    def needs_resync(self, local: str) -> bool:
        return local in self._needs_resync

    def _mark_resync(self, local: str, on: bool) -> None:
        (self._needs_resync.add if on else self._needs_resync.discard)(local)
        path = os.path.join(self.engine.data_dir, RESYNC_MARKS)
        tmp = path + ".tmp"
        with open(tmp, "w") as f:
            json.dump(sorted(self._needs_resync), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)

    def _failover(self, name: str, i: int, s: ShardState, live: set[str]) -> None:
        candidates = [r for r in s.in_sync if r in live]
        if not candidates or candidates[0] != self.id:
            return
        new = s.with_(primary=self.id, term=s.term + 1, in_sync=(self.id,))
        try:
            if self.change_shard(name, i, s, new):
                log.warning("took over shard %s/%d as primary (term %d; %s was not live)",
                            name, i, new.term, s.primary)
        except EtcdUnavailable as exc:
            log.warning("failover of %s/%d waits for etcd: %s", name, i, exc.message)

    def _start_resync(self, name: str, i: int, r: str) -> None:
        key = (name, i, r)
        self._resyncing.add(key)

        def run() -> None:
            try:
                self.resync(name, i, r)
            except Exception as exc:  # noqa: BLE001 - retried by the next maintenance step
                log.warning("resync of %s/%d to %s failed: %s", name, i, r, exc)
                time.sleep(1.0)
            finally:
                self._resyncing.discard(key)
        threading.Thread(target=run, name=f"vecdb-resync-{name}-{i}-{r}", daemon=True).start()


def create_kwargs(spec: CollectionSpec, local: str) -> dict:
    """Keyword arguments of Database.create_collection for one replica of ``spec``."""
    from vecdb_client._proto.vecdb.v1 import collections_pb2 as cpb

    from .. import convert
    req = cpb.CreateCollectionRequest.FromString(base64.b64decode(spec.request))
    req.name, req.shards = local, 1
    return convert.from_proto_create_collection(req)


def _absent(key: str) -> dict:
    from .etcd import absent
    return absent(key)


def _exists(key: str) -> dict:
    from .etcd import _b64
    return {"key": _b64(key), "target": "CREATE", "result": "GREATER", "create_revision": "0"}


def default_node_id(port: int) -> str:
    return f"{socket.gethostname()}-{port}"
