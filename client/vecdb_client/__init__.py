"""vecdb_client: thin Python SDK for the vecdb server (grpcio + protobuf + numpy only).

    from vecdb_client import Client
    with Client("127.0.0.1:50051") as c:
        c.create_collection("docs", dim=384)
        c.upsert("docs", ids, vectors, payloads)
        hits = c.search("docs", vector=q, k=10)
"""
from .aio import AsyncClient
from .client import Client
from .errors import (AlreadyExistsError, DeadlineExceededError, FailedPreconditionError,
                     InternalError, InvalidArgumentError, NotFoundError, PermissionDeniedError,
                     ResourceExhaustedError, RpcCancelledError, UnauthenticatedError,
                     UnavailableError, VecdbClientError)
from .filters import F
from .models import (CollectionConfig, CollectionInfo, Group, Hit, PayloadIndexInfo, Point,
                     ScrollPage, ShardStats, SnapshotInfo, WriteResult)
from .tenants import TenantInfo

__version__ = "0.1.0"
__all__ = [
    "Client", "AsyncClient", "F", "Group", "Hit", "Point", "ScrollPage", "WriteResult",
    "CollectionConfig", "CollectionInfo", "PayloadIndexInfo", "ShardStats", "SnapshotInfo", "VecdbClientError", "InvalidArgumentError",
    "NotFoundError", "AlreadyExistsError", "FailedPreconditionError", "ResourceExhaustedError",
    "UnavailableError", "DeadlineExceededError", "UnauthenticatedError",
    "PermissionDeniedError", "InternalError", "RpcCancelledError", "TenantInfo",
]
