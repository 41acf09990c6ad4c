"""The dashboard's HTTP server: the WSGI application of web.py (Falcon, the optional
``[dashboard]`` extra) served by the standard library's WSGI server with a thread per
connection, like the threaded gRPC server. At most MAX_CONNECTIONS connections at
once: one more is answered 503 (plain HTTP; closed unanswered with TLS, before any
handshake) and closed. Requests are logged (DEBUG) by method, path and status only:
never a header, so never a key. With ``tls_cert_file`` the dashboard speaks HTTPS with
the gRPC port's certificate (and asks for client certificates with
``tls_client_ca_file``). A request's environ holds the request and nothing of the
process environment (wsgiref would copy ``os.environ`` into it: keys, secrets, and any
``HTTP_*`` variable posing as a header), and a header whose name holds ``_`` is dropped
(as nginx does): ``X_API_Key`` would otherwise pass as ``X-API-Key``. Falcon is imported
only when the dashboard starts, so a server without the extra runs as before while
``dashboard_port`` is -1.
"""
from __future__ import annotations

import json
import logging
import socket
import ssl
import sys
import threading
import time
from socketserver import ThreadingMixIn
from typing import Any
from urllib.parse import urlsplit
from wsgiref.simple_server import ServerHandler, WSGIRequestHandler, WSGIServer

from ..guard import is_loopback
from .api import Api
from .calls import Caller
from .headers import SECURITY_HEADERS

log = logging.getLogger("vecdb_server.dashboard")
EXTRA = "pip install 'vecdb[dashboard]'"
MAX_CONNECTIONS = 64  # open dashboard connections (each a thread); more are answered 503
LINGER_S = 2.0  # after an answer, what the client still sends is read and dropped this long
_BUSY_BODY = json.dumps({"error": {"code": "UNAVAILABLE", "message": "the dashboard has "
                                   f"{MAX_CONNECTIONS} connections open, its limit"}}).encode()
_BUSY = (b"HTTP/1.1 503 Service Unavailable\r\nRetry-After: 1\r\nConnection: close\r\n"
         b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
         % (len(_BUSY_BODY), _BUSY_BODY))


class _RequestRunner(ServerHandler):
    """Runs the application for one request with an environ built from the request alone."""
    os_environ: dict = {}


class _Handler(WSGIRequestHandler):
    server_version = "vecdb-dashboard"
    timeout = 60  # seconds a connection may sit idle or trickle a request

    def setup(self) -> None:
        super().setup()
        if isinstance(self.request, ssl.SSLSocket):
            self.request.do_handshake()  # here, in this connection's thread, not in accept

    def version_string(self) -> str:
        return self.server_version  # no Python version in the Server header

    def handle(self) -> None:
        """One request per connection, as WSGIRequestHandler does, run by _RequestRunner."""
        self.raw_requestline = self.rfile.readline(65537)
        if len(self.raw_requestline) > 65536:
            self.requestline = self.request_version = self.command = ""
            self.send_error(414)
            return
        if not self.parse_request():  # it answered the error itself
            return
        runner = _RequestRunner(self.rfile, self.wfile, self.get_stderr(), self.get_environ(),
                                multithread=True)
        runner.request_handler = self  # wsgiref logs the request through it
        runner.run(self.server.get_app())

    def get_environ(self) -> dict:
        """PATH_INFO stays percent-encoded (wsgiref decodes it, which would split a point
        id holding "%2F"): web.py decodes each path parameter once routed. Header names
        holding "_" are dropped before wsgiref maps "-" to "_"."""
        for name in {n for n in self.headers.keys() if "_" in n}:
            log.debug("dashboard request header %r ignored: '_' in its name", name)
            del self.headers[name]
        env = super().get_environ()
        env["PATH_INFO"] = urlsplit(self.path).path
        env["REMOTE_PORT"] = str(self.client_address[1])
        return env

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """http.server's own errors (a malformed request line...) as JSON too."""
        self.close_connection = True
        if self.request_version == "HTTP/0.9":  # unparsed: answer with a status line, headers
            self.request_version = "HTTP/1.0"
        body = json.dumps({"error": {"code": str(code), "message": message or "bad request"}})
        try:
            self.send_response(code)
            for name, value in SECURITY_HEADERS.items():
                if name != "Server":  # send_response sent it
                    self.send_header(name, value)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body.encode())
        except OSError:
            pass

    def log_request(self, code: Any = "-", size: Any = "-") -> None:
        path = getattr(self, "path", None)  # unset when the request line did not parse
        log.debug("%s %s -> %s", self.command, urlsplit(path).path if path else "-", code)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the base's name
        log.debug("dashboard connection from %s: %s", self.client_address[0], format % args)


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], handler: Any) -> None:
        self._slots = threading.BoundedSemaphore(MAX_CONNECTIONS)
        self.address_family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
        super().__init__(address, handler)

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
        self.close_request(request)

    def shutdown_request(self, request: Any) -> None:
        """A lingering close: the answer's end first, then whatever the client still sends
        (a body left unread by a 401 or 413) read and dropped until it closes or LINGER_S
        pass, so that closing does not reset the connection before the answer is read."""
        try:
            request.shutdown(socket.SHUT_WR)
            deadline = time.monotonic() + LINGER_S
            while (left := deadline - time.monotonic()) > 0:
                request.settimeout(left)
                if not request.recv(65536):
                    break
        except OSError:
            pass
        self.close_request(request)

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
        """Serve on ``host``:``port``; returns the port. _CannotBind when binding fails."""
        from .web import make_app  # Falcon: the [dashboard] extra
        app = make_app(self.api)
        ctx = None
        if self.cfg.tls_cert_file:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(self.cfg.tls_cert_file, self.cfg.tls_key_file)
            if self.cfg.tls_client_ca_file:
                ctx.verify_mode = ssl.CERT_REQUIRED
                ctx.load_verify_locations(self.cfg.tls_client_ca_file)
        try:
            httpd = _Server((host, port), _Handler)
        except OSError as exc:
            raise _CannotBind(exc.errno, exc.strerror or str(exc)) from None
        httpd.set_app(app)
        if ctx is not None:
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


class _CannotBind(OSError):
    """The dashboard's port could not be bound."""


def start_dashboard(dashboard: Dashboard, cfg: Any) -> int | None:
    """Start the dashboard as configured (dashboard_port -1 = off); returns the port,
    logged as "dashboard on http(s)://HOST:PORT/". Raises OSError naming the setting when
    it cannot bind, when it would serve other machines without API keys, when the
    [dashboard] extra is not installed, or when anything else stops it (its traceback
    logged at DEBUG)."""
    if cfg.dashboard_port < 0:
        log.info("dashboard off (dashboard_port -1)")
        return None
    try:
        import falcon  # noqa: F401 - only whether the extra is installed
    except ImportError:
        raise OSError(f"dashboard_port is set but the dashboard needs the optional "
                      f"[dashboard] extra (Falcon): {EXTRA}, or set dashboard_port -1") \
            from None
    host = (cfg.dashboard_host or cfg.host).strip("[]")  # "[::1]" as gRPC spells it
    if not is_loopback(host) and not dashboard.guard.keys.enabled \
            and not cfg.allow_insecure_no_auth:
        raise OSError(f"dashboard_host {host} serves other machines but no api_keys are "
                      "configured: set api_keys, bind 127.0.0.1, or set allow_insecure_no_auth")
    try:
        port = dashboard.start(host, cfg.dashboard_port)
    except _CannotBind as exc:
        raise OSError(f"cannot bind dashboard_port {host}:{cfg.dashboard_port} "
                      f"({exc.strerror}); set dashboard_port to a free port, 0 for any, "
                      "-1 for off") from None
    except Exception as exc:  # noqa: BLE001 - one clear line, not a traceback
        log.debug("the dashboard did not start", exc_info=True)
        raise OSError(f"dashboard_port {cfg.dashboard_port}: the dashboard cannot start "
                      f"({type(exc).__name__}: {exc}); check the [dashboard] extra "
                      f"({EXTRA}) and the TLS files, or set dashboard_port -1") from None
    scheme = "https" if cfg.tls_cert_file else "http"
    shown = f"[{host}]" if ":" in host else host
    log.info("dashboard on %s://%s:%d/", scheme, shown, port)
    return port
