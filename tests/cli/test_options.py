"""The option rules the tasks share: write flags, --at, compose.record's flags, counts."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from pipeline.cli.options import (
    ComposeSource,
    FailedCompose,
    WriteFlags,
    at_least_one,
    parse_at,
    record_request,
    role_name,
)
from pipeline.errors import ConfigError
from pipeline.log.git import PushConfig
from pipeline.log.writer import WriteOptions

NOW = datetime(2018, 5, 15, 12, 0, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("flags", "configured", "expected"),
    [
        (WriteFlags(), None, WriteOptions()),
        (WriteFlags(dry_run=True), None, WriteOptions(dry_run=True)),
        (WriteFlags(push=True), None, WriteOptions(push=PushConfig(remote="origin"))),
        (WriteFlags(remote="up"), None, WriteOptions(push=PushConfig(remote="up"))),
        (WriteFlags(), "conf", WriteOptions(push=PushConfig(remote="conf"))),
        (WriteFlags(remote="up"), "conf", WriteOptions(push=PushConfig(remote="up"))),
        (WriteFlags(no_commit=True, push=True), "conf", WriteOptions(commit=False)),
    ],
)
def test_write_flags_become_write_options(
    flags: WriteFlags, configured: str | None, expected: WriteOptions
) -> None:
    assert flags.options(configured) == expected


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (None, NOW),
        ("", NOW),
        ("2018-05-15", datetime(2018, 5, 15, tzinfo=UTC)),
        ("2018-05-15T06:00:00Z", datetime(2018, 5, 15, 6, tzinfo=UTC)),
        ("2018-05-15T06:00:00", datetime(2018, 5, 15, 6, tzinfo=UTC)),
        ("2018-05-15T08:00:00+02:00", datetime(2018, 5, 15, 6, tzinfo=UTC)),
        ("2018-05-15T06:00:00.750Z", datetime(2018, 5, 15, 6, tzinfo=UTC)),
    ],
)
def test_parse_at(at: str | None, expected: datetime) -> None:
    assert parse_at(at, NOW) == expected


@pytest.mark.parametrize(
    "at", ["soon", "yesterday-ish", "2018-13-01", "15/05/2018", "2018-05-15 x"]
)
def test_parse_at_rejects_on_one_line_naming_the_option(at: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_at(at, NOW)
    assert str(e.value).startswith(f"--at {at}: not a date or datetime")
    assert "\n" not in e.value.diagnostics()


def test_record_request_for_a_failed_compose() -> None:
    asked = record_request(
        source=None,
        failed=True,
        compose_id="C-1",
        reason="DOOMED",
        log_url="https://x/log",
        verify_checksums=False,
        skip_checksums=False,
        source_is_url=False,
    )
    assert asked == FailedCompose("C-1", "DOOMED", "https://x/log")


@pytest.mark.parametrize(
    ("verify", "skip", "is_url", "checked"),
    [
        (False, False, False, True),  # a local compose is checked by default
        (False, True, False, False),
        (False, False, True, False),  # a URL is not, unless asked
        (True, False, True, True),
    ],
)
def test_record_request_checks_files(verify: bool, skip: bool, is_url: bool, checked: bool) -> None:
    asked = record_request(
        source="/composes/C-1",
        failed=False,
        compose_id=None,
        reason=None,
        log_url=None,
        verify_checksums=verify,
        skip_checksums=skip,
        source_is_url=is_url,
    )
    assert asked == ComposeSource("/composes/C-1", checked)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        ({"failed": True, "reason": "x"}, "--failed needs --compose-id and --reason"),
        ({"failed": True, "compose_id": "C-1"}, "--failed needs --compose-id and --reason"),
        ({}, "--source is required"),
        (
            {"source": "/c", "verify_checksums": True, "skip_checksums": True},
            "--verify-checksums and --skip-checksums exclude each other",
        ),
    ],
)
def test_record_request_rejects_bad_flags(flags: dict[str, Any], message: str) -> None:
    args: dict[str, Any] = {
        "source": None,
        "failed": False,
        "compose_id": None,
        "reason": None,
        "log_url": None,
        "verify_checksums": False,
        "skip_checksums": False,
        "source_is_url": False,
    }
    with pytest.raises(ConfigError, match=message):
        record_request(**{**args, **flags})


def test_role_name() -> None:
    assert role_name("test") == "test"
    with pytest.raises(ConfigError, match="--role admin: unknown role"):
        role_name("admin")


def test_at_least_one() -> None:
    assert at_least_one("workers", 3) == 3
    with pytest.raises(ConfigError, match="--workers 0: must be at least 1"):
        at_least_one("workers", 0)
