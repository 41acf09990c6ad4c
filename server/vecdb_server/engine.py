"""EngineHolder: owns the Database across the server's life cycle.

The gRPC server starts before the database is open so health checks can say
NOT_SERVING while the WAL is recovered; until open() finishes, and again once
shutdown began, data calls get UNAVAILABLE. Every data call runs inside
``session()`` so close() can wait for in-flight calls before checkpointing.
Thread-safe.
"""
from __future__ import annotations

import contextlib
import logging
import threading
import time
from typing import Callable, Iterator

from vecdb import Database, DatabaseOptions
from vecdb.errors import Unavailable

log = logging.getLogger("vecdb_server.engine")


class EngineHolder:
    def __init__(self, data_dir: str, options: DatabaseOptions):
        self.data_dir, self.options = data_dir, options
        self._db: Database | None = None
        self._closing = False
        self._active = 0
        self._cond = threading.Condition()
        self.open_error: BaseException | None = None
        self.started_at = time.time()  # process start, for GetServerInfo
        self.on_open: list[Callable[[Database], None]] = []  # hooks run once it is open
        self.gpu = None  # a vecdb.gpu.GpuContext to open with (None: from the options)

    def open(self) -> Database:
        """Open (and recover) the database; blocking. Stores and re-raises a failure."""
        t0 = time.monotonic()
        log.info("opening data dir %s (recovering WAL)", self.data_dir)
        try:
            db = Database.open(self.data_dir, self.options, self.gpu)
        except BaseException as exc:
            self.open_error = exc
            raise
        for hook in self.on_open:
            hook(db)
        with self._cond:
            self._db = db
        log.info("database ready in %.2fs", time.monotonic() - t0)
        return db

    @property
    def ready(self) -> bool:
        return self._db is not None and not self._closing

    @contextlib.contextmanager
    def session(self) -> Iterator[Database]:
        with self._cond:
            if self._closing:
                raise Unavailable("the server is shutting down; retry against another node "
                                  "or after restart")
            if self._db is None:
                raise Unavailable("the database is still recovering its write-ahead log; "
                                  "retry shortly")
            self._active += 1
            db = self._db
        try:
            yield db
        finally:
            with self._cond:
                self._active -= 1
                self._cond.notify_all()

    def close(self, wait_s: float = 10.0) -> None:
        """Refuse new calls, wait up to wait_s for running ones, then checkpoint and close."""
        with self._cond:
            self._closing = True
            if not self._cond.wait_for(lambda: self._active == 0, timeout=wait_s):
                log.warning("%d calls still running after %.1fs; closing anyway",
                            self._active, wait_s)
            db, self._db = self._db, None
        if db is not None:
            t0 = time.monotonic()
            db.close()
            log.info("database checkpointed and closed in %.2fs", time.monotonic() - t0)
