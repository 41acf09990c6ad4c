"""vecdb: a durable, sharded vector database engine over FAISS and RocksDB."""
__version__ = "0.1.0"  # before the imports: submodules read it

from .api import Database
from .config import DatabaseOptions
from .errors import (AlreadyExists, FailedPrecondition, InvalidArgument, NotFound,
                     ResourceExhausted, Unavailable, VecdbError)
from .types import (CollectionConfig, CollectionDescription, Hit, IndexSpec, Point, ScrollPage,
                    SearchParams, SearchResult, ShardStats, WriteResult)

__all__ = ["Database", "DatabaseOptions", "VecdbError", "InvalidArgument", "NotFound", "AlreadyExists",
           "FailedPrecondition", "ResourceExhausted", "Unavailable", "CollectionConfig",
           "CollectionDescription", "Hit", "IndexSpec", "Point", "ScrollPage", "SearchParams",
           "SearchResult", "ShardStats", "WriteResult"]
