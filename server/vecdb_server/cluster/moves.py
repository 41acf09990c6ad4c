"""Replica moves as a state machine recorded in etcd, driven by one elected node.

A move of shard (collection, i) from node A to node B (docs/cluster.md "Rebalancing"):

  start     one transaction: B joins the shard's replicas (not in sync) and the move
            record /vecdb/moves/<collection>/<i> = {source: A, target: B} is written.
  catch up  the shard's primary resyncs B like any replica that is not in sync
            (ClusterNode.maintain -> Router.resync: copy, then B joins the in-sync set
            by compare-and-swap).
  finish    one transaction once B is in sync: A leaves the replicas and the in-sync set
            and the record goes. If A is the primary, A itself makes this step, under
            the shard's write lock (no write in flight): B becomes the primary with
            term + 1, and replicas that missed an unacknowledged write leave the in-sync
            set (ClusterNode.hand_over). A dead primary is replaced by a failover first.
  roll back one transaction when B is no longer live before it could finish, or no
            live in-sync replica is left to copy from: B leaves the replicas, the
            record goes (the planner tries again later).

Every step compares the shard entry's and the record's revisions and (but for the
primary's own handover) that this node still holds the rebalancer key, so a step
decided on an old view, or by a node that lost the election, changes nothing. The state is only ever in etcd: whoever holds the
key next resumes (finish) or rolls back what it finds. The election is etcd's own
pattern: the key /vecdb/rebalancer created only if absent, under the node's lease, so
it goes when the node does.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from . import state as st
from .etcd import EtcdError, EtcdUnavailable, absent, delete, holds, put, unchanged
from .rebalance import plan
from .state import Move, ShardState

if TYPE_CHECKING:
    from .node import ClusterNode

log = logging.getLogger("vecdb_server.cluster")


def planned(node: "ClusterNode") -> list[Move]:
    """The moves the planner would make now, from this node's view."""
    with node._lock:
        shards, moves = dict(node.shards), dict(node.moves)
        live = [n for n in node.nodes.values()]
        removed = set(node.removed)
        # a move changes terms (a reshard would copy again): not while one is under way
        resharding = {n for r in node.reshards.values() for n in (r.name, r.shadow)}
    placement = {}
    for k, s in shards.items():
        m = moves.get(k)  # a shard being moved counts as already moved
        placement[k] = tuple(r for r in s.replicas if m is None or r != m.source)
    return plan(live, placement, removed=removed,
                busy={*moves, *(k for k in shards if k[0] in resharding)},
                primaries={k: s.primary for k, s in shards.items()})


class Mover:
    """Runs in every node's maintenance step; acts only while this node holds the
    rebalancer key. ``max_concurrent``: moves in progress at once (0: none start)."""

    def __init__(self, node: "ClusterNode", max_concurrent: int):
        self.node, self.max_concurrent = node, max_concurrent

    def step(self) -> None:
        node = self.node
        try:
            if not self._lead():
                return
            with node._lock:
                moves, shards = dict(node.moves), dict(node.shards)
                live = set(node.nodes)
                removed = set(node.removed)
            for key, m in moves.items():
                self._advance(m, shards.get(key), live)
            self._forget_removed(removed, live, shards)
            self._start_new()
        except (EtcdUnavailable, EtcdError) as exc:
            log.debug("rebalancing waits for etcd: %s", exc)

    # ---- election ------------------------------------------------------------------------
    def _lead(self) -> bool:
        node = self.node
        with node._lock:
            leader = node.rebalancer
        if leader == "" and node.lease:
            won, rev = node.etcd.txn_rev([absent(st.REBALANCER)],
                                         [put(st.REBALANCER, node.id, lease=node.lease)])
            if won:
                node.apply_own(st.REBALANCER, node.id, rev)
                log.info("%s drives rebalancing", node.id)
            return won
        return leader == node.id

    def _txn(self, compare: list[dict], ops: list[dict]) -> bool:
        """A move step: only while this node is still the rebalancer."""
        won, rev = self.node.etcd.txn_rev([holds(st.REBALANCER, self.node.id), *compare], ops)
        if won:
            self.node.apply_ops(ops, rev)
        return won

    # ---- the state machine ---------------------------------------------------------------
    def start(self, m: Move, s: ShardState) -> bool:
        key = st.shard_key(m.collection, m.shard)
        new = s.with_(replicas=(*s.replicas, m.target))
        won = self._txn([unchanged(key, s.mod_revision), absent(m.key())],
                        [put(key, new.to_json()), put(m.key(), m.to_json())])
        if won:
            log.info("moving %s/%d from %s to %s", m.collection, m.shard, m.source, m.target)
        return won

    def _advance(self, m: Move, s: ShardState | None, live: set[str]) -> None:
        key = st.shard_key(m.collection, m.shard)
        if s is None or m.target not in s.replicas or m.source not in s.replicas:
            # the collection was dropped, or the map no longer matches the record
            self._txn([unchanged(m.key(), m.mod_revision)], [delete(m.key())])
            return
        if m.target not in live and m.target != s.primary:
            self._roll_back(m, s, f"{m.target} is not live")
            return
        if m.target not in s.in_sync and not live & set(s.in_sync):
            self._roll_back(m, s, "no live in-sync replica can copy the shard")
            return
        if m.target in s.in_sync:
            if s.primary == m.source:
                # the source hands its primary over itself, under its write lock
                # (ClusterNode.hand_over); if it is dead, a failover comes first
                return
            new = s.with_(replicas=_without(s.replicas, m.source),
                          in_sync=_without(s.in_sync, m.source))
            if self._txn([unchanged(key, s.mod_revision), unchanged(m.key(), m.mod_revision)],
                         [put(key, new.to_json()), delete(m.key())]):
                log.info("moved %s/%d from %s to %s (term %d)", m.collection, m.shard,
                         m.source, m.target, new.term)
        # else: the primary is copying the shard to the target (ClusterNode.maintain)

    def _roll_back(self, m: Move, s: ShardState, why: str) -> None:
        key = st.shard_key(m.collection, m.shard)
        new = s.with_(replicas=_without(s.replicas, m.target),
                      in_sync=_without(s.in_sync, m.target))
        if self._txn([unchanged(key, s.mod_revision), unchanged(m.key(), m.mod_revision)],
                     [put(key, new.to_json()), delete(m.key())]):
            log.warning("move of %s/%d to %s rolled back (%s)", m.collection, m.shard,
                        m.target, why)

    def _start_new(self) -> None:
        node = self.node
        with node._lock:
            busy = set(node.moves)
            shards = dict(node.shards)
            live = set(node.nodes)
        room = self.max_concurrent - len(busy)
        for m in planned(node) if room > 0 else ():
            k = (m.collection, m.shard)
            if room <= 0:
                break
            if k in busy or k not in shards or m.target not in live \
                    or shards[k].primary not in live:  # nobody could copy it now
                continue
            if self.start(m, shards[k]):
                busy.add(k)
                room -= 1

    def _forget_removed(self, removed: set[str], live: set[str],
                        shards: dict[tuple[str, int], ShardState]) -> None:
        """A removed node that has stopped and holds nothing is gone for good: its mark
        goes too (the same id may join again later as a new node)."""
        for nid in removed - live:
            if not any(nid in s.replicas for s in shards.values()):
                self._txn([], [delete(st.removed_key(nid))])


def _without(ids: tuple[str, ...], nid: str) -> tuple[str, ...]:
    return tuple(r for r in ids if r != nid)
