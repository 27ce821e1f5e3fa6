import datetime

from google.protobuf import duration_pb2 as _duration_pb2
from google.protobuf import struct_pb2 as _struct_pb2
from llmesh.v1 import chat_pb2 as _chat_pb2
from llmesh.v1 import templates_pb2 as _templates_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class RedactionMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    REDACTION_MODE_UNSPECIFIED: _ClassVar[RedactionMode]
    REDACTION_MODE_MASK: _ClassVar[RedactionMode]
    REDACTION_MODE_PSEUDONYMIZE: _ClassVar[RedactionMode]
    REDACTION_MODE_BLOCK: _ClassVar[RedactionMode]

class ScreenAction(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    SCREEN_ACTION_UNSPECIFIED: _ClassVar[ScreenAction]
    SCREEN_ACTION_FLAG: _ClassVar[ScreenAction]
    SCREEN_ACTION_BLOCK: _ClassVar[ScreenAction]
    SCREEN_ACTION_ROUTE: _ClassVar[ScreenAction]

class FitStrategy(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FIT_STRATEGY_UNSPECIFIED: _ClassVar[FitStrategy]
    FIT_STRATEGY_TRIM: _ClassVar[FitStrategy]
    FIT_STRATEGY_LARGER_MODEL: _ClassVar[FitStrategy]
    FIT_STRATEGY_SUMMARIZE: _ClassVar[FitStrategy]
REDACTION_MODE_UNSPECIFIED: RedactionMode
REDACTION_MODE_MASK: RedactionMode
REDACTION_MODE_PSEUDONYMIZE: RedactionMode
REDACTION_MODE_BLOCK: RedactionMode
SCREEN_ACTION_UNSPECIFIED: ScreenAction
SCREEN_ACTION_FLAG: ScreenAction
SCREEN_ACTION_BLOCK: ScreenAction
SCREEN_ACTION_ROUTE: ScreenAction
FIT_STRATEGY_UNSPECIFIED: FitStrategy
FIT_STRATEGY_TRIM: FitStrategy
FIT_STRATEGY_LARGER_MODEL: FitStrategy
FIT_STRATEGY_SUMMARIZE: FitStrategy

class CountTokensRequest(_message.Message):
    __slots__ = ("model", "text", "messages", "tools")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    TEXT_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    TOOLS_FIELD_NUMBER: _ClassVar[int]
    model: str
    text: str
    messages: _containers.RepeatedCompositeFieldContainer[_chat_pb2.Message]
    tools: _containers.RepeatedCompositeFieldContainer[_chat_pb2.Tool]
    def __init__(self, model: _Optional[str] = ..., text: _Optional[str] = ..., messages: _Optional[_Iterable[_Union[_chat_pb2.Message, _Mapping]]] = ..., tools: _Optional[_Iterable[_Union[_chat_pb2.Tool, _Mapping]]] = ...) -> None: ...

class CountTokensResponse(_message.Message):
    __slots__ = ("tokens", "tokenizer", "exact")
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOKENIZER_FIELD_NUMBER: _ClassVar[int]
    EXACT_FIELD_NUMBER: _ClassVar[int]
    tokens: int
    tokenizer: str
    exact: bool
    def __init__(self, tokens: _Optional[int] = ..., tokenizer: _Optional[str] = ..., exact: _Optional[bool] = ...) -> None: ...

class FitContextRequest(_message.Message):
    __slots__ = ("model", "messages", "max_tokens")
    MODEL_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    model: str
    messages: _containers.RepeatedCompositeFieldContainer[_chat_pb2.Message]
    max_tokens: int
    def __init__(self, model: _Optional[str] = ..., messages: _Optional[_Iterable[_Union[_chat_pb2.Message, _Mapping]]] = ..., max_tokens: _Optional[int] = ...) -> None: ...

class FitContextResponse(_message.Message):
    __slots__ = ("messages", "tokens", "dropped_indices", "dropped_tokens", "tokenizer", "exact")
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    DROPPED_INDICES_FIELD_NUMBER: _ClassVar[int]
    DROPPED_TOKENS_FIELD_NUMBER: _ClassVar[int]
    TOKENIZER_FIELD_NUMBER: _ClassVar[int]
    EXACT_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[_chat_pb2.Message]
    tokens: int
    dropped_indices: _containers.RepeatedScalarFieldContainer[int]
    dropped_tokens: int
    tokenizer: str
    exact: bool
    def __init__(self, messages: _Optional[_Iterable[_Union[_chat_pb2.Message, _Mapping]]] = ..., tokens: _Optional[int] = ..., dropped_indices: _Optional[_Iterable[int]] = ..., dropped_tokens: _Optional[int] = ..., tokenizer: _Optional[str] = ..., exact: _Optional[bool] = ...) -> None: ...

class RedactionPattern(_message.Message):
    __slots__ = ("name", "regex")
    NAME_FIELD_NUMBER: _ClassVar[int]
    REGEX_FIELD_NUMBER: _ClassVar[int]
    name: str
    regex: str
    def __init__(self, name: _Optional[str] = ..., regex: _Optional[str] = ...) -> None: ...

class RedactionWords(_message.Message):
    __slots__ = ("name", "words")
    NAME_FIELD_NUMBER: _ClassVar[int]
    WORDS_FIELD_NUMBER: _ClassVar[int]
    name: str
    words: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, name: _Optional[str] = ..., words: _Optional[_Iterable[str]] = ...) -> None: ...

class RedactionRules(_message.Message):
    __slots__ = ("mode", "detectors", "patterns", "words")
    MODE_FIELD_NUMBER: _ClassVar[int]
    DETECTORS_FIELD_NUMBER: _ClassVar[int]
    PATTERNS_FIELD_NUMBER: _ClassVar[int]
    WORDS_FIELD_NUMBER: _ClassVar[int]
    mode: RedactionMode
    detectors: _containers.RepeatedScalarFieldContainer[str]
    patterns: _containers.RepeatedCompositeFieldContainer[RedactionPattern]
    words: _containers.RepeatedCompositeFieldContainer[RedactionWords]
    def __init__(self, mode: _Optional[_Union[RedactionMode, str]] = ..., detectors: _Optional[_Iterable[str]] = ..., patterns: _Optional[_Iterable[_Union[RedactionPattern, _Mapping]]] = ..., words: _Optional[_Iterable[_Union[RedactionWords, _Mapping]]] = ...) -> None: ...

class PrepareRequest(_message.Message):
    __slots__ = ("messages", "steps", "redaction", "screening", "fit", "template", "output_redaction")
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    STEPS_FIELD_NUMBER: _ClassVar[int]
    REDACTION_FIELD_NUMBER: _ClassVar[int]
    SCREENING_FIELD_NUMBER: _ClassVar[int]
    FIT_FIELD_NUMBER: _ClassVar[int]
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_REDACTION_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[_chat_pb2.Message]
    steps: _containers.RepeatedScalarFieldContainer[str]
    redaction: RedactionRules
    screening: ScreenRules
    fit: FitRules
    template: TemplateRender
    output_redaction: RedactionRules
    def __init__(self, messages: _Optional[_Iterable[_Union[_chat_pb2.Message, _Mapping]]] = ..., steps: _Optional[_Iterable[str]] = ..., redaction: _Optional[_Union[RedactionRules, _Mapping]] = ..., screening: _Optional[_Union[ScreenRules, _Mapping]] = ..., fit: _Optional[_Union[FitRules, _Mapping]] = ..., template: _Optional[_Union[TemplateRender, _Mapping]] = ..., output_redaction: _Optional[_Union[RedactionRules, _Mapping]] = ...) -> None: ...

class TemplateRender(_message.Message):
    __slots__ = ("template", "variables")
    TEMPLATE_FIELD_NUMBER: _ClassVar[int]
    VARIABLES_FIELD_NUMBER: _ClassVar[int]
    template: _templates_pb2.TemplateVersion
    variables: _struct_pb2.Struct
    def __init__(self, template: _Optional[_Union[_templates_pb2.TemplateVersion, _Mapping]] = ..., variables: _Optional[_Union[_struct_pb2.Struct, _Mapping]] = ...) -> None: ...

class RenderTemplateRequest(_message.Message):
    __slots__ = ("render",)
    RENDER_FIELD_NUMBER: _ClassVar[int]
    render: TemplateRender
    def __init__(self, render: _Optional[_Union[TemplateRender, _Mapping]] = ...) -> None: ...

class RenderTemplateResponse(_message.Message):
    __slots__ = ("messages", "parameters")
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[_chat_pb2.Message]
    parameters: _templates_pb2.TemplateParameters
    def __init__(self, messages: _Optional[_Iterable[_Union[_chat_pb2.Message, _Mapping]]] = ..., parameters: _Optional[_Union[_templates_pb2.TemplateParameters, _Mapping]] = ...) -> None: ...

class ScreenRules(_message.Message):
    __slots__ = ("action", "threshold", "rules", "classifier")
    ACTION_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    RULES_FIELD_NUMBER: _ClassVar[int]
    CLASSIFIER_FIELD_NUMBER: _ClassVar[int]
    action: ScreenAction
    threshold: float
    rules: _containers.RepeatedScalarFieldContainer[str]
    classifier: str
    def __init__(self, action: _Optional[_Union[ScreenAction, str]] = ..., threshold: _Optional[float] = ..., rules: _Optional[_Iterable[str]] = ..., classifier: _Optional[str] = ...) -> None: ...

class Pseudonym(_message.Message):
    __slots__ = ("placeholder", "value")
    PLACEHOLDER_FIELD_NUMBER: _ClassVar[int]
    VALUE_FIELD_NUMBER: _ClassVar[int]
    placeholder: str
    value: str
    def __init__(self, placeholder: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...

class StepDecision(_message.Message):
    __slots__ = ("step", "decision", "duration", "counts", "score", "rules")
    class CountsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    STEP_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    DURATION_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    SCORE_FIELD_NUMBER: _ClassVar[int]
    RULES_FIELD_NUMBER: _ClassVar[int]
    step: str
    decision: str
    duration: _duration_pb2.Duration
    counts: _containers.ScalarMap[str, int]
    score: float
    rules: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, step: _Optional[str] = ..., decision: _Optional[str] = ..., duration: _Optional[_Union[datetime.timedelta, _duration_pb2.Duration, _Mapping]] = ..., counts: _Optional[_Mapping[str, int]] = ..., score: _Optional[float] = ..., rules: _Optional[_Iterable[str]] = ...) -> None: ...

class PrepareResponse(_message.Message):
    __slots__ = ("messages", "pseudonyms", "decisions", "dropped_indices", "moved_to", "parameters", "output_redaction", "summarize")
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    PSEUDONYMS_FIELD_NUMBER: _ClassVar[int]
    DECISIONS_FIELD_NUMBER: _ClassVar[int]
    DROPPED_INDICES_FIELD_NUMBER: _ClassVar[int]
    MOVED_TO_FIELD_NUMBER: _ClassVar[int]
    PARAMETERS_FIELD_NUMBER: _ClassVar[int]
    OUTPUT_REDACTION_FIELD_NUMBER: _ClassVar[int]
    SUMMARIZE_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[_chat_pb2.Message]
    pseudonyms: _containers.RepeatedCompositeFieldContainer[Pseudonym]
    decisions: _containers.RepeatedCompositeFieldContainer[StepDecision]
    dropped_indices: _containers.RepeatedScalarFieldContainer[int]
    moved_to: str
    parameters: _templates_pb2.TemplateParameters
    output_redaction: RedactionRules
    summarize: SummarySpan
    def __init__(self, messages: _Optional[_Iterable[_Union[_chat_pb2.Message, _Mapping]]] = ..., pseudonyms: _Optional[_Iterable[_Union[Pseudonym, _Mapping]]] = ..., decisions: _Optional[_Iterable[_Union[StepDecision, _Mapping]]] = ..., dropped_indices: _Optional[_Iterable[int]] = ..., moved_to: _Optional[str] = ..., parameters: _Optional[_Union[_templates_pb2.TemplateParameters, _Mapping]] = ..., output_redaction: _Optional[_Union[RedactionRules, _Mapping]] = ..., summarize: _Optional[_Union[SummarySpan, _Mapping]] = ...) -> None: ...

class SummarySpan(_message.Message):
    __slots__ = ("indices", "tokens")
    INDICES_FIELD_NUMBER: _ClassVar[int]
    TOKENS_FIELD_NUMBER: _ClassVar[int]
    indices: _containers.RepeatedScalarFieldContainer[int]
    tokens: int
    def __init__(self, indices: _Optional[_Iterable[int]] = ..., tokens: _Optional[int] = ...) -> None: ...

class FitRules(_message.Message):
    __slots__ = ("strategy", "model", "context_window", "reserve_output", "larger_model", "larger_context_window", "larger_reserve_output", "keep_turns", "summary_max_tokens", "counted_tokens")
    STRATEGY_FIELD_NUMBER: _ClassVar[int]
    MODEL_FIELD_NUMBER: _ClassVar[int]
    CONTEXT_WINDOW_FIELD_NUMBER: _ClassVar[int]
    RESERVE_OUTPUT_FIELD_NUMBER: _ClassVar[int]
    LARGER_MODEL_FIELD_NUMBER: _ClassVar[int]
    LARGER_CONTEXT_WINDOW_FIELD_NUMBER: _ClassVar[int]
    LARGER_RESERVE_OUTPUT_FIELD_NUMBER: _ClassVar[int]
    KEEP_TURNS_FIELD_NUMBER: _ClassVar[int]
    SUMMARY_MAX_TOKENS_FIELD_NUMBER: _ClassVar[int]
    COUNTED_TOKENS_FIELD_NUMBER: _ClassVar[int]
    strategy: FitStrategy
    model: str
    context_window: int
    reserve_output: int
    larger_model: str
    larger_context_window: int
    larger_reserve_output: int
    keep_turns: int
    summary_max_tokens: int
    counted_tokens: int
    def __init__(self, strategy: _Optional[_Union[FitStrategy, str]] = ..., model: _Optional[str] = ..., context_window: _Optional[int] = ..., reserve_output: _Optional[int] = ..., larger_model: _Optional[str] = ..., larger_context_window: _Optional[int] = ..., larger_reserve_output: _Optional[int] = ..., keep_turns: _Optional[int] = ..., summary_max_tokens: _Optional[int] = ..., counted_tokens: _Optional[int] = ...) -> None: ...

class RedactRequest(_message.Message):
    __slots__ = ("messages", "redaction")
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    REDACTION_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[_chat_pb2.Message]
    redaction: RedactionRules
    def __init__(self, messages: _Optional[_Iterable[_Union[_chat_pb2.Message, _Mapping]]] = ..., redaction: _Optional[_Union[RedactionRules, _Mapping]] = ...) -> None: ...

class RedactResponse(_message.Message):
    __slots__ = ("messages", "pseudonyms", "counts")
    class CountsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    PSEUDONYMS_FIELD_NUMBER: _ClassVar[int]
    COUNTS_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[_chat_pb2.Message]
    pseudonyms: _containers.RepeatedCompositeFieldContainer[Pseudonym]
    counts: _containers.ScalarMap[str, int]
    def __init__(self, messages: _Optional[_Iterable[_Union[_chat_pb2.Message, _Mapping]]] = ..., pseudonyms: _Optional[_Iterable[_Union[Pseudonym, _Mapping]]] = ..., counts: _Optional[_Mapping[str, int]] = ...) -> None: ...

class RestoreRequest(_message.Message):
    __slots__ = ("text", "messages", "pseudonyms")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    PSEUDONYMS_FIELD_NUMBER: _ClassVar[int]
    text: str
    messages: _containers.RepeatedCompositeFieldContainer[_chat_pb2.Message]
    pseudonyms: _containers.RepeatedCompositeFieldContainer[Pseudonym]
    def __init__(self, text: _Optional[str] = ..., messages: _Optional[_Iterable[_Union[_chat_pb2.Message, _Mapping]]] = ..., pseudonyms: _Optional[_Iterable[_Union[Pseudonym, _Mapping]]] = ...) -> None: ...

class RestoreResponse(_message.Message):
    __slots__ = ("text", "messages", "restored")
    TEXT_FIELD_NUMBER: _ClassVar[int]
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    RESTORED_FIELD_NUMBER: _ClassVar[int]
    text: str
    messages: _containers.RepeatedCompositeFieldContainer[_chat_pb2.Message]
    restored: int
    def __init__(self, text: _Optional[str] = ..., messages: _Optional[_Iterable[_Union[_chat_pb2.Message, _Mapping]]] = ..., restored: _Optional[int] = ...) -> None: ...

class ScreenRequest(_message.Message):
    __slots__ = ("messages", "screening")
    MESSAGES_FIELD_NUMBER: _ClassVar[int]
    SCREENING_FIELD_NUMBER: _ClassVar[int]
    messages: _containers.RepeatedCompositeFieldContainer[_chat_pb2.Message]
    screening: ScreenRules
    def __init__(self, messages: _Optional[_Iterable[_Union[_chat_pb2.Message, _Mapping]]] = ..., screening: _Optional[_Union[ScreenRules, _Mapping]] = ...) -> None: ...

class ScreenResponse(_message.Message):
    __slots__ = ("score", "rules", "decision")
    SCORE_FIELD_NUMBER: _ClassVar[int]
    RULES_FIELD_NUMBER: _ClassVar[int]
    DECISION_FIELD_NUMBER: _ClassVar[int]
    score: float
    rules: _containers.RepeatedScalarFieldContainer[str]
    decision: str
    def __init__(self, score: _Optional[float] = ..., rules: _Optional[_Iterable[str]] = ..., decision: _Optional[str] = ...) -> None: ...
