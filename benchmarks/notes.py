"""Time the page models this feature adds on a ten-year in-memory history (pure core, no git).

Usage (from the repository root)::

    python benchmarks/notes.py [--years 10]

Prints the seconds of the history picture, every release's notes, the archive rows, the
download page and the feed entries, for one product with a compose every night and a release
every 14 days (the in-memory history of ``tests/core/history.py``).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.core.pages import (
    Urls,
    all_release_notes,
    archive_rows,
    download_page,
    feed_entries,
    history_picture,
)
from tests.core.history import History


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--years", type=int, default=10)
    days = parser.parse_args().years * 365
    h = History()
    for d in range(days):
        h.compose(d, "pass")
        if d % 14 == 13:
            h.cut(h.at(d, 12))
    state = h.state(h.at(days))
    urls = Urls("atomic-host")
    print(f"{len(state.composes)} composes, {len(state.releases)} release decisions")
    steps: list[tuple[str, Callable[[], object]]] = [
        ("history picture", lambda: history_picture(state, urls)),
        ("every release's notes", lambda: all_release_notes(state, urls)),
        ("archive rows", lambda: archive_rows(state, urls)),
        ("download page", lambda: download_page(state)),
        ("feed entries", lambda: feed_entries(state, urls)),
    ]
    for name, step in steps:
        started = time.perf_counter()
        step()
        print(f"  {name}: {time.perf_counter() - started:.3f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
