"""An in-memory release history for the pure core, advanced day by day (no git)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta

from pipeline.core.config import BaseRelease, ProductConfig, ReleasePolicy
from pipeline.core.models.common import Manifest
from pipeline.core.models.manifests import (
    ComposeManifest,
    ReleaseManifest,
    RevocationManifest,
    TrackerEventManifest,
    VerdictManifest,
)
from pipeline.core.release import decide, revocation
from pipeline.core.state import State, derive
from pipeline.core.tracker import local_bug_url
from tests.conftest import make_compose, make_result, product_config

ANCHOR = date(2015, 9, 15)
T0 = datetime(2015, 9, 1, 6, 0, tzinfo=UTC)


def product(
    policy: str = "retry",
    version: str = "22",
    eligible: list[str] | None = None,
    prerelease: str | None = None,
) -> ProductConfig:
    base = product_config()
    return base.model_copy(
        update={
            "release": ReleasePolicy(anchor=ANCHOR, cadence_days=14, grace_days=2, policy=policy),  # type: ignore[arg-type]
            "base": BaseRelease(
                name="Fedora", version=version, prerelease=prerelease, eligible=eligible or []
            ),
        }
    )


@dataclass
class History:
    """An in-memory log, advanced day by day (the pure core, no git)."""

    config: ProductConfig = field(default_factory=product)
    log: list[Manifest] = field(default_factory=list)

    def at(self, day: int, hour: int = 6) -> datetime:
        return T0 + timedelta(days=day, hours=hour - 6)

    def compose(self, day: int, kind: str = "pass", version: str = "22") -> ComposeManifest:
        when = self.at(day, 2)
        stamp = f"{when:%Y%m%d}"
        n = sum(1 for m in self.log if isinstance(m, ComposeManifest) and m.date == stamp)
        cid = f"Fedora-Atomic-{version}-{stamp}.{n}"
        if kind == "no-image":
            c = make_compose(
                compose_id=cid,
                date=stamp,
                respin=n,
                created=when,
                outcome="no-image",
                images=[],
                release=None,
                reason="DOOMED",
                checksums_verified=False,
            )
        else:
            c = make_compose(
                compose_id=cid,
                date=stamp,
                respin=n,
                created=when,
                release={
                    "name": "Fedora",
                    "short": "Fedora-Atomic",
                    "version": version,
                    "type": "ga",
                },
            )
        self.log.append(c)
        tested = when + timedelta(hours=1)
        if kind in ("pass", "manual"):
            self.log.append(make_result(c, started=tested))
        elif kind in ("fail", "waived"):
            self.log.append(make_result(c, fail=["format"], started=tested))
        if kind == "manual":
            self.verdict(c.compose_id, "fail", tested)
        if kind == "waived":
            self.verdict(c.compose_id, "waive", tested, test="format")
        return c

    def verdict(
        self, compose_id: str, action: str, when: datetime, test: str | None = None
    ) -> None:
        n = sum(
            1 for m in self.log if isinstance(m, VerdictManifest) and m.compose_id == compose_id
        )
        self.log.append(
            VerdictManifest(
                product="atomic-host",
                created=when,
                compose_id=compose_id,
                number=n + 1,
                action=action,  # type: ignore[arg-type]
                test=test,
                reason="operator says so",
                operator="op",
            )
        )

    def state(self, when: datetime) -> State:
        return derive(self.log, self.config, when)

    def cut(self, when: datetime) -> ReleaseManifest | None:
        decision = decide(self.state(when), when)
        if decision is not None:
            self.log.append(decision)
        return decision

    def revoke(self, release_id: str, when: datetime) -> RevocationManifest | None:
        r = revocation(self.state(when), release_id, "bad image", None, "op", when)
        if r is not None:
            self.log.append(r)
        return r

    def bug(self, compose_id: str, when: datetime) -> None:
        self.log.append(
            TrackerEventManifest(
                product="atomic-host",
                created=when,
                event_id=f"local1-opened-{compose_id}",
                backend="local",
                bug="local1",
                bug_id="1",
                url=local_bug_url("atomic-host", "1"),
                action="opened",
                compose_id=compose_id,
                compose_status="failed",
                comment="c",
            )
        )
