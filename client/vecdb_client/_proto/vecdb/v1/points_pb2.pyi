from vecdb_client._proto.vecdb.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class UpsertRequest(_message.Message):
    __slots__ = ("collection", "points", "batch_id", "tenant")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    collection: str
    points: _types_pb2.PointBatch
    batch_id: int
    tenant: _types_pb2.Tenant
    def __init__(self, collection: _Optional[str] = ..., points: _Optional[_Union[_types_pb2.PointBatch, _Mapping]] = ..., batch_id: _Optional[int] = ..., tenant: _Optional[_Union[_types_pb2.Tenant, _Mapping]] = ...) -> None: ...

class UpsertAck(_message.Message):
    __slots__ = ("batch_id", "result")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    batch_id: int
    result: _types_pb2.WriteResult
    def __init__(self, batch_id: _Optional[int] = ..., result: _Optional[_Union[_types_pb2.WriteResult, _Mapping]] = ...) -> None: ...

class DeleteRequest(_message.Message):
    __slots__ = ("collection", "ids", "filter", "tenant")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    collection: str
    ids: _containers.RepeatedScalarFieldContainer[str]
    filter: _types_pb2.Filter
    tenant: _types_pb2.Tenant
    def __init__(self, collection: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ..., filter: _Optional[_Union[_types_pb2.Filter, _Mapping]] = ..., tenant: _Optional[_Union[_types_pb2.Tenant, _Mapping]] = ...) -> None: ...

class GetRequest(_message.Message):
    __slots__ = ("collection", "ids", "with_vector", "with_payload", "tenant")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    WITH_VECTOR_FIELD_NUMBER: _ClassVar[int]
    WITH_PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    collection: str
    ids: _containers.RepeatedScalarFieldContainer[str]
    with_vector: bool
    with_payload: bool
    tenant: _types_pb2.Tenant
    def __init__(self, collection: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ..., with_vector: _Optional[bool] = ..., with_payload: _Optional[bool] = ..., tenant: _Optional[_Union[_types_pb2.Tenant, _Mapping]] = ...) -> None: ...

class GetResponse(_message.Message):
    __slots__ = ("points",)
    POINTS_FIELD_NUMBER: _ClassVar[int]
    points: _types_pb2.PointBatch
    def __init__(self, points: _Optional[_Union[_types_pb2.PointBatch, _Mapping]] = ...) -> None: ...

class CountRequest(_message.Message):
    __slots__ = ("collection", "filter", "allow_partial", "tenant")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    ALLOW_PARTIAL_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    collection: str
    filter: _types_pb2.Filter
    allow_partial: bool
    tenant: _types_pb2.Tenant
    def __init__(self, collection: _Optional[str] = ..., filter: _Optional[_Union[_types_pb2.Filter, _Mapping]] = ..., allow_partial: _Optional[bool] = ..., tenant: _Optional[_Union[_types_pb2.Tenant, _Mapping]] = ...) -> None: ...

class CountResponse(_message.Message):
    __slots__ = ("count", "partial")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_FIELD_NUMBER: _ClassVar[int]
    count: int
    partial: bool
    def __init__(self, count: _Optional[int] = ..., partial: _Optional[bool] = ...) -> None: ...

class ScrollRequest(_message.Message):
    __slots__ = ("collection", "limit", "cursor", "with_vector", "with_payload", "filter", "tenant")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    WITH_VECTOR_FIELD_NUMBER: _ClassVar[int]
    WITH_PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    collection: str
    limit: int
    cursor: str
    with_vector: bool
    with_payload: bool
    filter: _types_pb2.Filter
    tenant: _types_pb2.Tenant
    def __init__(self, collection: _Optional[str] = ..., limit: _Optional[int] = ..., cursor: _Optional[str] = ..., with_vector: _Optional[bool] = ..., with_payload: _Optional[bool] = ..., filter: _Optional[_Union[_types_pb2.Filter, _Mapping]] = ..., tenant: _Optional[_Union[_types_pb2.Tenant, _Mapping]] = ...) -> None: ...

class ScrollResponse(_message.Message):
    __slots__ = ("points", "next_cursor")
    POINTS_FIELD_NUMBER: _ClassVar[int]
    NEXT_CURSOR_FIELD_NUMBER: _ClassVar[int]
    points: _types_pb2.PointBatch
    next_cursor: str
    def __init__(self, points: _Optional[_Union[_types_pb2.PointBatch, _Mapping]] = ..., next_cursor: _Optional[str] = ...) -> None: ...

class SearchRequest(_message.Message):
    __slots__ = ("collection", "vectors", "texts", "expression", "k", "params", "with_payload", "with_vector", "filter", "group_by", "group_size", "groups", "allow_partial", "consistency", "keywords", "fusion", "fusion_weights", "rrf_k", "explain", "sparse", "keywords_field", "tenant", "using")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    EXPRESSION_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    WITH_PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    WITH_VECTOR_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    GROUP_BY_FIELD_NUMBER: _ClassVar[int]
    GROUP_SIZE_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    ALLOW_PARTIAL_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_FIELD_NUMBER: _ClassVar[int]
    KEYWORDS_FIELD_NUMBER: _ClassVar[int]
    FUSION_FIELD_NUMBER: _ClassVar[int]
    FUSION_WEIGHTS_FIELD_NUMBER: _ClassVar[int]
    RRF_K_FIELD_NUMBER: _ClassVar[int]
    EXPLAIN_FIELD_NUMBER: _ClassVar[int]
    SPARSE_FIELD_NUMBER: _ClassVar[int]
    KEYWORDS_FIELD_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    USING_FIELD_NUMBER: _ClassVar[int]
    collection: str
    vectors: _types_pb2.Vectors
    texts: TextQueries
    expression: Expression
    k: int
    params: _types_pb2.SearchParams
    with_payload: bool
    with_vector: bool
    filter: _types_pb2.Filter
    group_by: str
    group_size: int
    groups: int
    allow_partial: bool
    consistency: str
    keywords: TextQueries
    fusion: str
    fusion_weights: _containers.RepeatedScalarFieldContainer[float]
    rrf_k: float
    explain: bool
    sparse: SparseQueries
    keywords_field: str
    tenant: _types_pb2.Tenant
    using: str
    def __init__(self, collection: _Optional[str] = ..., vectors: _Optional[_Union[_types_pb2.Vectors, _Mapping]] = ..., texts: _Optional[_Union[TextQueries, _Mapping]] = ..., expression: _Optional[_Union[Expression, _Mapping]] = ..., k: _Optional[int] = ..., params: _Optional[_Union[_types_pb2.SearchParams, _Mapping]] = ..., with_payload: _Optional[bool] = ..., with_vector: _Optional[bool] = ..., filter: _Optional[_Union[_types_pb2.Filter, _Mapping]] = ..., group_by: _Optional[str] = ..., group_size: _Optional[int] = ..., groups: _Optional[int] = ..., allow_partial: _Optional[bool] = ..., consistency: _Optional[str] = ..., keywords: _Optional[_Union[TextQueries, _Mapping]] = ..., fusion: _Optional[str] = ..., fusion_weights: _Optional[_Iterable[float]] = ..., rrf_k: _Optional[float] = ..., explain: _Optional[bool] = ..., sparse: _Optional[_Union[SparseQueries, _Mapping]] = ..., keywords_field: _Optional[str] = ..., tenant: _Optional[_Union[_types_pb2.Tenant, _Mapping]] = ..., using: _Optional[str] = ...) -> None: ...

class SparseQueries(_message.Message):
    __slots__ = ("vectors",)
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    vectors: _containers.RepeatedScalarFieldContainer[bytes]
    def __init__(self, vectors: _Optional[_Iterable[bytes]] = ...) -> None: ...

class TextQueries(_message.Message):
    __slots__ = ("texts",)
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    texts: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, texts: _Optional[_Iterable[str]] = ...) -> None: ...

class QueryTerm(_message.Message):
    __slots__ = ("id", "text", "vector", "weight")
    ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    VECTOR_FIELD_NUMBER: _ClassVar[int]
    WEIGHT_FIELD_NUMBER: _ClassVar[int]
    id: str
    text: str
    vector: bytes
    weight: float
    def __init__(self, id: _Optional[str] = ..., text: _Optional[str] = ..., vector: _Optional[bytes] = ..., weight: _Optional[float] = ...) -> None: ...

class Expression(_message.Message):
    __slots__ = ("terms", "include_terms")
    TERMS_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_TERMS_FIELD_NUMBER: _ClassVar[int]
    terms: _containers.RepeatedCompositeFieldContainer[QueryTerm]
    include_terms: bool
    def __init__(self, terms: _Optional[_Iterable[_Union[QueryTerm, _Mapping]]] = ..., include_terms: _Optional[bool] = ...) -> None: ...

class RecommendRequest(_message.Message):
    __slots__ = ("collection", "positive", "negative", "strategy", "k", "params", "with_payload", "with_vector", "filter", "include_examples", "using", "tenant")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    POSITIVE_FIELD_NUMBER: _ClassVar[int]
    NEGATIVE_FIELD_NUMBER: _ClassVar[int]
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    WITH_PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    WITH_VECTOR_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    INCLUDE_EXAMPLES_FIELD_NUMBER: _ClassVar[int]
    USING_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    collection: str
    positive: _containers.RepeatedCompositeFieldContainer[QueryTerm]
    negative: _containers.RepeatedCompositeFieldContainer[QueryTerm]
    strategy: str
    k: int
    params: _types_pb2.SearchParams
    with_payload: bool
    with_vector: bool
    filter: _types_pb2.Filter
    include_examples: bool
    using: str
    tenant: _types_pb2.Tenant
    def __init__(self, collection: _Optional[str] = ..., positive: _Optional[_Iterable[_Union[QueryTerm, _Mapping]]] = ..., negative: _Optional[_Iterable[_Union[QueryTerm, _Mapping]]] = ..., strategy: _Optional[str] = ..., k: _Optional[int] = ..., params: _Optional[_Union[_types_pb2.SearchParams, _Mapping]] = ..., with_payload: _Optional[bool] = ..., with_vector: _Optional[bool] = ..., filter: _Optional[_Union[_types_pb2.Filter, _Mapping]] = ..., include_examples: _Optional[bool] = ..., using: _Optional[str] = ..., tenant: _Optional[_Union[_types_pb2.Tenant, _Mapping]] = ...) -> None: ...

class QueryResult(_message.Message):
    __slots__ = ("ids", "scores", "payloads", "vectors", "texts", "plan", "group_keys")
    IDS_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    PAYLOADS_FIELD_NUMBER: _ClassVar[int]
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    PLAN_FIELD_NUMBER: _ClassVar[int]
    GROUP_KEYS_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    scores: bytes
    payloads: str
    vectors: _types_pb2.Vectors
    texts: _containers.RepeatedScalarFieldContainer[str]
    plan: str
    group_keys: str
    def __init__(self, ids: _Optional[_Iterable[str]] = ..., scores: _Optional[bytes] = ..., payloads: _Optional[str] = ..., vectors: _Optional[_Union[_types_pb2.Vectors, _Mapping]] = ..., texts: _Optional[_Iterable[str]] = ..., plan: _Optional[str] = ..., group_keys: _Optional[str] = ...) -> None: ...

class SearchResponse(_message.Message):
    __slots__ = ("results", "partial")
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    PARTIAL_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[QueryResult]
    partial: bool
    def __init__(self, results: _Optional[_Iterable[_Union[QueryResult, _Mapping]]] = ..., partial: _Optional[bool] = ...) -> None: ...

class RangeSearchRequest(_message.Message):
    __slots__ = ("collection", "vectors", "threshold", "limit", "params", "with_payload", "with_vector", "filter", "allow_partial", "consistency", "using", "tenant")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    WITH_PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    WITH_VECTOR_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    ALLOW_PARTIAL_FIELD_NUMBER: _ClassVar[int]
    CONSISTENCY_FIELD_NUMBER: _ClassVar[int]
    USING_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    collection: str
    vectors: _types_pb2.Vectors
    threshold: float
    limit: int
    params: _types_pb2.SearchParams
    with_payload: bool
    with_vector: bool
    filter: _types_pb2.Filter
    allow_partial: bool
    consistency: str
    using: str
    tenant: _types_pb2.Tenant
    def __init__(self, collection: _Optional[str] = ..., vectors: _Optional[_Union[_types_pb2.Vectors, _Mapping]] = ..., threshold: _Optional[float] = ..., limit: _Optional[int] = ..., params: _Optional[_Union[_types_pb2.SearchParams, _Mapping]] = ..., with_payload: _Optional[bool] = ..., with_vector: _Optional[bool] = ..., filter: _Optional[_Union[_types_pb2.Filter, _Mapping]] = ..., allow_partial: _Optional[bool] = ..., consistency: _Optional[str] = ..., using: _Optional[str] = ..., tenant: _Optional[_Union[_types_pb2.Tenant, _Mapping]] = ...) -> None: ...

class UpdatePayloadRequest(_message.Message):
    __slots__ = ("collection", "ids", "filter", "overwrite_json", "set_json", "delete_keys", "tenant")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    OVERWRITE_JSON_FIELD_NUMBER: _ClassVar[int]
    SET_JSON_FIELD_NUMBER: _ClassVar[int]
    DELETE_KEYS_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    collection: str
    ids: _containers.RepeatedScalarFieldContainer[str]
    filter: _types_pb2.Filter
    overwrite_json: str
    set_json: str
    delete_keys: _containers.RepeatedScalarFieldContainer[str]
    tenant: _types_pb2.Tenant
    def __init__(self, collection: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ..., filter: _Optional[_Union[_types_pb2.Filter, _Mapping]] = ..., overwrite_json: _Optional[str] = ..., set_json: _Optional[str] = ..., delete_keys: _Optional[_Iterable[str]] = ..., tenant: _Optional[_Union[_types_pb2.Tenant, _Mapping]] = ...) -> None: ...

class UpdateVectorsRequest(_message.Message):
    __slots__ = ("collection", "ids", "vectors", "named_vectors", "tenant")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    IDS_FIELD_NUMBER: _ClassVar[int]
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    NAMED_VECTORS_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    collection: str
    ids: _containers.RepeatedScalarFieldContainer[str]
    vectors: _types_pb2.Vectors
    named_vectors: _containers.RepeatedCompositeFieldContainer[_types_pb2.NamedVectors]
    tenant: _types_pb2.Tenant
    def __init__(self, collection: _Optional[str] = ..., ids: _Optional[_Iterable[str]] = ..., vectors: _Optional[_Union[_types_pb2.Vectors, _Mapping]] = ..., named_vectors: _Optional[_Iterable[_Union[_types_pb2.NamedVectors, _Mapping]]] = ..., tenant: _Optional[_Union[_types_pb2.Tenant, _Mapping]] = ...) -> None: ...
