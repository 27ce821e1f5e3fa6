import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import timestamp_pb2 as _timestamp_pb2
from llmesh.v1 import chat_pb2 as _chat_pb2
from llmesh.v1 import embeddings_pb2 as _embeddings_pb2
from llmesh.v1 import errors_pb2 as _errors_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class AttemptOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ATTEMPT_OUTCOME_UNSPECIFIED: _ClassVar[AttemptOutcome]
    ATTEMPT_OUTCOME_SUCCEEDED: _ClassVar[AttemptOutcome]
    ATTEMPT_OUTCOME_FAILED: _ClassVar[AttemptOutcome]
    ATTEMPT_OUTCOME_CANCELLED: _ClassVar[AttemptOutcome]
    ATTEMPT_OUTCOME_SKIPPED: _ClassVar[AttemptOutcome]

class BreakerState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BREAKER_STATE_UNSPECIFIED: _ClassVar[BreakerState]
    BREAKER_STATE_CLOSED: _ClassVar[BreakerState]
    BREAKER_STATE_OPEN: _ClassVar[BreakerState]
    BREAKER_STATE_HALF_OPEN: _ClassVar[BreakerState]

class UsageGrouping(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    USAGE_GROUPING_UNSPECIFIED: _ClassVar[UsageGrouping]
    USAGE_GROUPING_TENANT: _ClassVar[UsageGrouping]
    USAGE_GROUPING_KEY: _ClassVar[UsageGrouping]
    USAGE_GROUPING_MODEL: _ClassVar[UsageGrouping]
    USAGE_GROUPING_DAY: _ClassVar[UsageGrouping]

class CallState(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    CALL_STATE_UNSPECIFIED: _ClassVar[CallState]
    CALL_STATE_OK: _ClassVar[CallState]
    CALL_STATE_ERROR: _ClassVar[CallState]
    CALL_STATE_CANCELLED: _ClassVar[CallState]
    CALL_STATE_INTERRUPTED: _ClassVar[CallState]

class BudgetScope(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    BUDGET_SCOPE_UNSPECIFIED: _ClassVar[BudgetScope]
    BUDGET_SCOPE_TENANT: _ClassVar[BudgetScope]
    BUDGET_SCOPE_KEY: _ClassVar[BudgetScope]
ATTEMPT_OUTCOME_UNSPECIFIED: AttemptOutcome
ATTEMPT_OUTCOME_SUCCEEDED: AttemptOutcome
ATTEMPT_OUTCOME_FAILED: AttemptOutcome
ATTEMPT_OUTCOME_CANCELLED: AttemptOutcome
ATTEMPT_OUTCOME_SKIPPED: AttemptOutcome
BREAKER_STATE_UNSPECIFIED: BreakerState
BREAKER_STATE_CLOSED: BreakerState
BREAKER_STATE_OPEN: BreakerState
BREAKER_STATE_HALF_OPEN: BreakerState
USAGE_GROUPING_UNSPECIFIED: UsageGrouping
USAGE_GROUPING_TENANT: UsageGrouping
USAGE_GROUPING_KEY: UsageGrouping
USAGE_GROUPING_MODEL: UsageGrouping
USAGE_GROUPING_DAY: UsageGrouping
CALL_STATE_UNSPECIFIED: CallState
CALL_STATE_OK: CallState
CALL_STATE_ERROR: CallState
CALL_STATE_CANCELLED: CallState
CALL_STATE_INTERRUPTED: CallState
BUDGET_SCOPE_UNSPECIFIED: BudgetScope
BUDGET_SCOPE_TENANT: BudgetScope
BUDGET_SCOPE_KEY: BudgetScope

class StreamChatRequest(_message.Message):
    __slots__ = ("input",)
    INPUT_FIELD_NUMBER: _ClassVar[int]
    input: _chat_pb2.ChatInput
    def __init__(self, input: _Optional[_Union[_chat_pb2.ChatInput, _Mapping]] = ...) -> None: ...

class StartEvent(_message.Message):
    __slots__ = ("request_id", "provider", "model", "cache_hit")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CACHE_HIT_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    provider: str
    model: str
    cache_hit: bool
    def __init__(self, request_id: _Optional[str] = ..., provider: _Optional[str] = ..., model: _Optional[str] = ..., cache_hit: _Optional[bool] = ...) -> None: ...

class TextDelta(_message.Message):
    __slots__ = ("text", "logprobs")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    LOGPROBS_FIELD_NUMBER: _ClassVar[int]
    text: str
    logprobs: _containers.RepeatedCompositeFieldContainer[_chat_pb2.TokenLogprob]
    def __init__(self, text: _Optional[str] = ..., logprobs: _Optional[_Iterable[_Union[_chat_pb2.TokenLogprob, _Mapping]]] = ...) -> None: ...

class ToolCallDelta(_message.Message):
    __slots__ = ("index", "id", "name", "arguments_delta")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    ID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    ARGUMENTS_DELTA_FIELD_NUMBER: _ClassVar[int]
    index: int
    id: str
    name: str
    arguments_delta: str
    def __init__(self, index: _Optional[int] = ..., id: _Optional[str] = ..., name: _Optional[str] = ..., arguments_delta: _Optional[str] = ...) -> None: ...

class ReasoningDelta(_message.Message):
    __slots__ = ("text", "index", "signature", "redacted_data")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    INDEX_FIELD_NUMBER: _ClassVar[int]
    SIGNATURE_FIELD_NUMBER: _ClassVar[int]
    REDACTED_DATA_FIELD_NUMBER: _ClassVar[int]
    text: str
    index: int
    signature: str
    redacted_data: str
    def __init__(self, text: _Optional[str] = ..., index: _Optional[int] = ..., signature: _Optional[str] = ..., redacted_data: _Optional[str] = ...) -> None: ...

class FinishEvent(_message.Message):
    __slots__ = ("reason", "provider_reason", "usage", "attempts", "overhead", "cost_usd", "cache_hit", "stop_sequence")
    REASON_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_REASON_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    OVERHEAD_FIELD_NUMBER: _ClassVar[int]
    COST_USD_FIELD_NUMBER: _ClassVar[int]
    CACHE_HIT_FIELD_NUMBER: _ClassVar[int]
    STOP_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    reason: _chat_pb2.FinishReason
    provider_reason: str
    usage: _chat_pb2.Usage
    attempts: _containers.RepeatedCompositeFieldContainer[Attempt]
    overhead: _duration_pb2.Duration
    cost_usd: float
    cache_hit: bool
    stop_sequence: str
    def __init__(self, reason: _Optional[_Union[_chat_pb2.FinishReason, str]] = ..., provider_reason: _Optional[str] = ..., usage: _Optional[_Union[_chat_pb2.Usage, _Mapping]] = ..., attempts: _Optional[_Iterable[_Union[Attempt, _Mapping]]] = ..., overhead: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., cost_usd: _Optional[float] = ..., cache_hit: _Optional[bool] = ..., stop_sequence: _Optional[str] = ...) -> None: ...

class Attempt(_message.Message):
    __slots__ = ("provider", "model", "outcome", "error_reason", "latency", "time_to_first_token", "hedged", "retry", "pick", "detail")
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    ERROR_REASON_FIELD_NUMBER: _ClassVar[int]
    LATENCY_FIELD_NUMBER: _ClassVar[int]
    TIME_TO_FIRST_TOKEN_FIELD_NUMBER: _ClassVar[int]
    HEDGED_FIELD_NUMBER: _ClassVar[int]
    RETRY_FIELD_NUMBER: _ClassVar[int]
    PICK_FIELD_NUMBER: _ClassVar[int]
    DETAIL_FIELD_NUMBER: _ClassVar[int]
    provider: str
    model: str
    outcome: AttemptOutcome
    error_reason: _errors_pb2.ErrorReason
    latency: _duration_pb2.Duration
    time_to_first_token: _duration_pb2.Duration
    hedged: bool
    retry: bool
    pick: str
    detail: str
    def __init__(self, provider: _Optional[str] = ..., model: _Optional[str] = ..., outcome: _Optional[_Union[AttemptOutcome, str]] = ..., error_reason: _Optional[_Union[_errors_pb2.ErrorReason, str]] = ..., latency: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., time_to_first_token: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., hedged: _Optional[bool] = ..., retry: _Optional[bool] = ..., pick: _Optional[str] = ..., detail: _Optional[str] = ...) -> None: ...

class SwitchEvent(_message.Message):
    __slots__ = ("from_provider", "from_model", "to_provider", "to_model", "reason", "policy")
    FROM_PROVIDER_FIELD_NUMBER: _ClassVar[int]
    FROM_MODEL_FIELD_NUMBER: _ClassVar[int]
    TO_PROVIDER_FIELD_NUMBER: _ClassVar[int]
    TO_MODEL_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    from_provider: str
    from_model: str
    to_provider: str
    to_model: str
    reason: _errors_pb2.ErrorReason
    policy: _chat_pb2.MidStreamPolicy
    def __init__(self, from_provider: _Optional[str] = ..., from_model: _Optional[str] = ..., to_provider: _Optional[str] = ..., to_model: _Optional[str] = ..., reason: _Optional[_Union[_errors_pb2.ErrorReason, str]] = ..., policy: _Optional[_Union[_chat_pb2.MidStreamPolicy, str]] = ...) -> None: ...

class StreamChatResponse(_message.Message):
    __slots__ = ("start", "text_delta", "tool_call_delta", "usage", "finish", "switch", "reasoning_delta")
    START_FIELD_NUMBER: _ClassVar[int]
    TEXT_DELTA_FIELD_NUMBER: _ClassVar[int]
    TOOL_CALL_DELTA_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    FINISH_FIELD_NUMBER: _ClassVar[int]
    SWITCH_FIELD_NUMBER: _ClassVar[int]
    REASONING_DELTA_FIELD_NUMBER: _ClassVar[int]
    start: StartEvent
    text_delta: TextDelta
    tool_call_delta: ToolCallDelta
    usage: _chat_pb2.Usage
    finish: FinishEvent
    switch: SwitchEvent
    reasoning_delta: ReasoningDelta
    def __init__(self, start: _Optional[_Union[StartEvent, _Mapping]] = ..., text_delta: _Optional[_Union[TextDelta, _Mapping]] = ..., tool_call_delta: _Optional[_Union[ToolCallDelta, _Mapping]] = ..., usage: _Optional[_Union[_chat_pb2.Usage, _Mapping]] = ..., finish: _Optional[_Union[FinishEvent, _Mapping]] = ..., switch: _Optional[_Union[SwitchEvent, _Mapping]] = ..., reasoning_delta: _Optional[_Union[ReasoningDelta, _Mapping]] = ...) -> None: ...

class ChatRequest(_message.Message):
    __slots__ = ("input",)
    INPUT_FIELD_NUMBER: _ClassVar[int]
    input: _chat_pb2.ChatInput
    def __init__(self, input: _Optional[_Union[_chat_pb2.ChatInput, _Mapping]] = ...) -> None: ...

class ChatResponse(_message.Message):
    __slots__ = ("request_id", "provider", "model", "message", "finish_reason", "provider_finish_reason", "usage", "cache_hit", "logprobs", "stop_sequence")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FINISH_REASON_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    CACHE_HIT_FIELD_NUMBER: _ClassVar[int]
    LOGPROBS_FIELD_NUMBER: _ClassVar[int]
    STOP_SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    provider: str
    model: str
    message: _chat_pb2.Message
    finish_reason: _chat_pb2.FinishReason
    provider_finish_reason: str
    usage: _chat_pb2.Usage
    cache_hit: bool
    logprobs: _containers.RepeatedCompositeFieldContainer[_chat_pb2.TokenLogprob]
    stop_sequence: str
    def __init__(self, request_id: _Optional[str] = ..., provider: _Optional[str] = ..., model: _Optional[str] = ..., message: _Optional[_Union[_chat_pb2.Message, _Mapping]] = ..., finish_reason: _Optional[_Union[_chat_pb2.FinishReason, str]] = ..., provider_finish_reason: _Optional[str] = ..., usage: _Optional[_Union[_chat_pb2.Usage, _Mapping]] = ..., cache_hit: _Optional[bool] = ..., logprobs: _Optional[_Iterable[_Union[_chat_pb2.TokenLogprob, _Mapping]]] = ..., stop_sequence: _Optional[str] = ...) -> None: ...

class ListModelsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ModelInfo(_message.Message):
    __slots__ = ("name", "provider", "provider_model", "alias_for")
    NAME_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_MODEL_FIELD_NUMBER: _ClassVar[int]
    ALIAS_FOR_FIELD_NUMBER: _ClassVar[int]
    name: str
    provider: str
    provider_model: str
    alias_for: str
    def __init__(self, name: _Optional[str] = ..., provider: _Optional[str] = ..., provider_model: _Optional[str] = ..., alias_for: _Optional[str] = ...) -> None: ...

class ListModelsResponse(_message.Message):
    __slots__ = ("models",)
    MODELS_FIELD_NUMBER: _ClassVar[int]
    models: _containers.RepeatedCompositeFieldContainer[ModelInfo]
    def __init__(self, models: _Optional[_Iterable[_Union[ModelInfo, _Mapping]]] = ...) -> None: ...

class CouncilMember(_message.Message):
    __slots__ = ("name", "model", "persona")
    NAME_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    PERSONA_FIELD_NUMBER: _ClassVar[int]
    name: str
    model: str
    persona: str
    def __init__(self, name: _Optional[str] = ..., model: _Optional[str] = ..., persona: _Optional[str] = ...) -> None: ...

class CouncilJudge(_message.Message):
    __slots__ = ("model", "instructions")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    INSTRUCTIONS_FIELD_NUMBER: _ClassVar[int]
    model: str
    instructions: str
    def __init__(self, model: _Optional[str] = ..., instructions: _Optional[str] = ...) -> None: ...

class StreamCouncilRequest(_message.Message):
    __slots__ = ("input", "members", "judge", "fail_fast")
    INPUT_FIELD_NUMBER: _ClassVar[int]
    MEMBERS_FIELD_NUMBER: _ClassVar[int]
    JUDGE_FIELD_NUMBER: _ClassVar[int]
    FAIL_FAST_FIELD_NUMBER: _ClassVar[int]
    input: _chat_pb2.ChatInput
    members: _containers.RepeatedCompositeFieldContainer[CouncilMember]
    judge: CouncilJudge
    fail_fast: bool
    def __init__(self, input: _Optional[_Union[_chat_pb2.ChatInput, _Mapping]] = ..., members: _Optional[_Iterable[_Union[CouncilMember, _Mapping]]] = ..., judge: _Optional[_Union[CouncilJudge, _Mapping]] = ..., fail_fast: _Optional[bool] = ...) -> None: ...

class BranchError(_message.Message):
    __slots__ = ("reason", "message", "usage")
    REASON_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    reason: _errors_pb2.ErrorReason
    message: str
    usage: _chat_pb2.Usage
    def __init__(self, reason: _Optional[_Union[_errors_pb2.ErrorReason, str]] = ..., message: _Optional[str] = ..., usage: _Optional[_Union[_chat_pb2.Usage, _Mapping]] = ...) -> None: ...

class StreamCouncilResponse(_message.Message):
    __slots__ = ("branch", "event", "error")
    BRANCH_FIELD_NUMBER: _ClassVar[int]
    EVENT_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    branch: str
    event: StreamChatResponse
    error: BranchError
    def __init__(self, branch: _Optional[str] = ..., event: _Optional[_Union[StreamChatResponse, _Mapping]] = ..., error: _Optional[_Union[BranchError, _Mapping]] = ...) -> None: ...

class ListTargetsRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class TargetStatus(_message.Message):
    __slots__ = ("name", "breaker_state", "failure_count", "time_to_half_open", "in_flight", "queued", "error_rate", "latency", "recent_attempts")
    NAME_FIELD_NUMBER: _ClassVar[int]
    BREAKER_STATE_FIELD_NUMBER: _ClassVar[int]
    FAILURE_COUNT_FIELD_NUMBER: _ClassVar[int]
    TIME_TO_HALF_OPEN_FIELD_NUMBER: _ClassVar[int]
    IN_FLIGHT_FIELD_NUMBER: _ClassVar[int]
    QUEUED_FIELD_NUMBER: _ClassVar[int]
    ERROR_RATE_FIELD_NUMBER: _ClassVar[int]
    LATENCY_FIELD_NUMBER: _ClassVar[int]
    RECENT_ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    name: str
    breaker_state: BreakerState
    failure_count: int
    time_to_half_open: _duration_pb2.Duration
    in_flight: int
    queued: int
    error_rate: float
    latency: _duration_pb2.Duration
    recent_attempts: int
    def __init__(self, name: _Optional[str] = ..., breaker_state: _Optional[_Union[BreakerState, str]] = ..., failure_count: _Optional[int] = ..., time_to_half_open: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., in_flight: _Optional[int] = ..., queued: _Optional[int] = ..., error_rate: _Optional[float] = ..., latency: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., recent_attempts: _Optional[int] = ...) -> None: ...

class ListTargetsResponse(_message.Message):
    __slots__ = ("targets",)
    TARGETS_FIELD_NUMBER: _ClassVar[int]
    targets: _containers.RepeatedCompositeFieldContainer[TargetStatus]
    def __init__(self, targets: _Optional[_Iterable[_Union[TargetStatus, _Mapping]]] = ...) -> None: ...

class GetUsageRequest(_message.Message):
    __slots__ = ("group_by", "since", "until", "tenant")
    GROUP_BY_FIELD_NUMBER: _ClassVar[int]
    SINCE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    group_by: _containers.RepeatedScalarFieldContainer[UsageGrouping]
    since: _timestamp_pb2.Timestamp
    until: _timestamp_pb2.Timestamp
    tenant: str
    def __init__(self, group_by: _Optional[_Iterable[_Union[UsageGrouping, str]]] = ..., since: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., until: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., tenant: _Optional[str] = ...) -> None: ...

class UsageTotal(_message.Message):
    __slots__ = ("tenant", "key_id", "model", "day", "requests", "usage", "cost_usd", "cache_savings_usd", "failed", "prompt_cache_savings_usd", "response_cache_savings_usd")
    TENANT_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    DAY_FIELD_NUMBER: _ClassVar[int]
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    COST_USD_FIELD_NUMBER: _ClassVar[int]
    CACHE_SAVINGS_USD_FIELD_NUMBER: _ClassVar[int]
    FAILED_FIELD_NUMBER: _ClassVar[int]
    PROMPT_CACHE_SAVINGS_USD_FIELD_NUMBER: _ClassVar[int]
    RESPONSE_CACHE_SAVINGS_USD_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    key_id: str
    model: str
    day: str
    requests: int
    usage: _chat_pb2.Usage
    cost_usd: float
    cache_savings_usd: float
    failed: int
    prompt_cache_savings_usd: float
    response_cache_savings_usd: float
    def __init__(self, tenant: _Optional[str] = ..., key_id: _Optional[str] = ..., model: _Optional[str] = ..., day: _Optional[str] = ..., requests: _Optional[int] = ..., usage: _Optional[_Union[_chat_pb2.Usage, _Mapping]] = ..., cost_usd: _Optional[float] = ..., cache_savings_usd: _Optional[float] = ..., failed: _Optional[int] = ..., prompt_cache_savings_usd: _Optional[float] = ..., response_cache_savings_usd: _Optional[float] = ...) -> None: ...

class GetUsageResponse(_message.Message):
    __slots__ = ("totals",)
    TOTALS_FIELD_NUMBER: _ClassVar[int]
    totals: _containers.RepeatedCompositeFieldContainer[UsageTotal]
    def __init__(self, totals: _Optional[_Iterable[_Union[UsageTotal, _Mapping]]] = ...) -> None: ...

class CountInputTokensRequest(_message.Message):
    __slots__ = ("input",)
    INPUT_FIELD_NUMBER: _ClassVar[int]
    input: _chat_pb2.ChatInput
    def __init__(self, input: _Optional[_Union[_chat_pb2.ChatInput, _Mapping]] = ...) -> None: ...

class CountInputTokensResponse(_message.Message):
    __slots__ = ("input_tokens", "provider", "model")
    INPUT_TOKENS_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    input_tokens: int
    provider: str
    model: str
    def __init__(self, input_tokens: _Optional[int] = ..., provider: _Optional[str] = ..., model: _Optional[str] = ...) -> None: ...

class ListRecentCallsRequest(_message.Message):
    __slots__ = ("limit", "tenant", "request_id")
    LIMIT_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    limit: int
    tenant: str
    request_id: str
    def __init__(self, limit: _Optional[int] = ..., tenant: _Optional[str] = ..., request_id: _Optional[str] = ...) -> None: ...

class CallSummary(_message.Message):
    __slots__ = ("request_id", "start_time", "tenant", "key_id", "route", "provider", "model", "state", "error_reason", "usage", "cost_usd", "cache_savings_usd", "duration", "time_to_first_token", "cache_hit", "attempts", "trace_id")
    REQUEST_ID_FIELD_NUMBER: _ClassVar[int]
    START_TIME_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    KEY_ID_FIELD_NUMBER: _ClassVar[int]
    ROUTE_FIELD_NUMBER: _ClassVar[int]
    PROVIDER_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    STATE_FIELD_NUMBER: _ClassVar[int]
    ERROR_REASON_FIELD_NUMBER: _ClassVar[int]
    USAGE_FIELD_NUMBER: _ClassVar[int]
    COST_USD_FIELD_NUMBER: _ClassVar[int]
    CACHE_SAVINGS_USD_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    TIME_TO_FIRST_TOKEN_FIELD_NUMBER: _ClassVar[int]
    CACHE_HIT_FIELD_NUMBER: _ClassVar[int]
    ATTEMPTS_FIELD_NUMBER: _ClassVar[int]
    TRACE_ID_FIELD_NUMBER: _ClassVar[int]
    request_id: str
    start_time: _timestamp_pb2.Timestamp
    tenant: str
    key_id: str
    route: str
    provider: str
    model: str
    state: CallState
    error_reason: _errors_pb2.ErrorReason
    usage: _chat_pb2.Usage
    cost_usd: float
    cache_savings_usd: float
    duration: _duration_pb2.Duration
    time_to_first_token: _duration_pb2.Duration
    cache_hit: bool
    attempts: _containers.RepeatedCompositeFieldContainer[Attempt]
    trace_id: str
    def __init__(self, request_id: _Optional[str] = ..., start_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., tenant: _Optional[str] = ..., key_id: _Optional[str] = ..., route: _Optional[str] = ..., provider: _Optional[str] = ..., model: _Optional[str] = ..., state: _Optional[_Union[CallState, str]] = ..., error_reason: _Optional[_Union[_errors_pb2.ErrorReason, str]] = ..., usage: _Optional[_Union[_chat_pb2.Usage, _Mapping]] = ..., cost_usd: _Optional[float] = ..., cache_savings_usd: _Optional[float] = ..., duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., time_to_first_token: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., cache_hit: _Optional[bool] = ..., attempts: _Optional[_Iterable[_Union[Attempt, _Mapping]]] = ..., trace_id: _Optional[str] = ...) -> None: ...

class ListRecentCallsResponse(_message.Message):
    __slots__ = ("calls",)
    CALLS_FIELD_NUMBER: _ClassVar[int]
    calls: _containers.RepeatedCompositeFieldContainer[CallSummary]
    def __init__(self, calls: _Optional[_Iterable[_Union[CallSummary, _Mapping]]] = ...) -> None: ...

class WatchMeshRequest(_message.Message):
    __slots__ = ("interval", "recent_calls", "tenant")
    INTERVAL_FIELD_NUMBER: _ClassVar[int]
    RECENT_CALLS_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    interval: _duration_pb2.Duration
    recent_calls: int
    tenant: str
    def __init__(self, interval: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., recent_calls: _Optional[int] = ..., tenant: _Optional[str] = ...) -> None: ...

class WatchMeshResponse(_message.Message):
    __slots__ = ("snapshot_time", "targets", "recent_calls")
    SNAPSHOT_TIME_FIELD_NUMBER: _ClassVar[int]
    TARGETS_FIELD_NUMBER: _ClassVar[int]
    RECENT_CALLS_FIELD_NUMBER: _ClassVar[int]
    snapshot_time: _timestamp_pb2.Timestamp
    targets: _containers.RepeatedCompositeFieldContainer[TargetStatus]
    recent_calls: _containers.RepeatedCompositeFieldContainer[CallSummary]
    def __init__(self, snapshot_time: _Optional[_Union[datetime.datetime, _timestamp_pb2.Timestamp, _Mapping]] = ..., targets: _Optional[_Iterable[_Union[TargetStatus, _Mapping]]] = ..., recent_calls: _Optional[_Iterable[_Union[CallSummary, _Mapping]]] = ...) -> None: ...

class GetBudgetsRequest(_message.Message):
    __slots__ = ("tenant",)
    TENANT_FIELD_NUMBER: _ClassVar[int]
    tenant: str
    def __init__(self, tenant: _Optional[str] = ...) -> None: ...

class Budget(_message.Message):
    __slots__ = ("scope", "name", "tenant", "wildcard", "daily_usd", "monthly_usd", "spent_today_usd", "spent_this_month_usd", "remaining_today_usd", "remaining_this_month_usd")
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    TENANT_FIELD_NUMBER: _ClassVar[int]
    WILDCARD_FIELD_NUMBER: _ClassVar[int]
    DAILY_USD_FIELD_NUMBER: _ClassVar[int]
    MONTHLY_USD_FIELD_NUMBER: _ClassVar[int]
    SPENT_TODAY_USD_FIELD_NUMBER: _ClassVar[int]
    SPENT_THIS_MONTH_USD_FIELD_NUMBER: _ClassVar[int]
    REMAINING_TODAY_USD_FIELD_NUMBER: _ClassVar[int]
    REMAINING_THIS_MONTH_USD_FIELD_NUMBER: _ClassVar[int]
    scope: BudgetScope
    name: str
    tenant: str
    wildcard: bool
    daily_usd: float
    monthly_usd: float
    spent_today_usd: float
    spent_this_month_usd: float
    remaining_today_usd: float
    remaining_this_month_usd: float
    def __init__(self, scope: _Optional[_Union[BudgetScope, str]] = ..., name: _Optional[str] = ..., tenant: _Optional[str] = ..., wildcard: _Optional[bool] = ..., daily_usd: _Optional[float] = ..., monthly_usd: _Optional[float] = ..., spent_today_usd: _Optional[float] = ..., spent_this_month_usd: _Optional[float] = ..., remaining_today_usd: _Optional[float] = ..., remaining_this_month_usd: _Optional[float] = ...) -> None: ...

class GetBudgetsResponse(_message.Message):
    __slots__ = ("budgets",)
    BUDGETS_FIELD_NUMBER: _ClassVar[int]
    budgets: _containers.RepeatedCompositeFieldContainer[Budget]
    def __init__(self, budgets: _Optional[_Iterable[_Union[Budget, _Mapping]]] = ...) -> None: ...
