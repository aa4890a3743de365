"""Typed errors, one base class, each with a message a user can act on.

Errors are raised deep in the library and caught once, at the task boundary
(``pipeline/cli/boundary.py``), which prints ``error: <message>`` on one line and exits
with ``exit_code``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pydantic import ValidationError


class FortnightError(Exception):
    """Base of every error Fortnight raises on purpose.

    ``message`` says what is wrong and names the file or field; ``hint`` says
    what to do about it.
    """

    exit_code = 1

    def __init__(self, message: str, *, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def diagnostics(self) -> str:
        """The one line shown to the user."""
        return f"{self.message}; {self.hint}" if self.hint else self.message


class ConfigError(FortnightError):
    """A configuration file (``product.toml``, ``trust.json``) or option is wrong."""

    exit_code = 2


class KeyConfigError(ConfigError):
    """A signing key is missing, unreadable, or not trusted for its role."""


class InputError(FortnightError):
    """Compose metadata or another input is missing, malformed or unsafe."""

    exit_code = 3


class FetchError(InputError):
    """A remote input could not be fetched, even after retries."""


class ChecksumMismatchError(InputError):
    """An image file does not match the size or sha256 its metadata claims."""


class VerificationError(FortnightError):
    """One or more manifests failed verification (fail closed)."""

    exit_code = 4

    def __init__(self, failures: list[tuple[str, str]]) -> None:
        self.failures = failures
        first_path, first_reason = failures[0]
        more = f" (and {len(failures) - 1} more)" if len(failures) > 1 else ""
        super().__init__(
            f"{first_path}: {first_reason}{more}",
            hint="run 'invoke verify' to list every rejected manifest",
        )


class TrustError(FortnightError):
    """The root of trust does not verify: the root chain, its pin or ``trust.json``
    (fail closed, like a rejected manifest)."""

    exit_code = 4


class ConflictError(FortnightError):
    """A manifest with the same identity but different content already exists."""

    exit_code = 5


class StoreError(FortnightError):
    """Git or the file system refused an operation on the manifest log."""

    exit_code = 6


class TrackerError(FortnightError):
    """The failure tracker (Bugzilla) could not be reached or refused a request.

    Manifests recorded before the failure are kept; the next ``tracker.sync``
    finishes the job.
    """

    exit_code = 7


class CloudError(FortnightError):
    """A cloud provider (EC2) refused or failed a change, even after retries.

    The other regions' changes stand; re-running is safe (withdrawal is idempotent).
    """

    exit_code = 8


class TestRunError(FortnightError):
    """A test battery could not be run (nothing to test, a broken battery)."""

    __test__ = False  # not a pytest test class
    exit_code = 3


class SiteError(FortnightError):
    """The site could not be built or published (a template, Pelican, or the host failed).

    Nothing half-built is published: the output folder keeps complete files only, and a
    re-run finishes the job.
    """

    exit_code = 9


class BusError(FortnightError):
    """The message bus (an AMQP broker, through fedora-messaging) failed or refused us.

    Manifests already committed stand: announcing is retried, and ``invoke announce``
    re-sends what was missed.
    """

    exit_code = 10


class OstreeError(FortnightError):
    """An OSTree repository (through the ``ostree`` command) refused or failed an operation,
    or a commit is missing, incomplete or carries the wrong version.

    Refs only move after a signed manifest says so: re-running, or ``ostree.sync``,
    finishes the job.
    """

    exit_code = 11


class MailError(FortnightError):
    """The announcement mail could not be sent: the SMTP server was unreachable after
    retries, or refused the login, the sender or the recipients."""

    exit_code = 12


def describe_validation_error(e: ValidationError) -> str:
    """The first pydantic error as ``field.path: message``, on one line."""
    err = e.errors()[0]
    loc = ".".join(str(p) for p in err["loc"]) or "(top level)"
    more = f" (and {e.error_count() - 1} more)" if e.error_count() > 1 else ""
    msg = err["msg"]
    if err["type"] == "json_invalid":
        return f"not valid JSON ({err.get('ctx', {}).get('error', msg)})"
    return f"{loc}: {msg}{more}"
