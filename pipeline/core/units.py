"""Units for people: sizes in binary units."""

from __future__ import annotations


def human_size(size: int) -> str:
    """``1.2 GiB``: binary units, one decimal above bytes (``512 B``), up to TiB."""
    scaled = float(size)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if scaled < 1024 or unit == "TiB":
            return f"{size} B" if unit == "B" else f"{scaled:.1f} {unit}"
        scaled /= 1024
    raise AssertionError("unreachable")
