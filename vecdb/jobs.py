"""Background jobs of a Database (k-means clustering: analytics/kmeans.py; re-embedding:
reembed.py) and the cap on concurrent analytics work.

A :class:`Job` runs its ``work()`` in one daemon thread; its state (running | done |
failed) and error message live in memory (describe shows them) and a restart forgets
them. ``stop()`` asks it to end (the database is closing) and waits for the thread.
"""
from __future__ import annotations

import logging
import threading
from typing import Callable

from .errors import ResourceExhausted, VecdbError

log = logging.getLogger("vecdb")


class Stopped(Exception):
    """Raised inside ``work()`` to end a job early: it ends as failed with this message."""


class Job:
    def __init__(self, db, thread_name: str):
        self.db, self.thread_name = db, thread_name
        self.state, self.error = "running", ""
        self.failure: VecdbError | None = None  # the engine error a failed job raised
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def work(self) -> None:
        raise NotImplementedError

    def what(self) -> str:
        """The job in log lines, e.g. "clustering docs"."""
        raise NotImplementedError

    def finish(self) -> None:
        """Runs last, however the job ended."""

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run, name=self.thread_name, daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 30.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the thread (if started); True once the job has ended."""
        if self._thread is not None:
            self._thread.join(timeout)
        return self.state != "running"

    def check_closing(self) -> None:
        if self._stop.is_set() or self.db._closed:
            raise Stopped("the database is closing")

    def run(self) -> None:
        try:
            self.work()
            self.state = "done"
        except Stopped as exc:
            self.state, self.error = "failed", str(exc)
            log.warning("%s stopped: %s", self.what(), exc)
        except VecdbError as exc:
            self.state, self.error, self.failure = "failed", exc.message, exc
            log.warning("%s failed: %s", self.what(), exc.message)
        except Exception as exc:  # noqa: BLE001 - reported in describe, never kills the server
            self.state, self.error = "failed", f"internal error ({type(exc).__name__}: {exc})"
            log.exception("%s failed", self.what())
        finally:
            self.finish()


class Slots:
    """At most ``limit`` analytics operations at once (k-means jobs while they run,
    outliers calls, duplicates scans until their stream ends); 0 = no limit. Each
    uses every core and memory in proportion to the collection, so more at once only
    slows them all down and risks the server's memory."""

    def __init__(self, limit: int):
        self.limit, self.running = limit, 0
        self._lock = threading.Lock()

    def take(self, what: str) -> Callable[[], None]:
        """A slot for ``what`` (ResourceExhausted when none is free); returns the
        function that gives it back (calling it twice gives back once)."""
        with self._lock:
            if self.limit and self.running >= self.limit:
                raise ResourceExhausted(
                    f"{what}: {self.running} analytics operations (k-means jobs, outliers, "
                    f"duplicates) are running, the most max_analytics_jobs={self.limit} allows; "
                    "retry when one has finished", "max_analytics_jobs")
            self.running += 1
        done = threading.Event()

        def give_back() -> None:
            with self._lock:
                if not done.is_set():
                    done.set()
                    self.running -= 1
        return give_back


class Held:
    """An iterator that gives its analytics slot back when it ends, is closed, or is
    dropped unread (a streamed answer whose client went away)."""

    def __init__(self, it, give_back: Callable[[], None]):
        self._it, self._give_back = it, give_back

    def __iter__(self) -> "Held":
        return self

    def __next__(self):
        try:
            return next(self._it)
        except BaseException:
            self.close()
            raise

    def close(self) -> None:
        close = getattr(self._it, "close", None)
        if close is not None:
            close()
        self._give_back()

    def __del__(self) -> None:
        self._give_back()
