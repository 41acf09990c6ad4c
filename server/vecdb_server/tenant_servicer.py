"""Tenants on the wire: the Tenant message <-> its value, and the TenantService servicer
(list, get, quota, drop; vecdb/tenants.py). Single node only: cluster mode does not
register it and refuses tenant_field and tenant-scoped requests (docs/tenants.md)."""
from __future__ import annotations

from typing import Any

from vecdb_client._proto.vecdb.v1 import collections_pb2 as cpb
from vecdb_client._proto.vecdb.v1 import tenants_pb2 as tnpb
from vecdb_client._proto.vecdb.v1 import tenants_pb2_grpc as tngrpc
from vecdb_client._proto.vecdb.v1 import types_pb2 as tpb

from vecdb.errors import InvalidArgument

from .engine import EngineHolder


def from_proto_tenant(msg: Any, name: str = "tenant") -> str | int | None:
    """The tenant a request names (its ``tenant`` field), None when unset."""
    if name not in msg.DESCRIPTOR.fields_by_name or not msg.HasField(name):
        return None
    t = getattr(msg, name)
    which = t.WhichOneof("value")
    if which is None:
        raise InvalidArgument("tenant is set but empty: give text or number", "tenant")
    return getattr(t, which)


def to_proto_tenant(value: str | int) -> tpb.Tenant:
    return tpb.Tenant(text=value) if isinstance(value, str) else tpb.Tenant(number=value)


def tenant_view(info: cpb.CollectionInfo, points: int) -> cpb.CollectionInfo:
    """DescribeCollection as one tenant sees it (docs/tenants.md): only what says nothing
    of other tenants is copied (config, aliases, index state and parameters, payload
    index types and states), ``points`` is the tenant's; shards, sizes, memory and the
    re-embed and clustering progress (counts over every tenant) are left out."""
    out = cpb.CollectionInfo(config=info.config, points=points, index_state=info.index_state,
                             aliases=info.aliases, default_index_params=info.default_index_params)
    out.effective_index_params.update(info.effective_index_params)
    for name, idx in info.payload_indexes.items():
        out.payload_indexes[name].CopyFrom(idx)
    return out


def to_proto_tenant_info(info: dict) -> tnpb.TenantInfo:
    return tnpb.TenantInfo(tenant=to_proto_tenant(info["tenant"]), points=info["points"],
                           bytes=info["bytes"], max_points=info["max_points"],
                           max_bytes=info["max_bytes"])


class TenantServicer(tngrpc.TenantServiceServicer):
    def __init__(self, engine: EngineHolder):
        self._engine = engine

    def ListTenants(self, request: tnpb.ListTenantsRequest, context: Any) -> tnpb.ListTenantsResponse:
        with self._engine.session() as db:
            infos = db.list_tenants(request.collection)
        return tnpb.ListTenantsResponse(tenants=[to_proto_tenant_info(i) for i in infos])

    def GetTenant(self, request: tnpb.TenantRequest, context: Any) -> tnpb.TenantInfo:
        with self._engine.session() as db:
            return to_proto_tenant_info(db.tenant_info(request.collection,
                                                       from_proto_tenant(request)))

    def SetTenantQuota(self, request: tnpb.SetTenantQuotaRequest, context: Any) -> tnpb.TenantInfo:
        with self._engine.session() as db:
            return to_proto_tenant_info(db.set_tenant_quota(
                request.collection, from_proto_tenant(request), request.max_points,
                request.max_bytes))

    def DropTenant(self, request: tnpb.TenantRequest, context: Any) -> tnpb.DropTenantResponse:
        with self._engine.session() as db:
            deleted = db.drop_tenant(request.collection, from_proto_tenant(request))
        return tnpb.DropTenantResponse(deleted=deleted)
