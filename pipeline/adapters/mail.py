"""Sending the announcement mail over SMTP (``smtplib``), retried with pipeline.retry.

Where and how to send comes from the environment (never from a file in the repository):
``FORTNIGHT_SMTP_HOST`` (no host: no mail), ``FORTNIGHT_SMTP_PORT`` (587),
``FORTNIGHT_SMTP_STARTTLS`` (``1``; ``0`` for a plain relay), ``FORTNIGHT_SMTP_USER`` and
``FORTNIGHT_SMTP_PASSWORD`` (log in when both are set), ``FORTNIGHT_MAIL_FROM``,
``FORTNIGHT_SMTP_CAFILE`` (the CA certificates to check the server's against, instead of
the system's).
Recipients are the product's ``[announce] mail_to`` in product.toml.
"""

from __future__ import annotations

import smtplib
import ssl
import time
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid

from pipeline.errors import ConfigError, MailError
from pipeline.retry import Backoff, retry

HOST_ENV = "FORTNIGHT_SMTP_HOST"
PORT_ENV = "FORTNIGHT_SMTP_PORT"
STARTTLS_ENV = "FORTNIGHT_SMTP_STARTTLS"
USER_ENV = "FORTNIGHT_SMTP_USER"
PASSWORD_ENV = "FORTNIGHT_SMTP_PASSWORD"
FROM_ENV = "FORTNIGHT_MAIL_FROM"
CAFILE_ENV = "FORTNIGHT_SMTP_CAFILE"

#: Failures worth another try: the server refused or dropped the connection, or timed out.
#: (smtplib's errors are OSErrors too: a refused login or recipient is not retried.)
RETRYABLE = (
    ConnectionError,
    TimeoutError,
    smtplib.SMTPConnectError,
    smtplib.SMTPServerDisconnected,
)


@dataclass(frozen=True)
class SmtpSettings:
    """Where and how to send mail."""

    host: str
    port: int = 587
    starttls: bool = True
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    sender: str = "fortnight@localhost"
    cafile: str | None = None
    timeout: float = 30.0
    backoff: Backoff = field(default_factory=lambda: Backoff(attempts=4, first=1.0))


def settings_from_env(env: Mapping[str, str]) -> SmtpSettings | None:
    """The SMTP settings of ``env``; None when ``FORTNIGHT_SMTP_HOST`` is not set.

    Raises:
        ConfigError: the port is not a number, or STARTTLS is not 0 or 1.
    """
    host = env.get(HOST_ENV, "").strip()
    if not host:
        return None
    port = env.get(PORT_ENV, "587").strip()
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{PORT_ENV}={port!r}: not a port number", hint="e.g. 587 or 25")
    starttls = env.get(STARTTLS_ENV, "1").strip()
    if starttls not in ("0", "1"):
        raise ConfigError(f"{STARTTLS_ENV}={starttls!r}: must be 0 or 1")
    return SmtpSettings(
        host=host,
        port=int(port),
        starttls=starttls == "1",
        username=env.get(USER_ENV) or None,
        password=env.get(PASSWORD_ENV) or None,
        sender=env.get(FROM_ENV, "").strip() or "fortnight@localhost",
        cafile=env.get(CAFILE_ENV) or None,
    )


def compose_message(
    settings: SmtpSettings,
    recipients: Sequence[str],
    subject: str,
    body: str,
    *,
    key: str,
    date: datetime,
) -> EmailMessage:
    """A plain-text mail; ``key`` (the manifest's path) makes a stable Message-ID, so a
    re-sent copy can be recognised.

    Raises:
        ConfigError: a header would hold a line break (a sender or product name with one).
    """
    msg = EmailMessage()
    try:
        msg["From"] = settings.sender
        msg["To"] = ", ".join(recipients)
        msg["Subject"] = subject
    except ValueError as e:
        raise ConfigError(
            f"announcement mail: {_first_line(e)}",
            hint=f"check {FROM_ENV} and display_name in product.toml",
        ) from e
    msg["Date"] = format_datetime(date)
    domain = settings.sender.rpartition("@")[2] or "localhost"
    msg["Message-ID"] = make_msgid(str(uuid.uuid5(uuid.NAMESPACE_URL, f"fortnight:{key}")), domain)
    # quoted-printable: a mostly-ASCII body stays readable as sent (UTF-8 where needed)
    msg.set_content(body, cte="quoted-printable")
    return msg


Connect = Callable[[str, int, float], smtplib.SMTP]


def _connect(host: str, port: int, timeout: float) -> smtplib.SMTP:
    return smtplib.SMTP(host, port, timeout=timeout)


def send(
    settings: SmtpSettings,
    message: EmailMessage,
    *,
    connect: Connect = _connect,
    sleep: Callable[[float], None] = time.sleep,
) -> None:
    """Send ``message`` to its To: recipients; retry what a busy server would fix.

    Raises:
        MailError: the server could not be reached after the tries, refused to log in, or
            refused the sender or every recipient.
    """
    where = f"SMTP {settings.host}:{settings.port}"

    def once() -> None:
        with connect(settings.host, settings.port, settings.timeout) as smtp:
            if settings.starttls:
                smtp.starttls(context=ssl.create_default_context(cafile=settings.cafile))
            if settings.username and settings.password:
                smtp.login(settings.username, settings.password)
            smtp.send_message(message)

    try:
        retry(once, settings.backoff, retryable=RETRYABLE, sleep=sleep)
    except smtplib.SMTPAuthenticationError as e:
        raise MailError(
            f"{where}: login refused ({e.smtp_code})",
            hint=f"check {USER_ENV} and {PASSWORD_ENV}",
        ) from e
    except smtplib.SMTPRecipientsRefused as e:
        raise MailError(
            f"{where}: every recipient refused ({', '.join(sorted(e.recipients))})",
            hint="check [announce] mail_to in product.toml",
        ) from e
    except RETRYABLE as e:
        raise MailError(
            f"{where}: unreachable after {settings.backoff.attempts} tries "
            f"({type(e).__name__}: {_first_line(e)})",
            hint=f"check {HOST_ENV} and {PORT_ENV}; 'invoke announce' re-sends what is unsent",
        ) from e
    except OSError as e:  # smtplib.SMTPException included
        raise MailError(
            f"{where}: {type(e).__name__}: {_first_line(e)}",
            hint=f"check {HOST_ENV} and the server's log",
        ) from e


def _first_line(e: BaseException) -> str:
    text = str(e).strip()
    return text.splitlines()[0] if text else ""
