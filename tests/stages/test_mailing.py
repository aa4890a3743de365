"""The announcement mail: sent through a real SMTP server on 127.0.0.1 (aiosmtpd), once per
release, stale cycle and withdrawal, under the bus announcements' marker."""

from __future__ import annotations

import dataclasses
import email
import email.policy
import socket
import ssl
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, Envelope, LoginPassword, Session
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID
from fedora_messaging.message import Message

from pipeline.adapters import mail
from pipeline.adapters.bus.settings import BusSettings
from pipeline.adapters.ostree import OstreeRepo
from pipeline.errors import ConfigError, MailError
from pipeline.retry import Backoff
from pipeline.stages import announce
from pipeline.stages.mailing import Mailer
from tests.conftest import ComposeTree, Log, run_invoke
from tests.ostreekit import ARCHES, OstreeHistory, ostree_toml
from tests.sitekit import History, day

USER, PASSWORD = "fortnight", "s3cret-for-tests"
RECIPIENTS = ["atomic-devel@example.org", "announce@example.org"]


@dataclass
class Inbox:
    """What the SMTP server received."""

    port: int
    mails: list[tuple[Envelope, EmailMessage]] = field(default_factory=list)
    logins: list[str] = field(default_factory=list)
    controller: Controller | None = None

    async def handle_DATA(self, server: Any, session: Session, envelope: Envelope) -> str:
        raw = envelope.original_content or b""
        parsed = email.message_from_bytes(raw, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.mails.append((envelope, parsed))
        return "250 OK"

    def authenticate(
        self, server: Any, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
            USER.encode(),
            PASSWORD.encode(),
        )
        if ok:
            self.logins.append(USER)
        return AuthResult(success=ok, handled=False)

    def start(self) -> None:
        self.controller = Controller(
            self,
            hostname="127.0.0.1",
            port=self.port,
            authenticator=self.authenticate,
            auth_require_tls=False,
        )
        self.controller.start()

    @property
    def settings(self) -> mail.SmtpSettings:
        env = {
            mail.HOST_ENV: "127.0.0.1",
            mail.PORT_ENV: str(self.port),
            mail.STARTTLS_ENV: "0",
            mail.USER_ENV: USER,
            mail.PASSWORD_ENV: PASSWORD,
            mail.FROM_ENV: "releng@fortnight.example",
        }
        settings = mail.settings_from_env(env)
        assert settings is not None
        return settings


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture
def inbox() -> Iterator[Inbox]:
    """An SMTP server's inbox on a free loopback port (not started: call ``start``)."""
    box = Inbox(port=_free_port())
    yield box
    if box.controller is not None:
        box.controller.stop()


def _with_recipients(h: History) -> None:
    toml = h.log.repo / "manifests/atomic-host/product.toml"
    quoted = ", ".join(f'"{r}"' for r in RECIPIENTS)
    toml.write_text(toml.read_text() + f"\n[announce]\nmail_to = [{quoted}]\n")
    h.log.git("commit", "-qam", "announce: mail recipients")


def _history(make_history: Callable[..., History]) -> tuple[History, str]:
    """Two releases with package lists, a stale cycle, and the second release withdrawn."""
    h = make_history()
    _with_recipients(h)
    first = h.log.git("rev-parse", "HEAD").strip()
    h.compose(day(-1), night=0)
    h.cut(day(0, 12))
    h.compose(day(13), night=30)
    h.cut(day(14, 12))
    h.cut(day(28, 12))  # nothing new passed: stale
    h.revoke("2018-05-15", "the image does not boot on EC2", day(29), "https://bz.example/1")
    return h, first


def _announce(h: History, mailer: Mailer, **kw: Any) -> announce.AnnounceReport:
    sent: list[Message] = []
    settings = BusSettings(site_url="https://fortnight.example/")
    return announce.announce(h.log.log, settings, publish=sent.append, mailer=mailer, **kw)


def _mailer(h: History, smtp: mail.SmtpSettings | None, **kw: Any) -> Mailer:
    log = h.log.log
    return Mailer(log, log.load_trust(), smtp, site_url="https://fortnight.example/", **kw)


def test_each_event_is_mailed_once_with_its_headers_and_body(
    make_history: Callable[..., History], inbox: Inbox
) -> None:
    h, first = _history(make_history)
    inbox.start()
    announce.write_marker(h.log.log, first)
    report = _announce(h, _mailer(h, inbox.settings))
    subjects = [m["Subject"] for _, m in inbox.mails]
    assert subjects == [
        "Fedora Atomic Host 2018-05-01 released (Fedora-Atomic-28-20180430.0)",
        "Fedora Atomic Host 2018-05-15 released (Fedora-Atomic-28-20180514.0)",
        "Fedora Atomic Host 2018-05-29: no new image (stale)",
        "Fedora Atomic Host 2018-05-15 withdrawn",
    ]
    assert len(report.mails) == 4 and inbox.logins == [USER] * 4
    envelope, release = inbox.mails[1]
    assert envelope.mail_from == "releng@fortnight.example"
    assert envelope.rcpt_tos == RECIPIENTS
    assert release["To"] == ", ".join(RECIPIENTS)
    assert release["Date"] == "Tue, 15 May 2018 12:00:00 +0000"  # the decision's time
    assert release["Message-ID"].endswith("@fortnight.example>")
    assert release.get_content_type() == "text/plain"
    body = release.get_content().replace("\r\n", "\n")
    compose = h.composes["Fedora-Atomic-28-20180514.0"]
    qcow2 = next(i for i in compose.images if i.arch == "x86_64" and i.type == "qcow2")
    assert f"sha256 {qcow2.checksums.sha256}" in body
    assert f"({qcow2.size} bytes)" in body and qcow2.url in body
    assert "Changes since 2018-05-01 (Fedora-Atomic-28-20180430.0):" in body
    assert "Packages: 49 upgraded, 1 added." in body
    assert "  kernel 4.16.3-301.fc28 -> 4.16.8-301.fc28\n" in body
    assert (
        "other source packages: https://fortnight.example/atomic-host/releases/2018-05-15/notes.html"
        in body
    )
    assert "Why this image:" in body
    assert "OSTree" not in body  # the product has no [ostree]
    assert "https://fortnight.example/atomic-host/index.html" in body
    stale = inbox.mails[2][1].get_content()
    assert "keeps offering release 2018-05-15" in stale and "What to do:" in stale
    assert "Failure bug: " not in stale  # nothing failed: the cycle had no compose at all
    withdrawn = inbox.mails[3][1].get_content()
    assert "Why: the image does not boot on EC2" in withdrawn
    assert "Bug: https://bz.example/1" in withdrawn
    assert "Use release 2018-05-01" in withdrawn
    assert PASSWORD not in "".join(m.as_string() for _, m in inbox.mails)

    again = _announce(h, _mailer(h, inbox.settings))  # a re-run: nothing new, nothing sent
    assert again.mails == [] and len(inbox.mails) == 4


def test_the_mails_name_each_arch_s_ostree_commit_and_the_way_back(
    tmp_path: Path,
    make_log: Callable[..., Log],
    make_compose_tree: Callable[..., ComposeTree],
    inbox: Inbox,
) -> None:
    """Real commits, released and withdrawn through real repositories: the release mail names
    per arch the ref, version, commit and previous commit; a withdrawal the commit the ref
    moved back to (or that it was deleted) and what hosts on the withdrawn tree run."""
    public, source = tmp_path / "public", tmp_path / "compose-repo"
    toml = ostree_toml("https://dl.example.org/{compose_id}/", public, source, None)
    oh = OstreeHistory(
        History(make_log("log", toml), make_compose_tree), OstreeRepo(source), OstreeRepo(public)
    )
    h = oh.history
    _with_recipients(h)
    first = h.log.git("rev-parse", "HEAD").strip()
    old = oh.compose(day(-1), "28.20180430.0").compose_id
    oh.cut(day(0, 12))
    new = oh.compose(day(13), "28.20180514.0").compose_id
    oh.cut(day(14, 12))
    oh.revoke("2018-05-15", day(15))
    oh.revoke("2018-05-01", day(16))  # nothing stands: the refs are deleted
    inbox.start()
    announce.write_marker(h.log.log, first)
    _announce(h, _mailer(h, inbox.settings))
    bodies = [m.get_content().replace("\r\n", "\n") for _, m in inbox.mails]
    assert [m["Subject"] for _, m in inbox.mails][2:] == [
        "Fedora Atomic Host 2018-05-15 withdrawn",
        "Fedora Atomic Host 2018-05-01 withdrawn",
    ]
    for arch in ARCHES:
        ref = f"fedora/28/{arch}/atomic-host"
        was, now = oh.commits[old][arch], oh.commits[new][arch]
        assert (
            f"  {arch} {ref}: version 28.20180430.0\n    commit {was}\n"
            "    previous: none (a new ref)\n"
        ) in bodies[0]
        assert (
            f"  {arch} {ref}: version 28.20180514.0\n    commit {now}\n    previous {was}\n"
        ) in bodies[1]
        assert (
            f"  {arch} {ref}: withdrawn commit {now}\n"
            f"    moved back to {was} (version 28.20180430.0, release 2018-05-01)\n"
        ) in bodies[2]
        assert (
            f"  {arch} {ref}: withdrawn commit {was}\n"
            "    deleted: no release that stands names this ref\n"
        ) in bodies[3]
    assert "Repository: https://fortnight.example/atomic-host/ostree/\n" in bodies[1]
    assert "GPG key:" not in bodies[1]  # the product publishes no key
    assert "'rpm-ostree rollback' (back to the deployment they had), or\n" in bodies[2]
    assert "'rpm-ostree deploy <commit>' with the commit the ref moved back to." in bodies[2]
    assert "they had).\n" in bodies[3] and "rpm-ostree deploy" not in bodies[3]


def test_a_server_that_refuses_the_first_connection(
    make_history: Callable[..., History], inbox: Inbox
) -> None:
    h, _ = _history(make_history)
    announce.write_marker(h.log.log, h.log.git("rev-parse", "HEAD~1").strip())  # the revocation
    waits: list[float] = []

    def sleep(seconds: float) -> None:  # the server comes up while we wait
        waits.append(seconds)
        inbox.start()

    _announce(h, _mailer(h, inbox.settings, sleep=sleep))
    assert waits == [1.0]  # one refused connection, one retry
    assert [m["Subject"] for _, m in inbox.mails] == ["Fedora Atomic Host 2018-05-15 withdrawn"]


def test_an_unreachable_server_fails_clearly_and_the_next_run_resends(
    make_history: Callable[..., History], inbox: Inbox
) -> None:
    h, _ = _history(make_history)
    before = h.log.git("rev-parse", "HEAD~1").strip()
    announce.write_marker(h.log.log, before)
    smtp = inbox.settings
    quick = dataclasses.replace(smtp, timeout=5.0, backoff=Backoff(attempts=2))
    with pytest.raises(MailError) as exc:
        _announce(h, _mailer(h, quick, sleep=lambda s: None))
    assert f"SMTP 127.0.0.1:{inbox.port}: unreachable after 2 tries" in exc.value.message
    assert "\n" not in exc.value.diagnostics() and PASSWORD not in exc.value.diagnostics()
    assert announce.read_marker(h.log.log) == before  # not marked: the next run resends
    inbox.start()
    _announce(h, _mailer(h, smtp))
    assert [m["Subject"] for _, m in inbox.mails] == ["Fedora Atomic Host 2018-05-15 withdrawn"]


def test_a_refused_login_is_not_retried(make_history: Callable[..., History], inbox: Inbox) -> None:
    h, _ = _history(make_history)
    announce.write_marker(h.log.log, h.log.git("rev-parse", "HEAD~1").strip())
    inbox.start()
    smtp = inbox.settings
    wrong = dataclasses.replace(smtp, password="wrong-password")
    waits: list[float] = []
    with pytest.raises(MailError, match="login refused") as exc:
        _announce(h, _mailer(h, wrong, sleep=waits.append))
    assert waits == [] and inbox.mails == []
    assert "FORTNIGHT_SMTP_PASSWORD" in exc.value.hint


def test_recipients_without_a_server_is_a_config_error(
    make_history: Callable[..., History],
) -> None:
    h, _ = _history(make_history)
    announce.write_marker(h.log.log, h.log.git("rev-parse", "HEAD~1").strip())
    with pytest.raises(ConfigError, match=r"\[announce\] mail_to is set but FORTNIGHT_SMTP_HOST"):
        _announce(h, _mailer(h, None))


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({mail.PORT_ENV: "smtp"}, "FORTNIGHT_SMTP_PORT='smtp': not a port number"),
        ({mail.PORT_ENV: "70000"}, "not a port number"),
        ({mail.STARTTLS_ENV: "yes"}, "FORTNIGHT_SMTP_STARTTLS='yes': must be 0 or 1"),
    ],
)
def test_bad_smtp_settings(env: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        mail.settings_from_env({mail.HOST_ENV: "mail.example", **env})
    assert mail.settings_from_env({}) is None


def test_dry_run_prints_the_mail_and_sends_nothing(make_history: Callable[..., History]) -> None:
    h, first = _history(make_history)
    args = ("announce", "--dry-run", "--since", first, "--repo", str(h.log.repo))
    result = run_invoke(*args, env=h.log.env)
    assert result.returncode == 0, result.stderr
    out = result.stdout
    assert "would mail: Fedora Atomic Host 2018-05-15 released" in out
    assert "Subject: Fedora Atomic Host 2018-05-29: no new image (stale)" in out
    assert "Message-ID: <" in out and "To: atomic-devel@example.org, announce@example.org" in out
    assert "  kernel 4.16.3-301.fc28 -> 4.16.8-301.fc28\n" in out
    assert announce.read_marker(h.log.log) is None  # a dry run remembers nothing


def test_a_header_with_a_line_break_is_refused() -> None:
    settings = mail.SmtpSettings(host="mail.example", sender="a@example.org\nBcc: x@evil.example")
    with pytest.raises(ConfigError, match="announcement mail: .*line") as exc:
        mail.compose_message(settings, RECIPIENTS, "s", "b", key="k", date=day(0))
    assert "\n" not in exc.value.diagnostics()


def _self_signed(folder: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 (its own CA) and its key, written to ``folder``."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.now(UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - timedelta(days=1))
        .not_valid_after(now + timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(IPv4Address("127.0.0.1"))]), False
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = folder / "cert.pem", folder / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


def test_starttls_checks_the_servers_certificate(inbox: Inbox, tmp_path: Path) -> None:
    """A server that requires STARTTLS (and TLS before AUTH): the mail goes out when the
    server's certificate checks out against FORTNIGHT_SMTP_CAFILE, and not otherwise."""
    cert, key = _self_signed(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)
    inbox.controller = Controller(
        inbox,
        hostname="127.0.0.1",
        port=inbox.port,
        tls_context=server_tls,
        require_starttls=True,
        authenticator=inbox.authenticate,
        auth_require_tls=True,
    )
    inbox.controller.start()
    env = {
        mail.HOST_ENV: "127.0.0.1",
        mail.PORT_ENV: str(inbox.port),
        mail.USER_ENV: USER,
        mail.PASSWORD_ENV: PASSWORD,
        mail.CAFILE_ENV: str(cert),
    }
    settings = mail.settings_from_env(env)
    assert settings is not None and settings.starttls  # STARTTLS is the default
    message = mail.compose_message(settings, RECIPIENTS, "TLS", "over TLS", key="k", date=day(0))
    mail.send(settings, message)
    assert [m["Subject"] for _, m in inbox.mails] == ["TLS"] and inbox.logins == [USER]
    untrusted = mail.settings_from_env({k: v for k, v in env.items() if k != mail.CAFILE_ENV})
    assert untrusted is not None
    waits: list[float] = []
    with pytest.raises(MailError, match="SSLCertVerificationError") as exc:
        mail.send(untrusted, message, sleep=waits.append)
    assert waits == [] and len(inbox.mails) == 1  # not retried, not sent
    assert "\n" not in exc.value.diagnostics()
