"""import and export: streamed in chunks, with progress (rate, ETA) on stderr."""
from __future__ import annotations

import os
import time
from typing import Any

from .context import CliError, Context
from .io_formats import (READ_FORMATS, WRITE_FORMATS, Chunk, detect_format, open_reader,
                         open_writer)
from .output import Result, kv_table, point_dict
from .parser import command, positive_float, positive_int
from .progress import Progress
from .selection import add_filter_args, read_filter

TEXT_BATCH = 128  # texts per upsert: the server embeds them within the call's deadline
TEXT_TIMEOUT_S = 300.0


def existing_ids(client: Any, collection: str, ids: list[str]) -> set[str]:
    return {p.id for p in client.get(collection, ids, with_vectors=False, with_payload=False)}


def split_text_chunk(chunk: Chunk, batch: int | None) -> list[Chunk]:
    """Text-only chunks in pieces of TEXT_BATCH (or --batch when given): embedding is
    the slow part, so smaller calls keep each under its deadline and the bar moving."""
    size = batch or TEXT_BATCH
    if chunk.vectors is not None or len(chunk.ids) <= size:
        return [chunk]
    return [chunk.select(list(range(i, min(i + size, len(chunk.ids)))))
            for i in range(0, len(chunk.ids), size)]


def upsert_chunk(ctx: Context, collection: str, chunk: Chunk, done: int,
                 ttl: float | None) -> None:
    from vecdb_client.errors import VecdbClientError
    # embedding is the slow part (the first call also loads the model): text-only
    # chunks get at least TEXT_TIMEOUT_S whatever --timeout says
    timeout = None if chunk.vectors is not None or ctx.args.timeout is None else \
        max(ctx.args.timeout, TEXT_TIMEOUT_S)
    try:
        ctx.client.upsert(collection, chunk.ids, chunk.vectors, chunk.payloads, chunk.texts,
                          ttl=ttl, timeout=timeout)
    except VecdbClientError as err:
        raise CliError(f"import stopped after {done} points: {err}; imports are idempotent, "
                       "re-run with --skip-existing to resume") from None


def check_chunk(chunk: Chunk, info: Any, args: Any, text_only: list[bool]) -> None:
    kind = chunk.vectors is None
    if text_only and text_only[0] != kind:
        raise CliError(f"{args.file}: id {chunk.ids[0]!r} " + (
            "has no 'vector' but earlier points have one" if kind else
            "has a 'vector' but earlier points are text-only") +
            "; a file holds either vectors or text-only points")
    text_only[:] = [kind]
    if chunk.vectors is None:
        if info.config.encoder is None:
            raise CliError(f"{args.file} holds text-only points (no vectors) but collection "
                           f"{args.collection} has no encoder to embed them: create it with "
                           "--encoder (e.g. --encoder minilm) or give every point a vector")
    elif chunk.vectors.shape[1] != info.dim:
        raise CliError(f"{args.file}: a vector of dimension {chunk.vectors.shape[1]} "
                       f"near id {chunk.ids[0]!r}; collection {args.collection} has "
                       f"dim {info.dim}")


def cmd_import(ctx: Context, args: Any) -> Result:
    fmt = detect_format(args.file, args.format, READ_FORMATS)
    batch = args.batch or (TEXT_BATCH if fmt == "txt" else 1000)
    reader = open_reader(args.file, fmt, batch, args.ids, args.id_prefix)
    info = ctx.client.describe_collection(args.collection)
    if reader.dim is not None and reader.dim != info.dim:
        raise CliError(f"{args.file} has {reader.dim}-dimensional vectors; collection "
                       f"{args.collection} has dim {info.dim}")
    imported = skipped = seen = 0
    start, text_only = time.monotonic(), []
    with Progress("imported", reader.total, enabled=not args.quiet) as bar:
        for chunk in reader:
            check_chunk(chunk, info, args, text_only)
            for part in split_text_chunk(chunk, args.batch):
                n = len(part.ids)
                if args.skip_existing:
                    have = existing_ids(ctx.client, args.collection, part.ids)
                    part = part.select([i for i, pid in enumerate(part.ids) if pid not in have])
                    skipped += len(have)
                if part.ids:
                    upsert_chunk(ctx, args.collection, part, seen, args.ttl)
                    imported += len(part.ids)
                seen += n
                bar.advance(n)
    seconds = round(time.monotonic() - start, 3)
    data = {"collection": args.collection, "file": args.file, "format": fmt,
            "imported": imported, "skipped": skipped, "ttl": args.ttl, "seconds": seconds,
            "rate_per_s": round(seen / seconds) if seconds else None}
    return Result(data, kv_table(data, "import done"))


def cmd_export(ctx: Context, args: Any) -> Result:
    fmt = detect_format(args.file, args.format, WRITE_FORMATS)
    flt = read_filter(args)
    client = ctx.client
    total = client.count(args.collection, filter=flt)
    part = args.file + ".part"
    writer = open_writer(part, fmt, args.with_vectors)
    exported, cursor, start = 0, None, time.monotonic()
    try:
        with Progress("exported", total, enabled=not args.quiet) as bar:
            while True:
                page = client.scroll(args.collection, args.batch, cursor, args.with_vectors,
                                     True, filter=flt)
                writer.write([point_dict(p) for p in page.points])
                exported += len(page.points)
                bar.advance(len(page.points))
                cursor = page.next_cursor
                if cursor is None:
                    break
        writer.close()
        os.replace(part, args.file)
    finally:
        if os.path.exists(part):
            writer.close()
            os.remove(part)
    seconds = round(time.monotonic() - start, 3)
    data = {"collection": args.collection, "file": args.file, "format": fmt,
            "exported": exported, "seconds": seconds}
    return Result(data, kv_table(data, "export done"))


def register(sub: Any) -> None:
    p = command(sub, "import", "load points from .npy, .fvecs, .jsonl, .parquet or .txt", """
        vecdbctl import docs vectors.npy --id-prefix doc
        vecdbctl import docs vectors.npy --ids ids.txt --batch 5000
        vecdbctl import docs base.fvecs --id-prefix sift- --skip-existing
        vecdbctl import docs points.jsonl
        vecdbctl import docs points.parquet -o json
        vecdbctl import sessions sessions.jsonl --ttl 3600   # gone after an hour
        vecdbctl import notes notes.txt                      # one text per line (encoder)""",
                cmd_import, details="""
        .npy/.fvecs hold only vectors: name the ids with --ids FILE (one per line,
        in row order) or generate them with --id-prefix (PREFIX0, PREFIX1, ...).
        .jsonl: one {"id", "vector", "payload", "text"} object per line.
        .parquet: columns id, vector (list of float), payload (JSON text or a
        struct) and text; payload and text are optional.
        Text-only points (a "text" and no "vector" in .jsonl/.parquet, or a .txt
        file with one text per line) go into a collection with an encoder, which
        embeds them on the server. .txt ids: --ids FILE, --id-prefix PREFIX, or by
        default FILESTEM-ROW (notes.txt: notes-0, notes-1, ...), so importing
        the same file again replaces the same points. A file holds either vectors
        or text-only points, not both.

        Files are streamed in --batch chunks; every chunk is an idempotent upsert
        by id, so an interrupted import can simply be run again, and
        --skip-existing skips the ids already stored (resume without rewriting).
        --ttl SECONDS gives every imported point that long to live (importing a
        point again without --ttl makes it permanent again).""")
    p.add_argument("collection", help="collection or alias")
    p.add_argument("file")
    p.add_argument("--format", choices=sorted(set(READ_FORMATS.values())),
                   help="default: from the file extension")
    p.add_argument("--ids", metavar="FILE",
                   help="ids for .npy/.fvecs/.txt rows, one per line")
    p.add_argument("--id-prefix", metavar="PREFIX",
                   help="generate ids PREFIX<row> for .npy/.fvecs/.txt")
    p.add_argument("--batch", type=positive_int,
                   help=f"points per upsert (default 1000; {TEXT_BATCH} for text-only "
                        "points, which the server embeds)")
    p.add_argument("--skip-existing", action="store_true",
                   help="check each chunk's ids and upsert only the missing ones")
    p.add_argument("--ttl", type=positive_float, metavar="SECONDS",
                   help="seconds to live of every imported point (default: forever)")

    p = command(sub, "export", "write the points of a collection (all, or those matching a "
                "filter) to .jsonl or .parquet", """
        vecdbctl export docs docs.jsonl
        vecdbctl export docs docs.parquet --no-vectors
        vecdbctl export docs backup.jsonl && vecdbctl import docs_copy backup.jsonl
        vecdbctl export docs english.jsonl --filter '{"key": "lang", "match": "en"}'""",
                cmd_export, details="""
        Pages through the collection in id order (with --tenant, in storage
        order: docs/tenants.md; --batch points per page); the
        file appears only when the export is complete (it is written to FILE.part
        first). Rows have the shape import reads. With --filter/--filter-file only
        the matching points are written.""")
    p.add_argument("collection", help="collection or alias")
    p.add_argument("file")
    p.add_argument("--format", choices=sorted(set(WRITE_FORMATS.values())),
                   help="default: from the file extension")
    p.add_argument("--batch", type=positive_int, default=1000,
                   help="points per scroll page (default 1000)")
    p.add_argument("--no-vectors", dest="with_vectors", action="store_false",
                   help="leave out the vectors (default: included)")
    add_filter_args(p, "export only the points matching it")
