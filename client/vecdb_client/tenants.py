"""Tenants (collections created with ``tenant_field``, docs/tenants.md): the ``tenant=``
argument of the point calls, and the tenant methods :class:`Client` and
:class:`AsyncClient` get from the two mixins here (same names, same arguments)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ._proto.vecdb.v1 import tenants_pb2 as tnpb
from ._proto.vecdb.v1 import tenants_pb2_grpc as tngrpc
from ._proto.vecdb.v1 import types_pb2 as tpb
from .errors import InvalidArgumentError


@dataclass(frozen=True)
class TenantInfo:
    """A tenant's usage and limits (0 = no limit); ``bytes`` counts payload JSON, text and
    float32 vector bytes of its points."""
    tenant: str | int
    points: int
    bytes: int
    max_points: int
    max_bytes: int


def to_proto(tenant: str | int) -> tpb.Tenant:
    if isinstance(tenant, str):
        return tpb.Tenant(text=tenant)
    if isinstance(tenant, int) and not isinstance(tenant, bool):
        return tpb.Tenant(number=tenant)
    raise InvalidArgumentError(f"tenant must be a string or an integer, got "
                               f"{type(tenant).__name__}", field="tenant")


def scoped(request: Any, tenant: str | int | None) -> Any:
    """``request`` with its tenant field set (unchanged for None)."""
    if tenant is not None:
        request.tenant.CopyFrom(to_proto(tenant))
    return request


def default_tenant(request: Any, tenant: str | int) -> Any:
    """``request`` with ``tenant`` set where it has a tenant field left unset (not on a
    DescribeCollection: a tenant there asks for the tenant's redacted view)."""
    fields = getattr(getattr(request, "DESCRIPTOR", None), "fields_by_name", {})
    if "tenant" in fields and not request.HasField("tenant") \
            and request.DESCRIPTOR.name != "DescribeCollectionRequest":
        request.tenant.CopyFrom(to_proto(tenant))
    return request


def info_of(msg: tnpb.TenantInfo) -> TenantInfo:
    which = msg.tenant.WhichOneof("value")
    return TenantInfo(getattr(msg.tenant, which) if which else "", msg.points, msg.bytes,
                      msg.max_points, msg.max_bytes)


def _request(collection: str, tenant: str | int | None) -> tnpb.TenantRequest:
    return scoped(tnpb.TenantRequest(collection=collection), tenant)


def _quota_request(collection: str, tenant: str | int, max_points: int,
                   max_bytes: int) -> tnpb.SetTenantQuotaRequest:
    return tnpb.SetTenantQuotaRequest(collection=collection, tenant=to_proto(tenant),
                                      max_points=max_points, max_bytes=max_bytes)


class TenantMethods:
    """Tenant management, mixed into :class:`vecdb_client.Client`."""

    tenant: str | int | None = None  # the default tenant (Client(tenant=...))

    @property
    def _tenants(self) -> tngrpc.TenantServiceStub:
        stub = self.__dict__.get("_tenants_stub")
        if stub is None:
            stub = self.__dict__["_tenants_stub"] = tngrpc.TenantServiceStub(self._channel)
        return stub

    def list_tenants(self, collection: str, *, timeout: float | None = None) -> list[TenantInfo]:
        """Every tenant of the collection with its usage and limits (a key without a
        tenant only)."""
        resp = self._call(self._tenants.ListTenants, tnpb.ListTenantsRequest(collection=collection),
                          idempotent=True, timeout=timeout)
        return [info_of(t) for t in resp.tenants]

    def get_tenant(self, collection: str, tenant: str | int | None = None, *,
                   timeout: float | None = None) -> TenantInfo:
        """One tenant's usage and limits (None: a tenant-scoped key's own)."""
        return info_of(self._call(self._tenants.GetTenant, _request(collection, tenant),
                                  idempotent=True, timeout=timeout))

    def set_tenant_quota(self, collection: str, tenant: str | int, *, max_points: int = 0,
                         max_bytes: int = 0, timeout: float | None = None) -> TenantInfo:
        """Limit a tenant (0 = no limit); writes past a limit raise ResourceExhaustedError.
        A limit below current usage raises InvalidArgumentError naming it. Makes an unknown
        tenant known (its reads answer empty)."""
        return info_of(self._call(self._tenants.SetTenantQuota,
                                  _quota_request(collection, tenant, max_points, max_bytes),
                                  idempotent=True, timeout=timeout))

    def drop_tenant(self, collection: str, tenant: str | int | None = None, *,
                    timeout: float | None = None) -> int:
        """Delete every point of the tenant (and its quota) atomically; returns how many."""
        return self._call(self._tenants.DropTenant, _request(collection, tenant),
                          idempotent=True, write=True, timeout=timeout).deleted


class AsyncTenantMethods(TenantMethods):
    """The awaitable twins, mixed into :class:`vecdb_client.AsyncClient`."""

    async def list_tenants(self, collection: str, *,  # type: ignore[override]
                           timeout: float | None = None) -> list[TenantInfo]:
        resp = await self._call(self._tenants.ListTenants,
                                tnpb.ListTenantsRequest(collection=collection),
                                idempotent=True, timeout=timeout)
        return [info_of(t) for t in resp.tenants]

    async def get_tenant(self, collection: str, tenant: str | int | None = None, *,  # type: ignore[override]
                         timeout: float | None = None) -> TenantInfo:
        return info_of(await self._call(self._tenants.GetTenant, _request(collection, tenant),
                                        idempotent=True, timeout=timeout))

    async def set_tenant_quota(self, collection: str, tenant: str | int, *,  # type: ignore[override]
                               max_points: int = 0, max_bytes: int = 0,
                               timeout: float | None = None) -> TenantInfo:
        return info_of(await self._call(self._tenants.SetTenantQuota,
                                        _quota_request(collection, tenant, max_points, max_bytes),
                                        idempotent=True, timeout=timeout))

    async def drop_tenant(self, collection: str, tenant: str | int | None = None, *,  # type: ignore[override]
                          timeout: float | None = None) -> int:
        resp = await self._call(self._tenants.DropTenant, _request(collection, tenant),
                                idempotent=True, write=True, timeout=timeout)
        return resp.deleted
