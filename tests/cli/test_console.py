"""The console tables: a compose id is never cut, whatever the terminal's width."""

from __future__ import annotations

from rich.console import Console

from pipeline.cli.console import status_table
from tests.core.history import History


def test_status_table_keeps_whole_compose_ids_at_80_columns() -> None:
    h = History()
    composes = [h.compose(13, "fail"), h.compose(13, "manual"), h.compose(14)]
    h.cut(h.at(14, 12))
    screen = Console(width=80, record=True, color_system=None)
    screen.print(status_table(h.state(h.at(15)), 10))
    text = screen.export_text()
    assert max(len(line) for line in text.splitlines()) <= 80
    for c in composes:
        assert c.compose_id in text, text  # on one line, not cut or wrapped
