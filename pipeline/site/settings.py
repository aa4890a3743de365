"""The site plugin's settings, read once from Pelican's."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pipeline.core.config import ProductConfig
from pipeline.core.siteconfig import load_site_config


@dataclass(frozen=True)
class SiteSettings:
    """The plugin's settings, read from Pelican's (``FORTNIGHT_*`` and ``SITEURL``)."""

    repo: Path
    output: Path
    theme: Path
    at: datetime | None
    logs: Path | None
    primary: str
    site_url: str
    site_name: str
    force: bool
    cache: bool
    workers: int
    #: ``FORTNIGHT_OSTREE_*`` overrides of ``[ostree]`` paths on this machine.
    ostree_env: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def from_pelican(cls, settings: dict[str, Any]) -> SiteSettings:
        at = settings.get("FORTNIGHT_AT")
        logs = settings.get("FORTNIGHT_LOGS")
        return cls(
            repo=Path(settings.get("FORTNIGHT_REPO") or ".").resolve(),
            output=Path(settings["OUTPUT_PATH"]).resolve(),
            theme=Path(settings["THEME"]).resolve(),
            at=at if isinstance(at, datetime) else None,
            logs=Path(logs).resolve() if logs else None,
            primary=str(settings.get("FORTNIGHT_PRIMARY") or ""),
            site_url=str(settings.get("FORTNIGHT_SITEURL") or ""),
            site_name=str(settings.get("SITENAME") or ""),
            force=bool(settings.get("FORTNIGHT_FORCE")),
            cache=bool(settings.get("FORTNIGHT_CACHE", True)),
            workers=int(settings.get("FORTNIGHT_WORKERS") or os.cpu_count() or 1),
            ostree_env={k: v for k, v in os.environ.items() if k.startswith("FORTNIGHT_OSTREE_")},
        )

    def with_log(self, products: Sequence[ProductConfig]) -> SiteSettings:
        """The site's identity from the log's ``site.toml``, over the Pelican settings:
        its name (default "<primary display name> downloads"), its primary product (default
        ``default_product``, else the first product) and its base URL.

        Raises:
            ConfigError: site.toml is invalid.
        """
        log = load_site_config(self.repo)
        names = [p.name for p in products]
        wanted = [log.primary, self.primary, log.default_product]
        primary = next((n for n in wanted if n and n in names), names[0] if names else "")
        display = next((p.display_name for p in products if p.name == primary), "Fortnight")
        return replace(
            self,
            primary=primary,
            site_url=log.base_url or self.site_url,
            site_name=log.name or self.site_name or f"{display} downloads",
        )

    def now(self) -> datetime:
        """The moment the site describes: ``--at``, else now (whole seconds)."""
        return self.at or datetime.now(UTC).replace(microsecond=0)
