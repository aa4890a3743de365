"""What every AWS adapter shares: one-line error reasons and the retry policy for AWS calls.

A reason is built from the error's code and message, never from the client's
configuration, so it is safe to record and to print. botocore is imported inside the
functions that need it: importing this module does not load boto3 or botocore.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from typing import TypeVar

from pipeline.retry import Backoff, retry

T = TypeVar("T")

#: Error codes worth retrying: the service is throttling or briefly unavailable.
RETRY_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "RequestLimitExceeded",
        "RequestThrottled",
        "TooManyRequestsException",
        "ServiceUnavailable",
        "Unavailable",
        "InternalError",
        "InternalFailure",
    }
)
NO_CREDENTIALS = "no AWS credentials found (set AWS_PROFILE, or AWS_ACCESS_KEY_ID and its secret)"


def one_line(text: str, limit: int = 200) -> str:
    """``text`` on one line (runs of white space become one space), at most ``limit`` long."""
    line = " ".join(text.split())
    return line if len(line) <= limit else line[: limit - 1] + "…"


def reason(e: BaseException) -> str:
    """One line from an AWS error's code and message (never the client's configuration).

    A ``ClientError`` gives ``Code: Message``; missing credentials say how to give them;
    a failed S3 upload gives its cause's reason; anything else ``TypeName: text``.
    """
    from boto3.exceptions import S3UploadFailedError  # noqa: PLC0415 - boto3 is slow to import
    from botocore.exceptions import ClientError, NoCredentialsError  # noqa: PLC0415

    if isinstance(e, ClientError):
        error = e.response.get("Error", {})
        code = error.get("Code") or "ClientError"
        message = error.get("Message") or ""
        return one_line(f"{code}: {message}" if message else str(code))
    if isinstance(e, NoCredentialsError):
        return NO_CREDENTIALS
    cause = e.__cause__ or e.__context__
    if isinstance(e, S3UploadFailedError) and isinstance(cause, ClientError):
        return reason(cause)
    return one_line(f"{type(e).__name__}: {e}")


class AwsCallFailed(Exception):
    """An AWS call failed, at once or after its retries; ``reason`` is one line, safe to record."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class _Throttled(Exception):
    """A ``ClientError`` whose code is in :data:`RETRY_CODES`, so worth another try."""

    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


def policy(attempts: int, backoff: float) -> Backoff:
    """The retry policy of AWS calls: ``attempts`` tries (at least one), waits of
    ``backoff``, twice that, four times… (uncapped: a few tries only)."""
    return Backoff(attempts=max(attempts, 1), first=backoff, cap=math.inf)


def call_aws(
    call: Callable[[], T],
    *,
    attempts: int,
    backoff: float,
    sleep: Callable[[float], None] = time.sleep,
) -> T:
    """``call()``, retried on throttling and transport errors with exponential backoff.

    Raises:
        AwsCallFailed: auth and other client errors at once; retryable errors after
            ``attempts`` (the reason then ends ``(after N attempts)``).
    """
    from botocore.exceptions import (  # noqa: PLC0415 - botocore is slow to import
        BotoCoreError,
        ClientError,
        ConnectTimeoutError,
        EndpointConnectionError,
        ReadTimeoutError,
    )

    def once() -> T:
        try:
            return call()
        except ClientError as e:
            if e.response.get("Error", {}).get("Code", "") in RETRY_CODES:
                raise _Throttled(e) from e
            raise

    transport = (EndpointConnectionError, ConnectTimeoutError, ReadTimeoutError)
    rules = policy(attempts, backoff)
    try:
        return retry(once, rules, retryable=(_Throttled, *transport), sleep=sleep)
    except _Throttled as e:
        raise AwsCallFailed(f"{reason(e.error)} (after {rules.attempts} attempts)") from None
    except transport as e:
        raise AwsCallFailed(f"{reason(e)} (after {rules.attempts} attempts)") from None
    except (ClientError, BotoCoreError) as e:  # no credentials, bad configuration: not retried
        raise AwsCallFailed(reason(e)) from None
