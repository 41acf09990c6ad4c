"""API keys: parsing, the in-memory key store, roles per RPC and collection scoping.

Keys come from the ``api_keys`` setting (a YAML list of ``{key, role,
collections?, tenant?}``, or ``key:role[:coll1,coll2[:tenant]];...`` in
``VECDB_API_KEYS`` or ``--api-keys``) and from ``api_keys_file`` (a mounted secret in the same YAML
or JSON list form, or ``{api_keys: [...]}``). Only SHA-256 digests are kept;
a presented token is hashed and compared with ``hmac.compare_digest`` against
every key (no early exit). Keys are never logged: a key is named in logs by
the first 8 hex digits of its digest (``key#1a2b3c4d``).

Roles: ``read-only`` (reads), ``read-write`` (reads and point writes),
``admin`` (everything, including collections, aliases, payload indexes and
snapshots). A key with ``collections`` may only touch those collections (an
alias counts as the collection it points to); ListCollections, ListAliases and
ListSnapshots answer only what is in scope; DeleteSnapshot and RestoreSnapshot
(which do not name a collection of the caller's) need an unscoped key. Health
and reflection need no key.

A key with ``tenant`` (a string; an integer in the YAML form) acts in that tenant of
tenant collections only (docs/tenants.md): it may call only RPCs whose request has a
``tenant`` field (and GetServerInfo); the guard sets that field to the key's tenant,
and a request naming another tenant is PERMISSION_DENIED. ListTenants and
SetTenantQuota need a key without a tenant.
"""
from __future__ import annotations

import hashlib
import hmac
import importlib
import logging
import os
import pkgutil
import threading
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping, Sequence

import yaml

log = logging.getLogger("vecdb_server.auth")
READ, WRITE, ADMIN = "read-only", "read-write", "admin"
ROLE_RANK = {READ: 0, WRITE: 1, ADMIN: 2}
ROLE_ALIASES = {
    "admin": ADMIN, "read-write": WRITE, "read_write": WRITE, "readwrite": WRITE, "rw": WRITE,
    "write": WRITE, "read-only": READ, "read_only": READ, "readonly": READ, "ro": READ,
    "read": READ,
}

_C, _P = "/vecdb.v1.CollectionService/", "/vecdb.v1.PointService/"
# Every RPC of the vecdb.v1 services -> the least role allowed to call it.
# tests/integration/test_auth.py fails when an RPC is missing here; an RPC
# missing at run time is treated as admin-only.
METHOD_ROLES: dict[str, str] = {
    _C + "CreateCollection": ADMIN, _C + "DropCollection": ADMIN,
    _C + "CreateAlias": ADMIN, _C + "SetAlias": ADMIN, _C + "DeleteAlias": ADMIN,
    _C + "CreatePayloadIndex": ADMIN, _C + "DropPayloadIndex": ADMIN,
    _C + "CreateSnapshot": ADMIN, _C + "ListSnapshots": ADMIN, _C + "DeleteSnapshot": ADMIN,
    _C + "RestoreSnapshot": ADMIN, _C + "ReembedCollection": ADMIN,
    _C + "ListCollections": READ, _C + "GetServerInfo": READ, _C + "DescribeCollection": READ, _C + "ListAliases": READ,
    _P + "Upsert": WRITE, _P + "UpsertStream": WRITE, _P + "Delete": WRITE,
    _P + "UpdatePayload": WRITE, _P + "UpdateVectors": WRITE,
    _P + "Get": READ, _P + "Count": READ, _P + "Scroll": READ, _P + "Search": READ,
    _P + "RangeSearch": READ, _P + "Recommend": READ,
}
_A = "/vecdb.v1.AnalyticsService/"
# Cluster needs read-write: it may write labels (write_label) and runs a long job.
METHOD_ROLES.update({_A + "Cluster": WRITE, _A + "GetClusterJob": READ, _A + "Outliers": READ,
                     _A + "Duplicates": READ})
# The cluster's nodes and shard map: what an operator's status page shows.
METHOD_ROLES["/vecdb.v1.ClusterService/GetClusterStatus"] = READ
METHOD_ROLES["/vecdb.v1.ClusterService/DrainNode"] = ADMIN
METHOD_ROLES["/vecdb.v1.ClusterService/RemoveNode"] = ADMIN
METHOD_ROLES["/vecdb.v1.ClusterService/PlanRebalance"] = READ
METHOD_ROLES["/vecdb.v1.ClusterService/ReshardCollection"] = ADMIN
# node to node only (the cluster secret); a client key never gets past the router's check
METHOD_ROLES["/vecdb.v1.ClusterService/ReplicaPosition"] = ADMIN
_T = "/vecdb.v1.TenantService/"
METHOD_ROLES.update({_T + "ListTenants": READ, _T + "GetTenant": READ,
                     _T + "SetTenantQuota": ADMIN, _T + "DropTenant": ADMIN})
# a tenant-scoped key may not call these: they are about every tenant (or its own limits)
TENANT_UNSCOPABLE = {_T + "ListTenants", _T + "SetTenantQuota"}
# RPCs a scoped key may call without naming a collection (their answers are filtered).
LISTING = {_C + "ListCollections", _C + "ListAliases", _C + "ListSnapshots"}
# RPCs whose target collection the request does not name: never for scoped keys.
UNSCOPABLE = {_C + "DeleteSnapshot", _C + "RestoreSnapshot",
              "/vecdb.v1.ClusterService/GetClusterStatus", "/vecdb.v1.ClusterService/DrainNode",
              "/vecdb.v1.ClusterService/RemoveNode", "/vecdb.v1.ClusterService/PlanRebalance",
              "/vecdb.v1.ClusterService/ReshardCollection",
              "/vecdb.v1.ClusterService/ReplicaPosition"}


class KeyConfigError(ValueError):
    """A malformed key list; the message never contains a key."""


@dataclass(frozen=True)
class KeySpec:
    digest: bytes
    role: str
    collections: frozenset[str] | None = None  # None = every collection
    tenant: str | int | None = None  # None = every tenant (docs/tenants.md)

    @property
    def label(self) -> str:
        """How logs name the key: never the key itself."""
        return "key#" + self.digest.hex()[:8]

    def __repr__(self) -> str:
        scope = "*" if self.collections is None else ",".join(sorted(self.collections))
        tenant = "" if self.tenant is None else f", tenant {self.tenant!r}"
        return f"KeySpec({self.label}, {self.role}, {scope}{tenant})"


def digest(token: str) -> bytes:
    return hashlib.sha256(token.encode("utf-8")).digest()


def _role(value: Any, where: str) -> str:
    role = ROLE_ALIASES.get(str(value).strip().lower()) if isinstance(value, str) else None
    if role is None:
        raise KeyConfigError(f"{where}: role must be admin, read-write or read-only, "
                             f"got {value!r}")
    return role


def _spec(key: Any, role: Any, collections: Any, where: str, tenant: Any = None) -> KeySpec:
    if not isinstance(key, str) or not key.strip() or key != key.strip():
        raise KeyConfigError(f"{where}: key must be a non-empty string without surrounding "
                             "whitespace")
    if collections is None or collections == "" or collections == "*":
        scope = None
    elif isinstance(collections, str):
        scope = frozenset(c.strip() for c in collections.split(",") if c.strip())
    elif isinstance(collections, (list, tuple)) and all(isinstance(c, str) for c in collections):
        scope = frozenset(collections)
    else:
        raise KeyConfigError(f"{where}: collections must be a list of collection names")
    if tenant is not None and (isinstance(tenant, bool) or not isinstance(tenant, (str, int))
                               or tenant == ""):
        raise KeyConfigError(f"{where}: tenant must be a non-empty string or an integer")
    return KeySpec(digest(key), _role(role, where), scope, tenant)


def parse_api_keys(value: Any, source: str = "api_keys") -> tuple[KeySpec, ...]:
    """``key:role[:c1,c2[:tenant]];...`` text, a list of {key, role, collections?, tenant?} mappings,
    ``{api_keys: [...]}``, or already parsed KeySpecs. Duplicate keys are an error."""
    if value is None or value == "" or value == ():
        return ()
    if isinstance(value, Mapping) and set(value) == {"api_keys"}:
        value = value["api_keys"]
    specs: list[KeySpec] = []
    if isinstance(value, str):
        for i, item in enumerate(p for p in value.split(";") if p.strip()):
            parts = item.strip().split(":", 2)
            if len(parts) < 2:
                raise KeyConfigError(f"{source}[{i}]: expected key:role[:collections[:tenant]]")
            colls, _, tenant = parts[2].partition(":") if len(parts) > 2 else ("", "", "")
            specs.append(_spec(parts[0], parts[1], colls or None, f"{source}[{i}]",
                               tenant or None))
    elif isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            if isinstance(item, KeySpec):
                specs.append(item)
                continue
            if not isinstance(item, Mapping) or not {"key", "role"} <= set(item) \
                    or set(item) - {"key", "role", "collections", "tenant"}:
                raise KeyConfigError(f"{source}[{i}]: expected a mapping with key, role and "
                                     "optionally collections and tenant")
            specs.append(_spec(item["key"], item["role"], item.get("collections"),
                               f"{source}[{i}]", item.get("tenant")))
    else:
        raise KeyConfigError(f"{source}: expected a list of {{key, role, collections}} or "
                             "key:role[:collections];... text")
    if len({s.digest for s in specs}) != len(specs):
        raise KeyConfigError(f"{source}: the same key is listed twice")
    return tuple(specs)


def load_key_file(path: str) -> tuple[KeySpec, ...]:
    """The mounted secret: YAML or JSON in the api_keys format. Comments only = no keys."""
    if not path:
        return ()
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise KeyConfigError(f"api_keys_file: cannot read {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        raise KeyConfigError(f"api_keys_file: {path} is not valid YAML/JSON") from None
    return parse_api_keys(data, "api_keys_file")


class KeyStore:
    """Digests of the configured keys; authenticate() is constant-time per key.

    ``api_keys_file`` is re-read when it changes (checked at most every
    RELOAD_EVERY_S seconds; Kubernetes updates mounted Secrets in place), so keys
    rotate without a restart. A changed file that does not parse, or that would
    leave no key at all, is ignored with a warning (the previous keys stay)."""

    RELOAD_EVERY_S = 5.0

    def __init__(self, specs: Iterable[KeySpec] = (), path: str = "",
                 clock: Callable[[], float] = time.monotonic):
        self._static, self._path, self._clock = tuple(specs), path, clock
        self._lock = threading.Lock()
        self._stamp = self._file_stamp()
        self._specs = self._combine(load_key_file(path))
        self._next_check = clock() + self.RELOAD_EVERY_S

    @classmethod
    def from_config(cls, cfg: Any) -> "KeyStore":
        return cls(cfg.api_keys, cfg.api_keys_file)

    def _combine(self, from_file: tuple[KeySpec, ...]) -> tuple[KeySpec, ...]:
        specs = (*self._static, *from_file)
        if len({s.digest for s in specs}) != len(specs):
            raise KeyConfigError("api_keys and api_keys_file list the same key twice")
        return specs

    def _file_stamp(self) -> tuple | None:
        try:
            st = os.stat(self._path) if self._path else None
        except OSError:
            return None
        return None if st is None else (st.st_mtime_ns, st.st_size, st.st_ino)

    def _maybe_reload(self) -> None:
        if not self._path or self._clock() < self._next_check:
            return
        with self._lock:
            if self._clock() < self._next_check:
                return
            self._next_check = self._clock() + self.RELOAD_EVERY_S
            stamp = self._file_stamp()
            if stamp == self._stamp:
                return
            self._stamp = stamp
            try:
                specs = self._combine(load_key_file(self._path))
            except KeyConfigError as exc:
                log.warning("api_keys_file changed but is not usable (%s); keeping the "
                            "previous keys", exc)
                return
            if self._specs and not specs:
                log.warning("api_keys_file changed and would leave no API keys; keeping "
                            "the previous keys")
                return
            self._specs = specs
            log.info("api_keys_file reloaded: %d keys", len(specs))

    @property
    def enabled(self) -> bool:
        self._maybe_reload()
        return bool(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    def authenticate(self, token: str | None) -> KeySpec | None:
        self._maybe_reload()
        if not token:
            return None
        presented = digest(token)
        found = None
        for spec in self._specs:  # no early exit: time does not depend on which key matched
            if hmac.compare_digest(spec.digest, presented):
                found = spec
        return found


def token_from_metadata(metadata: Sequence[tuple[str, Any]] | None) -> str | None:
    """``authorization: Bearer <key>`` or ``x-api-key: <key>``."""
    for name, value in metadata or ():
        if not isinstance(value, str):
            continue
        name = name.lower()
        if name == "authorization":
            scheme, _, rest = value.strip().partition(" ")
            if scheme.lower() == "bearer" and rest.strip():
                return rest.strip()
        elif name == "x-api-key" and value.strip():
            return value.strip()
    return None


def role_allows(role: str, method: str) -> bool:
    return ROLE_RANK[role] >= ROLE_RANK[METHOD_ROLES.get(method, ADMIN)]


def all_methods() -> list[str]:
    """Full names of every RPC of every vecdb.v1 service, read from the generated descriptors."""
    from vecdb_client._proto.vecdb import v1 as pkg

    out = []
    for info in pkgutil.iter_modules(pkg.__path__):
        if not info.name.endswith("_pb2"):
            continue
        module = importlib.import_module(f"{pkg.__name__}.{info.name}")
        for service in module.DESCRIPTOR.services_by_name.values():
            out.extend(f"/{service.full_name}/{m.name}" for m in service.methods)
    return sorted(out)


# ------------------------------------------------------------------ scoping
def _field(request: Any, name: str) -> str | None:
    return getattr(request, name) if name in request.DESCRIPTOR.fields_by_name else None


def scope_denial(method: str, request: Any, key: KeySpec,
                 aliases: Callable[[], Mapping[str, str]]) -> str | None:
    """Why ``key`` may not make this request (None = allowed). ``aliases`` is called
    (alias -> collection) only when a name is not directly in the key's scope."""
    allowed = key.collections
    if allowed is None:
        return None
    cache: dict[str, Mapping[str, str]] = {}

    def _aliases() -> Mapping[str, str]:
        if "a" not in cache:
            cache["a"] = aliases()
        return cache["a"]

    def denied(name: str) -> str | None:
        if _aliases().get(name, name) in allowed:  # an alias counts as its collection
            return None
        return f"{key.label} may not use collection {name!r}"

    short = method.rsplit("/", 1)[-1]
    if method in UNSCOPABLE:
        return f"{key.label} is limited to collections and may not call {short}"
    if method == _C + "GetServerInfo":  # version, uptime, ready: about no collection
        return None
    if short in ("CreateAlias", "SetAlias"):
        current = _aliases().get(request.alias)
        if current is not None and current not in allowed:
            return f"{key.label} may not re-point alias {request.alias!r}"
        return denied(request.collection)
    if short == "ReembedCollection":  # source, new target collection, re-pointed alias
        if not request.HasField("target") or request.target not in allowed:
            return f"{key.label} must name a target collection of its own"
        if request.HasField("alias"):
            current = _aliases().get(request.alias)
            if current is not None and current not in allowed:
                return f"{key.label} may not re-point alias {request.alias!r}"
        return denied(request.collection)
    if short == "DeleteAlias":
        current = _aliases().get(request.alias)
        return None if current in allowed else f"{key.label} may not delete alias " \
                                               f"{request.alias!r}"
    if method in LISTING:
        coll = _field(request, "collection")
        if coll and request.HasField("collection"):
            return denied(coll)
        return None
    for name in ("collection", "name"):
        value = _field(request, name)
        if value is not None:
            return denied(value)
    return f"{key.label} is limited to collections and may not call {short}"


def filter_response(method: str, response: Any, key: KeySpec | None) -> Any:
    """Drop out-of-scope entries from ListCollections / ListAliases / ListSnapshots answers."""
    if key is None or key.collections is None:
        return response
    short = method.rsplit("/", 1)[-1]
    if short == "ListCollections":
        keep = [c for c in response.collections if c.name in key.collections]
        del response.collections[:]
        response.collections.extend(keep)
    elif short == "ListSnapshots":
        keep = [x for x in response.snapshots if x.collection in key.collections]
        del response.snapshots[:]
        response.snapshots.extend(keep)
    elif short == "ListAliases":
        for alias in [a for a, c in response.aliases.items() if c not in key.collections]:
            del response.aliases[alias]
    return response


def _tenant_value(request: Any) -> str | int | None:
    t = request.tenant
    which = t.WhichOneof("value")
    return None if which is None else getattr(t, which)


def tenant_denial(method: str, request: Any, key: KeySpec) -> str | None:
    """Why a tenant-scoped ``key`` may not make this request (None = allowed); an
    allowed request gets the key's tenant set in its ``tenant`` field."""
    short = method.rsplit("/", 1)[-1]
    if method == _C + "GetServerInfo":
        return None
    field = request.DESCRIPTOR.fields_by_name.get("tenant")
    if method in TENANT_UNSCOPABLE or field is None or field.message_type is None:
        return f"{key.label} is limited to one tenant and may not call {short}"
    if request.HasField("tenant") and _tenant_value(request) != key.tenant:
        return f"{key.label} may act only in its own tenant"
    if isinstance(key.tenant, str):
        request.tenant.text = key.tenant
    else:
        request.tenant.number = key.tenant
    return None
