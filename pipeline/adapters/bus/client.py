"""Talking to the broker: publishing with retries, and consuming until stopped.

Both go through fedora-messaging's global configuration, loaded by
:func:`pipeline.adapters.bus.settings.load_settings`.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from typing import Any

from fedora_messaging import config as fm_config
from fedora_messaging.exceptions import BaseException as FedoraMessagingError
from fedora_messaging.exceptions import HaltConsumer
from fedora_messaging.exceptions import ValidationError as MessageValidationError
from fedora_messaging.message import Message

from pipeline.adapters.bus.messages import register_message_classes
from pipeline.errors import BusError
from pipeline.retry import Backoff, retry

logger = logging.getLogger(__name__)

#: Sends one message (:func:`amqp_publisher`, or a list's ``append`` in tests).
Publisher = Callable[[Message], None]


def amqp_publisher(timeout: int) -> Publisher:
    """Publish through fedora-messaging's configured broker, ``timeout`` seconds per try."""
    from fedora_messaging import api  # noqa: PLC0415 - starts Twisted (crochet): only here

    register_message_classes()

    def publish(msg: Message) -> None:
        api.publish(msg, timeout=timeout)

    return publish


def publish(
    msg: Message,
    publisher: Publisher,
    *,
    attempts: int,
    hint: str = "",
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Publish ``msg``, tried ``attempts`` times with a backoff (2 s, doubling, at most 30 s).

    Raises:
        BusError: the body does not match its schema (not retried: our bug, not the
            broker's), or every try failed (with ``hint``).
    """

    def once() -> None:
        try:
            publisher(msg)
        except MessageValidationError as e:
            raise BusError(f"{msg.topic}: the body does not match its schema: {e}") from e

    def log_retry(_attempt: int, error: BaseException, delay: float) -> None:
        logger.warning("publishing %s failed (%s); retrying in %.0f s", msg.topic, error, delay)

    policy = Backoff(attempts=attempts, first=2.0, cap=30.0)
    try:
        retry(once, policy, retryable=FedoraMessagingError, sleep=sleep, on_retry=log_retry)
    except FedoraMessagingError as e:
        raise BusError(
            f"publishing {msg.topic} ({msg.body['manifest']}) failed after {attempts} tries: {e}",
            hint=hint,
        ) from e


class ListenerHalted(BusError):
    """The listener stopped on purpose (a configuration or verification problem)."""

    def __init__(self, reason: str, exit_code: int) -> None:
        super().__init__(reason, hint="fix it and restart 'invoke listen'; the message is queued")
        self.exit_code = exit_code


def consume(callback: Callable[[Message], None], *, reconnect_max_delay: float) -> None:
    """Consume the configured queues with ``callback`` until SIGINT/SIGTERM or a halt.

    Runs fedora-messaging's Twisted service, whose factory reconnects with exponential
    backoff (at most ``reconnect_max_delay`` seconds apart) when the broker goes away, and
    re-declares the queues and bindings; unacknowledged messages are redelivered.

    Raises:
        ListenerHalted: the callback halted the consumer.
        BusError: the broker refused the queues or bindings, or cancelled the consumer.
    """
    from fedora_messaging.twisted.service import (  # noqa: PLC0415 - Twisted only here
        FedoraMessagingServiceV2,
    )
    from twisted.internet import defer  # noqa: PLC0415
    from twisted.internet import reactor as _reactor  # noqa: PLC0415
    from twisted.python import log as twisted_log  # noqa: PLC0415
    from twisted.python.failure import Failure  # noqa: PLC0415

    # Twisted types the global reactor as a module; its zope interfaces do not type-check
    # method calls either, so it is Any here.
    reactor: Any = _reactor
    twisted_log.PythonLoggingObserver().start()  # type: ignore[no-untyped-call]
    service = FedoraMessagingServiceV2(fm_config.conf["amqp_url"])
    service.factory.maxDelay = math.ceil(reconnect_max_delay)
    failures: list[Failure] = []

    def watch(consumers: list[Any]) -> defer.Deferred[Any]:
        logger.info("listening on %s", ", ".join(c.queue for c in consumers))
        return defer.gatherResults([c.result for c in consumers], consumeErrors=True)

    def stop(_: object) -> None:
        if reactor.running:
            reactor.stop()

    started = service.factory.consume(
        callback, fm_config.conf["bindings"], fm_config.conf["queues"]
    )
    started.addCallback(watch)
    started.addErrback(failures.append)
    started.addBoth(stop)
    reactor.callWhenRunning(service.startService)
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    reactor.run()
    if failures:
        raise _consumer_error(failures[0])


def _consumer_error(failure: Any) -> BusError:
    from twisted.internet.defer import FirstError  # noqa: PLC0415

    value = failure.value
    if isinstance(value, FirstError):
        value = value.subFailure.value
    if isinstance(value, HaltConsumer):
        return ListenerHalted(str(value.reason), value.exit_code or 2)
    return BusError(
        f"the consumer stopped: {value}",
        hint="check the broker, the queue's permissions and the [queues]/[bindings] settings",
    )
