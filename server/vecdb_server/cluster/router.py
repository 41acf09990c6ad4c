"""The router: every node answers every request. Client calls are split by shard (the
engine's own id hash), sent to each shard's primary (writes) or to one in-sync replica
(reads, local first), and the answers merged as a single node would give them.
Internal calls (peers.py) act on this node's own replicas.

Writes: the primary applies a shard's part under the shard's write lock, then sends the
same mutation (texts embedded once, by the primary: replicas get the vectors) to every
other in-sync replica with its term, and acknowledges only when each of them has it
durably; a replica that fails is first removed from the in-sync set in etcd (a compare-
and-swap: if the map changed meanwhile, e.g. a newer term, nothing is acknowledged).
A write needs at least write_concern in-sync copies. Replicas refuse an older term.
Every copy records the writes it applies in its replication log (catchup.py) under the
primary's (term, n); a replica whose position the primary's log still holds is caught up
by streaming the entries after it, else by a full copy.
"""
from __future__ import annotations

import base64
import contextlib
import logging
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from concurrent.futures import wait as wait_futures
from dataclasses import dataclass
from typing import Any, Callable, Iterator

import grpc
from vecdb_client._proto.vecdb.v1 import cluster_pb2 as clpb
from vecdb_client._proto.vecdb.v1 import collections_pb2 as cpb
from vecdb_client._proto.vecdb.v1 import points_pb2 as ppb
from vecdb_client._proto.vecdb.v1 import types_pb2 as tpb
from vecdb_client.errors import FIELD_KEY, from_metadata_text

from vecdb.errors import (AlreadyExists, FailedPrecondition, InvalidArgument, NotFound,
                          ResourceExhausted, Unavailable, VecdbError)

from .. import convert
from ..guard import Rejected
from . import catchup
from .copies import Copies, Copy
from . import state as st
from . import write_keys
from .node import ClusterNode
from .peers import (ENTRY, FROM, PREV, ROUTE, SHARD, TERM, WRITTEN, Peers, from_peer_failure,
                    internal_route)
from .state import CollectionSpec

log = logging.getLogger("vecdb_server.cluster")
PEER_ERRORS = {grpc.StatusCode.INVALID_ARGUMENT: InvalidArgument,
               grpc.StatusCode.NOT_FOUND: NotFound,
               grpc.StatusCode.ALREADY_EXISTS: AlreadyExists,
               grpc.StatusCode.FAILED_PRECONDITION: FailedPrecondition,
               grpc.StatusCode.RESOURCE_EXHAUSTED: ResourceExhausted}
STALE_TERM = "stale term"
READ_TIMEOUT_S = 30.0  # a read's budget when the client set no deadline
CATCHUP_PAGE = 64  # replication-log entries read at once by a catch-up
UNKNOWN = 1 << 62  # a copy's engine sequence when its history is unknown (catchup.py)
GAP = 1 << 62  # n of a position after writes that were not logged (a shard of one copy)
CATCHUP_ROUNDS = 200  # pages streamed while writes go on beyond the backlog found, at most
CATCHUP_FINAL = 8  # entries left, at most, for the final step (under the write lock)
CATCHUP_LOCKED = 64  # entries found under the lock, at most, to send them there (else unlocked)
CATCHUP_TRIES = 5  # times the final step is tried before the catch-up starts again
FORWARD_TIMEOUT_S = 30.0  # a write forwarded to its primary waits this long (no client deadline)
REPLICA_POLL_S = 0.25  # how often a write waiting on its replicas looks at who is live
WRITE_LOCK_WAIT_S = 10.0  # a write waits this long, at most, for its shard's write lock
COPY_PAGE = 2000  # points sent at once by a full copy


def _target_name(request: Any) -> str:
    """The (local) collection a request is for (CreateCollection/Drop name it "name")."""
    return getattr(request, "collection", "") or getattr(request, "name", "")


def _check_concern(spec: CollectionSpec, i: int, copies: int, note: str) -> None:
    need = spec.required_in_sync()
    if copies < need:
        raise Unavailable(f"shard {spec.name}/{i}: {copies} in-sync copies {note}; "
                          f"write_concern {spec.write_concern} needs {need}", "write_concern")


@dataclass
class PrimaryPart:
    """One shard's part of a write on its primary, from begin_primary to finish_primary."""
    i: int
    method: str
    request: Any  # the shard's part, on its local copy
    key: str | None  # the idempotency key, and the digest of the client's request
    want: str | None
    s: st.ShardState
    local: str
    last: catchup.Pos  # the copy's replication-log position before, and this write's
    pos: catchup.Pos
    now: float  # ms since the epoch
    alone: bool  # the shard has no other replica: nothing is logged
    seq: int = 0  # the copy's engine sequence before the write
    answer: str | None = None  # the primary's answer (base64), once replicated

    def others(self, me: str) -> list[str]:
        return [r for r in self.s.in_sync if r != me]

    def record(self) -> tuple[str, str, str, str]:
        """Its idempotency-key record (WriteKeys.put)."""
        return self.local, self.key or "", self.want or "", self.answer or ""


class NoContext:
    """The context of a call the router makes to a local servicer itself."""

    def time_remaining(self) -> None:
        return None

    def invocation_metadata(self) -> tuple:
        return ()

    def is_active(self) -> bool:
        return True


class Router:
    def __init__(self, node: ClusterNode, peers: Peers, secret: str, local_collections: Any,
                 local_points: Any, threads: int = 32):
        self.node, self.peers, self.secret = node, peers, secret
        self.lc, self.lp = local_collections, local_points
        self.pool = ThreadPoolExecutor(threads, thread_name_prefix="vecdb-route")
        # replication waits on its own threads: a fan-out task never waits on its own pool
        self.repl_pool = ThreadPoolExecutor(32, thread_name_prefix="vecdb-replicate")
        # the replication of parts whose write locks are held (local_writes.py): fan-out
        # tasks wait on those locks, so these steps never queue behind them in ``pool``
        self.finish_pool = ThreadPoolExecutor(32, thread_name_prefix="vecdb-finish")
        # highest term accepted per shard copy, by its local name (a collection dropped and
        # made again under the same name has a new uid, and its terms start over)
        self.promised: dict[str, int] = {}
        # shard -> (term, replicas) that missed a write which was not acknowledged: they
        # leave the in-sync set before the next write of that term
        self.dirty: dict[tuple[str, int], tuple[int, set[str]]] = {}
        node.resync = self.resync
        self.keys = write_keys.WriteKeys(node.engine.data_dir)
        self.log = catchup.ReplLog(node.engine.data_dir, node.engine.options.wal_retain)
        self.catchups = {"incremental": 0, "full": 0}  # resyncs made by this node
        self.copies = Copies(node.is_move_target)  # resyncs under way: progress, throttle
        node.dropped = self.log.drop
        self._seqs: dict[str, int] = {}  # local copy -> its engine sequence (see _settle)
        self.lock_wait_s = WRITE_LOCK_WAIT_S
        # what a replica's server takes in one request (the node's own limits: wiring.py)
        self.max_batch_points, self.max_message_bytes = 10_000, 64 << 20
        # set by reshard.Resharder: after a primary applied (and replicated) a write to
        # the shard copies [(shard, local name)], under their write locks, before its
        # keys are recorded: the write also goes to a reshard's new layout
        self.after_write: Callable[[str, list[tuple[int, str]], str, Any], None] = \
            lambda name, parts, method, request: None
        self.resharder: Any = None  # the Resharder (it answers ReshardCollection)

    # ---- dispatch ------------------------------------------------------------------------
    def route_of(self, context: Any) -> dict[str, str] | None:
        try:
            return internal_route(context.invocation_metadata(), self.secret)
        except PermissionError as exc:
            raise Rejected(grpc.StatusCode.PERMISSION_DENIED, str(exc)) from None

    def local(self, method: str, request: Any) -> Any:
        servicer = self.lp if hasattr(self.lp, method) else self.lc
        return getattr(servicer, method)(request, NoContext())

    def internal(self, method: str, request: Any, md: dict[str, str]) -> Any:
        """An internal call: act on this node's replica. Replicated writes and resync
        steps are fenced: checked against the highest term this node has accepted for the
        shard and applied under the shard's lock, so an older term can never land after
        a newer one."""
        route = md[ROUTE]
        if method in ("DropCollection", "CreateCollection") and route != "resync":
            self._forget(request.name, UNKNOWN)
        if route == "primary":
            name, shard = self._target(md, _target_name(request))
            return self.primary_write(name, shard, method, request,
                                      write_keys.key_of(md.items()), md.get(write_keys.DIGEST))
        if route in ("replica", "resync"):
            name, shard = self._target(md, _target_name(request))
            with self.node.write_lock(name, shard):
                self._check_term(name, shard, md)
                local, entry = _target_name(request), md.get(ENTRY)
                if method in ("DropCollection", "CreateCollection"):  # a full copy begins:
                    self._forget(local, UNKNOWN)  # no history until it ends
                key, record = write_keys.key_of(md.items()), md.get(write_keys.RECORD)
                if entry:
                    if local not in self._seqs:
                        self._settle(local)
                    if self._check_position(local, md) == catchup.parse(entry):
                        return tpb.WriteResult()  # applied already (a catch-up resent it)
                    result = self._logged(local, catchup.parse(entry), method, request,
                                          float(md[WRITTEN]),
                                          (key, record) if key and record else None)
                else:
                    result = self.local(method, request)
                if key and record:  # the primary's answer, for a retry after a failover
                    want, _, answer = record.partition(" ")
                    self.keys.put(local, key, want, answer)
                return result
        if self.node.needs_resync(_target_name(request)):
            raise Unavailable("this copy is waiting for a resync", "collection")
        return self.local(method, request)

    def _forget(self, local: str, engine_seq: int) -> None:
        """A copy replaced or made anew: the write keys of the earlier copy go with it,
        and its history (``engine_seq`` UNKNOWN: none until a full copy sets it)."""
        self.keys.forget(local)
        self.log.reset(local, (0, 0), engine_seq)
        self._seqs.pop(local, None)

    def _logged(self, local: str, pos: catchup.Pos, method: str, request: Any,
                written_ms: float, record: tuple[str, str] | None = None) -> Any:
        """Apply a write to this copy, its log entry written first (with the engine
        sequence before it); a write the engine refuses leaves no entry."""
        seq = self._seqs.get(local, 0)  # (0: no such copy; the engine says so below)
        self.log.append(local, pos, method, request, seq, written_ms, record)
        try:
            result = self.local(method, request)
        except Exception:
            self.log.drop_last(local)
            raise
        self._seqs[local] = _engine_seq(result, seq)
        return result

    def _settle(self, local: str) -> bool:
        """Check this copy's log against its engine (once per process before the copy is
        written, and when a primary asks its position); True when they agree. A last
        entry whose write the engine lacks (killed in between; or a write that changed
        nothing) is applied again, or dropped if the engine refuses it."""
        try:
            cur = self.local("DescribeCollection", cpb.DescribeCollectionRequest(
                collection=local)).shards[0].applied_seq
        except NotFound:
            return False
        _, before, entry = self.log.position(local)
        known = cur == (before + 1 if entry else before)
        if entry and cur == before:
            e = self.log.last(local)
            try:
                cur = _engine_seq(self.local(e.method, e.replayed()), cur)
            except VecdbError:
                self.log.drop_last(local)
            known = True
        self._seqs[local] = cur
        return known

    def _target(self, md: dict[str, str], target: str) -> tuple[str, int]:
        """The shard a fenced call is for; its local name must be the current one (a
        collection dropped and made again under the same name has a new uid)."""
        name, _, shard = md[SHARD].rpartition("/")
        local = st.local_name(self.node.spec(name).uid, int(shard))
        if target != local:
            raise Unavailable(f"shard {name}/{shard} is now {local}; retry", "collection")
        return name, int(shard)

    def _check_position(self, local: str, md: dict[str, str]) -> catchup.Pos:
        """This copy's position; a write must follow it (or be the one it holds last)."""
        have, prev = self.log.position(local)[0], catchup.parse(md[PREV])
        if have not in (prev, catchup.parse(md[ENTRY])):
            raise FailedPrecondition(f"replica {local} holds the writes up to {have}, this "
                                     f"write follows {prev}: it needs a catch-up", "term")
        return have

    def _check_term(self, name: str, shard: int, md: dict[str, str]) -> None:
        s = self.node.shard(name, shard)
        copy = st.local_name(self.node.spec(name).uid, shard)
        term, promised = int(md[TERM]), self.promised.get(copy, 0)
        if term < max(s.term, promised) or (term == s.term and md.get(FROM) != s.primary):
            raise FailedPrecondition(f"{STALE_TERM}: shard {name}/{shard} is at term "
                                     f"{max(s.term, promised)} (primary {s.primary}); the "
                                     f"sender has term {term}", "term")
        self.promised[copy] = term

    # ---- calls to shards -----------------------------------------------------------------
    def _peer(self, node_id: str, method: str, request: Any, md: tuple,
              timeout: float = 10.0) -> Any:
        try:
            return self.peers.call(self._address(node_id), method, request, md, timeout)
        except grpc.RpcError as exc:
            raise self._from_peer(exc, node_id) from None

    def _address(self, node_id: str) -> str:
        """Where node-to-node calls reach ``node_id``: its internal server (own worker
        threads: they never queue behind client calls), else its client address."""
        n = self.node.nodes.get(node_id)
        return n.internal or n.address if n is not None else self.node.address(node_id)

    def _from_peer(self, exc: grpc.RpcError, node_id: str) -> VecdbError:
        cls = PEER_ERRORS.get(exc.code())
        if cls is None:
            return from_peer_failure(exc, node_id)
        md = {k: v for k, v in (exc.trailing_metadata() or ()) if isinstance(v, str)}
        field = from_metadata_text(md[FIELD_KEY]) if FIELD_KEY in md else None
        return cls(exc.details(), field)

    def read_shard(self, spec: CollectionSpec, i: int, method: str, request: Any,
                   timeout: float | None = None, primary_only: bool = False) -> Any:
        """``method`` on one in-sync replica of shard i: this node's own first, then the
        primary, then the others; UNAVAILABLE naming the shard when none answers.
        ``timeout``: what is left of the client's deadline (None: READ_TIMEOUT_S); a
        remote replica gets an even share of it (at least 2 s), so a hung one cannot
        use it all. ``primary_only``: the primary alone (consistency="primary")."""
        s = self.node.shard(spec.name, i)
        order = [s.primary] if primary_only else \
            sorted(s.in_sync, key=lambda r: (r != self.node.id, r != s.primary))
        budget = READ_TIMEOUT_S if timeout is None else timeout
        each = max(2.0, budget / max(1, len([r for r in order if r != self.node.id])))
        last: Exception | None = None
        for r in order:
            try:
                if r == self.node.id:
                    if self.node.needs_resync(_target_name(request)):
                        raise Unavailable(f"this node's copy of shard {spec.name}/{i} waits "
                                          "for a resync", "collection")
                    return self.local(method, request)
                return self._peer(r, method, request, self.peers.metadata("local"), each)
            except Unavailable as exc:
                last = exc
            except NotFound as exc:  # this replica's copy is missing: the next one
                if exc.field != "collection" or _target_name(request) not in exc.message:
                    raise
                last = exc
        raise Unavailable(f"shard {spec.name}/{i} has no reachable in-sync replica "
                          f"({last.message if isinstance(last, VecdbError) else 'none'})",
                          "collection")

    def write_shard(self, spec: CollectionSpec, i: int, method: str, request: Any,
                    key: str | None = None, want: str | None = None,
                    left: float | None = None) -> Any:
        """``method`` on shard i's primary; ``key``: the write's idempotency key, ``want``
        the digest of the client's request (write_keys.digest); ``left``: seconds of the
        client's deadline left (a forward waits FORWARD_TIMEOUT_S at most)."""
        s = self.node.shard(spec.name, i)
        if s.primary == self.node.id:
            return self.primary_write(spec.name, i, method, request, key, want)
        md = self.peers.metadata("primary", f"{spec.name}/{i}", s.term)
        keyed = ((write_keys.HEADER, key), (write_keys.DIGEST, want or "")) if key else ()
        wait = FORWARD_TIMEOUT_S if left is None else max(0.05, min(FORWARD_TIMEOUT_S, left))
        return self._peer(s.primary, method, request, md + keyed, wait)

    def fan_out(self, fn: Callable[[int], Any], shards: list[int]) -> dict[int, Any]:
        """fn(shard) for every shard: all but the first in the pool, the first in this
        thread (one shard: no thread hop at all)."""
        futures = {i: self.pool.submit(fn, i) for i in shards[1:]}
        out = {shards[0]: fn(shards[0])} if shards else {}
        out.update((i, f.result()) for i, f in futures.items())
        return out

    # ---- the primary's write path --------------------------------------------------------
    @contextlib.contextmanager
    def writes_of(self, name: str, i: int, deadline: float | None = None) -> Iterator[None]:
        """Shard i's write lock for a client's write, waited for lock_wait_s at most (the
        last step of a catch-up holds it), or until ``deadline`` (a time.monotonic()
        reading: one for every lock of a batch): UNAVAILABLE naming the shard after that."""
        lock = self.node.write_lock(name, i)
        wait = self.lock_wait_s if deadline is None else max(0.0, deadline - time.monotonic())
        if not lock.acquire(timeout=wait):
            raise Unavailable(f"shard {name}/{i} is busy: its write lock was not free within "
                              f"{wait:.1f} s (a catch-up's last step or a long write); retry",
                              "collection")
        try:
            yield
        finally:
            lock.release()

    def primary_write(self, name: str, i: int, method: str, request: Any,
                      key: str | None = None, want: str | None = None) -> Any:
        """Apply and replicate one shard's part of a write. With an idempotency ``key``
        already recorded for this part, its recorded answer instead (applied once)."""
        spec = self.node.spec(name)
        with self.writes_of(name, i):
            part = self.begin_primary(spec, i, method, request, key, want)
            if not isinstance(part, PrimaryPart):
                return part
            if part.alone:
                return self._apply_part(spec, part)
            # what is applied, logged and replicated: ids, no filter; many ids as several
            # writes, each one entry a replica takes (the key recorded with the last)
            chunks, want, count = self._id_chunks(self._by_ids(method, request)), part.want, 0
            for n, chunk in enumerate(chunks):
                if n:  # (the key is recorded with the last: not found before)
                    part = self.begin_primary(spec, i, method, chunk, key, want)
                    if not isinstance(part, PrimaryPart):
                        return part
                part.request = chunk
                if n < len(chunks) - 1:
                    part.key = part.want = None
                result = self._apply_part(spec, part)
                count += result.count
            result.count = count
            return result

    def _apply_part(self, spec: CollectionSpec, part: PrimaryPart) -> tpb.WriteResult:
        """One write of the primary (primary_write; the caller holds the lock)."""
        self.log_primary(part)
        try:
            result = self.local(part.method, part.request)
        except Exception:
            self.unlog_primary(part)
            raise
        try:
            result = self.finish_primary(spec, part, result, record=False)
        finally:  # applied here even if not acknowledged: a reshard's new layout too
            self.after_write(spec.name, [(part.i, part.local)], part.method, part.request)
        if part.key:
            self.keys.put(*part.record())
        return result

    # A primary's write of one shard part, in steps (local_writes.py applies the parts of
    # several shards in one engine write between log_primary and finish_primary); the
    # caller holds the shard's write lock throughout.
    def begin_primary(self, spec: CollectionSpec, i: int, method: str, request: Any,
                      key: str | None, want: str | None = None
                      ) -> PrimaryPart | tpb.WriteResult:
        """Checks as the primary (term, write concern); the part's recorded answer when
        ``key`` was applied already. ``want``: the digest of the client's request (by
        default that of this part: a call from a router that sent none)."""
        name = spec.name
        s = self.node.shard(name, i)
        if s.primary != self.node.id:
            raise Unavailable(f"shard {name}/{i} moved to {s.primary} (term {s.term}); "
                              "retry", "collection")
        if self.promised.get(st.local_name(spec.uid, i), 0) > s.term:  # a newer primary wrote to us
            raise Unavailable(f"shard {name}/{i}: term {s.term} is superseded; retry",
                              "collection")
        local = _target_name(request)
        if local != st.local_name(self.node.spec(name).uid, i):  # resharded meanwhile
            raise Unavailable(f"collection {name!r} was resharded; retry", "collection")
        if self.resharder is not None:  # a write missed a reshard's new layout: refused
            self.resharder.refuses(name, i)
        want = key and (want or write_keys.digest(method, request))
        done = key and self.keys.get(local, key, want)
        if done:
            return tpb.WriteResult.FromString(base64.b64decode(done))
        term, left = self.dirty.get((name, i), (0, set()))
        if left and term == s.term:  # an unacknowledged write reached some replicas
            self._drop_from_in_sync(spec, i, s, sorted(left), check=False)  # only
            s = self.node.shard(name, i)
        self.dirty.pop((name, i), None)
        _check_concern(spec, i, len(s.in_sync), "(replicas are catching up)")
        if local not in self._seqs:
            self._settle(local)
        last = self.log.position(local)[0]
        return PrimaryPart(i, method, request, key, want or None, s, local, last,
                           self.log.next_key(local, s.term), time.time() * 1000,
                           s.replicas == (self.node.id,))

    def _by_ids(self, method: str, request: Any) -> Any:
        """A Delete/UpdatePayload by filter as the ids the filter selects now (the caller
        holds the shard's write lock): a replay over a copy taken while writes went on
        then does what the primary did (_full_copy). No id selected: a request with
        neither ids nor a filter, which the engine applies as a write of nothing. An
        empty filter stays as it is (the engine refuses it)."""
        if method not in ("Delete", "UpdatePayload") or request.ids \
                or not request.HasField("filter") or not convert.from_proto_filter(request.filter):
            return request
        out = type(request)()
        out.CopyFrom(request)
        out.ClearField("filter")
        # one pass (a bad filter: INVALID_ARGUMENT naming it, as the write would say)
        with self.node.engine.session() as db:
            out.ids.extend(db.ids_matching(request.collection,
                                           convert.from_proto_filter(request.filter)))
        return out

    def _id_chunks(self, request: Any) -> list[Any]:
        """A delete or payload update by ids as writes of at most max_batch_points ids
        and a quarter of max_message_bytes each (what a replica's server takes)."""
        if not isinstance(request, (ppb.DeleteRequest, ppb.UpdatePayloadRequest)) \
                or len(request.ids) <= 1:
            return [request]
        base = type(request)()
        base.CopyFrom(request)
        base.ClearField("ids")
        room = max(1, self.max_message_bytes // 4 - base.ByteSize())
        out, start, size = [], 0, 0
        for n, pid in enumerate(request.ids):
            cost = len(pid.encode()) + 4  # tag and length
            if n > start and (n - start >= self.max_batch_points or size + cost > room):
                out.append(_with_ids(base, request.ids[start:n]))
                start, size = n, 0
            size += cost
        if not out:
            return [request]
        out.append(_with_ids(base, request.ids[start:]))
        return out

    def log_primary(self, part: PrimaryPart) -> None:
        """Before the engine applies the part: its replication-log entry, pending (no
        catch-up reads it) until finish_primary has made it final."""
        if part.alone:  # no other copy: nothing to log, but a copy added later must not
            if part.last[1] != GAP:  # take the log as complete
                self.log.reset(part.local, (part.s.term, GAP), self._seqs.get(part.local, 0))
            return
        part.seq = self._seqs.get(part.local, 0)
        self.log.append(part.local, part.pos, part.method, part.request, part.seq, part.now,
                        pending=True)

    def unlog_primary(self, part: PrimaryPart) -> None:
        """The engine refused the part: its entry goes."""
        if not part.alone:
            self.log.drop_last(part.local)

    def finish_primary(self, spec: CollectionSpec, part: PrimaryPart,
                       result: tpb.WriteResult, record: bool = True) -> tpb.WriteResult:
        """After the engine applied the part: replicate it, record its key (``record``
        False: the caller records part.record() once it returns); the answer."""
        local, key, want, now, pos = part.local, part.key, part.want, part.now, part.pos
        replicable = part.request
        answer = part.answer = key and base64.b64encode(result.SerializeToString()).decode()
        if not part.alone:
            self._seqs[local] = _engine_seq(result, part.seq)
            try:
                replicable = self._replicable(part.method, part.request)
                if replicable is not part.request:  # texts: the entry gets the vectors too
                    self.log.rewrite(local, pos, part.method, replicable, part.seq, now)
                if key:
                    self.log.set_record(local, pos, (key, f"{want} {answer}"))
            finally:  # applied: a catch-up may send it (as final as it will be)
                self.log.commit(local)
        others = part.others(self.node.id)
        if others:
            extra = ((write_keys.HEADER, key), (write_keys.RECORD, f"{want} {answer}")) \
                if key else ()
            extra += ((ENTRY, catchup.show(pos)), (PREV, catchup.show(part.last)),
                      (WRITTEN, repr(now)))
            self._replicate(spec, part.i, part.s, part.method, replicable, others, extra)
        if key and record:
            self.keys.put(*part.record())
        return result

    def _replicable(self, method: str, request: Any) -> Any:
        """The mutation as replicas apply it: texts the primary embedded travel as vectors."""
        if method in ("Upsert", "UpsertStreamBatch") and request.points.texts \
                and not request.points.vectors.data:
            got = self.local("Get", ppb.GetRequest(collection=request.collection,
                                                   ids=request.points.ids, with_vector=True,
                                                   with_payload=False))
            out = ppb.UpsertRequest()
            out.CopyFrom(request)
            out.points.vectors.CopyFrom(got.points.vectors)
            return out
        return request

    def _replicate(self, spec: CollectionSpec, i: int, s: st.ShardState, method: str,
                   request: Any, others: list[str], extra: tuple = ()) -> None:
        md = self.peers.metadata("replica", f"{spec.name}/{i}", s.term) + extra
        futures = {r: self.repl_pool.submit(self._peer, r, method, request, md, 10.0)
                   for r in others}
        failed, fenced = [], False
        for r, f in self._answers(futures, time.monotonic() + 15.0):
            try:
                f.result(timeout=0)
            except FailedPrecondition as exc:
                fenced |= STALE_TERM in exc.message
                failed.append(r)
            except (VecdbError, FutureTimeout, TimeoutError) as exc:
                log.warning("replica %s of %s/%d missed a write: %s", r, spec.name, i, exc)
                failed.append(r)
        if fenced:
            raise Unavailable(f"this node is no longer the primary of shard {spec.name}/{i} "
                              "(a newer term exists); the write is not acknowledged, retry",
                              "collection")
        if failed:
            try:
                self._drop_from_in_sync(spec, i, s, failed)
            except Unavailable:
                self.dirty[(spec.name, i)] = (s.term, set(failed))  # before the next write
                raise

    def _answers(self, futures: dict[str, Future],
                 deadline: float) -> Iterator[tuple[str, Future]]:
        """(replica, its call) as each ends; a call to a node that left the cluster (its
        lease lapsed: hung, or cut off) ends at once as a FutureTimeout instead of
        waiting out its deadline: a hung replica holds the shard's writes about
        node_ttl_s, not the whole call timeout."""
        pending = dict(futures)
        while pending:
            wait_futures(pending.values(), timeout=REPLICA_POLL_S, return_when=FIRST_COMPLETED)
            late = time.monotonic() > deadline
            for r, f in list(pending.items()):
                if f.done():
                    yield r, pending.pop(r)
                elif late or not self.node.alive(r):
                    pending.pop(r).cancel()  # (not started yet: never sent; else it runs out)
                    gone = Future()
                    gone.set_exception(FutureTimeout(
                        f"node {r} did not answer in time" if late else
                        f"node {r} left the cluster (its lease lapsed) before it answered"))
                    yield r, gone

    def _drop_from_in_sync(self, spec: CollectionSpec, i: int, s: st.ShardState,
                           failed: list[str], check: bool = True) -> None:
        """Before acknowledging: the replicas that missed the write leave the in-sync set
        (so none of them can ever be elected with it missing). A lost compare-and-swap is
        retried on the fresh entry while this node is still the primary of this term."""
        cur = s
        for _ in range(5):
            new = cur.with_(in_sync=tuple(r for r in cur.in_sync if r not in failed))
            if self.node.change_shard(spec.name, i, cur, new):
                if check:
                    _check_concern(spec, i, len(new.in_sync), "hold the write; not "
                                   "acknowledged")
                return
            cur = self.node.refresh_shard(spec.name, i)
            if cur.primary != self.node.id or cur.term != s.term:
                break
        raise Unavailable(f"the map of shard {spec.name}/{i} changed during the write (term "
                          f"{cur.term}, primary {cur.primary}); not acknowledged, retry",
                          "collection")

    def _carry_ttls(self, local: str, batch: tpb.PointBatch) -> None:
        """Give a resync page the seconds each point has left, so copies expire with it. A
        point of a page with expiries that has none and is gone since the page was read
        expired meanwhile (an expiry is not logged): it is sent expiring now. (A page
        without expiries is not checked: the look-up costs most of the page's read.)"""
        with self.node.engine.session() as db:
            expiry = db.expiry_of(local, list(batch.ids))
            bare = [i for i in batch.ids if i not in expiry] if expiry else []
            gone = set(bare) - {p.id for p in db.get(local, bare, with_payload=False)} \
                if bare else set()
        if expiry:
            now = time.time() * 1000
            batch.ttl_seconds.extend(max(0.001, (expiry[i] - now) / 1000) if i in expiry
                                     else 0.001 if i in gone else 0.0 for i in batch.ids)

    # ---- resync (runs on the primary, from ClusterNode.maintain) -------------------------
    def resync(self, name: str, i: int, r: str) -> None:
        """Bring replica r of shard i up to date, then add it to the in-sync set: by the
        replication-log entries after its position while writes go on, only the last
        ones under the shard's write lock; else (its position is not in this node's log)
        by a full copy made while writes go on, then the same catch-up from the position
        the copy started at."""
        spec = self.node.spec(name)
        local = st.local_name(spec.uid, i)
        s = self.node.shard(name, i)
        if not _wants_resync(s, self.node.id, r):
            return
        with self.node.write_lock(name, i):  # a restarted primary's log checked first
            if local not in self._seqs:
                self._settle(local)
        md = self.peers.metadata("resync", f"{name}/{i}", s.term)
        cp = self.copies.begin(name, i, r)
        try:
            try:
                if self._catch_up(name, i, r, local, s, md, cp):
                    return
            except FailedPrecondition as exc:
                if STALE_TERM in exc.message:
                    raise
                log.info("incremental catch-up of %s/%d to %s stopped (%s): full copy",
                         name, i, r, exc.message)
            except (ResourceExhausted, InvalidArgument) as exc:  # refused for good
                log.warning("replica %s refused an entry of %s/%d (%s): full copy", r,
                            name, i, exc.message)
            self._full_copy(spec, i, r, local, cp)
        finally:
            self.copies.end(cp)

    def _catch_up(self, name: str, i: int, r: str, local: str, s: st.ShardState,
                  md: tuple, cp: Copy, how: str = "incremental") -> bool:
        """The incremental catch-up; False when r needs a full copy."""
        got = self._peer(r, "ReplicaPosition", clpb.ReplicaPositionRequest(local=local), md)
        pos: catchup.Pos = (got.term, got.n)
        if not got.known or self.log.entries_after(local, pos, 0) is None:
            log.info("replica %s of %s/%d is at %s, not in this log: full copy", r, name, i,
                     pos if got.known else "an unknown position")
            return False
        t0, sent, start = time.monotonic(), 0, pos
        pace = how != "full"  # a full copy's replay goes unpaced once its pages are sent
        for _ in range(CATCHUP_TRIES):
            # writes go on meanwhile: an entry is read only once its write is done (ReplLog)
            got_to = self._replay(name, i, r, local, md, pos, cp, pace)
            if got_to is None:
                return False  # pruned meanwhile
            pos, n = got_to
            sent += n
            with self.node.write_lock(name, i):
                held = time.monotonic()
                cur = self.node.shard(name, i)
                if cur.term != s.term or not _wants_resync(cur, self.node.id, r) \
                        or st.local_name(self.node.spec(name).uid, i) != local:
                    return True  # (resharded meanwhile: another layout's copy)
                self.log.commit(local)  # under the lock no write is under way: none pending
                left = self.log.backlog(local, pos)
                if left is None:
                    return False
                if left > CATCHUP_LOCKED:
                    continue  # writes came before the lock: replayed without it again
                last = 0
                while (batch := self.log.entries_after(local, pos, CATCHUP_PAGE)) != []:
                    if batch is None:
                        return False
                    pos = self._send_entries(r, md, pos, batch, cp, pace=False)
                    last += len(batch)
                self._join_in_sync(name, i, cur, r, how, t0, held,
                                   f"{sent + last} entries after {start}, {last} of them "
                                   "under the lock")
            return True
        raise Unavailable(f"the writes of {name}/{i} outpace the catch-up of {r}; it is "
                          "tried again", "collection")

    def _replay(self, name: str, i: int, r: str, local: str, md: tuple, pos: catchup.Pos,
                cp: Copy, pace: bool) -> tuple[catchup.Pos, int] | None:
        """Send the entries after ``pos`` while writes go on, until at most CATCHUP_FINAL
        are left: (the position reached, entries sent); None when the log no longer holds
        ``pos``. Pages beyond CATCHUP_ROUNDS plus the backlog found first mean the writes
        come faster than they are sent: UNAVAILABLE (the catch-up is tried again)."""
        backlog, sent = self.log.backlog(local, pos), 0
        if backlog is None:
            return None
        for _ in range(CATCHUP_ROUNDS + backlog // CATCHUP_PAGE):
            batch = self.log.entries_after(local, pos, CATCHUP_PAGE)
            if batch is None:
                return None
            if len(batch) <= CATCHUP_FINAL:
                return pos, sent
            pos = self._send_entries(r, md, pos, batch, cp, pace)
            sent += len(batch)
        raise Unavailable(f"the writes of {name}/{i} outpace the catch-up of {r}; it is "
                          "tried again", "collection")

    def _send_entries(self, r: str, md: tuple, pos: catchup.Pos,
                      batch: list[catchup.Entry], cp: Copy, pace: bool = True) -> catchup.Pos:
        """``pace``: a move's copy may wait for the bandwidth limit (not under the lock)."""
        for e in batch:
            extra = ((ENTRY, catchup.show(e.key)), (PREV, catchup.show(pos)),
                     (WRITTEN, repr(e.written_ms)))
            if e.record:
                extra += ((write_keys.HEADER, e.record[0]), (write_keys.RECORD, e.record[1]))
            req = e.replayed()
            self._peer(r, e.method, req, md + extra, 60.0)
            cp.sent(req.ByteSize(), int(cp.kind != "full"), pace)
            pos = e.key
        return pos

    def _join_in_sync(self, name: str, i: int, s: st.ShardState, r: str, how: str,
                      t0: float, held: float, what: str) -> None:
        new = s.with_(in_sync=tuple([*s.in_sync, r]))
        if self.node.change_shard(name, i, s, new):
            self.catchups[how] += 1
            log.info("replica %s of shard %s/%d is in sync (term %d): %s catch-up of %s in "
                     "%.1f ms, writes held %.1f ms", r, name, i, s.term, how, what,
                     (time.monotonic() - t0) * 1000, (time.monotonic() - held) * 1000)

    def _full_copy(self, spec: CollectionSpec, i: int, r: str, local: str, cp: Copy) -> None:
        """Copy shard i to replica r from scratch while its writes go on, then catch r up
        from the replication-log position taken (under the shard's write lock, for an
        instant) when the copy began: the entries after it are pinned, and every write
        after it is logged (r is among the shard's replicas). The copy may hold a point
        written meanwhile in any of its states since that position; replaying the
        entries after it in order leaves the point in its last, because each entry sets
        what it names whatever was there: upserts and deletes whole points, payload and
        vector updates the keys and fields they name, of the ids they name (a filter is
        logged as the ids it selected: _by_ids; an id absent meanwhile is skipped)."""
        name = spec.name
        with self.node.write_lock(name, i):
            s = self.node.shard(name, i)
            if not _wants_resync(s, self.node.id, r):
                return
            self.log.commit(local)  # under the lock no write is under way: none is pending
            start = self.log.position(local)[0]
            pin = self.log.pin(local, start)
        try:
            log.info("resyncing shard %s/%d to %s (full copy from %s)", name, i, r, start)
            md = self.peers.metadata("resync", f"{name}/{i}", s.term)
            try:
                self._peer(r, "DropCollection", cpb.DropCollectionRequest(name=local), md)
            except NotFound:
                pass
            req = cpb.CreateCollectionRequest.FromString(base64.b64decode(spec.request))
            req.name, req.shards = local, 1
            try:
                self._peer(r, "CreateCollection", req, md, 60.0)
            except AlreadyExists:
                pass  # r's own maintenance made it after the drop above: empty, use it
            cp.restart("full", self.local("DescribeCollection", cpb.DescribeCollectionRequest(
                collection=local)).points)
            cursor = None
            while True:
                page = self.local("Scroll", ppb.ScrollRequest(
                    collection=local, limit=COPY_PAGE, cursor=cursor, with_vector=True))
                self._carry_ttls(local, page.points)
                if page.points.ids:
                    up = ppb.UpsertRequest(collection=local, points=page.points)
                    self._peer(r, "Upsert", up, md, 60.0)
                    cp.sent(up.ByteSize(), len(page.points.ids))
                if not page.HasField("next_cursor"):
                    break
                cursor = page.next_cursor
                if not self.log.pinned(local, pin):  # its replay could not be made
                    break
            if not self.log.pinned(local, pin):  # (before r is given the position)
                raise Unavailable(f"the replication log of {name}/{i} started over or "
                                  f"dropped writes made during the copy to {r} (over "
                                  f"{catchup.MAX_BYTES >> 20} MiB); it is copied again",
                                  "collection")
            keys = [clpb.WriteKeyRecord(key=k, at=t, digest=d, answer=a)
                    for k, t, d, a in self.keys.records(local)]
            self._peer(r, "ReplicaPosition", clpb.ReplicaPositionRequest(
                local=local, set=True, term=start[0], n=start[1], keys=keys), md, 60.0)
            if not self._catch_up(name, i, r, local, s, md, cp, "full"):
                raise Unavailable(f"the copy of {name}/{i} to {r} could not catch up from "
                                  f"{start}; it is copied again", "collection")
        finally:
            self.log.unpin(local, pin)

    # ---- the replica's side of a catch-up ------------------------------------------------
    def replica_position(self, request: clpb.ReplicaPositionRequest,
                         context: Any) -> clpb.ReplicaPositionResponse:
        """ReplicaPosition (internal, resync route): this copy's replication-log position
        (unknown when the engine copy's sequence is not the one logged with it); with
        ``set``, a full copy's end: the copy now holds the primary's position and
        idempotency-key records."""
        md = self.route_of(context)
        if md is None or md[ROUTE] != "resync":
            raise Rejected(grpc.StatusCode.PERMISSION_DENIED,
                           "ReplicaPosition is an internal call of the cluster")
        name, shard = self._target(md, request.local)
        with self.node.write_lock(name, shard):
            self._check_term(name, shard, md)
            if request.set:
                seq = self.local("DescribeCollection", cpb.DescribeCollectionRequest(
                    collection=request.local)).shards[0].applied_seq
                self.log.reset(request.local, (request.term, request.n), seq)
                for k in request.keys:  # the primary's: they describe the copied data
                    self.keys.put(request.local, k.key, k.digest, k.answer, k.at)
            # an engine sequence the log does not explain: the copy was made anew, or
            # changed without the log (a TTL expiry)
            known = self._settle(request.local)
            pos = self.log.position(request.local)[0]
            return clpb.ReplicaPositionResponse(known=known, term=pos[0], n=pos[1])


def _with_ids(base: Any, ids: Any) -> Any:
    out = type(base)()
    out.CopyFrom(base)
    out.ids.extend(ids)
    return out


def _wants_resync(s: st.ShardState, me: str, r: str) -> bool:
    return s.primary == me and r not in s.in_sync and r in s.replicas


def _engine_seq(result: tpb.WriteResult, before: int) -> int:
    """The engine sequence a write left its (one-shard) copy at."""
    return max(result.shard_seqs.values(), default=before)
