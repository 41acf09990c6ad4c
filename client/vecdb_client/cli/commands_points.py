"""points count|get|delete|scroll|update, search and range-search."""
from __future__ import annotations

from typing import Any

from . import commands_query
from .context import Context, UsageError
from .io_formats import load_query_vectors, parse_vectors
from .output import Result, point_dict, points_table
from .parser import command, group, positive_int
from .selection import add_filter_args, parse_json_object, read_filter, read_ids, read_selection


def cmd_count(ctx: Context, args: Any) -> Result:
    flt = read_filter(args)
    n = ctx.client.count(args.collection, filter=flt)
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
    ids, flt = read_selection(args, "ID arguments")
    res = ctx.client.delete(args.collection, ids, filter=flt)
    if ids is None:
        return Result({"requested": None, "deleted": res.count},
                      f"deleted {res.count} matching points")
    return Result({"requested": len(ids), "deleted": res.count},
                  f"deleted {res.count} of {len(ids)} ids (the others did not exist)"
                  if res.count < len(ids) else f"deleted {res.count}")


def cmd_update(ctx: Context, args: Any) -> Result:
    ids, flt = read_selection(args, "--ids")
    change = {"set": args.set, "overwrite": args.overwrite}
    change = {k: parse_json_object(v, f"--{k}") for k, v in change.items() if v is not None}
    keys = [k.strip() for k in (args.delete_keys or "").split(",") if k.strip()]
    if not (change or keys):
        raise UsageError("give at least one of --set, --overwrite, --delete-keys")
    res = ctx.client.update_payload(args.collection, ids, filter=flt, delete_keys=keys or None,
                                    **change)
    data = {"requested": None if ids is None else len(ids), "updated": res.count}
    return Result(data, f"updated {res.count} points" + (
        f" of {len(ids)} ids (the others did not exist)" if ids and res.count < len(ids)
        else ""))


def cmd_scroll(ctx: Context, args: Any) -> Result:
    flt = read_filter(args)
    page = ctx.client.scroll(args.collection, args.limit, args.cursor, args.with_vectors,
                             not args.no_payload, filter=flt)
    points = [point_dict(p) for p in page.points]
    views: list[Any] = [points_table(points)]
    if page.next_cursor:
        views.append(f"next page: --cursor {page.next_cursor}")
    return Result({"points": points, "next_cursor": page.next_cursor}, views)


def query_vectors(args: Any) -> tuple[dict[str, Any], bool]:
    """The query of --vector / --vector-file (/ --text where the command has it) as
    search keywords (vector=, vectors= or text=), and whether it is a single query."""
    flags = [x for x in ("vector", "vector_file", "text") if hasattr(args, x)]
    given = [x for x in flags if getattr(args, x) is not None]
    if len(given) != 1:
        names = ", ".join("--" + x.replace("_", "-") for x in flags)
        raise UsageError(f"give exactly one of {names}")
    if given == ["text"]:
        return {"text": args.text}, True
    q = (parse_vectors(args.vector, "--vector") if args.vector is not None
         else load_query_vectors(args.vector_file))
    return ({"vector": q}, True) if q.ndim == 1 else ({"vectors": q}, False)


def common_query_kw(args: Any) -> dict[str, Any]:
    """Options search and range-search share; the filter is checked before connecting."""
    kw = dict(nprobe=args.nprobe, exact=args.exact, with_payload=not args.no_payload,
              with_vectors=args.with_vectors, filter=read_filter(args))
    if args.using:
        kw["using"] = args.using
    return kw


def hits_result(results: list[Any], extra: dict[str, Any] | None = None) -> Result:
    """Search-like output: {"queries", "results": [[hit, ...] per query], **extra}."""
    data = [[point_dict(h, h.score) for h in hits] for hits in results]
    views: list[Any] = [points_table(hits, f"query {i}" if len(data) > 1 else None)
                        for i, hits in enumerate(data)]
    views += [f"{k}: {v}" for k, v in (extra or {}).items()]
    return Result({"queries": len(data), "results": data, **(extra or {})}, views)


def cmd_search(ctx: Context, args: Any) -> Result:
    kw = dict(common_query_kw(args), k=args.k, ef_search=args.ef_search)
    if args.keywords is not None or args.sparse is not None:  # keyword / sparse / hybrid
        return commands_query.cmd_search_keywords(ctx, args, kw)
    if commands_query.wants_beyond(args):  # expression / group_by
        return commands_query.cmd_search_beyond(ctx, args, common_query_kw(args))
    query, single = query_vectors(args)
    if args.explain:
        hits, plan = ctx.client.search(args.collection, **query, **kw, explain=True)
        return hits_result([hits] if single else hits, {"plan": plan})
    hits = ctx.client.search(args.collection, **query, **kw)
    return hits_result([hits] if single else hits)


def cmd_range_search(ctx: Context, args: Any) -> Result:
    kw = dict(common_query_kw(args), threshold=args.threshold, limit=args.limit)
    query, single = query_vectors(args)
    hits = ctx.client.range_search(args.collection, **query, **kw)
    return hits_result([hits] if single else hits)


def add_id_args(p: Any) -> None:
    p.add_argument("collection", help="collection or alias")
    p.add_argument("ids", nargs="*", metavar="ID")
    p.add_argument("--ids-file", metavar="FILE", help="more ids, one per line")


def add_read_flags(p: Any) -> None:
    p.add_argument("--with-vectors", action="store_true", help="include the vectors")
    p.add_argument("--no-payload", action="store_true", help="leave out the payloads")


def add_query_args(p: Any) -> None:
    p.add_argument("collection", help="collection or alias")
    p.add_argument("--vector", metavar="JSON", help="query vector(s) as JSON")
    p.add_argument("--vector-file", metavar="FILE", help="query vector(s): .npy, .fvecs, .json")
    p.add_argument("--exact", action="store_true", help="brute force, ignoring the ANN index")
    p.add_argument("--nprobe", type=positive_int, help="IVF lists to probe")
    commands_query.add_using_arg(p)
    add_filter_args(p, "only points matching it are candidates")
    add_read_flags(p)


def register(sub: Any) -> None:
    ps = group(sub, "points", "count, get, delete, update and scroll points", """
        vecdbctl points count docs
        vecdbctl points count docs --filter '{"key": "lang", "match": "en"}'
        vecdbctl points get docs doc1 doc2
        vecdbctl points scroll docs --limit 20
        vecdbctl points update docs --ids doc1 --set '{"seen": true}'
        vecdbctl points delete docs doc1""")
    p = command(ps, "count", "number of points in a collection, or of those matching a filter",
                """
        vecdbctl points count docs
        vecdbctl points count docs -o json | jq .count
        vecdbctl points count docs --filter '{"key": "year", "range": {"gte": 2020}}'
        vecdbctl points count docs --filter-file recent.json""", cmd_count)
    p.add_argument("collection", help="collection or alias")
    add_filter_args(p, "count only the points matching it")

    p = command(ps, "get", "points by id (missing ids are reported on stderr)", """
        vecdbctl points get docs doc1 doc2
        vecdbctl points get docs --ids-file ids.txt --with-vectors -o json""", cmd_get)
    add_id_args(p)
    add_read_flags(p)

    p = command(ps, "delete", "delete points by id (missing ids are fine) or by filter", """
        vecdbctl points delete docs doc1 doc2
        vecdbctl points delete docs --ids-file stale.txt
        vecdbctl points delete docs --filter '{"key": "lang", "match": "fr"}'
        vecdbctl points delete docs --filter '{"must_not": [{"key": "keep", "exists": true}]}'""",
                cmd_delete, details="""
        Give ids (arguments and/or --ids-file) or a non-empty --filter/--filter-file,
        exactly one of the two. With a filter every matching point is deleted.""")
    add_id_args(p)
    add_filter_args(p, "delete every point matching it (instead of ids)")

    p = command(ps, "update", "change the payloads of points selected by id or by filter", """
        vecdbctl points update docs --ids doc1 doc2 --set '{"seen": true}'
        vecdbctl points update docs --filter '{"key": "lang", "match": "de"}' --delete-keys draft
        vecdbctl points update docs --ids-file ids.txt --overwrite '{"lang": "en"}'
        vecdbctl points update docs --ids doc1 --set '{"v": 2}' --delete-keys old,tmp -o json""",
                cmd_update, details="""
        Selects points by --ids/--ids-file or by --filter/--filter-file (exactly one),
        then in one atomic write: --overwrite replaces the whole payload, --set merges
        top-level keys, --delete-keys removes keys (comma-separated). Vectors, texts
        and TTLs stay; ids that do not exist are skipped.""")
    p.add_argument("collection", help="collection or alias")
    p.add_argument("--ids", nargs="+", default=[], metavar="ID", help="the points to change")
    p.add_argument("--ids-file", metavar="FILE", help="more ids, one per line")
    add_filter_args(p, "change every point matching it (instead of ids)")
    p.add_argument("--set", metavar="JSON", help="JSON object: top-level keys to merge in")
    p.add_argument("--overwrite", metavar="JSON", help="JSON object: the new whole payload")
    p.add_argument("--delete-keys", metavar="K1,K2", help="top-level keys to remove")

    p = command(ps, "scroll", "one page of points in id order, and the next cursor", """
        vecdbctl points scroll docs --limit 20
        vecdbctl points scroll docs --limit 100 --cursor CURSOR -o json
        vecdbctl points scroll docs --filter '{"key": "tags", "any": ["a", "b"]}'""",
                cmd_scroll, details="""
        With --filter only matching points are listed; pass the same filter with
        --cursor for the next page. With --tenant, the tenant's points in storage
        order (docs/tenants.md).""")
    p.add_argument("collection", help="collection or alias")
    p.add_argument("--limit", type=positive_int, default=20, help="page size (default 20)")
    p.add_argument("--cursor", help="next_cursor of the previous page")
    add_filter_args(p, "list only the points matching it")
    add_read_flags(p)

    p = command(sub, "search", "nearest neighbours of one or more query vectors", """
        vecdbctl search docs --vector '[0.1, 0.2, 0.3, 0.4]' --k 5
        vecdbctl search docs --vector-file queries.npy --k 10 -o json
        vecdbctl search docs --vector-file q.json --exact --with-vectors
        vecdbctl search docs --vector-file q.npy --nprobe 64
        vecdbctl search docs --vector-file q.npy --filter '{"key": "lang", "match": "en"}'
        vecdbctl search docs --vector-file q.npy --filter-file f.json --explain
        vecdbctl search docs --vector-file q.npy --group-by author --group-size 2 --groups 5
        vecdbctl search kb --plus id:king --minus text:man --plus text:woman --k 5
        vecdbctl search kb --keywords "Zorvex pump manual" --k 5
        vecdbctl search kb --text "pump manual" --keywords "Zorvex" --fusion rrf
        vecdbctl search kb --sparse '{"indices": [12, 907], "values": [0.8, 1.4]}'""",
                cmd_search, details="""
        --vector takes a JSON list (one query) or a list of lists (a batch);
        --vector-file a .npy (1-D or 2-D), .fvecs or .json file. cosine/ip: higher
        scores are better; l2: squared distance, lower is better. --filter takes the
        filter JSON of docs/server_api.md (e.g. {"key": "lang", "match": "en"} or
        {"must": [...], "should": [...], "must_not": [...]}); only matching points
        are candidates. --explain adds how each shard ran the query ("plan": in the
        JSON output, a last line in the table output). --text searches by meaning in
        a collection with an encoder (the server embeds the query). --plus/--minus/
        --term search with a vector built from terms (id:ID, text:TEXT or a JSON
        vector; stored points used as terms are left out of the hits unless
        --include-terms). --group-by FIELD returns the best --group-size hits for
        each of the best --groups values of that payload field (--k is not used).
        --keywords (collections created with --full-text): alone, BM25 keyword search
        over the point texts; with --vector/--vector-file/--text, hybrid search: both
        retrievers fused by --fusion rrf (default; --rrf-k, default 60) or weighted
        (min-max normalised scores), --weights DENSE,KEYWORDS (default 1,1).
        --sparse (collections created with --sparse-dim): exact sparse dot-product
        search, alone or fused the same way (--weights in the order dense,
        keywords, sparse, of those given).""")
    add_query_args(p)
    p.add_argument("--text", help="query text (collections with an encoder)")
    p.add_argument("-k", "--k", type=positive_int, default=10, help="hits per query (default 10)")
    p.add_argument("--ef-search", type=positive_int, help="HNSW search breadth")
    p.add_argument("--explain", action="store_true", help="also show the query plan")
    commands_query.add_search_args(p)
    commands_query.register(sub)

    p = command(sub, "range-search", "every point scoring better than a threshold", """
        vecdbctl range-search docs --vector '[0.1, 0.2, 0.3, 0.4]' --threshold 0.8
        vecdbctl range-search docs --vector-file q.npy --threshold 0.8 --limit 50 -o json
        vecdbctl range-search geo --vector '[1.0, 2.0]' --threshold 4.0   # l2: distance < 4
        vecdbctl range-search docs --vector-file q.npy --threshold 0.5 \\
            --filter '{"key": "lang", "match": "en"}'""",
                cmd_range_search, details="""
        cosine/ip: every point with score > THRESHOLD; l2: squared distance <
        THRESHOLD; best first, at most --limit per query. Query vectors as in
        search (one query or a batch). Approximate on IVF-Flat indexes (only
        --nprobe lists are scanned), exact elsewhere.""")
    add_query_args(p)
    p.add_argument("--threshold", type=float, required=True, metavar="X",
                   help="score (cosine/ip) or squared distance (l2) bound")
    p.add_argument("--limit", type=positive_int, default=1000,
                   help="most hits per query (default 1000, at most 100000)")
