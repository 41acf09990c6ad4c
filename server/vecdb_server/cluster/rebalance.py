"""The rebalancing planner (a pure function): which shard replicas should move where.

Given the live nodes (with zone labels), the placement of every shard's replicas, the
nodes being removed for good and the shards that already have a move in progress, it
returns the moves, in order, that

1. empty the removed nodes,
2. spread each shard's replicas over distinct zones where a zone it lacks has a node,
3. bring the replica counts of the live nodes within one of each other, never lowering
   a shard's zone spread (so with very uneven zones, spread wins over counts).

A shard never gets two replicas on one node. Replicas on nodes that are not live (dead,
maybe coming back) stay where they are and count for nobody. Moves are simulated in
order, so each one accounts for those before it; the driver (moves.py) starts a few at
a time and plans again.
"""
from __future__ import annotations

from typing import Iterable

from .state import Move, Node

Key = tuple[str, int]


class _Plan:
    def __init__(self, nodes: list[Node], placement: dict[Key, tuple[str, ...]],
                 removed: Iterable[str], busy: Iterable[Key], primaries: dict[Key, str]):
        self.zone = {n.id: n.zone for n in nodes}
        self.removed = set(removed)
        self.busy = set(busy)
        self.primaries = primaries
        self.targets = sorted(n.id for n in nodes if n.id not in self.removed)
        self.placement = {k: list(v) for k, v in placement.items()}
        self.count = {n: 0 for n in self.targets}
        for reps in self.placement.values():
            for r in reps:
                if r in self.count:
                    self.count[r] += 1
        self.moves: list[Move] = []

    def zones(self, reps: Iterable[str]) -> set[str]:
        return {self.zone[r] for r in reps if self.zone.get(r)}

    def move(self, key: Key, source: str, target: str) -> None:
        reps = self.placement[key]
        reps[reps.index(source)] = target
        if source in self.count:
            self.count[source] -= 1
        self.count[target] += 1
        self.moves.append(Move(key[0], key[1], source, target))

    def best_target(self, key: Key, source: str, candidates: Iterable[str]) -> str | None:
        """A node without this shard: a zone the shard's other replicas lack first, then
        the fewest replicas."""
        others = [r for r in self.placement[key] if r != source]
        have = self.zones(others)
        options = [t for t in candidates if t not in self.placement[key]]
        return min(options, key=lambda t: (self.zone[t] in have and self.zone[t] != "",
                                           self.count[t], t), default=None)

    def movable(self) -> list[Key]:
        return sorted(k for k in self.placement if k not in self.busy)

    # ---- the three passes ----------------------------------------------------------------
    def empty_removed(self) -> None:
        for key in self.movable():
            for r in list(self.placement[key]):
                if r in self.removed:
                    t = self.best_target(key, r, self.targets)
                    if t is not None:
                        self.move(key, r, t)

    def spread_zones(self) -> None:
        all_zones = self.zones(self.targets)
        for key in self.movable():
            while self._spread_one(key, all_zones):
                pass

    def _spread_one(self, key: Key, all_zones: set[str]) -> bool:
        reps = self.placement[key]
        have = self.zones(reps)
        if len(have) >= min(len(reps), len(all_zones)):
            return False
        crowded = [r for r in reps if r in self.count and self.zone[r]
                       and sum(self.zone[o] == self.zone[r] for o in reps if o in self.zone) > 1]
        free = [t for t in self.targets if self.zone[t] and self.zone[t] not in have]
        if not crowded or not free:
            return False
        source = max(crowded, key=lambda r: (self.count[r], self.primaries.get(key) != r, r))
        target = self.best_target(key, source, free)
        if target is None:
            return False
        self.move(key, source, target)
        return True

    def even_counts(self) -> None:
        while True:
            step = self._one_leveling_move()
            if step is None:
                return
            self.move(*step)

    def _one_leveling_move(self) -> tuple[Key, str, str] | None:
        by_load = sorted(self.targets, key=lambda n: (self.count[n], n))
        for src in reversed(by_load):
            for dst in by_load:
                if self.count[src] - self.count[dst] < 2:
                    break
                options = [k for k in self.movable() if src in self.placement[k]
                           and dst not in self.placement[k] and self._keeps_spread(k, src, dst)]
                if options:  # a non-primary replica first: no primary handover needed
                    key = min(options, key=lambda k: (self.primaries.get(k) == src, k))
                    return key, src, dst
        return None

    def _keeps_spread(self, key: Key, src: str, dst: str) -> bool:
        reps = self.placement[key]
        after = [dst if r == src else r for r in reps]
        return len(self.zones(after)) >= len(self.zones(reps))


def plan(nodes: list[Node], placement: dict[Key, tuple[str, ...]],
         removed: Iterable[str] = (), busy: Iterable[Key] = (),
         primaries: dict[Key, str] | None = None) -> list[Move]:
    """The moves that balance ``placement`` (shard -> its replicas' node ids) over the live
    ``nodes``; ``removed``: node ids to empty; ``busy``: shards not to touch (a move in
    progress); ``primaries``: shard -> primary (a non-primary replica moves first)."""
    p = _Plan(nodes, placement, removed, busy, primaries or {})
    p.empty_removed()
    p.spread_zones()
    p.even_counts()
    return p.moves
