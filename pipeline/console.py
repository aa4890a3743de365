"""Terminal output for the task layer: progress bars and summary tables (rich)."""

from __future__ import annotations

import sys
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)
from rich.table import Table

from pipeline.models import ComposeManifest

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)


@contextmanager
def byte_progress() -> Iterator[Progress]:
    """A progress display for streaming bytes; silent when stderr is not a terminal."""
    progress = Progress(
        TextColumn("{task.description}", markup=False),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
        console=err,
        transient=True,
        disable=not sys.stderr.isatty(),
    )
    with progress:
        yield progress


def human_size(n: int) -> str:
    """Bytes as a short human figure (binary units)."""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def compose_table(manifest: ComposeManifest) -> Table:
    """The images of a compose manifest, a row each."""
    table = Table(title=f"{manifest.compose_id} ({manifest.outcome})", title_justify="left")
    for col in ("arch", "type", "format", "size", "sha256"):
        table.add_column(col, justify="right" if col == "size" else "left")
    for img in sorted(manifest.images, key=lambda i: (i.arch, i.type)):
        table.add_row(
            img.arch, img.type, img.format, human_size(img.size), img.checksums.sha256[:16] + "…"
        )
    return table


def counts_table(counts: Counter[str], failures: int) -> Table:
    """Verified manifests per kind, and the number rejected."""
    table = Table(title="manifest log", title_justify="left")
    table.add_column("kind")
    table.add_column("verified", justify="right")
    for kind in sorted(counts):
        table.add_row(kind, str(counts[kind]))
    table.add_row("[bold]rejected[/bold]" if failures else "rejected", str(failures))
    return table
