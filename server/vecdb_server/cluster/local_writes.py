"""Upserts a node applies to the shards it is primary of in one engine write.

When this node is the primary of every shard a client's upsert touches (a 1-node
cluster, or every primary here), the batch is applied to those shard copies by one
engine call (Database.upsert_across: the batch checked once, one RocksDB write and one
WAL sync, all-or-nothing) instead of one servicer call, engine write and sync per shard
on the router's threads. Everything else is the primary's write path, shard by shard
(router.Router.primary_write's steps): every touched shard's write lock is held (in
shard order) from the checks to the end of its replication; each part is checked as the
primary with its term and write concern, its replication-log entry written once the
engine has checked the whole batch and before it writes it, then sent to the shard's
other in-sync replicas and acknowledged only once write_concern of them hold it. The
locks are waited for lock_wait_s at most all together, not each (a batch holding some
while it waits for the next would hold them up to that many times as long).
Idempotency keys are recorded per shard part, as routed writes record them (with the
digest of the client's request). A shard part's own
request (its rows, sliced from the batch) is made only for a shard with other replicas:
its replication-log entry and its replicas need it. A batch with a shard primaried
elsewhere, or with a part already applied under its idempotency key (a retry), takes the
routed path."""
from __future__ import annotations

import contextlib
import time
from typing import Any

from vecdb_client._proto.vecdb.v1 import points_pb2 as ppb
from vecdb_client._proto.vecdb.v1 import types_pb2 as tpb

from .. import convert
from . import merge
from . import state as st
from .router import PrimaryPart, Router


def upsert(router: Router, spec: st.CollectionSpec, request: ppb.UpsertRequest,
           parts: dict[int, list[int]], key: str | None, want: str | None
           ) -> dict[int, tpb.WriteResult] | None:
    """shard -> its part's answer, or None: route the batch shard by shard. ``key``: the
    call's idempotency key, ``want`` the digest of ``request`` (write_keys.py)."""
    node, shards = router.node, sorted(parts)
    if len(shards) < 2 or any(node.shard(spec.name, i).primary != node.id for i in shards):
        return None
    with contextlib.ExitStack() as held:
        deadline = time.monotonic() + router.lock_wait_s  # for the whole set of locks
        for i in shards:
            held.enter_context(router.writes_of(spec.name, i, deadline))
        if any(node.shard(spec.name, i).primary != node.id for i in shards):
            return None  # a primary moved before the locks were taken: nothing written
        pending = []
        for i in shards:  # a part's own request is made only where a replica needs it
            part = router.begin_primary(spec, i, "Upsert", ppb.UpsertRequest(
                collection=st.local_name(spec.uid, i)), key, want)
            if not isinstance(part, PrimaryPart):
                return None  # applied already under this key: each part answers for itself
            pending.append(part)
        points = convert.from_proto_point_batch(request.points)
        del points["sparse"]  # refused in cluster mode before this
        logged: list[PrimaryPart] = []

        def log_parts() -> None:
            """Once the engine has checked the whole batch, before it writes: each part's
            request sliced and its log entry written. A batch refused for its input never
            has an entry a catching-up replica could read, nor one a restart re-applies."""
            shared = [p for p in pending if not p.alone]
            if shared:
                batches = merge.slice_batches(request.points, {p.i: parts[p.i] for p in shared})
                for p in shared:
                    p.request.points.CopyFrom(batches[p.i])
            for part in pending:
                router.log_primary(part)
                logged.append(part)

        try:  # none of the entries is left for a write the engine refused
            with node.engine.session() as db:
                got = db.upsert_across({p.local: parts[p.i] for p in pending}, **points,
                                       before_write=log_parts)
        except Exception:
            for part in logged:
                router.unlog_primary(part)
            raise
        return _finish(router, spec, pending,
                       {p.i: convert.to_proto_write_result(got[p.local]) for p in pending},
                       request)


def _finish(router: Router, spec: st.CollectionSpec, pending: list[PrimaryPart],
            results: dict[int, tpb.WriteResult], request: ppb.UpsertRequest
            ) -> dict[int, tpb.WriteResult]:
    """Every part replicated (concurrently; all ended before the locks go), then the
    idempotency keys of those that succeeded recorded in one write; the first failure is
    raised once every part has ended."""
    out: dict[int, Any] = {}
    failed: Exception | None = None
    at_once = any(p.others(router.node.id) for p in pending)  # else one after another here
    futures = {p.i: router.finish_pool.submit(router.finish_primary, spec, p, results[p.i],
                                              False) for p in pending if at_once}
    for p in pending:
        try:
            out[p.i] = futures[p.i].result() if at_once else \
                router.finish_primary(spec, p, results[p.i], False)
        except Exception as exc:  # noqa: BLE001 - raised below, after every part ended
            failed = failed or exc
    try:  # a reshard's new layout gets the batch too, all of it applied here even if a
        # part failed (router.after_write); no key is recorded before it has
        router.after_write(spec.name, [(p.i, p.local) for p in pending], "Upsert", request)
    except Exception as exc:  # noqa: BLE001 - raised below; no key recorded
        failed, out = failed or exc, {}
    done = [p.record() for p in pending if p.key and p.i in out]
    if done:
        router.keys.put_many(done)
    if failed is not None:
        raise failed
    return out
