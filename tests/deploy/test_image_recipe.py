"""The image recipe without Docker: deploy/install.sh (what the Dockerfiles RUN)
into a fresh venv, then the server started exactly as the container starts it,
probed the way the kubelet probes it, and stopped the way the kubelet stops it.

The container's filesystem is emulated by a directory ROOT: container path /p
is ROOT/p. ROOT/opt/vecdb is the venv install.sh made, ROOT/etc/vecdb/vecdb.yaml
the rendered ConfigMap, ROOT/etc/vecdb-keys/api-keys.yaml the Secret,
ROOT/var/lib/vecdb the PVC, ROOT/tmp the emptyDir. When the tests run as root
the server runs as UID/GID 10001 (setpriv), for whom everything but the PVC and
/tmp is read-only, like readOnlyRootFilesystem; otherwise as the current user
with the image tree made read-only. The only deviations from the container: the
path prefix ROOT, free ports instead of 50051/9090 (rewritten in the config) and
a generated API key in place of the Secret's placeholder (which, kept as it is,
must stop the server: test_placeholder_keys_fail_closed)."""
from __future__ import annotations

import base64
import os
import re
import secrets
import shutil
import signal
import socket
import stat
import subprocess
import tempfile
import time
import urllib.request
from pathlib import Path

import grpc
import pytest
import yaml
from grpc_health.v1 import health_pb2, health_pb2_grpc

from . import _dockerfile
from ._k8s import DEPLOY, ROOT as REPO, documents, one, server_config_text, server_container

UID = GID = 10001
DOCKERFILES = ("Dockerfile", "Dockerfile.cuda")
LISTENING = re.compile(r"listening on ([\d.]+):(\d+)")
METRICS_ON = re.compile(r"metrics on ([\d.]+):(\d+)")


# --- the Dockerfiles -----------------------------------------------------------

@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerfile_runs_install_sh_and_the_server(name):
    stages = _dockerfile.parse(DEPLOY / name)
    assert len(stages) == 2, "multi-stage: build wheels, then runtime"
    build, runtime = stages
    assert any(re.search(r"(^|\s)deploy/install\.sh wheels /src /wheels\b", r)
               for r in build.all("RUN"))
    assert any(re.search(r"/tmp/install/install\.sh runtime /wheels /opt/vecdb\b", r)
               for r in runtime.all("RUN"))
    assert "deploy/install.sh deploy/constraints.txt /tmp/install/" in runtime.all("COPY")
    assert "--from=build /wheels /wheels" in runtime.all("COPY")
    if name == "Dockerfile":
        assert build.base == runtime.base == "python:3.11-slim"
    else:
        assert build.base == runtime.base == "${CUDA_BASE}"
        assert re.search(r"ARG CUDA_BASE=nvidia/cuda:12\.[\d.]+-runtime-ubuntu",
                         (DEPLOY / name).read_text())
    assert runtime.all("USER") == [f"{UID}:{GID}"]  # numeric: runAsNonRoot can verify it
    assert any('--uid "$UID"' in r and "useradd" in r for r in runtime.all("RUN"))
    assert runtime.all("ARG")[:2] == [f"UID={UID}", f"GID={GID}"]
    assert runtime.last_json("ENTRYPOINT") == ["vecdb-server"]
    assert runtime.last_json("CMD") == ["--config", "/etc/vecdb/vecdb.yaml"]
    assert runtime.all("EXPOSE") == ["50051 9090"]  # gRPC, /metrics
    env = runtime.env()
    assert env["PYTHONDONTWRITEBYTECODE"] == "1" and env["HOME"] == "/tmp"
    assert env["PATH"].startswith("/opt/vecdb/bin:")


@pytest.mark.parametrize("name", DOCKERFILES)
def test_dockerignore_sends_what_the_build_needs(name):
    """<Dockerfile>.dockerignore is an allowlist; build_context() below copies it."""
    allowed = _allowlist(DEPLOY / f"{name}.dockerignore")
    for stage in _dockerfile.parse(DEPLOY / name):
        for copy in stage.all("COPY"):
            if copy.startswith("--from") or copy.startswith(". "):
                continue
            for src in copy.split()[:-1]:
                assert src in allowed, f"{name}: COPY {src} is excluded by the dockerignore"


def test_dockerignores_are_the_same():
    assert (DEPLOY / "Dockerfile.dockerignore").read_text() == \
        (DEPLOY / "Dockerfile.cuda.dockerignore").read_text()


def _allowlist(path: Path) -> list[str]:
    lines = [ln.strip() for ln in path.read_text().splitlines()
             if ln.strip() and not ln.startswith("#")]
    assert lines[0] == "*"
    return [ln[1:].rstrip("/") for ln in lines if ln.startswith("!")]


# --- install.sh into a fresh venv, as the two Docker stages do -----------------

def _build_context(dest: Path) -> None:
    """What `docker build .` sends, per deploy/Dockerfile.dockerignore."""
    for entry in _allowlist(DEPLOY / "Dockerfile.dockerignore"):
        src, dst = REPO / entry, dest / entry
        dst.parent.mkdir(parents=True, exist_ok=True)
        if src.is_dir():
            shutil.copytree(src, dst, ignore=shutil.ignore_patterns(
                "__pycache__", "*.pyc", "*.egg-info"))
        else:
            shutil.copy2(src, dst)


@pytest.fixture(scope="session")
def image_root():
    """ROOT with ROOT/opt/vecdb installed by deploy/install.sh (once per session)."""
    root = Path(tempfile.mkdtemp(prefix="vecdb-image-"))
    root.chmod(0o755)  # the non-root server user must traverse it
    try:
        ctx = root / "src"  # the build stage's /src
        _build_context(ctx)
        env = {k: v for k, v in os.environ.items() if not k.startswith("VECDB_")}
        env["PYTHON"] = shutil.which("python3.11") or shutil.which("python3")
        started = time.monotonic()
        for step in (["wheels", str(ctx), str(root / "wheels")],
                     ["runtime", str(root / "wheels"), str(root / "opt" / "vecdb")]):
            # The build stage runs ctx/deploy/install.sh, the runtime stage its copy:
            # the same file.
            proc = subprocess.run(["sh", str(ctx / "deploy" / "install.sh"), *step],
                                  cwd=ctx, env=env, capture_output=True, text=True,
                                  timeout=900)
            assert proc.returncode == 0, f"install.sh {step[0]} failed:\n{proc.stderr[-4000:]}"
        print(f"install.sh wheels+runtime: {time.monotonic() - started:.0f} s")
        shutil.rmtree(root / "wheels")
        shutil.rmtree(ctx)
        yield root
    finally:
        for p in root.rglob("*"):  # undo the read-only emulation so rmtree works
            if p.is_dir() and not p.is_symlink():
                p.chmod(p.stat().st_mode | stat.S_IWUSR)
        shutil.rmtree(root, ignore_errors=True)


def test_install_sh_gives_a_clean_venv(image_root):
    venv = image_root / "opt" / "vecdb"
    py = venv / "bin" / "python"
    out = subprocess.run([str(py), "-c", "import vecdb, vecdb_server, vecdb_client, sys; "
                          "print(vecdb.__file__); print(sys.prefix)"],
                         capture_output=True, text=True, cwd="/", check=True).stdout
    assert out.splitlines()[0].startswith(str(venv))  # installed, not the checkout
    frozen = subprocess.run([str(py), "-m", "pip", "list", "--format=freeze"], capture_output=True,
                            text=True, check=True).stdout.lower()
    for line in (DEPLOY / "constraints.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            assert line.lower().replace("_", "-") in frozen.replace("_", "-"), line


# --- the server started as the container starts it ------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Container:
    """One `docker run` of the image with the StatefulSet's mounts, env and args."""

    def __init__(self, root: Path, docs: list[dict], placeholder_keys: bool = False):
        self.root = root
        c = server_container(docs)
        pod = one(docs, "StatefulSet")["spec"]["template"]["spec"]
        self.grace_period_s = yaml.safe_load(server_config_text(docs))["grace_period_s"]
        self.termination_grace_s = pod["terminationGracePeriodSeconds"]
        image = _dockerfile.parse(DEPLOY / "Dockerfile")[-1]
        mounts = {m["name"]: m["mountPath"] for m in c["volumeMounts"]}
        volumes = {v["name"]: v for v in pod["volumes"]}
        self.port = _free_port()
        as_root = os.geteuid() == 0 and shutil.which("setpriv")
        self.user = f"{UID}:{GID}" if as_root else f"{os.getuid()} (current user)"

        # Volumes: ConfigMap and Secret files, the PVC, the emptyDir.
        cm = one(docs, "ConfigMap", volumes["config"]["configMap"]["name"])
        cfg = yaml.safe_load(cm["data"]["vecdb.yaml"])
        assert cfg["port"] == 50051
        cfg["port"] = self.port  # deviation 1: a free port
        cfg["data_dir"] = self.path(cfg["data_dir"])  # deviation 2: the ROOT prefix (also
        # of api_keys_file below)
        keys_file = Path(cfg["api_keys_file"])
        cfg["api_keys_file"] = self.path(cfg["api_keys_file"])  # the ROOT prefix
        assert cfg["metrics_port"] == 9090
        self.metrics_port = cfg["metrics_port"] = _free_port()  # deviation 3: free port
        self._write(mounts["config"], "vecdb.yaml", yaml.safe_dump(cfg))
        assert keys_file.parent == Path(mounts["api-keys"])
        # The Secret: the base's placeholder, or (external-api-keys) the one the
        # user creates with kubectl; docs/deploy.md tells users to put real keys there.
        self.api_key = secrets.token_hex(16)
        keys = yaml.safe_dump([{"key": self.api_key, "role": "admin"}])
        generated = [d for d in docs if d["kind"] == "Secret"]
        if generated:
            secret = one(docs, "Secret", volumes["api-keys"]["secret"]["secretName"])
            assert set(secret["data"]) == {keys_file.name}
            if placeholder_keys:
                keys = base64.b64decode(secret["data"][keys_file.name]).decode()
        else:
            assert not placeholder_keys
            assert volumes["api-keys"]["secret"]["secretName"] == "vecdb-api-keys"
        self._write(mounts["api-keys"], keys_file.name, keys)
        for name in ("data", "tmp"):  # the PVC and the emptyDir: writable
            d = Path(self.path(mounts[name]))
            shutil.rmtree(d, ignore_errors=True)
            d.mkdir(parents=True)
            if as_root:
                os.chown(d, UID, GID)
        self.data_dir = Path(cfg["data_dir"])
        # The image is read-only for the server (readOnlyRootFilesystem).
        for p in (root / "opt", root / "etc"):
            for q in [p, *p.rglob("*")]:
                if not q.is_symlink():
                    q.chmod(q.stat().st_mode & ~0o222)

        # Environment: the image's ENV, then the container's env (which wins).
        env = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
               "LANG": "C.UTF-8"}
        for key, value in image.env().items():
            env[key] = value.replace("$PATH", env["PATH"])
        env.update({e["name"]: e["value"] for e in c.get("env", [])})
        self.env = {k: self._map_paths(v) for k, v in env.items()}
        # Command: ENTRYPOINT + (args or CMD); `command` would replace ENTRYPOINT.
        argv = c.get("command") or image.last_json("ENTRYPOINT")
        argv = [*argv, *(c.get("args") or image.last_json("CMD"))]
        exe = shutil.which(argv[0], path=self.env["PATH"])
        assert exe and exe.startswith(str(root)), f"{argv[0]} resolves to {exe}"
        self.argv = [exe, *(self._map_paths(a) for a in argv[1:])]
        self.prefix = ["setpriv", f"--reuid={UID}", f"--regid={GID}", "--clear-groups"] \
            if as_root else []
        self.proc: subprocess.Popen | None = None
        self.image_files_at_start = self.image_files()
        self.log_path = root / "container.log"

    def image_files(self) -> dict[str, int]:
        return {str(p): p.stat().st_mtime_ns for d in ("opt", "etc")
                for p in (self.root / d).rglob("*")}

    def path(self, container_path: str) -> str:
        return str(self.root) + container_path

    def _map_paths(self, value: str) -> str:
        return re.sub(r"(?<![\w.])(/(?:opt|etc|var|tmp)\b)", lambda m: str(self.root) + m.group(1),
                      value)

    def _write(self, mount: str, key: str, text: str) -> None:
        d = Path(self.path(mount))
        d.mkdir(parents=True, exist_ok=True)
        for q in (d, *d.iterdir()):
            q.chmod(q.stat().st_mode | stat.S_IWUSR)
        (d / key).write_text(text)
        (d / key).chmod(0o444)

    def start(self) -> None:
        self._log = open(self.log_path, "w")
        # cwd = the image's WORKDIR (the PVC mount); a clean env, like a container.
        self.proc = subprocess.Popen([*self.prefix, *self.argv], env=self.env,
                                     cwd=self.path("/var/lib/vecdb"), stdout=self._log,
                                     stderr=subprocess.STDOUT)

    def log(self) -> str:
        return self.log_path.read_text()

    def wait_listening(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = LISTENING.search(self.log())
            if m:
                assert m.group(1) == "0.0.0.0" and int(m.group(2)) == self.port, m.group(0)
                return
            assert self.proc.poll() is None, f"server exited:\n{self.log()}"
            time.sleep(0.05)
        raise TimeoutError(self.log())

    def metrics(self) -> str:
        """GET /metrics the way Prometheus (or kubectl port-forward) does."""
        m = METRICS_ON.search(self.log())
        assert m and int(m.group(2)) == self.metrics_port, self.log()
        url = f"http://127.0.0.1:{self.metrics_port}/metrics"
        with urllib.request.urlopen(url, timeout=10) as resp:
            assert resp.status == 200
            return resp.read().decode()

    def probe(self) -> int | None:
        """What the kubelet's native gRPC probe does: grpc.health.v1 Check(service="")."""
        with grpc.insecure_channel(f"127.0.0.1:{self.port}") as ch:
            try:
                return health_pb2_grpc.HealthStub(ch).Check(
                    health_pb2.HealthCheckRequest(service=""), timeout=5).status
            except grpc.RpcError:
                return None

    def sigterm(self) -> tuple[int, float]:
        started = time.monotonic()
        self.proc.send_signal(signal.SIGTERM)
        rc = self.proc.wait(self.termination_grace_s)  # then the kubelet would SIGKILL
        return rc, time.monotonic() - started

    def close(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()
        self._log.close()


def _probe_until_serving(box: Container, docs: list[dict]) -> list[int | None]:
    """The startupProbe's loop, with its period shortened (its budget is 30 min)."""
    startup = server_container(docs)["startupProbe"]
    seen = []
    for _ in range(startup["failureThreshold"]):
        status = box.probe()
        seen.append(status)
        if status == health_pb2.HealthCheckResponse.SERVING:
            return seen
        assert box.proc.poll() is None, f"server exited:\n{box.log()}"
        time.sleep(0.1)
    pytest.fail(f"never SERVING: {seen[-5:]}\n{box.log()}")


def test_placeholder_keys_fail_closed(image_root):
    """Applied as shipped, the base's placeholder Secret holds no key: the server
    (host 0.0.0.0) refuses to start, exit status 2, naming api_keys."""
    box = Container(image_root, documents("cpu"), placeholder_keys=True)
    try:
        box.start()
        rc = box.proc.wait(60)
        assert rc == 2, box.log()
        assert "no api_keys are configured" in box.log()
    finally:
        box.close()


@pytest.mark.parametrize("combo", [("cpu", ()), ("single-node-dev", ()),
                                   ("cpu", ("monitoring", "external-api-keys"))],
                         ids=lambda c: "+".join((c[0], *c[1])))
def test_server_starts_as_the_container_does_and_passes_the_probes(image_root, combo):
    from vecdb_client import Client
    from vecdb_client.errors import UnauthenticatedError

    overlay = combo[0]
    docs = documents(*combo)
    box = Container(image_root, docs)
    try:
        box.start()
        box.wait_listening()
        _probe_until_serving(box, docs)
        # readiness and liveness: the same Check, still SERVING.
        assert box.probe() == box.probe() == health_pb2.HealthCheckResponse.SERVING
        # Keys are enforced on data calls; health needs none (the probes above).
        with Client(f"127.0.0.1:{box.port}", timeout=20) as anonymous:
            with pytest.raises(UnauthenticatedError):
                anonymous.list_collections()
        with Client(f"127.0.0.1:{box.port}", api_key="not-" + box.api_key,
                    timeout=20) as wrong:
            with pytest.raises(UnauthenticatedError):
                wrong.list_collections()
        assert box.probe() == health_pb2.HealthCheckResponse.SERVING
        with Client(f"127.0.0.1:{box.port}", api_key=box.api_key, timeout=20) as db:
            db.create_collection("k8s", dim=4, metric="l2")
            db.upsert("k8s", ["a", "b"], [[0, 0, 0, 1], [1, 0, 0, 0]])
        # /metrics on the metrics port, no key needed; loopback-only unless the
        # monitoring component binds it to the pod IP.
        host = METRICS_ON.search(box.log()).group(1)
        assert host == ("0.0.0.0" if "monitoring" in combo[1] else "127.0.0.1")
        text = box.metrics()
        assert re.search(r"^vecdb_ready 1\.0$", text, re.M), text[:2000]
        assert re.search(r'^vecdb_collection_points\{collection="k8s"\} 2\.0$', text, re.M)
        assert re.search(r"^vecdb_disk_full 0\.0$", text, re.M)
        assert 'vecdb_rpc_requests_total{code="UNAUTHENTICATED"' in text

        # Pod deletion / rolling update: SIGTERM, exit 0 well inside the grace.
        rc, took = box.sigterm()
        assert rc == 0, box.log()
        assert took < box.grace_period_s < box.termination_grace_s, took
        log = box.log()
        assert "SIGTERM received" in log and "stopped" in log
        print(f"[{'+'.join((overlay, *combo[1]))}] ran as {box.user}; "
              f"SIGTERM -> exit 0 in {took:.2f} s")
        # Only the PVC and /tmp were written to: the image tree is unchanged.
        assert box.image_files() == box.image_files_at_start
        assert any(box.data_dir.iterdir())

        # The pod comes back on the same PVC: data is there, probes pass again.
        box.close()
        box.start()
        box.wait_listening()
        _probe_until_serving(box, docs)
        with Client(f"127.0.0.1:{box.port}", api_key=box.api_key, timeout=20) as db:
            assert db.count("k8s") == 2
        rc, _ = box.sigterm()
        assert rc == 0, box.log()
    finally:
        box.close()
