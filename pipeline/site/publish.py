"""Publish a built site folder to S3, incrementally and in an order readers never notice
(``invoke site.publish``).

Three steps. :func:`scan` reads the site folder (skipping dot-files and dot-folders, so
the build record in ``.fortnight/`` is never published): size, sha256, md5 and, for HTML
pages, the site-relative links they hold. :func:`pipeline.adapters.aws.s3.list_remote`
lists the bucket prefix.
:func:`plan`, pure, compares the two and orders the uploads; :func:`publish` runs it.

What is unchanged is decided by content, never by time: an object is unchanged when its
size matches and either its ETag is the file's md5 (S3 sets the ETag of an object
uploaded in one part, without SSE-KMS or SSE-C, to the md5 of its bytes; that needs no
request beyond the listing) or, when the ETag is something else (a multipart upload,
KMS encryption), its ``x-amz-meta-sha256`` metadata, read with one ``head_object``,
is the file's sha256. Every upload stores that metadata. So an interrupted publish,
re-run, uploads only what is missing or different and then finishes the job.

Order (see :func:`plan`): first every file that is not an HTML page (manifests, logs,
checksums, style sheets, "latest" name files…), then the HTML pages that are not entry
points, then the entry points (``index.html`` at any depth, everything under
``streams/`` and ``feeds/``, ``*.atom``), then the root ``index.html`` alone, and only
then deletions of what the site no longer has. Within each group, a page goes after the
pages of its group it links to; pages that link each other (a cycle) go together, the
new ones (not yet in the bucket, so no reader can reach them) before the ones a reader
may already have open. Uploads of one *stage* (no link between them) run in parallel.
An OSTree repository shipped with the site (a folder with a ``config`` file) goes up in
the first group in three steps: its objects, deltas and ``config``, then ``summary`` and
``summary.sig``, then ``refs/heads/``, so a client never sees a ref or a summary naming
an object that is not there yet.

The headers are part of the upload: ``Content-Type`` (:func:`content_type`) and
``Cache-Control`` (:func:`cache_control`: a year and ``immutable`` for content that
never changes at its path, five minutes for the rest). Large files go up in parts
(boto3's managed transfer). Credentials come from boto3's standard chain only; nothing
here prints or logs, and error messages are built from the error code and message,
never from the client's configuration.
"""

from __future__ import annotations

import hashlib
import mimetypes
import os
import posixpath
import re
import threading
from collections.abc import Callable, Collection, Mapping
from concurrent.futures import FIRST_EXCEPTION, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from html.parser import HTMLParser
from pathlib import Path, PurePosixPath
from urllib.parse import unquote, urlsplit

from pipeline.adapters.aws import s3
from pipeline.adapters.aws.s3 import ClientFactory, RemoteObject, Target, Transfer
from pipeline.errors import ConfigError, SiteError

#: Called once per uploaded object, when it is in place: ``(key, bytes)``. It may be
#: called from worker threads (``rich.progress.Progress`` is thread-safe).
Progress = Callable[[str, int], None]

#: Files at least this large go up in parts (boto3's managed transfer).
MULTIPART_THRESHOLD = 8 * 1024 * 1024
#: Parallel uploads within one stage of the plan.
WORKERS = s3.WORKERS
IMMUTABLE = "public, max-age=31536000, immutable"
SHORT = "public, max-age=300"
TARGET_HINT = "give --target as s3://BUCKET or s3://BUCKET/PREFIX, e.g. s3://downloads-example/site"

TEXT = "text/plain; charset=utf-8"
#: Content types by file name, then by suffix; the rest from :mod:`mimetypes`.
NAME_TYPES = {"CHECKSUM": TEXT, "SHA256SUMS": TEXT, "latest": TEXT}
SUFFIX_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".htm": "text/html; charset=utf-8",
    ".atom": "application/atom+xml",
    ".json": "application/json",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".log": TEXT,
    ".txt": TEXT,
    ".xml": "application/xml",
    ".svg": "image/svg+xml",
    ".png": "image/png",
    ".ico": "image/vnd.microsoft.icon",
    ".woff2": "font/woff2",
}
CHECKSUM_NAMES = frozenset({"CHECKSUM", "SHA256SUMS"})

# Plan groups, uploaded in this order.
OTHER, PAGE, ENTRY, ROOT = range(4)
#: OSTree objects (a commit's detached ``.commitmeta`` gains signatures: not immutable)
#: and static deltas never change at their path.
OSTREE_IMMUTABLE = re.compile(
    r"(^|/)objects/[0-9a-f]{2}/[0-9a-f]{62}\.(commit|dirtree|dirmeta|filez|file)$"
    r"|(^|/)deltas/[A-Za-z0-9+_-]{2}/"
)
#: Within the first group, an OSTree repository's files go in three steps: content, then
#: ``summary`` and ``summary.sig``, then ``refs/heads/``.
OSTREE_CONTENT, OSTREE_SUMMARY, OSTREE_REFS = range(3)
ROOT_INDEX = "index.html"

# S3's bucket naming rules (virtual-host style, so no upper case or underscores).
_BUCKET = re.compile(r"^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$")
_IP = re.compile(r"^\d+\.\d+\.\d+\.\d+$")
_CHUNK = 1 << 20


# --- the target -----------------------------------------------------------------------------


def parse_target(target: str) -> Target:
    """``s3://BUCKET`` or ``s3://BUCKET/PREFIX`` as a :class:`Target`.

    Raises:
        ConfigError: not an ``s3://`` URL, a bad bucket name, credentials in the URL, or a
            prefix with empty, ``.`` or ``..`` segments. The message names ``--target``
            (and never repeats a URL that carries credentials).
    """

    def bad(reason: str) -> ConfigError:
        return ConfigError(f"--target {reason}", hint=TARGET_HINT)

    scheme, sep, rest = target.partition("://")
    if "@" in rest.partition("/")[0]:
        raise bad("must not carry credentials (they come from AWS's standard chain)")
    if not sep or scheme != "s3":
        raise bad(f"{target!r} is not an s3:// URL")
    if any(c in target for c in "?#\\") or any(ord(c) < 32 or ord(c) == 127 for c in target):
        raise bad(f"{target!r} has a query, fragment, backslash or control character")
    bucket, _, prefix = rest.partition("/")
    if not bucket:
        raise bad(f"{target!r} names no bucket")
    if not _BUCKET.match(bucket) or ".." in bucket or _IP.match(bucket):
        raise bad(f"{target!r}: {bucket!r} is not a valid S3 bucket name")
    prefix = prefix.strip("/")
    if prefix and any(part in ("", ".", "..") for part in prefix.split("/")):
        raise bad(f"{target!r}: the prefix has an empty, '.' or '..' segment")
    return Target(bucket, prefix)


# --- headers --------------------------------------------------------------------------------


def content_type(rel: str) -> str:
    """The ``Content-Type`` of the site-relative path ``rel`` (text types say UTF-8)."""
    path = PurePosixPath(rel)
    if path.name in NAME_TYPES:
        return NAME_TYPES[path.name]
    known = SUFFIX_TYPES.get(path.suffix.lower())
    if known:
        return known
    guessed, encoding = mimetypes.guess_type(path.name, strict=False)
    if guessed is None or encoding is not None:  # foo.tar.xz is an xz file, not a tar
        return "application/octet-stream"
    return f"{guessed}; charset=utf-8" if guessed.startswith("text/") else guessed


def cache_control(rel: str) -> str:
    """The ``Cache-Control`` of ``rel``: immutable for content that never changes at its path.

    That is the signed manifests (``manifests/``, except ``manifests/trust.json``), the
    test logs (``logs/``) and a release's ``CHECKSUM`` and ``SHA256SUMS``
    (``<product>/releases/<id>/``). Everything else (pages, feeds, streams, ``latest/``,
    the theme, ``trust.json``) may change at the same path: five minutes.
    """
    parts = PurePosixPath(rel).parts
    if parts[0] == "manifests" and rel != "manifests/trust.json":
        return IMMUTABLE
    if parts[0] == "logs":
        return IMMUTABLE
    if parts[-1] in CHECKSUM_NAMES and len(parts) >= 4 and parts[-3] == "releases":
        return IMMUTABLE
    if OSTREE_IMMUTABLE.search(rel):
        return IMMUTABLE
    return SHORT


# --- links ----------------------------------------------------------------------------------


class _Links(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.values: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.values.extend(v for k, v in attrs if k in ("href", "src") and v)


def resolve_link(page: str, href: str) -> str | None:
    """The site-relative path ``href`` on the page ``page`` points at, or None.

    None for links off the site (a scheme, ``//host``), fragments of the same page, and
    paths that climb above the site root. A link to a folder means its ``index.html``;
    a leading ``/`` means the site root; query and fragment are dropped.
    """
    parts = urlsplit(href.strip())
    if parts.scheme or parts.netloc or not parts.path:
        return None
    path = unquote(parts.path)
    base = "" if path.startswith("/") else posixpath.dirname(page)
    joined = posixpath.normpath(posixpath.join(base, path.lstrip("/")))
    if joined in (".", "") or joined == ".." or joined.startswith("../"):
        return ROOT_INDEX if joined in (".", "") else None
    return f"{joined}/{ROOT_INDEX}" if path.endswith("/") else joined


def page_links(page: str, html: str) -> frozenset[str]:
    """The site-relative paths the HTML page ``page`` links to (``href`` and ``src``)."""
    parser = _Links()
    parser.feed(html)
    parser.close()
    found = (resolve_link(page, v) for v in parser.values)
    return frozenset(f for f in found if f is not None and f != page)


# --- the two sides --------------------------------------------------------------------------


@dataclass(frozen=True)
class LocalFile:
    """A file of the site: ``rel`` is its path relative to the site root (``/``-separated)."""

    rel: str
    path: Path
    size: int
    sha256: str
    md5: str
    links: frozenset[str] = frozenset()


def is_html(rel: str) -> bool:
    """An HTML page (by suffix)."""
    return rel.lower().endswith((".html", ".htm"))


def _hidden(name: str) -> bool:
    return name.startswith(".")


def scan(site: Path) -> dict[str, LocalFile]:
    """Every file of the site folder but dot-files and dot-folders, by site-relative path.

    Raises:
        SiteError: the folder does not exist, or a file cannot be read.
    """
    if not site.is_dir():
        raise SiteError(f"{site}: no site folder there", hint="run site.build first")
    files: dict[str, LocalFile] = {}
    try:
        for top, dirs, names in os.walk(site):
            dirs[:] = sorted(d for d in dirs if not _hidden(d))
            for name in sorted(names):
                path = Path(top, name)
                if _hidden(name) or not path.is_file():
                    continue
                rel = path.relative_to(site).as_posix()
                files[rel] = _read(rel, path)
    except OSError as e:
        raise SiteError(f"{site}: cannot read the site folder: {e}", hint="check it") from e
    return files


def _read(rel: str, path: Path) -> LocalFile:
    sha256 = hashlib.sha256()
    md5 = hashlib.md5(usedforsecurity=False)
    size = 0
    html = bytearray() if is_html(rel) else None
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            sha256.update(chunk)
            md5.update(chunk)
            size += len(chunk)
            if html is not None:
                html.extend(chunk)
    links = page_links(rel, html.decode("utf-8", "replace")) if html is not None else frozenset()
    return LocalFile(rel, path, size, sha256.hexdigest(), md5.hexdigest(), links)


# --- the plan (pure) ------------------------------------------------------------------------


def group(rel: str) -> int:
    """Which group of the order ``rel`` goes up in: ``OTHER``, ``PAGE``, ``ENTRY`` or ``ROOT``."""
    if rel == ROOT_INDEX:
        return ROOT
    name = PurePosixPath(rel).name
    if name == ROOT_INDEX or rel.startswith(("streams/", "feeds/")) or rel.endswith(".atom"):
        return ENTRY
    return PAGE if is_html(rel) else OTHER


def ostree_step(rel: str, names: Collection[str]) -> int:
    """Which step of an OSTree repository's upload ``rel`` is in (a repository is a folder
    of the site with a ``config`` file); ``OSTREE_CONTENT`` for every other file."""
    path = PurePosixPath(rel)
    parent = "" if str(path.parent) == "." else f"{path.parent}/"
    if path.name in ("summary", "summary.sig") and f"{parent}config" in names:
        return OSTREE_SUMMARY
    parts = path.parts
    for i in range(len(parts) - 2):
        if parts[i] == "refs" and parts[i + 1] == "heads":
            root = "/".join(parts[:i])
            if (f"{root}/config" if root else "config") in names:
                return OSTREE_REFS
    return OSTREE_CONTENT


@dataclass(frozen=True)
class Upload:
    """One object to upload: ``stage`` orders them (all of a stage before the next begins)."""

    rel: str
    stage: int
    size: int
    new: bool


@dataclass(frozen=True)
class Plan:
    """What a publish does: ``uploads`` in order, then ``deletes``; ``unchanged`` is left be."""

    uploads: list[Upload]
    unchanged: list[str]
    deletes: list[str]

    def stages(self) -> list[list[Upload]]:
        """The uploads, stage by stage."""
        out: dict[int, list[Upload]] = {}
        for u in self.uploads:
            out.setdefault(u.stage, []).append(u)
        return [out[s] for s in sorted(out)]


def plan(
    local: Mapping[str, LocalFile], remote: Mapping[str, RemoteObject], *, force: bool = False
) -> Plan:
    """Compare the site with the bucket and order the uploads; no I/O.

    A file is uploaded when it has no object, or its object does not hold its bytes
    (:meth:`RemoteObject.same_as`; a ``sha256`` not read counts as unknown), or ``force``.
    Objects with no file are deleted, after every upload. Uploads go group by group
    (:func:`group`), the root ``index.html`` alone and last. Within a group, a page is
    staged after the pages of the group it links to; pages that link each other share a
    stage, the new ones a stage before those already in the bucket.
    """
    changed = [
        rel
        for rel in sorted(local)
        if force or rel not in remote or not remote[rel].same_as(local[rel])
    ]
    todo = set(changed)
    unchanged = [rel for rel in sorted(local) if rel not in todo]
    deletes = sorted(rel for rel in remote if rel not in local)
    uploads: list[Upload] = []
    stage = 0
    steps = [(OTHER, s) for s in (OSTREE_CONTENT, OSTREE_SUMMARY, OSTREE_REFS)]
    for g, step in [*steps, (PAGE, 0), (ENTRY, 0), (ROOT, 0)]:
        members = [
            rel
            for rel in changed
            if group(rel) == g and (g != OTHER or ostree_step(rel, local) == step)
        ]
        if not members:
            continue
        inside = set(members)
        edges = {rel: sorted(t for t in local[rel].links if t in inside) for rel in members}
        staged = _stages(members, edges, existing=set(remote))
        uploads.extend(
            Upload(rel, stage + s, local[rel].size, rel not in remote) for rel, s in staged.items()
        )
        stage += max(staged.values()) + 1
    uploads.sort(key=lambda u: (u.stage, u.rel))
    return Plan(uploads, unchanged, deletes)


def _stages(nodes: list[str], edges: Mapping[str, list[str]], existing: set[str]) -> dict[str, int]:
    """A stage per node: after every node it links to, except inside a cycle, where the new
    nodes go a stage before the existing ones."""
    components = _components(nodes, edges)
    where = {n: i for i, c in enumerate(components) for n in c}
    level: list[int] = []
    for i, comp in enumerate(components):  # targets first: components come in reverse topo order
        below = [level[where[t]] for n in comp for t in edges[n] if where[t] != i]
        level.append(max(below, default=-1) + 1)
    out: dict[str, int] = {}
    for i, comp in enumerate(components):
        for n in comp:
            late = len(comp) > 1 and n in existing
            out[n] = 2 * level[i] + (1 if late else 0)
    used = sorted(set(out.values()))  # compact: no empty stages
    rank = {s: r for r, s in enumerate(used)}
    return {n: rank[s] for n, s in out.items()}


def _components(nodes: list[str], edges: Mapping[str, list[str]]) -> list[list[str]]:
    """Strongly connected components (Tarjan, iterative), each after those it links to."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    on_stack: set[str] = set()
    stack: list[str] = []
    out: list[list[str]] = []
    for root in nodes:
        if root in index:
            continue
        work: list[tuple[str, int]] = [(root, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            targets = edges[node]
            if i < len(targets):
                work.append((node, i + 1))
                t = targets[i]
                if t not in index:
                    work.append((t, 0))
                elif t in on_stack:
                    low[node] = min(low[node], index[t])
                continue
            if low[node] == index[node]:
                comp: list[str] = []
                while True:
                    n = stack.pop()
                    on_stack.discard(n)
                    comp.append(n)
                    if n == node:
                        break
                out.append(sorted(comp))
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    return out


# --- publishing -----------------------------------------------------------------------------


@dataclass
class PublishReport:
    """What a publish did (or, in a dry run, would do)."""

    target: str
    plan: Plan
    dry_run: bool
    uploaded: int = 0
    bytes_uploaded: int = 0
    deleted: int = 0
    uploaded_keys: list[str] = field(default_factory=list)
    deleted_keys: list[str] = field(default_factory=list)

    @property
    def unchanged(self) -> int:
        """Files whose object already held their bytes."""
        return len(self.plan.unchanged)


def publish(
    site: Path,
    target: str,
    *,
    client_factory: ClientFactory,
    dry_run: bool = False,
    force: bool = False,
    progress: Progress | None = None,
    workers: int = WORKERS,
    multipart_threshold: int = MULTIPART_THRESHOLD,
    on_plan: Callable[[Plan], None] | None = None,
) -> PublishReport:
    """Make ``target`` (``s3://BUCKET/PREFIX``) hold exactly the site folder ``site``.

    Uploads only what is new or changed (by content; ``force`` uploads everything, e.g.
    after the header rules changed), in :func:`plan`'s order, then deletes objects the
    site no longer has. ``dry_run``: list and compare, change nothing. ``on_plan`` sees
    the plan before anything is uploaded (e.g. to size a progress bar); ``progress`` is
    called per uploaded object. A failure stops the publish where it is: what went up
    stands, nothing is deleted, and a re-run finishes the job.

    Raises:
        ConfigError: ``target`` is not a valid ``s3://`` URL.
        SiteError: the site folder is missing, the bucket cannot be listed, or an upload,
            read or delete failed after retries (the message names the key).
    """
    where = parse_target(target)
    local = scan(site)
    client = client_factory()
    remote = s3.list_remote(client, where)
    remote = s3.read_hashes(client, where, local, remote, workers=workers)
    the_plan = plan(local, remote, force=force)
    report = PublishReport(str(where), the_plan, dry_run)
    if on_plan is not None:
        on_plan(the_plan)
    if dry_run:
        return report
    with s3.transfer(client, multipart_threshold) as transfer:
        _upload_all(transfer, where, local, report, progress=progress, workers=workers)

    def deleted(keys: list[str]) -> None:
        report.deleted += len(keys)
        report.deleted_keys.extend(keys)

    s3.delete_keys(client, where, the_plan.deletes, deleted)
    return report


def _upload_all(
    transfer: Transfer,
    where: Target,
    local: Mapping[str, LocalFile],
    report: PublishReport,
    *,
    progress: Progress | None,
    workers: int,
) -> None:
    """Upload the plan's files stage by stage, counting them in ``report``.

    Raises:
        SiteError: an upload failed (what went up before it stands).
    """
    lock = threading.Lock()

    def one(upload: Upload) -> None:
        key = where.key(upload.rel)
        upload_one(transfer, where.bucket, key, local[upload.rel])
        with lock:
            report.uploaded += 1
            report.bytes_uploaded += upload.size
            report.uploaded_keys.append(key)
        if progress is not None:
            progress(key, upload.size)

    with ThreadPoolExecutor(max_workers=max(1, workers)) as pool:
        for stage in report.plan.stages():
            _run_stage(pool, one, stage)


def _run_stage(
    pool: ThreadPoolExecutor, one: Callable[[Upload], None], stage: list[Upload]
) -> None:
    """Upload one stage; on the first failure, start nothing more and raise it (in plan
    order) once what is running has finished."""
    futures: list[Future[None]] = [pool.submit(one, u) for u in stage]
    _, pending = wait(futures, return_when=FIRST_EXCEPTION)
    for f in pending:
        f.cancel()
    wait(futures)
    for f in futures:
        if not f.cancelled() and f.exception() is not None:
            f.result()  # raises it


def headers(file: LocalFile) -> dict[str, object]:
    """The upload's headers: ``Content-Type``, ``Cache-Control`` and the ``sha256`` metadata."""
    return {
        "ContentType": content_type(file.rel),
        "CacheControl": cache_control(file.rel),
        "Metadata": {s3.SHA256_META: file.sha256},
    }


def upload_one(transfer: Transfer, bucket: str, key: str, file: LocalFile) -> None:
    """Upload one file with its headers and ``sha256`` metadata (in parts when large).

    Raises:
        SiteError: it failed after retries (names the key).
    """
    s3.upload_file(transfer, bucket, key, file.path, headers=headers(file))
