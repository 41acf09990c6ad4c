"""Server configuration: defaults < YAML file (--config) < VECDB_* env < command-line flags.

Every ServerConfig field and every vecdb.DatabaseOptions field is settable
the same three ways, with the same name: YAML key ``data_dir``, environment
variable ``VECDB_DATA_DIR``, flag ``--data-dir``. Unknown YAML keys and bad
values are errors that name the key (exit status 2).
"""
from __future__ import annotations

import argparse
import dataclasses
import os
from dataclasses import dataclass, field, fields
from typing import Any, Mapping, Sequence

import yaml

from vecdb import DatabaseOptions
from vecdb.errors import VecdbError

ENV_PREFIX = "VECDB_"


@dataclass(frozen=True)
class ServerConfig:
    # Interface to bind. 0.0.0.0 serves other hosts; the default stays local.
    host: str = "127.0.0.1"
    # TCP port; 0 picks a free one (logged as "listening on HOST:PORT").
    port: int = 50051
    # Where the database lives (created if missing). One server per directory.
    data_dir: str = "./data"
    # "threaded" (default, measured faster here: bench/grpc_bench.py) or "aio".
    server_mode: str = "threaded"
    # Worker threads running calls. More than ~4x cores buys nothing (FAISS
    # already uses every core); fewer queues concurrent requests.
    max_workers: int = 16
    # Calls accepted at once beyond which new ones get RESOURCE_EXHAUSTED; 0 = no limit.
    max_concurrent_rpcs: int = 0
    # Largest request and response message in bytes; larger requests are
    # refused with RESOURCE_EXHAUSTED. The client SDK batches upserts under 4 MiB.
    max_message_bytes: int = 64 * 1024 * 1024
    # Seconds in-flight calls get to finish on SIGTERM/SIGINT before they are cancelled.
    grace_period_s: float = 10.0
    # DEBUG, INFO, WARNING, ERROR.
    log_level: str = "INFO"
    # "text" or "json" (one JSON object a line: time, level, logger, message, request_id).
    log_format: str = "text"
    # --- security (docs/server_api.md "Security") ---
    # API keys: YAML list of {key, role, collections?} or "key:role[:c1,c2];..." (env/flag).
    # Roles: admin, read-write, read-only. Parsed into SHA-256 digests; never logged.
    api_keys: tuple = ()
    # A mounted secret holding more keys in the same YAML/JSON list form.
    api_keys_file: str = ""
    # Without keys the server refuses a non-loopback host unless this is true.
    allow_insecure_no_auth: bool = False
    # TLS on the gRPC port (PEM files); tls_client_ca_file also requires client
    # certificates signed by that CA (mutual TLS).
    tls_cert_file: str = ""
    tls_key_file: str = ""
    tls_client_ca_file: str = ""
    # --- limits (RESOURCE_EXHAUSTED beyond them) ---
    # Points per write/get request and query vectors per search (= the SDK's chunk_points).
    max_batch_points: int = 10_000
    # Largest search k (1..10000; above 10000 the engine says INVALID_ARGUMENT).
    max_k: int = 10_000
    # Collections that may exist at once.
    max_collections: int = 1000
    # Requests per second per API key (per client address without keys); 0 = off.
    rate_limit_rps: float = 0.0
    # --- metrics (docs/server_api.md "Metrics") ---
    # Prometheus /metrics HTTP port; 0 picks a free one (logged as "metrics on
    # HOST:PORT"); -1 turns metrics off.
    metrics_port: int = 9090
    # Interface for /metrics; "" = the same as host.
    metrics_host: str = ""
    # Web dashboard (docs/dashboard.md) HTTP port; 0 picks a free one (logged as
    # "dashboard on http://HOST:PORT/"); -1 (default) turns it off.
    dashboard_port: int = -1
    # Interface for the dashboard; "" = the same as host (same no-key rule as host).
    dashboard_host: str = ""
    # Fraction of non-exact search queries re-run exactly in the background (at most
    # 5 % of one core) to export recall@k (vecdb_sampled_recall); 0 = off.
    recall_sample_rate: float = 0.01
    # --- cluster mode (docs/cluster.md); off (a single node) unless cluster_etcd is set ---
    # etcd endpoints, e.g. http://127.0.0.1:2379 (several separated by commas).
    cluster_etcd: str = ""
    # This node's name in the cluster; "" = <hostname>-<port>.
    node_id: str = ""
    # host:port other nodes and clients reach this node at; "" = host:port.
    advertise: str = ""
    # Placement label: replicas of a shard go to different zones first.
    zone: str = ""
    # Seconds without lease renewal after which a node counts as dead (failover starts).
    # Lower = faster failover, more false alarms on a loaded machine.
    node_ttl_s: int = 5
    # Port of the second gRPC server that serves node-to-node calls with worker threads
    # of its own (so they never wait behind client calls); 0 = any free port. Peers
    # learn it from etcd; clients keep using `port`.
    cluster_internal_port: int = 0
    # Shared secret of node-to-node calls (required in cluster mode); clients' API keys
    # cannot make internal calls. Env VECDB_CLUSTER_SECRET keeps it off the command line.
    cluster_secret: str = ""
    # Threads a node sends the shards of a client call to their primaries and replicas on
    # (besides the caller's own thread); more = more shard calls in flight at once.
    cluster_router_threads: int = 32
    # Replica moves (rebalancing) in progress at once, cluster-wide, started by the
    # elected rebalancer node; 0 = no automatic rebalancing (docs/cluster.md).
    rebalance_max_concurrent_moves: int = 2
    # Bytes per second a node sends, at most on average, for the copies that move
    # replicas to other nodes and those of a reshard (all together); 0 = no limit
    # (docs/cluster.md).
    rebalance_max_bytes_per_s: int = 0
    # Engine options (vecdb.DatabaseOptions), settable under the same names.
    engine: DatabaseOptions = field(default_factory=DatabaseOptions)

    def __post_init__(self) -> None:
        if self.server_mode not in ("threaded", "aio"):
            raise ConfigError(f"server_mode must be threaded or aio, got {self.server_mode!r}")
        for name in ("port", "max_workers", "max_message_bytes"):
            if getattr(self, name) < (0 if name == "port" else 1):
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if not 0 <= self.port <= 65535:
            raise ConfigError(f"port must be in 0..65535, got {self.port}")
        if self.grace_period_s < 0 or self.max_concurrent_rpcs < 0:
            raise ConfigError("grace_period_s and max_concurrent_rpcs must be >= 0")
        if not -1 <= self.metrics_port <= 65535:
            raise ConfigError(f"metrics_port must be in -1..65535 (-1 = off), got {self.metrics_port}")
        if not -1 <= self.dashboard_port <= 65535:
            raise ConfigError(f"dashboard_port must be in -1..65535 (-1 = off), got "
                              f"{self.dashboard_port}")
        if not 0 <= self.recall_sample_rate <= 1:
            raise ConfigError(f"recall_sample_rate must be in 0..1, got {self.recall_sample_rate}")
        self._check_security()
        if self.cluster_etcd:
            if not self.cluster_secret:
                raise ConfigError("cluster_secret is required with cluster_etcd (node-to-node "
                                  "calls are authenticated with it)")
            if not 0 <= self.cluster_internal_port <= 65535:
                raise ConfigError("cluster_internal_port must be in 0..65535, got "
                                  f"{self.cluster_internal_port}")
            for name in ("node_ttl_s", "cluster_router_threads"):
                if getattr(self, name) < 1:
                    raise ConfigError(f"{name} must be >= 1, got {getattr(self, name)}")
            for name in ("rebalance_max_concurrent_moves", "rebalance_max_bytes_per_s"):
                if getattr(self, name) < 0:
                    raise ConfigError(f"{name} must be >= 0, got {getattr(self, name)}")

    def _check_security(self) -> None:
        from .auth import KeyConfigError, parse_api_keys
        try:  # frozen: store the parsed (hashed) keys in place of the raw value
            object.__setattr__(self, "api_keys", parse_api_keys(self.api_keys))
        except KeyConfigError as exc:
            raise ConfigError(str(exc)) from None
        if self.log_format not in ("text", "json"):
            raise ConfigError(f"log_format must be text or json, got {self.log_format!r}")
        if bool(self.tls_cert_file) != bool(self.tls_key_file):
            raise ConfigError("tls_cert_file and tls_key_file must be set together")
        if self.tls_client_ca_file and not self.tls_cert_file:
            raise ConfigError("tls_client_ca_file (mutual TLS) needs tls_cert_file and "
                              "tls_key_file")
        for name in ("max_batch_points", "max_k", "max_collections"):
            if getattr(self, name) < 1:
                raise ConfigError(f"{name} must be positive, got {getattr(self, name)}")
        if self.max_k > 10_000:
            raise ConfigError(f"max_k must be in 1..10000 (the engine's limit), got {self.max_k}")
        if not self.rate_limit_rps >= 0 or self.rate_limit_rps == float("inf"):
            raise ConfigError(f"rate_limit_rps must be >= 0, got {self.rate_limit_rps}")


class ConfigError(ValueError):
    """A bad setting; the message names it."""


def _defaults() -> dict[str, Any]:
    """Every settable key -> its default (its type is the setting's type)."""
    server, engine = ServerConfig(), DatabaseOptions()
    out = {f.name: getattr(server, f.name) for f in fields(ServerConfig) if f.name != "engine"}
    out.update({f.name: getattr(engine, f.name) for f in fields(DatabaseOptions)})
    return out


def _types() -> dict[str, type]:
    return {k: type(v) for k, v in _defaults().items()}


def _coerce(key: str, value: Any, kind: type) -> Any:
    try:
        if kind is tuple:  # api_keys: text or a YAML list, parsed by ServerConfig
            return value
        if kind is bool and isinstance(value, str):
            if value.lower() not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                raise ValueError(value)
            return value.lower() in ("1", "true", "yes", "on")
        if kind is int and isinstance(value, float) and not value.is_integer():
            raise ValueError(value)
        return kind(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{key} must be {kind.__name__}, got {value!r}") from None


def _from_yaml(path: str) -> dict[str, Any]:
    try:
        with open(path, encoding="utf-8") as fh:
            data = yaml.safe_load(fh) or {}
    except OSError as exc:
        raise ConfigError(f"config: cannot read {path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config: {path} is not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise ConfigError(f"config: {path} must hold a mapping of settings")
    unknown = sorted(set(data) - set(_types()))
    if unknown:
        raise ConfigError(f"config: unknown key(s) {', '.join(unknown)} in {path}; "
                          f"known: {', '.join(sorted(_types()))}")
    return data


def _from_env(environ: Mapping[str, str]) -> dict[str, Any]:
    return {key: environ[ENV_PREFIX + key.upper()] for key in _types()
            if ENV_PREFIX + key.upper() in environ}


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(
        prog="vecdb-server", description="vecdb gRPC server",
        epilog="Every flag is also a YAML key (--config) and a VECDB_<NAME> environment "
               "variable; flags win over the environment, which wins over the file.")
    ap.add_argument("--config", help="YAML file of settings (env: VECDB_CONFIG)")
    for key, default in _defaults().items():
        ap.add_argument("--" + key.replace("_", "-"), dest=key, default=None,
                        metavar=type(default).__name__.upper(), help=f"default: {default}")
    return ap


def load_config(argv: Sequence[str] | None = None,
                environ: Mapping[str, str] | None = None) -> ServerConfig:
    environ = os.environ if environ is None else environ
    ns = build_parser().parse_args(argv)
    merged: dict[str, Any] = {}
    path = ns.config or environ.get(ENV_PREFIX + "CONFIG")
    if path:
        merged.update(_from_yaml(path))
    merged.update(_from_env(environ))
    merged.update({k: v for k, v in vars(ns).items() if v is not None and k != "config"})
    types = _types()
    values = {k: _coerce(k, v, types[k]) for k, v in merged.items()}
    engine_keys = {f.name for f in fields(DatabaseOptions)}
    try:
        engine = DatabaseOptions(**{k: v for k, v in values.items() if k in engine_keys})
    except VecdbError as exc:
        raise ConfigError(exc.message) from None
    return ServerConfig(**{k: v for k, v in values.items() if k not in engine_keys},
                        engine=engine)


def describe(cfg: ServerConfig) -> dict[str, Any]:
    """Flat dict of every effective setting (logged at startup)."""
    out = {k: v for k, v in dataclasses.asdict(cfg).items() if k not in ("engine", "api_keys")}
    out["api_keys"] = [repr(k) for k in cfg.api_keys]  # labels and roles only, never keys
    out["cluster_secret"] = "***" if cfg.cluster_secret else ""
    out.update(dataclasses.asdict(cfg.engine))
    return out
