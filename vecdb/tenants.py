"""Multi-tenancy in one collection: the per-shard tenant partition and the collection's
tenant registry (docs/tenants.md).

A collection created with ``tenant_field="customer"`` keeps every point's tenant in
that top-level payload field (a string or an integer). Each shard holds a
:class:`TenantIndex` (tenant -> its labels, label -> tenant and record bytes), derived
state like the payload indexes: rebuilt from the RocksDB records when the shard opens,
kept current by every applied write. A read scoped to a tenant is a
:class:`~vecdb.filters.TenantScope` filter node; the planner answers it from the
partition (vecdb/tenant_search.py), so its cost follows the tenant's size.

:class:`TenantRegistry` (one per tenant collection) validates writes under the
collection's write lock (every payload names a tenant of the right type; a point never
moves to another tenant; quotas), and lists, counts, drops and limits tenants. Quotas
are stored in RocksDB inside the collection's key range (dropped with it).
"""
from __future__ import annotations

import json
import zlib
from typing import Any

import numpy as np

from . import filters, records, validation
from .errors import FailedPrecondition, InvalidArgument, ResourceExhausted
from .filters import Cond, TenantScope, scalar_key
from .storage import U32

MAX_TENANT_CHARS = 256
# A tenant of at most this many points is searched shard after shard in the caller's
# thread: handing its few vectors to the search pool costs more than scoring them.
INLINE_MAX = 5_000
_EMPTY = np.zeros(0, np.int64)
_NUMBER = 0xFFFFFFFF


# ---- values ------------------------------------------------------------------
def check_field(value: Any) -> str:
    """A tenant_field: a top-level payload key (no dots, not the text)."""
    if not isinstance(value, str) or not value or len(value) > 256 or "." in value \
            or value.startswith("$"):
        raise InvalidArgument(f"tenant_field must be a top-level payload key (1-256 characters, "
                              f"no '.', not starting with '$'), got {value!r}", "tenant_field")
    return value


def key_of(value: Any, field: str) -> tuple:
    """The partition key of a tenant value: a non-empty string (<= 256 characters) or an
    integer (not a bool); anything else is InvalidArgument naming ``field``."""
    if isinstance(value, str):
        if not value or len(value) > MAX_TENANT_CHARS:
            raise InvalidArgument(f"{field} must be 1-{MAX_TENANT_CHARS} characters, got "
                                  f"{len(value)}", field)
        return ("s", value)
    if isinstance(value, int) and not isinstance(value, bool):
        if abs(value) >= 1 << 53:  # kept exactly by the JSON payload and the filters
            raise InvalidArgument(f"{field} must be an integer of magnitude below 2**53", field)
        return scalar_key(value)
    raise InvalidArgument(f"{field} must be a string or an integer, got "
                          f"{type(value).__name__}", field)


def value_of(key: tuple) -> str | int:
    return key[1] if key[0] == "s" else int(key[1])


def _stored_key(payload: Any, field: str) -> tuple | None:
    if not isinstance(payload, dict):
        return None
    try:
        return key_of(payload.get(field), field)
    except InvalidArgument:
        return None


# ---- the per-shard partition --------------------------------------------------
class TenantIndex:
    """tenant key -> labels and bytes; label -> its tenant and record bytes, packed in one
    int (bytes << 32 | the tenant's number: one dict entry a point). Mutated only by the
    shard's writers (under its write lock); readers hold its read lock."""

    def __init__(self, field: str, dim: int) -> None:
        self.field, self.vec_bytes = field, 4 * dim
        self.labels: dict[tuple, set[int]] = {}
        self.bytes: dict[tuple, int] = {}
        self._meta: dict[int, int] = {}
        self._number: dict[tuple, int] = {}  # tenant key -> its number in _keys
        self._keys: list[tuple] = []
        self._sorted: dict[tuple, np.ndarray] = {}

    def tenant_of(self, label: int) -> tuple | None:
        m = self._meta.get(label)
        return None if m is None else self._keys[m & _NUMBER]

    def size_of(self, label: int) -> int:
        return self._meta[label] >> 32

    def add(self, label: int, key: tuple | None, nbytes: int) -> None:
        if key is None:
            return
        self.remove(label)
        number = self._number.get(key)
        if number is None:
            number = self._number[key] = len(self._keys)
            self._keys.append(key)
        self.labels.setdefault(key, set()).add(label)
        self.bytes[key] = self.bytes.get(key, 0) + nbytes
        self._meta[label] = nbytes << 32 | number
        self._sorted.pop(key, None)

    def remove(self, label: int) -> None:
        m = self._meta.pop(label, None)
        if m is None:
            return
        key, nbytes = self._keys[m & _NUMBER], m >> 32
        post = self.labels[key]
        post.discard(label)
        self._sorted.pop(key, None)
        if post:
            self.bytes[key] -= nbytes
        else:
            del self.labels[key], self.bytes[key]

    def resize(self, label: int, nbytes: int) -> None:
        m = self._meta.get(label)
        if m is not None:
            self.bytes[self._keys[m & _NUMBER]] += nbytes - (m >> 32)
            self._meta[label] = nbytes << 32 | (m & _NUMBER)

    def sorted_labels(self, key: tuple) -> np.ndarray:
        got = self._sorted.get(key)
        if got is None:
            post = self.labels.get(key)
            if not post:
                return _EMPTY
            got = np.fromiter(post, np.int64, len(post))
            got.sort()
            self._sorted[key] = got
        return got

    def apply(self, removed: np.ndarray, added: np.ndarray, payloads: list | None,
              texts: list | None) -> None:
        for lab in removed.tolist():
            self.remove(lab)
        if not payloads:
            return
        for j, lab in enumerate(added.tolist()):
            pay = payloads[j]
            txt = texts[j] if texts else None
            self.add(lab, _stored_key(records.load_json(pay), self.field),
                     len(pay or b"") + len(txt or b"") + self.vec_bytes)

    def rebuild(self, raw_records) -> None:
        """From (label, stored record bytes) pairs (Shard.recover)."""
        for lab, raw in raw_records:
            _, n_pay, n_text = records.HEAD.unpack_from(raw, 0)
            _, pay, _ = records.decode(raw, with_text=False)
            nbytes = (0 if n_pay == records.ABSENT else n_pay) + \
                (0 if n_text == records.ABSENT else n_text) + self.vec_bytes
            self.add(lab, _stored_key(pay, self.field), nbytes)


# ---- the collection's registry -----------------------------------------------------
class TenantRegistry:
    """Tenant validation, listing, quotas and drops of one tenant collection."""

    def __init__(self, coll) -> None:
        self.coll, self.field = coll, coll.config.tenant_field
        self.store = coll.store
        self._prefix = quota_prefix(coll.config.uid)
        self.quotas: dict[tuple, tuple[int, int]] = {}  # key -> (max_points, max_bytes); 0 = none
        for k, raw in self.store.scan(self._prefix, self._prefix + b"\xff"):
            self.quotas[key_of(json.loads(k[len(self._prefix):]), "tenant")] = \
                tuple(json.loads(raw))

    # -- scoping reads and writes
    def key(self, tenant: Any) -> tuple:
        """The key of a request's tenant; missing or wrong-typed -> InvalidArgument naming
        ``tenant``. Every well-typed tenant exists logically: one without points (new, or
        just dropped) reads as empty."""
        if tenant is None:
            raise InvalidArgument(f"tenant is required: collection {self.coll.config.name!r} "
                                  f"is partitioned by tenant_field {self.field!r}", "tenant")
        return key_of(tenant, "tenant")

    def scope(self, tenant: Any, filter: Any) -> TenantScope:
        """The filter node of a read or filtered write in ``tenant``."""
        key = self.key(tenant)
        size = sum(len(s.tenants.labels.get(key, ())) for s in self.coll.shards)
        return TenantScope.of(Cond(self.field, "match", key, "tenant"), filters.parse(filter),
                              key, size <= INLINE_MAX)

    def own_ids(self, key: tuple, ids: list[str]) -> list[str]:
        """Those of ``ids`` that are points of tenant ``key`` (the others are invisible).
        Callers hold the collection's write lock, so no point changes tenant meanwhile."""
        shards = self.coll.shards
        return [pid for pid, at in zip(ids, self._where(ids))
                if at is not None and shards[at[0]].tenants.tenant_of(at[1]) == key]

    def others(self, points: list) -> list[str]:
        """Ids of ``points`` (decoded, with payloads) stored here under another tenant than
        their payload names (write lock held)."""
        shards = self.coll.shards
        return [p.id for p, at in zip(points, self._where([p.id for p in points]))
                if at is not None and
                shards[at[0]].tenants.tenant_of(at[1]) != _stored_key(p.payload, self.field)]

    def holds(self, key: tuple, payload: Any) -> bool:
        """Whether a point with this (decoded) payload is one of tenant ``key``'s."""
        return _stored_key(payload, self.field) == key

    # -- placement: a tenant's new points go to its home shard, so a small tenant's
    # search reads one shard; a stored point is found wherever it is
    def _where(self, ids: list[str]) -> list[tuple[int, int] | None]:
        """(shard, label) of each stored id, None for the others."""
        out: list[tuple[int, int] | None] = [None] * len(ids)
        for s, shard in enumerate(self.coll.shards):
            for j, lab in enumerate(shard.labels_of(ids)):
                if lab is not None:
                    out[j] = (s, lab)
        return out

    def home(self, key: tuple) -> int:
        return zlib.crc32(json.dumps(value_of(key)).encode()) % len(self.coll.shards)

    def locate(self, ids: list[str]) -> dict[int, list[int]]:
        """Collection._route of a tenant collection: each id's shard (0 when not stored)."""
        groups: dict[int, list[int]] = {}
        for j, at in enumerate(self._where(ids)):
            groups.setdefault(0 if at is None else at[0], []).append(j)
        return groups

    def stamp(self, tenant: Any, payloads: Any, n: int) -> list:
        """Payloads of an upsert into ``tenant``: the tenant field set on each (a payload
        naming another tenant is InvalidArgument naming it)."""
        key = key_of(tenant, "tenant") if tenant is not None else None
        if key is None:
            return payloads
        pays = [None] * n if payloads is None else list(payloads)
        out = []
        for j, p in enumerate(pays):
            if p is None:
                p = {}
            if isinstance(p, dict):
                if self.field in p and _stored_key(p, self.field) != key:
                    raise InvalidArgument(f"payloads[{j}].{self.field} differs from the request's "
                                          f"tenant", f"payloads[{j}].{self.field}")
                p = {**p, self.field: tenant}
            out.append(p)
        return out

    def check_write(self, ids: list[str], payloads: list, texts: list | None
                    ) -> dict[int, list[int]]:
        """Under the write lock, before anything is written: every payload names a tenant
        of the right type, no point changes tenant, no quota is passed. Returns where the
        points go (shard -> rows): a stored point stays in its shard, a new one goes to
        its tenant's home shard."""
        keys = []
        for j, raw in enumerate(payloads):
            pay = records.load_json(raw)
            where = f"payloads[{j}].{self.field}"
            if not isinstance(pay, dict) or self.field not in pay:
                raise InvalidArgument(f"{where} is required: collection "
                                      f"{self.coll.config.name!r} is partitioned by it", where)
            keys.append(key_of(pay[self.field], where))
        vec_bytes = 4 * self.coll.config.dim
        delta: dict[tuple, list[int]] = {}
        groups: dict[int, list[int]] = {}
        for j, at in enumerate(self._where(ids)):
            d = delta.setdefault(keys[j], [0, 0])
            if at is not None:
                ti = self.coll.shards[at[0]].tenants
                if ti.tenant_of(at[1]) != keys[j]:
                    raise InvalidArgument(f"ids[{j}]: point {ids[j]!r} belongs to another "
                                          "tenant; a point cannot move between tenants "
                                          "(delete it there first)", f"ids[{j}]")
                d[0] -= 1
                d[1] -= ti.size_of(at[1])
            groups.setdefault(self.home(keys[j]) if at is None else at[0], []).append(j)
            txt = texts[j] if texts else None
            d[0] += 1
            d[1] += len(payloads[j] or b"") + len(txt or b"") + vec_bytes
        for key, (points, nbytes) in delta.items():
            max_points, max_bytes = self.quotas.get(key, (0, 0))
            if not (max_points or max_bytes):
                continue
            used_points, used_bytes = self.usage(key)
            if max_points and points > 0 and used_points + points > max_points:
                raise ResourceExhausted(f"tenant {value_of(key)!r} would hold "
                                        f"{used_points + points} points; its quota is "
                                        f"max_points={max_points}", "tenant")
            if max_bytes and nbytes > 0 and used_bytes + nbytes > max_bytes:
                raise ResourceExhausted(f"tenant {value_of(key)!r} would hold "
                                        f"{used_bytes + nbytes} bytes; its quota is "
                                        f"max_bytes={max_bytes}", "tenant")
        return groups

    def check_payloads(self, points: list, payloads: list):
        """check_write for a payload-only update of ``points`` ((id, payload, text) each,
        texts kept); returns what to call with (shard, labels) once it is applied, to
        re-count the tenants' bytes."""
        texts = [None if p[2] is None else p[2].encode("utf-8", "surrogatepass") for p in points]
        self.check_write([p[0] for p in points], payloads, texts)
        vec_bytes = 4 * self.coll.config.dim

        def resize(shard, labels: list[int]) -> None:
            for lab, pay, txt in zip(labels, payloads, texts):
                shard.tenants.resize(lab, len(pay or b"") + len(txt or b"") + vec_bytes)
        return resize

    # -- management
    def usage(self, key: tuple) -> tuple[int, int]:
        shards = self.coll.shards
        return (sum(len(s.tenants.labels.get(key, ())) for s in shards),
                sum(s.tenants.bytes.get(key, 0) for s in shards))

    def info(self, key: tuple) -> dict:
        points, nbytes = self.usage(key)
        max_points, max_bytes = self.quotas.get(key, (0, 0))
        return {"tenant": value_of(key), "points": points, "bytes": nbytes,
                "max_points": max_points, "max_bytes": max_bytes}

    def list(self) -> list[dict]:
        keys = set(self.quotas)
        for s in self.coll.shards:
            keys.update(s.tenants.labels)
        return [self.info(k) for k in sorted(keys, key=lambda k: (k[0] != "s", value_of(k)))]

    def set_quota(self, tenant: Any, max_points: Any, max_bytes: Any) -> dict:
        """Set (0: no limit) both limits of ``tenant``; it becomes known if it was not.
        A limit below the tenant's current usage is InvalidArgument naming it."""
        key = self.key(tenant)
        limits = []
        for name, v in (("max_points", max_points), ("max_bytes", max_bytes)):
            if v is None:
                v = 0
            if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < (1 << 63):
                raise InvalidArgument(f"{name} must be an integer >= 0 (0: no limit), got {v!r}",
                                      name)
            limits.append(v)
        with self.coll.write_lock:
            points, nbytes = self.usage(key)
            for name, limit, used in (("max_points", limits[0], points),
                                      ("max_bytes", limits[1], nbytes)):
                if limit and limit < used:
                    raise InvalidArgument(f"{name}={limit} is below the tenant's current usage "
                                          f"({used}); delete points first", name)
            wb = self.store.batch()
            wb.put(self._quota_key(key), json.dumps(limits).encode())
            self.store.write(wb)
            self.quotas[key] = (limits[0], limits[1])
        return self.info(key)

    def quota_list(self) -> list[list]:
        """[[tenant, max_points, max_bytes], ...]: what a snapshot keeps (put_quotas)."""
        return [[value_of(k), *limits] for k, limits in self.quotas.items()]

    def copy_quotas(self, other: TenantRegistry) -> None:
        """Take ``other``'s quotas, in one write (a re-embed's target at the swap)."""
        with self.coll.write_lock:
            wb = self.store.batch()
            put_quotas(wb, self.coll.config.uid, other.quota_list())
            self.store.write(wb)
            self.quotas.update(other.quotas)

    def drop(self, tenant: Any) -> int:
        """Delete every point of ``tenant`` and its quota as ONE atomic write batch;
        other tenants' writes wait for it (the collection's write lock). Returns the
        number of points deleted."""
        key = self.key(tenant)
        coll = self.coll
        with coll.write_lock:
            ids = [pid for s in coll.shards
                   for _, pid, _, _ in s.iter_records(s.tenants.sorted_labels(key))]
            wb = self.store.batch()
            ops = coll.prepare_delete(wb, ids)
            wb.delete(self._quota_key(key))
            if not ops:
                self.store.write(wb)
            coll._commit(wb, ops, len(ids))
            self.quotas.pop(key, None)
            return len(ids)

    def _quota_key(self, key: tuple) -> bytes:
        return self._prefix + json.dumps(value_of(key)).encode()


def quota_prefix(uid: int) -> bytes:
    """Where a collection's tenant quotas are stored: inside its key range (collection_range)."""
    return b"S" + U32.pack(uid) + b"\xfeq"


def put_quotas(wb, uid: int, quotas: list[list]) -> None:
    """Add quotas (TenantRegistry.quota_list) of collection ``uid`` to a write batch (a
    snapshot's restore)."""
    for tenant, max_points, max_bytes in quotas:
        wb.put(quota_prefix(uid) + json.dumps(tenant).encode(),
               json.dumps([max_points, max_bytes]).encode())


# ---- Database-level scoping (vecdb/api.py) ---------------------------------------------
def _registry(coll, tenant: Any) -> TenantRegistry | None:
    """The collection's registry when the call is tenant-scoped; a tenant named on a
    collection without tenant_field is InvalidArgument naming ``tenant``."""
    if coll.tenants is None and tenant is not None:
        raise InvalidArgument(f"tenant: collection {coll.config.name!r} has no tenant_field",
                              "tenant")
    return coll.tenants


def read_filter(coll, tenant: Any, filter: Any) -> Any:
    reg = _registry(coll, tenant)
    return filter if reg is None else reg.scope(tenant, filter)


def key_for(coll, tenant: Any) -> tuple | None:
    """The tenant key a call by ids acts within (None: a collection without tenant_field).
    The collection re-checks each id's tenant under its write lock, or on the records it
    read (Collection.get), so a point that changes tenant meanwhile is never acted on."""
    reg = _registry(coll, tenant)
    return None if reg is None else reg.key(tenant)


def selection(coll, tenant: Any, ids: Any, filter: Any) -> tuple[Any, Any, tuple | None]:
    """(ids, filter, tenant key) of a delete/update by ids or filter, within ``tenant``."""
    key = key_for(coll, tenant)
    if key is None:
        return ids, filter, None
    node = filters.parse(filter)
    return ids, None if node is None else coll.tenants.scope(tenant, node), key


def write_payloads(coll, tenant: Any, ids: Any, payloads: Any) -> Any:
    reg = _registry(coll, tenant)
    if reg is None or tenant is None:
        return payloads
    return reg.stamp(tenant, payloads, len(validation.ids(ids)))


def update_args(coll, tenant: Any, overwrite: Any, set_keys: Any, delete_keys: Any) -> Any:
    """A payload update keeps the tenant field: ``overwrite`` gets it, ``set`` and
    ``overwrite`` may name only the request's tenant there, ``delete_keys`` may not name it."""
    reg = _registry(coll, tenant)
    if reg is None:
        return overwrite
    if isinstance(delete_keys, list) and reg.field in delete_keys:
        raise InvalidArgument(f"delete_keys may not name the tenant field {reg.field!r}",
                              "delete_keys")
    if tenant is None:
        return overwrite
    key = key_of(tenant, "tenant")
    for name, pay in (("overwrite", overwrite), ("set", set_keys)):
        if isinstance(pay, dict) and reg.field in pay and _stored_key(pay, reg.field) != key:
            where = f"{name}.{reg.field}"
            raise InvalidArgument(f"{where} differs from the request's tenant; a point cannot "
                                  "move between tenants", where)
    return {**overwrite, reg.field: tenant} if isinstance(overwrite, dict) else overwrite


def refuse(coll, what: str) -> None:
    """Reads that cannot be scoped to a tenant yet are refused on tenant collections."""
    if coll.tenants is not None:
        raise FailedPrecondition(f"{what} is not available on tenant collections (collection "
                                 f"{coll.config.name!r} has tenant_field; docs/tenants.md)",
                                 "collection")
