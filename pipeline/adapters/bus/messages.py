"""Fortnight's announcements: fedora-messaging ``Message`` classes and their bodies.

Each body is a pydantic model, and the class's ``body_schema`` (which fedora-messaging
checks when publishing and consuming) is that model's JSON Schema, generated the way the
manifests' schemas are. The classes are registered as the ``fedora.messages`` entry points
of the package (see ``pyproject.toml`` and ``docs/bus.md``), under the names of
:data:`MESSAGE_CLASSES`.
"""

from __future__ import annotations

from typing import Any, ClassVar, Literal, Self

from fedora_messaging import message as fm_message
from fedora_messaging.message import Message
from pydantic import BaseModel, ConfigDict, Field

# --- bodies --------------------------------------------------------------------------------


class AnnouncementBody(BaseModel):
    """What every announcement carries. Unknown fields are allowed (newer publishers)."""

    model_config = ConfigDict(frozen=True)

    product: str
    manifest: str = Field(description="path of the signed manifest in the log")
    commit: str = Field(description="the git commit that added it")
    created: str = Field(description="when the manifest was made (UTC)")


class RecordedImage(BaseModel):
    """An image of a recorded compose."""

    model_config = ConfigDict(frozen=True)

    arch: str
    type: str
    format: str
    subvariant: str
    url: str
    size: int
    sha256: str


class ComposeRecordedBody(AnnouncementBody):
    """A compose was recorded in the log."""

    compose_id: str
    outcome: Literal["images", "no-image"]
    reason: str | None
    source: str
    images: list[RecordedImage]


class FailedTest(BaseModel):
    """A test that failed in a suite's run."""

    model_config = ConfigDict(frozen=True)

    name: str
    blocking: bool
    image: str | None
    reason: str | None


class TestsCompleteBody(AnnouncementBody):
    """A test suite's run on a compose was recorded."""

    __test__: ClassVar[bool] = False  # not a pytest class

    compose_id: str
    suite: str
    run: str
    result: Literal["PASSED", "WARNED", "FAILED"]
    passed: int
    failed: int
    skipped: int
    failures: list[FailedTest]


class TrackerEventBody(AnnouncementBody):
    """The failure tracker changed."""

    action: Literal["opened", "commented", "closed"]
    bug: str
    url: str
    compose_id: str
    compose_status: str


class ReleasePublishedBody(AnnouncementBody):
    """A release was published."""

    release_id: str
    cycle: str
    compose_id: str
    base: str
    explanation: str
    stream: dict[str, Any] = Field(
        json_schema_extra={"required": ["stream", "release", "architectures"]}
    )


class OpenBug(BaseModel):
    """The bug that stays open while cycles go stale."""

    model_config = ConfigDict(frozen=True)

    bug: str
    url: str


class CycleStaleBody(AnnouncementBody):
    """A release cycle was decided stale."""

    release_id: str
    cycle: str
    previous: str | None
    open_bug: OpenBug | None
    explanation: str


class ReleaseWithdrawnBody(AnnouncementBody):
    """A release was withdrawn."""

    release_id: str
    compose_id: str
    reason: str
    reason_url: str | None
    operator: str


def json_schema(model: type[BaseModel], name: str) -> dict[str, Any]:
    """The JSON Schema of a body model, named by its ``fedora.messages`` schema name."""
    schema = model.model_json_schema(by_alias=True)
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["$id"] = f"https://fortnight.invalid/schema/{name}.schema.json"
    return schema


# --- message classes -------------------------------------------------------------------------


class FortnightMessage(Message):
    """Base of Fortnight's announcements: topic ``<prefix>.<product>.<TOPIC>``."""

    #: The topic's suffix after ``<prefix>.<product>.``.
    TOPIC: ClassVar[str]
    #: The name of the ``fedora.messages`` entry point.
    SCHEMA_NAME: ClassVar[str]
    #: The body's model (``body_schema`` is its JSON Schema).
    BODY: ClassVar[type[AnnouncementBody]]

    @classmethod
    def of(cls, topic: str, body: AnnouncementBody) -> Self:
        """A message of this class on ``topic`` with ``body``."""
        if not isinstance(body, cls.BODY):
            raise TypeError(f"{cls.__name__} needs a {cls.BODY.__name__}, not {body!r}")
        return cls(topic=topic, body=body.model_dump(mode="json"))

    @property
    def app_name(self) -> str:
        return "fortnight"

    @property
    def product(self) -> str:
        return str(self.body["product"])

    def __str__(self) -> str:
        return f"{self.summary}\nmanifest: {self.body['manifest']} (commit {self.body['commit']})"


class ComposeRecorded(FortnightMessage):
    """A compose was recorded: with its product's images, or as one that produced none."""

    TOPIC = "compose.recorded"
    SCHEMA_NAME = "fortnight.compose.recorded.v1"
    BODY = ComposeRecordedBody
    body_schema: ClassVar[dict[str, Any]] = json_schema(BODY, SCHEMA_NAME)

    @property
    def summary(self) -> str:
        b = self.body
        what = f"{len(b['images'])} image(s)" if b["outcome"] == "images" else "no image"
        return f"{b['product']}: compose {b['compose_id']} recorded ({what})"


class TestsComplete(FortnightMessage):
    """A test suite ran on a compose; ``result`` is in-toto's PASSED, WARNED or FAILED."""

    __test__ = False  # not a pytest class
    TOPIC = "tests.complete"
    SCHEMA_NAME = "fortnight.tests.complete.v1"
    BODY = TestsCompleteBody
    body_schema: ClassVar[dict[str, Any]] = json_schema(BODY, SCHEMA_NAME)

    @property
    def summary(self) -> str:
        b = self.body
        return f"{b['product']}: {b['suite']} on {b['compose_id']}: {b['result']}"


class TrackerEvent(FortnightMessage):
    """Fortnight opened, commented on or closed the product's failure bug."""

    TOPIC = "tracker"  # + ".opened", ".commented" or ".closed"
    SCHEMA_NAME = "fortnight.tracker.event.v1"
    BODY = TrackerEventBody
    body_schema: ClassVar[dict[str, Any]] = json_schema(BODY, SCHEMA_NAME)

    @property
    def summary(self) -> str:
        b = self.body
        return f"{b['product']}: bug {b['bug']} {b['action']} for {b['compose_id']} ({b['url']})"

    @property
    def url(self) -> str | None:
        return str(self.body["url"])


class ReleasePublished(FortnightMessage):
    """A release cycle released an image; ``stream`` is the product's stream document."""

    TOPIC = "release.published"
    SCHEMA_NAME = "fortnight.release.published.v1"
    BODY = ReleasePublishedBody
    body_schema: ClassVar[dict[str, Any]] = json_schema(BODY, SCHEMA_NAME)

    @property
    def summary(self) -> str:
        b = self.body
        return f"{b['product']}: release {b['release_id']} is {b['compose_id']} ({b['base']})"


class CycleStale(FortnightMessage):
    """A release cycle had no image to release; the previous release stays current."""

    TOPIC = "cycle.stale"
    SCHEMA_NAME = "fortnight.cycle.stale.v1"
    BODY = CycleStaleBody
    body_schema: ClassVar[dict[str, Any]] = json_schema(BODY, SCHEMA_NAME)

    @property
    def summary(self) -> str:
        b = self.body
        return f"{b['product']}: cycle {b['cycle']} is stale: {b['explanation']}"


class ReleaseWithdrawn(FortnightMessage):
    """A release was withdrawn; the download page falls back to the previous good one."""

    TOPIC = "release.withdrawn"
    SCHEMA_NAME = "fortnight.release.withdrawn.v1"
    BODY = ReleaseWithdrawnBody
    body_schema: ClassVar[dict[str, Any]] = json_schema(BODY, SCHEMA_NAME)

    @property
    def summary(self) -> str:
        b = self.body
        return f"{b['product']}: release {b['release_id']} withdrawn: {b['reason']}"


#: The schema names the ``fedora.messages`` entry points register (see docs/bus.md).
MESSAGE_CLASSES: dict[str, type[FortnightMessage]] = {
    cls.SCHEMA_NAME: cls
    for cls in (
        ComposeRecorded,
        TestsComplete,
        TrackerEvent,
        ReleasePublished,
        CycleStale,
        ReleaseWithdrawn,
    )
}


def register_message_classes() -> None:
    """Make sure fedora-messaging knows our classes, installed with entry points or not.

    fedora-messaging finds message classes through the ``fedora.messages`` entry points
    of installed packages; a checkout that was not ``pip install``-ed has none, so the
    classes are added to its registry directly (its private dicts: it has no public
    registration call).
    """
    for name, cls in MESSAGE_CLASSES.items():
        try:
            fm_message.get_name(cls)
        except TypeError:
            fm_message._schema_name_to_class[name] = cls
            fm_message._class_to_schema_name[cls] = name
