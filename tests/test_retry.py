"""The one retry policy: how often, how long between, and what comes out at the end."""

from __future__ import annotations

import pytest

from pipeline.retry import Backoff, retry


class Flaky:
    """Fails with ``errors`` in turn, then returns ``"ok"``."""

    def __init__(self, *errors: BaseException) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


def test_delays_double_up_to_the_cap() -> None:
    assert list(Backoff(attempts=6, first=1.0, cap=5.0).delays()) == [1.0, 2.0, 4.0, 5.0, 5.0]
    assert list(Backoff(attempts=1).delays()) == []
    assert list(Backoff(attempts=0).delays()) == []


def test_jitter_scales_each_delay_into_the_upper_half() -> None:
    delays = list(Backoff(attempts=3, first=2.0, jitter=True).delays(rand=lambda: 0.0))
    assert delays == [1.0, 2.0]


def test_a_transient_failure_is_retried_after_the_delay() -> None:
    slept: list[float] = []
    told: list[tuple[int, str, float]] = []
    call = Flaky(TimeoutError("slow"), TimeoutError("slower"))
    result = retry(
        call,
        Backoff(attempts=3, first=0.25),
        retryable=TimeoutError,
        sleep=slept.append,
        on_retry=lambda n, e, d: told.append((n, str(e), d)),
    )
    assert result == "ok" and call.calls == 3
    assert slept == [0.25, 0.5]
    assert told == [(1, "slow", 0.25), (2, "slower", 0.5)]


def test_the_last_failure_comes_out_when_tries_run_out() -> None:
    call = Flaky(TimeoutError("1"), TimeoutError("2"), TimeoutError("3"))
    with pytest.raises(TimeoutError, match="^2$"):
        retry(call, Backoff(attempts=2), retryable=TimeoutError, sleep=lambda _: None)
    assert call.calls == 2


def test_other_failures_are_not_retried() -> None:
    call = Flaky(PermissionError("no"))
    with pytest.raises(PermissionError):
        retry(call, Backoff(attempts=5), retryable=TimeoutError, sleep=lambda _: None)
    assert call.calls == 1
