"""collections list|create|describe|drop|reshard, payload-index create|drop|list,
alias set|delete|list, status."""
from __future__ import annotations

import sys
import time
from dataclasses import asdict
from typing import Any

from .context import Context, UsageError
from .output import Result, Table, kv_table
from .parser import command, group, positive_int

PAYLOAD_INDEX_TYPES = ("keyword", "integer", "float", "bool", "datetime", "text")


def info_dict(info: Any) -> dict[str, Any]:
    """A CollectionInfo as JSON: config fields flattened, plus stats and shards."""
    return {**asdict(info.config), "points": info.points, "index_state": info.index_state,
            "bytes_on_disk": info.bytes_on_disk, "memory_bytes": info.memory_bytes,
            "aliases": list(info.aliases),
            "effective_index_params": dict(info.effective_index_params),
            "default_index_params": list(info.default_index_params),
            "payload_indexes": payload_indexes_dict(info),
            "shard_stats": [asdict(s) for s in info.shards]}


def payload_indexes_dict(info: Any) -> dict[str, dict[str, str]]:
    """field -> {"type", "state"}, sorted by field."""
    return {k: dict(v._asdict()) for k, v in sorted(info.payload_indexes.items())}


def payload_indexes_table(indexes: dict[str, dict[str, str]]) -> Table:
    return Table(["field", "type", "state"],
                 [[f, i["type"], i["state"]] for f, i in indexes.items()], "payload indexes")


def index_params_table(d: dict[str, Any]) -> Table:
    """Effective index parameters; 0 for nlist/m means chosen per shard at build time
    (the shards table shows the built values)."""
    defaults = set(d["default_index_params"])
    return Table(["parameter", "value", "source"],
                 [[k, v, "default" if k in defaults else "set"]
                  for k, v in d["effective_index_params"].items()], f"index {d['index']}")


def info_views(d: dict[str, Any]) -> list[Table]:
    head = {k: v for k, v in d.items() if k not in ("shard_stats", "payload_indexes",
                                                     "effective_index_params",
                                                     "default_index_params")}
    shards = d["shard_stats"]
    cols = list(shards[0]) if shards else ["points"]
    return [kv_table(head, f"collection {d['name']}"), index_params_table(d),
            payload_indexes_table(d["payload_indexes"]),
            Table(["shard"] + cols, [[i] + [s[c] for c in cols] for i, s in enumerate(shards)],
                  "shards")]


# ------------------------------------------------------------------ collections
def cmd_list(ctx: Context, args: Any) -> Result:
    configs = [asdict(c) for c in ctx.client.list_collections()]
    cols = ["name", "dim", "metric", "index", "shards", "encoder"]
    return Result(configs, Table(cols, [[c[k] for k in cols] for c in configs]))


def parse_params(pairs: list[str]) -> dict[str, int]:
    params = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        try:
            params[key.strip()] = int(value)
        except ValueError:
            sep = ""
        if not sep or not key.strip():
            raise UsageError(f"--param expects KEY=INTEGER (e.g. nlist=1024), got {pair!r}")
    return params


def parse_payload_indexes(pairs: list[str]) -> dict[str, str]:
    indexes = {}
    for pair in pairs:
        field, _, kind = (x.strip() for x in pair.rpartition("="))
        if not field or kind not in PAYLOAD_INDEX_TYPES:
            raise UsageError(f"--payload-index expects FIELD=TYPE with TYPE one of "
                             f"{', '.join(PAYLOAD_INDEX_TYPES)} (e.g. lang=keyword), got {pair!r}")
        indexes[field] = kind
    return indexes


def parse_vector_fields(specs: list[str]) -> list[dict[str, Any]]:
    """--vector NAME:DIM[:METRIC[:INDEX[:ENCODER]]] -> create_collection(vectors=[...]);
    the encoder is the rest of the spec (it may hold a colon: openai:<model>)."""
    out = []
    for spec in specs:
        parts = spec.split(":", 4)
        if len(parts) < 2 or not parts[0] or not parts[1].isdigit():
            raise UsageError(f"--vector expects NAME:DIM[:METRIC[:INDEX[:ENCODER]]] (e.g. "
                             f"image:512:ip:hnsw, or title:0:cosine:auto:minilm), got {spec!r}")
        field: dict[str, Any] = {"name": parts[0], "dim": int(parts[1])}
        for key, value in zip(("metric", "index", "encoder"), parts[2:]):
            if value:
                field[key] = value
        out.append(field)
    return out


def cmd_create(ctx: Context, args: Any) -> Result:
    from vecdb_client.errors import AlreadyExistsError, InvalidArgumentError
    if args.dim is None and not args.encoder:
        raise UsageError("--dim is required without --encoder (with an encoder the "
                         "dimension is the encoder's)")
    params = parse_params(args.param)
    indexes = parse_payload_indexes(args.payload_index)
    named = dict(vector_name=args.vector_name, vectors=parse_vector_fields(args.vector)) \
        if args.vector or args.vector_name else {}
    try:
        info = ctx.client.create_collection(args.name, args.dim, args.metric, args.index,
                                            args.shards, args.encoder,
                                            payload_indexes=indexes or None, device=args.device,
                                            quantization=args.quantization, rescore=args.rescore,
                                            full_text=args.full_text, sparse_dim=args.sparse_dim,
                                            tenant_field=args.tenant_field,
                                            on_disk=True if args.on_disk else None, **named, **params)
    except AlreadyExistsError:
        if not args.exist_ok:
            raise
        info = ctx.client.describe_collection(args.name)
    except InvalidArgumentError as exc:
        if args.encoder and args.dim is not None and exc.field == "dim":
            raise UsageError(f"--dim {args.dim} does not match encoder {args.encoder!r}: "
                             f"{exc.message} (leave --dim out to use the encoder's)") from None
        raise
    d = info_dict(info)
    return Result(d, info_views(d))


def cmd_describe(ctx: Context, args: Any) -> Result:
    d = info_dict(ctx.client.describe_collection(args.name))
    return Result(d, info_views(d))


def cmd_drop(ctx: Context, args: Any) -> Result:
    from vecdb_client.errors import NotFoundError
    if not args.yes and sys.stdin.isatty():
        print(f"drop collection {args.name!r} and all its points? [y/N] ", end="",
              file=sys.stderr, flush=True)  # stderr: stdout is for the result
        answer = sys.stdin.readline()
        if answer.strip().lower() not in ("y", "yes"):
            raise UsageError("not confirmed (pass --yes to skip the question)")
    dropped = True
    try:
        ctx.client.drop_collection(args.name)
    except NotFoundError:
        if not args.missing_ok:
            raise
        dropped = False
    data = {"name": args.name, "dropped": dropped}
    return Result(data, f"dropped {args.name}" if dropped else f"{args.name} did not exist")


def cmd_reshard(ctx: Context, args: Any) -> Result:
    deadline = time.monotonic() + args.wait_s
    while True:
        res = ctx.client.reshard_collection(args.name, args.shards,
                                            timeout=min(60.0, max(1.0, args.wait_s)))
        if res["done"] or args.no_wait or time.monotonic() >= deadline:
            break
    data = {"name": args.name, **res}
    text = (f"{args.name} has {res['shards']} shards" if res["done"] else
            f"{args.name} is being resharded to {args.shards} shards ({res['state']}, "
            f"{res['copied']} of {res['shards']} old shards copied); see cluster status")
    return Result(data, text)


# ------------------------------------------------------------------ payload indexes
def cmd_index_create(ctx: Context, args: Any) -> Result:
    ctx.client.create_payload_index(args.collection, args.field, args.type, wait=args.wait)
    index = ctx.client.describe_collection(args.collection).payload_indexes[args.field]
    data = {"collection": args.collection, "field": args.field, "type": index.type,
            "state": index.state}
    return Result(data, f"payload index on {args.field} ({index.type}): {index.state}")


def cmd_index_drop(ctx: Context, args: Any) -> Result:
    ctx.client.drop_payload_index(args.collection, args.field)
    data = {"collection": args.collection, "field": args.field, "dropped": True}
    return Result(data, f"dropped the payload index on {args.field}")


def cmd_index_list(ctx: Context, args: Any) -> Result:
    indexes = payload_indexes_dict(ctx.client.describe_collection(args.collection))
    return Result(indexes, payload_indexes_table(indexes))


# ------------------------------------------------------------------ aliases
def cmd_alias_set(ctx: Context, args: Any) -> Result:
    ctx.client.set_alias(args.alias, args.collection)
    data = {"alias": args.alias, "collection": args.collection}
    return Result(data, f"alias {args.alias} -> {args.collection}")


def cmd_alias_delete(ctx: Context, args: Any) -> Result:
    ctx.client.delete_alias(args.alias)
    return Result({"alias": args.alias, "deleted": True}, f"deleted alias {args.alias}")


def cmd_alias_list(ctx: Context, args: Any) -> Result:
    aliases = ctx.client.list_aliases(args.collection)
    rows = sorted(aliases.items())
    return Result(dict(rows), Table(["alias", "collection"], [list(r) for r in rows]))


# ------------------------------------------------------------------ status
def cmd_status(ctx: Context, args: Any) -> Result:
    from vecdb_client import __version__
    client = ctx.client
    serving = ctx.health == "SERVING"  # a recovering server answers health only
    info = client.server_info()
    collections = ([client.describe_collection(c.name) for c in client.list_collections()]
                   if serving else [])
    summary = [{"name": i.name, "dim": i.dim, "metric": i.config.metric,
                "index": i.config.index, "shards": i.config.shards, "points": i.points,
                "index_state": i.index_state, "bytes_on_disk": i.bytes_on_disk,
                "aliases": list(i.aliases)} for i in collections]
    data = {"target": ctx.target, "health": ctx.health, "client_version": __version__,
            "server_version": info["version"], "uptime_s": round(info["uptime_s"], 1),
            "collections": len(summary), "total_points": sum(s["points"] for s in summary),
            "collection_stats": summary}
    head = {"server": ctx.target, "health": ctx.health, "client version": __version__,
            "server version": info["version"], "uptime": f"{info['uptime_s']:.0f} s",
            "collections": data["collections"], "total points": data["total_points"]}
    cols = ["name", "dim", "metric", "index", "shards", "points", "index_state", "aliases"]
    return Result(data, [kv_table(head, "vecdb status"),
                         Table(cols, [[s[c] for c in cols] for s in summary], "collections")])


def register(sub: Any) -> None:
    cs = group(sub, "collections", "list, create, describe and drop collections", """
        vecdbctl collections list
        vecdbctl collections create docs --dim 384
        vecdbctl collections describe docs -o json
        vecdbctl collections drop docs --yes""")
    command(cs, "list", "list the collections", """
        vecdbctl collections list
        vecdbctl collections list -o json | jq -r '.[].name'""", cmd_list)

    p = command(cs, "create", "create a collection", """
        vecdbctl collections create docs --dim 384
        vecdbctl collections create notes --encoder minilm   # text in; dim from the encoder
        vecdbctl collections create images --dim 512 --metric l2 --index hnsw --param M=16
        vecdbctl collections create big --dim 128 --index ivf_pq --shards 8 --param nlist=4096
        vecdbctl collections create hot --dim 384 --index flat --device gpu
        vecdbctl collections create lean --dim 384 --index hnsw --quantization sq8 --rescore 3
        vecdbctl collections create docs --dim 384 --exist-ok   # no error if it exists
        vecdbctl collections create docs --dim 384 --payload-index lang=keyword \\
            --payload-index year=integer --payload-index '$text=text'""",
                cmd_create, details="""
        Index parameters go as --param KEY=VALUE (integers), e.g. nlist, nprobe, m,
        nbits, refine, M, ef_construction, ef_search, build_threshold.
        --payload-index FIELD=TYPE indexes a payload field from the start (see
        'vecdbctl payload-index create --help' for the types).""")
    p.add_argument("name")
    p.add_argument("--dim", type=positive_int,
                   help="vector dimension (required without --encoder; with one it defaults "
                        "to the encoder's and must match it)")
    p.add_argument("--metric", choices=("cosine", "ip", "l2"), default="cosine",
                   help="default cosine")
    p.add_argument("--index", choices=("auto", "flat", "ivf_flat", "ivf_pq", "hnsw"),
                   default="auto", help="default auto")
    p.add_argument("--shards", type=positive_int, help="shard count (server default if unset)")
    p.add_argument("--encoder",
                   help="built-in text encoder, e.g. minilm (docs/encoders.md): texts are "
                        "embedded by the server")
    p.add_argument("--device", choices=("auto", "cpu", "gpu"),
                   help="where the collection runs (unset = auto: the server's device setting "
                        "decides); gpu fails unless the server has a usable GPU")
    p.add_argument("--on-disk", action="store_true",
                   help="keep the vectors on the server's disk: IVF-Flat whose inverted lists "
                        "are memory-mapped and paged in on demand (index ivf_flat or auto), "
                        "for collections larger than the server's RAM")
    p.add_argument("--quantization", choices=("sq8", "rabitq", "binary"),
                   help="keep compact codes in RAM and the float32 vectors on the server's "
                        "disk (sq8: index hnsw, ivf_flat or auto; rabitq: ivf_flat/auto; "
                        "binary: hnsw/auto)")
    p.add_argument("--rescore", type=positive_int,
                   help="with --quantization: re-score k*RESCORE candidates exactly from "
                        "disk (default: sq8 2, rabitq 4, binary 10)")
    p.add_argument("--full-text", metavar="LANGUAGE",
                   help="BM25 keyword and hybrid search over the point texts: plain (no "
                        "stemming) or a Snowball language (english, german, french, ...)")
    p.add_argument("--tenant-field", metavar="FIELD",
                   help="many tenants in one collection: FIELD is the payload key naming each "
                        "point's tenant; every point command then names one with --tenant "
                        "(docs/tenants.md)")
    p.add_argument("--sparse-dim", type=positive_int, metavar="N",
                   help="points may carry a sparse vector with indices below N (SDK "
                        "upsert(sparse=...); searched with search --sparse)")
    p.add_argument("--vector", action="append", default=[],
                   metavar="NAME:DIM[:METRIC[:INDEX[:ENCODER]]]",
                   help="a named vector field beside the primary (docs/named_vectors.md), e.g. "
                        "image:512:ip:hnsw (metric default cosine, index default auto; with an "
                        "encoder DIM 0 takes its dimension); repeatable; search it with "
                        "search --using NAME")
    p.add_argument("--vector-name", metavar="NAME",
                   help="the primary vector's own field name (default: unnamed)")
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE",
                   help="index parameter; repeatable")
    p.add_argument("--payload-index", action="append", default=[], metavar="FIELD=TYPE",
                   help=f"payload index ({', '.join(PAYLOAD_INDEX_TYPES)}); repeatable")
    p.add_argument("--exist-ok", action="store_true",
                   help="succeed (and describe it) if the collection already exists")

    p = command(cs, "describe", "config, point count, index state, payload indexes and shards "
                "of a collection", """
        vecdbctl collections describe docs
        vecdbctl collections describe docs -o json | jq .index_state
        vecdbctl collections describe docs -o json | jq .payload_indexes""", cmd_describe)
    p.add_argument("name", help="collection or alias")

    p = command(cs, "drop", "drop a collection and all its points", """
        vecdbctl collections drop docs --yes
        vecdbctl collections drop scratch --yes --missing-ok""", cmd_drop,
                details="Asks for confirmation on a terminal unless --yes is given.")
    p.add_argument("name")
    p.add_argument("-y", "--yes", action="store_true", help="do not ask for confirmation")
    p.add_argument("--missing-ok", action="store_true",
                   help="succeed if the collection does not exist")

    p = command(cs, "reshard", "split or merge a collection's shards online (cluster mode)", """
        vecdbctl collections reshard docs --shards 4
        vecdbctl collections reshard docs --shards 2 --no-wait""", cmd_reshard,
                details="New shards are filled from the old ones by id hash while every write "
                        "goes to both layouts, then switched to in one etcd transaction; "
                        "searches read the old layout until then (docs/cluster.md "
                        "\"Resharding\"). A single-node server refuses it.")
    p.add_argument("name", help="collection or alias")
    p.add_argument("--shards", type=positive_int, required=True,
                   help="the new shard count (1..64)")
    p.add_argument("--no-wait", action="store_true",
                   help="return once the reshard has begun")
    p.add_argument("--wait-s", type=float, default=600.0,
                   help="wait this long at most for the switch (default 600)")

    pi = group(sub, "payload-index", "create, drop and list the payload indexes of a collection",
               """
        vecdbctl payload-index create docs lang keyword --wait
        vecdbctl payload-index list docs
        vecdbctl payload-index drop docs lang""")
    p = command(pi, "create", "index a payload field so that filters on it are fast", """
        vecdbctl payload-index create docs lang keyword
        vecdbctl payload-index create docs year integer --wait
        vecdbctl payload-index create docs meta.published datetime --wait -o json
        vecdbctl payload-index create docs '$text' text""", cmd_index_create, details="""
        FIELD is a dotted payload path, or "$text" for the point's stored text.
        TYPE: keyword, bool (match, any, except); integer (those and range); float
        (range); datetime (range on ISO-8601 strings); text (text conditions).
        The index is built in the background (state "building", then "ready");
        filters give the same results either way, only faster once it is ready.
        --wait returns once it is ready (or fails after --timeout; the build
        carries on).""")
    p.add_argument("collection", help="collection or alias")
    p.add_argument("field", help='payload path (e.g. meta.lang) or "$text"')
    p.add_argument("type", choices=PAYLOAD_INDEX_TYPES)
    p.add_argument("--wait", action="store_true", help="wait until the index is ready")
    p = command(pi, "drop", "drop the payload index of a field", """
        vecdbctl payload-index drop docs lang""", cmd_index_drop)
    p.add_argument("collection", help="collection or alias")
    p.add_argument("field")
    p = command(pi, "list", "the payload indexes of a collection, with type and state", """
        vecdbctl payload-index list docs
        vecdbctl payload-index list docs -o json | jq -r 'keys[]'""", cmd_index_list)
    p.add_argument("collection", help="collection or alias")

    al = group(sub, "alias", "point aliases at collections", """
        vecdbctl alias set docs docs_v2
        vecdbctl alias list
        vecdbctl alias delete docs""")
    p = command(al, "set", "create an alias or atomically re-point it", """
        vecdbctl alias set docs docs_v2""", cmd_alias_set)
    p.add_argument("alias")
    p.add_argument("collection")
    p = command(al, "delete", "delete an alias (the collection stays)", """
        vecdbctl alias delete docs""", cmd_alias_delete)
    p.add_argument("alias")
    p = command(al, "list", "list aliases, optionally of one collection", """
        vecdbctl alias list
        vecdbctl alias list --collection docs_v2 -o json""", cmd_alias_list)
    p.add_argument("--collection", help="only the aliases of this collection")

    p = command(sub, "status", "server health, versions and a summary of the collections", """
        vecdbctl status
        vecdbctl --host db.internal:50051 status -o json""", cmd_status)
    p.set_defaults(allow_not_serving=True)
