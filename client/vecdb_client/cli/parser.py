"""The argparse tree: global connection/output options, and a helper that gives
every command a description with an "examples:" epilog."""
from __future__ import annotations

import argparse
import os
import textwrap
from typing import Any, Callable

from .context import DEFAULT_HOST, env_flag

PROG = "vecdbctl"
FORMATTER = argparse.RawDescriptionHelpFormatter


def _float_env(name: str, default: float) -> float:
    try:
        return float(os.environ.get(name, default))
    except ValueError:
        return default


def add_common_options(p: argparse.ArgumentParser, suppress: bool) -> None:
    """Connection and output options. The top-level parser holds the defaults; each
    command repeats the options with SUPPRESS defaults, so they work before or after it."""
    def d(value: Any) -> Any:
        return argparse.SUPPRESS if suppress else value

    g = p.add_argument_group("connection and output options")
    g.add_argument("--host", default=d(os.environ.get("VECDB_HOST", DEFAULT_HOST)),
                   metavar="HOST[:PORT]",
                   help=f"server address (env VECDB_HOST; default {DEFAULT_HOST})")
    g.add_argument("--api-key", default=d(os.environ.get("VECDB_API_KEY")),
                   help="sent as 'authorization: Bearer KEY' (env VECDB_API_KEY)")
    g.add_argument("--tenant", metavar="TENANT", default=d(os.environ.get("VECDB_TENANT")),
                   help="the tenant of every point command on collections created with "
                        "--tenant-field; int:N for an integer tenant (env VECDB_TENANT)")
    g.add_argument("--tls", action="store_true", default=d(env_flag("VECDB_TLS")),
                   help="TLS with the system roots (env VECDB_TLS=1)")
    g.add_argument("--ca-cert", metavar="PEM", default=d(os.environ.get("VECDB_CA_CERT")),
                   help="TLS with this CA bundle (env VECDB_CA_CERT)")
    g.add_argument("--client-cert", metavar="PEM", default=d(None),
                   help="client certificate for mutual TLS (with --client-key)")
    g.add_argument("--client-key", metavar="PEM", default=d(None),
                   help="client private key for mutual TLS")
    g.add_argument("--timeout", type=positive_float, metavar="S",
                   default=d(_float_env("VECDB_TIMEOUT", 30.0)),
                   help="deadline of each call in seconds (env VECDB_TIMEOUT; default 30)")
    g.add_argument("--connect-timeout", type=positive_float, metavar="S", default=d(5.0),
                   help="how long to wait for the server to answer at first (default 5)")
    g.add_argument("-o", "--output", choices=("table", "json"),
                   default=d(os.environ.get("VECDB_OUTPUT", "table")),
                   help="table (rich on a terminal, plain text otherwise) or one JSON "
                        "document on stdout (env VECDB_OUTPUT; default table)")
    g.add_argument("-q", "--quiet", action="store_true", default=d(False),
                   help="no progress or messages on stderr")
    g.add_argument("--debug", action="store_true", default=d(False),
                   help="show the traceback of an error")


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def positive_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number, got {text!r}")
    return value


def command(sub: Any, name: str, summary: str, examples: str,
            func: Callable | None = None, details: str = "") -> argparse.ArgumentParser:
    """A sub-command whose --help shows its examples; ``func(ctx, args)`` runs it."""
    description = summary + (("\n\n" + textwrap.dedent(details).strip()) if details else "")
    p = sub.add_parser(name, help=summary, description=description,
                       epilog="examples:\n" + textwrap.indent(
                           textwrap.dedent(examples).strip(), "  "),
                       formatter_class=FORMATTER)
    if func is not None:
        add_common_options(p, suppress=True)
        p.set_defaults(func=func, parser=p)
    return p


def group(sub: Any, name: str, summary: str, examples: str) -> Any:
    """A command with sub-commands of its own (``collections list`` ...)."""
    p = command(sub, name, summary, examples)
    return p.add_subparsers(title="commands", dest=f"{name}_command", required=True,
                            metavar="COMMAND")


def build_parser() -> argparse.ArgumentParser:
    from . import (commands_collections, commands_map, commands_points, commands_snapshots,
                   commands_tenants, commands_transfer, completion)
    parser = argparse.ArgumentParser(
        prog=PROG, formatter_class=FORMATTER,
        description="Admin CLI for the vecdb vector database server.",
        epilog=textwrap.dedent("""\
            examples:
              vecdbctl status
              vecdbctl --host db.internal:50051 collections list -o json
              vecdbctl collections create docs --dim 384 --metric cosine
              vecdbctl import docs vectors.npy --id-prefix doc
              vecdbctl search docs --vector-file query.npy --k 5
              vecdbctl points count docs --filter '{"key": "lang", "match": "en"}'
              vecdbctl payload-index create docs lang keyword --wait
              vecdbctl snapshot create docs --tar
              eval "$(vecdbctl completion bash)"

            exit status: 0 success, 1 server, connection or data error, 2 usage error.
            Run 'vecdbctl COMMAND --help' for the examples of each command."""))
    add_common_options(parser, suppress=False)
    sub = parser.add_subparsers(title="commands", dest="command", required=True,
                                metavar="COMMAND")
    for module in (commands_collections, commands_points, commands_transfer, commands_snapshots,
                   commands_tenants, commands_map, completion):
        module.register(sub)
    from . import commands_analytics, commands_cluster  # kmeans, outliers, duplicates; cluster
    commands_analytics.register(sub)
    commands_cluster.register(sub)
    return parser
