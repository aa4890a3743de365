"""Small formatting helpers of the page models: dates, ages, region names, safe links and paths."""

from __future__ import annotations

import functools
from datetime import UTC, datetime


def iso(ts: datetime) -> str:
    """``2018-05-15T10:00:00Z``."""
    return ts.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def compose_date(compose_date_field: str) -> str:
    """``20180515`` to ``2018-05-15``."""
    d = compose_date_field
    return f"{d[:4]}-{d[4:6]}-{d[6:]}"


def age(days: int) -> str:
    """``today``, ``1 day ago``, ``12 days ago``."""
    if days <= 0:
        return "today"
    return "1 day ago" if days == 1 else f"{days} days ago"


@functools.cache
def region_names() -> dict[str, str]:
    """AWS region code to its name (``eu-west-1``: ``Europe (Ireland)``), from botocore's data."""
    import botocore.session  # noqa: PLC0415 - loaded only for products with AMIs (~0.3 s)

    data = botocore.session.get_session().get_data("endpoints")
    return {
        code: str(region.get("description", code))
        for partition in data.get("partitions", [])
        for code, region in partition.get("regions", {}).items()
    }


def http_url(url: str | None) -> str | None:
    """``url`` if it is an http(s) URL or has no scheme at all (``/composes/…``), else None:
    never a ``javascript:`` or ``data:`` link."""
    if not url:
        return None
    head = url.split("/", 1)[0]
    if ":" not in head:
        return url  # relative or root-relative: no scheme to abuse
    scheme = head.split(":", 1)[0].lower()
    return url if scheme in ("http", "https") and url[len(scheme) :].startswith("://") else None


def safe_relpath(path: str) -> bool:
    """A relative path that stays inside its folder (no ``..``, not absolute, no NUL)."""
    if not path or "\0" in path or path.startswith("/"):
        return False
    return ".." not in path or ".." not in path.split("/")


def sha_groups(digest: str, size: int = 16) -> list[str]:
    """A hex digest in groups of ``size`` characters, the only places it may wrap on a page."""
    return [digest[i : i + size] for i in range(0, len(digest), size)]
