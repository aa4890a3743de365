"""``demo``: the whole pipeline, day by day, on embedded defaults."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING

from invoke.context import Context
from invoke.tasks import task

from pipeline.cli import console
from pipeline.cli.boundary import boundary
from pipeline.cli.options import DEMO_PRODUCT, ROOT, at_least_one
from pipeline.cli.report import report_demo
from pipeline.cli.setup import now

if TYPE_CHECKING:
    from pipeline.demo.simulate import DayReport


@task(
    help={
        "dir": "scratch folder (default: a new temporary folder); replaced if it exists",
        "weeks": "how many weeks of nightly composes to play (default: 10)",
        "seed": "the seed of the story's faults (default: 1); the same seed, the same story",
        "serve": "serve the site on 127.0.0.1 at the end until Ctrl-C (default: on)",
        "port": "port for --serve (default: 0, a free one)",
    }
)
@boundary
def demo(
    c: Context,
    dir: str | None = None,
    weeks: int = 10,
    seed: int = 1,
    serve: bool = True,
    port: int = 0,
) -> None:
    """Run the whole pipeline, day by day, on embedded defaults, build the site and serve it."""
    at_least_one("weeks", weeks)
    workdir = Path(dir).resolve() if dir else Path(tempfile.mkdtemp(prefix="fortnight-demo-"))
    download_url = "/composes/{compose_id}/compose/"
    server = None
    if serve:  # bind first: the pages then carry absolute download links to this server
        from pipeline.site.serve import site_server  # noqa: PLC0415 - Pelican loads only here

        server = site_server(workdir / "www", "127.0.0.1", port)
        download_url = f"http://127.0.0.1:{server.server_address[1]}{download_url}"
    from pipeline.demo.run import run_demo  # noqa: PLC0415 - the image writers load only here

    started = time.monotonic()
    with console.day_progress() as progress:
        task_id = progress.add_task("nights", total=None)

        def on_day(n: int, day: DayReport) -> None:
            progress.update(task_id, description=f"{day.day} {day.compose_id} {day.status}")
            progress.advance(task_id)
            for line in (day.decision, *day.bug_events, *day.notes):
                if line:
                    console.out.print(f"{day.day}  {line}")

        result = run_demo(
            workdir,
            ROOT / "manifests" / DEMO_PRODUCT / "product.toml",
            ROOT / "pelicanconf.py",
            weeks=weeks,
            seed=seed,
            today=now().date(),
            on_day=on_day,
            on_plan=lambda days: progress.update(task_id, total=days),
            download_url=download_url,
        )
    report_demo(result, time.monotonic() - started)
    if server is not None:
        from pipeline.site.serve import serve_forever  # noqa: PLC0415 - Pelican is loaded by now

        serve_forever(server, result.site)
