"""rpm's version order, checked against rpm's own test table (tests/rpmvercmp.at)."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.core.rpmvercmp import Evr, compare_evr, rpmvercmp
from tests.conftest import FIXTURES


def _rpm_cases() -> list[tuple[str, str, int]]:
    """Every active ``RPMVERCMP(a, b, expected)`` line (``dnl`` lines are commented out)."""
    text = (FIXTURES / "rpm-tests-rpmvercmp.at").read_text()
    pattern = re.compile(r"^RPMVERCMP\(([^,]*), ([^,]*), (-?1|0)\)$", re.MULTILINE)
    return [(a, b, int(expected)) for a, b, expected in pattern.findall(text)]


RPM_CASES = _rpm_cases()


def test_the_table_is_rpms_whole_table() -> None:
    # 91 active cases in rpm's tests/rpmvercmp.at, tilde and caret included.
    assert len(RPM_CASES) == 91
    assert ("1.0^git1", "1.01", -1) in RPM_CASES
    assert ("1.0~rc1", "1.0", -1) in RPM_CASES


@pytest.mark.parametrize(("a", "b", "expected"), RPM_CASES)
def test_rpmvercmp_matches_rpm(a: str, b: str, expected: int) -> None:
    assert rpmvercmp(a, b) == expected


@pytest.mark.parametrize(
    ("a", "b", "expected"),
    [
        # epoch wins over everything
        (Evr(1, "1.0", "1"), Evr(0, "9.9", "99"), 1),
        (Evr(0, "2.0", "1"), Evr(2, "1.0", "1"), -1),
        # then version, then release
        (Evr(0, "4.2.3", "300.fc23"), Evr(0, "4.2.10", "100.fc23"), -1),
        (Evr(0, "1.0", "2.fc23"), Evr(0, "1.0", "10.fc23"), -1),
        # string order would get these wrong
        (Evr(0, "2016.1", "1.fc23"), Evr(0, "2016.10", "1.fc23"), -1),
        (Evr(0, "1.0~rc1", "1"), Evr(0, "1.0", "1"), -1),
        (Evr(0, "1.0^git1", "1"), Evr(0, "1.0", "1"), 1),
        # leading zeros do not count; numeric beats alphabetic
        (Evr(0, "1.010", "1"), Evr(0, "1.10", "1"), 0),
        (Evr(0, "1.1", "1"), Evr(0, "1.a", "1"), 1),
        (Evr(0, "1.0", "1"), Evr(0, "1.0", "1"), 0),
    ],
)
def test_compare_evr(a: Evr, b: Evr, expected: int) -> None:
    assert compare_evr(a, b) == expected
    assert compare_evr(b, a) == -expected


def test_evr_prints_like_rpm() -> None:
    assert str(Evr(0, "1.0", "1.fc23")) == "1.0-1.fc23"
    assert str(Evr(2, "1.0", "1.fc23")) == "2:1.0-1.fc23"


VERSIONS = st.text(alphabet="0123456789abz.~^_", max_size=8)


@given(VERSIONS, VERSIONS)
def test_antisymmetric(a: str, b: str) -> None:
    assert rpmvercmp(a, b) == -rpmvercmp(b, a)
