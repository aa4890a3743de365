"""The message bus against a real RabbitMQ (Debian's ``rabbitmq-server``, on a loopback port).

``invoke listen`` runs as a real child process: real-shaped Pungi messages go in through the
broker, the operator tasks run, manifests land in a real git log, and the announcements are
read back from the broker. The classification, exit-code policy and message bodies are also
checked in-process, without a broker.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pika
import pytest
from fedora_messaging.exceptions import PublishTimeout
from fedora_messaging.message import Message

from pipeline.core.models.manifests import ComposeManifest, ReleaseManifest
from pipeline.errors import BusError
from pipeline.stages import bus
from tests.conftest import FIXTURES, ROOT, ComposeTree, Log, StaticServer, run_invoke
from tests.sitekit import History, day, scenario_stale

MESSAGES = json.loads((FIXTURES / "fedmsg-meta-tests-message-examples.json").read_text())
FINISHED = MESSAGES["compose2.pungi.compose.status.change(FINISHED)"]
PUBLISH = MESSAGES["fedimg.TestImagePublish"]
PUNGI_TOPIC = FINISHED["topic"]
CID = "Fedora-Atomic-28-20180515.1"
DEADLINE = 60.0
INVOKE = [sys.executable, "-m", "invoke", "--search-root", str(ROOT)]

# --- the broker -------------------------------------------------------------------------------


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _server_script() -> str:
    """Debian's real script (the /usr/sbin wrapper re-runs it through 'su rabbitmq')."""
    for candidate in ("/usr/lib/rabbitmq/bin/rabbitmq-server", shutil.which("rabbitmq-server")):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    pytest.fail(
        "the bus tests need a real RabbitMQ: install Debian's rabbitmq-server "
        "(apt-get install rabbitmq-server); .ci/run does"
    )


@dataclass
class Broker:
    """A RabbitMQ node of this test session."""

    port: int
    env: dict[str, str]
    base: Path

    @property
    def url(self) -> str:
        return f"amqp://guest:guest@127.0.0.1:{self.port}/%2F"

    def connect(self) -> pika.BlockingConnection:
        params = pika.URLParameters(self.url + "?connection_attempts=1&socket_timeout=2")
        return pika.BlockingConnection(params)

    def ctl(self, *args: str) -> None:
        ctl = Path(_server_script()).with_name("rabbitmqctl")
        subprocess.run([str(ctl), *args], env=self.env, check=True, capture_output=True)

    def wait_up(self, proc: subprocess.Popen[bytes] | None = None) -> None:
        deadline = time.monotonic() + DEADLINE
        while True:
            try:
                self.connect().close()
                return
            except pika.exceptions.AMQPError:
                if (proc is not None and proc.poll() is not None) or time.monotonic() > deadline:
                    log = (self.base / "server.log").read_text(errors="replace")[-3000:]
                    pytest.fail(f"rabbitmq-server did not start:\n{log}")
                time.sleep(0.3)


@pytest.fixture(scope="session")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """rabbitmq-server as a child process on free loopback ports; stopped at the end."""
    script = _server_script()
    base = tmp_path_factory.mktemp("rabbitmq")
    (base / "home").mkdir()
    (base / "enabled_plugins").write_text("[].\n")
    epmd_port = _free_port()
    env = {
        **os.environ,
        "HOME": str(base / "home"),  # the Erlang cookie
        "RABBITMQ_NODENAME": f"rabbit-fortnight-{os.getpid()}@localhost",
        "RABBITMQ_NODE_IP_ADDRESS": "127.0.0.1",
        "RABBITMQ_NODE_PORT": str(_free_port()),
        "RABBITMQ_DIST_PORT": str(_free_port()),
        "ERL_EPMD_PORT": str(epmd_port),
        "ERL_EPMD_ADDRESS": "127.0.0.1",
        "RABBITMQ_MNESIA_BASE": str(base / "mnesia"),
        "RABBITMQ_LOG_BASE": str(base / "log"),
        "RABBITMQ_ENABLED_PLUGINS_FILE": str(base / "enabled_plugins"),
        "RABBITMQ_CONFIG_FILE": str(base / "rabbitmq"),
        "RABBITMQ_ADVANCED_CONFIG_FILE": str(base / "advanced.config"),
        "RABBITMQ_CONF_ENV_FILE": str(base / "rabbitmq-env.conf"),
        "RABBITMQ_PID_FILE": str(base / "rabbitmq.pid"),
        "RABBITMQ_SERVER_ADDITIONAL_ERL_ARGS": "-kernel inet_dist_use_interface {127,0,0,1}",
    }
    node = Broker(port=int(env["RABBITMQ_NODE_PORT"]), env=env, base=base)
    with (base / "server.log").open("wb") as out:
        proc = subprocess.Popen(
            [script], env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        node.wait_up(proc)
        yield node
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        epmd = shutil.which("epmd") or next(iter(Path("/usr/lib/erlang").glob("erts-*/bin/epmd")))
        subprocess.run([str(epmd), "-kill"], env=env, capture_output=True, check=False)


# --- a test's configuration, its listener, and what it publishes and receives ------------------


@dataclass
class Bus:
    """One test's slice of the broker: its queue, topic prefix and announcement inbox."""

    broker: Broker
    config: Path
    queue: str
    prefix: str
    channel: Any
    inbox: str
    received: list[tuple[str, dict[str, Any], str]] = field(default_factory=list)

    def publish(self, topic: str, body: Any, *, raw: bytes | None = None) -> str:
        """Publish as a fedora-messaging publisher does; return the message id."""
        msg_id = str(uuid.uuid4())
        props = pika.BasicProperties(
            content_type="application/json",
            content_encoding="utf-8",
            delivery_mode=2,
            message_id=msg_id,
            headers={
                "fedora_messaging_schema": "base.message",
                "fedora_messaging_severity": 20,
                "sent-at": "2018-05-15T06:00:00+00:00",
            },
        )
        data = raw if raw is not None else json.dumps(body).encode()
        self.channel.basic_publish("amq.topic", topic, data, props)
        return msg_id

    def receive(self, count: int) -> list[tuple[str, dict[str, Any], str]]:
        """Wait for ``count`` more announcements; return all received so far."""
        want = len(self.received) + count
        deadline = time.monotonic() + DEADLINE
        while len(self.received) < want:
            method, props, body = self.channel.basic_get(self.inbox, auto_ack=True)
            if method is None:
                assert time.monotonic() < deadline, f"announcements so far: {self.received}"
                time.sleep(0.1)
                continue
            self.received.append((method.routing_key, json.loads(body), props.message_id))
        return self.received

    def queued(self) -> int:
        return int(self.channel.queue_declare(self.queue, passive=True).method.message_count)


@pytest.fixture
def make_bus(broker: Broker, tmp_path: Path) -> Iterator[Callable[[Log], Bus]]:
    """Factory: a fedora-messaging config for ``log`` (unique queue and prefix), and an
    inbox queue bound to the prefix's announcements."""
    connections: list[pika.BlockingConnection] = []

    def make(log: Log) -> Bus:
        tag = uuid.uuid4().hex[:8]
        queue, prefix = f"fortnight-{tag}", f"t{tag}"
        config = tmp_path / f"bus-{tag}.toml"
        config.write_text(
            f"""
amqp_url = "{broker.url}"
[queues.{queue}]
durable = true
auto_delete = false
exclusive = false
arguments = {{}}
[[bindings]]
queue = "{queue}"
exchange = "amq.topic"
routing_keys = ["{PUNGI_TOPIC}", "{PUBLISH["topic"]}"]
[qos]
prefetch_size = 0
prefetch_count = 1
[consumer_config]
repo = "{log.repo}"
topic_prefix = "{prefix}"
retry_delay = 0.2
retry_max_delay = 1.0
reconnect_max_delay = 2.0
publish_timeout = 5
[consumer_config.products.atomic-host]
compose_ids = ["Fedora-Atomic-*"]
"""
        )
        conn = broker.connect()
        connections.append(conn)
        channel = conn.channel()
        inbox = channel.queue_declare("", exclusive=True).method.queue
        channel.queue_bind(inbox, "amq.topic", routing_key=f"{prefix}.#")
        return Bus(broker, config, queue, prefix, channel, inbox)

    yield make
    for conn in connections:
        if conn.is_open:
            conn.close()


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
    assert len(log.commits()) == 4  # init, trust, compose, test (a pass opens no bug)


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


def test_announce_since_resends(
    make_history: Callable[..., History], make_bus: Callable[[Log], Bus]
) -> None:
    h = make_history()
    first = h.log.git("rev-parse", "HEAD").strip()
    h.compose(day(-1))
    h.cut(day(0, 12))
    b = make_bus(h.log)
    bus.write_marker(h.log.log, first)  # a listener announced everything before this

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
    assert bus.read_marker(h.log.log) == h.log.git("rev-parse", "HEAD").strip()

    again = run_invoke("announce", "--since", first, "--config", str(b.config), env=h.log.env)
    assert again.returncode == 0, again.stderr
    assert "announced: " in again.stdout
    resent = b.receive(3)[3:]
    assert [m for _, _, m in resent] == [m for _, _, m in got]  # same ids: consumers can dedupe


# --- in-process: classification, policy, bodies ------------------------------------------------


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("compose2.pungi.compose.status.change(FINISHED)", ("finished", "Fedora-24-20151208.n.7")),
        ("fedimg.TestImagePublish", ("cloud", "Fedora-Atomic-27-20180507.0")),
        ("fedimg.TestImageUploadComplete", None),
        ("compose2.pungi.compose.ostree", None),
        ("autocloud.ComposeTestCompleted", None),
        ("releng.TestTwoWeekAtomicComplete", None),
    ],
)
def test_classify_real_messages(name: str, expected: tuple[str, str] | None) -> None:
    msg = MESSAGES[name]
    request = bus.classify(msg["topic"], msg["msg"])
    assert (request and (request.kind, request.compose_id)) == expected


@pytest.mark.parametrize(
    ("status", "kind"),
    [("FINISHED_INCOMPLETE", "finished"), ("DOOMED", "doomed"), ("STARTED", None)],
)
def test_classify_pungi_statuses(status: str, kind: str | None) -> None:
    request = bus.classify(PUNGI_TOPIC, FINISHED["msg"] | {"status": status})
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
    with pytest.raises(bus.BadMessage):
        bus.classify(PUNGI_TOPIC, body)


@pytest.mark.parametrize(
    ("code", "expected"),
    [(0, "done"), (2, "halt"), (4, "halt"), (3, "reject"), (5, "reject")]
    + [(c, "retry") for c in (1, 6, 7, 8, 9, 130, -9)],
)
def test_disposition_of_exit_codes(code: int, expected: str) -> None:
    assert bus.disposition(code) == expected


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

    settings = bus.BusSettings(retry_delay=1.0, retry_max_delay=3.0)
    listener = bus.Listener(
        log.log,
        [bus.Route("atomic-host", ("Fedora-Atomic-*",))],
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


def test_announce_every_kind_and_resume_after_a_failed_publish(
    make_history: Callable[..., History],
) -> None:
    h = make_history()
    first = h.log.git("rev-parse", "HEAD").strip()
    scenario_stale(h)  # a release, failing composes and their bug, a stale cycle
    h.revoke("2018-05-01", "does not boot on EC2", day(15))
    log = h.log.log
    settings = bus.BusSettings(topic_prefix="org.example.fortnight")
    sent: list[Message] = []
    bus.write_marker(log, first)
    report = bus.announce(log, settings, publish=sent.append, since=None)

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
    assert bus.read_marker(log) == report.head

    def down(msg: Message) -> None:
        raise PublishTimeout("broker down")

    h.compose(day(30))
    with pytest.raises(BusError, match="after 3 tries"):
        bus.announce(log, settings, publish=down, sleep=lambda s: None)
    assert bus.read_marker(log) == report.head  # nothing was lost: the next run re-sends
    later: list[Message] = []
    bus.announce(log, settings, publish=later.append)
    assert [m.topic.rsplit(".", 2)[-2:] for m in later] == [
        ["compose", "recorded"],
        ["tests", "complete"],
    ]


def test_message_bodies_and_docs_agree() -> None:
    doc = (ROOT / "docs" / "bus.md").read_text()
    for name, cls in bus.MESSAGE_CLASSES.items():
        assert f'"{name}" = "pipeline.stages.bus:{cls.__name__}"' in doc
        assert cls.TOPIC in doc
        for prop in cls.body_schema["properties"]:
            assert f"`{prop}`" in doc, (name, prop)


def test_first_announce_starts_at_head(make_log: Callable[..., Log]) -> None:
    log = make_log()
    sent: list[Message] = []
    report = bus.announce(log.log, bus.BusSettings(), publish=sent.append)
    assert (report.since, sent) == (None, [])
    assert bus.read_marker(log.log) == log.git("rev-parse", "HEAD").strip()


def test_release_manifests_make_release_or_stale_messages(
    make_history: Callable[..., History],
) -> None:
    h = make_history()
    h.compose(day(-1))
    h.cut(day(0, 12))
    log = h.log.log
    trust = log.load_trust()
    builder = bus.MessageBuilder(log, trust, bus.BusSettings(site_url="https://f.example/"))
    rel = next(
        v.manifest for v in log.load_verified(trust) if isinstance(v.manifest, ReleaseManifest)
    )
    msg = builder.build(rel, bus.Added("0" * 40, rel.relpath()))
    assert isinstance(msg, bus.ReleasePublished)
    assert msg.body["stream"]["release"]["manifest"].startswith("https://f.example/manifests/")
    compose = next(
        v.manifest for v in log.load_verified(trust) if isinstance(v.manifest, ComposeManifest)
    )
    assert isinstance(
        builder.build(compose, bus.Added("0" * 40, compose.relpath())), bus.ComposeRecorded
    )
