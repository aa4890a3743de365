"""Publishing: the one retry policy, and what is not worth a retry (no broker needed)."""

from __future__ import annotations

import logging

import pytest
from fedora_messaging.exceptions import PublishTimeout
from fedora_messaging.exceptions import ValidationError as MessageValidationError
from fedora_messaging.message import Message

from pipeline.adapters.bus.client import publish
from pipeline.adapters.bus.messages import ComposeRecorded
from pipeline.errors import BusError
from tests.adapters.bus.test_messages import compose_body


def message() -> ComposeRecorded:
    return ComposeRecorded(topic="fortnight.atomic-host.compose.recorded", body=compose_body())


def test_a_publish_that_fails_then_works_is_retried_with_backoff(
    caplog: pytest.LogCaptureFixture,
) -> None:
    outcomes: list[Exception | None] = [PublishTimeout("slow"), PublishTimeout("slow"), None]
    sent: list[Message] = []
    sleeps: list[float] = []

    def publisher(msg: Message) -> None:
        error = outcomes.pop(0)
        if error is not None:
            raise error
        sent.append(msg)

    with caplog.at_level(logging.WARNING):
        publish(message(), publisher, attempts=3, sleep=sleeps.append)
    assert len(sent) == 1
    assert sleeps == [2.0, 4.0]
    assert "retrying in 2 s" in caplog.text


def test_a_publish_that_keeps_failing_says_so_with_the_hint() -> None:
    sleeps: list[float] = []

    def down(msg: Message) -> None:
        raise PublishTimeout("broker down")

    with pytest.raises(BusError, match="failed after 4 tries") as caught:
        publish(message(), down, attempts=4, hint="re-run it", sleep=sleeps.append)
    assert caught.value.hint == "re-run it"
    assert "manifests/atomic-host/composes/" in caught.value.message
    assert sleeps == [2.0, 4.0, 8.0]


def test_a_body_that_does_not_match_its_schema_is_not_retried() -> None:
    calls: list[Message] = []

    def strict(msg: Message) -> None:
        calls.append(msg)
        raise MessageValidationError("bad body")

    with pytest.raises(BusError, match="does not match its schema"):
        publish(message(), strict, attempts=3, sleep=lambda s: None)
    assert len(calls) == 1
