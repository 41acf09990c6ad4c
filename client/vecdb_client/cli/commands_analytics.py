"""kmeans, outliers, duplicates: the AnalyticsService from the command line.

The clustering command is ``kmeans``, not ``cluster``: that name is kept for the
node-cluster commands (``vecdbctl cluster status/drain``)."""
from __future__ import annotations

import json
from typing import Any

from .context import Context
from .output import Result, Table
from .parser import command, positive_float, positive_int
from .selection import add_filter_args, read_filter

SNIPPET = 48  # characters of a typical member's text (or payload) in the table


def _snippet(text: str | None, payload: dict | None) -> str:
    s = text if text else (json.dumps(payload, ensure_ascii=False, sort_keys=True) if payload else "")
    return s if len(s) <= SNIPPET else s[:SNIPPET - 1] + "…"


def cmd_kmeans(ctx: Context, args: Any) -> Result:
    flt = read_filter(args)
    job = ctx.client.cluster(args.collection, args.k, filter=flt, sample=args.sample,
                             iterations=args.iterations, write_label=args.write_label,
                             seed=args.seed, typical=args.typical, init=args.init, wait=True,
                             timeout=args.wait_timeout)
    r = job.result
    typical = r.nearest_points_to_centroids()
    data = {"collection": args.collection, "job_id": job.id, "k": args.k, "points": r.points,
            "trained_on": r.trained_on, "inertia": r.inertia, "sizes": r.sizes,
            "write_label": args.write_label, "labelled": r.labelled,
            "typical": [[{"id": t.id, "distance": t.distance, "payload": t.payload, "text": t.text}
                         for t in members] for members in typical]}
    rows = []
    for c, (size, members) in enumerate(zip(r.sizes, typical)):
        first = members[0] if members else None
        rows.append([c, size, ", ".join(t.id for t in members),
                     _snippet(first.text, first.payload) if first else ""])
    title = (f"{args.collection}: {r.points} points in {args.k} clusters, inertia {r.inertia:.6g}"
             + (f"; cluster numbers written to payload field {args.write_label!r} "
                f"({r.labelled} points)" if args.write_label else ""))
    return Result(data, Table(["cluster", "size", "typical members", "most typical"], rows, title))


def cmd_outliers(ctx: Context, args: Any) -> Result:
    flt = read_filter(args)
    centroids = None
    if args.method == "centroid":
        centroids = ctx.client.cluster(args.collection, args.clusters, filter=flt,
                                       seed=args.seed, typical=0, wait=True,
                                       timeout=args.wait_timeout)
    got = ctx.client.outliers(args.collection, args.n, method=args.method, k=args.k,
                              filter=flt, sample=args.sample, centroids=centroids,
                              seed=args.seed)
    data = {"collection": args.collection, "method": args.method, "scored": got.scored,
            "population": got.population,
            "outliers": [{"id": o.id, "score": o.score, "payload": o.payload, "text": o.text}
                         for o in got]}
    rows = [[o.id, f"{o.score:.6g}", _snippet(o.text, o.payload)] for o in got]
    how = f"mean distance to the {args.k} nearest neighbours" if args.method == "knn" else \
        f"distance to the nearest of {args.clusters} k-means centroids"
    title = f"{args.collection}: top {len(rows)} of {got.scored} points scored ({how})"
    return Result(data, Table(["id", "score", "text / payload"], rows, title))


def cmd_duplicates(ctx: Context, args: Any) -> Result:
    flt = read_filter(args)
    got = ctx.client.duplicates(args.collection, args.threshold, filter=flt, limit=args.limit,
                                timeout=args.wait_timeout)
    data = {"collection": args.collection, "threshold": args.threshold,
            "pairs": [{"a": p.id_a, "b": p.id_b, "distance": p.distance} for p in got.pairs],
            "groups": got.groups, "truncated": got.truncated, "population": got.population}
    if args.groups:
        rows = [[len(g), ", ".join(g)] for g in got.groups]
        view = Table(["size", "ids"], rows, f"{args.collection}: {len(rows)} groups of "
                     f"near-duplicates (distance < {args.threshold:g})"
                     + (" — truncated by --limit" if got.truncated else ""))
    else:
        rows = [[p.id_a, p.id_b, f"{p.distance:.6g}"] for p in got.pairs]
        view = Table(["a", "b", "distance"], rows, f"{args.collection}: {len(rows)} pairs "
                     f"closer than {args.threshold:g} among {got.population} points"
                     + (" — truncated by --limit" if got.truncated else ""))
    return Result(data, view)


def _wait_timeout(p: Any) -> None:
    p.add_argument("--wait-timeout", type=positive_float, default=3600.0, metavar="S",
                   help="how long to wait for the server's answer in seconds (default 3600)")


def register(sub: Any) -> None:
    p = command(sub, "kmeans", "cluster a collection with k-means (server-side)", """
        vecdbctl kmeans docs -k 4
        vecdbctl kmeans docs -k 8 --write-label topic      # then: --filter on topic, map --color-by topic
        vecdbctl kmeans docs -k 20 --sample 100000 --filter '{"key": "lang", "match": "en"}'""",
                cmd_kmeans, details="""
        Runs FAISS k-means over the points (matching --filter) on the server as a
        background job and waits for it; prints each cluster's size and its most
        typical members (nearest the centroid) with their text or payload.
        --write-label stores each point's cluster number (0..k-1) in that payload
        field (payload-only writes in batches of 4096 points; nothing is written if a
        payload would be invalid). (The command is 'kmeans': 'vecdbctl cluster' is
        kept for the node-cluster commands.)""")
    p.add_argument("collection", help="collection or alias")
    p.add_argument("-k", type=positive_int, required=True, help="number of clusters")
    p.add_argument("--write-label", metavar="FIELD", help="payload field for the cluster number")
    p.add_argument("--sample", type=positive_int, help="train on this many random points")
    p.add_argument("--iterations", type=positive_int, default=20, help="default 20")
    p.add_argument("--typical", type=int, default=3, help="typical members shown (default 3)")
    p.add_argument("--seed", type=int, default=1234, help="default 1234")
    p.add_argument("--init", choices=("kmeans++", "random"), default="kmeans++",
                   help="initial centroids (default kmeans++)")
    add_filter_args(p, "cluster only the points matching it")
    _wait_timeout(p)

    p = command(sub, "outliers", "the points farthest from the rest, with their score", """
        vecdbctl outliers docs -n 10
        vecdbctl outliers docs -n 20 --k 5 --filter '{"key": "lang", "match": "en"}'
        vecdbctl outliers docs --sample 20000          # large collections
        vecdbctl outliers docs --method centroid --clusters 8""", cmd_outliers, details="""
        knn (default): the mean distance to the --k nearest neighbours, exact over
        all points (cost grows with the square of the collection: use --sample on
        large ones). centroid: the distance to the nearest of --clusters k-means
        centroids (computed first). Distances: cosine 1 - similarity, l2 squared
        distance, ip minus the inner product.""")
    p.add_argument("collection", help="collection or alias")
    p.add_argument("-n", type=positive_int, default=10, help="how many (default 10)")
    p.add_argument("--method", choices=("knn", "centroid"), default="knn", help="default knn")
    p.add_argument("--k", type=positive_int, default=10, help="neighbours for knn (default 10)")
    p.add_argument("--clusters", type=positive_int, default=8,
                   help="k-means clusters for --method centroid (default 8)")
    p.add_argument("--sample", type=positive_int, help="score only this many random points")
    p.add_argument("--seed", type=int, default=1234, help="default 1234")
    add_filter_args(p, "only the points matching it (neighbours too)")
    _wait_timeout(p)

    p = command(sub, "duplicates", "pairs (or groups) of points closer than a threshold", """
        vecdbctl duplicates docs 0.02                  # cosine: 1 - similarity < 0.02
        vecdbctl duplicates docs 0.05 --groups
        vecdbctl duplicates docs 0.5 --limit 1000 -o json""", cmd_duplicates, details="""
        THRESHOLD is a distance: cosine 1 - similarity (0 < t <= 2), l2 squared
        distance (> 0), ip minus the inner product. The server streams the pairs
        as it range-searches the collection; --groups prints the connected groups.""")
    p.add_argument("collection", help="collection or alias")
    p.add_argument("threshold", type=float, help="distance below which two points are duplicates")
    p.add_argument("--groups", action="store_true", help="print the groups instead of the pairs")
    p.add_argument("--limit", type=positive_int, default=100_000, help="pairs at most (default 100000)")
    add_filter_args(p, "only pairs of points matching it")
    _wait_timeout(p)
