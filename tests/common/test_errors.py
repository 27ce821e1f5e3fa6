"""The error table is drawn once in code and once in contracts/; they and the proto agree."""

from pathlib import Path

import grpc
import pytest
import yaml
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

from llmesh.services.common.errors import (
    ERROR_DOMAIN,
    ERROR_TABLE,
    FieldViolation,
    LlmeshError,
    Reason,
)
from llmesh.services.common.rpc_errors import to_rpc_status
from llmesh.services.core.usage import Usage
from llmesh.v1 import errors_pb2

CONTRACT = yaml.safe_load((Path(__file__).parents[2] / "contracts" / "errors.yaml").read_text())


def test_reasons_match_proto_enum() -> None:
    proto = {
        name.removeprefix("ERROR_REASON_")
        for name in errors_pb2.DESCRIPTOR.enum_types_by_name["ErrorReason"].values_by_name
        if name != "ERROR_REASON_UNSPECIFIED"
    }
    assert proto == {r.value for r in Reason}
    assert set(ERROR_TABLE) == set(Reason)


def test_contract_table_matches_code() -> None:
    assert CONTRACT["domain"] == ERROR_DOMAIN
    assert set(CONTRACT["reasons"]) == {r.value for r in Reason}
    for reason, spec in ERROR_TABLE.items():
        row = CONTRACT["reasons"][reason.value]
        assert (row["grpc"], row["http"], row["retryable"]) == (
            spec.grpc_code,
            spec.http_status,
            spec.retryable,
        ), reason


@pytest.mark.parametrize("reason", list(Reason))
def test_grpc_codes_are_canonical(reason: Reason) -> None:
    code = grpc.StatusCode[ERROR_TABLE[reason].grpc_code]
    assert code is not grpc.StatusCode.OK


def test_status_carries_exactly_one_error_info_and_details() -> None:
    err = LlmeshError(
        Reason.RATE_LIMITED,
        "slow down",
        retry_after=1.5,
        violations=(FieldViolation("input.model", "bad"),),
        metadata={"provider": "openai"},
    )
    status = to_rpc_status(err)
    assert status.code is grpc.StatusCode.RESOURCE_EXHAUSTED
    details_bin = dict(status.trailing_metadata)["grpc-status-details-bin"]
    from google.rpc import status_pb2

    decoded = status_pb2.Status.FromString(details_bin)
    infos = [d for d in decoded.details if d.Is(error_details_pb2.ErrorInfo.DESCRIPTOR)]
    assert len(infos) == 1
    info = error_details_pb2.ErrorInfo()
    infos[0].Unpack(info)
    assert (info.reason, info.domain, dict(info.metadata)) == (
        "RATE_LIMITED",
        "llmesh.v1",
        {"provider": "openai"},
    )
    retry = error_details_pb2.RetryInfo()
    assert any(d.Unpack(retry) for d in decoded.details if d.Is(retry.DESCRIPTOR))
    assert retry.retry_delay.seconds == 1 and retry.retry_delay.nanos == 500_000_000
    assert rpc_status is not None


def test_partial_usage_goes_on_the_wire_as_error_info_metadata() -> None:
    err = LlmeshError(Reason.STREAM_INTERRUPTED, "cut", metadata={"provider": "openai"})
    err.usage = Usage(input_tokens=12, output_tokens=3, estimated=True)
    status = to_rpc_status(err)
    info = error_details_pb2.ErrorInfo()
    rpc = status_pb2.Status.FromString(dict(status.trailing_metadata)["grpc-status-details-bin"])
    rpc.details[0].Unpack(info)
    assert dict(info.metadata) == {
        "provider": "openai",
        "usage.input_tokens": "12",
        "usage.output_tokens": "3",
        "usage.cache_read_tokens": "0",
        "usage.estimated": "true",
    }
    assert "usage.input_tokens" not in err.metadata  # in the process, usage stays typed
