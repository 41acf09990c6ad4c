"""Which points a command acts on: ids (arguments, --ids, --ids-file) and payload
filters (--filter JSON, --filter-file FILE), plus the JSON-object options of
``points update``. Everything here is checked before connecting: bad input is a
usage error (exit 2); a filter the server rejects is exit 1 (the server's message
names the place in the filter, e.g. filter.must[0].range.gte)."""
from __future__ import annotations

import json
import sys
from typing import Any

from .context import CliError, UsageError

FILTER_HELP = ('payload filter as JSON, e.g. \'{"key": "lang", "match": "en"}\' '
               '(see docs/server_api.md, "Filters")')


def add_filter_args(p: Any, what: str = "only the points matching it") -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--filter", metavar="JSON", help=f"{FILTER_HELP}: {what}")
    g.add_argument("--filter-file", metavar="FILE",
                   help="the --filter JSON from a file ('-' = stdin)")


def parse_json_object(text: str, source: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{source} is not valid JSON ({exc.msg} at line {exc.lineno} "
                         f"column {exc.colno})") from None
    if not isinstance(value, dict):
        raise UsageError(f"{source} must be a JSON object, got {type(value).__name__}")
    return value


def read_filter(args: Any) -> dict[str, Any] | None:
    """The filter of --filter / --filter-file, or None; {} means no filter."""
    if args.filter is not None:
        return parse_json_object(args.filter, "--filter")
    path = args.filter_file
    if path is None:
        return None
    if path == "-":
        return parse_json_object(sys.stdin.read(), "--filter-file -")
    try:
        with open(path, encoding="utf-8") as f:
            text = f.read()
    except OSError as exc:
        raise CliError(f"--filter-file {path}: {exc.strerror}") from None
    return parse_json_object(text, f"--filter-file {path}")


def read_ids(args: Any, required: bool = True) -> list[str]:
    ids = list(args.ids or ())
    if args.ids_file:
        try:
            with open(args.ids_file, encoding="utf-8") as f:
                ids += [line.strip() for line in f if line.strip()]
        except OSError as exc:
            raise CliError(f"{args.ids_file}: {exc.strerror}") from None
    if required and not ids:
        raise UsageError("give ids as arguments or with --ids-file")
    return ids


def read_selection(args: Any, ids_flag: str) -> tuple[list[str] | None, dict | None]:
    """Exactly one of ids (``ids_flag`` and --ids-file) or a non-empty filter."""
    flt = read_filter(args) or None
    ids = read_ids(args, required=False)
    if bool(ids) == (flt is not None):
        raise UsageError(f"give either ids ({ids_flag} or --ids-file) or a non-empty "
                         "--filter/--filter-file, not both or neither")
    return (ids or None), flt
