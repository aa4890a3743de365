"""The task boundary: where a ``FortnightError`` becomes one line and an exit code."""

from __future__ import annotations

import functools
import os
from collections.abc import Callable
from typing import ParamSpec, TypeVar

from invoke.exceptions import Exit

from pipeline.errors import FortnightError

P = ParamSpec("P")
R = TypeVar("R")


def boundary(fn: Callable[P, R]) -> Callable[P, R]:
    """Turn a ``FortnightError`` into ``error: …`` on one line and its exit code.

    Errors are caught once, here; ``FORTNIGHT_DEBUG=1`` lets the traceback through.
    """

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        try:
            return fn(*args, **kwargs)
        except FortnightError as e:
            if os.environ.get("FORTNIGHT_DEBUG"):
                raise
            raise Exit(f"error: {e.diagnostics()}", code=e.exit_code) from e
        except KeyboardInterrupt:
            raise Exit("interrupted: nothing half-written was kept", code=130) from None

    return wrapper
