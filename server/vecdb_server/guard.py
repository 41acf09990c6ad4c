"""The guard interceptor: request ids, API keys, roles, scoping, rate and size limits; TLS.

Every vecdb.v1 call, in this order:

1. gets a request id (logs.REQUEST_ID; reported as ``vecdb-request-id``);
2. authentication, when keys are configured: missing or unknown key ->
   UNAUTHENTICATED;
3. ``rate_limit_rps`` (token bucket per key, or per client address when no
   keys are configured) -> RESOURCE_EXHAUSTED with trailing metadata
   ``retry-after-ms`` and a google.rpc.RetryInfo in ``grpc-status-details-bin``;
4. role (auth.METHOD_ROLES) -> PERMISSION_DENIED; collection scope ->
   PERMISSION_DENIED (checked for every message of a stream); a tenant-scoped key's
   tenant is set in the request (another tenant -> PERMISSION_DENIED); in cluster mode
   a request naming a tenant -> FAILED_PRECONDITION;
5. a request whose bytes do not decode -> INVALID_ARGUMENT (gRPC itself would
   answer INTERNAL);
6. ``max_batch_points`` (ids per write/get, queries per search), ``max_k``
   (search k; above the engine's hard 10 000 it is INVALID_ARGUMENT as before),
   ``max_collections`` -> RESOURCE_EXHAUSTED.

Health and reflection are never guarded (probes need no key). Rejections are
logged at INFO with the key's label (auth.KeySpec.label), never the key.
"""
from __future__ import annotations

import logging
import math
import threading
import time
from typing import Any, AsyncIterator, Callable, Iterator

import grpc
from google.protobuf import any_pb2, duration_pb2

from vecdb.errors import VecdbError
from vecdb.validation import MAX_K

from .auth import (METHOD_ROLES, KeyConfigError, KeySpec, KeyStore, filter_response,
                   load_key_file, role_allows, scope_denial, tenant_denial,
                   token_from_metadata)
from .config import ConfigError, ServerConfig
from .engine import EngineHolder
from .interceptors import WrapCache, _kind
from .logs import REQUEST_ID, new_request_id

log = logging.getLogger("vecdb_server.guard")
REQUEST_ID_KEY = "vecdb-request-id"
RETRY_AFTER_KEY = "retry-after-ms"
STATUS_DETAILS_KEY = "grpc-status-details-bin"
LOOPBACK = ("127.", "::1", "[::1]", "localhost")
NO_KEYS_WARNING = "no API keys configured: serving 127.0.0.1 only"


def is_loopback(host: str) -> bool:
    return host.startswith(LOOPBACK)


# ------------------------------------------------------------------ start-up checks
def startup_check(cfg: ServerConfig) -> None:
    """Raise ConfigError (exit status 2) for a bad key file, unreadable TLS files, or a
    non-loopback host without API keys (unless allow_insecure_no_auth)."""
    try:
        keys = len(cfg.api_keys) + len(load_key_file(cfg.api_keys_file))
    except KeyConfigError as exc:
        raise ConfigError(str(exc)) from None
    if not keys and not is_loopback(cfg.host) and not cfg.allow_insecure_no_auth:
        raise ConfigError(
            f"host {cfg.host} serves other machines but no api_keys are configured: set "
            "api_keys or api_keys_file (or VECDB_API_KEYS / VECDB_API_KEYS_FILE), bind "
            "127.0.0.1, or set allow_insecure_no_auth: true to serve without authentication")
    server_credentials(cfg)


def _read(path: str, setting: str) -> bytes:
    try:
        with open(path, "rb") as fh:
            return fh.read()
    except OSError as exc:
        raise ConfigError(f"{setting}: cannot read {path}: {exc.strerror}") from None


def server_credentials(cfg: ServerConfig) -> grpc.ServerCredentials | None:
    """TLS from tls_cert_file/tls_key_file; tls_client_ca_file requires client certificates."""
    if not cfg.tls_cert_file:
        return None
    chain = _read(cfg.tls_cert_file, "tls_cert_file")
    key = _read(cfg.tls_key_file, "tls_key_file")
    ca = _read(cfg.tls_client_ca_file, "tls_client_ca_file") if cfg.tls_client_ca_file else None
    try:
        return grpc.ssl_server_credentials([(key, chain)], root_certificates=ca,
                                           require_client_auth=ca is not None)
    except Exception as exc:  # noqa: BLE001 - grpc raises plain errors for bad PEM
        raise ConfigError(f"tls_cert_file/tls_key_file: not usable: {exc}") from None


def bind(server: Any, cfg: ServerConfig) -> int:
    """add_secure_port or add_insecure_port (threaded and aio servers alike)."""
    address = f"{cfg.host}:{cfg.port}"
    creds = server_credentials(cfg)
    return (server.add_secure_port(address, creds) if creds is not None
            else server.add_insecure_port(address))


def tls_note(cfg: ServerConfig) -> str:
    """For the "listening on" line."""
    if not cfg.tls_cert_file:
        return ""
    return ", mutual TLS" if cfg.tls_client_ca_file else ", TLS"


# ------------------------------------------------------------------ retry info
def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _len_field(tag: int, data: bytes) -> bytes:
    return bytes([tag]) + _varint(len(data)) + data


def retry_status_details(code: grpc.StatusCode, message: str, retry_after_s: float) -> bytes:
    """A serialized google.rpc.Status carrying one google.rpc.RetryInfo (hand-encoded:
    googleapis-common-protos is not a dependency)."""
    seconds = int(retry_after_s)
    delay = duration_pb2.Duration(seconds=seconds, nanos=int((retry_after_s - seconds) * 1e9))
    retry_info = _len_field(0x0A, delay.SerializeToString())  # RetryInfo.retry_delay = 1
    detail = any_pb2.Any(type_url="type.googleapis.com/google.rpc.RetryInfo", value=retry_info)
    return (bytes([0x08]) + _varint(code.value[0])  # Status.code = 1
            + _len_field(0x12, message.encode("utf-8"))  # Status.message = 2
            + _len_field(0x1A, detail.SerializeToString()))  # Status.details = 3


# ------------------------------------------------------------------ rate limit
class TokenBuckets:
    """One token bucket per principal: ``rps`` tokens a second, bursts up to max(1, rps)."""

    MAX_PRINCIPALS = 10_000

    def __init__(self, rps: float, clock: Callable[[], float] = time.monotonic):
        self.rps, self.capacity, self._clock = rps, max(1.0, rps), clock
        self._buckets: dict[str, tuple[float, float]] = {}  # principal -> (tokens, time)
        self._lock = threading.Lock()

    def take(self, principal: str) -> float:
        """0.0 when admitted, else the seconds until a token is available."""
        now = self._clock()
        with self._lock:
            tokens, then = self._buckets.get(principal, (self.capacity, now))
            tokens = min(self.capacity, tokens + (now - then) * self.rps)
            if tokens >= 1.0:
                self._buckets[principal] = (tokens - 1.0, now)
                return 0.0
            self._buckets[principal] = (tokens, now)
            if len(self._buckets) > self.MAX_PRINCIPALS:
                self._prune(now)
            return (1.0 - tokens) / self.rps

    def _prune(self, now: float) -> None:
        full = [p for p, (t, then) in self._buckets.items()
                if t + (now - then) * self.rps >= self.capacity]
        for p in full:
            del self._buckets[p]


# ------------------------------------------------------------------ the guard
class Rejected(grpc.RpcError):
    """Raised inside a call to reject it; a grpc.RpcError so the error interceptor
    passes it through untouched."""

    def __init__(self, code: grpc.StatusCode, message: str, metadata: tuple = ()):
        super().__init__(message)
        self.code, self.message, self.metadata = code, message, metadata

    def __str__(self) -> str:
        return f"{self.code.name}: {self.message}"


def _from_cluster_node(metadata: Any, secret: str) -> bool:
    import hmac
    for k, v in metadata or ():
        if k == "x-vecdb-cluster" and isinstance(v, str):
            return hmac.compare_digest(v, secret)
    return False


def _peer_host(peer: str) -> str:
    return peer.rsplit(":", 1)[0] if peer and peer.count(":") >= 2 else (peer or "?")


class _Malformed:
    """Stands in for a request whose bytes do not parse (answered INVALID_ARGUMENT)."""

    def __repr__(self) -> str:
        return "<malformed request>"


MALFORMED = _Malformed()


def _tolerant(deserialize: Callable[[bytes], Any] | None) -> Callable[[bytes], Any] | None:
    """gRPC answers INTERNAL when the deserializer raises; this returns MALFORMED instead."""
    if deserialize is None:
        return None

    def parse(raw: bytes) -> Any:
        try:
            return deserialize(raw)
        except Exception:  # noqa: BLE001 - DecodeError and friends
            return MALFORMED
    return parse


def _id_count(request: Any) -> int:
    """Points in a request: ``points.ids`` (a PointBatch) or a repeated ``ids`` field."""
    fields = request.DESCRIPTOR.fields_by_name
    points, ids = fields.get("points"), fields.get("ids")
    if points is not None and points.message_type is not None \
            and "ids" in points.message_type.fields_by_name:
        return len(request.points.ids)
    if ids is not None and ids.is_repeated:
        return len(request.ids)
    return 0


class Guard:
    """The checks, shared by the threaded and the aio interceptor."""

    def __init__(self, cfg: ServerConfig, engine: EngineHolder, keys: KeyStore | None = None):
        self.cfg, self.engine = cfg, engine
        try:
            self.keys = keys if keys is not None else KeyStore.from_config(cfg)
        except KeyConfigError as exc:
            raise ConfigError(str(exc)) from None
        self.buckets = TokenBuckets(cfg.rate_limit_rps) if cfg.rate_limit_rps > 0 else None
        if self.keys.enabled:
            log.info("API keys: %d configured (roles enforced)", len(self.keys))
        elif is_loopback(cfg.host):
            log.warning(NO_KEYS_WARNING)
        else:
            log.warning("no API keys configured and allow_insecure_no_auth is set: anyone "
                        "who can reach %s can read, write and drop every collection", cfg.host)

    # -- at call start: who, how often, which role
    def admit(self, method: str, metadata: Any, peer: str) -> KeySpec | None:
        key = None
        short = method.rsplit("/", 1)[-1]
        if self.from_node(metadata):
            return None  # a node-to-node call (cluster/peers.py), authenticated by the secret
        if self.keys.enabled:
            token = token_from_metadata(metadata)
            if token is None:
                raise Rejected(grpc.StatusCode.UNAUTHENTICATED,
                               "missing API key: send 'authorization: Bearer <key>' "
                               "or 'x-api-key: <key>'")
            key = self.keys.authenticate(token)
            if key is None:
                log.info("%s -> UNAUTHENTICATED: unknown API key (peer %s)", method, peer)
                raise Rejected(grpc.StatusCode.UNAUTHENTICATED, "invalid API key")
        if self.buckets is not None:
            principal = key.label if key is not None else _peer_host(peer)
            wait = self.buckets.take(principal)
            if wait > 0:
                ms = max(1, math.ceil(wait * 1000))
                message = (f"rate limit of {self.cfg.rate_limit_rps:g} requests/s exceeded; "
                           f"retry after {ms} ms")
                log.info("%s -> RESOURCE_EXHAUSTED: rate limit (%s)", method, principal)
                raise Rejected(grpc.StatusCode.RESOURCE_EXHAUSTED, message, (
                    (RETRY_AFTER_KEY, str(ms)),
                    (STATUS_DETAILS_KEY, retry_status_details(
                        grpc.StatusCode.RESOURCE_EXHAUSTED, message, ms / 1000))))
        if key is not None and not role_allows(key.role, method):
            needed = METHOD_ROLES.get(method, "admin")
            log.info("%s -> PERMISSION_DENIED: %s is %s", method, key.label, key.role)
            raise Rejected(grpc.StatusCode.PERMISSION_DENIED,
                           f"this API key's role ({key.role}) may not call {short}; "
                           f"it needs {needed}")
        return key

    def from_node(self, metadata: Any) -> bool:
        """A node-to-node call (cluster mode), authenticated by the cluster secret."""
        return bool(self.cfg.cluster_etcd) and _from_cluster_node(metadata,
                                                                  self.cfg.cluster_secret)

    # -- per request message: scope and size limits
    def check(self, method: str, request: Any, key: KeySpec | None,
              node: bool = False) -> None:
        """``node``: a node-to-node call (its requests are the cluster's own: a full copy's
        pages, a replicated write; the client's were checked where they came in), not
        held to the size limits."""
        if request is MALFORMED:
            raise Rejected(grpc.StatusCode.INVALID_ARGUMENT,
                           f"the request is not a valid {method.rsplit('/', 1)[-1]} request "
                           "message (protobuf decoding failed)")
        if key is not None and key.collections is not None:
            why = scope_denial(method, request, key, self._aliases)
            if why is not None:
                log.info("%s -> PERMISSION_DENIED: %s", method, why)
                raise Rejected(grpc.StatusCode.PERMISSION_DENIED, why)
        if key is not None and key.tenant is not None:
            why = tenant_denial(method, request, key)  # sets the request's tenant
            if why is not None:
                log.info("%s -> PERMISSION_DENIED: %s", method, why)
                raise Rejected(grpc.StatusCode.PERMISSION_DENIED, why)
        if self.cfg.cluster_etcd and "tenant" in request.DESCRIPTOR.fields_by_name \
                and request.HasField("tenant"):
            raise Rejected(grpc.StatusCode.FAILED_PRECONDITION,
                           "tenants are not available in cluster mode yet (docs/tenants.md)")
        why = None if node else self._limit_denial(method, request)
        if why is not None:
            log.info("%s -> RESOURCE_EXHAUSTED: %s", method, why)
            raise Rejected(grpc.StatusCode.RESOURCE_EXHAUSTED, why)

    # cluster mode (cluster/wiring.py): aliases live in etcd, read from the node's view
    alias_source: Any = None

    def _aliases(self) -> dict[str, str]:
        if self.alias_source is not None:
            return self.alias_source()
        try:
            with self.engine.session() as db:
                return db.list_aliases()
        except VecdbError as exc:  # not open yet / shutting down
            raise Rejected(grpc.StatusCode.UNAVAILABLE, exc.message) from None

    def _limit_denial(self, method: str, request: Any) -> str | None:
        cfg, short = self.cfg, method.rsplit("/", 1)[-1]
        n = _id_count(request)
        if n > cfg.max_batch_points:
            return (f"{n} points in one request; the limit is max_batch_points="
                    f"{cfg.max_batch_points} (split the batch)")
        if short in ("Search", "RangeSearch"):
            queries = request.vectors.count
            if short == "Search" and request.WhichOneof("query") == "texts":
                queries = len(request.texts.texts)
            if queries > cfg.max_batch_points:
                return (f"{queries} queries in one request; the limit is "
                        f"max_batch_points={cfg.max_batch_points}")
            # above the engine's own bound (MAX_K) the engine answers INVALID_ARGUMENT
            if short == "Search" and cfg.max_k < request.k <= MAX_K:
                return f"k={request.k} is above max_k={cfg.max_k}"
            if short == "Search" and request.HasField("group_by"):
                hits = ((request.groups if request.HasField("groups") else 10)
                        * (request.group_size if request.HasField("group_size") else 1))
                if cfg.max_k < hits <= MAX_K:
                    return f"groups x group_size = {hits} is above max_k={cfg.max_k}"
        if short == "Recommend" and cfg.max_k < request.k <= MAX_K:
            return f"k={request.k} is above max_k={cfg.max_k}"
        if short == "CreateCollection":
            try:
                with self.engine.session() as db:
                    count = len(db.list_collections())
            except VecdbError:
                return None  # the call itself reports UNAVAILABLE
            if count >= cfg.max_collections:
                return (f"{count} collections exist; the limit is max_collections="
                        f"{cfg.max_collections} (drop one first)")
        return None


# ------------------------------------------------------------------ interceptors
def _reset(token: Any) -> None:
    try:
        REQUEST_ID.reset(token)
    except ValueError:  # resumed in another context (a generator moved threads)
        REQUEST_ID.set(None)


class GuardInterceptor(grpc.ServerInterceptor):
    """Threaded-server flavour; list it first so it runs before the error interceptor."""

    def __init__(self, guard: Guard, prefix: str = "/vecdb.v1."):
        self._guard, self._prefix, self._cache = guard, prefix, WrapCache()

    def _reject(self, context: grpc.ServicerContext, rej: Rejected) -> None:
        context.set_trailing_metadata(((REQUEST_ID_KEY, REQUEST_ID.get() or ""),
                                       *rej.metadata))
        context.abort(rej.code, rej.message)

    def _checked(self, method: str, requests: Iterator, key: KeySpec | None,
                 node: bool) -> Iterator:
        for request in requests:
            self._guard.check(method, request, key, node)
            yield request

    def intercept_service(self, continuation: Callable, details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(details)
        if handler is None or not details.method.startswith(self._prefix):
            return handler
        return self._cache.get(details.method, handler, lambda: self._wrap(handler, details))

    def _wrap(self, handler: Any, details: grpc.HandlerCallDetails) -> Any:
        method, guard, kind = details.method, self._guard, _kind(handler)
        behavior = getattr(handler, kind)

        def admit(request: Any, context: grpc.ServicerContext) -> tuple[Any, Any]:
            key = guard.admit(method, context.invocation_metadata(), context.peer())
            node = key is None and guard.from_node(context.invocation_metadata())
            if handler.request_streaming:
                return key, self._checked(method, request, key, node)
            guard.check(method, request, key, node)
            return key, request

        def unary(request: Any, context: grpc.ServicerContext) -> Any:
            token = REQUEST_ID.set(new_request_id())
            try:
                key, request = admit(request, context)
                return filter_response(method, behavior(request, context), key)
            except Rejected as rej:
                self._reject(context, rej)
            finally:
                _reset(token)

        def streaming(request: Any, context: grpc.ServicerContext) -> Iterator:
            token = REQUEST_ID.set(new_request_id())
            try:
                key, request = admit(request, context)
                for response in behavior(request, context):
                    yield filter_response(method, response, key)
            except Rejected as rej:
                self._reject(context, rej)
            finally:
                _reset(token)

        return handler._replace(**{kind: streaming if handler.response_streaming else unary},
                                request_deserializer=_tolerant(handler.request_deserializer))


class AioGuardInterceptor(grpc.aio.ServerInterceptor):
    """grpc.aio flavour of :class:`GuardInterceptor`."""

    def __init__(self, guard: Guard, prefix: str = "/vecdb.v1."):
        self._guard, self._prefix, self._cache = guard, prefix, WrapCache()

    async def _reject(self, context: Any, rej: Rejected) -> None:
        context.set_trailing_metadata(((REQUEST_ID_KEY, REQUEST_ID.get() or ""),
                                       *rej.metadata))
        await context.abort(rej.code, rej.message)

    async def _checked(self, method: str, requests: AsyncIterator,
                       key: KeySpec | None, node: bool) -> AsyncIterator:
        async for request in requests:
            self._guard.check(method, request, key, node)
            yield request

    async def intercept_service(self, continuation: Callable,
                                details: grpc.HandlerCallDetails) -> Any:
        handler = await continuation(details)
        if handler is None or not details.method.startswith(self._prefix):
            return handler
        return self._cache.get(details.method, handler, lambda: self._wrap(handler, details))

    def _wrap(self, handler: Any, details: grpc.HandlerCallDetails) -> Any:
        method, guard, kind = details.method, self._guard, _kind(handler)
        behavior = getattr(handler, kind)

        def admit(request: Any, context: Any) -> tuple[Any, Any]:
            key = guard.admit(method, context.invocation_metadata(), context.peer())
            node = key is None and guard.from_node(context.invocation_metadata())
            if handler.request_streaming:
                return key, self._checked(method, request, key, node)
            guard.check(method, request, key, node)
            return key, request

        async def unary(request: Any, context: Any) -> Any:
            REQUEST_ID.set(new_request_id())  # each aio call runs in its own task context
            try:
                key, request = admit(request, context)
                return filter_response(method, await behavior(request, context), key)
            except Rejected as rej:
                await self._reject(context, rej)

        async def streaming(request: Any, context: Any) -> AsyncIterator:
            REQUEST_ID.set(new_request_id())
            try:
                key, request = admit(request, context)
                async for response in behavior(request, context):
                    yield filter_response(method, response, key)
            except Rejected as rej:
                await self._reject(context, rej)

        return handler._replace(**{kind: streaming if handler.response_streaming else unary},
                                request_deserializer=_tolerant(handler.request_deserializer))
