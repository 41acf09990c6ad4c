"""The dashboard's HTTP layer (httpd.py, web.py's request checks; docs/dashboard.md) over
raw sockets to a real server: the key checked before a body is read, body framing
(Content-Length, chunked, the size cap), the security headers on the HTTP server's own
errors, Host headers without a port, nothing of the process environment in a request,
header names with "_", an IPv6 dashboard_host, a dashboard that cannot start, and the
dashboard's modules on the oldest Python pyproject.toml allows."""
from __future__ import annotations

import glob
import http.client
import json
import logging
import os
import shutil
import socket
import subprocess

import pytest

from harness import ROOT, SRC_PATHS, InProcessServer, rand
from vecdb_server.dashboard import web
from vecdb_server.dashboard.headers import SECURITY_HEADERS

KEY = "dash-http-5e4d3c2b1a0f9e8d7c6b5a4f3e2d1c0b"
DASHBOARD = ROOT / "server" / "vecdb_server" / "dashboard"
SECURITY = ("Content-Security-Policy", "X-Content-Type-Options", "X-Frame-Options")


@pytest.fixture(scope="module")
def srv(tmp_path_factory):
    s = InProcessServer(tmp_path_factory.mktemp("dashhttp") / "data", dashboard_port=0,
                        api_keys=[{"key": KEY, "role": "admin"}])
    with s.client(api_key=KEY) as c:
        c.create_collection("vecs", dim=4, index="flat")
        c.upsert("vecs", [f"p{i}" for i in range(5)], rand(5, 4))
    yield s
    s.stop()


@pytest.fixture
def logs_of_dashboard():
    """The dashboard logger's lines during one test."""
    lines: list[str] = []

    class _Lines(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            lines.append(self.format(record))
    handler, logger = _Lines(logging.DEBUG), logging.getLogger("vecdb_server.dashboard")
    logger.addHandler(handler)
    yield lines
    logger.removeHandler(handler)


def raw(port: int, head: str, body: bytes = b"", host: str = "127.0.0.1",
        timeout: float = 10) -> tuple[int, http.client.HTTPMessage, dict]:
    """Send ``head`` (CRLFs added) and ``body`` as they are; (status, headers, JSON)."""
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(head.replace("\n", "\r\n").encode("utf-8") + b"\r\n\r\n" + body)
        resp = http.client.HTTPResponse(sock)
        resp.begin()
        payload = resp.read()
    return resp.status, resp.headers, json.loads(payload) if payload else {}


def post(path: str, *headers: str) -> str:
    return "\n".join([f"POST {path} HTTP/1.1", "Host: 127.0.0.1",
                      "Content-Type: application/json", *headers])


# ---------------------------------------------------------------- bodies
def test_the_key_is_checked_before_the_body_is_read(srv):
    """Only the headers are sent: a server reading the body first would wait for it."""
    port = srv.app.dashboard_port
    status, hdrs, out = raw(port, post("/api/collections/vecs/points",
                                       "Content-Length: 900000"), timeout=5)
    assert status == 401 and "missing API key" in out["error"]["message"]
    assert hdrs["WWW-Authenticate"].startswith("Bearer")
    body = json.dumps({"limit": 2}).encode()  # a whole small body with a wrong key: read, 401
    status, _, out = raw(port, post("/api/collections/vecs/points", "X-API-Key: wrong",
                                    f"Content-Length: {len(body)}"), body)
    assert status == 401 and out["error"]["message"] == "invalid API key"
    status, _, out = raw(port, post("/api/collections/vecs/points", f"X-API-Key: {KEY}",
                                    f"Content-Length: {len(body)}"), body)
    assert status == 200 and len(out["points"]) == 2


def test_a_body_over_the_cap_is_413_before_it_is_read(srv):
    status, _, out = raw(srv.app.dashboard_port, post(
        "/api/collections/vecs/points", f"X-API-Key: {KEY}",
        f"Content-Length: {web.MAX_BODY + 1}"), timeout=5)
    assert status == 413 and out["error"]["code"] == "RESOURCE_EXHAUSTED"
    assert str(web.MAX_BODY) in out["error"]["message"]


@pytest.mark.parametrize("length", ["\u00b2", "1_0", "-1", "12a", "\u0661\u0662"])
def test_a_content_length_that_is_not_a_number_is_400_naming_it(srv, logs_of_dashboard,
                                                                length):
    status, _, out = raw(srv.app.dashboard_port, post(
        "/api/collections/vecs/points", f"X-API-Key: {KEY}", f"Content-Length: {length}"),
        b"{}")
    assert status == 400 and out["error"]["code"] == "INVALID_ARGUMENT", out
    assert "Content-Length" in out["error"]["message"]
    assert not [line for line in logs_of_dashboard if "Traceback" in line or "failed" in line]


def test_a_chunked_body_is_411(srv):
    chunk = b'{"limit": 1}'
    body = b"%x\r\n%s\r\n0\r\n\r\n" % (len(chunk), chunk)
    status, _, out = raw(srv.app.dashboard_port, post(
        "/api/collections/vecs/points", f"X-API-Key: {KEY}", "Transfer-Encoding: chunked"),
        body)
    assert status == 411 and "Content-Length" in out["error"]["message"], out


# ---------------------------------------------------------------- the HTTP server's own errors
@pytest.mark.parametrize("head,status", [
    ("GET / HTTP/1.1 extra", 400),  # a request line that does not parse
    ("GET /" + "a" * 70000 + " HTTP/1.1", 414),
    ("GET / HTTP/1.1\nX-Long: " + "a" * 70000, 431),
    ("GET / HTTP/1.1\n" + "\n".join(f"X-H{i}: v" for i in range(120)), 431),
])
def test_errors_of_the_http_server_carry_the_security_headers(srv, head, status):
    got, hdrs, out = raw(srv.app.dashboard_port, head)
    assert got == status and out["error"]["code"] == str(status)
    for name in SECURITY:
        assert hdrs[name] == SECURITY_HEADERS[name], name
    assert hdrs["Server"] == "vecdb-dashboard"


# ---------------------------------------------------------------- Host
def test_host_headers_without_a_port(tmp_path):
    open_srv = InProcessServer(tmp_path / "d", dashboard_port=0)  # no keys: Host is checked
    try:
        port = open_srv.app.dashboard_port
        for host, expect in (("[::1]", 200), ("[::1]:1", 200), ("::1", 200),
                             ("127.0.0.1", 200), ("localhost", 200),
                             ("evil.example", 403), ("[evil.example]", 403)):
            status, _, out = raw(port, f"GET /api/collections HTTP/1.1\nHost: {host}")
            assert status == expect, (host, out)
    finally:
        open_srv.stop()


# ---------------------------------------------------------------- what a request is made of
def test_the_process_environment_is_not_part_of_a_request(spawn):
    """wsgiref would copy os.environ into each request: an HTTP_X_API_KEY variable
    would act as the header of every keyless request."""
    proc = spawn("--dashboard-port", "0", "--log-level", "DEBUG",
                 env={"VECDB_API_KEYS": f"{KEY}:read-only", "HTTP_X_API_KEY": KEY,
                      "HTTP_AUTHORIZATION": f"Bearer {KEY}"})
    port = int(proc.log().split("dashboard on http://127.0.0.1:")[1].split("/")[0])
    status, _, out = raw(port, "GET /api/status HTTP/1.1\nHost: 127.0.0.1")
    assert status == 401 and "missing API key" in out["error"]["message"], out
    assert raw(port, f"GET /api/status HTTP/1.1\nHost: 127.0.0.1\nX-API-Key: {KEY}")[0] == 200


def test_header_names_with_an_underscore_are_ignored(srv):
    port = srv.app.dashboard_port
    status, _, out = raw(port, f"GET /api/whoami HTTP/1.1\nHost: 127.0.0.1\nX_API_Key: {KEY}")
    assert status == 401 and "missing API key" in out["error"]["message"], out
    status, _, out = raw(port, f"GET /api/whoami HTTP/1.1\nHost: 127.0.0.1\nX-API-Key: {KEY}"
                               "\nX_API_KEY: other")  # not joined to the real one either
    assert status == 200 and out["role"] == "admin", out


def _ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not _ipv6_loopback(), reason="this machine has no IPv6 loopback (::1)")
@pytest.mark.parametrize("host", ["::1", "[::1]"])
def test_an_ipv6_dashboard_host(tmp_path, host):
    s = InProcessServer(tmp_path / "d", dashboard_port=0, dashboard_host=host)
    try:
        status, _, out = raw(s.app.dashboard_port, "GET /api/whoami HTTP/1.1\nHost: [::1]",
                             host="::1")
        assert status == 200 and out["role"] == "admin", out
    finally:
        s.stop()


# ---------------------------------------------------------------- starting
def test_a_dashboard_that_cannot_start_stops_the_server_with_one_line(spawn, tmp_path):
    """A Falcon without falcon.App (Falcon 2 named it API): one line naming the setting,
    exit 1, no traceback."""
    shim = tmp_path / "shim" / "falcon"
    shim.mkdir(parents=True)
    (shim / "__init__.py").write_text('__version__ = "2.0.0"\n')
    env = {"PYTHONPATH": os.pathsep.join([str(shim.parent), *SRC_PATHS])}
    proc = spawn("--dashboard-port", "0", env=env, wait_serving=False)
    assert proc.proc.wait(60) == 1
    log = proc.log()
    assert "dashboard_port 0: the dashboard cannot start (AttributeError: " in log, log
    assert "set dashboard_port -1" in log and "Traceback" not in log, log


CHECK_IMPORTS = r"""
import ast, importlib, sys
bad = []
for path in sys.argv[1:]:
    tree = ast.parse(open(path, encoding="utf-8").read(), path)
    for node in tree.body:  # module level: what runs on import (not `if TYPE_CHECKING:`)
        if isinstance(node, ast.ImportFrom) and node.level == 0:
            pairs = [(node.module, a.name) for a in node.names]
        elif isinstance(node, ast.Import):
            pairs = [(a.name, None) for a in node.names]
        else:
            continue
        for module, name in pairs:
            if module.split(".")[0] not in sys.stdlib_module_names:
                continue
            try:
                mod = importlib.import_module(module)
                if name and not hasattr(mod, name):
                    importlib.import_module(f"{module}.{name}")
            except ImportError:
                bad.append(f"{path}:{node.lineno}: {module} {name or ''}")
print("\n".join(bad))
"""


def _oldest_python() -> str | None:
    """A python3.10 that runs (pyproject's requires-python >= 3.10): pyenv's or on PATH."""
    for exe in [*sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.10*/bin/python3.10"))),
                shutil.which("python3.10")]:
        if exe and subprocess.run([exe, "-c", "pass"], capture_output=True).returncode == 0:
            return exe
    return None


PYTHON_3_10 = _oldest_python()


@pytest.mark.skipif(PYTHON_3_10 is None, reason="no python3.10 on this machine")
def test_dashboard_modules_parse_and_import_the_stdlib_on_python_3_10():
    files = sorted(str(p) for p in DASHBOARD.glob("*.py"))
    proc = subprocess.run([PYTHON_3_10, "-c", CHECK_IMPORTS, *files],
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "", f"missing on Python 3.10:\n{proc.stdout}"
