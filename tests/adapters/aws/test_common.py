"""The AWS adapters' shared parts: error reasons, the retry policy, lazy boto3."""

from __future__ import annotations

import subprocess
import sys

import pytest
from botocore.exceptions import ClientError, EndpointConnectionError, NoCredentialsError

from pipeline.adapters.aws.common import NO_CREDENTIALS, AwsCallFailed, call_aws, reason


def client_error(code: str, message: str = "") -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": message}}, "DescribeImages")


@pytest.mark.parametrize(
    ("error", "expected"),
    [
        (client_error("AccessDenied", "no\n  way"), "AccessDenied: no way"),
        (client_error("AccessDenied"), "AccessDenied"),
        (NoCredentialsError(), NO_CREDENTIALS),
        (ValueError("x" * 300), "ValueError: " + "x" * 187 + "…"),
    ],
)
def test_reason_is_one_line_from_code_and_message(error: Exception, expected: str) -> None:
    assert reason(error) == expected


def test_throttling_is_retried_then_reported_with_the_attempts() -> None:
    sleeps: list[float] = []

    def throttled() -> None:
        raise client_error("Throttling", "slow down")

    with pytest.raises(AwsCallFailed) as caught:
        call_aws(throttled, attempts=3, backoff=0.5, sleep=sleeps.append)
    assert caught.value.reason == "Throttling: slow down (after 3 attempts)"
    assert sleeps == [0.5, 1.0]


def test_transport_errors_are_retried_and_auth_errors_are_not() -> None:
    calls: list[str] = []

    def down() -> None:
        calls.append("down")
        raise EndpointConnectionError(endpoint_url="http://127.0.0.1:1")

    with pytest.raises(AwsCallFailed, match=r"^EndpointConnectionError: .*\(after 2 attempts\)$"):
        call_aws(down, attempts=2, backoff=0.0, sleep=lambda _: None)
    assert len(calls) == 2

    def denied() -> None:
        calls.append("denied")
        raise client_error("AuthFailure", "bad key")

    with pytest.raises(AwsCallFailed, match="^AuthFailure: bad key$"):
        call_aws(denied, attempts=4, backoff=0.0, sleep=lambda _: None)
    assert calls.count("denied") == 1


def test_call_aws_returns_the_answer() -> None:
    assert call_aws(lambda: 42, attempts=1, backoff=0.0) == 42


@pytest.mark.parametrize("module", ["pipeline.adapters.aws.ec2", "pipeline.adapters.aws.s3"])
def test_importing_an_aws_adapter_does_not_import_boto3(module: str) -> None:
    code = f"import sys, {module}; print('boto3' in sys.modules, 'botocore' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "False"]
