"""The message bus (fedora-messaging over AMQP): a trigger in, announcements out.

Inbound, ``invoke listen`` consumes Pungi's ``pungi.compose.status.change`` and fedimg's
``image.publish`` messages and runs the *same operator tasks* an operator would, as child
processes (``invoke compose.record``, ``test.run``, ``tracker.sync``, ``cloud.discover``).
Each task's documented exit code decides what happens to the message: done (acknowledged),
rejected without requeue (bad input: it would fail the same way again), requeued after a
backoff (git, tracker, cloud or a crash: transient), or the consumer halts (configuration or a
log that fails verification: an operator must act). A message is acknowledged only after its
tasks returned, so their commits (and pushes) are in: at-least-once. Tasks are idempotent, and
a test battery runs only for suites with no results yet, so a redelivery is a no-op.

Outbound, :func:`announce` publishes one message per manifest added to the log since the last
announced commit, remembered outside the work tree (``.git/fortnight-announced``). Publishing
happens after the commit, is retried, and never undoes or blocks one; ``invoke announce
--since REV`` re-sends. The bodies are :class:`FortnightMessage` subclasses with JSON schemas
(see ``docs/bus.md``).

The git log stays the source of truth: a lost message is recovered by re-running a task or
``invoke announce``, never by the bus.
"""

from __future__ import annotations

import fcntl
import fnmatch
import logging
import math
import os
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path, PurePosixPath
from typing import Annotated, Any, ClassVar, Literal

from fedora_messaging import config as fm_config
from fedora_messaging import message as fm_message
from fedora_messaging.exceptions import (
    BaseException as FedoraMessagingError,
)
from fedora_messaging.exceptions import (
    ConfigurationException,
    Drop,
    HaltConsumer,
    Nack,
)
from fedora_messaging.exceptions import ValidationError as MessageValidationError
from fedora_messaging.message import Message
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeline.adapters.ingest import http_session, is_url, iter_images, load_compose
from pipeline.core.config import ProductConfig, load_product
from pipeline.core.models.common import (
    ComposeId,
    Manifest,
    ProductName,
    StrictModel,
    format_timestamp,
)
from pipeline.core.models.manifests import (
    KIND_BY_DIRECTORY,
    ComposeManifest,
    ReleaseManifest,
    ResultManifest,
    RevocationManifest,
    TrackerEventManifest,
)
from pipeline.core.pages import stream
from pipeline.core.state import derive
from pipeline.errors import (
    BusError,
    ConfigError,
    FortnightError,
    InputError,
    describe_validation_error,
)
from pipeline.fsutil import atomic_write
from pipeline.log.signing import ManifestRejected, verify_manifest
from pipeline.log.store import ManifestLog
from pipeline.stages.battery import plan_suites
from pipeline.stages.load import load_state

logger = logging.getLogger(__name__)

#: The file that remembers the last announced commit, in the repository's git dir.
MARKER_FILE = "fortnight-announced"
#: The shipped example configuration, the last default of ``--config``.
EXAMPLE_CONFIG = "fedora-messaging.toml.example"
#: Pungi's statuses that mean "the compose is there": record, test, track.
FINISHED = frozenset({"FINISHED", "FINISHED_INCOMPLETE"})
DOOMED = "DOOMED"
PUNGI_TOPIC = "pungi.compose.status.change"
FEDIMG_TOPIC = "fedimg.image.publish"


# --- configuration ---------------------------------------------------------------------


class ProductRoute(StrictModel):
    """``[consumer_config.products.<name>]``: which composes a product listens for."""

    #: fnmatch patterns of compose ids (``Fedora-Atomic-*``). A FINISHED compose that
    #: matches is then checked against the product's ``[images]`` selection; a DOOMED one
    #: (no metadata to check) is recorded only when a pattern is set and matches.
    compose_ids: list[str] | None = None


TopicPrefix = Annotated[str, Field(pattern=r"^[a-z0-9_-]+(\.[a-z0-9_-]+)*$")]


class BusSettings(StrictModel):
    """``[consumer_config]`` of the fedora-messaging TOML file: Fortnight's own options."""

    repo: str | None = None
    topic_prefix: TopicPrefix = "fortnight"
    products: dict[ProductName, ProductRoute] = Field(default_factory=dict)
    verify_checksums: bool = False
    ec2_endpoint_url: str | None = None
    site_url: str = ""
    #: Requeue backoff: ``retry_delay * 2**(attempt-1)`` seconds, at most ``retry_max_delay``.
    retry_delay: Annotated[float, Field(ge=0)] = 5.0
    retry_max_delay: Annotated[float, Field(ge=0)] = 300.0
    #: Longest wait between two attempts to reconnect to the broker.
    reconnect_max_delay: Annotated[float, Field(gt=0)] = 60.0
    #: Another fedora-messaging file for publishing announcements (e.g. when consuming
    #: from Fedora's read-only public broker); default: this file.
    announce_config: str | None = None
    publish_attempts: Annotated[int, Field(ge=1)] = 3
    publish_timeout: Annotated[int, Field(ge=1)] = 10


def config_path(option: str | None, env: Mapping[str, str], root: Path) -> Path:
    """``--config``, else ``$FEDORA_MESSAGING_CONF``, else the shipped example."""
    return Path(option or env.get("FEDORA_MESSAGING_CONF") or root / EXAMPLE_CONFIG).resolve()


def load_settings(path: Path) -> BusSettings:
    """Load fedora-messaging's configuration from ``path`` (into its global ``conf``, as
    fedora-messaging works) and return Fortnight's ``[consumer_config]``.

    Raises:
        ConfigError: the file is missing, not valid TOML, or fedora-messaging or
            ``[consumer_config]`` rejects it.
    """
    if not path.is_file():
        raise ConfigError(
            f"{path}: not found",
            hint=f"pass --config or set FEDORA_MESSAGING_CONF; start from {EXAMPLE_CONFIG}",
        )
    try:
        fm_config.conf.load_config(str(path))
    except ConfigurationException as e:
        raise ConfigError(f"{path}: {e.message}") from e
    try:
        return BusSettings.model_validate(fm_config.conf["consumer_config"], strict=True)
    except ValidationError as e:
        raise ConfigError(
            f"{path}: [consumer_config]: {describe_validation_error(e)}",
            hint="see docs/bus.md",
        ) from e


@dataclass(frozen=True)
class Route:
    """A product the listener works for, and the compose ids it considers."""

    product: str
    compose_ids: tuple[str, ...] | None

    def considers(self, compose_id: str, *, doomed: bool) -> bool:
        """Whether a compose may be this product's (FINISHED: the image selection decides)."""
        if self.compose_ids is None:
            return not doomed
        return any(fnmatch.fnmatchcase(compose_id, p) for p in self.compose_ids)


def routes(settings: BusSettings, product: str | None, log_products: Sequence[str]) -> list[Route]:
    """``--product``, else the products of ``[consumer_config.products]``, else every product.

    Raises:
        ConfigError: there is no product to listen for.
    """
    names = [product] if product else list(settings.products) or list(log_products)
    if not names:
        raise ConfigError("no product to listen for", hint="pass --product or run 'invoke init'")
    out = []
    for name in names:
        route = settings.products.get(name, ProductRoute())
        patterns = tuple(route.compose_ids) if route.compose_ids is not None else None
        out.append(Route(name, patterns))
    return out


# --- inbound: what a message asks for ---------------------------------------------------


class BadMessage(InputError):
    """A message on a topic Fortnight handles, with a body it cannot use."""


class _PungiStatus(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    compose_id: ComposeId
    status: Annotated[str, Field(min_length=1)]
    location: str | None = None


class _ComposeRef(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    compose_id: ComposeId


class _FedimgPublish(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    #: ``image.publish`` carries the id; ``image.upload`` a ``{"compose_id": …}`` object.
    compose: ComposeId | _ComposeRef


@dataclass(frozen=True)
class Request:
    """What a message asks of Fortnight."""

    kind: Literal["finished", "doomed", "cloud"]
    compose_id: str
    location: str | None = None
    status: str = ""

    def log_url(self) -> str | None:
        """Pungi's global log, next to the ``compose/`` folder of ``location``."""
        if not self.location:
            return None
        root = self.location.rstrip("/").removesuffix("/compose")
        return f"{root}/logs/global/pungi.global.log"


def _on_topic(topic: str, name: str) -> bool:
    """Whether ``topic`` is ``name`` under any prefix (``org.fedoraproject.prod.``…)."""
    return topic == name or topic.endswith("." + name)


def _describe(e: ValidationError) -> str:
    return describe_validation_error(e)


def classify(topic: str, body: object) -> Request | None:
    """What a message asks for; None when it is not for Fortnight (other topic or status).

    Raises:
        BadMessage: the message is on a topic Fortnight handles but its body is unusable.
    """
    if _on_topic(topic, PUNGI_TOPIC):
        try:
            msg = _PungiStatus.model_validate(body)
        except ValidationError as e:
            raise BadMessage(f"{PUNGI_TOPIC} body: {_describe(e)}") from e
        if msg.status in FINISHED:
            if not msg.location or not is_url(msg.location):
                raise BadMessage(
                    f"{PUNGI_TOPIC} {msg.status} for {msg.compose_id}: location "
                    f"{msg.location!r} is not an http(s) URL"
                )
            return Request("finished", msg.compose_id, msg.location, msg.status)
        if msg.status == DOOMED:
            location = msg.location if msg.location and is_url(msg.location) else None
            return Request("doomed", msg.compose_id, location, msg.status)
        return None  # STARTED, TERMINATED: nothing to record
    if _on_topic(topic, FEDIMG_TOPIC):
        try:
            fedimg = _FedimgPublish.model_validate(body)
        except ValidationError as e:
            raise BadMessage(f"{FEDIMG_TOPIC} body: {_describe(e)}") from e
        ref = fedimg.compose
        return Request("cloud", ref if isinstance(ref, str) else ref.compose_id)
    return None


Disposition = Literal["done", "reject", "retry", "halt"]


def disposition(exit_code: int) -> Disposition:
    """What a task's exit code means for the message (see the README's exit codes).

    0 done; 2 (configuration) and 4 (a manifest fails verification) halt the consumer, an
    operator must act; 3 (bad input, compose not found after the task's retries) and 5 (a
    conflicting manifest) reject without requeue, they would fail again; everything else (6 git,
    7 tracker, 8 cloud, a crash, a signal) is transient: requeue after a backoff.
    """
    if exit_code == 0:
        return "done"
    if exit_code in (2, 4):
        return "halt"
    if exit_code in (3, 5):
        return "reject"
    return "retry"


# --- inbound: running the operator tasks -------------------------------------------------

TaskRunner = Callable[[Sequence[str]], int]

# The child asks the kernel to SIGKILL it when the listener dies (PR_SET_PDEATHSIG), so a
# killed listener leaves no task behind to commit after the message was redelivered.
_CHILD_BOOT = """\
import ctypes, os, signal, sys
if sys.platform == "linux":
    ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
    if os.getppid() != int(sys.argv[1]):
        sys.exit(137)
os.execv(sys.executable, [sys.executable, *sys.argv[2:]])
"""


@dataclass(frozen=True)
class InvokeRunner:
    """Runs ``invoke ARGS`` on the project's tasks.py in a child process; returns its exit code.

    Its output goes to the listener's own stdout and stderr (the service's journal).
    """

    root: Path
    env: Mapping[str, str]

    def __call__(self, args: Sequence[str]) -> int:
        cmd = [sys.executable, "-c", _CHILD_BOOT, str(os.getpid()), "-m", "invoke"]
        cmd += ["--search-root", str(self.root), *args]
        sys.stdout.flush()
        return subprocess.run(
            cmd, env=dict(self.env), stdin=subprocess.DEVNULL, check=False
        ).returncode


class _StepFailed(Exception):
    def __init__(self, what: str, code: int) -> None:
        super().__init__(f"{what} exited {code}")
        self.what = what
        self.code = code


class Listener:
    """The fedora-messaging callback: one message at a time, through the operator tasks.

    Raises (to fedora-messaging, which acts on them): ``Drop`` (rejected, not requeued),
    ``Nack`` (requeued, after a backoff sleep), ``HaltConsumer`` (requeued, the consumer stops).
    """

    def __init__(
        self,
        log: ManifestLog,
        routes: Sequence[Route],
        settings: BusSettings,
        run: TaskRunner,
        *,
        announce_args: Sequence[str] | None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.log = log
        self.routes = list(routes)
        self.settings = settings
        self.run = run
        self.announce_args = list(announce_args) if announce_args is not None else None
        self.sleep = sleep
        self.clock = clock
        self._lock = threading.Lock()
        self._attempts: dict[str, int] = {}
        self._ran = False

    def __call__(self, message: Message) -> None:
        with self._lock:
            self.handle(str(message.id), message.topic, message.body)

    def handle(self, msg_id: str, topic: str, body: object) -> None:
        """Handle one message; return normally to acknowledge it."""
        where = f"message {msg_id} ({topic})"
        try:
            request = classify(topic, body)
        except BadMessage as e:
            logger.error("%s rejected, not requeued: %s", where, e.diagnostics())
            raise Drop() from e
        if request is None:
            logger.info("%s: nothing for Fortnight; acknowledged", where)
            return
        self._ran = False
        code, reason = 0, ""
        try:
            self._dispatch(request, where)
        except _StepFailed as e:
            code, reason = e.code, str(e)
        except FortnightError as e:
            code, reason = e.exit_code, e.diagnostics()
        if self._ran:
            self._announce(where)
        self._settle(msg_id, where, code, reason)

    def _settle(self, msg_id: str, where: str, code: int, reason: str) -> None:
        verdict = disposition(code)
        if verdict == "done":
            self._attempts.pop(msg_id, None)
            logger.info("%s: done; acknowledged", where)
            return
        if verdict == "reject":
            self._attempts.pop(msg_id, None)
            logger.error("%s rejected, not requeued: %s", where, reason)
            raise Drop()
        if verdict == "halt":
            logger.error("%s: %s; halting the consumer (the message stays queued)", where, reason)
            raise HaltConsumer(exit_code=code, reason=f"{where}: {reason}", requeue=True)
        if len(self._attempts) > 1000:  # messages another consumer took; forget them
            self._attempts.clear()
        attempt = self._attempts[msg_id] = self._attempts.get(msg_id, 0) + 1
        delay = min(self.settings.retry_max_delay, self.settings.retry_delay * 2 ** (attempt - 1))
        logger.warning("%s: %s; requeued in %.1f s (attempt %d)", where, reason, delay, attempt)
        self.sleep(delay)
        raise Nack()

    def _step(self, where: str, args: Sequence[str]) -> None:
        logger.info("%s: invoke %s", where, " ".join(args))
        self._ran = True
        code = self.run([*args, "--repo", str(self.log.repo)])
        if code != 0:
            raise _StepFailed(f"invoke {args[0]}", code)

    def _announce(self, where: str) -> None:
        if self.announce_args is None:
            return
        code = self.run(self.announce_args)
        if code != 0:
            logger.warning(
                "%s: invoke announce exited %d; the commits stand and the next announce "
                "re-sends what was missed",
                where,
                code,
            )

    def _config(self, product: str) -> ProductConfig:
        return load_product(self.log.root, product)

    def _dispatch(self, request: Request, where: str) -> None:
        if request.kind == "finished":
            self._finished(request, where)
        elif request.kind == "doomed":
            self._doomed(request, where)
        else:
            self._cloud(request, where)

    def _finished(self, request: Request, where: str) -> None:
        cid = request.compose_id
        candidates = [r for r in self.routes if r.considers(cid, doomed=False)]
        if not candidates:
            logger.info("%s: %s matches no product's compose_ids; acknowledged", where, cid)
            return
        assert request.location is not None  # classify() checked it
        loaded = load_compose(request.location, http_session())
        if loaded.info.compose.id != cid:
            raise BadMessage(
                f"{request.location} holds compose {loaded.info.compose.id}, "
                f"but the message is about {cid}"
            )
        mine = [r for r in candidates if _selects_any(loaded.images, self._config(r.product))]
        if not mine:
            logger.info("%s: %s has no image for %s; acknowledged", where, cid, _names(candidates))
            return
        for route in mine:
            p = route.product
            verify = ["--verify-checksums"] if self.settings.verify_checksums else []
            args = ["compose.record", "--source", request.location, "--product", p, *verify]
            self._step(where, args)
            self._test_and_track(where, cid, p)

    def _test_and_track(self, where: str, compose_id: str, product: str) -> None:
        """test.run the suites with no results yet (all: one run that syncs the tracker)."""
        config = self._config(product)
        now = self.clock() if self.clock else datetime.now().astimezone()
        state, _ = load_state(self.log, config, now)
        view = state.compose(compose_id)
        if view is None or view.compose.outcome != "images":
            self._step(where, ["tracker.sync", "--product", product])
            return
        planned = plan_suites(config, self.log.product_dir(product), None)
        runnable = [s.name for s in planned if s.images(view.compose, [])]
        missing = [n for n in runnable if n not in view.suites or not view.suites[n].runs]
        base = ["test.run", "--compose-id", compose_id, "--product", product]
        if missing and missing == runnable:
            self._step(where, base)  # also syncs the tracker
            return
        if runnable and not missing:
            logger.info("%s: %s already has results for every suite", where, compose_id)
        for name in missing:
            self._step(where, [*base, "--suite", name, "--no-tracker"])
        self._step(where, ["tracker.sync", "--product", product])

    def _doomed(self, request: Request, where: str) -> None:
        cid = request.compose_id
        mine = [r for r in self.routes if r.considers(cid, doomed=True)]
        if not mine:
            logger.info(
                "%s: DOOMED %s matches no product's compose_ids (a DOOMED compose is recorded "
                "only for a product whose compose_ids match); acknowledged",
                where,
                cid,
            )
            return
        log_url = request.log_url()
        for route in mine:
            args = ["compose.record", "--failed", "--compose-id", cid, "--product", route.product]
            args += ["--reason", "Pungi reported status DOOMED"]
            args += ["--log-url", log_url] if log_url else []
            self._step(where, args)  # also syncs the tracker

    def _cloud(self, request: Request, where: str) -> None:
        cid = request.compose_id
        mine = [
            r
            for r in self.routes
            if (self.log.product_dir(r.product) / "composes" / f"{cid}.json").is_file()
            and self._config(r.product).clouds.aws is not None
        ]
        if not mine:
            logger.info("%s: %s is not recorded for a product with [clouds.aws]", where, cid)
            return
        endpoint = self.settings.ec2_endpoint_url
        for route in mine:
            args = ["cloud.discover", "--compose-id", cid, "--product", route.product]
            self._step(where, args + (["--endpoint-url", endpoint] if endpoint else []))


def _selects_any(images: Any, config: ProductConfig) -> bool:
    sel = config.images
    return any(
        sel.selects(variant, img.subvariant or "", img.type, img.arch)
        for variant, _arch, img in iter_images(images)
    )


def _names(routes: Sequence[Route]) -> str:
    return ", ".join(r.product for r in routes)


# --- the consumer loop ---------------------------------------------------------------------


class ListenerHalted(BusError):
    """The listener stopped on purpose (a configuration or verification problem)."""

    def __init__(self, reason: str, exit_code: int) -> None:
        super().__init__(reason, hint="fix it and restart 'invoke listen'; the message is queued")
        self.exit_code = exit_code


def consume(callback: Callable[[Message], None], *, reconnect_max_delay: float) -> None:
    """Consume the configured queues with ``callback`` until SIGINT/SIGTERM or a halt.

    Runs fedora-messaging's Twisted service, whose factory reconnects with exponential
    backoff (at most ``reconnect_max_delay`` seconds apart) when the broker goes away, and
    re-declares the queues and bindings; unacknowledged messages are redelivered.

    Raises:
        ListenerHalted: the callback halted the consumer.
        BusError: the broker refused the queues or bindings, or cancelled the consumer.
    """
    from fedora_messaging.twisted.service import (  # noqa: PLC0415 - Twisted only here
        FedoraMessagingServiceV2,
    )
    from twisted.internet import defer  # noqa: PLC0415
    from twisted.internet import reactor as _reactor  # noqa: PLC0415
    from twisted.python import log as twisted_log  # noqa: PLC0415
    from twisted.python.failure import Failure  # noqa: PLC0415

    # Twisted types the global reactor as a module; its zope interfaces do not type-check
    # method calls either, so it is Any here.
    reactor: Any = _reactor
    twisted_log.PythonLoggingObserver().start()  # type: ignore[no-untyped-call]
    service = FedoraMessagingServiceV2(fm_config.conf["amqp_url"])
    service.factory.maxDelay = math.ceil(reconnect_max_delay)
    failures: list[Failure] = []

    def watch(consumers: list[Any]) -> defer.Deferred[Any]:
        logger.info("listening on %s", ", ".join(c.queue for c in consumers))
        return defer.gatherResults([c.result for c in consumers], consumeErrors=True)

    def stop(_: object) -> None:
        if reactor.running:
            reactor.stop()

    started = service.factory.consume(
        callback, fm_config.conf["bindings"], fm_config.conf["queues"]
    )
    started.addCallback(watch)
    started.addErrback(failures.append)
    started.addBoth(stop)
    reactor.callWhenRunning(service.startService)
    reactor.addSystemEventTrigger("before", "shutdown", service.stopService)
    reactor.run()
    if failures:
        raise _consumer_error(failures[0])


def _consumer_error(failure: Any) -> BusError:
    from twisted.internet.defer import FirstError  # noqa: PLC0415

    value = failure.value
    if isinstance(value, FirstError):
        value = value.subFailure.value
    if isinstance(value, HaltConsumer):
        return ListenerHalted(str(value.reason), value.exit_code or 2)
    return BusError(
        f"the consumer stopped: {value}",
        hint="check the broker, the queue's permissions and the [queues]/[bindings] settings",
    )


def listen(
    repo: ManifestLog,
    settings: BusSettings,
    config_file: Path,
    *,
    product: str | None,
    root: Path,
    env: Mapping[str, str],
) -> None:
    """Run the listener until stopped (see :class:`Listener` and :func:`consume`).

    Raises:
        ConfigError: no product, or a product's configuration is invalid.
        StoreError: the log is not a git repository.
        ListenerHalted, BusError: see :func:`consume`.
    """
    repo.require_repo()
    chosen = routes(settings, product, repo.product_names())
    for route in chosen:
        load_product(repo.root, route.product)  # fail now, not on the first message
    start_marker(repo)
    fm_config.conf.setup_logging()
    if logger.getEffectiveLevel() > logging.INFO:
        logger.setLevel(logging.INFO)
    announce_file = Path(settings.announce_config) if settings.announce_config else config_file
    listener = Listener(
        repo,
        chosen,
        settings,
        InvokeRunner(root, env),
        announce_args=["announce", "--config", str(announce_file), "--repo", str(repo.repo)],
    )
    logger.info(
        "fortnight listener: log %s, products %s, config %s",
        repo.repo,
        _names(chosen),
        config_file,
    )
    consume(listener, reconnect_max_delay=settings.reconnect_max_delay)


# --- outbound: the announcement messages ------------------------------------------------------

_STR = {"type": "string"}
_STR_OR_NULL = {"type": ["string", "null"]}
_COMMON: dict[str, Any] = {
    "product": _STR,
    "manifest": {"type": "string", "description": "path of the signed manifest in the log"},
    "commit": {"type": "string", "description": "the git commit that added it"},
    "created": {"type": "string", "description": "when the manifest was made (UTC)"},
}


def _schema(description: str, **fields: Any) -> dict[str, Any]:
    props = {**_COMMON, **fields}
    return {
        "$schema": "http://json-schema.org/draft-07/schema#",
        "description": description,
        "type": "object",
        "properties": props,
        "required": sorted(props),
    }


class FortnightMessage(Message):
    """Base of Fortnight's announcements: topic ``<prefix>.<product>.<TOPIC>``."""

    TOPIC: ClassVar[str]

    @property
    def app_name(self) -> str:
        return "fortnight"

    @property
    def product(self) -> str:
        return str(self.body["product"])

    def __str__(self) -> str:
        return f"{self.summary}\nmanifest: {self.body['manifest']} (commit {self.body['commit']})"


class ComposeRecorded(FortnightMessage):
    """A compose was recorded: with its product's images, or as one that produced none."""

    TOPIC = "compose.recorded"
    body_schema: ClassVar[dict[str, Any]] = _schema(
        "A compose was recorded in the log",
        compose_id=_STR,
        outcome={"enum": ["images", "no-image"]},
        reason=_STR_OR_NULL,
        source=_STR,
        images={
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "arch": _STR,
                    "type": _STR,
                    "format": _STR,
                    "subvariant": _STR,
                    "url": _STR,
                    "size": {"type": "integer"},
                    "sha256": _STR,
                },
                "required": ["arch", "type", "format", "subvariant", "url", "size", "sha256"],
            },
        },
    )

    @property
    def summary(self) -> str:
        b = self.body
        what = f"{len(b['images'])} image(s)" if b["outcome"] == "images" else "no image"
        return f"{b['product']}: compose {b['compose_id']} recorded ({what})"


class TestsComplete(FortnightMessage):
    """A test suite ran on a compose; ``result`` is in-toto's PASSED, WARNED or FAILED."""

    __test__ = False  # not a pytest class
    TOPIC = "tests.complete"
    body_schema: ClassVar[dict[str, Any]] = _schema(
        "A test suite's run on a compose was recorded",
        compose_id=_STR,
        suite=_STR,
        run=_STR,
        result={"enum": ["PASSED", "WARNED", "FAILED"]},
        passed={"type": "integer"},
        failed={"type": "integer"},
        skipped={"type": "integer"},
        failures={
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "name": _STR,
                    "blocking": {"type": "boolean"},
                    "image": _STR_OR_NULL,
                    "reason": _STR_OR_NULL,
                },
                "required": ["name", "blocking", "image", "reason"],
            },
        },
    )

    @property
    def summary(self) -> str:
        b = self.body
        return f"{b['product']}: {b['suite']} on {b['compose_id']}: {b['result']}"


class TrackerEvent(FortnightMessage):
    """Fortnight opened, commented on or closed the product's failure bug."""

    TOPIC = "tracker"  # + ".opened", ".commented" or ".closed"
    body_schema: ClassVar[dict[str, Any]] = _schema(
        "The failure tracker changed",
        action={"enum": ["opened", "commented", "closed"]},
        bug=_STR,
        url=_STR,
        compose_id=_STR,
        compose_status=_STR,
    )

    @property
    def summary(self) -> str:
        b = self.body
        return f"{b['product']}: bug {b['bug']} {b['action']} for {b['compose_id']} ({b['url']})"

    @property
    def url(self) -> str | None:
        return str(self.body["url"])


class ReleasePublished(FortnightMessage):
    """A release cycle released an image; ``stream`` is the product's stream document."""

    TOPIC = "release.published"
    body_schema: ClassVar[dict[str, Any]] = _schema(
        "A release was published",
        release_id=_STR,
        cycle=_STR,
        compose_id=_STR,
        base=_STR,
        explanation=_STR,
        stream={"type": "object", "required": ["stream", "release", "architectures"]},
    )

    @property
    def summary(self) -> str:
        b = self.body
        return f"{b['product']}: release {b['release_id']} is {b['compose_id']} ({b['base']})"


class CycleStale(FortnightMessage):
    """A release cycle had no image to release; the previous release stays current."""

    TOPIC = "cycle.stale"
    body_schema: ClassVar[dict[str, Any]] = _schema(
        "A release cycle was decided stale",
        release_id=_STR,
        cycle=_STR,
        previous=_STR_OR_NULL,
        open_bug={
            "type": ["object", "null"],
            "properties": {"bug": _STR, "url": _STR},
            "required": ["bug", "url"],
        },
        explanation=_STR,
    )

    @property
    def summary(self) -> str:
        b = self.body
        return f"{b['product']}: cycle {b['cycle']} is stale: {b['explanation']}"


class ReleaseWithdrawn(FortnightMessage):
    """A release was withdrawn; the download page falls back to the previous good one."""

    TOPIC = "release.withdrawn"
    body_schema: ClassVar[dict[str, Any]] = _schema(
        "A release was withdrawn",
        release_id=_STR,
        compose_id=_STR,
        reason=_STR,
        reason_url=_STR_OR_NULL,
        operator=_STR,
    )

    @property
    def summary(self) -> str:
        b = self.body
        return f"{b['product']}: release {b['release_id']} withdrawn: {b['reason']}"


#: The schema names the ``fedora.messages`` entry points register (see docs/bus.md).
MESSAGE_CLASSES: dict[str, type[FortnightMessage]] = {
    "fortnight.compose.recorded.v1": ComposeRecorded,
    "fortnight.tests.complete.v1": TestsComplete,
    "fortnight.tracker.event.v1": TrackerEvent,
    "fortnight.release.published.v1": ReleasePublished,
    "fortnight.cycle.stale.v1": CycleStale,
    "fortnight.release.withdrawn.v1": ReleaseWithdrawn,
}


def register_message_classes() -> None:
    """Make sure fedora-messaging knows our classes, installed with entry points or not.

    fedora-messaging finds message classes through the ``fedora.messages`` entry points
    of installed packages; a checkout that was not ``pip install``-ed has none, so the
    classes are added to its registry directly (its private dicts: it has no public
    registration call).
    """
    for name, cls in MESSAGE_CLASSES.items():
        try:
            fm_message.get_name(cls)
        except TypeError:
            fm_message._schema_name_to_class[name] = cls
            fm_message._class_to_schema_name[cls] = name


# --- outbound: from manifests to messages -------------------------------------------------------


@dataclass(frozen=True)
class Added:
    """A manifest file a commit added."""

    commit: str
    path: PurePosixPath  # relative to manifests/


def _common(m: Manifest, added: Added) -> dict[str, Any]:
    return {
        "product": m.product,
        "manifest": f"manifests/{added.path}",
        "commit": added.commit,
        "created": format_timestamp(m.created),
    }


class MessageBuilder:
    """Turns verified manifests into announcements (the stream needs the log's state)."""

    def __init__(self, log: ManifestLog, trust: Any, settings: BusSettings) -> None:
        register_message_classes()
        self.log = log
        self.trust = trust
        self.settings = settings
        self._manifests: dict[str, list[Manifest]] = {}

    def _topic(self, m: Manifest, suffix: str) -> str:
        return f"{self.settings.topic_prefix}.{m.product}.{suffix}"

    def build(self, m: Manifest, added: Added) -> FortnightMessage | None:
        """The announcement of ``m``, or None for kinds that are not announced."""
        body = _common(m, added)
        msg: FortnightMessage
        if isinstance(m, ComposeManifest):
            body |= {
                "compose_id": m.compose_id,
                "outcome": m.outcome,
                "reason": m.reason,
                "source": m.source,
                "images": [
                    {
                        "arch": i.arch,
                        "type": i.type,
                        "format": i.format,
                        "subvariant": i.subvariant,
                        "url": i.url,
                        "size": i.size,
                        "sha256": i.checksums.sha256,
                    }
                    for i in m.images
                ],
            }
            msg = ComposeRecorded(topic=self._topic(m, ComposeRecorded.TOPIC), body=body)
        elif isinstance(m, ResultManifest):
            outcomes = [t.outcome for t in m.tests]
            body |= {
                "compose_id": m.compose_id,
                "suite": m.suite,
                "run": m.run,
                "result": m.result,
                "passed": outcomes.count("PASSED"),
                "failed": outcomes.count("FAILED"),
                "skipped": outcomes.count("SKIPPED"),
                "failures": [
                    {
                        "name": t.name,
                        "blocking": t.blocking,
                        "image": t.image.path if t.image else None,
                        "reason": t.reason,
                    }
                    for t in m.tests
                    if t.outcome == "FAILED"
                ],
            }
            msg = TestsComplete(topic=self._topic(m, TestsComplete.TOPIC), body=body)
        elif isinstance(m, TrackerEventManifest):
            body |= {
                "action": m.action,
                "bug": m.bug,
                "url": m.url,
                "compose_id": m.compose_id,
                "compose_status": m.compose_status,
            }
            topic = self._topic(m, f"{TrackerEvent.TOPIC}.{m.action}")
            msg = TrackerEvent(topic=topic, body=body)
        elif isinstance(m, ReleaseManifest) and m.decision == "release":
            body |= {
                "release_id": m.release_id,
                "cycle": m.cycle,
                "compose_id": m.compose_id,
                "base": m.base.label(),
                "explanation": m.explanation,
                "stream": self._stream(m),
            }
            msg = ReleasePublished(topic=self._topic(m, ReleasePublished.TOPIC), body=body)
        elif isinstance(m, ReleaseManifest):
            bug = m.open_bug
            body |= {
                "release_id": m.release_id,
                "cycle": m.cycle,
                "previous": m.previous,
                "open_bug": {"bug": bug.bug, "url": bug.url} if bug else None,
                "explanation": m.explanation,
            }
            msg = CycleStale(topic=self._topic(m, CycleStale.TOPIC), body=body)
        elif isinstance(m, RevocationManifest):
            body |= {
                "release_id": m.release_id,
                "compose_id": m.compose_id,
                "reason": m.reason,
                "reason_url": m.reason_url,
                "operator": m.operator,
            }
            msg = ReleaseWithdrawn(topic=self._topic(m, ReleaseWithdrawn.TOPIC), body=body)
        else:
            return None  # verdicts and cloud images are not announced
        # The same manifest always gets the same id: consumers can drop a re-sent copy.
        msg.id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"fortnight:{body['manifest']}"))
        return msg

    def _stream(self, release: ReleaseManifest) -> dict[str, Any]:
        """The stream document as of the release decision."""
        product = release.product
        if product not in self._manifests:
            verified = self.log.load_verified(self.trust, products=[product])
            self._manifests[product] = [v.manifest for v in verified]
        config = load_product(self.log.root, product)
        state = derive(self._manifests[product], config, release.created)
        return stream(state, self.settings.site_url)


# --- outbound: what to announce, and publishing it ------------------------------------------------


def marker_path(log: ManifestLog) -> Path:
    """Where the last announced commit is remembered (outside the work tree)."""
    return log.git.git_dir() / MARKER_FILE


def read_marker(log: ManifestLog) -> str | None:
    """The last announced commit, or None before the first announcement."""
    try:
        text = marker_path(log).read_text().strip()
    except FileNotFoundError:
        return None
    return text or None


def write_marker(log: ManifestLog, commit: str) -> None:
    """Remember ``commit`` as announced."""
    atomic_write(marker_path(log), (commit + "\n").encode())


def start_marker(log: ManifestLog) -> str:
    """The marker; the first time, HEAD (history before it is not announced)."""
    current = read_marker(log)
    if current is None:
        current = log.git.head()
        write_marker(log, current)
        logger.info(
            "announcements start at %s (use 'invoke announce --since REV' for older)",
            current[:12],
        )
    return current


def added_since(log: ManifestLog, since: str, head: str) -> list[Added]:
    """Manifest files added by the commits in ``since..head``, oldest commit first.

    Raises:
        ConfigError: ``since`` is not a commit, or not an ancestor of HEAD.
    """
    resolved = log.git.run("rev-parse", "--verify", "--quiet", f"{since}^{{commit}}", check=False)
    if resolved.returncode != 0:
        raise ConfigError(f"--since {since}: not a commit of {log.repo}")
    start = resolved.stdout.strip()
    if log.git.run("merge-base", "--is-ancestor", start, head, check=False).returncode != 0:
        raise ConfigError(
            f"--since {since}: not an ancestor of HEAD",
            hint="pass a commit of the current branch's history",
        )
    out = log.git.run(
        "log",
        "--reverse",
        "--diff-filter=A",
        "--name-only",
        "--format=%x01%H",
        f"{start}..{head}",
        "--",
        "manifests/",
    ).stdout
    added = []
    commit = ""
    for line in out.splitlines():
        if line.startswith("\x01"):
            commit = line[1:]
        elif line.strip():
            rel = PurePosixPath(line.strip()).relative_to("manifests")
            if len(rel.parts) >= 3 and rel.suffix == ".json" and rel.parts[1] in KIND_BY_DIRECTORY:
                added.append(Added(commit, rel))
    return added


Publisher = Callable[[Message], None]


@dataclass
class AnnounceReport:
    """What :func:`announce` did."""

    since: str | None
    head: str
    messages: list[FortnightMessage] = field(default_factory=list)
    rejected: list[tuple[str, str]] = field(default_factory=list)  # (path, reason)
    dry_run: bool = False


@contextmanager
def _announce_lock(log: ManifestLog) -> Iterator[None]:
    with open(log.git.git_dir() / "fortnight-announce.lock", "a+b") as f:
        fcntl.flock(f.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f.fileno(), fcntl.LOCK_UN)


def announce(
    log: ManifestLog,
    settings: BusSettings,
    *,
    publish: Publisher,
    since: str | None = None,
    dry_run: bool = False,
    sleep: Callable[[float], None] = time.sleep,
) -> AnnounceReport:
    """Publish one message per manifest added since ``since`` (default: the marker).

    Commits are announced in order and the marker advances after each one, so a failure
    resumes where it stopped (a commit is re-sent whole: at-least-once). With no marker and
    no ``since``, the marker is set to HEAD and nothing is sent. A manifest that fails
    verification is not announced; it is reported in ``rejected``.

    Raises:
        ConfigError: ``since`` is not a commit of HEAD's history.
        BusError: a message could not be published after ``settings.publish_attempts`` tries.
    """
    log.require_repo()
    with _announce_lock(log):
        head = log.git.head()
        start = since or read_marker(log)
        report = AnnounceReport(since=start, head=head, dry_run=dry_run)
        if start is None:
            if not dry_run:
                start_marker(log)
            return report
        trust = log.load_trust()
        builder = MessageBuilder(log, trust, settings)
        added = added_since(log, start, head)
        for i, item in enumerate(added):
            raw = log.git.run("show", f"{item.commit}:manifests/{item.path}").stdout.encode()
            try:
                manifest = verify_manifest(raw, item.path, trust)
            except ManifestRejected as e:
                logger.error("not announced: manifests/%s: %s", item.path, e.reason)
                report.rejected.append((f"manifests/{item.path}", e.reason))
                continue
            msg = builder.build(manifest, item)
            if msg is not None:
                if not dry_run:
                    _publish(msg, publish, settings, sleep, resume=start)
                report.messages.append(msg)
            last_of_commit = i + 1 == len(added) or added[i + 1].commit != item.commit
            if last_of_commit and not dry_run:
                write_marker(log, item.commit)
                start = item.commit
        if not dry_run:
            write_marker(log, head)
        return report


def _publish(
    msg: FortnightMessage,
    publish: Publisher,
    settings: BusSettings,
    sleep: Callable[[float], None],
    *,
    resume: str,
) -> None:
    attempts = settings.publish_attempts
    for attempt in range(1, attempts + 1):
        try:
            publish(msg)
            return
        except MessageValidationError as e:  # our bug, not the broker's: do not retry
            raise BusError(f"{msg.topic}: the body does not match its schema: {e}") from e
        except FedoraMessagingError as e:
            if attempt == attempts:
                raise BusError(
                    f"publishing {msg.topic} ({msg.body['manifest']}) failed after "
                    f"{attempts} tries: {e}",
                    hint=f"the commits stand; 'invoke announce' resumes after {resume[:12]}",
                ) from e
            delay = min(30.0, 2.0**attempt)
            logger.warning("publishing %s failed (%s); retrying in %.0f s", msg.topic, e, delay)
            sleep(delay)


def amqp_publisher(settings: BusSettings) -> Publisher:
    """Publish through fedora-messaging's configured broker (see :func:`load_settings`)."""
    from fedora_messaging import api  # noqa: PLC0415 - starts Twisted (crochet): only here

    register_message_classes()

    def publish(msg: Message) -> None:
        api.publish(msg, timeout=settings.publish_timeout)

    return publish
