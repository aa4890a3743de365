"""``invoke listen``: Pungi's and fedimg's bus messages in, recorded manifests out.

:func:`listen` consumes Pungi's ``pungi.compose.status.change`` and fedimg's
``image.publish`` messages and runs the *same operator tasks* an operator would, as child
processes (``invoke compose.record``, ``test.run``, ``tracker.sync``, ``cloud.discover``).
Each task's documented exit code decides what happens to the message: done (acknowledged),
rejected without requeue (bad input: it would fail the same way again), requeued after a
backoff (git, tracker, cloud or a crash: transient), or the consumer halts (configuration or a
log that fails verification: an operator must act). A message is acknowledged only after its
tasks returned, so their commits (and pushes) are in: at-least-once. Tasks are idempotent, and
a test battery runs only for suites with no results yet, so a redelivery is a no-op. After a
message that ran a task, ``invoke announce`` runs (:mod:`pipeline.stages.announce`).

The git log stays the source of truth: a lost message is recovered by re-running a task or
``invoke announce``, never by the bus.
"""

from __future__ import annotations

import fnmatch
import json
import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Annotated, Any, Literal

from fedora_messaging.exceptions import Drop, HaltConsumer, Nack
from fedora_messaging.message import Message
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from pipeline.adapters.bus import client
from pipeline.adapters.bus.settings import BusSettings, ProductRoute, setup_logging
from pipeline.adapters.ingest import http_session, is_url, iter_images, load_compose
from pipeline.core.config import ProductConfig, load_product
from pipeline.core.models.common import ComposeId
from pipeline.errors import ConfigError, FortnightError, InputError, describe_validation_error
from pipeline.fsutil import atomic_write
from pipeline.log.store import ManifestLog
from pipeline.stages.announce import start_marker
from pipeline.stages.battery import plan_suites
from pipeline.stages.load import load_state

logger = logging.getLogger(__name__)

#: Pungi's statuses that mean "the compose is there": record, test, track.
FINISHED = frozenset({"FINISHED", "FINISHED_INCOMPLETE"})
DOOMED = "DOOMED"
PUNGI_TOPIC = "pungi.compose.status.change"
FEDIMG_TOPIC = "fedimg.image.publish"
#: Pungi's message for each OSTree commit a compose makes (one per arch, before FINISHED).
OSTREE_TOPIC = "pungi.compose.ostree"


# --- which products listen ------------------------------------------------------------------


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


# --- what a message asks for -------------------------------------------------------------


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


class _PungiOstree(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    compose_id: ComposeId
    arch: Annotated[str, Field(pattern=r"^[a-z0-9_]+$")]
    commitid: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    ref: Annotated[str, Field(min_length=1)]


class _FedimgPublish(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)

    #: ``image.publish`` carries the id; ``image.upload`` a ``{"compose_id": …}`` object.
    compose: ComposeId | _ComposeRef


@dataclass(frozen=True)
class Request:
    """What a message asks of Fortnight."""

    kind: Literal["finished", "doomed", "cloud", "ostree"]
    compose_id: str
    location: str | None = None
    status: str = ""
    #: For ``ostree``: the arch and its commit.
    arch: str = ""
    commit: str = ""

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
    if _on_topic(topic, OSTREE_TOPIC):
        try:
            tree = _PungiOstree.model_validate(body)
        except ValidationError as e:
            raise BadMessage(f"{OSTREE_TOPIC} body: {_describe(e)}") from e
        return Request("ostree", tree.compose_id, arch=tree.arch, commit=tree.commitid)
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


# --- running the operator tasks -------------------------------------------------------------

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
        elif request.kind == "ostree":
            self._ostree(request, where)
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
            if self._config(p).ostree is not None:
                trees = ostree_spool(self.log, cid)
                args += [
                    a
                    for arch, c in sorted(trees.items())
                    for a in ("--ostree-commit", f"{arch}={c}")
                ]
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

    def _ostree(self, request: Request, where: str) -> None:
        """Remember the commit until the compose finishes (it is recorded then)."""
        trees = ostree_spool(self.log, request.compose_id)
        trees[request.arch] = request.commit
        spool = self.log.git.git_dir() / "fortnight-ostree" / f"{request.compose_id}.json"
        spool.parent.mkdir(exist_ok=True)
        atomic_write(spool, json.dumps(trees, sort_keys=True).encode())
        logger.info(
            "%s: %s %s commit %s kept for compose.record",
            where,
            request.compose_id,
            request.arch,
            request.commit,
        )

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


def ostree_spool(log: ManifestLog, compose_id: str) -> dict[str, str]:
    """The OSTree commits Pungi announced for ``compose_id`` so far, by arch (kept in the
    checkout's git folder, so a restarted listener still has them)."""
    spool = log.git.git_dir() / "fortnight-ostree" / f"{compose_id}.json"
    try:
        data = json.loads(spool.read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else {}


def _selects_any(images: Any, config: ProductConfig) -> bool:
    sel = config.images
    return any(
        sel.selects(variant, img.subvariant or "", img.type, img.arch)
        for variant, _arch, img in iter_images(images)
    )


def _names(routes: Sequence[Route]) -> str:
    return ", ".join(r.product for r in routes)


def listen(
    repo: ManifestLog,
    settings: BusSettings,
    config_file: Path,
    *,
    product: str | None,
    root: Path,
    env: Mapping[str, str],
) -> None:
    """Run the listener until stopped (see :class:`Listener` and :func:`client.consume`).

    Raises:
        ConfigError: no product, or a product's configuration is invalid.
        StoreError: the log is not a git repository.
        ListenerHalted, BusError: see :func:`pipeline.adapters.bus.client.consume`.
    """
    repo.require_repo()
    chosen = routes(settings, product, repo.product_names())
    for route in chosen:
        load_product(repo.root, route.product)  # fail now, not on the first message
    start_marker(repo)
    setup_logging()
    for own in (logger, client.logger):  # at least INFO: what the listener does
        if own.getEffectiveLevel() > logging.INFO:
            own.setLevel(logging.INFO)
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
    client.consume(listener, reconnect_max_delay=settings.reconnect_max_delay)
