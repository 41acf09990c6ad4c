from vecdb_client._proto.vecdb.v1 import analytics_pb2 as _analytics_pb2
from vecdb_client._proto.vecdb.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class CollectionConfig(_message.Message):
    __slots__ = ("name", "dim", "metric", "index", "shards", "encoder", "device", "replication_factor", "write_concern", "quantization", "rescore", "full_text", "sparse_dim", "vector_name", "vectors", "tenant_field", "on_disk")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    ENCODER_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    REPLICATION_FACTOR_FIELD_NUMBER: _ClassVar[int]
    WRITE_CONCERN_FIELD_NUMBER: _ClassVar[int]
    QUANTIZATION_FIELD_NUMBER: _ClassVar[int]
    RESCORE_FIELD_NUMBER: _ClassVar[int]
    FULL_TEXT_FIELD_NUMBER: _ClassVar[int]
    SPARSE_DIM_FIELD_NUMBER: _ClassVar[int]
    VECTOR_NAME_FIELD_NUMBER: _ClassVar[int]
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_FIELD_NUMBER: _ClassVar[int]
    ON_DISK_FIELD_NUMBER: _ClassVar[int]
    name: str
    dim: int
    metric: str
    index: _types_pb2.IndexSpec
    shards: int
    encoder: str
    device: str
    replication_factor: int
    write_concern: str
    quantization: str
    rescore: int
    full_text: str
    sparse_dim: int
    vector_name: str
    vectors: _containers.RepeatedCompositeFieldContainer[VectorField]
    tenant_field: str
    on_disk: bool
    def __init__(self, name: _Optional[str] = ..., dim: _Optional[int] = ..., metric: _Optional[str] = ..., index: _Optional[_Union[_types_pb2.IndexSpec, _Mapping]] = ..., shards: _Optional[int] = ..., encoder: _Optional[str] = ..., device: _Optional[str] = ..., replication_factor: _Optional[int] = ..., write_concern: _Optional[str] = ..., quantization: _Optional[str] = ..., rescore: _Optional[int] = ..., full_text: _Optional[str] = ..., sparse_dim: _Optional[int] = ..., vector_name: _Optional[str] = ..., vectors: _Optional[_Iterable[_Union[VectorField, _Mapping]]] = ..., tenant_field: _Optional[str] = ..., on_disk: _Optional[bool] = ...) -> None: ...

class ShardStats(_message.Message):
    __slots__ = ("points", "index_state", "index_type", "applied_seq", "checkpoint_seq", "deleted_pending", "device", "gpu_memory_bytes", "built_params", "gpu_served", "gpu_fallbacks", "gpu_ann", "gpu_placement_failures", "gpu_error", "memory_bytes", "vector_points")
    class BuiltParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class GpuServedEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class GpuFallbacksEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    class VectorPointsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    POINTS_FIELD_NUMBER: _ClassVar[int]
    INDEX_STATE_FIELD_NUMBER: _ClassVar[int]
    INDEX_TYPE_FIELD_NUMBER: _ClassVar[int]
    APPLIED_SEQ_FIELD_NUMBER: _ClassVar[int]
    CHECKPOINT_SEQ_FIELD_NUMBER: _ClassVar[int]
    DELETED_PENDING_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    GPU_MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    BUILT_PARAMS_FIELD_NUMBER: _ClassVar[int]
    GPU_SERVED_FIELD_NUMBER: _ClassVar[int]
    GPU_FALLBACKS_FIELD_NUMBER: _ClassVar[int]
    GPU_ANN_FIELD_NUMBER: _ClassVar[int]
    GPU_PLACEMENT_FAILURES_FIELD_NUMBER: _ClassVar[int]
    GPU_ERROR_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    VECTOR_POINTS_FIELD_NUMBER: _ClassVar[int]
    points: int
    index_state: str
    index_type: str
    applied_seq: int
    checkpoint_seq: int
    deleted_pending: int
    device: str
    gpu_memory_bytes: int
    built_params: _containers.ScalarMap[str, int]
    gpu_served: _containers.ScalarMap[str, int]
    gpu_fallbacks: _containers.ScalarMap[str, int]
    gpu_ann: str
    gpu_placement_failures: int
    gpu_error: str
    memory_bytes: int
    vector_points: _containers.ScalarMap[str, int]
    def __init__(self, points: _Optional[int] = ..., index_state: _Optional[str] = ..., index_type: _Optional[str] = ..., applied_seq: _Optional[int] = ..., checkpoint_seq: _Optional[int] = ..., deleted_pending: _Optional[int] = ..., device: _Optional[str] = ..., gpu_memory_bytes: _Optional[int] = ..., built_params: _Optional[_Mapping[str, int]] = ..., gpu_served: _Optional[_Mapping[str, int]] = ..., gpu_fallbacks: _Optional[_Mapping[str, int]] = ..., gpu_ann: _Optional[str] = ..., gpu_placement_failures: _Optional[int] = ..., gpu_error: _Optional[str] = ..., memory_bytes: _Optional[int] = ..., vector_points: _Optional[_Mapping[str, int]] = ...) -> None: ...

class CollectionInfo(_message.Message):
    __slots__ = ("config", "points", "shards", "index_state", "bytes_on_disk", "aliases", "payload_indexes", "reembed", "gpu_memory_bytes", "clustering", "effective_index_params", "default_index_params", "memory_bytes")
    class PayloadIndexesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: PayloadIndexInfo
        def __init__(self, key: _Optional[str] = ..., value: _Optional[_Union[PayloadIndexInfo, _Mapping]] = ...) -> None: ...
    class EffectiveIndexParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    CONFIG_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    INDEX_STATE_FIELD_NUMBER: _ClassVar[int]
    BYTES_ON_DISK_FIELD_NUMBER: _ClassVar[int]
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_INDEXES_FIELD_NUMBER: _ClassVar[int]
    REEMBED_FIELD_NUMBER: _ClassVar[int]
    GPU_MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    CLUSTERING_FIELD_NUMBER: _ClassVar[int]
    EFFECTIVE_INDEX_PARAMS_FIELD_NUMBER: _ClassVar[int]
    DEFAULT_INDEX_PARAMS_FIELD_NUMBER: _ClassVar[int]
    MEMORY_BYTES_FIELD_NUMBER: _ClassVar[int]
    config: CollectionConfig
    points: int
    shards: _containers.RepeatedCompositeFieldContainer[ShardStats]
    index_state: str
    bytes_on_disk: int
    aliases: _containers.RepeatedScalarFieldContainer[str]
    payload_indexes: _containers.MessageMap[str, PayloadIndexInfo]
    reembed: ReembedProgress
    gpu_memory_bytes: int
    clustering: _analytics_pb2.ClusterProgress
    effective_index_params: _containers.ScalarMap[str, int]
    default_index_params: _containers.RepeatedScalarFieldContainer[str]
    memory_bytes: int
    def __init__(self, config: _Optional[_Union[CollectionConfig, _Mapping]] = ..., points: _Optional[int] = ..., shards: _Optional[_Iterable[_Union[ShardStats, _Mapping]]] = ..., index_state: _Optional[str] = ..., bytes_on_disk: _Optional[int] = ..., aliases: _Optional[_Iterable[str]] = ..., payload_indexes: _Optional[_Mapping[str, PayloadIndexInfo]] = ..., reembed: _Optional[_Union[ReembedProgress, _Mapping]] = ..., gpu_memory_bytes: _Optional[int] = ..., clustering: _Optional[_Union[_analytics_pb2.ClusterProgress, _Mapping]] = ..., effective_index_params: _Optional[_Mapping[str, int]] = ..., default_index_params: _Optional[_Iterable[str]] = ..., memory_bytes: _Optional[int] = ...) -> None: ...

class ReembedProgress(_message.Message):
    __slots__ = ("source", "target", "encoder", "alias", "state", "done", "total", "caught_up", "error")
    SOURCE_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    ENCODER_FIELD_NUMBER: _ClassVar[int]
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    CAUGHT_UP_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    source: str
    target: str
    encoder: str
    alias: str
    state: str
    done: int
    total: int
    caught_up: int
    error: str
    def __init__(self, source: _Optional[str] = ..., target: _Optional[str] = ..., encoder: _Optional[str] = ..., alias: _Optional[str] = ..., state: _Optional[str] = ..., done: _Optional[int] = ..., total: _Optional[int] = ..., caught_up: _Optional[int] = ..., error: _Optional[str] = ...) -> None: ...

class ReembedCollectionRequest(_message.Message):
    __slots__ = ("collection", "encoder", "alias", "target", "batch_size")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    ENCODER_FIELD_NUMBER: _ClassVar[int]
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    TARGET_FIELD_NUMBER: _ClassVar[int]
    BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    collection: str
    encoder: str
    alias: str
    target: str
    batch_size: int
    def __init__(self, collection: _Optional[str] = ..., encoder: _Optional[str] = ..., alias: _Optional[str] = ..., target: _Optional[str] = ..., batch_size: _Optional[int] = ...) -> None: ...

class PayloadIndexInfo(_message.Message):
    __slots__ = ("type", "state")
    TYPE_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    type: str
    state: str
    def __init__(self, type: _Optional[str] = ..., state: _Optional[str] = ...) -> None: ...

class VectorField(_message.Message):
    __slots__ = ("name", "dim", "metric", "index", "encoder")
    NAME_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    ENCODER_FIELD_NUMBER: _ClassVar[int]
    name: str
    dim: int
    metric: str
    index: _types_pb2.IndexSpec
    encoder: str
    def __init__(self, name: _Optional[str] = ..., dim: _Optional[int] = ..., metric: _Optional[str] = ..., index: _Optional[_Union[_types_pb2.IndexSpec, _Mapping]] = ..., encoder: _Optional[str] = ...) -> None: ...

class CreateCollectionRequest(_message.Message):
    __slots__ = ("name", "dim", "metric", "index", "shards", "encoder", "payload_indexes", "device", "replication_factor", "write_concern", "quantization", "rescore", "full_text", "sparse_dim", "vector_name", "vectors", "tenant_field", "on_disk")
    class PayloadIndexesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    NAME_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    METRIC_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    SHARDS_FIELD_NUMBER: _ClassVar[int]
    ENCODER_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_INDEXES_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    REPLICATION_FACTOR_FIELD_NUMBER: _ClassVar[int]
    WRITE_CONCERN_FIELD_NUMBER: _ClassVar[int]
    QUANTIZATION_FIELD_NUMBER: _ClassVar[int]
    RESCORE_FIELD_NUMBER: _ClassVar[int]
    FULL_TEXT_FIELD_NUMBER: _ClassVar[int]
    SPARSE_DIM_FIELD_NUMBER: _ClassVar[int]
    VECTOR_NAME_FIELD_NUMBER: _ClassVar[int]
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_FIELD_NUMBER: _ClassVar[int]
    ON_DISK_FIELD_NUMBER: _ClassVar[int]
    name: str
    dim: int
    metric: str
    index: _types_pb2.IndexSpec
    shards: int
    encoder: str
    payload_indexes: _containers.ScalarMap[str, str]
    device: str
    replication_factor: int
    write_concern: str
    quantization: str
    rescore: int
    full_text: str
    sparse_dim: int
    vector_name: str
    vectors: _containers.RepeatedCompositeFieldContainer[VectorField]
    tenant_field: str
    on_disk: bool
    def __init__(self, name: _Optional[str] = ..., dim: _Optional[int] = ..., metric: _Optional[str] = ..., index: _Optional[_Union[_types_pb2.IndexSpec, _Mapping]] = ..., shards: _Optional[int] = ..., encoder: _Optional[str] = ..., payload_indexes: _Optional[_Mapping[str, str]] = ..., device: _Optional[str] = ..., replication_factor: _Optional[int] = ..., write_concern: _Optional[str] = ..., quantization: _Optional[str] = ..., rescore: _Optional[int] = ..., full_text: _Optional[str] = ..., sparse_dim: _Optional[int] = ..., vector_name: _Optional[str] = ..., vectors: _Optional[_Iterable[_Union[VectorField, _Mapping]]] = ..., tenant_field: _Optional[str] = ..., on_disk: _Optional[bool] = ...) -> None: ...

class ListCollectionsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListCollectionsResponse(_message.Message):
    __slots__ = ("collections",)
    COLLECTIONS_FIELD_NUMBER: _ClassVar[int]
    collections: _containers.RepeatedCompositeFieldContainer[CollectionConfig]
    def __init__(self, collections: _Optional[_Iterable[_Union[CollectionConfig, _Mapping]]] = ...) -> None: ...

class DescribeCollectionRequest(_message.Message):
    __slots__ = ("collection", "tenant")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    collection: str
    tenant: _types_pb2.Tenant
    def __init__(self, collection: _Optional[str] = ..., tenant: _Optional[_Union[_types_pb2.Tenant, _Mapping]] = ...) -> None: ...

class DropCollectionRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DropCollectionResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class AliasRequest(_message.Message):
    __slots__ = ("alias", "collection")
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    alias: str
    collection: str
    def __init__(self, alias: _Optional[str] = ..., collection: _Optional[str] = ...) -> None: ...

class DeleteAliasRequest(_message.Message):
    __slots__ = ("alias",)
    ALIAS_FIELD_NUMBER: _ClassVar[int]
    alias: str
    def __init__(self, alias: _Optional[str] = ...) -> None: ...

class AliasResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListAliasesRequest(_message.Message):
    __slots__ = ("collection",)
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    collection: str
    def __init__(self, collection: _Optional[str] = ...) -> None: ...

class ListAliasesResponse(_message.Message):
    __slots__ = ("aliases",)
    class AliasesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ALIASES_FIELD_NUMBER: _ClassVar[int]
    aliases: _containers.ScalarMap[str, str]
    def __init__(self, aliases: _Optional[_Mapping[str, str]] = ...) -> None: ...

class CreatePayloadIndexRequest(_message.Message):
    __slots__ = ("collection", "field", "type")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    collection: str
    field: str
    type: str
    def __init__(self, collection: _Optional[str] = ..., field: _Optional[str] = ..., type: _Optional[str] = ...) -> None: ...

class DropPayloadIndexRequest(_message.Message):
    __slots__ = ("collection", "field")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    FIELD_FIELD_NUMBER: _ClassVar[int]
    collection: str
    field: str
    def __init__(self, collection: _Optional[str] = ..., field: _Optional[str] = ...) -> None: ...

class PayloadIndexResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CreateSnapshotRequest(_message.Message):
    __slots__ = ("collection", "name", "tarball")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TARBALL_FIELD_NUMBER: _ClassVar[int]
    collection: str
    name: str
    tarball: bool
    def __init__(self, collection: _Optional[str] = ..., name: _Optional[str] = ..., tarball: _Optional[bool] = ...) -> None: ...

class SnapshotInfo(_message.Message):
    __slots__ = ("name", "collection", "created_at", "points", "bytes", "path")
    NAME_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    PATH_FIELD_NUMBER: _ClassVar[int]
    name: str
    collection: str
    created_at: float
    points: int
    bytes: int
    path: str
    def __init__(self, name: _Optional[str] = ..., collection: _Optional[str] = ..., created_at: _Optional[float] = ..., points: _Optional[int] = ..., bytes: _Optional[int] = ..., path: _Optional[str] = ...) -> None: ...

class ListSnapshotsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListSnapshotsResponse(_message.Message):
    __slots__ = ("snapshots",)
    SNAPSHOTS_FIELD_NUMBER: _ClassVar[int]
    snapshots: _containers.RepeatedCompositeFieldContainer[SnapshotInfo]
    def __init__(self, snapshots: _Optional[_Iterable[_Union[SnapshotInfo, _Mapping]]] = ...) -> None: ...

class DeleteSnapshotRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class DeleteSnapshotResponse(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class RestoreSnapshotRequest(_message.Message):
    __slots__ = ("name", "collection")
    NAME_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    name: str
    collection: str
    def __init__(self, name: _Optional[str] = ..., collection: _Optional[str] = ...) -> None: ...

class ServerInfoRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ServerInfo(_message.Message):
    __slots__ = ("version", "started_at", "uptime_s", "ready")
    VERSION_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    UPTIME_S_FIELD_NUMBER: _ClassVar[int]
    READY_FIELD_NUMBER: _ClassVar[int]
    version: str
    started_at: float
    uptime_s: float
    ready: bool
    def __init__(self, version: _Optional[str] = ..., started_at: _Optional[float] = ..., uptime_s: _Optional[float] = ..., ready: _Optional[bool] = ...) -> None: ...
