from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ReshardCollectionRequest(_message.Message):
    __slots__ = ("collection", "shards")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    shards: int
    def __init__(self, collection: _Optional[str] = ..., shards: _Optional[int] = ...) -> None: ...

class ReshardCollectionResponse(_message.Message):
    __slots__ = ("done", "shards", "state", "copied")
    DONE_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    COPIED_FIELD_NUMBER: _ClassVar[int]
    done: bool
    shards: int
    state: str
    copied: int
    def __init__(self, done: _Optional[bool] = ..., shards: _Optional[int] = ..., state: _Optional[str] = ..., copied: _Optional[int] = ...) -> None: ...

class ReplicaPositionRequest(_message.Message):
    __slots__ = ("local", "set", "term", "n", "keys")
    LOCAL_FIELD_NUMBER: _ClassVar[int]
    SET_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    N_FIELD_NUMBER: _ClassVar[int]
    KEYS_FIELD_NUMBER: _ClassVar[int]
    local: str
    set: bool
    term: int
    n: int
    keys: _containers.RepeatedCompositeFieldContainer[WriteKeyRecord]
    def __init__(self, local: _Optional[str] = ..., set: _Optional[bool] = ..., term: _Optional[int] = ..., n: _Optional[int] = ..., keys: _Optional[_Iterable[_Union[WriteKeyRecord, _Mapping]]] = ...) -> None: ...

class WriteKeyRecord(_message.Message):
    __slots__ = ("key", "digest", "answer", "at")
    KEY_FIELD_NUMBER: _ClassVar[int]
    DIGEST_FIELD_NUMBER: _ClassVar[int]
    ANSWER_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    key: str
    digest: str
    answer: str
    at: float
    def __init__(self, key: _Optional[str] = ..., digest: _Optional[str] = ..., answer: _Optional[str] = ..., at: _Optional[float] = ...) -> None: ...

class ReplicaPositionResponse(_message.Message):
    __slots__ = ("known", "term", "n")
    KNOWN_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    N_FIELD_NUMBER: _ClassVar[int]
    known: bool
    term: int
    n: int
    def __init__(self, known: _Optional[bool] = ..., term: _Optional[int] = ..., n: _Optional[int] = ...) -> None: ...

class RemoveNodeRequest(_message.Message):
    __slots__ = ("node",)
    NODE_FIELD_NUMBER: _ClassVar[int]
    node: str
    def __init__(self, node: _Optional[str] = ...) -> None: ...

class RemoveNodeResponse(_message.Message):
    __slots__ = ("replicas",)
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    replicas: int
    def __init__(self, replicas: _Optional[int] = ...) -> None: ...

class PlanRebalanceRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ReplicaMove(_message.Message):
    __slots__ = ("collection", "shard", "source", "target", "phase", "copied_bytes", "copied_records", "total_records", "copy")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    SHARD_FIELD_NUMBER: _ClassVar[int]
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    COPIED_BYTES_FIELD_NUMBER: _ClassVar[int]
    COPIED_RECORDS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_RECORDS_FIELD_NUMBER: _ClassVar[int]
    COPY_FIELD_NUMBER: _ClassVar[int]
    collection: str
    shard: int
    source: str
    target: str
    phase: str
    copied_bytes: int
    copied_records: int
    total_records: int
    copy: str
    def __init__(self, collection: _Optional[str] = ..., shard: _Optional[int] = ..., source: _Optional[str] = ..., target: _Optional[str] = ..., phase: _Optional[str] = ..., copied_bytes: _Optional[int] = ..., copied_records: _Optional[int] = ..., total_records: _Optional[int] = ..., copy: _Optional[str] = ...) -> None: ...

class RebalancePlan(_message.Message):
    __slots__ = ("rebalancer", "in_progress", "planned")
    REBALANCER_FIELD_NUMBER: _ClassVar[int]
    IN_PROGRESS_FIELD_NUMBER: _ClassVar[int]
    PLANNED_FIELD_NUMBER: _ClassVar[int]
    rebalancer: str
    in_progress: _containers.RepeatedCompositeFieldContainer[ReplicaMove]
    planned: _containers.RepeatedCompositeFieldContainer[ReplicaMove]
    def __init__(self, rebalancer: _Optional[str] = ..., in_progress: _Optional[_Iterable[_Union[ReplicaMove, _Mapping]]] = ..., planned: _Optional[_Iterable[_Union[ReplicaMove, _Mapping]]] = ...) -> None: ...

class DrainNodeRequest(_message.Message):
    __slots__ = ("node",)
    NODE_FIELD_NUMBER: _ClassVar[int]
    node: str
    def __init__(self, node: _Optional[str] = ...) -> None: ...

class DrainNodeResponse(_message.Message):
    __slots__ = ("moved", "kept")
    MOVED_FIELD_NUMBER: _ClassVar[int]
    KEPT_FIELD_NUMBER: _ClassVar[int]
    moved: _containers.RepeatedScalarFieldContainer[str]
    kept: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, moved: _Optional[_Iterable[str]] = ..., kept: _Optional[_Iterable[str]] = ...) -> None: ...

class ClusterStatusRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ClusterNodeInfo(_message.Message):
    __slots__ = ("id", "address", "zone", "replicas", "primaries", "removing")
    ID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    ZONE_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    PRIMARIES_FIELD_NUMBER: _ClassVar[int]
    REMOVING_FIELD_NUMBER: _ClassVar[int]
    id: str
    address: str
    zone: str
    replicas: int
    primaries: int
    removing: bool
    def __init__(self, id: _Optional[str] = ..., address: _Optional[str] = ..., zone: _Optional[str] = ..., replicas: _Optional[int] = ..., primaries: _Optional[int] = ..., removing: _Optional[bool] = ...) -> None: ...

class ReplicaStatus(_message.Message):
    __slots__ = ("node", "in_sync", "points", "applied_seq")
    NODE_FIELD_NUMBER: _ClassVar[int]
    IN_SYNC_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    APPLIED_SEQ_FIELD_NUMBER: _ClassVar[int]
    node: str
    in_sync: bool
    points: int
    applied_seq: int
    def __init__(self, node: _Optional[str] = ..., in_sync: _Optional[bool] = ..., points: _Optional[int] = ..., applied_seq: _Optional[int] = ...) -> None: ...

class ShardMapEntry(_message.Message):
    __slots__ = ("collection", "shard", "primary", "term", "replicas")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    SHARD_FIELD_NUMBER: _ClassVar[int]
    PRIMARY_FIELD_NUMBER: _ClassVar[int]
    TERM_FIELD_NUMBER: _ClassVar[int]
    REPLICAS_FIELD_NUMBER: _ClassVar[int]
    collection: str
    shard: int
    primary: str
    term: int
    replicas: _containers.RepeatedCompositeFieldContainer[ReplicaStatus]
    def __init__(self, collection: _Optional[str] = ..., shard: _Optional[int] = ..., primary: _Optional[str] = ..., term: _Optional[int] = ..., replicas: _Optional[_Iterable[_Union[ReplicaStatus, _Mapping]]] = ...) -> None: ...

class ClusterStatus(_message.Message):
    __slots__ = ("node", "nodes", "shards", "moves", "rebalancer", "reshards")
    NODE_FIELD_NUMBER: _ClassVar[int]
    NODES_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    MOVES_FIELD_NUMBER: _ClassVar[int]
    REBALANCER_FIELD_NUMBER: _ClassVar[int]
    RESHARDS_FIELD_NUMBER: _ClassVar[int]
    node: str
    nodes: _containers.RepeatedCompositeFieldContainer[ClusterNodeInfo]
    shards: _containers.RepeatedCompositeFieldContainer[ShardMapEntry]
    moves: _containers.RepeatedCompositeFieldContainer[ReplicaMove]
    rebalancer: str
    reshards: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, node: _Optional[str] = ..., nodes: _Optional[_Iterable[_Union[ClusterNodeInfo, _Mapping]]] = ..., shards: _Optional[_Iterable[_Union[ShardMapEntry, _Mapping]]] = ..., moves: _Optional[_Iterable[_Union[ReplicaMove, _Mapping]]] = ..., rebalancer: _Optional[str] = ..., reshards: _Optional[_Iterable[str]] = ...) -> None: ...
