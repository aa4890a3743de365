"""Shared fixtures: real git logs with real keys, real compose metadata, pinned time."""

from __future__ import annotations

import copy
import functools
import hashlib
import json
import logging
import os
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from productmd.composeinfo import get_date_type_respin

from pipeline.core.config import ProductConfig, load_product
from pipeline.core.models.common import ROLES, RoleName, Trust
from pipeline.core.models.manifests import (
    CaseResult,
    ComposeManifest,
    Image,
    ImageRef,
    ResultManifest,
    suite_verdict,
)
from pipeline.demo.samples import write_image
from pipeline.log.checkpoints import IndexEntry, newest, next_checkpoint, parse_index, read_index
from pipeline.log.signing import add_key_to_trust
from pipeline.log.sslib import CryptoSigner, Signer
from pipeline.log.store import ManifestLog, init_log
from pipeline.log.trust import empty_trust, first_version, next_version

ROOT = Path(__file__).resolve().parent.parent
FIXTURES = Path(__file__).resolve().parent / "fixtures" / "real"
F28_IMAGES = FIXTURES / "fedimg-vcr-Fedora-28-20180425.0-images.json"
F28_INFO = FIXTURES / "fedimg-vcr-Fedora-28-20180425.0-composeinfo.json"
NOW = datetime(2015, 9, 15, 12, 0, 0, tzinfo=UTC)


def load_json(path: Path) -> Any:
    return json.loads(path.read_text())


@dataclass
class Log:
    """A real manifest log in a git repository, and the keys it trusts."""

    repo: Path
    keydir: Path
    signers: dict[RoleName, CryptoSigner]
    env: dict[str, str] = field(default_factory=dict)

    @property
    def log(self) -> ManifestLog:
        return ManifestLog(self.repo)

    def git(self, *args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=self.repo, check=True, capture_output=True, text=True
        ).stdout

    def commits(self) -> list[str]:
        return self.git("log", "--format=%s").splitlines()

    def write_trust(
        self, trust: Trust, message: str = "trust: change", commit: bool = True
    ) -> None:
        """Sign ``trust`` as the next root version with the root key, write and commit it."""
        log = self.log
        raw = next_version(log.load_root().chain, trust, [self.signers["root"]])
        log.write_root(raw, message, commit=commit)


def index_by_hand(log: Log, files: Sequence[Path], signer: Signer, at: datetime = NOW) -> None:
    """Append ``files`` (manifests written by hand) to ``log.idx`` and sign the next
    checkpoint with ``signer``, as :class:`pipeline.log.writer.LogWriter` does (uncommitted)."""
    root = log.log.root
    before = read_index(root)
    added = [
        IndexEntry(hashlib.sha256(f.read_bytes()).hexdigest(), f.relative_to(root).as_posix())
        for f in files
    ]
    previous = newest(root)
    raw = next_checkpoint(
        previous.signed if previous else None, [*parse_index(before), *added], [signer], at
    )
    number = previous.signed.number + 1 if previous else 1
    (root / "checkpoints").mkdir(exist_ok=True)
    (root / "checkpoints" / f"{number}.json").write_bytes(raw)
    (root / "log.idx").write_bytes(before + b"".join(e.line() for e in added))


@pytest.fixture(scope="session")
def role_signers() -> dict[RoleName, CryptoSigner]:
    """One Ed25519 key per role, made once for the session."""
    return {role: CryptoSigner.generate_ed25519() for role in ROLES}


def new_log(
    folder: Path, signers: dict[RoleName, CryptoSigner], name: str = "log", toml: bytes = b""
) -> Log:
    """A fresh manifest log at ``folder/name`` trusting ``signers``; their private keys are
    written to ``folder/<name>-keys`` (outside the repository) for the tasks."""
    repo = folder / name
    toml = toml or (ROOT / "manifests/atomic-host/product.toml").read_bytes()
    trust = empty_trust()
    keydir = folder / f"{name}-keys"
    keydir.mkdir()
    env = {}
    for role, signer in signers.items():
        trust = add_key_to_trust(trust, role, signer.public_key)
        keyfile = keydir / f"{role}.key"
        keyfile.write_bytes(signer.private_bytes)
        keyfile.chmod(0o600)
        env[f"FORTNIGHT_KEY_{role.upper()}"] = str(keyfile)
    init_log(repo, {"atomic-host": toml}, first_version(trust, [signers["root"]]))
    return Log(repo=repo, keydir=keydir, signers=dict(signers), env=env)


@pytest.fixture
def make_log(tmp_path: Path, role_signers: dict[RoleName, CryptoSigner]) -> Callable[..., Log]:
    """Factory: a fresh manifest log trusting the session's keys (files outside the repo)."""

    def make(name: str = "log", product_toml: bytes | None = None) -> Log:
        return new_log(tmp_path, role_signers, name, product_toml or b"")

    return make


@pytest.fixture
def f28_metadata_dir(tmp_path: Path) -> Path:
    """The real Fedora 28 compose metadata, laid out as a Pungi compose root (no image files)."""
    root = tmp_path / "Fedora-28-20180425.0"
    meta = root / "compose" / "metadata"
    meta.mkdir(parents=True)
    shutil.copy(F28_INFO, meta / "composeinfo.json")
    shutil.copy(F28_IMAGES, meta / "images.json")
    return root


@dataclass
class ComposeTree:
    """A compose root on disk with real (small) image files matching its metadata."""

    root: Path
    images: dict[str, Any]
    info: dict[str, Any]

    @property
    def compose_dir(self) -> Path:
        return self.root / "compose"

    def rewrite(self) -> None:
        meta = self.compose_dir / "metadata"
        (meta / "images.json").write_text(json.dumps(self.images, indent=4))
        (meta / "composeinfo.json").write_text(json.dumps(self.info, indent=4))

    def atomic_x86_64(self) -> list[dict[str, Any]]:
        return self.images["payload"]["images"]["AtomicHost"]["x86_64"]  # type: ignore[no-any-return]


def compose_tree(folder: Path, compose_id: str = "Fedora-28-20180425.0") -> ComposeTree:
    """The real F28 metadata at ``folder/composes/<compose_id>``, re-pointed at small,
    well-formed generated image files (pipeline.demo.samples) for the AtomicHost images, so
    checksums and checks really run; both metadata files carry ``compose_id``."""
    info = load_json(F28_INFO)
    images = load_json(F28_IMAGES)
    date, compose_type, respin = get_date_type_respin(compose_id)
    for doc in (info, images):
        doc["payload"]["compose"].update(id=compose_id, date=date, type=compose_type, respin=respin)
    root = folder / "composes" / compose_id
    compose_dir = root / "compose"
    (compose_dir / "metadata").mkdir(parents=True)
    # Keep only the product's images: smaller fixtures, same shapes.
    images["payload"]["images"] = {
        "AtomicHost": copy.deepcopy(images["payload"]["images"]["AtomicHost"])
    }
    for img in (i for arch in images["payload"]["images"]["AtomicHost"].values() for i in arch):
        path = compose_dir / img["path"]
        path.parent.mkdir(parents=True, exist_ok=True)
        write_image(path, img["type"])  # small but well-formed: checks pass on them
        data = path.read_bytes()
        img["size"] = len(data)
        img["checksums"] = {"sha256": hashlib.sha256(data).hexdigest()}
    tree = ComposeTree(root=root, images=images, info=info)
    tree.rewrite()
    return tree


@pytest.fixture
def make_compose_tree(tmp_path: Path) -> Callable[..., ComposeTree]:
    """Factory: :func:`compose_tree` under the test's tmp_path."""
    return functools.partial(compose_tree, tmp_path)


def make_compose(**overrides: Any) -> ComposeManifest:
    """A valid compose manifest model; override any field."""
    base: dict[str, Any] = {
        "product": "atomic-host",
        "created": NOW,
        "compose_id": "Fedora-Atomic-22-20150915.0",
        "date": "20150915",
        "respin": 0,
        "compose_type": "production",
        "label": None,
        "release": {"name": "Fedora", "short": "Fedora-Atomic", "version": "22", "type": "ga"},
        "outcome": "images",
        "source": "https://kojipkgs.fedoraproject.org/compose/twoweek/Fedora-Atomic-22-20150915.0/",
        "checksums_verified": True,
        "images": [
            {
                "variant": "Cloud_Atomic",
                "subvariant": "Atomic",
                "type": "qcow2",
                "format": "qcow2",
                "arch": "x86_64",
                "path": "Cloud_Atomic/x86_64/images/Fedora-Cloud-Atomic-22-20150915.x86_64.qcow2",
                "url": "https://example.invalid/Fedora-Cloud-Atomic-22-20150915.x86_64.qcow2",
                "size": 593363456,
                "checksums": {"sha256": "a" * 64},
                "bootable": False,
                "volume_id": None,
                "implant_md5": None,
                "mtime": 1442300000,
            }
        ],
    }
    base.update(overrides)
    return ComposeManifest.model_validate(base)


def run_invoke(
    *args: str,
    env: dict[str, str] | None = None,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``invoke ARGS`` on the project's tasks.py in a child process, as an operator would."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("FORTNIGHT_")}
    full_env.update(env or {})
    full_env["COLUMNS"] = "200"
    return subprocess.run(
        [sys.executable, "-m", "invoke", "--search-root", str(ROOT), *args],
        cwd=cwd or ROOT,
        env=full_env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )


@dataclass
class StaticServer:
    """A real HTTP server on 127.0.0.1 serving a folder; can fail the first requests."""

    url: str
    requests: list[str]
    fail_next: list[int]  # HTTP statuses to answer, in order, before serving normally


@pytest.fixture
def serve_dir() -> Any:
    """Factory: serve a folder over HTTP on loopback for the test's duration."""
    servers: list[ThreadingHTTPServer] = []

    def start(directory: Path) -> StaticServer:
        state = StaticServer(url="", requests=[], fail_next=[])

        class Handler(SimpleHTTPRequestHandler):
            def do_GET(self) -> None:
                state.requests.append(self.path)
                if state.fail_next:
                    self.send_error(state.fail_next.pop(0))
                    return
                super().do_GET()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(Handler, directory=str(directory))
        )
        threading.Thread(target=server.serve_forever, daemon=True).start()
        servers.append(server)
        state.url = f"http://127.0.0.1:{server.server_address[1]}/"
        return state

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


def product_config() -> ProductConfig:
    """The shipped Fedora Atomic Host product.toml."""
    return load_product(ROOT / "manifests", "atomic-host")


def make_result(
    compose: ComposeManifest,
    *,
    fail: Sequence[str] = (),
    suite: str = "images",
    started: datetime = NOW,
    run: str | None = None,
    images: Sequence[Image] | None = None,
) -> ResultManifest:
    """A run of the default battery's suite on ``compose``; tests named in ``fail`` fail."""
    battery = product_config().battery.suites["images"].tests
    images = list(compose.images if images is None else images)
    cases = [
        CaseResult(
            name=t.name,
            blocking=t.blocking,
            outcome="FAILED" if t.name in fail else "PASSED",
            reason="exit code 1" if t.name in fail else None,
            duration_ms=10,
            image=ImageRef.of(img),
        )
        for img in images
        for t in battery
    ]
    return ResultManifest(
        product=compose.product,
        created=started,
        compose_id=compose.compose_id,
        suite=suite,
        run=run or f"{started:%Y%m%dT%H%M%SZ}-000000",
        origin="battery",
        runner="test",
        started=started,
        finished=started,
        arches=[],
        artifacts=[ImageRef.of(img) for img in images],
        tests=cases,
        result=suite_verdict(cases),
    )


def compose_on(day: int, **overrides: Any) -> ComposeManifest:
    """A one-image compose of September 2015, day ``day`` (or no image, via overrides)."""
    cid = f"Fedora-Atomic-22-201509{day:02d}.0"
    base: dict[str, Any] = {
        "compose_id": cid,
        "date": f"201509{day:02d}",
        "created": NOW.replace(day=day),
    }
    base.update(overrides)
    return make_compose(**base)


def doomed_on(day: int) -> ComposeManifest:
    """A compose that produced no image, on September ``day`` 2015."""
    return compose_on(
        day, outcome="no-image", images=[], release=None, reason="DOOMED", checksums_verified=False
    )


@pytest.fixture
def make_history(
    make_log: Callable[..., Log], make_compose_tree: Callable[..., ComposeTree]
) -> Callable[..., Any]:
    """Factory: a :class:`tests.sitekit.History` on a fresh log whose product downloads from
    ``download_url`` (``{compose_id}`` is replaced), optionally on a prerelease base."""
    from tests.sitekit import History, product_toml  # noqa: PLC0415 - sitekit imports conftest

    def make(
        download_url: str = "https://dl.example.org/{compose_id}/compose/",
        *,
        prerelease: str | None = None,
        name: str = "log",
    ) -> History:
        log = make_log(name, product_toml(download_url, prerelease=prerelease))
        return History(log, make_compose_tree)

    return make


@pytest.fixture(scope="module")
def moto_server() -> Iterator[str]:
    """moto's server (S3, EC2, …) on 127.0.0.1 for a test module; its URL."""
    from moto.server import ThreadedMotoServer  # noqa: PLC0415 - only the AWS tests need it

    logging.getLogger("werkzeug").setLevel(logging.ERROR)  # one line per request otherwise
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=0, verbose=False)
    server.start()
    host, port = server.get_host_and_port()
    yield f"http://{host}:{port}"
    server.stop()
