"""rpm's version ordering, in pure Python: :func:`rpmvercmp` and :func:`compare_evr`.

Neither the ``rpm`` Python bindings nor ``rpmdev-vercmp`` exist on Debian, so this is a
faithful port of ``rpmvercmp()`` from rpm's ``rpmio/rpmvercmp.c`` (rpm >= 4.15, with the
caret), checked against every case of rpm's own ``tests/rpmvercmp.at``:

- a version splits into segments: runs of ASCII digits, runs of ASCII letters, ``~`` and
  ``^``; every other character only separates segments (``2.0`` equals ``2_0``);
- ``~`` sorts before everything, even the end of the string (``1.0~rc1 < 1.0``);
- ``^`` sorts after the end of the string but before any other segment
  (``1.0 < 1.0^git1 < 1.01``);
- numeric segments compare as numbers (leading zeros dropped, then the longer wins, then
  digit by digit); a numeric segment is newer than an alphabetic one; alphabetic segments
  compare as ASCII strings;
- when every segment compared equal, the version with characters left over is newer.

:func:`compare_evr` is rpm's ``rpmVersionCompare``: epoch as an integer (missing is 0),
then version, then release, each with :func:`rpmvercmp`.
"""

from __future__ import annotations

from typing import NamedTuple

_DIGITS = frozenset("0123456789")
_ALPHA = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_ALNUM = _DIGITS | _ALPHA


class Evr(NamedTuple):
    """An rpm epoch, version and release."""

    epoch: int
    version: str
    release: str

    def __str__(self) -> str:
        prefix = f"{self.epoch}:" if self.epoch else ""
        return f"{prefix}{self.version}-{self.release}"


def _skip_separators(s: str, i: int) -> int:
    while i < len(s) and s[i] not in _ALNUM and s[i] not in "~^":
        i += 1
    return i


def _segment_end(s: str, i: int, chars: frozenset[str]) -> int:
    while i < len(s) and s[i] in chars:
        i += 1
    return i


def _special(a: str, i: int, b: str, j: int) -> int | None:
    """The tilde and caret rules at positions i, j: a result, 0 to step over, None if neither."""
    ca, cb = a[i : i + 1], b[j : j + 1]
    if ca == "~" or cb == "~":
        if ca != "~":
            return 1
        return -1 if cb != "~" else 0
    if ca == "^" or cb == "^":
        if not ca:
            return -1
        if not cb:
            return 1
        if ca != "^":
            return 1
        return -1 if cb != "^" else 0
    return None


def _compare_segment(sa: str, sb: str, numeric: bool) -> int:
    if numeric:
        sa, sb = sa.lstrip("0"), sb.lstrip("0")
        if len(sa) != len(sb):
            return 1 if len(sa) > len(sb) else -1
    if sa == sb:
        return 0
    return 1 if sa > sb else -1


def rpmvercmp(a: str, b: str) -> int:
    """Compare two version (or release) strings as rpm does: -1, 0 or 1."""
    if a == b:
        return 0
    i = j = 0
    while i < len(a) or j < len(b):
        i, j = _skip_separators(a, i), _skip_separators(b, j)
        special = _special(a, i, b, j)
        if special is not None:
            if special:
                return special
            i, j = i + 1, j + 1
            continue
        if i >= len(a) or j >= len(b):
            break
        numeric = a[i] in _DIGITS
        chars = _DIGITS if numeric else _ALPHA
        end_a, end_b = _segment_end(a, i, chars), _segment_end(b, j, chars)
        if end_b == j:  # segments of different types: numeric is newer
            return 1 if numeric else -1
        result = _compare_segment(a[i:end_a], b[j:end_b], numeric)
        if result:
            return result
        i, j = end_a, end_b
    if i >= len(a) and j >= len(b):
        return 0
    return 1 if i < len(a) else -1


def compare_evr(a: Evr, b: Evr) -> int:
    """rpm's ordering of two (epoch, version, release): -1, 0 or 1."""
    if a.epoch != b.epoch:
        return 1 if a.epoch > b.epoch else -1
    return rpmvercmp(a.version, b.version) or rpmvercmp(a.release, b.release)
