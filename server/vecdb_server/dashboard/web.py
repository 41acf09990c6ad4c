"""The dashboard's web application: a Falcon WSGI app (the ``[dashboard]`` extra) with
the static assets at ``/`` and ``/static/`` and the JSON API (api.ROUTES) at ``/api/``.

Every ``/api/`` responder reads the key from a header (``Authorization: Bearer`` or
``X-API-Key``; never from the URL), refuses what another site could send (see
:func:`_forgery_check`), and calls one Api method; errors become the API's JSON error
with the matching HTTP status (calls.CallError), a bug a 500 with a request id (its
traceback logged, never sent). The key is checked before the body is read, and a
body is at most MAX_BODY bytes with a Content-Length (413 over it, 411 for a chunked one).
The assets are files of this package (``static/``, with the plotting library under
``static/vendor/``), read once, served from memory.
"""
from __future__ import annotations

import ipaddress
import json
import logging
from importlib import resources
from typing import TYPE_CHECKING, Any, Callable, Iterator
from urllib.parse import unquote

import falcon
import grpc
from vecdb_client.errors import VecdbClientError

from ..auth import token_from_metadata
from ..logs import new_request_id
from .api import ROUTES, Api, Req
from .calls import CallError
from .headers import SECURITY_HEADERS, host_name

if TYPE_CHECKING:  # importlib.resources.abc has Traversable from Python 3.11 only
    from importlib.resources.abc import Traversable

log = logging.getLogger("vecdb_server.dashboard")
ASSET_TYPES = {".html": "text/html; charset=utf-8", ".css": "text/css; charset=utf-8",
               ".js": "text/javascript; charset=utf-8", ".svg": "image/svg+xml",
               ".txt": "text/plain; charset=utf-8"}
MAX_BODY = 1 << 20  # bytes of a request body: the dashboard's requests are small JSON


def _files(folder: Traversable, prefix: str) -> Iterator[tuple[str, Traversable]]:
    for entry in folder.iterdir():
        if entry.is_dir():
            yield from _files(entry, f"{prefix}{entry.name}/")
        elif entry.is_file():
            yield prefix + entry.name, entry


def load_assets() -> dict[str, tuple[bytes, str]]:
    """URL path -> (bytes, content type) for every servable file under static/, its
    folders included ("/" = index.html). Licence files (no known suffix) ship, unserved."""
    out = {}
    for name, entry in _files(resources.files(__package__).joinpath("static"), "/static/"):
        suffix = "." + name.rsplit(".", 1)[-1]
        if suffix in ASSET_TYPES:
            out[name] = (entry.read_bytes(), ASSET_TYPES[suffix])
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


def _json(resp: falcon.Response, status: int, obj: Any) -> None:
    resp.status = status
    resp.content_type = "application/json"
    resp.cache_control = ["no-store"]
    resp.data = json.dumps(obj, separators=(",", ":"), allow_nan=False).encode()


def _error(resp: falcon.Response, err: CallError) -> None:
    if err.retry_after_ms:
        resp.set_header("Retry-After", str(max(1, -(-int(err.retry_after_ms) // 1000))))
    if err.code == grpc.StatusCode.UNAUTHENTICATED:
        resp.set_header("WWW-Authenticate", 'Bearer realm="vecdb"')
    _json(resp, err.http_status, err.to_json())


class _Headers:
    """Middleware: the security headers on every answer, errors included."""

    def process_response(self, req: falcon.Request, resp: falcon.Response, resource: Any,
                         req_succeeded: bool) -> None:
        resp.set_headers(SECURITY_HEADERS)


class _Assets:
    def __init__(self, assets: dict[str, tuple[bytes, str]]):
        self.assets = assets

    def on_get(self, req: falcon.Request, resp: falcon.Response, **_: str) -> None:
        asset = self.assets.get(req.path)
        if asset is None:
            raise falcon.HTTPRouteNotFound()
        resp.data, resp.content_type, resp.cache_control = asset[0], asset[1], ["no-cache"]

    on_head = on_get


class _Endpoint:
    """One API path: an ``on_<method>`` responder per Api method routed to it (Falcon
    answers 405 for the others)."""

    def __init__(self, api: Api, funcs: dict[str, Callable[[Api, Req], dict]]):
        self.api = api
        for method, func in funcs.items():
            setattr(self, f"on_{method.lower()}", self._responder(func))

    def _responder(self, func: Callable[[Api, Req], dict]) -> Callable[..., None]:
        def respond(req: falcon.Request, resp: falcon.Response, **params: str) -> None:
            self._forgery_check(req)
            length = self._body_length(req)
            token = token_from_metadata([(k.lower(), v) for k, v in req.headers.items()])
            self.api.caller.whoami(token)  # 401 before a byte of the body is read
            host, port = req.env.get("REMOTE_ADDR", ""), req.env.get("REMOTE_PORT", "0")
            peer = f"{'ipv6' if ':' in host else 'ipv4'}:{host}:{port}"
            # the server keeps PATH_INFO percent-encoded: a point id may hold a "/"
            params = {k: unquote(v) for k, v in params.items()}
            _json(resp, 200, func(self.api, Req(token, peer, self._body(req, length),
                                                params)))
        return respond

    def _forgery_check(self, req: falcon.Request) -> None:
        """What a browser on another site could send without asking first (CORS lets it
        post text/plain forms; DNS rebinding points a name at 127.0.0.1) is refused."""
        ctype = (req.content_type or "text/plain").split(";")[0].strip().lower()
        if req.method == "POST" and ctype != "application/json":
            raise CallError(grpc.StatusCode.INVALID_ARGUMENT, "Content-Type must be "
                            "application/json", http_status=415)
        host = host_name(req.get_header("Host") or "")
        if not self.api.caller.guard.keys.enabled and not _local_name(host):
            raise CallError(grpc.StatusCode.PERMISSION_DENIED, f"Host {host!r} is not "
                            "allowed: without API keys the dashboard answers only requests "
                            "addressed to an IP address or localhost")

    @staticmethod
    def _body_length(req: falcon.Request) -> int:
        """The body's size from its Content-Length, checked before anything is read."""
        if req.get_header("Transfer-Encoding"):
            raise CallError(grpc.StatusCode.INVALID_ARGUMENT, "Transfer-Encoding is not "
                            "supported: send the body with a Content-Length", http_status=411)
        length = req.env.get("CONTENT_LENGTH", "").strip()
        if not length:
            return 0
        if not (length.isascii() and length.isdigit()):
            raise CallError(grpc.StatusCode.INVALID_ARGUMENT, f"the Content-Length header "
                            f"must be a number of bytes, got {length!r}")
        if int(length) > MAX_BODY:
            raise CallError(grpc.StatusCode.RESOURCE_EXHAUSTED, f"the request body "
                            f"({length} bytes) is over the dashboard's limit of {MAX_BODY} "
                            "bytes", http_status=413)
        return int(length)

    @staticmethod
    def _body(req: falcon.Request, length: int) -> dict:
        if not length:
            return {}
        raw = req.bounded_stream.read(length)
        try:
            body = json.loads(raw) if raw.strip() else {}
        except ValueError as exc:
            raise CallError(grpc.StatusCode.INVALID_ARGUMENT, f"the request body is not valid "
                            f"JSON ({exc})") from None
        if not isinstance(body, dict):
            raise CallError(grpc.StatusCode.INVALID_ARGUMENT, "the request body must be a JSON "
                            "object")
        return body


# ---------------------------------------------------------------- error handlers
def _on_call_error(req: falcon.Request, resp: falcon.Response, ex: CallError, _: dict) -> None:
    _error(resp, ex)


def _on_client_error(req: falcon.Request, resp: falcon.Response, ex: VecdbClientError,
                     _: dict) -> None:
    """The SDK's request builders refused the input."""
    _error(resp, CallError(ex.code, ex.message, ex.field))


def _on_http_error(req: falcon.Request, resp: falcon.Response, ex: falcon.HTTPError,
                   _: dict) -> None:
    """Falcon's own answers (no such route, method not allowed...) as JSON errors too."""
    if isinstance(ex, falcon.HTTPNotFound):
        what = "API endpoint" if req.path.startswith("/api/") else "page"
        code, message = "NOT_FOUND", f"no {what} {req.path!r}"
    elif isinstance(ex, falcon.HTTPMethodNotAllowed):
        allowed = [m for m in (ex.headers or {}).get("Allow", "").split(", ")
                   if m and m != "OPTIONS"]
        code, message = "METHOD_NOT_ALLOWED", (f"{req.method} {req.path} is not supported; "
                                               f"use {' or '.join(allowed)}")
    else:
        code, message = str(ex.status_code), ex.description or ex.title
    resp.set_headers(ex.headers or {})
    _json(resp, ex.status_code, {"error": {"code": code, "message": message}})


def _on_bug(req: falcon.Request, resp: falcon.Response, ex: Exception, _: dict) -> None:
    """Logged with its traceback, never sent."""
    rid = new_request_id()
    log.error("dashboard %s %s failed [request id %s]", req.method, req.path, rid,
              exc_info=ex)
    _error(resp, CallError(grpc.StatusCode.INTERNAL, f"internal server error; quote request "
                           f"id {rid} when reporting it", request_id=rid))


def make_app(api: Api) -> falcon.App:
    """The dashboard's WSGI application over ``api``."""
    app = falcon.App(middleware=[_Headers()])
    assets = _Assets(load_assets())
    app.add_route("/", assets)
    app.add_route("/static/{file:path}", assets)
    paths: dict[str, dict[str, Callable[[Api, Req], dict]]] = {}
    for method, template, func in ROUTES:
        paths.setdefault(template, {})[method] = func
    for template, funcs in paths.items():
        app.add_route(template, _Endpoint(api, funcs))
    for kind, handler in ((Exception, _on_bug), (falcon.HTTPError, _on_http_error),
                          (VecdbClientError, _on_client_error), (CallError, _on_call_error)):
        app.add_error_handler(kind, handler)
    return app
