"""``invoke listen`` against a real RabbitMQ (see ``conftest.py``).

``invoke listen`` runs as a real child process: real-shaped Pungi messages go in through the
broker, the operator tasks run, manifests land in a real git log, and the announcements are
read back from the broker. The classification and exit-code policy are also checked
in-process, without a broker.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from pipeline.adapters.bus.settings import BusSettings
from pipeline.stages import listen
from pipeline.stages.listen import OSTREE_TOPIC
from tests.conftest import ROOT, ComposeTree, Log, StaticServer
from tests.stages.conftest import (
    DEADLINE,
    FINISHED,
    MESSAGES,
    PUNGI_TOPIC,
    Broker,
    Bus,
)

CID = "Fedora-Atomic-28-20180515.1"
INVOKE = [sys.executable, "-m", "invoke", "--search-root", str(ROOT)]


@dataclass
class ListenerProc:
    """``invoke listen`` in its own process group, its output in a file."""

    proc: subprocess.Popen[bytes]
    out: Path

    def output(self) -> str:
        return self.out.read_text(errors="replace")

    def wait_for(self, pattern: str) -> None:
        deadline = time.monotonic() + DEADLINE
        while not re.search(pattern, self.output()):
            assert self.proc.poll() is None, f"the listener exited:\n{self.output()}"
            assert time.monotonic() < deadline, f"no {pattern!r} in:\n{self.output()}"
            time.sleep(0.1)

    def wait_done(self, msg_id: str) -> None:
        self.wait_for(rf"message {msg_id} \(.*(acknowledged|rejected)")


@pytest.fixture
def start_listener(tmp_path: Path) -> Iterator[Callable[[Log, Bus], ListenerProc]]:
    started: list[ListenerProc] = []

    def start(log: Log, b: Bus) -> ListenerProc:
        out = tmp_path / f"listener-{len(started)}.log"
        env = {k: v for k, v in os.environ.items() if not k.startswith("FORTNIGHT_")}
        env.update(log.env, COLUMNS="200", PYTHONUNBUFFERED="1")
        with out.open("wb") as f:
            proc = subprocess.Popen(
                [*INVOKE, "listen", "--config", str(b.config)],
                env=env,
                stdout=f,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        listener = ListenerProc(proc, out)
        started.append(listener)
        listener.wait_for("listening on")
        return listener

    yield start
    for listener in started:
        if listener.proc.poll() is None:
            os.killpg(listener.proc.pid, signal.SIGTERM)
            try:
                listener.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(listener.proc.pid, signal.SIGKILL)
                listener.proc.wait()


def product_toml(boots: str) -> bytes:
    """One x86_64 qcow2 image per compose; a battery of the real checksum check and ``boots``."""
    return f"""
name = "atomic-host"
display_name = "Fedora Atomic Host"
[base]
version = "28"
[release]
anchor = 2018-05-01
[images]
subvariants = ["AtomicHost"]
types = ["qcow2"]
arches = ["x86_64"]
[battery]
workers = 1
[battery.suites.smoke]
[[battery.suites.smoke.tests]]
name = "checksum"
command = "python -m pipeline.checks checksum"
[[battery.suites.smoke.tests]]
name = "boots"
command = '{boots}'
[tracker]
tag = "fortnight-atomic-host"
""".encode()


def finished(server: StaticServer, compose_id: str = CID) -> dict[str, Any]:
    """The real FINISHED body, about a compose served over HTTP."""
    body: dict[str, Any] = FINISHED["msg"]
    return body | {
        "compose_id": compose_id,
        "location": f"{server.url}{compose_id}/compose",
    }


def manifests(log: Log, kind: str) -> list[str]:
    root = log.repo / "manifests" / "atomic-host" / kind
    return sorted(str(p.relative_to(root)) for p in root.rglob("*.json"))


Compose = Callable[..., ComposeTree]


@pytest.fixture
def served(make_compose_tree: Compose, serve_dir: Any, tmp_path: Path) -> StaticServer:
    make_compose_tree(CID)
    return serve_dir(tmp_path / "composes")  # type: ignore[no-any-return]


# --- end to end, with a real broker -------------------------------------------------------------


def test_finished_message_records_tests_tracks_and_announces(
    make_log: Callable[..., Log],
    make_bus: Callable[[Log], Bus],
    start_listener: Callable[[Log, Bus], ListenerProc],
    served: StaticServer,
) -> None:
    log = make_log(product_toml=product_toml("exit 1"))
    b = make_bus(log)
    listener = start_listener(log, b)
    msg_id = b.publish(PUNGI_TOPIC, finished(served))
    listener.wait_done(msg_id)

    assert manifests(log, "composes") == [f"{CID}.json"]
    [result] = manifests(log, "tests")
    assert result.startswith(f"{CID}/smoke-")
    assert manifests(log, "trackers") == [f"local1-opened-{CID}.json"]
    assert f"message {msg_id} ({PUNGI_TOPIC}): done; acknowledged" in listener.output()
    got = {topic: body for topic, body, _ in b.receive(3)}
    assert sorted(got) == [
        f"{b.prefix}.atomic-host.compose.recorded",
        f"{b.prefix}.atomic-host.tests.complete",
        f"{b.prefix}.atomic-host.tracker.opened",
    ]
    recorded = got[f"{b.prefix}.atomic-host.compose.recorded"]
    assert recorded["compose_id"] == CID and recorded["outcome"] == "images"
    assert recorded["manifest"] == f"manifests/atomic-host/composes/{CID}.json"
    tests = got[f"{b.prefix}.atomic-host.tests.complete"]
    assert (tests["result"], tests["failed"], tests["failures"][0]["name"]) == (
        "FAILED",
        1,
        "boots",
    )
    assert got[f"{b.prefix}.atomic-host.tracker.opened"]["bug"] == "local1"
    assert b.queued() == 0


def test_doomed_is_recorded_and_malformed_messages_are_rejected_once(
    make_log: Callable[..., Log],
    make_bus: Callable[[Log], Bus],
    start_listener: Callable[[Log, Bus], ListenerProc],
    served: StaticServer,
) -> None:
    log = make_log(product_toml=product_toml("true"))
    b = make_bus(log)
    listener = start_listener(log, b)
    bad = [
        b.publish(PUNGI_TOPIC, None, raw=b"{not json"),
        b.publish(PUNGI_TOPIC, ["a", "list"]),
        b.publish(PUNGI_TOPIC, {"status": "FINISHED"}),
        b.publish(PUNGI_TOPIC, {"compose_id": CID, "status": "FINISHED", "location": "ftp://x/"}),
        b.publish(PUNGI_TOPIC, {"compose_id": "../../etc", "status": "DOOMED"}),
        b.publish(PUNGI_TOPIC, finished(served, "Fedora-Atomic-28-20180101.0")),  # 404
    ]
    doomed_id = "Fedora-Atomic-28-20180516.0"
    doomed = b.publish(
        PUNGI_TOPIC,
        {"compose_id": doomed_id, "status": "DOOMED", "location": f"{served.url}x/compose"},
    )
    listener.wait_done(doomed)

    assert manifests(log, "composes") == [f"{doomed_id}.json"]
    recorded = json.loads(
        (log.repo / f"manifests/atomic-host/composes/{doomed_id}.json").read_text()
    )
    assert recorded["signed"]["outcome"] == "no-image"
    assert recorded["signed"]["log_url"] == f"{served.url}x/logs/global/pungi.global.log"
    out = listener.output()
    for msg_id in bad:  # one line says it was dropped; it was never delivered twice
        lines = [line for line in out.splitlines() if msg_id in line]
        assert (
            sum("rejected, not requeued" in ln or "did not pass validation" in ln for ln in lines)
            == 1
        ), lines
        assert sum("Consuming message" in ln for ln in lines) <= 1, lines
    time.sleep(0.5)  # nothing comes back for another round
    assert b.queued() == 0
    assert out.count("rejected, not requeued") == listener.output().count("rejected, not requeued")
    topics = sorted(topic for topic, _, _ in b.receive(2))
    assert topics == [
        f"{b.prefix}.atomic-host.compose.recorded",
        f"{b.prefix}.atomic-host.tracker.opened",
    ]


def _task_pids(repo: Path, task: str) -> list[int]:
    """Processes running ``invoke TASK ... --repo REPO``."""
    pids = []
    for proc in Path("/proc").glob("[0-9]*"):
        try:
            argv = (proc / "cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if task.encode() in argv and str(repo).encode() in argv:
            pids.append(int(proc.name))
    return pids


def test_killed_listener_redelivers_and_records_exactly_once(
    make_log: Callable[..., Log],
    make_bus: Callable[[Log], Bus],
    start_listener: Callable[[Log, Bus], ListenerProc],
    served: StaticServer,
    tmp_path: Path,
) -> None:
    runs = tmp_path / "boots-runs"
    log = make_log(product_toml=product_toml(f"echo run >> {runs}; sleep 2"))
    b = make_bus(log)
    first = start_listener(log, b)
    body = finished(served)
    msg_id = b.publish(PUNGI_TOPIC, body)
    deadline = time.monotonic() + DEADLINE
    while not runs.exists():  # the battery is running: kill the consumer now
        assert time.monotonic() < deadline, first.output()
        time.sleep(0.05)
    first.proc.send_signal(signal.SIGKILL)
    first.proc.wait()
    deadline = time.monotonic() + 10
    while _task_pids(log.repo, "test.run"):  # its task died with it (no late commit)
        assert time.monotonic() < deadline, "test.run outlived the killed listener"
        time.sleep(0.05)
    assert manifests(log, "composes") == [f"{CID}.json"]
    assert manifests(log, "tests") == []

    second = start_listener(log, b)
    second.wait_done(msg_id)
    assert manifests(log, "composes") == [f"{CID}.json"]
    assert len(manifests(log, "tests")) == 1
    assert runs.read_text().count("run") == 2  # ran twice, recorded once
    assert "already recorded (no change)" in second.output()

    again = b.publish(PUNGI_TOPIC, body)  # a duplicate delivery is a no-op
    second.wait_done(again)
    assert len(manifests(log, "tests")) == 1
    assert runs.read_text().count("run") == 2
    assert "already has results for every suite" in second.output()
    assert len(log.commits()) == 3  # init (with the root), compose, test (a pass: no bug)


def test_listener_survives_a_broker_restart(
    make_log: Callable[..., Log],
    make_bus: Callable[[Log], Bus],
    start_listener: Callable[[Log, Bus], ListenerProc],
    broker: Broker,
) -> None:
    log = make_log(product_toml=product_toml("true"))
    b = make_bus(log)
    listener = start_listener(log, b)
    b.channel.connection.close()
    broker.ctl("stop_app")
    broker.ctl("start_app")
    broker.wait_up()
    listener.wait_for("Re-registering")
    conn = broker.connect()
    b.channel = conn.channel()
    try:
        b.inbox = b.channel.queue_declare("", exclusive=True).method.queue
        b.channel.queue_bind(b.inbox, "amq.topic", routing_key=f"{b.prefix}.#")
        msg_id = b.publish(
            PUNGI_TOPIC, {"compose_id": "Fedora-Atomic-28-20180517.0", "status": "DOOMED"}
        )
        listener.wait_done(msg_id)
        assert manifests(log, "composes") == ["Fedora-Atomic-28-20180517.0.json"]
        assert listener.proc.poll() is None
    finally:
        conn.close()


# --- in-process: classification, policy, bodies ------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("compose2.pungi.compose.status.change(FINISHED)", ("finished", "Fedora-24-20151208.n.7")),
        ("fedimg.TestImagePublish", ("cloud", "Fedora-Atomic-27-20180507.0")),
        ("fedimg.TestImageUploadComplete", None),
        ("compose2.pungi.compose.ostree", ("ostree", "Fedora-25-20161002.n.0")),
        ("autocloud.ComposeTestCompleted", None),
        ("releng.TestTwoWeekAtomicComplete", None),
    ],
)
def test_classify_real_messages(name: str, expected: tuple[str, str] | None) -> None:
    msg = MESSAGES[name]
    request = listen.classify(msg["topic"], msg["msg"])
    assert (request and (request.kind, request.compose_id)) == expected


@pytest.mark.parametrize(
    ("status", "kind"),
    [("FINISHED_INCOMPLETE", "finished"), ("DOOMED", "doomed"), ("STARTED", None)],
)
def test_classify_pungi_statuses(status: str, kind: str | None) -> None:
    request = listen.classify(PUNGI_TOPIC, FINISHED["msg"] | {"status": status})
    assert (request.kind if request else None) == kind


@pytest.mark.parametrize(
    "body",
    [
        {"status": "FINISHED"},
        {"compose_id": "../x", "status": "DOOMED"},
        {"compose_id": CID, "status": "FINISHED"},
        {"compose_id": CID, "status": "FINISHED", "location": "/mnt/koji/compose"},
        "a string",
    ],
)
def test_classify_rejects_unusable_bodies(body: Any) -> None:
    with pytest.raises(listen.BadMessage):
        listen.classify(PUNGI_TOPIC, body)


@pytest.mark.parametrize(
    ("code", "expected"),
    [(0, "done"), (2, "halt"), (4, "halt"), (3, "reject"), (5, "reject")]
    + [(c, "retry") for c in (1, 6, 7, 8, 9, 130, -9)],
)
def test_disposition_of_exit_codes(code: int, expected: str) -> None:
    assert listen.disposition(code) == expected


def test_ostree_messages_feed_compose_record(
    make_log: Callable[..., Log], make_compose_tree: Callable[..., Any]
) -> None:
    """Pungi's per-arch OSTree messages are kept (across restarts) and passed to
    compose.record as --ostree-commit when the compose finishes."""
    toml = (ROOT / "manifests/atomic-host/product.toml").read_bytes() + b"\n[ostree]\n"
    log = make_log("log", toml)
    ran: list[list[str]] = []

    def run(args: Any) -> int:
        ran.append(list(args))
        return 0

    def listener() -> listen.Listener:
        return listen.Listener(
            log.log,
            [listen.Route("atomic-host", ("Fedora-28-*",))],
            BusSettings(),
            run,
            announce_args=None,
        )

    real = MESSAGES["compose2.pungi.compose.ostree"]["msg"]
    tree = make_compose_tree("Fedora-28-20180425.0")
    cid = "Fedora-28-20180425.0"
    for arch, digit in (("x86_64", "a"), ("aarch64", "b")):
        body = real | {"compose_id": cid, "arch": arch, "commitid": digit * 64}
        listener().handle(f"m-{arch}", "org.fedoraproject.prod.pungi.compose.ostree", body)
    assert ran == []  # nothing to record before the compose finishes
    with pytest.raises(listen.BadMessage, match="commitid"):
        listen.classify(OSTREE_TOPIC, real | {"commitid": "xyz"})
    location = str(tree.root / "compose")
    listener()._finished(listen.Request("finished", cid, location, "FINISHED"), "m")
    record = ran[0]
    assert record[0] == "compose.record"
    start = record.index("--ostree-commit")
    assert record[start : start + 4] == [
        "--ostree-commit",
        f"aarch64={'b' * 64}",
        "--ostree-commit",
        f"x86_64={'a' * 64}",
    ]


def test_listener_maps_task_failures_to_the_broker(make_log: Callable[..., Log]) -> None:
    """Retry sleeps with backoff then requeues; halt and reject do not sleep."""
    from fedora_messaging.exceptions import Drop, HaltConsumer, Nack  # noqa: PLC0415

    log = make_log()
    codes: list[int] = []
    sleeps: list[float] = []
    ran: list[list[str]] = []

    def run(args: Any) -> int:
        ran.append(list(args))
        return codes.pop(0)

    settings = BusSettings(retry_delay=1.0, retry_max_delay=3.0)
    listener = listen.Listener(
        log.log,
        [listen.Route("atomic-host", ("Fedora-Atomic-*",))],
        settings,
        run,
        announce_args=["announce"],
        sleep=sleeps.append,
    )
    body = {"compose_id": CID, "status": "DOOMED"}
    for expected_sleep in (1.0, 2.0, 3.0):
        codes[:] = [6, 0]  # the task fails (git), announce succeeds
        with pytest.raises(Nack):
            listener.handle("m1", PUNGI_TOPIC, body)
        assert sleeps[-1] == expected_sleep
    codes[:] = [2, 0]
    with pytest.raises(HaltConsumer) as halt:
        listener.handle("m1", PUNGI_TOPIC, body)
    assert (halt.value.requeue, halt.value.exit_code) == (True, 2)
    codes[:] = [3, 0]
    with pytest.raises(Drop):
        listener.handle("m2", PUNGI_TOPIC, body)
    assert len(sleeps) == 3
    assert ran[0][:4] == ["compose.record", "--failed", "--compose-id", CID]
    assert ran[1] == ["announce"]  # announced even when the message is requeued
