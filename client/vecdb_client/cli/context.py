"""Errors the CLI maps to exit codes, and the per-invocation context (connection, output)."""
from __future__ import annotations

import importlib
import os
import sys
from typing import Any

DEFAULT_HOST = "127.0.0.1:50051"
EXTRA_HINT = "pip install 'vecdb-client[cli]'"


class CliError(Exception):
    """A server, connection or data error: one line on stderr, exit status 1."""


class UsageError(Exception):
    """Bad arguments found after parsing: usage + message on stderr, exit status 2."""


def require(module: str, feature: str) -> Any:
    """Import an optional dependency, or fail with one line naming the extra to install."""
    try:
        return importlib.import_module(module)
    except ImportError:
        top = module.split(".")[0]
        raise CliError(f"{feature} needs the '{top}' package: {EXTRA_HINT}") from None


def optional(module: str) -> Any | None:
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def env_flag(name: str) -> bool:
    return os.environ.get(name, "").strip().lower() in ("1", "true", "yes", "on")


def normalize_target(host: str) -> str:
    """``host`` or ``host:port`` (default port 50051); an ``http(s)://`` prefix is ignored."""
    host = host.strip()
    for prefix in ("http://", "https://", "grpc://"):
        if host.startswith(prefix):
            host = host[len(prefix):]
    host = host.rstrip("/")
    if not host:
        raise UsageError("--host must not be empty")
    if host.startswith("["):  # [ipv6]:port
        return host if "]:" in host else f"{host}:50051"
    return host if host.count(":") == 1 else f"{host}:50051"


class Context:
    """What a command needs: the parsed arguments, a connected client, and the output mode."""

    def __init__(self, args: Any):
        self.args = args
        self.json = args.output == "json"
        self.target = normalize_target(args.host)
        self._client = None

    # --------------------------------------------------------------- connection
    def _credentials(self) -> Any:
        a = self.args
        files = (a.ca_cert, a.client_key, a.client_cert)
        if not (a.tls or any(files)):
            return False
        if not any(files):
            return True
        import grpc
        root, key, chain = (_read_file(f, flag) for f, flag in
                            zip(files, ("--ca-cert", "--client-key", "--client-cert")))
        if (key is None) != (chain is None):
            raise UsageError("--client-key and --client-cert go together")
        return grpc.ssl_channel_credentials(root_certificates=root, private_key=key,
                                            certificate_chain=chain)

    @property
    def client(self) -> Any:
        """The SDK client, after a short check that the server answers and is SERVING."""
        if self._client is None:
            from vecdb_client import Client
            from .commands_tenants import tenant_value
            tenant = getattr(self.args, "tenant", None)
            client = Client(self.target, api_key=self.args.api_key or None,
                            timeout=self.args.timeout, tls=self._credentials(),
                            tenant=tenant_value(tenant) if tenant else None)
            self.health = self.check_connection(client)
            self._client = client
        return self._client

    def check_connection(self, client: Any) -> str:
        from vecdb_client.errors import VecdbClientError
        limit = self.args.connect_timeout
        try:
            status = client.health(timeout=limit)
        except VecdbClientError as err:
            client.close()
            raise CliError(f"cannot reach {self.target} ({err.code.name})") from None
        if status != "SERVING" and not getattr(self.args, "allow_not_serving", False):
            try:
                client.wait_ready(limit)
            except VecdbClientError:
                client.close()
                raise CliError(f"server at {self.target} is {status}") from None
            status = "SERVING"
        return status

    def close(self) -> None:
        if self._client is not None:
            self._client.close()

    # --------------------------------------------------------------- human output
    def info(self, message: str) -> None:
        """A human message: stderr, so that stdout keeps only the command's result."""
        if not self.args.quiet:
            print(message, file=sys.stderr, flush=True)


def _read_file(path: str | None, flag: str) -> bytes | None:
    if not path:
        return None
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError as exc:
        raise CliError(f"{flag} {path}: {exc.strerror}") from None
