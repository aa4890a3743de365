"""site.publish: boto3 against moto's S3 server on 127.0.0.1 (real HTTP); the plan, pure."""

from __future__ import annotations

import hashlib
import json
import socket
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from botocore.awsrequest import AWSResponse
from botocore.config import Config
from botocore.retries.standard import ExponentialBackoff

from pipeline.adapters.aws.s3 import ClientFactory, RemoteObject, Target, s3_client_factory
from pipeline.errors import ConfigError, SiteError
from pipeline.site.publish import (
    IMMUTABLE,
    SHORT,
    LocalFile,
    PublishReport,
    cache_control,
    content_type,
    page_links,
    parse_target,
    plan,
    publish,
    resolve_link,
)
from tests.conftest import run_invoke

BUCKET = "fortnight-site"
PREFIX = "site"
TARGET = f"s3://{BUCKET}/{PREFIX}"
THRESHOLD = 64 * 1024  # multipart from 64 KiB: the test's large file is 200 KiB
SECRET = "testing-secret-do-not-log"
FAST = Config(retries={"max_attempts": 1, "mode": "standard"}, connect_timeout=2)


class Interrupted(Exception):
    """The fault injected: the publish process dies here."""


@dataclass
class S3:
    """moto's S3 server, with dummy credentials in the environment."""

    url: str
    _client: Any = None

    def client(self) -> Any:
        """A client for the test's own reads and writes (made once: clients are slow to make)."""
        if self._client is None:
            self._client = boto3.client("s3", endpoint_url=self.url, config=FAST)
        return self._client

    def factory(self, *hooks: tuple[str, Callable[..., Any]]) -> ClientFactory:
        """Clients with botocore event ``hooks`` (name, handler) registered."""

        def make() -> Any:
            client = boto3.client("s3", endpoint_url=self.url, config=FAST)
            for name, handler in hooks:
                client.meta.events.register(name, handler)
            return client

        return make

    def create(self, bucket: str = BUCKET) -> None:
        self.client().create_bucket(Bucket=bucket)

    def objects(self, bucket: str = BUCKET, prefix: str = PREFIX) -> dict[str, bytes]:
        """Every object under ``prefix/``, by site-relative path."""
        client = self.client()
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=f"{prefix}/")
        keys = [str(obj["Key"]) for page in pages for obj in page.get("Contents", [])]

        def get(key: str) -> bytes:
            return bytes(client.get_object(Bucket=bucket, Key=key)["Body"].read())

        with ThreadPoolExecutor(max_workers=8) as pool:
            bodies = list(pool.map(get, keys))
        return {key[len(prefix) + 1 :]: body for key, body in zip(keys, bodies, strict=True)}

    def pages(self, bucket: str) -> dict[str, bytes]:
        """Every object under the prefix, with the bodies of HTML pages only (b"" for others)."""
        pages = self.client().get_paginator("list_objects_v2")
        listed = pages.paginate(Bucket=bucket, Prefix=f"{PREFIX}/")
        rels = [str(obj["Key"])[len(PREFIX) + 1 :] for p in listed for obj in p.get("Contents", [])]
        out = dict.fromkeys(rels, b"")
        for rel in rels:
            if rel.endswith(".html"):
                key = f"{PREFIX}/{rel}"
                out[rel] = self.client().get_object(Bucket=bucket, Key=key)["Body"].read()
        return out

    def head(self, rel: str, bucket: str = BUCKET) -> dict[str, Any]:
        return dict(self.client().head_object(Bucket=bucket, Key=f"{PREFIX}/{rel}"))


@pytest.fixture
def s3(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> S3:
    """A fresh S3 (moto reset) with the bucket created; botocore's retries do not sleep."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing-key-id")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(var, raising=False)
    monkeypatch.setattr(ExponentialBackoff, "delay_amount", lambda self, context: 0.0)
    requests.post(f"{moto_server}/moto-api/reset", timeout=10).raise_for_status()
    s3 = S3(moto_server)
    s3.create()
    return s3


# --- fake sites ----------------------------------------------------------------------------


def page(title: str, *links: str) -> str:
    anchors = "".join(f'<a href="{href}">{href}</a>\n' for href in links)
    return f"<!doctype html><html><head><title>{title}</title>\n{anchors}</head></html>\n"


def site_files(*, update: bool = False, big: bool = True) -> dict[str, bytes | str]:
    """A site shaped like the real one: every page's navigation links the entry points
    (cycles), a compose page and a bug page link each other. ``update``: one more
    compose and release, one compose page gone, a bug page and the indexes changed.
    ``big``: with a file large enough to go up in parts."""
    composes = ["C1", "C3"] if update else ["C1", "C2"]
    nav = ("../index.html", "../dashboard/", "../releases/", "../../theme/site.css")
    files: dict[str, bytes | str] = {
        "index.html": page("home", "atomic-host/", "theme/site.css", "feeds/atomic-host.atom"),
        "theme/site.css": "body { color: black }\n",
        "theme/app.js": "console.log('hi')\n",
        "atomic-host/index.html": page(
            "download",
            "../index.html",
            "dashboard/index.html",
            "releases/index.html",
            "releases/2015-09-01/CHECKSUM",
            "../latest/atomic-host/x86_64/qcow2/",
            "../streams/atomic-host.json",
            "../theme/site.css",
            "../theme/app.js",
        ),
        "atomic-host/dashboard/index.html": page(
            "dashboard", "../index.html", *(f"../composes/{c}.html" for c in composes)
        ),
        "atomic-host/releases/index.html": page(
            "archive", "../index.html", "2015-09-01/CHECKSUM", "2015-09-01/SHA256SUMS"
        ),
        "atomic-host/releases/2015-09-01/CHECKSUM": "SHA256 (a.qcow2) = 00\n",
        "atomic-host/releases/2015-09-01/SHA256SUMS": "00  a.qcow2\n",
        "atomic-host/bugs/100.html": page(
            "bug 100", *nav, *(f"../composes/{c}.html" for c in composes)
        ),
        "latest/atomic-host/x86_64/qcow2/index.html": page(
            "latest", "https://download.example.org/a.qcow2"
        ),
        "latest/atomic-host/x86_64/qcow2/latest": "a.qcow2\n",
        "manifests/trust.json": '{"keys": {}}\n',
        "streams/atomic-host.json": json.dumps({"stream": "atomic-host", "ids": composes}),
        "feeds/atomic-host.atom": f"<feed>{' '.join(composes)}</feed>\n",
        ".fortnight/build.json": "{}\n",  # the build record: never published
        "theme/.site.css.tmp": "half-written\n",  # a dot-file: never published
    }
    if big:
        files["downloads/big.raw.xz"] = bytes(range(256)) * 800  # 200 KiB: multipart
    for c in composes:
        files[f"atomic-host/composes/{c}.html"] = page(
            c,
            *nav,
            "../bugs/100.html",
            f"../../manifests/atomic-host/composes/{c}.json",
            f"../../logs/{c}/smoke.log",
        )
        files[f"manifests/atomic-host/composes/{c}.json"] = f'{{"compose_id": "{c}"}}\n'
        files[f"logs/{c}/smoke.log"] = f"{c}: PASSED\n"
    if update:
        files["atomic-host/releases/2015-09-15/CHECKSUM"] = "SHA256 (b.qcow2) = 11\n"
        files["atomic-host/releases/index.html"] = page(
            "archive", "../index.html", "2015-09-01/CHECKSUM", "2015-09-15/CHECKSUM"
        )
    return files


def dag_files(*, update: bool = False) -> dict[str, bytes | str]:
    """A site whose links have no cycle: index -> a/ -> p1 -> p2 (-> p3 after ``update``)."""
    last = "p3.html" if update else "style.css"
    files: dict[str, bytes | str] = {
        "index.html": page("home", "a/"),
        "a/index.html": page("a", "p1.html", "../m/one.json"),
        "a/p1.html": page("p1", "p2.html", "../m/one.json", "style.css"),
        "a/p2.html": page("p2", last, "../m/two.json" if update else "style.css"),
        "a/style.css": "p {}\n",
        "m/one.json": "{}\n",
    }
    if update:
        files["a/p3.html"] = page("p3", "style.css", "../m/two.json")
        files["m/two.json"] = "[]\n"
    return files


def write_site(root: Path, files: dict[str, bytes | str]) -> Path:
    """Make the folder hold exactly ``files``."""
    if root.exists():
        for path in sorted(root.rglob("*"), reverse=True):
            if path.is_file():
                path.unlink()
            elif path.is_dir():
                path.rmdir()
    for rel, data in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data.encode() if isinstance(data, str) else data)
    return root


def published(files: dict[str, bytes | str]) -> dict[str, bytes]:
    """What the bucket should hold for ``files``: dot-files and dot-folders left out."""
    return {
        rel: data.encode() if isinstance(data, str) else data
        for rel, data in files.items()
        if not any(part.startswith(".") for part in rel.split("/"))
    }


def run(s3: S3, site: Path, target: str = TARGET, **kw: Any) -> PublishReport:
    kw.setdefault("client_factory", s3.factory())
    kw.setdefault("multipart_threshold", THRESHOLD)
    kw.setdefault("workers", 1)
    return publish(site, target, **kw)


def calls(names: list[str]) -> tuple[str, Callable[..., None]]:
    """A hook recording every S3 operation's name, in order."""

    def record(model: Any, **kwargs: Any) -> None:
        names.append(str(model.name))

    return ("before-call.s3", record)


# --- publishing ----------------------------------------------------------------------------


def test_first_publish_uploads_everything_with_headers(s3: S3, tmp_path: Path) -> None:
    files = site_files()
    site = write_site(tmp_path / "output", files)
    seen: list[tuple[str, int]] = []
    report = run(s3, site, progress=lambda key, size: seen.append((key, size)))

    expected = published(files)
    assert s3.objects() == expected
    assert report.uploaded == len(expected) and report.unchanged == 0 and report.deleted == 0
    assert report.bytes_uploaded == sum(len(b) for b in expected.values())
    assert sorted(report.uploaded_keys) == sorted(f"{PREFIX}/{rel}" for rel in expected)
    assert sorted(seen) == sorted((f"{PREFIX}/{rel}", len(b)) for rel, b in expected.items())
    assert report.uploaded_keys[-1] == f"{PREFIX}/index.html"

    headers = {
        "index.html": ("text/html; charset=utf-8", SHORT),
        "atomic-host/composes/C1.html": ("text/html; charset=utf-8", SHORT),
        "theme/site.css": ("text/css; charset=utf-8", SHORT),
        "theme/app.js": ("text/javascript; charset=utf-8", SHORT),
        "feeds/atomic-host.atom": ("application/atom+xml", SHORT),
        "streams/atomic-host.json": ("application/json", SHORT),
        "manifests/trust.json": ("application/json", SHORT),
        "manifests/atomic-host/composes/C1.json": ("application/json", IMMUTABLE),
        "logs/C1/smoke.log": ("text/plain; charset=utf-8", IMMUTABLE),
        "atomic-host/releases/2015-09-01/CHECKSUM": ("text/plain; charset=utf-8", IMMUTABLE),
        "atomic-host/releases/2015-09-01/SHA256SUMS": ("text/plain; charset=utf-8", IMMUTABLE),
        "latest/atomic-host/x86_64/qcow2/latest": ("text/plain; charset=utf-8", SHORT),
        "downloads/big.raw.xz": ("application/octet-stream", SHORT),
    }
    for rel, (ctype, cache) in headers.items():
        head = s3.head(rel)
        assert (head["ContentType"], head["CacheControl"]) == (ctype, cache), rel
        assert head["Metadata"] == {"sha256": hashlib.sha256(expected[rel]).hexdigest()}, rel
    assert "-" in s3.head("downloads/big.raw.xz")["ETag"]  # went up in parts


def test_second_publish_uploads_nothing_and_reads_only_multipart_objects(
    s3: S3, tmp_path: Path
) -> None:
    site = write_site(tmp_path / "output", site_files())
    run(s3, site)
    names: list[str] = []
    again = run(s3, site, client_factory=s3.factory(calls(names)), workers=4)
    assert (again.uploaded, again.deleted, again.bytes_uploaded) == (0, 0, 0)
    assert again.unchanged == len(published(site_files())) and again.uploaded_keys == []
    # The ETag is the md5 of a single-part object; only the multipart one needs a HEAD.
    assert sorted(names) == ["HeadObject", "ListObjectsV2"]


def test_changing_one_file_uploads_only_it(s3: S3, tmp_path: Path) -> None:
    files = site_files()
    site = write_site(tmp_path / "output", files)
    run(s3, site)
    files["theme/site.css"] = "body { color: blue! }\n"  # same size as before
    files["downloads/big.raw.xz"] = b"\x01" + bytes(range(1, 256)) + bytes(range(256)) * 799
    write_site(site, files)
    report = run(s3, site)
    assert sorted(report.uploaded_keys) == [
        f"{PREFIX}/downloads/big.raw.xz",
        f"{PREFIX}/theme/site.css",
    ]
    assert s3.objects() == published(files)


def test_removed_files_are_deleted_after_every_upload(s3: S3, tmp_path: Path) -> None:
    site = write_site(tmp_path / "output", site_files())
    run(s3, site)
    s3.client().put_object(Bucket=BUCKET, Key=f"{PREFIX}/.well-known/security.txt", Body=b"x")
    s3.client().put_object(Bucket=BUCKET, Key="elsewhere/C2.html", Body=b"x")
    files = site_files(update=True)
    write_site(site, files)
    names: list[str] = []
    report = run(s3, site, client_factory=s3.factory(calls(names)))

    gone = [
        "atomic-host/composes/C2.html",
        "logs/C2/smoke.log",
        "manifests/atomic-host/composes/C2.json",
    ]
    assert sorted(report.deleted_keys) == [f"{PREFIX}/{rel}" for rel in gone]
    assert report.deleted == 3
    assert names.index("DeleteObjects") > max(i for i, n in enumerate(names) if n == "PutObject")
    assert names[-1] == "DeleteObjects"
    after = s3.objects()
    assert {k: v for k, v in after.items() if not k.startswith(".")} == published(files)
    assert ".well-known/security.txt" in after  # not the site's: left alone
    assert s3.client().head_object(Bucket=BUCKET, Key="elsewhere/C2.html")  # outside the prefix


def test_dry_run_changes_nothing(s3: S3, tmp_path: Path) -> None:
    files = site_files()
    site = write_site(tmp_path / "output", files)
    names: list[str] = []
    first = run(s3, site, dry_run=True, client_factory=s3.factory(calls(names)))
    assert first.dry_run and first.uploaded == 0 and first.uploaded_keys == []
    assert len(first.plan.uploads) == len(published(files)) and s3.objects() == {}
    assert set(names) == {"ListObjectsV2"}

    run(s3, site)
    write_site(site, site_files(update=True))
    dry = run(s3, site, dry_run=True)
    assert "atomic-host/composes/C3.html" in [u.rel for u in dry.plan.uploads]
    assert dry.plan.deletes == [
        "atomic-host/composes/C2.html",
        "logs/C2/smoke.log",
        "manifests/atomic-host/composes/C2.json",
    ]
    assert s3.objects() == published(files)


def test_an_empty_prefix_publishes_at_the_bucket_root(s3: S3, tmp_path: Path) -> None:
    s3.create("root-site")
    site = write_site(tmp_path / "output", dag_files())
    report = run(s3, site, "s3://root-site")
    assert report.uploaded_keys[-1] == "index.html"
    keys = s3.client().list_objects_v2(Bucket="root-site")["Contents"]
    assert sorted(o["Key"] for o in keys) == sorted(published(dag_files()))


# --- failures ------------------------------------------------------------------------------


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_an_unreachable_host_is_a_site_error(s3: S3, tmp_path: Path) -> None:
    site = write_site(tmp_path / "output", dag_files())
    factory = s3_client_factory(f"http://127.0.0.1:{closed_port()}", attempts=2)
    with pytest.raises(SiteError) as e:
        publish(site, TARGET, client_factory=factory)
    assert e.value.diagnostics().startswith(f"cannot list {TARGET}: EndpointConnectionError")
    assert SECRET not in e.value.diagnostics() and e.value.exit_code == 9


def test_a_missing_bucket_and_a_missing_site_are_site_errors(s3: S3, tmp_path: Path) -> None:
    site = write_site(tmp_path / "output", dag_files())
    with pytest.raises(SiteError, match=r"cannot list s3://nope/site: NoSuchBucket"):
        run(s3, site, "s3://nope/site")
    with pytest.raises(SiteError) as e:
        run(s3, tmp_path / "missing")
    assert e.value.diagnostics().endswith("missing: no site folder there; run site.build first")


def unavailable(failures: dict[str, int], key: str) -> tuple[str, Callable[..., Any]]:
    """A hook answering 503 to the next ``failures[key]`` attempts to put ``key``."""

    def send(request: Any, **kwargs: Any) -> AWSResponse | None:
        if request.url.split("?")[0].endswith(key) and failures.get(key, 0) > 0:
            failures[key] -= 1
            return AWSResponse(request.url, 503, {}, _Raw(b"<Error><Code>SlowDown</Code></Error>"))
        return None

    return ("before-send.s3.PutObject", send)


class _Raw:
    def __init__(self, body: bytes) -> None:
        self.body = body

    def stream(self, **kwargs: Any) -> Iterator[bytes]:
        yield self.body


def test_a_throttled_upload_is_retried(s3: S3, tmp_path: Path) -> None:
    site = write_site(tmp_path / "output", dag_files())
    failures = {"a/p1.html": 2}
    factory = s3_client_factory(s3.url, attempts=3)  # two failures, then success

    def hooked() -> Any:
        client = factory()
        client.meta.events.register(*unavailable(failures, "a/p1.html"))
        return client

    report = run(s3, site, client_factory=hooked)
    assert failures == {"a/p1.html": 0} and report.uploaded == len(dag_files())


def test_a_failed_upload_names_the_key_and_a_rerun_finishes(s3: S3, tmp_path: Path) -> None:
    site = write_site(tmp_path / "output", dag_files())
    failures = {"a/p1.html": 3}
    factory = s3_client_factory(s3.url, attempts=3)

    def hooked() -> Any:
        client = factory()
        client.meta.events.register(*unavailable(failures, "a/p1.html"))
        return client

    with pytest.raises(SiteError) as e:
        run(s3, site, client_factory=hooked)
    assert e.value.diagnostics() == (
        f"uploading {PREFIX}/a/p1.html failed: SlowDown; "
        "re-run site.publish to finish: it uploads only what is missing"
    )
    assert failures == {"a/p1.html": 0}  # three attempts
    assert SECRET not in e.value.diagnostics()
    assert "a/p1.html" not in s3.objects() and "index.html" not in s3.objects()
    report = run(s3, site)
    assert s3.objects() == published(dag_files())
    assert (
        "site/a/p1.html" in report.uploaded_keys and "site/m/one.json" not in report.uploaded_keys
    )


# --- interrupted publishes -----------------------------------------------------------------


def stop_after(k: int, lock_free_count: list[int]) -> tuple[str, Callable[..., None]]:
    """A hook that lets ``k`` uploads start, then kills the publish."""

    def hook(model: Any, **kwargs: Any) -> None:
        if model.name in ("PutObject", "CreateMultipartUpload"):
            lock_free_count[0] += 1
            if lock_free_count[0] > k:
                raise Interrupted(f"stopped after {k} uploads")

    return ("before-call.s3", hook)


def reachable(bucket: dict[str, bytes], start: set[str]) -> tuple[set[str], list[tuple[str, str]]]:
    """The pages a reader can reach, from a page in ``start`` (those a reader may have
    open) or the root index, following links between pages in the bucket; and (page,
    target) for every link to a missing object on them."""
    todo = [p for p in {*start, "index.html"} if p in bucket and p.endswith(".html")]
    seen = set(todo)
    broken: list[tuple[str, str]] = []
    while todo:
        rel = todo.pop()
        for target in sorted(page_links(rel, bucket[rel].decode())):
            if target not in bucket:
                broken.append((rel, target))
            elif target.endswith(".html") and target not in seen:
                seen.add(target)
                todo.append(target)
    return seen, sorted(broken)


def every_page(bucket: dict[str, bytes]) -> set[str]:
    return {rel for rel in bucket if rel.endswith(".html")}


def publish_with_stops(
    s3: S3, site: Path, target: str, *, step: int, workers: int, check: Callable[[], None]
) -> int:
    """Publish, killing each run after ``step`` more uploads, until a run finishes;
    ``check()`` after every stop. Returns how many runs were killed."""
    bucket = target.removeprefix("s3://").split("/")[0]
    stops = 0
    while True:
        try:
            run(s3, site, target, client_factory=s3.factory(stop_after(step, [0])), workers=workers)
        except Interrupted:
            stops += 1
            check()
            assert stops < 100, "no progress"
            continue
        assert s3.objects(bucket) == published_files(site)
        return stops


def published_files(site: Path) -> dict[str, bytes]:
    """What the bucket should hold for the site folder."""
    files = {p.relative_to(site).as_posix(): p.read_bytes() for p in site.rglob("*") if p.is_file()}
    return published(dict(files))


@pytest.mark.parametrize(
    ("update", "step", "workers"),
    [(False, 1, 1), (True, 1, 1), (False, 3, 4), (True, 2, 4)],
    ids=["first", "update", "first-parallel", "update-parallel"],
)
def test_an_interrupted_publish_never_shows_a_reader_a_broken_link(
    s3: S3, tmp_path: Path, update: bool, step: int, workers: int
) -> None:
    """Killed after every upload (or every few, with parallel uploads) and re-run each
    time: no page a reader can reach (from the root, or from any page reachable at an
    earlier moment or present before the publish) ever links to a missing object, the
    root index changes last, and the last run leaves the bucket equal to the site."""
    before = site_files(big=False) if update else {}
    after = site_files(update=True, big=False) if update else site_files()
    site = tmp_path / "output"
    target = f"s3://{BUCKET}/{PREFIX}"
    if before:
        run(s3, write_site(site, before), target)
    write_site(site, after)
    readers = every_page(published(before))
    expected = published(after)

    def check() -> None:
        now = s3.pages(BUCKET)
        seen, broken = reachable(now, readers)
        assert broken == []
        readers.update(seen)  # a reader may keep any page open
        if now.get("index.html") != published(before).get("index.html"):  # the root: last
            assert set(now) >= set(expected) and all(
                now[rel] == expected[rel] for rel in now if rel.endswith(".html")
            )

    stops = publish_with_stops(s3, site, target, step=step, workers=workers, check=check)
    assert stops >= (8 if update else 20) // step
    done = s3.objects()
    assert reachable(done, every_page(done))[1] == []


@pytest.mark.parametrize("update", [False, True], ids=["first", "update"])
def test_without_link_cycles_no_page_in_the_bucket_ever_links_a_missing_object(
    s3: S3, tmp_path: Path, update: bool
) -> None:
    site = tmp_path / "output"
    if update:
        run(s3, write_site(site, dag_files()), TARGET)
    write_site(site, dag_files(update=update))

    def check() -> None:
        now = s3.pages(BUCKET)
        assert reachable(now, every_page(now))[1] == []

    stops = publish_with_stops(s3, site, TARGET, step=1, workers=1, check=check)
    assert stops == (2 if update else 5)  # one fewer than the uploads: the last run finishes


def test_a_publish_killed_once_is_finished_by_one_rerun(s3: S3, tmp_path: Path) -> None:
    site = write_site(tmp_path / "output", site_files())
    for k in (0, 5, 12, 19):
        bucket = f"killed-at-{k}"
        s3.create(bucket)
        target = f"s3://{bucket}/{PREFIX}"
        with pytest.raises(Interrupted):
            run(s3, site, target, client_factory=s3.factory(stop_after(k, [0])))
        assert len(s3.pages(bucket)) == k
        report = run(s3, site, target)
        assert report.uploaded == len(published(site_files())) - k
        assert s3.objects(bucket) == published(site_files())


# --- the target ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("target", "reason"),
    [
        ("", "is not an s3:// URL"),
        ("fortnight-site/site", "is not an s3:// URL"),
        ("https://fortnight-site.s3.amazonaws.com/site", "is not an s3:// URL"),
        ("s3://", "names no bucket"),
        ("s3:///site", "names no bucket"),
        ("s3://Fortnight_Site/site", "is not a valid S3 bucket name"),
        ("s3://ab", "is not a valid S3 bucket name"),
        ("s3://-site", "is not a valid S3 bucket name"),
        ("s3://a..b/site", "is not a valid S3 bucket name"),
        ("s3://192.168.1.1/site", "is not a valid S3 bucket name"),
        ("s3://fortnight-site:443/site", "is not a valid S3 bucket name"),
        ("s3://fortnight-site/a//b", "the prefix has an empty, '.' or '..' segment"),
        ("s3://fortnight-site/a/../b", "the prefix has an empty, '.' or '..' segment"),
        ("s3://fortnight-site/site?x=1", "has a query, fragment"),
        ("s3://fortnight-site/a\\b", "has a query, fragment, backslash"),
        ("s3://fortnight-site/a\nb", "control character"),
    ],
)
def test_a_bad_target_is_a_config_error_naming_the_option(target: str, reason: str) -> None:
    with pytest.raises(ConfigError) as e:
        parse_target(target)
    line = e.value.diagnostics()
    assert line.startswith("--target ") and reason in line and "\n" not in line
    assert "give --target as s3://BUCKET or s3://BUCKET/PREFIX" in line
    assert e.value.exit_code == 2


def test_credentials_in_the_target_are_refused_and_not_repeated() -> None:
    with pytest.raises(ConfigError) as e:
        parse_target(f"s3://AKIA1234:{SECRET}@fortnight-site/site")
    assert "must not carry credentials" in str(e.value) and SECRET not in e.value.diagnostics()
    with pytest.raises(ConfigError, match="must not carry credentials"):
        parse_target(f"https://user:{SECRET}@example.org/x")


@pytest.mark.parametrize(
    ("target", "bucket", "prefix"),
    [
        ("s3://fortnight-site", "fortnight-site", ""),
        ("s3://fortnight-site/", "fortnight-site", ""),
        ("s3://downloads.example.org/site/", "downloads.example.org", "site"),
        ("s3://fortnight-site/a/b", "fortnight-site", "a/b"),
    ],
)
def test_good_targets(target: str, bucket: str, prefix: str) -> None:
    parsed = parse_target(target)
    assert parsed == Target(bucket, prefix)
    assert parsed.key("index.html") == (f"{prefix}/index.html" if prefix else "index.html")


def test_a_bad_target_fails_before_anything_is_read(tmp_path: Path) -> None:
    def factory() -> Any:
        raise AssertionError("no client for a bad target")

    with pytest.raises(ConfigError, match="--target"):
        publish(tmp_path / "missing", "s3:/x", client_factory=factory)


# --- headers and links (pure) --------------------------------------------------------------


@pytest.mark.parametrize(
    ("rel", "ctype", "cache"),
    [
        ("index.html", "text/html; charset=utf-8", SHORT),
        ("atomic-host/dashboard/page-2.html", "text/html; charset=utf-8", SHORT),
        ("feeds/atomic-host.atom", "application/atom+xml", SHORT),
        ("streams/atomic-host.json", "application/json", SHORT),
        ("manifests/trust.json", "application/json", SHORT),
        ("manifests/atomic-host/releases/2015-09-15.json", "application/json", IMMUTABLE),
        ("logs/C1/x86_64/smoke.log", "text/plain; charset=utf-8", IMMUTABLE),
        ("atomic-host/releases/2015-09-15/CHECKSUM", "text/plain; charset=utf-8", IMMUTABLE),
        ("atomic-host/releases/2015-09-15/SHA256SUMS", "text/plain; charset=utf-8", IMMUTABLE),
        ("CHECKSUM", "text/plain; charset=utf-8", SHORT),
        ("latest/atomic-host/x86_64/qcow2/latest", "text/plain; charset=utf-8", SHORT),
        ("latest/atomic-host/x86_64/qcow2/index.html", "text/html; charset=utf-8", SHORT),
        ("theme/css/main.css", "text/css; charset=utf-8", SHORT),
        ("theme/js/app.js", "text/javascript; charset=utf-8", SHORT),
        ("theme/img/logo.svg", "image/svg+xml", SHORT),
        ("schema/compose.schema.json", "application/json", SHORT),
        ("images/a.qcow2", "application/octet-stream", SHORT),
        ("images/a.raw.xz", "application/octet-stream", SHORT),
        ("robots.txt", "text/plain; charset=utf-8", SHORT),
    ],
)
def test_headers(rel: str, ctype: str, cache: str) -> None:
    assert (content_type(rel), cache_control(rel)) == (ctype, cache)


@pytest.mark.parametrize(
    ("page_rel", "href", "target"),
    [
        ("a/b/page.html", "other.html", "a/b/other.html"),
        ("a/b/page.html", "../index.html", "a/index.html"),
        ("a/b/page.html", "../", "a/index.html"),
        ("a/b/page.html", "./", "a/b/index.html"),
        ("a/b/page.html", "../../", "index.html"),
        ("a/b/page.html", "/feeds/x.atom", "feeds/x.atom"),
        ("a/b/page.html", "c%20d.html?x=1#top", "a/b/c d.html"),
        ("a/b/page.html", "../../../outside.html", None),
        ("a/b/page.html", "https://example.org/x.html", None),
        ("a/b/page.html", "//cdn.example.org/x.js", None),
        ("a/b/page.html", "mailto:ops@example.org", None),
        ("a/b/page.html", "#section", None),
    ],
)
def test_resolve_link(page_rel: str, href: str, target: str | None) -> None:
    assert resolve_link(page_rel, href) == target


def test_page_links_reads_href_and_src() -> None:
    html = '<link href="../s.css"><img src="i.png"><a href="#x">x</a><a href="p.html#y">p</a>'
    assert page_links("a/index.html", html) == {"s.css", "a/i.png", "a/p.html"}


# --- the plan (pure) -----------------------------------------------------------------------


def local(rel: str, *links: str, data: bytes = b"x") -> LocalFile:
    return LocalFile(
        rel=rel,
        path=Path("/nonexistent") / rel,
        size=len(data),
        sha256=hashlib.sha256(data).hexdigest(),
        md5=hashlib.md5(data, usedforsecurity=False).hexdigest(),
        links=frozenset(links),
    )


def remote_of(
    file: LocalFile, *, etag: str | None = None, sha256: str | None = None
) -> RemoteObject:
    return RemoteObject(file.rel, file.size, etag if etag is not None else file.md5, sha256)


def test_plan_orders_files_pages_entry_points_then_the_root_and_deletes_last() -> None:
    files = [
        local("index.html", "a/index.html", "feeds/a.atom"),
        local("a/index.html", "a/p.html", "a/q.html", "index.html"),
        local("a/p.html", "a/q.html", "a/index.html", "theme/s.css"),
        local("a/q.html", "m/q.json"),
        local("feeds/a.atom"),
        local("streams/a.json"),
        local("a/releases/1/CHECKSUM"),
        local("m/q.json"),
        local("theme/s.css"),
        local("latest/a/x/t/latest"),
        local("latest/a/x/t/index.html"),
    ]
    by_rel = {f.rel: f for f in files}
    old = local("a/gone.html")
    result = plan(by_rel, {old.rel: remote_of(old)})
    order = [u.rel for u in result.uploads]
    assert order[-1] == "index.html" and result.deletes == ["a/gone.html"]
    groups = [
        {"a/releases/1/CHECKSUM", "m/q.json", "theme/s.css", "latest/a/x/t/latest"},
        {"a/q.html"},
        {"a/p.html"},
        {"a/index.html", "feeds/a.atom", "streams/a.json", "latest/a/x/t/index.html"},
        {"index.html"},
    ]
    assert [{u.rel for u in stage} for stage in result.stages()] == groups
    assert order.index("a/q.html") < order.index("a/p.html")  # p links q
    assert result.unchanged == []


def test_plan_leaves_unchanged_objects_and_compares_by_content() -> None:
    same = local("m/a.json", data=b"same")
    multipart = local("big.iso", data=b"big")
    stale = local("m/b.json", data=b"new!")
    unknown = local("big2.iso", data=b"big2")
    remote = {
        same.rel: remote_of(same),
        multipart.rel: remote_of(multipart, etag="abc-2", sha256=multipart.sha256),
        stale.rel: RemoteObject(stale.rel, stale.size, "0" * 32, None),
        unknown.rel: remote_of(unknown, etag="def-3"),  # metadata not read: upload
    }
    files = {f.rel: f for f in (same, multipart, stale, unknown)}
    result = plan(files, remote)
    assert [u.rel for u in result.uploads] == ["big2.iso", "m/b.json"]
    assert result.unchanged == ["big.iso", "m/a.json"] and result.deletes == []
    assert [u.new for u in result.uploads] == [False, False]
    forced = plan(files, remote, force=True)
    assert len(forced.uploads) == 4 and forced.unchanged == []


def test_in_a_link_cycle_new_pages_go_before_pages_readers_may_have_open() -> None:
    # A changed bug page and a new compose page link each other: upload the new one first,
    # as no reader can reach it until the bug page (already published) links it.
    bug = local("a/bugs/1.html", "a/composes/C3.html", data=b"v2")
    compose = local("a/composes/C3.html", "a/bugs/1.html")
    old_bug = local("a/bugs/1.html", data=b"v1")
    result = plan({bug.rel: bug, compose.rel: compose}, {old_bug.rel: remote_of(old_bug)})
    assert [(u.rel, u.new, u.stage) for u in result.uploads] == [
        ("a/composes/C3.html", True, 0),
        ("a/bugs/1.html", False, 1),
    ]


def test_the_root_index_is_last_even_when_a_page_links_it_and_nothing_else_changed() -> None:
    files = {f.rel: f for f in (local("index.html", "x.html"), local("x.html", "index.html"))}
    result = plan(files, {})
    assert [u.rel for u in result.uploads] == ["x.html", "index.html"]
    assert [len(s) for s in result.stages()] == [1, 1]


# --- the task, on a real site --------------------------------------------------------------


def test_site_publish_task_on_a_built_site(
    s3: S3, make_history: Callable[..., Any], tmp_path: Path
) -> None:
    """Build the real site, publish it with the task, add a compose, publish only the change."""
    from tests.sitekit import day, scenario_current  # noqa: PLC0415 - sitekit imports conftest

    h = make_history()
    out = tmp_path / "out"
    h.build(out, scenario_current(h))
    env = {
        "AWS_ACCESS_KEY_ID": "testing-key-id",
        "AWS_SECRET_ACCESS_KEY": SECRET,
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    args = ("site.publish", "--output", str(out), "--target", TARGET, "--endpoint-url", s3.url)
    dry = run_invoke(*args, "--dry-run", env=env)
    assert dry.returncode == 0, dry.stderr
    assert "dry run: nothing changed" in dry.stdout
    assert s3.objects() == {}
    first = run_invoke(*args, env=env)
    assert first.returncode == 0, first.stderr
    files = {
        p.relative_to(out).as_posix(): p.read_bytes()
        for p in out.rglob("*")
        if p.is_file() and ".fortnight" not in p.parts
    }
    assert f"published {TARGET}: {len(files)} uploaded" in first.stdout
    assert s3.objects() == files
    assert s3.head("index.html")["ContentType"] == "text/html; charset=utf-8"
    again = run_invoke(*args, env=env)
    assert f"0 uploaded (0 B), {len(files)} unchanged, 0 deleted" in again.stdout
    # A new nightly compose changes a few pages; only they go up.
    h.compose(day(15))
    h.build(out, day(16))
    update = run_invoke(*args, env=env)
    assert update.returncode == 0, update.stderr
    uploaded = int(update.stdout.split(": ")[1].split(" uploaded")[0])
    assert 0 < uploaded < len(files) // 2
    assert (
        "Fedora-Atomic-28-20180516.0" in s3.objects()["atomic-host/dashboard/index.html"].decode()
    )
    assert SECRET not in first.stdout + first.stderr + update.stdout + update.stderr
    missing = run_invoke("site.publish", "--output", str(out), env=env)
    assert missing.returncode == 2 and "--target is required" in missing.stderr
