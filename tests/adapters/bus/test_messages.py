"""The announcement classes: generated schemas that check bodies, registered entry points."""

from __future__ import annotations

from importlib.metadata import entry_points
from typing import Any

import jsonschema
import pytest
from fedora_messaging import message as fm_message

from pipeline.adapters.bus.messages import (
    MESSAGE_CLASSES,
    ComposeRecorded,
    ComposeRecordedBody,
    CycleStale,
    CycleStaleBody,
    RecordedImage,
    TrackerEventBody,
    json_schema,
    register_message_classes,
)
from tests.conftest import ROOT

COMMON = {
    "product": "atomic-host",
    "manifest": "manifests/atomic-host/composes/Fedora-Atomic-28-20180515.1.json",
    "commit": "0" * 40,
    "created": "2018-05-15T06:00:00Z",
}


def compose_body(**overrides: Any) -> dict[str, Any]:
    """A valid ``compose.recorded`` body, as the announcer builds it."""
    image = RecordedImage(
        arch="x86_64",
        type="qcow2",
        format="qcow2",
        subvariant="AtomicHost",
        url="https://example.org/a.qcow2",
        size=1024,
        sha256="a" * 64,
    )
    body = ComposeRecordedBody(
        **COMMON,
        compose_id="Fedora-Atomic-28-20180515.1",
        outcome="images",
        reason=None,
        source="https://example.org/compose",
        images=[image],
    )
    return body.model_dump(mode="json") | overrides


def test_message_bodies_and_docs_agree() -> None:
    doc = (ROOT / "docs" / "bus.md").read_text()
    for name, cls in MESSAGE_CLASSES.items():
        assert f'"{name}" = "pipeline.adapters.bus.messages:{cls.__name__}"' in doc
        assert cls.TOPIC in doc
        for prop in cls.body_schema["properties"]:
            assert f"`{prop}`" in doc, (name, prop)


def test_body_schemas_are_the_body_models_schemas() -> None:
    for name, cls in MESSAGE_CLASSES.items():
        assert name == cls.SCHEMA_NAME
        assert cls.body_schema == json_schema(cls.BODY, name)
        jsonschema.validators.validator_for(cls.body_schema).check_schema(cls.body_schema)
        assert sorted(cls.body_schema["required"]) == sorted(cls.BODY.model_fields)


def test_a_valid_body_passes() -> None:
    msg = ComposeRecorded(topic="fortnight.atomic-host.compose.recorded", body=compose_body())
    msg.validate()
    assert msg.summary == "atomic-host: compose Fedora-Atomic-28-20180515.1 recorded (1 image(s))"


@pytest.mark.parametrize(
    "bad",
    [
        {"outcome": "maybe"},  # not one of the enum
        {"reason": 3},  # string or null
        {"images": [{"arch": "x86_64"}]},  # an image lacks its fields
        {"images": [compose_body()["images"][0] | {"size": "big"}]},
        {"product": None},
    ],
)
def test_the_generated_schema_rejects_a_bad_body(bad: dict[str, Any]) -> None:
    msg = ComposeRecorded(topic="t", body=compose_body(**bad))
    with pytest.raises(jsonschema.ValidationError):
        msg.validate()


def test_the_generated_schema_requires_every_field() -> None:
    body = compose_body()
    del body["reason"]  # nullable, but required: a null says "no reason"
    with pytest.raises(jsonschema.ValidationError, match="'reason' is a required property"):
        ComposeRecorded(topic="t", body=body).validate()


def test_nested_optional_objects_are_checked() -> None:
    body = CycleStaleBody(
        **COMMON,
        release_id="2018-05-15",
        cycle="2018-05-15",
        previous=None,
        open_bug=None,
        explanation="no compose passed",
    ).model_dump(mode="json")
    CycleStale(topic="t", body=body).validate()
    with pytest.raises(jsonschema.ValidationError):
        CycleStale(topic="t", body=body | {"open_bug": {"bug": "bz1"}}).validate()


def test_of_takes_only_the_class_body() -> None:
    tracker = TrackerEventBody(
        **COMMON,
        action="opened",
        bug="local1",
        url="https://example.org/1",
        compose_id="Fedora-Atomic-28-20180515.1",
        compose_status="FAILED",
    )
    with pytest.raises(TypeError, match="ComposeRecordedBody"):
        ComposeRecorded.of("t", tracker)


def test_entry_points_name_the_classes() -> None:
    """The installed metadata (``pip install -e .``) points at this module's classes."""
    installed = {ep.name: ep.load() for ep in entry_points(group="fedora.messages")}
    for name, cls in MESSAGE_CLASSES.items():
        assert installed.get(name) is cls, name
    register_message_classes()
    for name, cls in MESSAGE_CLASSES.items():
        assert fm_message.get_class(name) is cls
        assert fm_message.get_name(cls) == name
