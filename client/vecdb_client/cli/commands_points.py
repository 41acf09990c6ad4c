"""points count|get|delete|scroll, and search."""
from __future__ import annotations

import inspect
import json
from typing import Any

from .context import CliError, Context, UsageError
from .io_formats import load_query_vectors, parse_vectors
from .output import Result, point_dict, points_table
from .parser import command, group, positive_int

TEXT_SEARCH_MISSING = ("text search needs a collection encoder, which this server/SDK does "
                       "not support yet; pass --vector or --vector-file")
FILTER_MISSING = "filters are not supported by this server/SDK yet"


def read_ids(args: Any) -> list[str]:
    ids = list(args.ids)
    if args.ids_file:
        try:
            with open(args.ids_file, encoding="utf-8") as f:
                ids += [line.strip() for line in f if line.strip()]
        except OSError as exc:
            raise CliError(f"{args.ids_file}: {exc.strerror}") from None
    if not ids:
        raise UsageError("give ids as arguments or with --ids-file")
    return ids


def cmd_count(ctx: Context, args: Any) -> Result:
    n = ctx.client.count(args.collection)
    return Result({"collection": args.collection, "count": n}, str(n))


def cmd_get(ctx: Context, args: Any) -> Result:
    ids = read_ids(args)
    points = [point_dict(p) for p in ctx.client.get(args.collection, ids, args.with_vectors,
                                                    not args.no_payload)]
    found = {p["id"] for p in points}
    missing = [i for i in ids if i not in found]
    if missing:
        ctx.info(f"not found: {', '.join(missing[:20])}{' ...' if len(missing) > 20 else ''}")
    return Result({"points": points, "missing": missing}, points_table(points))


def cmd_delete(ctx: Context, args: Any) -> Result:
    ids = read_ids(args)
    res = ctx.client.delete(args.collection, ids)
    return Result({"requested": len(ids), "deleted": res.count},
                  f"deleted {res.count} of {len(ids)} ids (the others did not exist)"
                  if res.count < len(ids) else f"deleted {res.count}")


def cmd_scroll(ctx: Context, args: Any) -> Result:
    page = ctx.client.scroll(args.collection, args.limit, args.cursor, args.with_vectors,
                             not args.no_payload)
    points = [point_dict(p) for p in page.points]
    views: list[Any] = [points_table(points)]
    if page.next_cursor:
        views.append(f"next page: --cursor {page.next_cursor}")
    return Result({"points": points, "next_cursor": page.next_cursor}, views)


def query_vectors(args: Any) -> Any:
    given = [x for x in ("vector", "vector_file", "text") if getattr(args, x) is not None]
    if len(given) != 1:
        raise UsageError("give exactly one of --vector, --vector-file, --text")
    if args.vector is not None:
        return parse_vectors(args.vector, "--vector")
    if args.vector_file is not None:
        return load_query_vectors(args.vector_file)
    return None


def sdk_supports(param: str) -> bool:
    from vecdb_client import Client
    return param in inspect.signature(Client.search).parameters


def cmd_search(ctx: Context, args: Any) -> Result:
    q = query_vectors(args)
    kw: dict[str, Any] = dict(k=args.k, nprobe=args.nprobe, ef_search=args.ef_search,
                              exact=args.exact, with_payload=not args.no_payload,
                              with_vectors=args.with_vectors)
    if args.filter is not None:
        try:
            kw["filter"] = json.loads(args.filter)
        except json.JSONDecodeError as exc:
            raise UsageError(f"--filter is not valid JSON ({exc.msg})") from None
        if not sdk_supports("filter"):
            raise CliError(FILTER_MISSING)
    if q is None:  # --text
        if not sdk_supports("text"):
            raise CliError(TEXT_SEARCH_MISSING)
        kw["text"] = args.text
        results = [ctx.client.search(args.collection, **kw)]
    elif q.ndim == 1:
        results = [ctx.client.search(args.collection, vector=q, **kw)]
    else:
        results = ctx.client.search(args.collection, vectors=q, **kw)
    data = [[point_dict(h, h.score) for h in hits] for hits in results]
    views = [points_table(hits, f"query {i}" if len(data) > 1 else None)
             for i, hits in enumerate(data)]
    return Result({"queries": len(data), "results": data}, views)


def add_id_args(p: Any) -> None:
    p.add_argument("collection", help="collection or alias")
    p.add_argument("ids", nargs="*", metavar="ID")
    p.add_argument("--ids-file", metavar="FILE", help="more ids, one per line")


def add_read_flags(p: Any) -> None:
    p.add_argument("--with-vectors", action="store_true", help="include the vectors")
    p.add_argument("--no-payload", action="store_true", help="leave out the payloads")


def register(sub: Any) -> None:
    ps = group(sub, "points", "count, get, delete and scroll points", """
        vecdbctl points count docs
        vecdbctl points get docs doc1 doc2
        vecdbctl points scroll docs --limit 20
        vecdbctl points delete docs doc1""")
    p = command(ps, "count", "number of points in a collection", """
        vecdbctl points count docs
        vecdbctl points count docs -o json | jq .count""", cmd_count)
    p.add_argument("collection", help="collection or alias")

    p = command(ps, "get", "points by id (missing ids are reported on stderr)", """
        vecdbctl points get docs doc1 doc2
        vecdbctl points get docs --ids-file ids.txt --with-vectors -o json""", cmd_get)
    add_id_args(p)
    add_read_flags(p)

    p = command(ps, "delete", "delete points by id (missing ids are fine)", """
        vecdbctl points delete docs doc1 doc2
        vecdbctl points delete docs --ids-file stale.txt""", cmd_delete)
    add_id_args(p)

    p = command(ps, "scroll", "one page of points in id order, and the next cursor", """
        vecdbctl points scroll docs --limit 20
        vecdbctl points scroll docs --limit 100 --cursor CURSOR -o json""", cmd_scroll)
    p.add_argument("collection", help="collection or alias")
    p.add_argument("--limit", type=positive_int, default=20, help="page size (default 20)")
    p.add_argument("--cursor", help="next_cursor of the previous page")
    add_read_flags(p)

    p = command(sub, "search", "nearest neighbours of one or more query vectors", """
        vecdbctl search docs --vector '[0.1, 0.2, 0.3, 0.4]' --k 5
        vecdbctl search docs --vector-file queries.npy --k 10 -o json
        vecdbctl search docs --vector-file q.json --exact --with-vectors
        vecdbctl search docs --vector-file q.npy --nprobe 64
        vecdbctl search docs --vector-file q.npy --filter '{"key": "lang", "match": "en"}'""",
                cmd_search,
                details="""
        --vector takes a JSON list (one query) or a list of lists (a batch);
        --vector-file a .npy (1-D or 2-D), .fvecs or .json file. cosine/ip: higher
        scores are better; l2: squared distance, lower is better. --filter takes
        the SDK's filter JSON (e.g. {"key": "lang", "match": "en"}) when the SDK
        supports filters; --text needs a collection encoder. Both fail with a
        clear message where the server/SDK do not provide them.""")
    p.add_argument("collection", help="collection or alias")
    p.add_argument("--vector", metavar="JSON", help="query vector(s) as JSON")
    p.add_argument("--vector-file", metavar="FILE", help="query vector(s): .npy, .fvecs, .json")
    p.add_argument("--text", help="query text (collections with an encoder)")
    p.add_argument("--filter", metavar="JSON", help="payload filter (when supported)")
    p.add_argument("-k", "--k", type=positive_int, default=10, help="hits per query (default 10)")
    p.add_argument("--exact", action="store_true", help="brute force, ignoring the ANN index")
    p.add_argument("--nprobe", type=positive_int, help="IVF lists to probe")
    p.add_argument("--ef-search", type=positive_int, help="HNSW search breadth")
    add_read_flags(p)

