"""Real parts for cluster tests: Debian's etcd-server in a temp dir on loopback ports, and
vecdb-server node processes joined to it. Nothing is mocked."""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from vecdb_client import Client

ROOT = Path(__file__).resolve().parents[2]
SRC_PATHS = [str(ROOT), str(ROOT / "server"), str(ROOT / "client")]
SECRET = "test-cluster-secret"
TTL = 2  # node_ttl_s: failover within ~TTL + maintenance (0.3 s) + a few RPCs


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def etcd_binary() -> str:
    path = shutil.which("etcd") or "/usr/bin/etcd"
    assert os.path.exists(path), ("etcd is not installed: scripts/test.sh installs Debian's "
                                  "etcd-server (apt-get install -y etcd-server)")
    return path


class EtcdMember:
    """One etcd member process; start() after kill() reopens the same data dir."""

    def __init__(self, workdir: Path, name: str, data_dir: Path):
        self.name, self.dir, self.log_path = name, data_dir, workdir / "etcd.log"
        self.client_port, self.peer_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.client_port}"
        self.peer = f"http://127.0.0.1:{self.peer_port}"
        self.proc: subprocess.Popen | None = None

    def launch(self, initial_cluster: str) -> None:
        self.proc = subprocess.Popen(
            [etcd_binary(), "--name", self.name, "--data-dir", str(self.dir),
             "--listen-client-urls", self.url, "--advertise-client-urls", self.url,
             "--listen-peer-urls", self.peer, "--initial-advertise-peer-urls", self.peer,
             "--initial-cluster", initial_cluster],
            stdout=open(self.log_path, "a"), stderr=subprocess.STDOUT)

    def wait_healthy(self) -> None:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(self.url + "/health", timeout=1).read()
                return
            except OSError:
                time.sleep(0.1)
        raise TimeoutError(f"etcd member {self.name} did not start")

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        if self.alive():
            self.proc.kill()
            self.proc.wait()


class Etcd:
    """An etcd cluster of ``members`` (one by default) on loopback; ``url`` lists every
    member's client URL. stop()/start() keep its data (a restart, not a wipe)."""

    def __init__(self, workdir: Path, members: int = 1):
        self.dir = workdir / "etcd"
        self.members = [EtcdMember(workdir, "default", self.dir)] if members == 1 else [
            EtcdMember(workdir, f"m{i}", workdir / f"etcd-m{i}") for i in range(members)]
        self.url = ",".join(m.url for m in self.members)
        self.start()

    def start(self) -> None:
        """Start every member that is not running (all at once: a member needs a quorum
        to become healthy)."""
        initial = ",".join(f"{m.name}={m.peer}" for m in self.members)
        down = [m for m in self.members if not m.alive()]
        for m in down:
            m.launch(initial)
        for m in down:
            m.wait_healthy()

    def leader(self) -> EtcdMember:
        """The member that leads now, as the running members report it."""
        by_id, leaders = {}, set()
        for m in self.members:
            if m.alive():
                req = urllib.request.Request(m.url + "/v3/maintenance/status", b"{}")
                with urllib.request.urlopen(req, timeout=2) as r:
                    out = json.loads(r.read())
                by_id[out["header"]["member_id"]] = m
                leaders.add(out["leader"])
        assert len(leaders) == 1 and next(iter(leaders)) in by_id, "no single leader"
        return by_id[leaders.pop()]

    def kill(self) -> None:
        for m in self.members:
            m.kill()

    def close(self) -> None:
        self.kill()


class Node:
    """One vecdb-server cluster node; restart() reopens the same data dir and port."""

    def __init__(self, workdir: Path, node_id: str, etcd_url: str, *extra: str,
                 ready: bool = True):
        self.id, self.etcd_url, self.extra = node_id, etcd_url, extra
        self.data_dir = workdir / node_id
        self.port = free_port()
        self.target = f"127.0.0.1:{self.port}"
        self.log_path = workdir / f"{node_id}.log"
        self.proc: subprocess.Popen | None = None
        self.start(ready)

    def start(self, ready: bool = True) -> None:
        """Launch the process; with ``ready``, wait until it answers health checks."""
        script = shutil.which("vecdb-server", path=str(Path(sys.executable).parent))
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(SRC_PATHS),
               "VECDB_CLUSTER_SECRET": SECRET}
        cmd = [script, "--port", str(self.port), "--metrics-port", "-1",
               "--data-dir", str(self.data_dir), "--cluster-etcd", self.etcd_url,
               "--node-id", self.id, "--node-ttl-s", str(TTL), "--grace-period-s", "2",
               *self.extra]
        self.proc = subprocess.Popen(cmd, stdout=open(self.log_path, "a"),
                                     stderr=subprocess.STDOUT, env=env)
        if ready:
            with Client(self.target, timeout=10) as c:  # health needs no API key
                c.wait_ready(60)

    def kill(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()

    def stop_signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def restart(self) -> None:
        self.kill()
        self.start()

    def wipe(self) -> None:
        self.kill()
        shutil.rmtree(self.data_dir, ignore_errors=True)

    def log(self) -> str:
        return self.log_path.read_text()

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def close(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGCONT)
            self.proc.kill()
            self.proc.wait()


class Cluster:
    def __init__(self, workdir: Path, n: int = 3, zones: list[str] | None = None,
                 extra: tuple[str, ...] = (), etcd_members: int = 1):
        self.etcd = Etcd(workdir, etcd_members)
        self.nodes = [Node(workdir, f"n{i}", self.etcd.url,
                           *(["--zone", zones[i]] if zones else []), *extra) for i in range(n)]
        self.client_kw: dict = {}  # e.g. {"api_key": ...} for every client below

    def add_node(self, node_id: str, *extra: str, ready: bool = True) -> Node:
        """Start one more node on the same etcd (a node joining)."""
        node = Node(self.etcd.dir.parent, node_id, self.etcd.url, *extra, ready=ready)
        self.nodes.append(node)
        return node

    def client(self, nodes: list[Node] | None = None, **kw) -> Client:
        kw = {**self.client_kw, **kw}
        kw.setdefault("timeout", 30)
        kw.setdefault("max_retries", 8)
        return Client([n.target for n in (nodes or self.nodes) if n.alive()], **kw)

    def node(self, node_id: str) -> Node:
        return next(n for n in self.nodes if n.id == node_id)

    def wait_in_sync(self, collection: str, timeout: float = 60) -> dict:
        """Until every shard has all its replicas in sync with equal point counts."""
        deadline, status = time.monotonic() + timeout, None
        while time.monotonic() < deadline:
            try:
                with self.client(timeout=5) as c:
                    status = c.cluster_status()
                shards = [s for s in status["shards"] if s["collection"] == collection]
                if shards and all(
                        all(r["in_sync"] for r in s["replicas"])
                        and len({r["points"] for r in s["replicas"]}) == 1
                        and s["replicas"][0]["points"] >= 0 for s in shards):
                    return status
            except Exception:  # noqa: BLE001 - nodes restarting: ask again
                pass
            time.sleep(0.2)
        raise AssertionError(f"{collection} not in sync after {timeout} s: {status}")

    def close(self) -> None:
        for n in self.nodes:
            n.close()
        self.etcd.close()
