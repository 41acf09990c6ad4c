from vecdb_client._proto.vecdb.v1 import types_pb2 as _types_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class ClusterRequest(_message.Message):
    __slots__ = ("collection", "k", "filter", "sample", "iterations", "write_label", "seed", "typical", "init")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_FIELD_NUMBER: _ClassVar[int]
    ITERATIONS_FIELD_NUMBER: _ClassVar[int]
    WRITE_LABEL_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    TYPICAL_FIELD_NUMBER: _ClassVar[int]
    INIT_FIELD_NUMBER: _ClassVar[int]
    collection: str
    k: int
    filter: _types_pb2.Filter
    sample: int
    iterations: int
    write_label: str
    seed: int
    typical: int
    init: str
    def __init__(self, collection: _Optional[str] = ..., k: _Optional[int] = ..., filter: _Optional[_Union[_types_pb2.Filter, _Mapping]] = ..., sample: _Optional[int] = ..., iterations: _Optional[int] = ..., write_label: _Optional[str] = ..., seed: _Optional[int] = ..., typical: _Optional[int] = ..., init: _Optional[str] = ...) -> None: ...

class GetClusterJobRequest(_message.Message):
    __slots__ = ("collection", "job_id")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    collection: str
    job_id: str
    def __init__(self, collection: _Optional[str] = ..., job_id: _Optional[str] = ...) -> None: ...

class ClusterProgress(_message.Message):
    __slots__ = ("job_id", "collection", "state", "phase", "done", "total", "k", "write_label", "error", "started", "finished")
    JOB_ID_FIELD_NUMBER: _ClassVar[int]
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    PHASE_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    WRITE_LABEL_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    STARTED_FIELD_NUMBER: _ClassVar[int]
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    job_id: str
    collection: str
    state: str
    phase: str
    done: int
    total: int
    k: int
    write_label: str
    error: str
    started: float
    finished: float
    def __init__(self, job_id: _Optional[str] = ..., collection: _Optional[str] = ..., state: _Optional[str] = ..., phase: _Optional[str] = ..., done: _Optional[int] = ..., total: _Optional[int] = ..., k: _Optional[int] = ..., write_label: _Optional[str] = ..., error: _Optional[str] = ..., started: _Optional[float] = ..., finished: _Optional[float] = ...) -> None: ...

class TypicalPoint(_message.Message):
    __slots__ = ("id", "distance", "payload", "text")
    ID_FIELD_NUMBER: _ClassVar[int]
    DISTANCE_FIELD_NUMBER: _ClassVar[int]
    PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    id: str
    distance: float
    payload: str
    text: str
    def __init__(self, id: _Optional[str] = ..., distance: _Optional[float] = ..., payload: _Optional[str] = ..., text: _Optional[str] = ...) -> None: ...

class ClusterMembers(_message.Message):
    __slots__ = ("points",)
    POINTS_FIELD_NUMBER: _ClassVar[int]
    points: _containers.RepeatedCompositeFieldContainer[TypicalPoint]
    def __init__(self, points: _Optional[_Iterable[_Union[TypicalPoint, _Mapping]]] = ...) -> None: ...

class ClusterJob(_message.Message):
    __slots__ = ("progress", "result")
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    progress: ClusterProgress
    result: ClusterResult
    def __init__(self, progress: _Optional[_Union[ClusterProgress, _Mapping]] = ..., result: _Optional[_Union[ClusterResult, _Mapping]] = ...) -> None: ...

class ClusterResult(_message.Message):
    __slots__ = ("centroids", "sizes", "inertia", "points", "trained_on", "typical", "labelled")
    CENTROIDS_FIELD_NUMBER: _ClassVar[int]
    SIZES_FIELD_NUMBER: _ClassVar[int]
    INERTIA_FIELD_NUMBER: _ClassVar[int]
    POINTS_FIELD_NUMBER: _ClassVar[int]
    TRAINED_ON_FIELD_NUMBER: _ClassVar[int]
    TYPICAL_FIELD_NUMBER: _ClassVar[int]
    LABELLED_FIELD_NUMBER: _ClassVar[int]
    centroids: _types_pb2.Vectors
    sizes: _containers.RepeatedScalarFieldContainer[int]
    inertia: float
    points: int
    trained_on: int
    typical: _containers.RepeatedCompositeFieldContainer[ClusterMembers]
    labelled: int
    def __init__(self, centroids: _Optional[_Union[_types_pb2.Vectors, _Mapping]] = ..., sizes: _Optional[_Iterable[int]] = ..., inertia: _Optional[float] = ..., points: _Optional[int] = ..., trained_on: _Optional[int] = ..., typical: _Optional[_Iterable[_Union[ClusterMembers, _Mapping]]] = ..., labelled: _Optional[int] = ...) -> None: ...

class OutliersRequest(_message.Message):
    __slots__ = ("collection", "n", "method", "k", "filter", "sample", "centroids", "seed", "with_payload")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    N_FIELD_NUMBER: _ClassVar[int]
    METHOD_FIELD_NUMBER: _ClassVar[int]
    K_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    SAMPLE_FIELD_NUMBER: _ClassVar[int]
    CENTROIDS_FIELD_NUMBER: _ClassVar[int]
    SEED_FIELD_NUMBER: _ClassVar[int]
    WITH_PAYLOAD_FIELD_NUMBER: _ClassVar[int]
    collection: str
    n: int
    method: str
    k: int
    filter: _types_pb2.Filter
    sample: int
    centroids: _types_pb2.Vectors
    seed: int
    with_payload: bool
    def __init__(self, collection: _Optional[str] = ..., n: _Optional[int] = ..., method: _Optional[str] = ..., k: _Optional[int] = ..., filter: _Optional[_Union[_types_pb2.Filter, _Mapping]] = ..., sample: _Optional[int] = ..., centroids: _Optional[_Union[_types_pb2.Vectors, _Mapping]] = ..., seed: _Optional[int] = ..., with_payload: _Optional[bool] = ...) -> None: ...

class OutliersResponse(_message.Message):
    __slots__ = ("ids", "scores", "payloads", "texts", "scored", "population")
    IDS_FIELD_NUMBER: _ClassVar[int]
    SCORES_FIELD_NUMBER: _ClassVar[int]
    PAYLOADS_FIELD_NUMBER: _ClassVar[int]
    TEXTS_FIELD_NUMBER: _ClassVar[int]
    SCORED_FIELD_NUMBER: _ClassVar[int]
    POPULATION_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    scores: _containers.RepeatedScalarFieldContainer[float]
    payloads: str
    texts: _containers.RepeatedScalarFieldContainer[str]
    scored: int
    population: int
    def __init__(self, ids: _Optional[_Iterable[str]] = ..., scores: _Optional[_Iterable[float]] = ..., payloads: _Optional[str] = ..., texts: _Optional[_Iterable[str]] = ..., scored: _Optional[int] = ..., population: _Optional[int] = ...) -> None: ...

class DuplicatesRequest(_message.Message):
    __slots__ = ("collection", "threshold", "filter", "limit", "batch")
    COLLECTION_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    FILTER_FIELD_NUMBER: _ClassVar[int]
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    collection: str
    threshold: float
    filter: _types_pb2.Filter
    limit: int
    batch: int
    def __init__(self, collection: _Optional[str] = ..., threshold: _Optional[float] = ..., filter: _Optional[_Union[_types_pb2.Filter, _Mapping]] = ..., limit: _Optional[int] = ..., batch: _Optional[int] = ...) -> None: ...

class DuplicatesChunk(_message.Message):
    __slots__ = ("ids_a", "ids_b", "distances", "scanned", "population", "done", "truncated", "groups")
    IDS_A_FIELD_NUMBER: _ClassVar[int]
    IDS_B_FIELD_NUMBER: _ClassVar[int]
    DISTANCES_FIELD_NUMBER: _ClassVar[int]
    SCANNED_FIELD_NUMBER: _ClassVar[int]
    POPULATION_FIELD_NUMBER: _ClassVar[int]
    DONE_FIELD_NUMBER: _ClassVar[int]
    TRUNCATED_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    ids_a: _containers.RepeatedScalarFieldContainer[str]
    ids_b: _containers.RepeatedScalarFieldContainer[str]
    distances: _containers.RepeatedScalarFieldContainer[float]
    scanned: int
    population: int
    done: bool
    truncated: bool
    groups: _containers.RepeatedCompositeFieldContainer[DuplicateGroup]
    def __init__(self, ids_a: _Optional[_Iterable[str]] = ..., ids_b: _Optional[_Iterable[str]] = ..., distances: _Optional[_Iterable[float]] = ..., scanned: _Optional[int] = ..., population: _Optional[int] = ..., done: _Optional[bool] = ..., truncated: _Optional[bool] = ..., groups: _Optional[_Iterable[_Union[DuplicateGroup, _Mapping]]] = ...) -> None: ...

class DuplicateGroup(_message.Message):
    __slots__ = ("ids",)
    IDS_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, ids: _Optional[_Iterable[str]] = ...) -> None: ...
