"""A Bugzilla 5.0 REST emulator on 127.0.0.1, for testing python-bugzilla clients over HTTP.

It serves the REST resources python-bugzilla's REST backend calls for reading, filing,
updating and commenting on bugs, with Bugzilla 5.0's JSON shapes, status codes and error
codes. Bugs are held in memory, under a Fedora-like workflow (open statuses ``NEW`` …
``RELEASE_PENDING``, closed status ``CLOSED`` with a resolution).

=========================================  ==============================================
``GET /rest/version``                      ``{"version": "5.0.6"}`` (no login needed)
``GET /rest/extensions``, ``/timezone``    ``{"extensions": {}}``, ``{"timezone": "+0000"}``
``GET /rest/valid_login``                  ``{"result": bool}`` (``login``, ``api_key``)
``GET /rest/bug``                          search: ``{"bugs": [...]}``
``POST /rest/bug``                         create: 201 ``{"id": N}``
``GET /rest/bug/<id-or-alias>``            ``{"bugs": [bug], "faults": []}``
``PUT /rest/bug/<id-or-alias>``            update: ``{"bugs": [{"id", "alias", "changes", ...}]}``
``GET /rest/bug/<id>/comment``             ``{"bugs": {"<id>": {"comments": [..]}}, ...}``
``POST /rest/bug/<id>/comment``            201 ``{"id": comment-id}``
``GET /rest/bug/comment/<comment-id>``     ``{"bugs": {}, "comments": {"<cid>": {...}}}``
=========================================  ==============================================

Search takes the simple parameters (``product``, ``component``, ``version``, ``status``,
``resolution``, ``id``, ``summary``, ``whiteboard``, ``keywords`` …), Bugzilla's custom-search
charts (``f1``/``o1``/``v1`` and ``field0-0-0``/``type0-0-0``/``value0-0-0``, ANDed),
``include_fields``/``exclude_fields``, ``limit`` and ``offset``. A parameter the emulator does
not understand is answered with an error (where Bugzilla might ignore it), so a test never
passes on a filter the emulator silently dropped.

The API key is taken where Bugzilla takes it: the ``Bugzilla_api_key`` or ``api_key`` query
parameter (5.0), or the ``X-BUGZILLA-API-KEY`` header (5.1+). A wrong key fails every call
but ``version`` and ``timezone`` with HTTP 400 and code 306, as Bugzilla does; writes without
a key fail with HTTP 401 and code 410. Errors are ``{"error": true, "code": N, "message": ...,
"documentation": ...}`` with the HTTP status Bugzilla's REST server maps the code to.

Faults: :meth:`BugzillaEmulator.inject` queues a fault for the next matching requests:

- ``"503"`` (any HTTP status): answer with that status and an HTML page, changing nothing;
- ``"reset"``: close the connection without an answer, changing nothing;
- ``"timeout"``: do the request, then hold the answer for ``hold`` seconds (longer than the
  client's timeout) before sending it;
- ``"apply-then-503"`` / ``"apply-then-reset"``: do the request, then lose the answer.

Every request is recorded (method, path, query parameters and body, without the API key)
in :attr:`BugzillaEmulator.requests`.
"""

from __future__ import annotations

import contextlib
import copy
import json
import re
import socket
import struct
import threading
import urllib.parse
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, cast

import pytest

VERSION = "5.0.6"
DOCUMENTATION = "https://bugzilla.readthedocs.org/en/5.0/api/index.html"
# 40 characters, like Bugzilla's; a fake key for the emulator only.
DEFAULT_API_KEY = "fortnight-test-api-key-not-a-real-secret"
DEFAULT_LOGIN = "fortnight@example.com"
OPEN_STATUSES = ("NEW", "ASSIGNED", "POST", "MODIFIED", "ON_QA", "VERIFIED", "RELEASE_PENDING")
CLOSED_STATUSES = ("CLOSED",)
RESOLUTIONS = (
    "CURRENTRELEASE",
    "ERRATA",
    "NEXTRELEASE",
    "RAWHIDE",
    "UPSTREAM",
    "NOTABUG",
    "WONTFIX",
    "CANTFIX",
    "DEFERRED",
    "INSUFFICIENT_DATA",
    "WORKSFORME",
    "EOL",
    "DUPLICATE",
)
KEY_PARAMS = ("Bugzilla_api_key", "api_key")
#: Bugzilla::WebService::Constants::LOGIN_EXEMPT: answered whatever the API key.
LOGIN_EXEMPT: dict[str, Any] = {
    "/version": {"version": VERSION},
    "/timezone": {"timezone": "+0000"},
}
LOST_ANSWER_FAULTS = ("timeout", "reset", "apply-then-503", "apply-then-reset")

#: Bugzilla::WebService::Constants::REST_STATUS_CODE_MAP (5.0); anything else is 400.
REST_STATUS = {
    51: 404,
    101: 404,
    102: 401,
    106: 401,
    109: 401,
    110: 401,
    113: 401,
    115: 401,
    120: 401,
    300: 401,
    301: 401,
    302: 401,
    303: 401,
    304: 401,
    410: 401,
    504: 401,
    505: 401,
    32614: 404,
}

#: Search parameter or chart field name -> key of the bug's JSON.
SEARCH_FIELDS = {
    "id": "id",
    "bug_id": "id",
    "alias": "alias",
    "product": "product",
    "component": "component",
    "version": "version",
    "status": "status",
    "bug_status": "status",
    "resolution": "resolution",
    "summary": "summary",
    "short_desc": "summary",
    "whiteboard": "whiteboard",
    "status_whiteboard": "whiteboard",
    "keywords": "keywords",
    "priority": "priority",
    "severity": "severity",
    "bug_severity": "severity",
    "op_sys": "op_sys",
    "platform": "platform",
    "rep_platform": "platform",
    "creator": "creator",
    "reporter": "creator",
    "assigned_to": "assigned_to",
}
#: Simple search parameters matched as substrings rather than exactly.
SUBSTRING_PARAMS = {"summary", "short_desc", "whiteboard", "status_whiteboard"}
SEARCH_CONTROL = {"query_format", "include_fields", "exclude_fields", "limit", "offset", "order"}
CREATE_FIELDS = {
    "product",
    "component",
    "version",
    "summary",
    "description",
    "whiteboard",
    "keywords",
    "op_sys",
    "platform",
    "priority",
    "severity",
    "status",
    "resolution",
    "alias",
    "assigned_to",
    "cc",
    "comment_is_private",
    "groups",
    "qa_contact",
    "target_milestone",
    "url",
}
UPDATE_FIELDS = {
    "ids",
    "status",
    "resolution",
    "comment",
    "whiteboard",
    "keywords",
    "summary",
    "priority",
    "severity",
}


Route = Callable[[re.Match[str], dict[str, list[str]], dict[str, Any], str | None], tuple[int, Any]]


class BugzillaFault(Exception):
    """An error Bugzilla answers with: a code and a message."""

    def __init__(self, code: int, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message

    @property
    def status(self) -> int:
        return REST_STATUS.get(self.code, 400)


@dataclass(frozen=True)
class Product:
    """A product's components (name -> default assignee) and versions."""

    components: dict[str, str]
    versions: tuple[str, ...]


@dataclass(frozen=True)
class Request:
    """One request as the emulator received it, without the API key."""

    method: str
    path: str
    params: dict[str, list[str]]
    body: Any
    #: The login the API key belongs to; None for no key or a wrong one.
    user: str | None
    #: The fault applied to it, if any.
    fault: str | None


@dataclass
class _Fault:
    fault: str
    method: str | None
    path: str | None
    path_prefix: str
    times: int

    def matches(self, method: str, path: str) -> bool:
        if self.method is not None and self.method.upper() != method:
            return False
        if self.path is not None:
            return path == self.path
        return path.startswith(self.path_prefix)


def default_products() -> dict[str, Product]:
    return {
        "Fedora": Product(
            components={
                "fedora-atomic": "atomic-maint@fedoraproject.org",
                "kernel": "kernel-maint@fedoraproject.org",
            },
            versions=("27", "28", "rawhide"),
        ),
        "Fedora Atomic Host": Product(
            components={"images": "atomic-maint@fedoraproject.org"},
            versions=("unspecified",),
        ),
    }


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class _State:
    bugs: dict[int, dict[str, Any]] = field(default_factory=dict)
    comments: dict[int, list[dict[str, Any]]] = field(default_factory=dict)
    next_bug: int = 1
    next_comment: int = 1


class BugzillaEmulator:
    """An in-memory Bugzilla 5.0 served over HTTP on 127.0.0.1 (see the module doc)."""

    def __init__(
        self,
        *,
        api_keys: dict[str, str] | None = None,
        products: dict[str, Product] | None = None,
        keywords: set[str] | None = None,
        port: int = 0,
        hold: float = 3.0,
        clock: Callable[[], datetime] = _now,
    ) -> None:
        self.api_keys = dict(api_keys) if api_keys is not None else {DEFAULT_API_KEY: DEFAULT_LOGIN}
        self.products = products if products is not None else default_products()
        self.keywords = set(keywords) if keywords is not None else {"Triaged", "FutureFeature"}
        self.hold = hold
        self.clock = clock
        self.requests: list[Request] = []
        self._faults: list[_Fault] = []
        self._state = _State()
        self._lock = threading.RLock()
        self._stopping = threading.Event()
        self._server = _Server(("127.0.0.1", port), _Handler)
        self._server.emulator = self
        self._thread: threading.Thread | None = None

    # --- lifecycle -----------------------------------------------------------------------

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    @property
    def url(self) -> str:
        """The base URL (python-bugzilla's REST API is under ``<url>/rest/``)."""
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> BugzillaEmulator:
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.close_connections()
        self._server.server_close()

    def __enter__(self) -> BugzillaEmulator:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # --- test helpers --------------------------------------------------------------------

    def inject(
        self,
        fault: str,
        *,
        method: str | None = None,
        path: str | None = None,
        path_prefix: str = "/rest/",
        times: int = 1,
    ) -> None:
        """Apply ``fault`` to the next ``times`` requests matching the method and path.

        ``path`` matches exactly; otherwise ``path_prefix`` matches the start of the path
        (the query string is not part of it).
        """
        if not (fault.isdigit() and len(fault) == 3) and fault not in LOST_ANSWER_FAULTS:
            raise ValueError(f"unknown fault {fault!r}")
        with self._lock:
            self._faults.append(_Fault(fault, method, path, path_prefix, times))

    def pending_faults(self) -> int:
        with self._lock:
            return sum(f.times for f in self._faults)

    def calls(self, method: str | None = None, path: str | None = None) -> list[Request]:
        """Recorded requests, optionally only those with this method and exact path."""
        with self._lock:
            return [
                r
                for r in self.requests
                if (method is None or r.method == method) and (path is None or r.path == path)
            ]

    def add_bug(
        self,
        summary: str = "a bug",
        *,
        product: str = "Fedora",
        component: str = "fedora-atomic",
        version: str = "28",
        status: str = "NEW",
        resolution: str = "",
        whiteboard: str = "",
        keywords: tuple[str, ...] = (),
        description: str = "",
        comments: tuple[str, ...] = (),
        creator: str = "someone@example.com",
    ) -> int:
        """File a bug directly (no request, no validation); returns its id."""
        with self._lock:
            bug_id = self._new_bug(
                {
                    "product": product,
                    "component": component,
                    "version": version,
                    "summary": summary,
                    "status": status,
                    "resolution": resolution,
                    "whiteboard": whiteboard,
                    "keywords": sorted(keywords),
                },
                creator,
            )
            for text in (description, *comments):
                self._add_comment(bug_id, text, creator)
            return bug_id

    def bug(self, bug_id: int) -> dict[str, Any]:
        """A bug's JSON, with ``comments`` (texts) added."""
        with self._lock:
            bug = self._render(self._state.bugs[bug_id])
            bug["comments"] = [c["text"] for c in self._state.comments[bug_id]]
            return bug

    def bug_ids(self) -> list[int]:
        with self._lock:
            return sorted(self._state.bugs)

    def reset(self) -> None:
        """Forget every bug, request and fault."""
        with self._lock:
            self._state = _State()
            self.requests.clear()
            self._faults.clear()

    # --- request handling ----------------------------------------------------------------

    def take_fault(self, method: str, path: str) -> str | None:
        with self._lock:
            for f in self._faults:
                if f.matches(method, path):
                    f.times -= 1
                    if f.times <= 0:
                        self._faults.remove(f)
                    return f.fault
            return None

    def record(self, request: Request) -> None:
        with self._lock:
            self.requests.append(request)

    def hold_answer(self) -> None:
        self._stopping.wait(self.hold)

    def user_for(self, key: str | None) -> str | None:
        return self.api_keys.get(key) if key is not None else None

    def dispatch(
        self, method: str, path: str, params: dict[str, list[str]], body: Any, key: str | None
    ) -> tuple[int, Any]:
        """Answer one request: (HTTP status, JSON)."""
        try:
            with self._lock:
                return self._route(method, path, params, body, key)
        except BugzillaFault as fault:
            return fault.status, {
                "error": True,
                "code": fault.code,
                "message": fault.message,
                "documentation": DOCUMENTATION,
            }

    def _route(
        self, method: str, path: str, params: dict[str, list[str]], body: Any, key: str | None
    ) -> tuple[int, Any]:
        resource = path.removeprefix("/rest")
        if method == "GET" and resource in LOGIN_EXEMPT and path.startswith("/rest/"):
            return 200, LOGIN_EXEMPT[resource]
        if path.startswith("/rest/"):
            user = self._login(key)
            args = _body(body) if method in ("POST", "PUT") else {}
            for verb, pattern, handler in self._routes():
                if verb == method and (m := re.fullmatch(pattern, resource)):
                    return handler(m, params, args, user)
        raise BugzillaFault(32614, f"A REST API resource was not found for '{method} {resource}'.")

    def _routes(self) -> list[tuple[str, str, Route]]:
        """Bugzilla::WebService::Server::REST::Resources, for the methods emulated."""
        return [
            ("GET", r"/extensions", lambda m, q, b, u: (200, {"extensions": {}})),
            ("GET", r"/valid_login", self._valid_login),
            ("GET", r"/bug", lambda m, q, b, u: (200, {"bugs": self._search(q)})),
            ("POST", r"/bug", lambda m, q, b, u: (201, {"id": self._create(b, self._need(u))})),
            ("GET", r"/bug/comment/(\d+)", lambda m, q, b, u: (200, self._by_id(int(m[1])))),
            ("GET", r"/bug/([^/]+)/comment", self._get_comments),
            ("POST", r"/bug/([^/]+)/comment", self._post_comment),
            ("GET", r"/bug/([^/]+)", self._get),
            (
                "PUT",
                r"/bug/([^/]+)",
                lambda m, q, b, u: (200, self._update(m[1], b, self._need(u))),
            ),
        ]

    def _valid_login(
        self, m: re.Match[str], params: dict[str, list[str]], body: dict[str, Any], user: str | None
    ) -> tuple[int, Any]:
        login, api_key = _one(params, "login"), _one(params, "api_key")
        return 200, {"result": login is not None and self.api_keys.get(api_key or "") == login}

    def _get(
        self, m: re.Match[str], params: dict[str, list[str]], body: dict[str, Any], user: str | None
    ) -> tuple[int, Any]:
        bug = self._state.bugs[self._bug_id(m[1])]
        return 200, {"bugs": [_fields(self._render(bug), params)], "faults": []}

    def _get_comments(
        self, m: re.Match[str], params: dict[str, list[str]], body: dict[str, Any], user: str | None
    ) -> tuple[int, Any]:
        bug_id = self._bug_id(m[1])
        listed = copy.deepcopy(self._state.comments[bug_id])
        return 200, {"bugs": {str(bug_id): {"comments": listed}}, "comments": {}}

    def _post_comment(
        self, m: re.Match[str], params: dict[str, list[str]], body: dict[str, Any], user: str | None
    ) -> tuple[int, Any]:
        bug_id = self._bug_id(m[1])
        login = self._need(user)
        text = body.get("comment")
        if not isinstance(text, str) or not text.strip():
            raise BugzillaFault(
                50,
                "The function Bug.add_comment requires a comment argument, "
                "and that argument was not set.",
            )
        return 201, {"id": self._add_comment(bug_id, text, login)}

    def _login(self, key: str | None) -> str | None:
        if key is None:
            return None
        user = self.api_keys.get(key)
        if user is None:
            raise BugzillaFault(
                306,
                "The API key you specified is invalid. Please check that you typed it correctly.",
            )
        return user

    @staticmethod
    def _need(user: str | None) -> str:
        if user is None:
            raise BugzillaFault(410, "You must log in before using this part of Bugzilla.")
        return user

    def _bug_id(self, id_or_alias: str) -> int:
        if id_or_alias.isdigit():
            if int(id_or_alias) not in self._state.bugs:
                raise BugzillaFault(101, f"Bug #{id_or_alias} does not exist.")
            return int(id_or_alias)
        for bug_id, bug in self._state.bugs.items():
            if id_or_alias in bug["alias"]:
                return bug_id
        raise BugzillaFault(
            100, f"'{id_or_alias}' is not a valid bug number nor an alias to a bug."
        )

    # --- bugs ----------------------------------------------------------------------------

    def _time(self) -> str:
        return self.clock().strftime("%Y-%m-%dT%H:%M:%SZ")

    def _new_bug(self, values: dict[str, Any], creator: str) -> int:
        bug_id = self._state.next_bug
        self._state.next_bug += 1
        now = self._time()
        product = self.products.get(values["product"])
        assignee = product.components.get(values["component"], "") if product else ""
        self._state.bugs[bug_id] = {
            "alias": [],
            "assigned_to": values.get("assigned_to") or assignee,
            "blocks": [],
            "cc": [],
            "classification": "Fedora",
            "component": values["component"],
            "creation_time": now,
            "creator": creator,
            "deadline": None,
            "depends_on": [],
            "dupe_of": None,
            "estimated_time": 0,
            "flags": [],
            "groups": [],
            "id": bug_id,
            "is_cc_accessible": True,
            "is_confirmed": True,
            "is_creator_accessible": True,
            "keywords": list(values.get("keywords") or []),
            "last_change_time": now,
            "op_sys": values.get("op_sys") or "Unspecified",
            "platform": values.get("platform") or "Unspecified",
            "priority": values.get("priority") or "unspecified",
            "product": values["product"],
            "qa_contact": "",
            "remaining_time": 0,
            "resolution": values.get("resolution") or "",
            "see_also": [],
            "severity": values.get("severity") or "unspecified",
            "status": values.get("status") or "NEW",
            "summary": values["summary"],
            "target_milestone": "---",
            "url": values.get("url") or "",
            "version": values["version"],
            "whiteboard": values.get("whiteboard") or "",
        }
        self._state.comments[bug_id] = []
        return bug_id

    def _render(self, bug: dict[str, Any]) -> dict[str, Any]:
        out = copy.deepcopy(bug)
        out["is_open"] = bug["status"] not in CLOSED_STATUSES
        for role in ("assigned_to", "creator"):
            if out[role]:
                out[f"{role}_detail"] = _user(out[role])
        return out

    def _create(self, args: dict[str, Any], user: str) -> int:
        unknown = sorted(set(args) - CREATE_FIELDS - {"ids"})
        if unknown:
            raise BugzillaFault(108, f"Can't use {unknown[0]} as a field name.")
        name = args.get("product")
        product = self.products.get(name) if isinstance(name, str) else None
        if product is None:
            raise BugzillaFault(
                106,
                f"Sorry, either the product '{name or ''}' does not exist or you aren't "
                "authorized to enter a bug into it.",
            )
        component = args.get("component")
        if not component:
            raise BugzillaFault(105, "You must select/enter a component.")
        if component not in product.components:
            raise BugzillaFault(
                51, f"There is no component named '{component}' in the '{name}' product."
            )
        summary = args.get("summary")
        if not isinstance(summary, str) or not summary.strip():
            raise BugzillaFault(107, "You must enter a summary for this bug.")
        version = args.get("version")
        if not version:
            raise BugzillaFault(50, "You must select/enter a version.")
        if version not in product.versions:
            raise BugzillaFault(
                51, f"There is no version named '{version}' in the '{name}' product."
            )
        keywords = _strings(args.get("keywords"))
        for keyword in keywords:
            if keyword not in self.keywords:
                raise BugzillaFault(51, f"There is no keyword named '{keyword}'.")
        status = args.get("status") or "NEW"
        if status not in OPEN_STATUSES:
            raise BugzillaFault(
                123, f"You are not allowed to file new bugs with the {status} status."
            )
        whiteboard = args.get("whiteboard") or ""
        if not isinstance(whiteboard, str):
            raise BugzillaFault(53, "Invalid parameter passed to Bug.create: whiteboard.")
        values = dict(args, keywords=sorted(set(keywords)), status=status, whiteboard=whiteboard)
        bug_id = self._new_bug(values, user)
        description = args.get("description") or ""
        self._add_comment(bug_id, str(description), user)
        return bug_id

    def _update(self, id_or_alias: str, args: dict[str, Any], user: str) -> dict[str, Any]:
        unknown = sorted(set(args) - UPDATE_FIELDS)
        if unknown:
            raise BugzillaFault(
                32000, f"emulator: updating {unknown[0]!r} is not supported by this emulator"
            )
        ids = [self._bug_id(id_or_alias)]
        for extra in _strings(args.get("ids")):
            bug_id = self._bug_id(str(extra))
            if bug_id not in ids:
                ids.append(bug_id)
        return {"bugs": [self._update_one(bug_id, args, user) for bug_id in ids]}

    def _update_one(self, bug_id: int, args: dict[str, Any], user: str) -> dict[str, Any]:
        bug = self._state.bugs[bug_id]
        new = dict(bug)
        for name in ("summary", "whiteboard", "priority", "severity"):
            if name in args:
                new[name] = str(args[name])
        if "keywords" in args:
            new["keywords"] = self._keywords(bug["keywords"], args["keywords"])
        new["status"], new["resolution"] = _status_change(bug, args)
        comment = args.get("comment")
        text = ""
        if isinstance(comment, dict):
            text = str(comment.get("body") or comment.get("comment") or "")
        elif comment is not None:
            raise BugzillaFault(53, "Invalid parameter passed to Bug.update: comment.")
        changes = {
            name: {"added": _show(new[name]), "removed": _show(bug[name])}
            for name in (
                "summary",
                "whiteboard",
                "priority",
                "severity",
                "keywords",
                "status",
                "resolution",
            )
            if new[name] != bug[name]
        }
        if changes or text.strip():
            new["last_change_time"] = self._time()
        bug.update(new)
        if text.strip():
            self._add_comment(bug_id, text, user)
        return {
            "id": bug_id,
            "alias": list(bug["alias"]),
            "last_change_time": bug["last_change_time"],
            "changes": changes,
        }

    def _keywords(self, current: list[str], change: Any) -> list[str]:
        if not isinstance(change, dict):
            change = {"set": change}
        words = set(current)
        if "set" in change:
            words = set(_strings(change["set"]))
        else:
            words |= set(_strings(change.get("add")))
            words -= set(_strings(change.get("remove")))
        for keyword in words - set(current):
            if keyword not in self.keywords:
                raise BugzillaFault(51, f"There is no keyword named '{keyword}'.")
        return sorted(words)

    # --- comments ------------------------------------------------------------------------

    def _add_comment(self, bug_id: int, text: str, creator: str) -> int:
        comment_id = self._state.next_comment
        self._state.next_comment += 1
        now = self._time()
        listed = self._state.comments[bug_id]
        listed.append(
            {
                "id": comment_id,
                "bug_id": bug_id,
                "attachment_id": None,
                "count": len(listed),
                "text": text,
                "creator": creator,
                "author": creator,
                "time": now,
                "creation_time": now,
                "is_private": False,
                "tags": [],
            }
        )
        return comment_id

    def _by_id(self, comment_id: int) -> dict[str, Any]:
        for listed in self._state.comments.values():
            for comment in listed:
                if comment["id"] == comment_id:
                    return {"bugs": {}, "comments": {str(comment_id): copy.deepcopy(comment)}}
        raise BugzillaFault(111, f"There is no comment with the id '{comment_id}'.")

    # --- search --------------------------------------------------------------------------

    def _search(self, params: dict[str, list[str]]) -> list[dict[str, Any]]:
        tests: list[Callable[[dict[str, Any]], bool]] = []
        charts: dict[str, dict[str, str]] = {}
        for name, values in params.items():
            if name in SEARCH_CONTROL or name in ("keywords_type",):
                continue
            if m := re.fullmatch(r"([fov])(\d+)", name):
                charts.setdefault(m.group(2), {})[m.group(1)] = values[-1]
            elif m := re.fullmatch(r"(field|type|value)(\d+-\d+-\d+)", name):
                charts.setdefault(m.group(2), {})[m.group(1)[0]] = values[-1]
            elif name in SEARCH_FIELDS:
                tests.append(self._simple_test(name, values, params))
            else:
                raise BugzillaFault(
                    32000, f"emulator: the search parameter {name!r} is not supported"
                )
        for chart in charts.values():
            tests.append(_chart_test(chart))
        found = [bug for _, bug in sorted(self._state.bugs.items()) if all(t(bug) for t in tests)]
        offset = int(_one(params, "offset") or 0)
        limit = int(_one(params, "limit") or 0)
        found = found[offset : offset + limit] if limit else found[offset:]
        return [_fields(self._render(bug), params) for bug in found]

    @staticmethod
    def _simple_test(
        name: str, values: list[str], params: dict[str, list[str]]
    ) -> Callable[[dict[str, Any]], bool]:
        key = SEARCH_FIELDS[name]
        if name == "keywords":
            operator = _one(params, "keywords_type") or "anywords"
            return lambda bug: _matches(bug, key, operator, " ".join(values))
        operator = "substring" if name in SUBSTRING_PARAMS else "equals"
        return lambda bug: any(_matches(bug, key, operator, v) for v in values)


def _status_change(bug: dict[str, Any], args: dict[str, Any]) -> tuple[str, str]:
    """The status and resolution an update leaves ``bug`` with, as Bugzilla checks them."""
    status = args.get("status", bug["status"])
    if status not in OPEN_STATUSES + CLOSED_STATUSES:
        raise BugzillaFault(51, f"There is no status named '{status}'.")
    if status in CLOSED_STATUSES:
        resolution = args.get("resolution", bug["resolution"])
        if not resolution:
            raise BugzillaFault(
                121,
                f"You must specify a resolution when changing the status of bug {bug['id']} "
                f"to {status}.",
            )
        if resolution not in RESOLUTIONS:
            raise BugzillaFault(51, f"There is no resolution named '{resolution}'.")
        return status, str(resolution)
    if "resolution" in args and (args["resolution"] or bug["status"] not in CLOSED_STATUSES):
        raise BugzillaFault(122, f"You cannot set a resolution for open bugs (bug {bug['id']}).")
    return status, ""


def _chart_test(chart: dict[str, str]) -> Callable[[dict[str, Any]], bool]:
    name, operator, value = chart.get("f", ""), chart.get("o", ""), chart.get("v", "")
    if name not in SEARCH_FIELDS:
        raise BugzillaFault(108, f"Can't use {name} as a field name.")
    if operator not in OPERATORS:
        raise BugzillaFault(32000, f"emulator: the search operator {operator!r} is not supported")
    key = SEARCH_FIELDS[name]
    return lambda bug: _matches(bug, key, operator, value)


def _words(text: str) -> list[str]:
    return [w for w in re.split(r"[\s,]+", text) if w]


def _has_word(text: str, word: str) -> bool:
    # Bugzilla's word match on MySQL: the word between non-alphanumeric characters.
    pattern = rf"(^|[^a-z0-9]){re.escape(word.lower())}($|[^a-z0-9])"
    return re.search(pattern, text.lower()) is not None


def _matches(bug: dict[str, Any], key: str, operator: str, value: str) -> bool:
    raw = bug[key]
    if key == "keywords":  # a multi-valued field: word operators match whole keywords
        have = {k.lower() for k in raw}
        text = ", ".join(raw)
        wanted = {w.lower() for w in _words(value)}
        if operator in ("equals", "anyexact", "anywords"):
            return bool(have & wanted)
        if operator == "allwords":
            return wanted <= have
        if operator in ("notequals", "nowords"):
            return not have & wanted
        return OPERATORS[operator](text, value)
    text = ",".join(str(v) for v in raw) if isinstance(raw, list) else str(raw)
    return OPERATORS[operator](text, value)


OPERATORS: dict[str, Callable[[str, str], bool]] = {
    "equals": lambda t, v: t.lower() == v.lower(),
    "notequals": lambda t, v: t.lower() != v.lower(),
    "anyexact": lambda t, v: t.lower() in {w.lower() for w in _words(v)},
    "substring": lambda t, v: v.lower() in t.lower(),
    "casesubstring": lambda t, v: v in t,
    "notsubstring": lambda t, v: v.lower() not in t.lower(),
    "anywordssubstr": lambda t, v: any(w.lower() in t.lower() for w in _words(v)),
    "allwordssubstr": lambda t, v: all(w.lower() in t.lower() for w in _words(v)),
    "anywords": lambda t, v: any(_has_word(t, w) for w in _words(v)),
    "allwords": lambda t, v: all(_has_word(t, w) for w in _words(v)),
    "nowords": lambda t, v: not any(_has_word(t, w) for w in _words(v)),
    "isempty": lambda t, v: t == "",
    "isnotempty": lambda t, v: t != "",
}


def _fields(bug: dict[str, Any], params: dict[str, list[str]]) -> dict[str, Any]:
    """Apply ``include_fields`` and ``exclude_fields`` (comma-separated or repeated)."""
    include = {f for v in params.get("include_fields", []) for f in v.split(",") if f}
    exclude = {f for v in params.get("exclude_fields", []) for f in v.split(",") if f}
    if include and not include & {"_default", "_all"}:
        bug = {k: v for k, v in bug.items() if k in include}
    return {k: v for k, v in bug.items() if k not in exclude}


def _user(login: str) -> dict[str, Any]:
    user_id = zlib.crc32(login.encode()) % 100000
    return {"email": login, "id": user_id, "name": login, "real_name": ""}


def _show(value: Any) -> str:
    return ", ".join(value) if isinstance(value, list) else str(value)


def _strings(value: Any) -> list[str]:
    if value is None:
        return []
    if isinstance(value, list):
        return [str(v) for v in value]
    return [str(value)]


def _one(args: dict[str, Any], name: str) -> str | None:
    value = args.get(name)
    if isinstance(value, list):
        return str(value[-1]) if value else None
    return None if value is None else str(value)


def _body(body: Any) -> dict[str, Any]:
    if body is None:
        return {}
    if not isinstance(body, dict):
        raise BugzillaFault(32000, "The request body must be a JSON object.")
    return body


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    emulator: BugzillaEmulator

    def __init__(self, address: tuple[str, int], handler: type[BaseHTTPRequestHandler]) -> None:
        super().__init__(address, handler)
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def process_request(self, request: Any, client_address: Any) -> None:
        with self._open_lock:
            self._open.add(request)
        super().process_request(request, client_address)

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def close_connections(self) -> None:
        """Wake every handler blocked on a kept-alive connection, so its thread ends."""
        with self._open_lock:
            for sock in list(self._open):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as Apache in front of Bugzilla
    disable_nagle_algorithm = True  # headers and body go out in two writes
    server_version = "Apache"
    sys_version = ""
    timeout = 10

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the requests are recorded; keep the test output quiet

    def do_GET(self) -> None:
        self._handle()

    def do_POST(self) -> None:
        self._handle()

    def do_PUT(self) -> None:
        self._handle()

    def do_DELETE(self) -> None:
        self._handle()

    def _handle(self) -> None:
        emulator = cast(_Server, self.server).emulator
        split = urllib.parse.urlsplit(self.path)
        path = urllib.parse.unquote(split.path)
        params = urllib.parse.parse_qs(split.query, keep_blank_values=True)
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        key = self.headers.get("X-BUGZILLA-API-KEY")
        for name in KEY_PARAMS:
            if name in params:
                key = params.pop(name)[-1]
        body: Any = None
        bad_json = False
        if raw.strip():
            try:
                body = json.loads(raw)
            except ValueError:
                bad_json = True
        fault = emulator.take_fault(self.command, path)
        emulator.record(Request(self.command, path, params, body, emulator.user_for(key), fault))
        if fault is not None and fault.isdigit():
            self._send_page(int(fault))
            return
        if fault == "reset":
            self._reset()
            return
        if bad_json:
            status, answer = (
                400,
                {
                    "error": True,
                    "code": -32700,
                    "message": "The JSON sent is not valid.",
                    "documentation": DOCUMENTATION,
                },
            )
        else:
            status, answer = emulator.dispatch(self.command, path, params, body, key)
        if fault == "apply-then-503":
            self._send_page(503)
        elif fault == "apply-then-reset":
            self._reset()
        else:
            if fault == "timeout":
                emulator.hold_answer()
            self._send_json(status, answer)

    def _send_json(self, status: int, answer: Any) -> None:
        data = json.dumps(answer).encode()
        self._send(status, "application/json; charset=UTF-8", data)

    def _send_page(self, status: int) -> None:
        reason = self.responses.get(status, ("Error",))[0]
        page = f"<html><head><title>{status} {reason}</title></head><body>{reason}</body></html>"
        self._send(status, "text/html; charset=iso-8859-1", page.encode())

    def _send(self, status: int, content_type: str, data: bytes) -> None:
        try:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)
        except OSError:  # the client gave up (a held answer after its timeout)
            self.close_connection = True

    def _reset(self) -> None:
        """Drop the connection with no answer (an RST rather than a FIN)."""
        self.close_connection = True
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))


@pytest.fixture
def bugzilla_server() -> Iterator[BugzillaEmulator]:
    """A running Bugzilla emulator; ``.url`` is its base URL."""
    with BugzillaEmulator() as emulator:
        yield emulator
