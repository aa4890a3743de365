"""``invoke announce``: every kind of manifest becomes its message, exactly once per run.

The in-process tests publish into a list; ``test_announce_since_resends`` runs the task
against the real RabbitMQ of ``conftest.py``.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from fedora_messaging.exceptions import PublishTimeout
from fedora_messaging.message import Message

from pipeline.adapters.bus.messages import ComposeRecorded, ReleasePublished
from pipeline.adapters.bus.settings import BusSettings
from pipeline.core.models.manifests import ComposeManifest, ReleaseManifest
from pipeline.errors import BusError
from pipeline.stages import announce
from tests.conftest import Log, run_invoke
from tests.sitekit import History, day, scenario_stale
from tests.stages.conftest import Bus


def test_announce_since_resends(
    make_history: Callable[..., History], make_bus: Callable[[Log], Bus]
) -> None:
    h = make_history()
    first = h.log.git("rev-parse", "HEAD").strip()
    h.compose(day(-1))
    h.cut(day(0, 12))
    b = make_bus(h.log)
    announce.write_marker(h.log.log, first)  # a listener announced everything before this

    sent = run_invoke("announce", "--config", str(b.config), env=h.log.env)
    assert sent.returncode == 0, sent.stderr
    got = list(b.receive(3))
    assert [t.split(".", 2)[2] for t, _, _ in got] == [
        "compose.recorded",
        "tests.complete",
        "release.published",
    ]
    release = got[2][1]
    assert release["stream"]["release"]["id"] == "2018-05-01"
    assert release["stream"]["architectures"]["x86_64"]["artifacts"]
    assert announce.read_marker(h.log.log) == h.log.git("rev-parse", "HEAD").strip()

    again = run_invoke("announce", "--since", first, "--config", str(b.config), env=h.log.env)
    assert again.returncode == 0, again.stderr
    assert "announced: " in again.stdout
    resent = b.receive(3)[3:]
    assert [m for _, _, m in resent] == [m for _, _, m in got]  # same ids: consumers can dedupe


def test_announce_every_kind_and_resume_after_a_failed_publish(
    make_history: Callable[..., History],
) -> None:
    h = make_history()
    first = h.log.git("rev-parse", "HEAD").strip()
    scenario_stale(h)  # a release, failing composes and their bug, a stale cycle
    h.revoke("2018-05-01", "does not boot on EC2", day(15))
    log = h.log.log
    settings = BusSettings(topic_prefix="org.example.fortnight")
    sent: list[Message] = []
    announce.write_marker(log, first)
    report = announce.announce(log, settings, publish=sent.append, since=None)

    topics = {m.topic.removeprefix("org.example.fortnight.atomic-host.") for m in sent}
    assert topics == {
        "compose.recorded",
        "tests.complete",
        "tracker.opened",
        "tracker.commented",
        "release.published",
        "cycle.stale",
        "release.withdrawn",
    }
    for m in sent:
        m.validate()  # each body matches its class's JSON schema
        assert m.summary.startswith("atomic-host: ")
    assert report.rejected == []
    assert announce.read_marker(log) == report.head

    def down(msg: Message) -> None:
        raise PublishTimeout("broker down")

    h.compose(day(30))
    with pytest.raises(BusError, match="after 3 tries"):
        announce.announce(log, settings, publish=down, sleep=lambda s: None)
    assert announce.read_marker(log) == report.head  # nothing was lost: the next run re-sends
    later: list[Message] = []
    announce.announce(log, settings, publish=later.append)
    assert [m.topic.rsplit(".", 2)[-2:] for m in later] == [
        ["compose", "recorded"],
        ["tests", "complete"],
    ]


def test_first_announce_starts_at_head(make_log: Callable[..., Log]) -> None:
    log = make_log()
    sent: list[Message] = []
    report = announce.announce(log.log, BusSettings(), publish=sent.append)
    assert (report.since, sent) == (None, [])
    assert announce.read_marker(log.log) == log.git("rev-parse", "HEAD").strip()


def test_release_manifests_make_release_or_stale_messages(
    make_history: Callable[..., History],
) -> None:
    h = make_history()
    h.compose(day(-1))
    h.cut(day(0, 12))
    log = h.log.log
    trust = log.load_trust()
    builder = announce.MessageBuilder(log, trust, BusSettings(site_url="https://f.example/"))
    rel = next(
        v.manifest for v in log.load_verified(trust) if isinstance(v.manifest, ReleaseManifest)
    )
    msg = builder.build(rel, announce.Added("0" * 40, rel.relpath()))
    assert isinstance(msg, ReleasePublished)
    assert msg.body["stream"]["release"]["manifest"].startswith("https://f.example/manifests/")
    compose = next(
        v.manifest for v in log.load_verified(trust) if isinstance(v.manifest, ComposeManifest)
    )
    assert isinstance(
        builder.build(compose, announce.Added("0" * 40, compose.relpath())), ComposeRecorded
    )
