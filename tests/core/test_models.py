"""The shared field types of the manifest models (``pipeline.core.models.common``)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from pipeline.core.models.common import format_timestamp, parse_timestamp


def test_a_timestamp_in_the_one_form_parses_to_utc_and_back() -> None:
    parsed = parse_timestamp("2015-09-15T07:08:09Z")
    assert parsed == datetime(2015, 9, 15, 7, 8, 9, tzinfo=UTC)
    assert format_timestamp(parsed) == "2015-09-15T07:08:09Z"


@pytest.mark.parametrize(
    "value",
    [
        "2015-9-15T00:00:00Z",  # strptime would take a one-digit month
        "2015-09-15T0:0:0Z",
        "\uff12015-09-15T00:00:00Z",  # a full-width digit
        "2015-09-15T00:00:00Z\n",
        "2015-09-15T00:00:00+00:00",
        "2015-09-15T00:00:00.5Z",
        "2015-02-30T00:00:00Z",  # no such day
        "2015-12-31T23:59:60Z",
        "0000-01-01T00:00:00Z",
        "",
    ],
)
def test_any_other_form_is_refused_with_the_value_named(value: str) -> None:
    with pytest.raises(ValueError, match="must look like 2015-09-15T00:00:00Z") as caught:
        parse_timestamp(value)
    assert repr(value) in str(caught.value)


def test_a_datetime_must_be_utc() -> None:
    with pytest.raises(ValueError, match="UTC"):
        parse_timestamp(datetime(2015, 9, 15))
    assert parse_timestamp(datetime(2015, 9, 15, 1, 2, 3, 999, tzinfo=UTC)).microsecond == 0
