"""A site built past its log's newest checkpoint expiry says, on every page, that it is stale."""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta
from html import unescape
from pathlib import Path

from pipeline.core.models.common import format_timestamp
from pipeline.log.checkpoints import newest
from tests.sitekit import History, scenario_current


def test_an_expired_checkpoint_shows_a_stale_banner_on_every_page(
    make_history: Callable[..., History], tmp_path: Path
) -> None:
    h = make_history()
    scenario_current(h)
    head = newest(h.log.log.root)
    assert head is not None
    fresh, late = tmp_path / "fresh", tmp_path / "late"
    h.build(fresh, head.signed.expires - timedelta(seconds=1))
    h.build(late, head.signed.expires)
    message = (
        f"frozen: the log's newest checkpoint expired at {format_timestamp(head.signed.expires)} "
        f"(signed at {format_timestamp(head.signed.time)})"
    )
    for page in ("index.html", "atomic-host/index.html", "verify.html"):
        assert 'data-banner="frozen"' not in (fresh / page).read_text()
        html = unescape((late / page).read_text())
        assert 'data-banner="frozen"' in html and message in html, page
