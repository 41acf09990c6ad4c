"""vecdbctl: the admin command line of vecdb, built on the client SDK.

Exit status: 0 success; 1 server, connection or data error (one line on stderr,
a traceback only with --debug); 2 usage error (argparse's usage + message)."""
from __future__ import annotations

import sys
import traceback
from typing import Sequence

from .context import CliError, Context, UsageError
from .output import render
from .parser import PROG, build_parser

__all__ = ["main", "build_parser", "CliError", "UsageError"]


def _fail(message: str, debug: bool) -> int:
    if debug:
        traceback.print_exc()
    line = " ".join(str(message).split())
    print(f"{PROG}: error: {line}", file=sys.stderr, flush=True)
    return 1


def main(argv: Sequence[str] | None = None) -> int:
    from vecdb_client.errors import VecdbClientError
    parser = build_parser()
    args = parser.parse_args(argv)  # usage errors exit 2 here
    ctx = None
    try:
        ctx = Context(args)
        result = args.func(ctx, args)
        if result is not None:
            render(result, ctx.json)
        return 0
    except UsageError as exc:
        getattr(args, "parser", parser).error(str(exc))  # exits 2
    except CliError as exc:
        return _fail(str(exc), args.debug)
    except VecdbClientError as exc:
        return _fail(str(exc), args.debug)
    except KeyboardInterrupt:
        _fail("interrupted", args.debug)
        return 130
    except BrokenPipeError:
        sys.stderr.close()  # e.g. `vecdbctl ... | head`: nothing more to say
        return 1
    except Exception as exc:  # noqa: BLE001 - the one place that turns bugs into one line
        return _fail(f"unexpected {type(exc).__name__}: {exc} (run with --debug for "
                     "the traceback)", args.debug)
    finally:
        if ctx is not None:
            ctx.close()
    return 2
