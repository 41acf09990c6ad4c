"""Real servers for integration tests: in-process on 127.0.0.1:0 and as a subprocess
started through the ``vecdb-server`` console script. Nothing is mocked."""
from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import numpy as np

from vecdb import DatabaseOptions
from vecdb_client import Client
from vecdb_server.app import ServerApp
from vecdb_server.config import ServerConfig

ROOT = Path(__file__).resolve().parents[2]
SRC_PATHS = [str(ROOT), str(ROOT / "server"), str(ROOT / "client")]
LISTENING = re.compile(r"listening on ([\d.]+):(\d+)")


def make_config(data_dir: Path, **overrides) -> ServerConfig:
    engine = overrides.pop("engine", DatabaseOptions())
    overrides.setdefault("metrics_port", 0)  # never the fixed default: servers run side by side
    # the 1% recall sampler re-runs a search exactly: tests counting searches would be flaky
    overrides.setdefault("recall_sample_rate", 0.0)
    return ServerConfig(host="127.0.0.1", port=0, data_dir=str(data_dir), max_workers=8,
                        grace_period_s=5.0, engine=engine, **overrides)


class InProcessServer:
    """A ServerApp on an ephemeral port, open and SERVING."""

    def __init__(self, data_dir: Path, **overrides):
        self.app = ServerApp(make_config(data_dir, **overrides))
        self.port = self.app.start()
        self.app.open_in_background()
        assert self.app.ready.wait(30) and self.app.engine.open_error is None
        self.target = f"127.0.0.1:{self.port}"

    def client(self, **kw) -> Client:
        kw.setdefault("timeout", 20)
        return Client(self.target, **kw)

    def stop(self) -> None:
        self.app.stop(grace=2)


class ServerProcess:
    """``vecdb-server`` in a subprocess; stderr goes to a log file we can read."""

    def __init__(self, data_dir: Path, *args: str, env: dict | None = None,
                 wait_serving: bool = True):
        self.data_dir = data_dir
        self.log_path = data_dir.parent / f"server-{uuid.uuid4().hex[:6]}.log"
        script = shutil.which("vecdb-server", path=str(Path(sys.executable).parent))
        assert script, "the vecdb-server console script is not installed in this venv"
        full_env = {**os.environ, "PYTHONPATH": os.pathsep.join(SRC_PATHS), **(env or {})}
        cmd = [script, "--port", "0", "--metrics-port", "0", "--data-dir", str(data_dir), *args]
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(cmd, stdout=self._log, stderr=subprocess.STDOUT,
                                     env=full_env)
        self.port = self._wait_port()
        self.target = f"127.0.0.1:{self.port}"
        if wait_serving:
            with self.client() as c:
                c.wait_ready(30)

    def log(self) -> str:
        return self.log_path.read_text()

    def _wait_port(self, timeout: float = 30) -> int | None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = LISTENING.search(self.log())
            if m:
                return int(m.group(2))
            if self.proc.poll() is not None:
                return None
            time.sleep(0.05)
        raise TimeoutError(f"server did not start:\n{self.log()}")

    def client(self, **kw) -> Client:
        kw.setdefault("timeout", 20)
        return Client(self.target, **kw)

    def kill(self) -> None:
        self.proc.kill()
        self.proc.wait()

    def terminate(self, timeout: float = 30) -> int:
        self.proc.send_signal(signal.SIGTERM)
        return self.proc.wait(timeout)

    def close(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


def rand(n: int, dim: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
