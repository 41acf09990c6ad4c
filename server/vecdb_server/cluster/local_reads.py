"""Searches a node answers from its own replicas in one engine call.

When this node holds an in-sync replica of every shard of a collection (a 1-node
cluster, or R = nodes), a search needs no peer: its shards are searched as one
collection (Database.search_across: one fan-out over the local shard collections,
one exact top-k merge, one hydration, concurrent searches coalesced) instead of one
servicer call and one protobuf round trip per shard merged in Python. The answer is
the same either way; anything else (a shard without a local in-sync copy, an
expression or group_by) takes the routed path."""
from __future__ import annotations

from typing import Any

from vecdb_client._proto.vecdb.v1 import points_pb2 as ppb

from vecdb.errors import NotFound

from .. import convert
from . import state as st


def local_names(node: Any, spec: st.CollectionSpec) -> list[str] | None:
    """The local engine collections of every shard of ``spec``, or None when some shard
    has no in-sync replica on this node (or its copy here is marked for a resync: e.g.
    a wiped data dir recreated empty, still in the in-sync set until etcd says not)."""
    names = []
    for i in range(spec.shards):
        local = st.local_name(spec.uid, i)
        if node.id not in node.shard(spec.name, i).in_sync or node.needs_resync(local):
            return None
        names.append(local)
    return names


def search(node: Any, spec: st.CollectionSpec, request: ppb.SearchRequest
           ) -> ppb.SearchResponse | None:
    """The answer from this node's replicas alone, or None: route it."""
    names = local_names(node, spec)
    if names is None:
        return None
    args = convert.from_proto_search(request)
    del args["collection"]
    with node.engine.session() as db:
        try:
            results = db.search_across(names, **args, raw_payloads=True)
        except NotFound as exc:  # a copy not made here yet (maintenance makes it): route
            if exc.field == "collection":
                return None
            raise
    return convert.to_proto_search(results)
