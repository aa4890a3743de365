"""The failure-tracker interface that every backend implements.

A backend talks to one tracker (Bugzilla, or the log itself for the local
backend). The tracker stage (``pipeline.core.tracker``) decides what to do; a backend
only does it. Every method may raise :class:`pipeline.errors.TrackerError`;
backends retry transient faults (timeouts, refused connections, 5xx) with
backoff themselves before raising.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from pipeline.core.models.manifests import TrackerBackendName


@dataclass(frozen=True)
class Bug:
    """A tracker bug as the tracker reports it.

    ``comments`` holds the text of every comment, the description first.
    """

    id: str
    url: str
    is_open: bool
    summary: str = ""
    comments: tuple[str, ...] = field(default_factory=tuple)


class TrackerBackend(Protocol):
    """What the tracker stage needs from a tracker."""

    #: "bugzilla" or "local"; recorded in tracker-event manifests.
    name: TrackerBackendName

    def find_open(self, tag: str) -> list[Bug]:
        """Open bugs carrying ``tag`` (whiteboard word or keyword), oldest first, with comments."""
        ...

    def get(self, bug_id: str) -> Bug:
        """One bug, with its comments."""
        ...

    def create(self, tag: str, summary: str, description: str) -> Bug:
        """File a new bug carrying ``tag``; ``description`` is its first comment."""
        ...

    def comment(self, bug_id: str, text: str) -> None:
        """Add a comment to an open bug."""
        ...

    def close(self, bug_id: str, comment: str) -> None:
        """Close a bug (resolution fixed) with a comment."""
        ...
