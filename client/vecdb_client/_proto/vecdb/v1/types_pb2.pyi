from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class Vectors(_message.Message):
    __slots__ = ("count", "dim", "data")
    COUNT_FIELD_NUMBER: _ClassVar[int]
    DIM_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    count: int
    dim: int
    data: bytes
    def __init__(self, count: _Optional[int] = ..., dim: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class PointBatch(_message.Message):
    __slots__ = ("ids", "vectors", "payloads", "texts", "ttl_seconds", "sparse", "named_vectors")
    IDS_FIELD_NUMBER: _ClassVar[int]
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    PAYLOADS_FIELD_NUMBER: _ClassVar[int]
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    TTL_SECONDS_FIELD_NUMBER: _ClassVar[int]
    SPARSE_FIELD_NUMBER: _ClassVar[int]
    NAMED_VECTORS_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    vectors: Vectors
    payloads: str
    texts: _containers.RepeatedScalarFieldContainer[str]
    ttl_seconds: _containers.RepeatedScalarFieldContainer[float]
    sparse: _containers.RepeatedScalarFieldContainer[bytes]
    named_vectors: _containers.RepeatedCompositeFieldContainer[NamedVectors]
    def __init__(self, ids: _Optional[_Iterable[str]] = ..., vectors: _Optional[_Union[Vectors, _Mapping]] = ..., payloads: _Optional[str] = ..., texts: _Optional[_Iterable[str]] = ..., ttl_seconds: _Optional[_Iterable[float]] = ..., sparse: _Optional[_Iterable[bytes]] = ..., named_vectors: _Optional[_Iterable[_Union[NamedVectors, _Mapping]]] = ...) -> None: ...

class NamedVectors(_message.Message):
    __slots__ = ("name", "rows", "vectors")
    NAME_FIELD_NUMBER: _ClassVar[int]
    ROWS_FIELD_NUMBER: _ClassVar[int]
    VECTORS_FIELD_NUMBER: _ClassVar[int]
    name: str
    rows: _containers.RepeatedScalarFieldContainer[int]
    vectors: Vectors
    def __init__(self, name: _Optional[str] = ..., rows: _Optional[_Iterable[int]] = ..., vectors: _Optional[_Union[Vectors, _Mapping]] = ...) -> None: ...

class IndexSpec(_message.Message):
    __slots__ = ("type", "params")
    class ParamsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    TYPE_FIELD_NUMBER: _ClassVar[int]
    PARAMS_FIELD_NUMBER: _ClassVar[int]
    type: str
    params: _containers.ScalarMap[str, int]
    def __init__(self, type: _Optional[str] = ..., params: _Optional[_Mapping[str, int]] = ...) -> None: ...

class SearchParams(_message.Message):
    __slots__ = ("nprobe", "ef_search", "exact")
    NPROBE_FIELD_NUMBER: _ClassVar[int]
    EF_SEARCH_FIELD_NUMBER: _ClassVar[int]
    EXACT_FIELD_NUMBER: _ClassVar[int]
    nprobe: int
    ef_search: int
    exact: bool
    def __init__(self, nprobe: _Optional[int] = ..., ef_search: _Optional[int] = ..., exact: _Optional[bool] = ...) -> None: ...

class WriteResult(_message.Message):
    __slots__ = ("count", "shard_seqs")
    class ShardSeqsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: int
        value: int
        def __init__(self, key: _Optional[int] = ..., value: _Optional[int] = ...) -> None: ...
    COUNT_FIELD_NUMBER: _ClassVar[int]
    SHARD_SEQS_FIELD_NUMBER: _ClassVar[int]
    count: int
    shard_seqs: _containers.ScalarMap[int, int]
    def __init__(self, count: _Optional[int] = ..., shard_seqs: _Optional[_Mapping[int, int]] = ...) -> None: ...

class Filter(_message.Message):
    __slots__ = ("must", "should", "must_not", "min_should")
    MUST_FIELD_NUMBER: _ClassVar[int]
    SHOULD_FIELD_NUMBER: _ClassVar[int]
    MUST_NOT_FIELD_NUMBER: _ClassVar[int]
    MIN_SHOULD_FIELD_NUMBER: _ClassVar[int]
    must: _containers.RepeatedCompositeFieldContainer[FilterItem]
    should: _containers.RepeatedCompositeFieldContainer[FilterItem]
    must_not: _containers.RepeatedCompositeFieldContainer[FilterItem]
    min_should: int
    def __init__(self, must: _Optional[_Iterable[_Union[FilterItem, _Mapping]]] = ..., should: _Optional[_Iterable[_Union[FilterItem, _Mapping]]] = ..., must_not: _Optional[_Iterable[_Union[FilterItem, _Mapping]]] = ..., min_should: _Optional[int] = ...) -> None: ...

class FilterItem(_message.Message):
    __slots__ = ("condition", "filter")
    CONDITION_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    condition: Condition
    filter: Filter
    def __init__(self, condition: _Optional[_Union[Condition, _Mapping]] = ..., filter: _Optional[_Union[Filter, _Mapping]] = ...) -> None: ...

class Condition(_message.Message):
    __slots__ = ("key", "match", "any", "range", "exists", "is_null", "is_empty", "has_id", "text")
    KEY_FIELD_NUMBER: _ClassVar[int]
    MATCH_FIELD_NUMBER: _ClassVar[int]
    ANY_FIELD_NUMBER: _ClassVar[int]
    EXCEPT_FIELD_NUMBER: _ClassVar[int]
    RANGE_FIELD_NUMBER: _ClassVar[int]
    EXISTS_FIELD_NUMBER: _ClassVar[int]
    IS_NULL_FIELD_NUMBER: _ClassVar[int]
    IS_EMPTY_FIELD_NUMBER: _ClassVar[int]
    HAS_ID_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    key: str
    match: Value
    any: ValueList
    range: Range
    exists: bool
    is_null: bool
    is_empty: bool
    has_id: IdList
    text: str
    def __init__(self, key: _Optional[str] = ..., match: _Optional[_Union[Value, _Mapping]] = ..., any: _Optional[_Union[ValueList, _Mapping]] = ..., range: _Optional[_Union[Range, _Mapping]] = ..., exists: _Optional[bool] = ..., is_null: _Optional[bool] = ..., is_empty: _Optional[bool] = ..., has_id: _Optional[_Union[IdList, _Mapping]] = ..., text: _Optional[str] = ..., **kwargs) -> None: ...

class Value(_message.Message):
    __slots__ = ("s", "i", "b")
    S_FIELD_NUMBER: _ClassVar[int]
    I_FIELD_NUMBER: _ClassVar[int]
    B_FIELD_NUMBER: _ClassVar[int]
    s: str
    i: int
    b: bool
    def __init__(self, s: _Optional[str] = ..., i: _Optional[int] = ..., b: _Optional[bool] = ...) -> None: ...

class ValueList(_message.Message):
    __slots__ = ("values",)
    VALUES_FIELD_NUMBER: _ClassVar[int]
    values: _containers.RepeatedCompositeFieldContainer[Value]
    def __init__(self, values: _Optional[_Iterable[_Union[Value, _Mapping]]] = ...) -> None: ...

class Range(_message.Message):
    __slots__ = ("gt", "gte", "lt", "lte")
    GT_FIELD_NUMBER: _ClassVar[int]
    GTE_FIELD_NUMBER: _ClassVar[int]
    LT_FIELD_NUMBER: _ClassVar[int]
    LTE_FIELD_NUMBER: _ClassVar[int]
    gt: RangeBound
    gte: RangeBound
    lt: RangeBound
    lte: RangeBound
    def __init__(self, gt: _Optional[_Union[RangeBound, _Mapping]] = ..., gte: _Optional[_Union[RangeBound, _Mapping]] = ..., lt: _Optional[_Union[RangeBound, _Mapping]] = ..., lte: _Optional[_Union[RangeBound, _Mapping]] = ...) -> None: ...

class RangeBound(_message.Message):
    __slots__ = ("number", "datetime")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    DATETIME_FIELD_NUMBER: _ClassVar[int]
    number: float
    datetime: str
    def __init__(self, number: _Optional[float] = ..., datetime: _Optional[str] = ...) -> None: ...

class IdList(_message.Message):
    __slots__ = ("ids",)
    IDS_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, ids: _Optional[_Iterable[str]] = ...) -> None: ...

class Tenant(_message.Message):
    __slots__ = ("text", "number")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    text: str
    number: int
    def __init__(self, text: _Optional[str] = ..., number: _Optional[int] = ...) -> None: ...
