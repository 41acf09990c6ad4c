"""tenants list|get|quota|drop (collections created with --tenant-field; docs/tenants.md),
and the global --tenant option every point command takes."""
from __future__ import annotations

from typing import Any

from .context import Context
from .output import Result, Table
from .parser import command, group


def tenant_value(text: str) -> str | int:
    """A --tenant value: ``int:42`` is the integer tenant 42, anything else a string."""
    return int(text[4:]) if text.startswith("int:") and text[4:].lstrip("-").isdigit() else text


def _row(t: Any) -> dict[str, Any]:
    return {"tenant": t.tenant, "points": t.points, "bytes": t.bytes,
            "max_points": t.max_points, "max_bytes": t.max_bytes}


def _table(rows: list[dict[str, Any]]) -> Table:
    cols = ["tenant", "points", "bytes", "max_points", "max_bytes"]
    return Table(cols, [[r[c] for c in cols] for r in rows])


def cmd_list(ctx: Context, args: Any) -> Result:
    rows = [_row(t) for t in ctx.client.list_tenants(args.collection)]
    return Result(rows, [_table(rows), f"{len(rows)} tenants"])


def cmd_get(ctx: Context, args: Any) -> Result:
    row = _row(ctx.client.get_tenant(args.collection, _named(args)))
    return Result(row, _table([row]))


def cmd_quota(ctx: Context, args: Any) -> Result:
    row = _row(ctx.client.set_tenant_quota(args.collection, tenant_value(args.name),
                                           max_points=args.max_points, max_bytes=args.max_bytes))
    return Result(row, _table([row]))


def cmd_drop(ctx: Context, args: Any) -> Result:
    tenant = _named(args)
    n = ctx.client.drop_tenant(args.collection, tenant)
    return Result({"tenant": tenant, "deleted": n}, f"dropped tenant {tenant!r}: {n} points")


def _named(args: Any) -> str | int | None:
    return None if args.name is None else tenant_value(args.name)


def register(sub: Any) -> None:
    tn = group(sub, "tenants", "tenants of a collection created with --tenant-field: list, "
               "get, quota, drop", """
        vecdbctl tenants list docs
        vecdbctl tenants get docs acme
        vecdbctl tenants quota docs acme --max-points 100000 --max-bytes 500000000
        vecdbctl tenants drop docs acme
        vecdbctl --tenant acme points count docs""")
    p = command(tn, "list", "every tenant with its points, bytes and limits", """
        vecdbctl tenants list docs
        vecdbctl tenants list docs -o json | jq -r '.[].tenant'""", cmd_list)
    p.add_argument("collection", help="collection or alias")
    for name, summary, func in (("get", "one tenant's points, bytes and limits", cmd_get),
                                ("drop", "delete every point of a tenant, atomically", cmd_drop)):
        p = command(tn, name, summary, f"""
        vecdbctl tenants {name} docs acme
        vecdbctl tenants {name} docs int:42""", func)
        p.add_argument("collection", help="collection or alias")
        p.add_argument("name", nargs="?", metavar="TENANT",
                       help="the tenant (int:N for an integer tenant; default: --tenant, or a "
                            "tenant-scoped key's own)")
    p = command(tn, "quota", "limit a tenant's points and bytes (0: no limit)", """
        vecdbctl tenants quota docs acme --max-points 100000
        vecdbctl tenants quota docs acme --max-points 0 --max-bytes 0""", cmd_quota,
                details="""
        Writes past a limit fail with RESOURCE_EXHAUSTED; a limit below the tenant's
        current usage is refused (exit 1). A quota makes a tenant known before its
        first point. Needs a key without a tenant scope.""")
    p.add_argument("collection", help="collection or alias")
    p.add_argument("name", metavar="TENANT", help="the tenant (int:N for an integer tenant)")
    p.add_argument("--max-points", type=int, default=0, help="most points (0: no limit)")
    p.add_argument("--max-bytes", type=int, default=0,
                   help="most payload + text + vector bytes (0: no limit)")
