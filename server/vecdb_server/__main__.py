"""``vecdb-server``: parse the configuration, wire the object graph, serve until a signal.

Exit status: 0 after a clean shutdown (SIGTERM/SIGINT: stop accepting, let
in-flight calls finish within the grace period, checkpoint, close); 1 when
the port cannot be bound or the database cannot be opened (e.g. another
server holds the data directory); 2 for a bad configuration. A second signal
during shutdown exits at once (acknowledged writes are safe in the WAL).
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import threading
from typing import Callable, Sequence

from .config import ConfigError, ServerConfig, describe, load_config
from .malloc import limit_arenas

log = logging.getLogger("vecdb_server")


def setup_logging(level: str, fmt: str = "text") -> None:
    from .logs import setup_logging as _setup

    _setup(level, fmt)


def _install_signals(on_signal: Callable[[], None]) -> None:
    hits = {"n": 0}

    def handler(signum: int, frame: object) -> None:
        hits["n"] += 1
        if hits["n"] > 1:
            log.warning("second %s: exiting now without a checkpoint", signal.Signals(signum).name)
            os._exit(1)
        log.info("%s received: shutting down", signal.Signals(signum).name)
        on_signal()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, handler)


def run_threaded(cfg: ServerConfig) -> int:
    from .app import ServerApp

    app = ServerApp(cfg)
    stop = threading.Event()
    _install_signals(stop.set)
    try:
        app.start()
    except (OSError, RuntimeError) as exc:  # port taken or not bindable
        log.error("%s", exc)
        return 1
    app.open_in_background()
    while not stop.wait(0.2):
        if app.engine.open_error is not None:
            break
    app.stop()
    return 1 if app.engine.open_error is not None else 0


async def run_aio(cfg: ServerConfig) -> int:
    from .aio_app import AioServerApp

    app = AioServerApp(cfg)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    _install_signals(lambda: loop.call_soon_threadsafe(stop.set))
    try:
        await app.start()
    except (OSError, RuntimeError) as exc:  # port taken or not bindable
        log.error("%s", exc)
        return 1
    app.open_in_background()
    while not stop.is_set() and app.engine.open_error is None:
        try:
            await asyncio.wait_for(stop.wait(), 0.2)
        except asyncio.TimeoutError:
            pass
    await app.stop()
    return 1 if app.engine.open_error is not None else 0


def main(argv: Sequence[str] | None = None) -> None:
    from .guard import startup_check

    try:
        cfg = load_config(argv)
        startup_check(cfg)  # key file, TLS files, no keys on a non-loopback host
    except ConfigError as exc:
        print(f"vecdb-server: {exc}", file=sys.stderr)
        sys.exit(2)
    setup_logging(cfg.log_level, cfg.log_format)
    limit_arenas()  # freed request buffers are reused across threads (malloc.py)
    log.info("vecdb-server starting: %s", describe(cfg))
    rc = run_threaded(cfg) if cfg.server_mode == "threaded" else asyncio.run(run_aio(cfg))
    logging.shutdown()
    sys.exit(rc)


if __name__ == "__main__":
    main()
