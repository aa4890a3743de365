"""The Bugzilla backend of the failure tracker, through python-bugzilla's REST mode.

python-bugzilla (3.2+, ``force_rest=True``) talks to ``<url>/rest/``; the calls this
backend makes, and the requests python-bugzilla sends for them, are:

==================  ==========================================================
first use           ``GET /rest/version`` (``Bugzilla.connect``)
``find_open``       ``GET /rest/bug`` (a search), then ``GET /rest/bug/<id>/comment``
                    for each bug found
``get``             ``GET /rest/bug/<id>`` and ``GET /rest/bug/<id>/comment``
``create``          ``POST /rest/bug``
``comment``         ``PUT /rest/bug/<id>`` with ``{"comment": {"comment": ...}}``
``close``           ``PUT /rest/bug/<id>`` with the status, resolution and comment
==================  ==========================================================

The API key goes in the ``Bugzilla_api_key`` query parameter of every request (the only
way Bugzilla 5.0 takes it; python-bugzilla uses a bearer header for Red Hat's Bugzilla
only). It therefore sits in every request URL: no message this module raises or logs
names the key, and the loggers of urllib3 and python-bugzilla, which print URLs at debug
level, get a filter that blanks it out.

Retries. Every REST call is one *try*; a transient fault (a timeout, a refused or reset
connection, an HTTP 5xx answer) is retried after ``backoff``, ``2 * backoff``,
``4 * backoff``… seconds, ``attempts`` tries in all, then :class:`TrackerError` says
what failed and how. A refusal by Bugzilla itself (an HTTP 4xx or a Bugzilla fault such as
an invalid API key or an unknown product) is raised at once, with Bugzilla's message.

Writes are retried only when the request certainly never reached Bugzilla. Reads
(``find_open``, ``get``, and the version probe before any call) are retried on every
transient fault. ``create``, ``comment`` and ``close`` each add a bug or a comment, so
repeating one whose answer was lost would file a second bug or a second comment. They
are retried only after a refused connection or a connect timeout, when no byte of the
request was sent. After a read timeout, a reset connection or a 5xx answer the change
may have been made, so they raise :class:`TrackerError` instead. The tracker stage
(:mod:`pipeline.core.tracker`) reads the tracker's state again before acting, so the next
``tracker.sync`` finds the change if it was made and makes it if it was not.

Timeouts. python-bugzilla passes ``timeout=300`` (or ``$PYTHONBUGZILLA_REQUESTS_TIMEOUT``)
with every request and has no setting for it. The backend's own session, a
:class:`TimeoutSession`, replaces it with ``timeout``. An injected session is used as is,
so inject a :class:`TimeoutSession` to keep requests bounded.
"""

from __future__ import annotations

import logging
import math
import re
import time
import urllib.parse
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import bugzilla
import requests
import urllib3.exceptions

from pipeline.core.models.manifests import TrackerBackendName
from pipeline.core.tracker import Bug
from pipeline.errors import ConfigError, TrackerError
from pipeline.retry import Backoff, retry

__all__ = ["BugzillaTracker", "TimeoutSession"]

log = logging.getLogger(__name__)

T = TypeVar("T")
TagField = Literal["whiteboard", "keywords"]

#: Fields asked for in searches and gets; python-bugzilla adds ``id`` itself.
BUG_FIELDS = ["id", "summary", "status", "resolution", "whiteboard", "keywords"]
RETRY_HINT = "the next tracker.sync will finish the job"
REFUSED_HINT = "check [tracker.bugzilla] in product.toml and the Bugzilla API key"
#: Loggers that print request URLs (which carry the API key) at debug level.
URL_LOGGERS = (
    "urllib3.connectionpool",
    "urllib3.util.retry",
    "bugzilla._backendrest",
    "bugzilla._session",
    "bugzilla.base",
    "bugzilla.bug",
)
_KEY_PARAM = re.compile(r"((?:Bugzilla_)?api_key=)[^&#\s'\"]*", re.IGNORECASE)


class TimeoutSession(requests.Session):
    """A session that bounds every request by ``timeout`` seconds, whatever the caller passes.

    ``timeout`` is a number (for connecting and for each read) or a ``(connect, read)`` pair.
    """

    def __init__(self, timeout: float | tuple[float, float]) -> None:
        super().__init__()
        self.timeout = timeout

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        """Send a request with this session's timeout."""
        kwargs["timeout"] = self.timeout
        return super().request(*args, **kwargs)


class _Redactor(logging.Filter):
    """Blank out API keys in log records: the query parameter, and every key in use."""

    def __init__(self) -> None:
        super().__init__()
        self.secrets: set[str] = set()

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a malformed record: logging reports it, not us
            return True
        clean = _scrub(message, self.secrets)
        if clean != message:
            record.msg, record.args = clean, ()
        return True


_REDACTOR = _Redactor()


def _scrub(text: str, secrets: set[str] | frozenset[str] = frozenset()) -> str:
    """``text`` without any API key: neither a key parameter's value nor any of ``secrets``."""
    text = _KEY_PARAM.sub(r"\1***", text)
    for secret in secrets:
        for form in {secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret)}:
            text = text.replace(form, "***")
    return text


def _detail(text: str, secrets: frozenset[str]) -> str:
    """A library's or Bugzilla's error text for a one-line message: scrubbed, one line."""
    return " ".join(_scrub(text, secrets).split())


def _install_redactor(api_key: str | None) -> None:
    if api_key:
        _REDACTOR.secrets.add(api_key)
    for name in URL_LOGGERS:
        logger = logging.getLogger(name)
        if _REDACTOR not in logger.filters:
            logger.addFilter(_REDACTOR)


@dataclass(frozen=True)
class _Fault:
    """How one failed try failed."""

    detail: str
    #: Worth another try (a timeout, a broken connection, a 5xx).
    transient: bool
    #: The request may have reached Bugzilla (so a write may have been made).
    reached: bool


def _chain(exc: BaseException) -> Iterator[BaseException]:
    """``exc`` and every exception it wraps, through causes, contexts, reasons and args.

    python-bugzilla re-raises a failed request as ``type(e)(scrubbed message)`` inside its
    ``except`` block, so the original exception (and urllib3's reason) is the context.
    """
    seen: set[int] = set()
    todo = [exc]
    while todo:
        e = todo.pop()
        if id(e) in seen:
            continue
        seen.add(id(e))
        yield e
        linked = (e.__cause__, e.__context__, getattr(e, "reason", None), *e.args)
        todo.extend(x for x in linked if isinstance(x, BaseException))


def _urls(url: str) -> tuple[str, str]:
    """Bugzilla's base URL (for messages and bug links: no credentials, no query) and its
    REST URL (``<base>/rest/``), from the configured ``url``.

    Raises:
        ConfigError: ``url`` is not an http(s) URL.
    """
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ConfigError(
            f"bugzilla url {_scrub(url)!r} is not an http(s) URL",
            hint="set [tracker.bugzilla] url to the Bugzilla base URL",
        )
    path = parts.path.rstrip("/")
    path = path.removesuffix("/rest")
    netloc = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    if parts.port is not None:
        netloc += f":{parts.port}"
    base = urllib.parse.urlunsplit((parts.scheme, netloc, path, "", ""))
    # python-bugzilla only adds "rest/" to a URL without a path, so add it here.
    rest = urllib.parse.urlunsplit((parts.scheme, parts.netloc, f"{path}/rest/", "", ""))
    return base, rest


class _Transient(Exception):
    """A transient fault, worth another try."""

    def __init__(self, fault: _Fault) -> None:
        super().__init__(fault.detail)
        self.fault = fault


def _classify(exc: Exception, secrets: frozenset[str]) -> _Fault:
    """Sort a failed try into retryable or not, and whether it may have reached Bugzilla."""
    if isinstance(exc, requests.HTTPError):  # python-bugzilla's BugzillaHTTPError
        response = exc.response
        status = response.status_code if response is not None else 0
        reason = f" {response.reason}" if response is not None and response.reason else ""
        if status >= 500:
            return _Fault(f"HTTP {status}", transient=True, reached=True)
        return _Fault(f"HTTP {status}{reason}", transient=False, reached=True)
    if isinstance(exc, requests.exceptions.SSLError):  # a certificate problem stays
        return _Fault(f"TLS error: {_detail(str(exc), secrets)}", transient=False, reached=False)
    if isinstance(exc, requests.ConnectTimeout):
        return _Fault("connect timeout", transient=True, reached=False)
    if isinstance(exc, requests.Timeout):
        return _Fault("read timeout", transient=True, reached=True)
    if isinstance(exc, requests.ConnectionError):
        chain = list(_chain(exc))
        if any(isinstance(e, urllib3.exceptions.NewConnectionError) for e in chain):
            refused = any(isinstance(e, ConnectionRefusedError) for e in chain)
            detail = "connection refused" if refused else "cannot connect"
            return _Fault(detail, transient=True, reached=False)
        return _Fault("connection lost", transient=True, reached=True)
    if isinstance(exc, requests.RequestException):
        if isinstance(exc, ValueError):  # InvalidURL, InvalidHeader…: a setting, not a fault
            return _Fault(_detail(str(exc), secrets), transient=False, reached=False)
        return _Fault(type(exc).__name__, transient=True, reached=True)  # a truncated answer
    if isinstance(exc, bugzilla.BugzillaError):  # a fault Bugzilla answered with
        return _Fault(_detail(str(exc), secrets), transient=False, reached=True)
    # ValueError: an answer that is not Bugzilla's JSON (a proxy's page, say).
    detail = f"unexpected answer: {_detail(str(exc), secrets)}"
    return _Fault(detail, transient=False, reached=True)


class _BugzillaFailure(Exception):
    """What went wrong, scrubbed: the cause attached to a TrackerError.

    The library's own exceptions are not chained, since their context holds the
    original requests error, whose text carries the request URL and so the API key.
    """


class BugzillaTracker:
    """A :class:`pipeline.core.tracker.TrackerBackend` on a Bugzilla 5 REST API.

    Raises:
        ConfigError: from the constructor, for an unusable URL, tag field or retry setting.
    """

    name: TrackerBackendName = "bugzilla"

    def __init__(
        self,
        url: str,
        product: str,
        component: str,
        version: str,
        *,
        tag_field: TagField = "whiteboard",
        api_key: str | None = None,
        attempts: int = 4,
        backoff: float = 0.5,
        timeout: float | tuple[float, float] = 60.0,
        close_status: str = "CLOSED",
        close_resolution: str = "CURRENTRELEASE",
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        """Set up the backend; nothing is sent before the first call.

        ``url`` is Bugzilla's base URL (``https://bugzilla.example.com``; a trailing
        ``/rest`` is accepted). ``session`` replaces the backend's own
        :class:`TimeoutSession`; the caller keeps ownership of it.
        """
        #: Base URL for messages and bug links (no credentials, no query).
        self.url, self._rest_url = _urls(url)
        if tag_field not in ("whiteboard", "keywords"):
            raise ConfigError(
                f"bugzilla tag_field {tag_field!r} is neither 'whiteboard' nor 'keywords'"
            )
        if attempts < 1 or backoff < 0:
            raise ConfigError(f"bugzilla retries: attempts {attempts} < 1 or backoff {backoff} < 0")
        self.product = product
        self.component = component
        self.version = version
        self.tag_field: TagField = tag_field
        self.attempts = attempts
        self.backoff = backoff
        self.close_status = close_status
        self.close_resolution = close_resolution
        self._sleep = sleep
        self._secrets = frozenset({api_key} if api_key else set())
        self._own_session = session is None
        self._session = session if session is not None else TimeoutSession(timeout)
        _install_redactor(api_key)
        # use_creds=False: no ~/.config/python-bugzilla/bugzillarc, no cached login token.
        self._bz: Any = bugzilla.Bugzilla(
            url=None,
            api_key=api_key,
            force_rest=True,
            use_creds=False,
            requests_session=self._session,
        )
        self._connected = False

    # --- lifecycle -----------------------------------------------------------------------

    def close_session(self) -> None:
        """Close the backend's own HTTP session (an injected one is left open)."""
        if self._own_session:
            self._session.close()

    def __enter__(self) -> BugzillaTracker:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close_session()

    # --- TrackerBackend ------------------------------------------------------------------

    def find_open(self, tag: str) -> list[Bug]:
        """Open bugs (status not ``close_status``) of the product and component carrying ``tag``.

        Bugzilla matches the whiteboard by substring (and keywords by word); only bugs
        with ``tag`` as a whole whiteboard word or keyword are kept. Oldest (lowest id)
        first, each with its comments.

        Raises:
            TrackerError: the search or a comment fetch failed.
        """
        field, operator = (
            ("status_whiteboard", "substring")
            if self.tag_field == "whiteboard"
            else ("keywords", "anywords")
        )
        query = {
            "product": [self.product],
            "component": [self.component],
            "query_format": "advanced",
            "f1": "bug_status",
            "o1": "notequals",
            "v1": self.close_status,
            "f2": field,
            "o2": operator,
            "v2": tag,
            "include_fields": list(BUG_FIELDS),
        }
        found = self._call("search", lambda bz: [b.get_raw_data() for b in bz.query(query)])
        raws = sorted((r for r in found if self._carries(r, tag)), key=lambda r: int(r["id"]))
        return [self._bug(raw, self._comments(str(raw["id"]))) for raw in raws]

    def get(self, bug_id: str) -> Bug:
        """One bug, with its comments.

        Raises:
            TrackerError: no such bug, or Bugzilla could not be read.
        """
        number = self._number(bug_id)
        raw = self._call(
            "get", lambda bz: bz.getbug(number, include_fields=list(BUG_FIELDS)).get_raw_data()
        )
        return self._bug(raw, self._comments(str(number)))

    def create(self, tag: str, summary: str, description: str) -> Bug:
        """File a bug in the product and component, ``tag`` in the whiteboard or keywords.

        Raises:
            TrackerError: Bugzilla refused it, or the answer was lost (not retried then:
                the bug may exist).
        """
        fields: dict[str, Any] = {
            "product": self.product,
            "component": self.component,
            "version": self.version,
            "summary": summary,
            "description": description,
        }
        if self.tag_field == "whiteboard":
            fields["whiteboard"] = tag
        else:
            fields["keywords"] = [tag]
        created = self._call("create", lambda bz: bz.createbug(**fields), write=True)
        bug_id = str(created.id)
        return Bug(bug_id, self._link(bug_id), True, summary, (description,))

    def comment(self, bug_id: str, text: str) -> None:
        """Add a comment to a bug.

        Raises:
            TrackerError: Bugzilla refused it, or the answer was lost (not retried then).
        """
        number = self._number(bug_id)
        self._call(
            "comment",
            lambda bz: bz.update_bugs([number], bz.build_update(comment=text)),
            write=True,
        )

    def close(self, bug_id: str, comment: str) -> None:
        """Close a bug (``close_status``, ``close_resolution``) with a comment.

        Raises:
            TrackerError: Bugzilla refused it, or the answer was lost (not retried then).
        """
        number = self._number(bug_id)
        update = {
            "status": self.close_status,
            "resolution": self.close_resolution,
            "comment": comment,
        }
        self._call(
            "close",
            lambda bz: bz.update_bugs([number], bz.build_update(**update)),
            write=True,
        )

    # --- helpers -------------------------------------------------------------------------

    def _link(self, bug_id: str) -> str:
        return f"{self.url}/show_bug.cgi?id={bug_id}"

    def _number(self, bug_id: str) -> int:
        if not str(bug_id).isdigit():
            raise TrackerError(
                f"bugzilla {self.url}: {bug_id!r} is not a bug number",
                hint="bug ids of the bugzilla backend are numbers",
            )
        return int(bug_id)

    def _carries(self, raw: dict[str, Any], tag: str) -> bool:
        wanted = tag.casefold()
        if self.tag_field == "whiteboard":
            words = str(raw.get("whiteboard") or "").split()
        else:
            words = [str(k) for k in raw.get("keywords") or []]
        return any(w.casefold() == wanted for w in words)

    def _bug(self, raw: dict[str, Any], comments: tuple[str, ...]) -> Bug:
        bug_id = str(raw["id"])
        status = str(raw.get("status") or "")
        summary = str(raw.get("summary") or "")
        return Bug(bug_id, self._link(bug_id), status != self.close_status, summary, comments)

    def _comments(self, bug_id: str) -> tuple[str, ...]:
        """A bug's comment texts, the description (count 0) first."""
        answer = self._call("comments", lambda bz: bz.get_comments([int(bug_id)]))
        try:
            listed = answer["bugs"][bug_id]["comments"]
            ordered = sorted(listed, key=lambda c: int(c.get("count", 0)))
            return tuple(str(c["text"]) for c in ordered)
        except (KeyError, TypeError, ValueError, AttributeError):
            raise TrackerError(
                f"bugzilla {self.url}: comments of bug {bug_id}: unexpected answer",
                hint="is the URL a Bugzilla 5 REST API?",
            ) from None

    def _connect(self) -> Any:
        if not self._connected:
            self._bz.connect(self._rest_url)  # GET /rest/version
            self._connected = True
        return self._bz

    def _call(self, op: str, fn: Callable[[Any], T], *, write: bool = False) -> T:
        """Run ``fn`` on the connected client, retrying transient faults (see the module doc).

        Raises:
            TrackerError: Bugzilla refused, a write may have reached it, or the tries ran out.
        """

        def once() -> T:
            sending_write = False
            try:
                bz = self._connect()  # a read, whatever the operation
                sending_write = write
                return fn(bz)
            except (requests.RequestException, bugzilla.BugzillaError, ValueError) as exc:
                fault = _classify(exc, self._secrets)
            if not fault.transient:
                raise TrackerError(
                    f"bugzilla {self.url}: {op} failed: {fault.detail}", hint=REFUSED_HINT
                ) from _BugzillaFailure(fault.detail)
            if sending_write and fault.reached:
                raise TrackerError(
                    f"bugzilla {self.url}: {op} failed ({fault.detail}); not retried, "
                    "since Bugzilla may have made the change",
                    hint=RETRY_HINT,
                ) from _BugzillaFailure(fault.detail)
            raise _Transient(fault)

        def tell(attempt: int, error: BaseException, delay: float) -> None:
            detail = error.fault.detail if isinstance(error, _Transient) else str(error)
            log.warning(
                "bugzilla %s: %s failed (%s); try %d of %d in %.1fs",
                self.url,
                op,
                detail,
                attempt + 1,
                self.attempts,
                delay,
            )

        policy = Backoff(attempts=self.attempts, first=self.backoff, cap=math.inf)
        try:
            return retry(once, policy, retryable=_Transient, sleep=self._sleep, on_retry=tell)
        except _Transient as e:
            raise TrackerError(
                f"bugzilla {self.url}: {op} failed after {self.attempts} tries ({e.fault.detail})",
                hint=RETRY_HINT,
            ) from _BugzillaFailure(e.fault.detail)
