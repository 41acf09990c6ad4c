"""cluster status|drain|remove|rebalance: the nodes, shard map and replica moves of a
cluster (docs/cluster.md)."""
from __future__ import annotations

import sys
import time
from typing import Any

from .context import CliError, Context
from .output import Result, Table
from .parser import command, group, positive_float

MOVE_COLUMNS = ["shard", "from", "to", "phase", "copied"]


def _copied(m: dict) -> str:
    """A copy's progress, as the shard's primary reports it."""
    if not m["copy"]:
        return ""
    size = f"{m['copied_bytes'] / 2**20:.1f} MiB"
    if m["copy"] == "full":
        return f"{m['copied_records']}/{m['total_records']} points, {size} (full copy)"
    return f"{m['copied_records']} log entries, {size}"


def _move_rows(moves: list[dict]) -> list[list]:
    return [[f"{m['collection']}/{m['shard']}", m["source"], m["target"], m["phase"] or "planned",
             _copied(m)] for m in moves]


def cmd_status(ctx: Context, args: Any) -> Result:
    st = ctx.client.cluster_status()
    nodes = Table(["node", "address", "zone", "replicas", "primaries", "removing"],
                  [[n["id"], n["address"], n["zone"], n["replicas"], n["primaries"],
                    "yes" if n["removing"] else ""] for n in st["nodes"]],
                  f"nodes (as {st['node']} sees them)")
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
    moves = Table(MOVE_COLUMNS, _move_rows(st["moves"]),
                  f"replica moves in progress (rebalancer: {st['rebalancer'] or 'none'})")
    views = [nodes, shards, moves]
    if st.get("reshards"):  # "docs -> 4 shards: copying, 1/2 copied"
        views.append(Table(["reshard in progress"], [[r] for r in st["reshards"]], "reshards"))
    return Result(st, views)


def cmd_drain(ctx: Context, args: Any) -> Result:
    res = ctx.client.drain_node(args.node)
    text = (f"moved {len(res['moved'])} primaries off {args.node}"
            + (f"; kept {', '.join(res['kept'])} (no other in-sync replica)" if res["kept"] else ""))
    return Result({"node": args.node, **res}, text)


def cmd_remove(ctx: Context, args: Any) -> Result:
    n = ctx.client.remove_node(args.node)
    text = (f"{args.node} is being removed: {n} replicas move to other nodes; stop it once "
            f"`vecdbctl cluster status` shows it holds none")
    return Result({"node": args.node, "replicas": n}, text)


def cmd_rebalance(ctx: Context, args: Any) -> Result:
    plan = ctx.client.rebalance_plan()
    if not args.dry_run:  # the rebalancer applies the plan; follow it until it is done
        deadline = time.monotonic() + args.wait_timeout
        while plan["in_progress"] or plan["planned"]:
            if time.monotonic() > deadline:
                raise CliError(f"not balanced after {args.wait_timeout:g} s: "
                                 f"{len(plan['in_progress'])} moves in progress, "
                                 f"{len(plan['planned'])} planned")
            print(f"{len(plan['in_progress'])} moves in progress, {len(plan['planned'])} "
                  "planned", file=sys.stderr)
            time.sleep(1.0)
            plan = ctx.client.rebalance_plan()
        return Result(plan, "balanced: no replica move in progress or planned")
    return Result(plan, [
        Table(MOVE_COLUMNS, _move_rows(plan["in_progress"]),
              f"in progress (rebalancer: {plan['rebalancer'] or 'none'})"),
        Table(MOVE_COLUMNS, _move_rows(plan["planned"]), "planned next")])


def register(sub: Any) -> None:
    cs = group(sub, "cluster", "cluster mode: nodes, shard map, drain, remove, rebalance", """
        vecdbctl cluster status
        vecdbctl cluster drain n2
        vecdbctl cluster remove n4
        vecdbctl cluster rebalance --dry-run""")
    command(cs, "status", "nodes, and per shard its primary, term and replicas", """
        vecdbctl cluster status
        vecdbctl --host n1:50051 cluster status -o json""", cmd_status, details="""
        Each replica's row: in sync or not, points, applied WAL sequence, and lag =
        the primary's points minus its own; then the replica moves in progress
        (copying: the primary resyncs the new replica, "copied" says how far as the
        primary reports it: points of a full copy out of the shard's, or replication-log
        entries, and bytes sent; finishing: it is in sync and the old one leaves). A
        single-node server answers FAILED_PRECONDITION.""")
    p = command(cs, "drain", "move a node's primaries away before a planned stop", """
        vecdbctl cluster drain n2
        vecdbctl cluster drain n2 -o json""", cmd_drain, details="""
        Every shard led by NODE gets another live in-sync replica as primary (term + 1);
        NODE stays a replica. Needs an admin key when keys are configured.""")
    p.add_argument("node", help="node id (see cluster status)")
    p = command(cs, "remove", "remove a node for good: its replicas move off first", """
        vecdbctl cluster remove n4
        vecdbctl cluster status        # stop n4 once it holds no replicas""", cmd_remove,
                details="""
        NODE takes no new replicas and the rebalancer moves each of its replicas to
        another node (new copy resynced, then NODE's copy dropped; its primaries are
        handed over). FAILED_PRECONDITION when too few other live nodes remain for a
        collection's replication factor. Needs an admin key when keys are configured.""")
    p.add_argument("node", help="node id (see cluster status)")
    p = command(cs, "rebalance", "show or follow the replica moves that balance the nodes", """
        vecdbctl cluster rebalance --dry-run
        vecdbctl cluster rebalance --wait-timeout 600""", cmd_rebalance, details="""
        Rebalancing is automatic: the elected rebalancer node moves replicas when nodes
        join or are removed, rebalance_max_concurrent_moves at a time, until replicas
        per node are within one of each other and each shard spreads over zones.
        --dry-run prints the moves in progress and those planned next (nothing
        changes); without it the command waits until nothing is left to move.""")
    p.add_argument("--dry-run", action="store_true", help="print the plan, change nothing")
    p.add_argument("--wait-timeout", type=positive_float, default=3600.0, metavar="S",
                   help="how long to wait for the cluster to be balanced (default 3600)")
