"""Cluster metadata as it lives in etcd, and placement (pure functions).

Keys (JSON values):
  /vecdb/nodes/<id>              {"id", "address", "zone"}            under the node's lease
  /vecdb/collections/<name>      {"name", "uid", "shards", "replication_factor",
                                  "write_concern", "request"}      request: the base64
                                  CreateCollectionRequest every replica is created from
  /vecdb/shards/<name>/<i>       {"primary", "replicas", "in_sync", "term"}
  /vecdb/aliases/<alias>         the collection's name
  /vecdb/moves/<name>/<i>        {"source", "target"}: a replica move in progress
  /vecdb/removed/<id>            a node being removed for good (its replicas move off)
  /vecdb/rebalancer              the id of the node that drives moves, under its lease
  /vecdb/reshards/<name>         {"source_uid", "shards", "uid", "shadow", "state", "terms",
                                  "copied"}: a reshard in progress (reshard.py); the new
                                  layout is the hidden collection ``shadow`` (its own
                                  collection and shard keys) until the switch

A shard's replicas are ordinary engine collections on their nodes, named
``local_name(uid, i)``; only cluster code ever sees those names.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace

from vecdb.errors import FailedPrecondition, InvalidArgument

ROOT = "/vecdb/"
NODES = ROOT + "nodes/"
COLLECTIONS = ROOT + "collections/"
SHARDS = ROOT + "shards/"
ALIASES = ROOT + "aliases/"
MOVES = ROOT + "moves/"
REMOVED = ROOT + "removed/"
REBALANCER = ROOT + "rebalancer"
RESHARDS = ROOT + "reshards/"
SHADOW_MARK = ".reshard-"  # in a shadow collection's name (user names cannot hold ".")
WRITE_CONCERNS = ("majority", "all", "one")


def node_key(node_id: str) -> str:
    return NODES + node_id


def collection_key(name: str) -> str:
    return COLLECTIONS + name


def shard_key(name: str, shard: int) -> str:
    return f"{SHARDS}{name}/{shard}"


def alias_key(alias: str) -> str:
    return ALIASES + alias


def move_key(name: str, shard: int) -> str:
    return f"{MOVES}{name}/{shard}"


def removed_key(node_id: str) -> str:
    return REMOVED + node_id


def reshard_key(name: str) -> str:
    return RESHARDS + name


def shadow_name(name: str, uid: str) -> str:
    """The hidden collection that holds the new layout of a reshard of ``name``."""
    return f"{name}{SHADOW_MARK}{uid}"


def is_shadow(name: str) -> bool:
    return SHADOW_MARK in name


def local_name(uid: str, shard: int) -> str:
    """The engine collection that holds one replica of shard ``shard``."""
    return f"c{uid}-s{shard}"


@dataclass(frozen=True)
class Node:
    id: str
    address: str
    zone: str = ""
    internal: str = ""  # host:port of its node-to-node server ("": use address)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @staticmethod
    def from_json(text: str) -> "Node":
        d = json.loads(text)
        return Node(d["id"], d["address"], d.get("zone", ""), d.get("internal", ""))


@dataclass(frozen=True)
class CollectionSpec:
    name: str
    uid: str
    shards: int
    replication_factor: int
    write_concern: str
    request: str  # base64 of the CreateCollectionRequest (name and shards overridden)

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @staticmethod
    def from_json(text: str) -> "CollectionSpec":
        return CollectionSpec(**json.loads(text))

    def required_in_sync(self) -> int:
        """Copies (primary included) that must hold a write before it is acknowledged."""
        r = self.replication_factor
        return {"all": r, "majority": r // 2 + 1, "one": 1}[self.write_concern]


@dataclass(frozen=True)
class ShardState:
    primary: str
    replicas: tuple[str, ...]
    in_sync: tuple[str, ...]
    term: int = 1
    mod_revision: int = field(default=0, compare=False)  # etcd's, not stored

    def to_json(self) -> str:
        return json.dumps({"primary": self.primary, "replicas": list(self.replicas),
                           "in_sync": list(self.in_sync), "term": self.term}, sort_keys=True)

    @staticmethod
    def from_json(text: str, mod_revision: int = 0) -> "ShardState":
        d = json.loads(text)
        return ShardState(d["primary"], tuple(d["replicas"]), tuple(d["in_sync"]),
                          int(d["term"]), mod_revision)

    def with_(self, **kw) -> "ShardState":
        return replace(self, **kw)


@dataclass(frozen=True)
class Move:
    """Replica ``source`` of shard (collection, shard) moving to ``target`` (docs/cluster.md
    "Rebalancing"): target joins the replicas out of sync, is resynced by the primary,
    then source leaves (handing over the primary if it was one) in one transaction."""
    collection: str
    shard: int
    source: str
    target: str
    mod_revision: int = field(default=0, compare=False)  # etcd's, not stored

    def key(self) -> str:
        return move_key(self.collection, self.shard)

    def to_json(self) -> str:
        return json.dumps({"source": self.source, "target": self.target}, sort_keys=True)

    @staticmethod
    def from_json(name: str, shard: int, text: str, mod_revision: int = 0) -> "Move":
        d = json.loads(text)
        return Move(name, shard, d["source"], d["target"], mod_revision)


@dataclass(frozen=True)
class Reshard:
    """A reshard of collection ``name`` (uid ``source_uid``) to ``shards`` shards, through
    the hidden collection ``shadow`` (uid ``uid``). ``state``: "preparing" (the shadow's
    copies are being made) or "copying" (every write of the source is also written to
    the shadow by its shard's primary; each primary copies its shard, then lists it in
    ``copied``). ``terms``: the source shards' terms when this generation began (a
    primary change starts a new generation). docs/cluster.md "Resharding"."""
    name: str
    source_uid: str
    shards: int
    uid: str
    shadow: str
    state: str = "preparing"
    terms: tuple[int, ...] = ()
    copied: tuple[int, ...] = ()
    mod_revision: int = field(default=0, compare=False)  # etcd's, not stored

    def to_json(self) -> str:
        d = asdict(self)
        del d["name"], d["mod_revision"]
        return json.dumps(d, sort_keys=True)

    @staticmethod
    def from_json(name: str, text: str, mod_revision: int = 0) -> "Reshard":
        d = json.loads(text)
        return Reshard(name, d["source_uid"], int(d["shards"]), d["uid"], d["shadow"],
                       d["state"], tuple(d["terms"]), tuple(d["copied"]), mod_revision)

    def with_(self, **kw) -> "Reshard":
        return replace(self, **kw)


def reads_primary(request: object) -> bool:
    """A search's ``consistency``: "" / "any" (any in-sync replica) or "primary"."""
    mode = getattr(request, "consistency", "")
    if mode not in ("", "any", "primary"):
        raise InvalidArgument(f"consistency must be any or primary, got {mode!r}",
                              "consistency")
    return mode == "primary"


def validate_cluster_args(shards: int, replication_factor: int, write_concern: str) -> None:
    if not 1 <= shards <= 64:
        raise InvalidArgument(f"shards must be 1..64, got {shards}", "shards")
    if not 1 <= replication_factor <= 9:
        raise InvalidArgument(f"replication_factor must be 1..9, got {replication_factor}",
                              "replication_factor")
    if write_concern not in WRITE_CONCERNS:
        raise InvalidArgument(f"write_concern must be one of {', '.join(WRITE_CONCERNS)}, got "
                              f"{write_concern!r}", "write_concern")


def place(shards: int, replication_factor: int, nodes: list[Node],
          load: dict[str, int] | None = None) -> list[ShardState]:
    """Replicas of each shard on distinct nodes, evenly by replica count (``load``: the
    replicas nodes already hold), spread over zones first; primaries spread too.
    FAILED_PRECONDITION naming replication_factor when there are too few live nodes."""
    if len(nodes) < replication_factor:
        raise FailedPrecondition(
            f"replication_factor {replication_factor} needs as many live nodes; the cluster "
            f"has {len(nodes)} ({', '.join(sorted(n.id for n in nodes)) or 'none'})",
            "replication_factor")
    count = {n.id: (load or {}).get(n.id, 0) for n in nodes}
    primaries = {n.id: 0 for n in nodes}
    out = []
    for _ in range(shards):
        chosen: list[Node] = []
        for r in range(replication_factor):
            zones = {c.zone for c in chosen}
            candidates = [n for n in nodes if n not in chosen]
            best = min(candidates, key=lambda n: (
                n.zone in zones and n.zone != "",  # a new zone first
                count[n.id],                       # then the fewest replicas
                primaries[n.id] if r == 0 else 0,  # primaries spread
                n.id))
            chosen.append(best)
            count[best.id] += 1
        primaries[chosen[0].id] += 1
        ids = tuple(n.id for n in chosen)
        # only the primary is in sync at first: the others join through a resync (of an
        # empty shard: quick), so a replica never counts before its copy exists
        out.append(ShardState(ids[0], ids, ids[:1], 1))
    return out
