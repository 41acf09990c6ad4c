"""A small etcd v3 client over etcd's own JSON gateway (``/v3/...``, grpc-gateway), with
the standard library only: no new dependency, and no copy of etcd's protos.

Keys and values are str (base64 on the wire). What vecdb uses of etcd, all etcd's own
semantics: range reads, transactions (compare-and-swap on a key's mod_revision or its
absence), leases (grant / keepalive / revoke; a key put with a lease vanishes when the
lease expires) and watches (a prefix, from a revision; events in revision order).

Every failure to reach etcd (refused, timeout, 5xx) raises :class:`EtcdUnavailable`,
a vecdb ``Unavailable`` that names etcd, so callers map it to UNAVAILABLE.
"""
from __future__ import annotations

import base64
import json
import socket
import threading
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any, Iterator

from vecdb.errors import Unavailable


WATCH_IDLE_S = 30.0  # an idle watch stream is reopened after this long


class EtcdUnavailable(Unavailable):
    def __init__(self, endpoint: str, why: object):
        super().__init__(f"etcd at {endpoint} is unreachable ({why}); cluster metadata "
                         "cannot change until it is back", "etcd")


def _b64(s: str) -> str:
    return base64.b64encode(s.encode()).decode()


def _unb64(s: str | None) -> str:
    return base64.b64decode(s).decode() if s else ""


def prefix_end(prefix: str) -> str:
    """The range_end that makes [prefix, end) every key starting with ``prefix``."""
    b = bytearray(prefix.encode())
    b[-1] += 1
    return b.decode()


@dataclass(frozen=True)
class KV:
    key: str
    value: str
    mod_revision: int
    create_revision: int
    lease: int = 0


@dataclass(frozen=True)
class Event:
    type: str  # "PUT" | "DELETE"
    kv: KV


def _kv(d: dict) -> KV:
    return KV(_unb64(d.get("key")), _unb64(d.get("value")), int(d.get("mod_revision", 0)),
              int(d.get("create_revision", 0)), int(d.get("lease", 0)))


# ---- transaction building blocks (etcd's Compare and RequestOp, as JSON) ------------------
def absent(key: str) -> dict:
    """Compare: ``key`` does not exist."""
    return {"key": _b64(key), "target": "CREATE", "result": "EQUAL", "create_revision": "0"}


def unchanged(key: str, mod_revision: int) -> dict:
    """Compare: ``key`` was last written at ``mod_revision`` (0 = absent)."""
    return {"key": _b64(key), "target": "MOD", "result": "EQUAL",
            "mod_revision": str(mod_revision)}


def holds(key: str, value: str) -> dict:
    """Compare: ``key`` exists with exactly ``value``."""
    return {"key": _b64(key), "target": "VALUE", "result": "EQUAL", "value": _b64(value)}


def put(key: str, value: str, lease: int = 0) -> dict:
    req = {"key": _b64(key), "value": _b64(value)}
    if lease:
        req["lease"] = str(lease)
    return {"request_put": req}


def delete(key: str, prefix: bool = False) -> dict:
    req = {"key": _b64(key)}
    if prefix:
        req["range_end"] = _b64(prefix_end(key))
    return {"request_delete_range": req}


class Etcd:
    """Thread-safe (one HTTP request per call). ``endpoints``: "http://host:port", several
    separated by commas (tried in turn)."""

    def __init__(self, endpoints: str, timeout: float = 3.0):
        self.endpoints = [e.strip().rstrip("/") for e in endpoints.split(",") if e.strip()]
        if not self.endpoints:
            raise ValueError("no etcd endpoint")
        self.timeout = timeout

    def _post(self, path: str, body: dict, timeout: float | None = None) -> dict:
        last: object = None
        for ep in self.endpoints:
            req = urllib.request.Request(ep + "/v3" + path, json.dumps(body).encode(),
                                         {"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=timeout or self.timeout) as r:
                    return json.loads(r.read() or b"{}")
            except urllib.error.HTTPError as exc:  # etcd answered: a real error
                detail = exc.read().decode(errors="replace")[:300]
                if exc.code >= 500 and "lease not found" not in detail:
                    last = f"HTTP {exc.code}: {detail}"
                    continue
                raise EtcdError(f"etcd {path}: HTTP {exc.code}: {detail}") from None
            except (urllib.error.URLError, OSError, socket.timeout) as exc:
                last = getattr(exc, "reason", exc)
        raise EtcdUnavailable(",".join(self.endpoints), last)

    # ---- kv ------------------------------------------------------------------------------
    def get(self, key: str) -> KV | None:
        kvs = self._post("/kv/range", {"key": _b64(key)}).get("kvs", [])
        return _kv(kvs[0]) if kvs else None

    def range(self, prefix: str) -> tuple[list[KV], int]:
        """Every key under ``prefix`` and the store revision of the read."""
        res = self._post("/kv/range", {"key": _b64(prefix), "range_end": _b64(prefix_end(prefix))})
        return [_kv(k) for k in res.get("kvs", [])], int(res["header"]["revision"])

    def put(self, key: str, value: str, lease: int = 0) -> int:
        body = put(key, value, lease)["request_put"]
        return int(self._post("/kv/put", body)["header"]["revision"])

    def txn(self, compare: list[dict], success: list[dict],
            failure: list[dict] | None = None) -> bool:
        """Atomically: if every compare holds, run ``success``, else ``failure``. True when
        the compares held."""
        return self.txn_rev(compare, success, failure)[0]

    def txn_rev(self, compare: list[dict], success: list[dict],
                failure: list[dict] | None = None) -> tuple[bool, int]:
        """:meth:`txn`, plus the store revision after it (a put it made has this
        mod_revision)."""
        res = self._post("/kv/txn", {"compare": compare, "success": success,
                                     "failure": failure or []})
        return bool(res.get("succeeded", False)), int(res["header"]["revision"])

    # ---- leases --------------------------------------------------------------------------
    def lease_grant(self, ttl: int) -> int:
        return int(self._post("/lease/grant", {"TTL": int(ttl)})["ID"])

    def lease_keepalive(self, lease: int) -> int:
        """Renew; returns the remaining TTL (0 or less: the lease is gone)."""
        res = self._post("/lease/keepalive", {"ID": str(lease)}).get("result", {})
        return int(res.get("TTL", 0))

    def lease_revoke(self, lease: int) -> None:
        try:
            self._post("/lease/revoke", {"ID": str(lease)})
        except EtcdError:
            pass  # already expired

    # ---- watch ---------------------------------------------------------------------------
    def watch(self, prefix: str, start_revision: int,
              stop: threading.Event) -> Iterator[list[Event]]:
        """Batches of events under ``prefix`` from ``start_revision`` on, until ``stop`` is
        set or the stream breaks (then EtcdUnavailable; resume from the last revision + 1).
        A compacted start revision raises EtcdError (re-read with range and resume)."""
        body = {"create_request": {"key": _b64(prefix), "range_end": _b64(prefix_end(prefix)),
                                   "start_revision": str(start_revision),
                                   "progress_notify": True}}
        last: object = None
        for ep in self.endpoints:
            req = urllib.request.Request(ep + "/v3/watch", json.dumps(body).encode(),
                                         {"Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=WATCH_IDLE_S) as stream:
                    for line in _lines(stream, stop):
                        res = json.loads(line).get("result", {})
                        if res.get("compact_revision"):
                            raise EtcdError(f"watch start {start_revision} compacted")
                        events = [Event(e.get("type", "PUT"), _kv(e["kv"]))
                                  for e in res.get("events", [])]
                        if events:
                            yield events
                return
            except (urllib.error.URLError, OSError, socket.timeout, ValueError) as exc:
                if stop.is_set():
                    return
                last = getattr(exc, "reason", exc)
        raise EtcdUnavailable(",".join(self.endpoints), last)


def _lines(stream: Any, stop: threading.Event) -> Iterator[bytes]:
    """Lines of a chunked HTTP body. After WATCH_IDLE_S without a byte the stream ends
    quietly (a timed-out socket cannot be read again): the caller watches anew from
    the revision it has."""
    buf = b""
    while not stop.is_set():
        try:
            chunk = stream.read1(65536)
        except socket.timeout:
            return
        if not chunk:
            raise EtcdStreamClosed("watch stream closed")
        buf += chunk
        while b"\n" in buf:
            line, buf = buf.split(b"\n", 1)
            if line.strip():
                yield line


class EtcdError(Exception):
    """etcd answered but refused the request (bad request, compacted revision...)."""


class EtcdStreamClosed(OSError):
    pass

