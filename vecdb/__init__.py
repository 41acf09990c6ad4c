"""vecdb: a durable, sharded vector database engine over FAISS and RocksDB."""
__version__ = "0.1.0"  # before the imports: submodules read it

from .api import Database
from .config import DatabaseOptions
from .errors import (AlreadyExists, FailedPrecondition, InvalidArgument, NotFound,
                     ResourceExhausted, Unavailable, VecdbError)
from .types import (CollectionConfig, CollectionDescription, Hit, IndexSpec, Point, ScrollPage,
                    SearchParams, SearchResult, ShardStats, WriteResult)



def connect(path, **kw):
    """The SDK's face over a data directory in this process, no server needed:
    ``with vecdb.connect("./data") as db: db.search(...)`` has the methods, arguments,
    results and errors of ``vecdb_client.Client`` (docs/server_api.md "Embedded mode").
    The directory can later be served by ``vecdb-server`` unchanged. Imported lazily: the
    engine itself never loads grpc or the server layer."""
    from vecdb_server.embedded import connect as _connect
    return _connect(path, **kw)


def connect_async(path, **kw):
    """The asyncio twin of :func:`connect` (``vecdb_client.AsyncClient``'s methods):
    ``async with vecdb.connect_async("./data") as db: await db.search(...)``."""
    from vecdb_server.embedded import connect_async as _connect_async
    return _connect_async(path, **kw)


__all__ = ["connect", "connect_async", "Database", "DatabaseOptions", "VecdbError", "InvalidArgument", "NotFound", "AlreadyExists",
           "FailedPrecondition", "ResourceExhausted", "Unavailable", "CollectionConfig",
           "CollectionDescription", "Hit", "IndexSpec", "Point", "ScrollPage", "SearchParams",
           "SearchResult", "ShardStats", "WriteResult"]
