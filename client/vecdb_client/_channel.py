"""Channel settings shared by Client and AsyncClient."""
from __future__ import annotations

import os
import random
import threading
from dataclasses import dataclass
from typing import Any

import grpc

DEFAULT_MAX_MESSAGE_BYTES = 64 * 1024 * 1024
HEALTH_CHECK = "/grpc.health.v1.Health/Check"
SERVING_STATUS = {0: "UNKNOWN", 1: "SERVING", 2: "NOT_SERVING", 3: "SERVICE_UNKNOWN"}


@dataclass(frozen=True)
class ClientSettings:
    """timeout: default deadline per call in seconds (None = no deadline).
    max_retries: extra attempts for idempotent calls that fail UNAVAILABLE.
    retry_backoff: first backoff in seconds; doubles each attempt (with jitter), capped at 5 s.
    max_message_bytes: largest message the client receives; keep >= the server's send limit.
    chunk_bytes / chunk_points: upsert batch size limits (keep chunk_bytes well
    under the server's receive limit, which defaults to 64 MiB)."""

    timeout: float | None = 30.0
    max_retries: int = 3
    retry_backoff: float = 0.1
    max_message_bytes: int = DEFAULT_MAX_MESSAGE_BYTES
    chunk_bytes: int = 4 * 1024 * 1024
    chunk_points: int = 10_000

    def backoff(self, attempt: int) -> float:
        return min(5.0, self.retry_backoff * (2 ** attempt)) * (0.5 + random.random() / 2)


def channel_options(settings: ClientSettings) -> list[tuple[str, int]]:
    return [("grpc.max_receive_message_length", settings.max_message_bytes),
            ("grpc.max_send_message_length", -1),
            ("grpc.enable_retries", 0)]  # retries are explicit, for idempotent calls only


def _pem(value: str | bytes | os.PathLike | None, name: str) -> bytes | None:
    """PEM bytes as given, or read from a path."""
    if value is None or isinstance(value, bytes):
        return value
    if isinstance(value, (str, os.PathLike)):
        with open(value, "rb") as fh:
            return fh.read()
    raise TypeError(f"{name} must be a path or PEM bytes")


def credentials(tls: bool | grpc.ChannelCredentials, ca_cert: Any = None,
                client_cert: Any = None, client_key: Any = None
                ) -> grpc.ChannelCredentials | None:
    """False/None: plaintext. True: TLS with the system roots. Or pass your own credentials
    (e.g. grpc.ssl_channel_credentials(root_certificates=...)).

    ``ca_cert`` (roots to trust instead of the system's) and ``client_cert`` +
    ``client_key`` (mutual TLS) are paths or PEM bytes; giving any of them turns TLS on."""
    files = (ca_cert, client_cert, client_key)
    if any(f is not None for f in files):
        if isinstance(tls, grpc.ChannelCredentials):
            raise TypeError("pass either tls=ChannelCredentials or ca_cert/client_cert/"
                            "client_key, not both")
        if (client_cert is None) != (client_key is None):
            raise ValueError("client_cert and client_key go together")
        return grpc.ssl_channel_credentials(
            root_certificates=_pem(ca_cert, "ca_cert"),
            private_key=_pem(client_key, "client_key"),
            certificate_chain=_pem(client_cert, "client_cert"))
    if tls is True:
        return grpc.ssl_channel_credentials()
    if not tls:
        return None
    if isinstance(tls, grpc.ChannelCredentials):
        return tls
    raise TypeError("tls must be a bool or grpc.ChannelCredentials")


def call_metadata(api_key: str | None) -> tuple[tuple[str, str], ...]:
    return (("authorization", f"Bearer {api_key}"),) if api_key else ()


def parse_health(raw: bytes) -> str:
    """Decode a grpc.health.v1.HealthCheckResponse by hand (field 1, varint)."""
    if len(raw) >= 2 and raw[0] == 0x08:
        return SERVING_STATUS.get(raw[1], "UNKNOWN")
    return "UNKNOWN"


def parse_targets(target: Any) -> list[str]:
    """One address ("h:50051"), several ("h1:50051,h2:50051") or a list of them."""
    if isinstance(target, str) and target.startswith("file:"):
        raise ValueError(f"{target!r} is a data directory, not a server: the thin client "
                         "cannot open it; use vecdb.connect() from the vecdb package")
    items = target.split(",") if isinstance(target, str) else list(target)
    out = [t.strip() for t in items if isinstance(t, str) and t.strip()]
    if not out:
        raise ValueError(f"no server address in {target!r}")
    return out


class RoundRobin:
    """Several stubs (or callables) of the same service on different nodes of a cluster:
    each call goes to the next one, so calls spread over the nodes and a retry after
    UNAVAILABLE lands on another node."""

    def __init__(self, stubs: list[Any]):
        self._stubs, self._next = stubs, 0
        self._lock = threading.Lock()

    def _pick(self) -> Any:
        with self._lock:
            stub = self._stubs[self._next % len(self._stubs)]
            self._next += 1
        return stub

    def __getattr__(self, method: str) -> Any:
        if method.startswith("_"):
            raise AttributeError(method)
        return lambda *args, **kw: getattr(self._pick(), method)(*args, **kw)

    def __call__(self, *args: Any, **kw: Any) -> Any:
        return self._pick()(*args, **kw)


def wire_stubs(client: Any, channels: list[Any], cgrpc: Any, pgrpc: Any, agrpc: Any) -> None:
    """Set a client's stubs over ``channels``: plain stubs for one, RoundRobin for more."""
    def make(build: Any) -> Any:
        stubs = [build(ch) for ch in channels]
        return stubs[0] if len(stubs) == 1 else RoundRobin(stubs)
    client._channel, client._channels = channels[0], channels
    client._collections = make(cgrpc.CollectionServiceStub)
    client._points = make(pgrpc.PointServiceStub)
    client._health = make(lambda ch: ch.unary_unary(HEALTH_CHECK))
    client.__dict__["_analytics_stub"] = make(agrpc.AnalyticsServiceStub)
    from ._proto.vecdb.v1 import cluster_pb2_grpc
    client._cluster = make(cluster_pb2_grpc.ClusterServiceStub)
