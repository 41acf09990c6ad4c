"""The dashboard's HTTP server: static assets at ``/`` and ``/static/``, JSON at ``/api/``.

Python's ``http.server`` (a thread per connection, like the threaded gRPC server; no
new dependency), at most MAX_CONNECTIONS connections at once: one more is answered 503
(plain HTTP; closed unanswered with TLS, before any handshake) and closed. The assets are files of this package (``static/``), read once at
start, served from memory: nothing is fetched from the internet, nothing is built.
The API key travels in a header (``Authorization: Bearer`` or ``X-API-Key``), never
in a URL or a cookie; requests are logged (DEBUG) by method, path and status only.
With ``tls_cert_file`` the dashboard speaks HTTPS with the gRPC port's certificate
(and asks for client certificates with ``tls_client_ca_file``).
"""
from __future__ import annotations

import ipaddress
import json
import logging
import socket
import ssl
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any
from urllib.parse import unquote, urlsplit

import grpc
from vecdb_client.errors import VecdbClientError

from ..auth import token_from_metadata
from ..guard import is_loopback
from ..logs import new_request_id
from .api import ROUTES, Api, Req
from .calls import Caller, CallError

log = logging.getLogger("vecdb_server.dashboard")
MAX_CONNECTIONS = 64  # open dashboard connections (each a thread); more are answered 503
_BUSY_BODY = json.dumps({"error": {"code": "UNAVAILABLE", "message": "the dashboard has "
                                   f"{MAX_CONNECTIONS} connections open, its limit"}}).encode()
_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\n"
         b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
         % (len(_BUSY_BODY), _BUSY_BODY))
ASSET_TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
               ".js": "text/javascript; charset=utf-8", ".svg": "image/svg+xml",
               ".txt": "text/plain; charset=utf-8"}
SECURITY_HEADERS = (
    ("X-Content-Type-Options", "nosniff"), ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
    ("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; "
     "frame-ancestors 'none'; base-uri 'none'; form-action 'none'"),
)


def load_assets() -> dict[str, tuple[bytes, str]]:
    """URL path -> (bytes, content type) for every file under static/ ("/" = index.html)."""
    out = {}
    for entry in resources.files(__package__).joinpath("static").iterdir():
        suffix = "." + entry.name.rsplit(".", 1)[-1]
        if entry.is_file() and suffix in ASSET_TYPES:
            out["/static/" + entry.name] = (entry.read_bytes(), ASSET_TYPES[suffix])
    out["/"] = out["/static/index.html"]
    return out


def _local_name(host: str) -> bool:
    """An IP literal or localhost: names a DNS-rebinding page cannot make its own."""
    if host.lower() in ("localhost", "localhost."):
        return True
    try:
        ipaddress.ip_address(host)
        return True
    except ValueError:
        return False


class _Handler(BaseHTTPRequestHandler):
    server_version = "vecdb-dashboard"
    timeout = 60  # seconds a connection may sit idle or trickle a request
    api: Api
    assets: dict[str, tuple[bytes, str]]
    max_body: int

    def setup(self) -> None:
        super().setup()
        if isinstance(self.request, ssl.SSLSocket):
            self.request.do_handshake()  # here, in this connection's thread, not in accept

    # -- responses
    def _send(self, status: int, body: bytes, ctype: str, extra: tuple = ()) -> None:
        self.send_response(status)
        for name, value in (*SECURITY_HEADERS, *extra):
            self.send_header(name, value)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, status: int, obj: Any, extra: tuple = ()) -> None:
        body = json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()
        self._send(status, body, "application/json", (("Cache-Control", "no-store"), *extra))

    def _error(self, err: CallError) -> None:
        extra = (("Retry-After", str(max(1, -(-int(err.retry_after_ms) // 1000)))),) \
            if err.retry_after_ms else ()
        if err.code == grpc.StatusCode.UNAUTHENTICATED:
            extra += (("WWW-Authenticate", 'Bearer realm="vecdb"'),)
        self._json(err.http_status, err.to_json(), extra)

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own errors (a malformed request line...) as JSON too."""
        self.close_connection = True
        try:
            self._json(code, {"error": {"code": str(code), "message": message or "bad request"}})
        except OSError:
            pass

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        log.debug("%s %s -> %s", self.command, urlsplit(self.path).path, code)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        log.debug("dashboard connection from %s: %s", self.client_address[0], format % args)

    # -- requests
    def do_GET(self) -> None:
        path = urlsplit(self.path).path
        if path.startswith("/api/"):
            return self._api()
        asset = self.assets.get(path)
        if asset is None:
            return self._json(404, {"error": {"code": "NOT_FOUND",
                                              "message": f"no page {path!r}"}})
        self._send(200, asset[0], asset[1], (("Cache-Control", "no-cache"),))

    do_HEAD = do_GET

    def do_POST(self) -> None:
        self._api()

    def do_DELETE(self) -> None:
        self._api()

    def do_PUT(self) -> None:
        self._json(405, {"error": {"code": "METHOD_NOT_ALLOWED", "message": "use GET, POST or "
                                   "DELETE"}})

    do_PATCH = do_PUT

    def _body(self) -> dict:
        length = self.headers.get("Content-Length")
        if not length:
            return {}
        if not length.isdigit() or int(length) > self.max_body:
            raise CallError(grpc.StatusCode.RESOURCE_EXHAUSTED, f"request body over "
                            f"max_message_bytes={self.max_body}")
        raw = self.rfile.read(int(length))
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError as exc:
            raise CallError(grpc.StatusCode.INVALID_ARGUMENT, f"the request body is not valid "
                            f"JSON ({exc})") from None
        if not isinstance(body, dict):
            raise CallError(grpc.StatusCode.INVALID_ARGUMENT, "the request body must be a JSON "
                            "object")
        return body

    def _route(self, path: str) -> tuple[Any, dict]:
        allowed = []
        for method, pattern, func in ROUTES:
            m = pattern.match(path)
            if m:
                if method == self.command:
                    return func, {k: unquote(v) for k, v in m.groupdict().items()}
                allowed.append(method)
        if allowed:
            raise CallError(grpc.StatusCode.UNIMPLEMENTED, f"{self.command} {path} is not "
                            f"supported; use {' or '.join(allowed)}", http_status=405)
        raise CallError(grpc.StatusCode.NOT_FOUND, f"no API endpoint {path!r}")

    def _forgery_check(self) -> None:
        """What a browser on another site could send without asking first (CORS lets it
        post text/plain forms; DNS rebinding points a name at 127.0.0.1) is refused."""
        if self.command == "POST" and self.headers.get_content_type() != "application/json":
            raise CallError(grpc.StatusCode.INVALID_ARGUMENT, "Content-Type must be "
                            "application/json", http_status=415)
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]")
        if not self.api.caller.guard.keys.enabled and not _local_name(host):
            raise CallError(grpc.StatusCode.PERMISSION_DENIED, f"Host {host!r} is not "
                            "allowed: without API keys the dashboard answers only requests "
                            "addressed to an IP address or localhost")

    def _api(self) -> None:
        path = urlsplit(self.path).path
        try:
            self._forgery_check()
            func, params = self._route(path)
            token = token_from_metadata([(k.lower(), v) for k, v in self.headers.items()])
            host, port = self.client_address[:2]
            peer = f"{'ipv6' if ':' in host else 'ipv4'}:{host}:{port}"
            req = Req(token, peer, self._body(), params)
            self._json(200, func(self.api, req))
        except CallError as err:
            self._error(err)
        except VecdbClientError as exc:  # the SDK's request builders refused the input
            self._error(CallError(exc.code, exc.message, exc.field))
        except Exception:  # noqa: BLE001 - a bug: logged with its traceback, never sent
            rid = new_request_id()
            log.exception("dashboard %s %s failed [request id %s]", self.command, path, rid)
            self._error(CallError(grpc.StatusCode.INTERNAL, f"internal server error; quote "
                                  f"request id {rid} when reporting it", request_id=rid))


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, *args: Any) -> None:
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        super().__init__(*args)

    def process_request(self, request: Any, client_address: Any) -> None:
        """A thread for the connection while fewer than MAX_CONNECTIONS are open; else a
        503 from this (the accepting) thread and the connection closed."""
        if not self._slots.acquire(blocking=False):
            log.debug("dashboard connection from %s refused: %d open", client_address[0],
                      MAX_CONNECTIONS)
            self._refuse(request)
            return
        try:
            super().process_request(request, client_address)
        except BaseException:
            self._slots.release()
            raise

    def process_request_thread(self, request: Any, client_address: Any) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self._slots.release()

    def _refuse(self, request: Any) -> None:
        try:
            if not isinstance(request, ssl.SSLSocket):
                request.settimeout(0.05)
                request.sendall(_BUSY)
                request.shutdown(socket.SHUT_WR)
                request.recv(65536)  # the request, if here: closing unread data resets
        except OSError:
            pass
        self.shutdown_request(request)

    def handle_error(self, request: Any, client_address: Any) -> None:
        """A connection that failed outside a request (a failed TLS handshake, a client
        gone mid-answer): one DEBUG line, not socketserver's traceback on stderr."""
        exc = sys.exc_info()[1]
        log.debug("dashboard connection from %s failed: %s", client_address[0],
                  type(exc).__name__)


class Dashboard:
    """The dashboard of one server (not a singleton)."""

    def __init__(self, cfg: Any, guard: Any, servicers: dict[str, Any], metrics: Any = None):
        self.cfg, self.guard = cfg, guard
        self.api = Api(Caller(guard, servicers, metrics), bool(cfg.cluster_etcd))
        self._httpd: _Server | None = None
        self._thread: threading.Thread | None = None

    def start(self, host: str, port: int) -> int:
        handler = type("Handler", (_Handler,), {"api": self.api, "assets": load_assets(),
                                                 "max_body": self.cfg.max_message_bytes})
        httpd = _Server((host, port), handler)
        if self.cfg.tls_cert_file:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(self.cfg.tls_cert_file, self.cfg.tls_key_file)
            if self.cfg.tls_client_ca_file:
                ctx.verify_mode = ssl.CERT_REQUIRED
                ctx.load_verify_locations(self.cfg.tls_client_ca_file)
            httpd.socket = ctx.wrap_socket(httpd.socket, server_side=True,
                                           do_handshake_on_connect=False)
        self._httpd = httpd
        self._thread = threading.Thread(target=httpd.serve_forever, name="vecdb-dashboard",
                                        daemon=True)
        self._thread.start()
        return httpd.server_address[1]

    def stop(self) -> None:
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
            self._httpd = None


def start_dashboard(dashboard: Dashboard, cfg: Any) -> int | None:
    """Start the dashboard as configured (dashboard_port -1 = off); returns the port,
    logged as "dashboard on http(s)://HOST:PORT/". Raises OSError naming the setting when
    it cannot bind, or when it would serve other machines without API keys."""
    if cfg.dashboard_port < 0:
        log.info("dashboard off (dashboard_port -1)")
        return None
    host = cfg.dashboard_host or cfg.host
    if not is_loopback(host) and not dashboard.guard.keys.enabled \
            and not cfg.allow_insecure_no_auth:
        raise OSError(f"dashboard_host {host} serves other machines but no api_keys are "
                      "configured: set api_keys, bind 127.0.0.1, or set allow_insecure_no_auth")
    try:
        port = dashboard.start(host, cfg.dashboard_port)
    except OSError as exc:
        raise OSError(f"cannot bind dashboard_port {host}:{cfg.dashboard_port} "
                      f"({exc.strerror or exc}); set dashboard_port to a free port, 0 for any, "
                      "-1 for off") from None
    scheme = "https" if cfg.tls_cert_file else "http"
    log.info("dashboard on %s://%s:%d/", scheme, host, port)
    return port
