"""recommend, and the search options beyond nearest neighbours: --plus/--minus/--term
(vector arithmetic) and --group-by/--group-size/--groups (grouped search)."""
from __future__ import annotations

import json
from typing import Any

from .context import Context, UsageError
from .output import Result, point_dict, points_table
from .parser import command, positive_int
from .selection import add_filter_args, read_filter


def _vector(text: str, flag: str) -> list[float]:
    try:
        value = json.loads(text)
    except ValueError:
        raise UsageError(f"{flag}: {text!r} is not a JSON list of numbers") from None
    if not isinstance(value, list) or not value or not all(
            isinstance(x, (int, float)) and not isinstance(x, bool) for x in value):
        raise UsageError(f"{flag}: expected a JSON list of numbers like [0.1, 0.2]")
    return [float(x) for x in value]


def _term(text: str, flag: str) -> Any:
    """id:ID, text:TEXT, or a JSON vector."""
    if text.lstrip().startswith("["):
        return _vector(text, flag)
    kind, sep, value = text.partition(":")
    if not sep or kind not in ("id", "text") or not value:
        raise UsageError(f"{flag}: {text!r} must be id:ID, text:TEXT or a JSON vector")
    return text


def read_expression(args: Any) -> list[tuple[Any, Any]] | None:
    """--plus / --minus / --term W TERM as the SDK's expression (None when none given)."""
    terms = [("+", _term(t, "--plus")) for t in args.plus or ()]
    terms += [("-", _term(t, "--minus")) for t in args.minus or ()]
    for weight, t in args.term or ():
        try:
            w = float(weight)
        except ValueError:
            raise UsageError(f"--term: the weight {weight!r} is not a number") from None
        terms.append((w, _term(t, "--term")))
    return terms or None


def add_search_args(p: Any) -> None:
    g = p.add_argument_group("vector arithmetic (instead of --vector/--text)")
    g.add_argument("--plus", action="append", metavar="TERM",
                   help="add a term: id:ID, text:TEXT or a JSON vector (repeatable)")
    g.add_argument("--minus", action="append", metavar="TERM", help="subtract a term")
    g.add_argument("--term", action="append", nargs=2, metavar=("WEIGHT", "TERM"),
                   help="add WEIGHT x TERM")
    g.add_argument("--include-terms", action="store_true",
                   help="let the stored points used as terms appear in the hits")
    g = p.add_argument_group("grouped search")
    g.add_argument("--group-by", metavar="FIELD",
                   help="best hits per value of this payload field (string/integer/bool)")
    g.add_argument("--group-size", type=positive_int, metavar="N", help="hits per group (default 1)")
    g.add_argument("--groups", type=positive_int, metavar="N", help="groups (default 10)")
    g = p.add_argument_group("keyword and hybrid search (collections created with --full-text)")
    g.add_argument("--keywords", metavar="TEXT",
                   help="BM25 keyword query; alone: keyword search; with --vector/--text: hybrid")
    g.add_argument("--keywords-field", metavar="FIELD",
                   help="score --keywords on this payload field (a text payload index) "
                        "instead of the point texts")
    g.add_argument("--fusion", choices=("rrf", "weighted"),
                   help="hybrid: reciprocal rank fusion (default) or weighted normalised scores")
    g.add_argument("--weights", metavar="DENSE,KEYWORDS",
                   help="hybrid: the two retrievers' weights (default 1,1)")
    g.add_argument("--rrf-k", type=float, metavar="X", help="hybrid RRF constant (default 60)")
    g.add_argument("--sparse", metavar="JSON",
                   help='sparse query {"indices": [...], "values": [...]} (collections created '
                        "with --sparse-dim); alone or fused like --keywords")


def cmd_search_keywords(ctx: Context, args: Any, common: dict[str, Any]) -> Result:
    """search --keywords/--sparse: alone, or hybrid with --vector/--vector-file/--text."""
    from .commands_points import hits_result, query_vectors
    if wants_beyond(args):
        raise UsageError("--keywords/--sparse cannot be combined with --plus/--minus/--term/"
                         "--group-by")
    sparse = None
    if args.sparse is not None:
        try:
            sparse = json.loads(args.sparse)
        except ValueError:
            raise UsageError(f"--sparse: {args.sparse!r} is not JSON") from None
        if not isinstance(sparse, dict):
            raise UsageError('--sparse takes {"indices": [...], "values": [...]}')
    dense = any(getattr(args, x, None) is not None for x in ("vector", "vector_file", "text"))
    query, single = query_vectors(args) if dense else ({}, True)
    weights = None
    if args.weights is not None:
        try:
            weights = [float(w) for w in args.weights.split(",")]
        except ValueError:
            raise UsageError(f"--weights: {args.weights!r} is not DENSE,KEYWORDS numbers") from None
    kw = dict(common, **query, keywords=args.keywords, fusion=args.fusion, weights=weights,
              rrf_k=args.rrf_k, sparse=sparse, explain=True, keywords_field=args.keywords_field)
    got, plan = ctx.client.search(args.collection, **kw)
    return hits_result([got] if single else got, {"plan": plan} if args.explain else None)


def wants_beyond(args: Any) -> bool:
    return bool(args.plus or args.minus or args.term or args.group_by)


def cmd_search_beyond(ctx: Context, args: Any, common: dict[str, Any]) -> Result:
    from .commands_points import hits_result, query_vectors
    expression = read_expression(args)
    if expression is None:
        query, single = query_vectors(args)
    elif any(getattr(args, x, None) is not None for x in ("vector", "vector_file", "text")):
        raise UsageError("give --plus/--minus/--term or --vector/--vector-file/--text, not both")
    else:
        query, single = {"expression": expression, "include_terms": args.include_terms}, True
    if (args.group_size or args.groups) and not args.group_by:
        raise UsageError("--group-size and --groups need --group-by")
    kw = dict(common, **query, k=args.k, ef_search=args.ef_search, explain=args.explain)
    if args.group_by:
        kw.update(group_by=args.group_by, group_size=args.group_size, groups=args.groups)
    got = ctx.client.search(args.collection, **kw)
    got, plan = got if args.explain else (got, None)
    extra = {"plan": plan} if args.explain else None
    if not args.group_by:
        return hits_result([got], extra)
    per_query = [got] if single else got
    data = [[{"key": g.key, "hits": [point_dict(h, h.score) for h in g.hits]} for g in groups]
            for groups in per_query]
    views: list[Any] = []
    for i, groups in enumerate(data):
        for g in groups:
            prefix = f"query {i}: " if len(data) > 1 else ""
            views.append(points_table(g["hits"], f"{prefix}{args.group_by} = {g['key']}"))
    views += [f"{k}: {v}" for k, v in (extra or {}).items()]
    return Result({"queries": len(data), "group_by": args.group_by, "results": data,
                   **(extra or {})}, views)


def add_using_arg(p: Any) -> None:
    p.add_argument("--using", metavar="FIELD",
                   help="search this named vector field (docs/named_vectors.md) instead of the "
                        "primary vector")


def cmd_recommend(ctx: Context, args: Any) -> Result:
    from .commands_points import hits_result

    def examples(ids: Any, texts: Any, vectors: Any, flag: str) -> list[Any]:
        return ([*(ids or ())] + [{"text": t} for t in texts or ()]
                + [_vector(v, f"--{flag}-vector") for v in vectors or ()])
    pos = examples(args.positive, args.positive_text, args.positive_vector, "positive")
    neg = examples(args.negative, args.negative_text, args.negative_vector, "negative")
    if not pos:
        raise UsageError("give at least one positive example (--positive, --positive-text or "
                         "--positive-vector)")
    hits = ctx.client.recommend(
        args.collection, pos, neg, strategy=args.strategy, k=args.k, filter=read_filter(args),
        include_examples=args.include_examples, exact=args.exact, nprobe=args.nprobe,
        with_payload=not args.no_payload, with_vectors=args.with_vectors,
        **({"using": args.using} if args.using else {}))
    return hits_result([hits])


def register(sub: Any) -> None:
    p = command(sub, "recommend", "points like some examples and unlike others", """
        vecdbctl recommend docs --positive doc1 doc7 --negative doc3 --k 5
        vecdbctl recommend docs --positive doc1 --strategy best_score -o json
        vecdbctl recommend kb --positive-text "slow-cooked stews" --negative-text "football"
        vecdbctl recommend docs --positive doc1 --filter '{"key": "lang", "match": "en"}'""",
                cmd_recommend, details="""
        Examples are stored points (--positive/--negative IDs), texts embedded by the
        collection's encoder (--positive-text/--negative-text) or JSON vectors
        (--positive-vector/--negative-vector); each option is repeatable. Strategy
        average (default): search with mean(positive) - mean(negative). best_score:
        each candidate scores by its best positive vs best negative similarity
        (scores in (0, 1) when it is closer to a positive, (-1, 0) otherwise). The
        stored examples are left out of the hits unless --include-examples.""")
    p.add_argument("collection", help="collection or alias")
    p.add_argument("--positive", nargs="+", action="extend", metavar="ID",
                   help="ids of positive examples (repeatable: every one given counts)")
    p.add_argument("--negative", nargs="+", action="extend", metavar="ID",
                   help="ids of negative examples (repeatable)")
    p.add_argument("--positive-text", action="append", metavar="TEXT", help="a positive text")
    p.add_argument("--negative-text", action="append", metavar="TEXT", help="a negative text")
    p.add_argument("--positive-vector", action="append", metavar="JSON", help="a positive vector")
    p.add_argument("--negative-vector", action="append", metavar="JSON", help="a negative vector")
    p.add_argument("--strategy", choices=("average", "best_score"), default="average")
    p.add_argument("-k", "--k", type=positive_int, default=10, help="hits (default 10)")
    p.add_argument("--include-examples", action="store_true",
                   help="let the stored examples appear in the hits")
    p.add_argument("--exact", action="store_true", help="brute force, ignoring the ANN index")
    p.add_argument("--nprobe", type=positive_int, help="IVF lists to probe")
    add_using_arg(p)
    add_filter_args(p, "only points matching it are candidates")
    p.add_argument("--with-vectors", action="store_true", help="include the vectors")
    p.add_argument("--no-payload", action="store_true", help="leave out the payloads")
