"""One retry policy for every outside call: a few tries, exponential backoff, a cap.

Callers say which failures are worth another try (``retryable``) and get the last
failure raised unchanged when the tries run out, so each keeps its own error wording:

    policy = Backoff(attempts=4, first=0.5)
    result = retry(lambda: client.call(), policy, retryable=(TimeoutError,))
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Backoff:
    """How often to try and how long to wait between tries.

    The wait before try ``n + 1`` is ``first * 2 ** (n - 1)`` seconds, at most ``cap``;
    with ``jitter`` each wait is scaled by a random factor in [0.5, 1) so that
    concurrent runners do not retry in step.
    """

    attempts: int = 3
    first: float = 0.5
    cap: float = 30.0
    jitter: bool = False

    def delays(self, rand: Callable[[], float] = random.random) -> Iterator[float]:
        """The waits between tries: one fewer than ``attempts`` (none for one try)."""
        for n in range(max(self.attempts, 1) - 1):
            delay = min(self.cap, self.first * 2**n)
            yield delay * (0.5 + rand() / 2) if self.jitter else delay


def retry(
    call: Callable[[], T],
    policy: Backoff,
    *,
    retryable: type[BaseException] | tuple[type[BaseException], ...],
    sleep: Callable[[float], None] = time.sleep,
    on_retry: Callable[[int, BaseException, float], None] | None = None,
) -> T:
    """``call()``, tried up to ``policy.attempts`` times while it raises ``retryable``.

    ``on_retry(attempt, error, delay)`` is told before each wait (to log it).

    Raises:
        BaseException: whatever ``call`` raised that is not ``retryable`` (at once), or
            the last ``retryable`` error once the tries are used up.
    """
    delays = policy.delays()
    attempt = 1
    while True:
        try:
            return call()
        except retryable as e:
            delay = next(delays, None)
            if delay is None:
                raise
            if on_retry is not None:
                on_retry(attempt, e, delay)
            sleep(delay)
            attempt += 1
