"""The announcement mail of ``invoke announce``: one plain-text mail per release, stale cycle
and withdrawal, to the product's ``[announce] mail_to``.

:func:`pipeline.stages.announce.announce` asks a :class:`Mailer` for each manifest it
announces, so a mail goes out exactly when the bus message does and the same marker
(``.git/fortnight-announced``) remembers both: a re-run sends neither again.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

from pipeline.adapters import mail
from pipeline.core.config import ProductConfig, load_product
from pipeline.core.models.common import Manifest
from pipeline.core.models.manifests import ReleaseManifest, RevocationManifest
from pipeline.core.pages.announcement import Mail, release_mail, stale_mail, withdrawn_mail
from pipeline.core.state import derive
from pipeline.errors import ConfigError
from pipeline.log.store import ManifestLog


@dataclass
class Mailer:
    """Builds and sends the announcement mails (``smtp`` None: no server configured)."""

    log: ManifestLog
    trust: Any
    smtp: mail.SmtpSettings | None
    site_url: str = ""
    dry_run: bool = False
    sleep: Callable[[float], None] = time.sleep
    connect: mail.Connect | None = None
    sent: list[EmailMessage] = field(default_factory=list)
    _manifests: dict[str, list[Manifest]] = field(default_factory=dict)

    def handle(self, manifest: Manifest, key: str) -> EmailMessage | None:
        """Mail the announcement of ``manifest`` (stored at ``key``) when it has one and the
        product has recipients; in a dry run only build it. Returns the mail.

        Raises:
            ConfigError: the product has recipients but ``FORTNIGHT_SMTP_HOST`` is not set.
            MailError: the mail could not be sent (see :func:`pipeline.adapters.mail.send`).
        """
        if not isinstance(manifest, (ReleaseManifest, RevocationManifest)):
            return None
        config = load_product(self.log.root, manifest.product)
        recipients = config.announce.mail_to
        if not recipients:
            return None
        smtp = self.smtp
        if smtp is None:
            if not self.dry_run:
                raise ConfigError(
                    f"manifests/{manifest.product}/product.toml: [announce] mail_to is set "
                    f"but {mail.HOST_ENV} is not",
                    hint=f"set {mail.HOST_ENV} (and {mail.PORT_ENV}, credentials) to send mail",
                )
            smtp = mail.SmtpSettings(host="(not configured)")
        text = self.compose(manifest, config)
        message = mail.compose_message(
            smtp, recipients, text.subject, text.body, key=key, date=manifest.created
        )
        if not self.dry_run:
            kwargs = {"connect": self.connect} if self.connect else {}
            mail.send(smtp, message, sleep=self.sleep, **kwargs)
        self.sent.append(message)
        return message

    def compose(
        self, manifest: ReleaseManifest | RevocationManifest, config: ProductConfig
    ) -> Mail:
        """The subject and body, from the log's state at the manifest's creation."""
        product = manifest.product
        if product not in self._manifests:
            verified = self.log.load_verified(self.trust, products=[product])
            self._manifests[product] = [v.manifest for v in verified]
        state = derive(self._manifests[product], config, manifest.created)
        if isinstance(manifest, RevocationManifest):
            return withdrawn_mail(state, manifest, self.site_url)
        if manifest.decision == "release":
            return release_mail(state, manifest, self.site_url)
        return stale_mail(state, manifest, self.site_url)
