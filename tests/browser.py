"""Browser-test kit: sites built once per module, served on loopback, and a watch on every page.

:class:`Sites` builds each scenario's site on first use (a real signed log recorded through
:class:`tests.sitekit.History`, built by Pelican) into one folder that a real HTTP server on
127.0.0.1 serves, together with the compose trees, so the download links point at real files
on the same server. The conftest fixtures are function-scoped, so the sites call the
functions behind them (:func:`tests.conftest.new_log`, :func:`tests.conftest.compose_tree`)
with a module-scoped folder.

:class:`Watch` listens to a browser context: console errors, uncaught exceptions, Content
Security Policy violations, failed or non-2xx requests to the loopback server, and any
request that leaves it (there is no network: an external request is a bug of the page).
"""

from __future__ import annotations

import functools
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

from playwright.sync_api import (
    BrowserContext,
    ConsoleMessage,
    Download,
    Request,
    Response,
    Route,
    WebError,
)

from pipeline.core.models.common import RoleName
from pipeline.log.sslib import CryptoSigner
from tests.conftest import compose_tree, new_log
from tests.sitekit import History, product_toml

# --- a loopback server for a module ----------------------------------------------------------


@contextmanager
def serve(directory: Path) -> Iterator[str]:
    """Serve ``directory`` on 127.0.0.1 until the block ends; yields the base URL."""

    class Handler(SimpleHTTPRequestHandler):
        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(
        ("127.0.0.1", 0), functools.partial(Handler, directory=str(directory))
    )
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


# --- the sites ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Site:
    """One scenario's built site, served at ``url`` (its output folder)."""

    name: str
    history: History
    out: Path
    url: str

    def page(self, rel: str = "index.html") -> str:
        """The absolute URL of a file of the site."""
        return self.url + rel


@dataclass(frozen=True)
class Scenario:
    """How to record a site's log: the scenario, and the product's prerelease base."""

    record: Callable[[History], datetime]
    prerelease: str | None = None


@dataclass
class Sites:
    """Each scenario's site, built on first use under ``root`` (served at ``server``)."""

    root: Path
    server: str
    signers: dict[RoleName, CryptoSigner]
    scenarios: dict[str, Scenario]
    _built: dict[str, Site] = field(default_factory=dict)

    def __getitem__(self, name: str) -> Site:
        if name not in self._built:
            scenario = self.scenarios[name]
            folder = self.root / name
            folder.mkdir()
            download = f"{self.server}{name}/composes/{{compose_id}}/compose/"
            toml = product_toml(download, prerelease=scenario.prerelease)
            history = History(
                new_log(folder, self.signers, toml=toml), functools.partial(compose_tree, folder)
            )
            out = folder / "out"
            history.build(out, scenario.record(history))
            self._built[name] = Site(name, history, out, f"{self.server}{name}/out/")
        return self._built[name]


# --- watching what the browser reports --------------------------------------------------------

#: Runs in every page before its own scripts (init scripts are not subject to the page's
#: CSP): turns each CSP violation into a console error the watch records.
REPORT_CSP = """
document.addEventListener("securitypolicyviolation", (e) => {
  console.error(`CSP violation: ${e.effectiveDirective} blocked ${e.blockedURI || "inline"}`);
});
"""


@dataclass
class Watch:
    """Everything wrong the browser saw in one context, as readable lines."""

    origin: str
    problems: list[str] = field(default_factory=list)
    #: Navigations that became downloads: Chromium aborts those requests (net::ERR_ABORTED).
    downloads: set[str] = field(default_factory=set)
    aborted: list[tuple[str, str]] = field(default_factory=list)

    def attach(self, context: BrowserContext) -> None:
        context.add_init_script(REPORT_CSP)
        # Only requests leaving the server reach Python (the others are not intercepted).
        context.route(re.compile(rf"^(?!{re.escape(self.origin)}/)"), self._route)
        context.on("console", self._console)
        context.on("weberror", self._weberror)
        context.on("requestfailed", self._failed)
        context.on("response", self._response)
        context.on("page", lambda page: page.on("download", self._download))

    def _route(self, route: Route) -> None:
        # No network here, and the pages' CSP allows nothing but 'self'.
        self.problems.append(f"external request {route.request.method} {route.request.url}")
        route.abort()

    def _console(self, message: ConsoleMessage) -> None:
        if message.type in ("error", "assert"):
            where = message.page.url if message.page else "?"
            self.problems.append(f"console {message.type} on {where}: {message.text}")

    def _weberror(self, error: WebError) -> None:
        where = error.page.url if error.page else "?"
        self.problems.append(f"uncaught {error.error} on {where}")

    def _failed(self, request: Request) -> None:
        if not request.url.startswith(self.origin):
            return
        if request.failure == "net::ERR_ABORTED" and request.is_navigation_request():
            self.aborted.append((request.url, f"request failed: {request.url} (net::ERR_ABORTED)"))
        else:
            self.problems.append(f"request failed: {request.url} ({request.failure})")

    def _download(self, download: Download) -> None:
        self.downloads.add(download.url)

    def _response(self, response: Response) -> None:
        if response.url.startswith(self.origin) and response.status >= 400:
            self.problems.append(f"HTTP {response.status}: {response.url}")

    def take(self) -> list[str]:
        """The problems so far, forgetting them."""
        seen = self.problems + [p for url, p in self.aborted if url not in self.downloads]
        self.problems, self.aborted = [], []
        return seen


def slug(text: str) -> str:
    """A file-name-safe form of a test id."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")
