"""snapshot create|list|delete|restore."""
from __future__ import annotations

import time
from typing import Any

from .commands_collections import info_dict
from .context import Context
from .output import Result, Table
from .parser import command, group


def _row(s: Any) -> dict[str, Any]:
    return {"name": s.name, "collection": s.collection, "points": s.points, "bytes": s.bytes,
            "created_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(s.created_at)),
            "path": s.path}


def _table(rows: list[dict[str, Any]]) -> Table:
    cols = ["name", "collection", "points", "bytes", "created_at", "path"]
    return Table(cols, [[r[c] for c in cols] for r in rows])


def cmd_create(ctx: Context, args: Any) -> Result:
    row = _row(ctx.client.create_snapshot(args.collection, args.name, args.tar))
    return Result(row, _table([row]))


def cmd_list(ctx: Context, args: Any) -> Result:
    rows = [_row(s) for s in ctx.client.list_snapshots()]
    return Result(rows, _table(rows))


def cmd_delete(ctx: Context, args: Any) -> Result:
    ctx.client.delete_snapshot(args.name)
    return Result({"name": args.name, "deleted": True}, f"deleted snapshot {args.name}")


def cmd_restore(ctx: Context, args: Any) -> Result:
    info = ctx.client.restore_snapshot(args.name, args.collection)
    data = info_dict(info)
    return Result(data, f"restored {args.name} as {info.config.name} ({info.points} points)")


def register(sub: Any) -> None:
    sn = group(sub, "snapshot", "consistent online snapshots of collections: create, list, "
               "delete, restore", """
        vecdbctl snapshot create docs --name docs-nightly --tar
        vecdbctl snapshot list
        vecdbctl snapshot restore docs-nightly --collection docs_restored
        vecdbctl snapshot delete docs-nightly""")
    p = command(sn, "create", "snapshot a collection while it keeps serving", """
        vecdbctl snapshot create docs
        vecdbctl snapshot create docs --name docs-2026-11-23 --tar -o json""", cmd_create,
                details="""
        The snapshot lands in the server's snapshot directory (snapshot_dir,
        default <data dir>/snapshots): a directory, or one NAME.tar with --tar.
        Writes to the collection pause only while the instant is pinned. To move
        it to another server, copy it into that server's snapshot directory and
        run 'snapshot restore' there.""")
    p.add_argument("collection", help="collection or alias")
    p.add_argument("--name", help="snapshot name (default: COLLECTION-TIME-RANDOM)")
    p.add_argument("--tar", action="store_true", help="write one .tar file instead of a directory")
    command(sn, "list", "the snapshots in the server's snapshot directory", """
        vecdbctl snapshot list
        vecdbctl snapshot list -o json | jq -r '.[].name'""", cmd_list)
    p = command(sn, "delete", "delete a snapshot", """
        vecdbctl snapshot delete docs-nightly""", cmd_delete)
    p.add_argument("name")
    p = command(sn, "restore", "restore a snapshot as a new collection", """
        vecdbctl snapshot restore docs-nightly
        vecdbctl snapshot restore docs-nightly --collection docs_copy -o json""", cmd_restore,
                details="""
        Every file's checksum is verified first: a damaged snapshot is refused
        (exit 1) and nothing is written. The target name must be free.""")
    p.add_argument("name")
    p.add_argument("--collection", help="name of the restored collection (default: the original)")
