"""The RabbitMQ node the bus tests share (Debian's ``rabbitmq-server``, on loopback ports).

``broker`` starts one node per test session, only when a test asks for it; ``make_bus``
gives each test its own queue, topic prefix and announcement inbox on it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pika
import pytest

from tests.conftest import FIXTURES, Log

MESSAGES = json.loads((FIXTURES / "fedmsg-meta-tests-message-examples.json").read_text())
FINISHED = MESSAGES["compose2.pungi.compose.status.change(FINISHED)"]
PUBLISH = MESSAGES["fedimg.TestImagePublish"]
PUNGI_TOPIC = FINISHED["topic"]
DEADLINE = 60.0

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
        "(apt-get install rabbitmq-server); invoke ci does"
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
