"""map: a 2-D picture of a sample of a collection, coloured by a payload field."""
from __future__ import annotations

import re
from typing import Any

import numpy as np

from .context import CliError, Context, UsageError
from .output import Result, kv_table
from .parser import command, positive_int
from .plot import draw, project
from .progress import Progress

SCAN_PAGE = 5000


def parse_size(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"(\d+)[xX](\d+)", text.strip())
    if not m or not (100 <= int(m.group(1)) <= 8000 and 100 <= int(m.group(2)) <= 8000):
        raise UsageError(f"--size expects WIDTHxHEIGHT in pixels (100..8000), got {text!r}")
    return int(m.group(1)), int(m.group(2))


def sample_ids(ctx: Context, collection: str, n: int, seed: int, quiet: bool) -> list[str]:
    """A uniform sample of ``n`` ids: reservoir sampling over an id-only scroll."""
    rng = np.random.default_rng(seed)
    total = ctx.client.count(collection)
    reservoir: list[str] = []
    seen, cursor = 0, None
    with Progress("scanned", total, enabled=not quiet and total > n) as bar:
        while True:
            page = ctx.client.scroll(collection, SCAN_PAGE, cursor, False, False)
            for p in page.points:
                if len(reservoir) < n:
                    reservoir.append(p.id)
                else:
                    j = int(rng.integers(0, seen + 1))
                    if j < n:
                        reservoir[j] = p.id
                seen += 1
            bar.advance(len(page.points))
            cursor = page.next_cursor
            if cursor is None:
                return reservoir


def field_value(payload: dict | None, path: str) -> Any:
    """A payload field; dots reach into nested objects (``meta.lang``)."""
    value: Any = payload
    for key in path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(key)
    return value


def kmeans_labels(ctx: Context, collection: str, x: np.ndarray, k: int, seed: int) -> list[str]:
    """Each row's cluster: the nearest centroid of a server-side k-means (nothing written)."""
    job = ctx.client.cluster(collection, k, seed=seed, typical=0, wait=True, timeout=3600)
    c = job.result.centroids
    if ctx.client.describe_collection(collection).config.metric == "cosine":
        x = x / np.maximum(np.linalg.norm(x, axis=1, keepdims=True), 1e-30)
    d = (x * x).sum(1)[:, None] - 2 * x @ c.T + (c * c).sum(1)[None, :]
    return [f"cluster {i}" for i in np.argmin(d, axis=1).tolist()]


def cmd_map(ctx: Context, args: Any) -> Result:
    size = parse_size(args.size)
    if args.kmeans is not None and args.color_by is not None:
        raise UsageError("give --color-by or --kmeans, not both")
    ids = sample_ids(ctx, args.collection, args.sample, args.seed, args.quiet)
    if len(ids) < 2:
        raise CliError(f"collection {args.collection} has {len(ids)} points; a map needs 2")
    points = []
    for i in range(0, len(ids), SCAN_PAGE):
        points += ctx.client.get(args.collection, ids[i:i + SCAN_PAGE], with_vectors=True,
                                 with_payload=args.color_by is not None)
    points = [p for p in points if p.vector is not None]  # named fields only: not on the map
    if len(points) < 2:
        raise CliError(f"collection {args.collection}: {len(points)} sampled points carry the "
                       "primary vector; a map needs 2")
    x = np.stack([p.vector for p in points])
    xy = project(x, args.method, args.seed)
    values = None if args.color_by is None else [field_value(p.payload, args.color_by)
                                                 for p in points]
    if args.kmeans is not None:  # colour by the nearest of k server-side k-means centroids
        values = kmeans_labels(ctx, args.collection, x, args.kmeans, args.seed)
        args.color_by = f"k-means cluster (k={args.kmeans})"
    title = f"{args.collection}: {len(points)} points, {args.method.upper()}"
    draw(xy, values, args.color_by, args.out, title, size)
    data = {"collection": args.collection, "out": args.out, "points": len(points),
            "method": args.method, "color_by": args.color_by,
            "width": size[0], "height": size[1]}
    return Result(data, kv_table(data, "map written"))


def register(sub: Any) -> None:
    p = command(sub, "map", "draw a 2-D projection of a sample of a collection to a PNG", """
        vecdbctl map docs --out map.png
        vecdbctl map docs --out map.png --color-by category --sample 2000
        vecdbctl map docs --out map.png --color-by meta.year --size 1600x1200
        vecdbctl map docs --out map.png --method umap     # needs pip install umap-learn
        vecdbctl map docs --out map.png --kmeans 6        # colour by k-means cluster
        vecdbctl map docs --out map.png --color-by topic  # after kmeans --write-label topic""",
                cmd_map, details="""
        Samples up to --sample points uniformly (an id-only scan, then their
        vectors), projects them with PCA (or UMAP) and colours them by a payload
        field: numbers get a colour bar, other values a legend.""")
    p.add_argument("collection", help="collection or alias")
    p.add_argument("--out", required=True, metavar="PNG", help="where to write the PNG")
    p.add_argument("--sample", type=positive_int, default=5000,
                   help="points to draw at most (default 5000)")
    p.add_argument("--color-by", metavar="FIELD", help="payload field (dots for nesting)")
    p.add_argument("--kmeans", type=positive_int, metavar="K",
                   help="colour by cluster: k-means with K clusters on the server (nothing "
                        "written; a label written by 'kmeans --write-label' is --color-by)")
    p.add_argument("--method", choices=("pca", "umap"), default="pca", help="default pca")
    p.add_argument("--size", default="1000x800", metavar="WxH",
                   help="image size in pixels (default 1000x800)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0)")
