"""Progress with rate and ETA on stderr: a rich bar on a terminal, otherwise a plain
line now and then ("imported 50000/100000 (12345/s, ETA 4s)")."""
from __future__ import annotations

import sys
import time
from typing import Any

from .context import optional


def fmt_duration(seconds: float) -> str:
    seconds = int(round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class Progress:
    """``advance(n)`` after each unit of work; ``close()`` at the end (also on error).

    verb: the word of the plain lines ("imported", "exported", "scanned").
    total: None when unknown (no ETA then). Plain lines come every ``interval``
    seconds and at each tenth of the total, and once at the end."""

    def __init__(self, verb: str, total: int | None, *, enabled: bool = True,
                 interval: float = 1.0, stream: Any = None):
        self.verb, self.total, self.done = verb, total, 0
        self.stream = stream or sys.stderr
        self.enabled = enabled
        self.interval = interval
        self.start = self._last = time.monotonic()
        self._last_tenth = 0
        self._rich = None
        self._task = None
        if enabled and self.stream.isatty():
            self._start_rich()

    def _start_rich(self) -> None:
        rp = optional("rich.progress")
        console = optional("rich.console")
        if rp is None or console is None:
            return
        self._rich = rp.Progress(
            rp.TextColumn("{task.description}"), rp.BarColumn(), rp.MofNCompleteColumn(),
            rp.TaskProgressColumn(), rp.TextColumn("{task.fields[rate]}"),
            rp.TextColumn("ETA"), rp.TimeRemainingColumn(),
            console=console.Console(file=self.stream), transient=False)
        self._rich.start()
        self._task = self._rich.add_task(self.verb, total=self.total, rate="")

    @property
    def rate(self) -> float:
        elapsed = time.monotonic() - self.start
        return self.done / elapsed if elapsed > 0 else 0.0

    def line(self) -> str:
        rate = self.rate
        if self.total is None:
            return f"{self.verb} {self.done} ({rate:.0f}/s)"
        left = max(0, self.total - self.done)
        eta = fmt_duration(left / rate) if rate > 0 else "?"
        return f"{self.verb} {self.done}/{self.total} ({rate:.0f}/s, ETA {eta})"

    def advance(self, n: int) -> None:
        self.done += n
        if not self.enabled:
            return
        if self._rich is not None:
            self._rich.update(self._task, completed=self.done, rate=f"{self.rate:,.0f}/s")
            return
        now = time.monotonic()
        tenth = 10 * self.done // self.total if self.total else 0
        if now - self._last >= self.interval or tenth > self._last_tenth:
            self._last, self._last_tenth = now, tenth
            self._print()

    def _print(self) -> None:
        print(self.line(), file=self.stream, flush=True)

    def close(self) -> None:
        if not self.enabled:
            return
        if self._rich is not None:
            self._rich.stop()
            self._rich = None
        elif self.done and (self.total is None or self._last_tenth < 10):
            self._print()

    def __enter__(self) -> "Progress":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
