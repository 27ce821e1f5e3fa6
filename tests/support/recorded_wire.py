"""Response bodies recorded from the emulator (`llmesh.services.emulator`), byte for byte.

Captured by sending the lean adapters' requests for "Hello there, wire" (max_tokens 16) to
the emulator and saving each reply's body; streams are kept as one SSE event per piece, as
a paced upstream sends them. `tests/orchestrator/providers/test_lean_mock.py` replays them
through `llmesh.services.transport.MockTransport`.
"""

from __future__ import annotations

OPENAI_429_HEADERS = {
    "content-type": "application/json",
    "retry-after": "7",
    "retry-after-ms": "7000",
}
ANTHROPIC_429_HEADERS = {"content-type": "application/json", "retry-after": "7"}
SSE_HEADERS = {"content-type": "text/event-stream; charset=utf-8"}

OPENAI_STREAM = (  # the reply to "Hello there, wire", one event per piece
    (
        b'data: {"id":"chatcmpl-662d43e2380441d99be94ab672e6a","object":"chat.co'
        b'mpletion.chunk","created":1796501947,"model":"claude-test","service_ti'
        b'er":"default","system_fingerprint":"fp_emulator","choices":[{"index":0'
        b',"delta":{"role":"assistant","content":"","refusal":null},"logprobs":n'
        b'ull,"finish_reason":null}],"usage":null}\n\n'
    ),
    (
        b'data: {"id":"chatcmpl-662d43e2380441d99be94ab672e6a","object":"chat.co'
        b'mpletion.chunk","created":1796501947,"model":"claude-test","service_ti'
        b'er":"default","system_fingerprint":"fp_emulator","choices":[{"index":0'
        b',"delta":{"content":"Hello"},"logprobs":null,"finish_reason":null}],"u'
        b'sage":null}\n\n'
    ),
    (
        b'data: {"id":"chatcmpl-662d43e2380441d99be94ab672e6a","object":"chat.co'
        b'mpletion.chunk","created":1796501947,"model":"claude-test","service_ti'
        b'er":"default","system_fingerprint":"fp_emulator","choices":[{"index":0'
        b',"delta":{"content":" there,"},"logprobs":null,"finish_reason":null}],'
        b'"usage":null}\n\n'
    ),
    (
        b'data: {"id":"chatcmpl-662d43e2380441d99be94ab672e6a","object":"chat.co'
        b'mpletion.chunk","created":1796501947,"model":"claude-test","service_ti'
        b'er":"default","system_fingerprint":"fp_emulator","choices":[{"index":0'
        b',"delta":{"content":" wire"},"logprobs":null,"finish_reason":null}],"u'
        b'sage":null}\n\n'
    ),
    (
        b'data: {"id":"chatcmpl-662d43e2380441d99be94ab672e6a","object":"chat.co'
        b'mpletion.chunk","created":1796501947,"model":"claude-test","service_ti'
        b'er":"default","system_fingerprint":"fp_emulator","choices":[{"index":0'
        b',"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}\n\n'
    ),
    (
        b'data: {"id":"chatcmpl-662d43e2380441d99be94ab672e6a","object":"chat.co'
        b'mpletion.chunk","created":1796501947,"model":"claude-test","service_ti'
        b'er":"default","system_fingerprint":"fp_emulator","choices":[],"usage":'
        b'{"prompt_tokens":9,"completion_tokens":3,"total_tokens":12,"prompt_tok'
        b'ens_details":{"cached_tokens":0,"audio_tokens":0},"completion_tokens_d'
        b'etails":{"reasoning_tokens":0,"audio_tokens":0,"accepted_prediction_to'
        b'kens":0,"rejected_prediction_tokens":0}}}\n\n'
    ),
    (b"data: [DONE]\n\n"),
)
OPENAI_ERROR_IN_STREAM = (  # x-emulator-fault: stream_error, after two deltas
    (
        b'data: {"id":"chatcmpl-dc6705e879704aaeb6a1fdc8f95e4","object":"chat.co'
        b'mpletion.chunk","created":1796501947,"model":"claude-test","service_ti'
        b'er":"default","system_fingerprint":"fp_emulator","choices":[{"index":0'
        b',"delta":{"role":"assistant","content":"","refusal":null},"logprobs":n'
        b'ull,"finish_reason":null}],"usage":null}\n\n'
    ),
    (
        b'data: {"id":"chatcmpl-dc6705e879704aaeb6a1fdc8f95e4","object":"chat.co'
        b'mpletion.chunk","created":1796501947,"model":"claude-test","service_ti'
        b'er":"default","system_fingerprint":"fp_emulator","choices":[{"index":0'
        b',"delta":{"content":"Hello"},"logprobs":null,"finish_reason":null}],"u'
        b'sage":null}\n\n'
    ),
    (
        b'data: {"id":"chatcmpl-dc6705e879704aaeb6a1fdc8f95e4","object":"chat.co'
        b'mpletion.chunk","created":1796501947,"model":"claude-test","service_ti'
        b'er":"default","system_fingerprint":"fp_emulator","choices":[{"index":0'
        b',"delta":{"content":" there,"},"logprobs":null,"finish_reason":null}],'
        b'"usage":null}\n\n'
    ),
    (
        b'data: {"error":{"message":"The server had an error while processing yo'
        b'ur request. Sorry about that!","type":"server_error","param":null,"cod'
        b'e":null}}\n\n'
    ),
)
ANTHROPIC_STREAM = (  # the reply to "Hello there, wire", one event per piece
    (
        b'event: message_start\ndata: {"type":"message_start","message":{"id":"ms'
        b'g_6f9078bf29ad49a2800ae331","type":"message","role":"assistant","model'
        b'":"claude-test","content":[],"stop_reason":null,"stop_sequence":null,"'
        b'usage":{"input_tokens":9,"cache_creation_input_tokens":0,"cache_read_i'
        b'nput_tokens":0,"cache_creation":{"ephemeral_5m_input_tokens":0,"epheme'
        b'ral_1h_input_tokens":0},"output_tokens":1,"service_tier":"standard"}}}'
        b"\n\n"
    ),
    (
        b'event: content_block_start\ndata: {"type":"content_block_start","index"'
        b':0,"content_block":{"type":"text","text":""}}\n\n'
    ),
    (b'event: ping\ndata: {"type":"ping"}\n\n'),
    (
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index"'
        b':0,"delta":{"type":"text_delta","text":"Hello"}}\n\n'
    ),
    (
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index"'
        b':0,"delta":{"type":"text_delta","text":" there,"}}\n\n'
    ),
    (
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index"'
        b':0,"delta":{"type":"text_delta","text":" wire"}}\n\n'
    ),
    (b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n'),
    (
        b'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reas'
        b'on":"end_turn","stop_sequence":null},"usage":{"input_tokens":9,"cache_'
        b'creation_input_tokens":0,"cache_read_input_tokens":0,"output_tokens":3'
        b"}}\n\n"
    ),
    (b'event: message_stop\ndata: {"type":"message_stop"}\n\n'),
)
ANTHROPIC_OVERLOADED_IN_STREAM = (  # the same fault: overloaded_error inside a 200
    (
        b'event: message_start\ndata: {"type":"message_start","message":{"id":"ms'
        b'g_4d7e73d0a9e74a4aaf4bb292","type":"message","role":"assistant","model'
        b'":"claude-test","content":[],"stop_reason":null,"stop_sequence":null,"'
        b'usage":{"input_tokens":9,"cache_creation_input_tokens":0,"cache_read_i'
        b'nput_tokens":0,"cache_creation":{"ephemeral_5m_input_tokens":0,"epheme'
        b'ral_1h_input_tokens":0},"output_tokens":1,"service_tier":"standard"}}}'
        b"\n\n"
    ),
    (
        b'event: content_block_start\ndata: {"type":"content_block_start","index"'
        b':0,"content_block":{"type":"text","text":""}}\n\n'
    ),
    (b'event: ping\ndata: {"type":"ping"}\n\n'),
    (
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index"'
        b':0,"delta":{"type":"text_delta","text":"Hello"}}\n\n'
    ),
    (
        b'event: content_block_delta\ndata: {"type":"content_block_delta","index"'
        b':0,"delta":{"type":"text_delta","text":" there,"}}\n\n'
    ),
    (
        b'event: error\ndata: {"type":"error","error":{"type":"overloaded_error",'
        b'"message":"Overloaded"},"request_id":"req_7c82260bcd3f4024a274a0d8fd09'
        b'e634"}\n\n'
    ),
)
OPENAI_429 = (  # x-emulator-fault: rate_limit, x-emulator-retry-after: 7
    b'{"error":{"message":"Rate limit reached for claude-test in organizatio'
    b"n org-emulator on requests per min (RPM): Limit 500, Used 500, Request"
    b"ed 1. Please try again in 7s. Visit https://platform.openai.com/accoun"
    b't/rate-limits to learn more.","type":"requests","param":null,"code":"r'
    b'ate_limit_exceeded"}}'
)
ANTHROPIC_429 = (  # the same fault
    b'{"type":"error","error":{"type":"rate_limit_error","message":"This req'
    b"uest would exceed the rate limit for your organization of 50 requests "
    b"per minute. For details, refer to: https://docs.claude.com/en/api/rate"
    b"-limits. You can see the response headers for current usage. Please re"
    b"duce the prompt length or the maximum tokens requested, or try again l"
    b"ater. You may also contact sales at https://www.anthropic.com/contact-"
    b'sales to discuss your options for a rate limit increase."},"request_id'
    b'":"req_c43aa411b828458180213a41d01e7f5c"}'
)
