"""cluster status|drain: the nodes and shard map of a cluster (docs/cluster.md)."""
from __future__ import annotations

from typing import Any

from .context import Context
from .output import Result, Table
from .parser import command, group


def cmd_status(ctx: Context, args: Any) -> Result:
    st = ctx.client.cluster_status()
    nodes = Table(["node", "address", "zone", "replicas", "primaries"],
                  [[n["id"], n["address"], n["zone"], n["replicas"], n["primaries"]]
                   for n in st["nodes"]], f"nodes (as {st['node']} sees them)")
    rows = []
    for s in st["shards"]:
        lead = next((r for r in s["replicas"] if r["node"] == s["primary"]), None)
        for r in s["replicas"]:
            lag = (lead["points"] - r["points"]) if lead and min(lead["points"], r["points"]) >= 0 \
                else "?"
            rows.append([f"{s['collection']}/{s['shard']}", r["node"],
                         "primary" if r["node"] == s["primary"] else "replica", s["term"],
                         "yes" if r["in_sync"] else "no", r["points"], r["applied_seq"], lag])
    shards = Table(["shard", "node", "role", "term", "in sync", "points", "applied seq",
                    "lag (points)"], rows, "shards")
    return Result(st, [nodes, shards])


def cmd_drain(ctx: Context, args: Any) -> Result:
    res = ctx.client.drain_node(args.node)
    text = (f"moved {len(res['moved'])} primaries off {args.node}"
            + (f"; kept {', '.join(res['kept'])} (no other in-sync replica)" if res["kept"] else ""))
    return Result({"node": args.node, **res}, text)


def register(sub: Any) -> None:
    cs = group(sub, "cluster", "cluster mode: nodes, shard map, drain", """
        vecdbctl cluster status
        vecdbctl cluster drain n2""")
    command(cs, "status", "nodes, and per shard its primary, term and replicas", """
        vecdbctl cluster status
        vecdbctl --host n1:50051 cluster status -o json""", cmd_status, details="""
        Each replica's row: in sync or not, points, applied WAL sequence, and lag =
        the primary's points minus its own. A single-node server answers
        FAILED_PRECONDITION.""")
    p = command(cs, "drain", "move a node's primaries away before a planned stop", """
        vecdbctl cluster drain n2
        vecdbctl cluster drain n2 -o json""", cmd_drain, details="""
        Every shard led by NODE gets another live in-sync replica as primary (term + 1);
        NODE stays a replica. Needs an admin key when keys are configured.""")
    p.add_argument("node", help="node id (see cluster status)")
