"""The main job on embedded defaults: weeks of nightly composes through the real pipeline.

A fresh release repository in a scratch folder (keys generated for the run, the local
tracker, a local log store), then :mod:`pipeline.demo.simulate` plays the demo's story day by
day (compose.record, test.run with the default battery, tracker.sync, release.cut, one
operator fail, one withdrawal, a base switch to a Beta), then the site is built. Each
compose carries an rpms.json (:mod:`pipeline.demo.packages`), so releases have notes; the
announcement mail of every release, stale cycle and withdrawal is written as a preview (what
``invoke announce --dry-run`` prints) under ``announcements/``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, time
from pathlib import Path

from pipeline.core.config import load_product
from pipeline.core.models.manifests import ReleaseManifest, RevocationManifest
from pipeline.demo.ostree import available as ostree_available
from pipeline.demo.simulate import PRODUCT, DayReport, Simulation, Totals, demo_script
from pipeline.fsutil import atomic_write
from pipeline.log.reader import LogReport
from pipeline.log.store import ManifestLog
from pipeline.stages.mailing import Mailer


@dataclass(frozen=True)
class DemoResult:
    """What the demo made, for the summary."""

    repo: Path
    keys: Path
    site: Path
    totals: Totals
    report: LogReport
    current: str | None
    stale: bool
    #: What the demo did with OSTree (the public repository, or why it skipped it).
    ostree: str = ""
    announcements: Path | None = None


def run_demo(
    workdir: Path,
    product_toml: Path,
    settings: Path,
    *,
    weeks: int,
    seed: int,
    today: date,
    on_day: Callable[[int, DayReport], None] = lambda n, r: None,
    on_plan: Callable[[int], None] = lambda days: None,
    download_url: str = "/composes/{compose_id}/compose/",
) -> DemoResult:
    """Play ``weeks`` weeks ending ``today`` in ``workdir`` and build the site.

    ``settings`` is the Pelican settings file (``pelicanconf.py``); ``download_url`` is
    where users download images (the composes are written beside the site, under
    ``composes/``).

    Raises:
        FortnightError: any step failed (the demo uses the same code as the tasks).
    """
    from pipeline.site.build import build_site  # noqa: PLC0415 - Pelican loads after the run

    script = demo_script(weeks, seed, today)
    on_plan(script.days)
    use_ostree = ostree_available()
    sim = Simulation(
        workdir,
        script,
        product_toml=product_toml.read_bytes(),
        download_url=download_url,
        ostree=use_ostree,
    )
    totals = sim.run(on_day)
    end = datetime.combine(today, time(23), tzinfo=sim.at(0, time(0)).tzinfo)
    build_site(
        settings, sim.repo, sim.www, at=end, logs=sim.logs.root, site_signers=[sim.signers["site"]]
    )
    state = sim.state(end)
    previews = write_announcements(sim.log, workdir / "announcements")
    current = state.current
    return DemoResult(
        repo=sim.repo,
        keys=sim.keys,
        site=sim.www,
        totals=totals,
        report=sim.log.verify_all(sim.log.load_trust()),
        current=f"{current.release_id} ({current.manifest.compose_id})" if current else None,
        stale=state.freshness.stale,
        ostree=(
            f"promoted to {sim.ostree.public.path}, served at <site>/atomic-host/ostree/"
            if sim.ostree is not None
            else "skipped the OSTree part: the ostree and gpg commands are not both installed"
        ),
        announcements=previews,
    )


def write_announcements(log: ManifestLog, folder: Path) -> Path:
    """Write the announcement mail of every release decision and withdrawal in the log to
    ``folder/<release id>[-withdrawn].txt`` (subject, blank line, body). Returns ``folder``."""
    trust = log.load_trust()
    mailer = Mailer(log, trust, None, dry_run=True)
    folder.mkdir(parents=True, exist_ok=True)
    for verified in log.load_verified(trust, products=[PRODUCT]):
        m = verified.manifest
        if isinstance(m, (ReleaseManifest, RevocationManifest)):
            mail = mailer.compose(m, load_product(log.root, m.product))
            suffix = "-withdrawn" if isinstance(m, RevocationManifest) else ""
            text = f"Subject: {mail.subject}\n\n{mail.body}"
            atomic_write(folder / f"{m.release_id}{suffix}.txt", text.encode())
    return folder
