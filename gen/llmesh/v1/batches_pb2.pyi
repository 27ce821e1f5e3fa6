import datetime

from google.protobuf import timestamp_pb2 as _timestamp_pb2
from llmesh.v1 import chat_pb2 as _chat_pb2
from llmesh.v1 import embeddings_pb2 as _embeddings_pb2
from llmesh.v1 import errors_pb2 as _errors_pb2
from llmesh.v1 import orchestrator_pb2 as _orchestrator_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class BatchState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BATCH_STATE_UNSPECIFIED: _ClassVar[BatchState]
    BATCH_STATE_VALIDATING: _ClassVar[BatchState]
    BATCH_STATE_QUEUED: _ClassVar[BatchState]
    BATCH_STATE_IN_PROGRESS: _ClassVar[BatchState]
    BATCH_STATE_PAUSED_BUDGET: _ClassVar[BatchState]
    BATCH_STATE_CANCELLING: _ClassVar[BatchState]
    BATCH_STATE_CANCELLED: _ClassVar[BatchState]
    BATCH_STATE_COMPLETED: _ClassVar[BatchState]
    BATCH_STATE_FAILED: _ClassVar[BatchState]
    BATCH_STATE_EXPIRED: _ClassVar[BatchState]

class BatchMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BATCH_MODE_UNSPECIFIED: _ClassVar[BatchMode]
    BATCH_MODE_AUTO: _ClassVar[BatchMode]
    BATCH_MODE_MESH: _ClassVar[BatchMode]
    BATCH_MODE_PROVIDER_NATIVE: _ClassVar[BatchMode]

class BatchItemState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BATCH_ITEM_STATE_UNSPECIFIED: _ClassVar[BatchItemState]
    BATCH_ITEM_STATE_PENDING: _ClassVar[BatchItemState]
    BATCH_ITEM_STATE_RUNNING: _ClassVar[BatchItemState]
    BATCH_ITEM_STATE_SUCCEEDED: _ClassVar[BatchItemState]
    BATCH_ITEM_STATE_FAILED: _ClassVar[BatchItemState]
    BATCH_ITEM_STATE_DEAD: _ClassVar[BatchItemState]
    BATCH_ITEM_STATE_CANCELLED: _ClassVar[BatchItemState]
BATCH_STATE_UNSPECIFIED: BatchState
BATCH_STATE_VALIDATING: BatchState
BATCH_STATE_QUEUED: BatchState
BATCH_STATE_IN_PROGRESS: BatchState
BATCH_STATE_PAUSED_BUDGET: BatchState
BATCH_STATE_CANCELLING: BatchState
BATCH_STATE_CANCELLED: BatchState
BATCH_STATE_COMPLETED: BatchState
BATCH_STATE_FAILED: BatchState
BATCH_STATE_EXPIRED: BatchState
BATCH_MODE_UNSPECIFIED: BatchMode
BATCH_MODE_AUTO: BatchMode
BATCH_MODE_MESH: BatchMode
BATCH_MODE_PROVIDER_NATIVE: BatchMode
BATCH_ITEM_STATE_UNSPECIFIED: BatchItemState
BATCH_ITEM_STATE_PENDING: BatchItemState
BATCH_ITEM_STATE_RUNNING: BatchItemState
BATCH_ITEM_STATE_SUCCEEDED: BatchItemState
BATCH_ITEM_STATE_FAILED: BatchItemState
BATCH_ITEM_STATE_DEAD: BatchItemState
BATCH_ITEM_STATE_CANCELLED: BatchItemState

class BatchItem(_message.Message):
    __slots__ = ("custom_id", "chat", "embed")
    CUSTOM_ID_FIELD_NUMBER: _ClassVar[int]
    CHAT_FIELD_NUMBER: _ClassVar[int]
    EMBED_FIELD_NUMBER: _ClassVar[int]
    custom_id: str
    chat: _chat_pb2.ChatInput
    embed: _embeddings_pb2.EmbedRequest
    def __init__(self, custom_id: _Optional[str] = ..., chat: _Optional[_Union[_chat_pb2.ChatInput, _Mapping]] = ..., embed: _Optional[_Union[_embeddings_pb2.EmbedRequest, _Mapping]] = ...) -> None: ...

class BatchFile(_message.Message):
    __slots__ = ("id", "filename", "bytes", "item_count", "created_at")
    ID_FIELD_NUMBER: _ClassVar[int]
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    BYTES_FIELD_NUMBER: _ClassVar[int]
    ITEM_COUNT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    id: str
    filename: str
    bytes: int
    item_count: int
    created_at: _timestamp_pb2.Timestamp
    def __init__(self, id: _Optional[str] = ..., filename: _Optional[str] = ..., bytes: _Optional[int] = ..., item_count: _Optional[int] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class BatchCounts(_message.Message):
    __slots__ = ("total", "completed", "failed", "dead", "pending", "cancelled")
    TOTAL_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    DEAD_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    CANCELLED_FIELD_NUMBER: _ClassVar[int]
    total: int
    completed: int
    failed: int
    dead: int
    pending: int
    cancelled: int
    def __init__(self, total: _Optional[int] = ..., completed: _Optional[int] = ..., failed: _Optional[int] = ..., dead: _Optional[int] = ..., pending: _Optional[int] = ..., cancelled: _Optional[int] = ...) -> None: ...

class Batch(_message.Message):
    __slots__ = ("id", "state", "mode", "counts", "metadata", "tenant", "created_at", "started_at", "finished_at", "input_file_id", "status_detail")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    CREATED_AT_FIELD_NUMBER: _ClassVar[int]
    STARTED_AT_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    INPUT_FILE_ID_FIELD_NUMBER: _ClassVar[int]
    STATUS_DETAIL_FIELD_NUMBER: _ClassVar[int]
    id: str
    state: BatchState
    mode: BatchMode
    counts: BatchCounts
    metadata: _containers.ScalarMap[str, str]
    tenant: str
    created_at: _timestamp_pb2.Timestamp
    started_at: _timestamp_pb2.Timestamp
    finished_at: _timestamp_pb2.Timestamp
    input_file_id: str
    status_detail: str
    def __init__(self, id: _Optional[str] = ..., state: _Optional[_Union[BatchState, str]] = ..., mode: _Optional[_Union[BatchMode, str]] = ..., counts: _Optional[_Union[BatchCounts, _Mapping]] = ..., metadata: _Optional[_Mapping[str, str]] = ..., tenant: _Optional[str] = ..., created_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., started_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., finished_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., input_file_id: _Optional[str] = ..., status_detail: _Optional[str] = ...) -> None: ...

class BatchItemError(_message.Message):
    __slots__ = ("reason", "message", "metadata")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    reason: _errors_pb2.ErrorReason
    message: str
    metadata: _containers.ScalarMap[str, str]
    def __init__(self, reason: _Optional[_Union[_errors_pb2.ErrorReason, str]] = ..., message: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ...) -> None: ...

class BatchItemAttempt(_message.Message):
    __slots__ = ("number", "error", "at")
    NUMBER_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    AT_FIELD_NUMBER: _ClassVar[int]
    number: int
    error: BatchItemError
    at: _timestamp_pb2.Timestamp
    def __init__(self, number: _Optional[int] = ..., error: _Optional[_Union[BatchItemError, _Mapping]] = ..., at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class BatchItemResult(_message.Message):
    __slots__ = ("custom_id", "state", "chat", "embed", "error", "attempts", "finished_at", "cost_usd")
    CUSTOM_ID_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    CHAT_FIELD_NUMBER: _ClassVar[int]
    EMBED_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    FINISHED_AT_FIELD_NUMBER: _ClassVar[int]
    COST_USD_FIELD_NUMBER: _ClassVar[int]
    custom_id: str
    state: BatchItemState
    chat: _orchestrator_pb2.ChatResponse
    embed: _embeddings_pb2.EmbedResponse
    error: BatchItemError
    attempts: int
    finished_at: _timestamp_pb2.Timestamp
    cost_usd: float
    def __init__(self, custom_id: _Optional[str] = ..., state: _Optional[_Union[BatchItemState, str]] = ..., chat: _Optional[_Union[_orchestrator_pb2.ChatResponse, _Mapping]] = ..., embed: _Optional[_Union[_embeddings_pb2.EmbedResponse, _Mapping]] = ..., error: _Optional[_Union[BatchItemError, _Mapping]] = ..., attempts: _Optional[int] = ..., finished_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., cost_usd: _Optional[float] = ...) -> None: ...

class DeadLetter(_message.Message):
    __slots__ = ("item", "error", "trail", "dead_at")
    ITEM_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    TRAIL_FIELD_NUMBER: _ClassVar[int]
    DEAD_AT_FIELD_NUMBER: _ClassVar[int]
    item: BatchItem
    error: BatchItemError
    trail: _containers.RepeatedCompositeFieldContainer[BatchItemAttempt]
    dead_at: _timestamp_pb2.Timestamp
    def __init__(self, item: _Optional[_Union[BatchItem, _Mapping]] = ..., error: _Optional[_Union[BatchItemError, _Mapping]] = ..., trail: _Optional[_Iterable[_Union[BatchItemAttempt, _Mapping]]] = ..., dead_at: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ...) -> None: ...

class UploadBatchFileRequest(_message.Message):
    __slots__ = ("filename", "data")
    FILENAME_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    filename: str
    data: bytes
    def __init__(self, filename: _Optional[str] = ..., data: _Optional[bytes] = ...) -> None: ...

class UploadBatchFileResponse(_message.Message):
    __slots__ = ("file",)
    FILE_FIELD_NUMBER: _ClassVar[int]
    file: BatchFile
    def __init__(self, file: _Optional[_Union[BatchFile, _Mapping]] = ...) -> None: ...

class GetBatchFileRequest(_message.Message):
    __slots__ = ("file_id",)
    FILE_ID_FIELD_NUMBER: _ClassVar[int]
    file_id: str
    def __init__(self, file_id: _Optional[str] = ...) -> None: ...

class GetBatchFileResponse(_message.Message):
    __slots__ = ("file",)
    FILE_FIELD_NUMBER: _ClassVar[int]
    file: BatchFile
    def __init__(self, file: _Optional[_Union[BatchFile, _Mapping]] = ...) -> None: ...

class CreateBatchRequest(_message.Message):
    __slots__ = ("items", "input_file_id", "mode", "metadata", "model")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    ITEMS_FIELD_NUMBER: _ClassVar[int]
    INPUT_FILE_ID_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    items: _containers.RepeatedCompositeFieldContainer[BatchItem]
    input_file_id: str
    mode: BatchMode
    metadata: _containers.ScalarMap[str, str]
    model: str
    def __init__(self, items: _Optional[_Iterable[_Union[BatchItem, _Mapping]]] = ..., input_file_id: _Optional[str] = ..., mode: _Optional[_Union[BatchMode, str]] = ..., metadata: _Optional[_Mapping[str, str]] = ..., model: _Optional[str] = ...) -> None: ...

class CreateBatchResponse(_message.Message):
    __slots__ = ("batch",)
    BATCH_FIELD_NUMBER: _ClassVar[int]
    batch: Batch
    def __init__(self, batch: _Optional[_Union[Batch, _Mapping]] = ...) -> None: ...

class GetBatchRequest(_message.Message):
    __slots__ = ("batch_id",)
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    def __init__(self, batch_id: _Optional[str] = ...) -> None: ...

class GetBatchResponse(_message.Message):
    __slots__ = ("batch",)
    BATCH_FIELD_NUMBER: _ClassVar[int]
    batch: Batch
    def __init__(self, batch: _Optional[_Union[Batch, _Mapping]] = ...) -> None: ...

class ListBatchesRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListBatchesResponse(_message.Message):
    __slots__ = ("batches", "next_page_token")
    BATCHES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    batches: _containers.RepeatedCompositeFieldContainer[Batch]
    next_page_token: str
    def __init__(self, batches: _Optional[_Iterable[_Union[Batch, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class CancelBatchRequest(_message.Message):
    __slots__ = ("batch_id",)
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    def __init__(self, batch_id: _Optional[str] = ...) -> None: ...

class CancelBatchResponse(_message.Message):
    __slots__ = ("batch",)
    BATCH_FIELD_NUMBER: _ClassVar[int]
    batch: Batch
    def __init__(self, batch: _Optional[_Union[Batch, _Mapping]] = ...) -> None: ...

class StreamBatchResultsRequest(_message.Message):
    __slots__ = ("batch_id", "cursor")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    cursor: str
    def __init__(self, batch_id: _Optional[str] = ..., cursor: _Optional[str] = ...) -> None: ...

class BatchFinished(_message.Message):
    __slots__ = ("batch",)
    BATCH_FIELD_NUMBER: _ClassVar[int]
    batch: Batch
    def __init__(self, batch: _Optional[_Union[Batch, _Mapping]] = ...) -> None: ...

class StreamBatchResultsResponse(_message.Message):
    __slots__ = ("cursor", "result", "progress", "finished")
    CURSOR_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    PROGRESS_FIELD_NUMBER: _ClassVar[int]
    FINISHED_FIELD_NUMBER: _ClassVar[int]
    cursor: str
    result: BatchItemResult
    progress: Batch
    finished: BatchFinished
    def __init__(self, cursor: _Optional[str] = ..., result: _Optional[_Union[BatchItemResult, _Mapping]] = ..., progress: _Optional[_Union[Batch, _Mapping]] = ..., finished: _Optional[_Union[BatchFinished, _Mapping]] = ...) -> None: ...

class ListDeadLettersRequest(_message.Message):
    __slots__ = ("batch_id", "page_size", "page_token")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    page_size: int
    page_token: str
    def __init__(self, batch_id: _Optional[str] = ..., page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListDeadLettersResponse(_message.Message):
    __slots__ = ("dead_letters", "next_page_token")
    DEAD_LETTERS_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    dead_letters: _containers.RepeatedCompositeFieldContainer[DeadLetter]
    next_page_token: str
    def __init__(self, dead_letters: _Optional[_Iterable[_Union[DeadLetter, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class RetryDeadLettersRequest(_message.Message):
    __slots__ = ("batch_id", "custom_id", "all")
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    CUSTOM_ID_FIELD_NUMBER: _ClassVar[int]
    ALL_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    custom_id: str
    all: bool
    def __init__(self, batch_id: _Optional[str] = ..., custom_id: _Optional[str] = ..., all: _Optional[bool] = ...) -> None: ...

class RetryDeadLettersResponse(_message.Message):
    __slots__ = ("retried", "batch")
    RETRIED_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    retried: int
    batch: Batch
    def __init__(self, retried: _Optional[int] = ..., batch: _Optional[_Union[Batch, _Mapping]] = ...) -> None: ...

class ResumeBatchRequest(_message.Message):
    __slots__ = ("batch_id",)
    BATCH_ID_FIELD_NUMBER: _ClassVar[int]
    batch_id: str
    def __init__(self, batch_id: _Optional[str] = ...) -> None: ...

class ResumeBatchResponse(_message.Message):
    __slots__ = ("batch",)
    BATCH_FIELD_NUMBER: _ClassVar[int]
    batch: Batch
    def __init__(self, batch: _Optional[_Union[Batch, _Mapping]] = ...) -> None: ...

class ListBatchFilesRequest(_message.Message):
    __slots__ = ("page_size", "page_token")
    PAGE_SIZE_FIELD_NUMBER: _ClassVar[int]
    PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    page_size: int
    page_token: str
    def __init__(self, page_size: _Optional[int] = ..., page_token: _Optional[str] = ...) -> None: ...

class ListBatchFilesResponse(_message.Message):
    __slots__ = ("files", "next_page_token")
    FILES_FIELD_NUMBER: _ClassVar[int]
    NEXT_PAGE_TOKEN_FIELD_NUMBER: _ClassVar[int]
    files: _containers.RepeatedCompositeFieldContainer[BatchFile]
    next_page_token: str
    def __init__(self, files: _Optional[_Iterable[_Union[BatchFile, _Mapping]]] = ..., next_page_token: _Optional[str] = ...) -> None: ...

class DeleteBatchFileRequest(_message.Message):
    __slots__ = ("file_id",)
    FILE_ID_FIELD_NUMBER: _ClassVar[int]
    file_id: str
    def __init__(self, file_id: _Optional[str] = ...) -> None: ...

class DeleteBatchFileResponse(_message.Message):
    __slots__ = ("file_id",)
    FILE_ID_FIELD_NUMBER: _ClassVar[int]
    file_id: str
    def __init__(self, file_id: _Optional[str] = ...) -> None: ...
