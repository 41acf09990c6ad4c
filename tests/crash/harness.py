"""Run a crash-test child until a random moment, then SIGKILL it."""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def run_child_and_kill(script: str, args: list[str], rng: random.Random,
                       low: float = 0.05, high: float = 1.2) -> None:
    """Start ``script`` (in this folder), wait for its "ready" line, let it work for a
    random while, SIGKILL it. Fails if it could not start or died on its own."""
    child = subprocess.Popen([sys.executable, os.path.join(HERE, script), *args],
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline()
        assert line.strip() == "ready", f"child failed to start: {line!r} {child.stderr.read()}"
        time.sleep(rng.uniform(low, high))
        assert child.poll() is None, f"child died on its own: {child.stderr.read()}"
    finally:
        child.send_signal(signal.SIGKILL)
        child.wait()
    assert child.returncode == -signal.SIGKILL


def last_ack(path: str) -> int:
    """The last step number a child recorded as acknowledged (-1: none)."""
    words = open(path).read().split() if os.path.exists(path) else []
    return int(words[-1]) if words else -1
