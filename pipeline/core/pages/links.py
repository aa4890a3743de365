"""Where each page and file of a product lives in the site, and links to bugs."""

from __future__ import annotations

from dataclasses import dataclass

from pipeline.core.models.common import Manifest
from pipeline.core.pages.formatting import http_url
from pipeline.core.state import BugView, State


class Urls:
    """Where each page and file of a product lives, relative to the site root."""

    def __init__(self, product: str) -> None:
        self.product = product

    def download(self) -> str:
        return f"{self.product}/index.html"

    def dashboard(self, chunk: int | None = None) -> str:
        """The dashboard's front page, or the archive page of ``chunk`` (1: the oldest)."""
        name = "index.html" if chunk is None else f"page-{chunk}.html"
        return f"{self.product}/dashboard/{name}"

    def compose(self, compose_id: str) -> str:
        return f"{self.product}/composes/{compose_id}.html"

    def bug(self, bug: str) -> str:
        return f"{self.product}/bugs/{bug}.html"

    def archive(self) -> str:
        return f"{self.product}/releases/index.html"

    def release_anchor(self, release_id: str) -> str:
        return f"{self.archive()}#release-{release_id}"

    def checksum(self, release_id: str) -> str:
        return f"{self.product}/releases/{release_id}/CHECKSUM"

    def sha256sums(self, release_id: str) -> str:
        return f"{self.product}/releases/{release_id}/SHA256SUMS"

    def notes(self, release_id: str) -> str:
        """A release's notes page: what changed since the previous release."""
        return f"{self.product}/releases/{release_id}/notes.html"

    def changes_json(self, release_id: str) -> str:
        """The JSON file of a release's changes (linked from the stream)."""
        return f"{self.product}/releases/{release_id}/changes.json"

    def stream(self) -> str:
        return f"streams/{self.product}.json"

    def feed(self) -> str:
        return f"feeds/{self.product}.atom"

    def latest(self, arch: str, image_type: str) -> str:
        return f"latest/{self.product}/{arch}/{image_type}/index.html"

    def latest_name(self, arch: str, image_type: str) -> str:
        return f"latest/{self.product}/{arch}/{image_type}/latest"

    def log(self, log_path: str) -> str:
        return f"logs/{log_path}"

    @staticmethod
    def manifest(manifest: Manifest) -> str:
        return f"manifests/{manifest.relname()}"


@dataclass(frozen=True)
class Link:
    """A labelled link; ``href`` is site-relative unless ``external``."""

    label: str
    href: str
    external: bool = False


def named_bug_link(state: State, bug: str, url: str, urls: Urls) -> Link:
    """The bug a release decision names: as :func:`bug_link` when the log knows it, else
    its recorded URL."""
    view = state.bugs.get(bug)
    if view is not None:
        return bug_link(view, urls)
    return Link(bug, http_url(url) or "", True)


def bug_link(bug: BugView, urls: Urls, label: str | None = None) -> Link:
    """A link to a bug (labelled with its name unless ``label``): see :func:`bug_href`."""
    return Link(label or bug.bug, bug_href(bug, urls), bug.backend != "local")


def bug_href(bug: BugView, urls: Urls) -> str:
    """A local bug's page in the site, or the external tracker's URL."""
    return urls.bug(bug.bug) if bug.backend == "local" else (http_url(bug.url) or "")
