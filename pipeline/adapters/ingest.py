"""Read a Pungi compose's metadata with productmd, from a directory or an http(s) URL.

A compose is ``<compose-id>/compose/metadata/{composeinfo.json,images.json}``;
each image path is relative to ``<compose-id>/compose/``. SRC may be the compose
root or its ``compose/`` folder. ``rpms.json`` (the package list) is read when the
compose has one; a compose without it is fine (its package list is unknown).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

import productmd.composeinfo
import productmd.rpms
import requests
from requests.adapters import HTTPAdapter
from urllib3.util.retry import Retry

from pipeline.adapters.metadata import (
    DEFAULT_MAX_METADATA_BYTES,
    check_header,
    loads_metadata,
    read_images,
)
from pipeline.errors import FetchError, InputError


class MissingMetadata(FetchError):
    """A metadata file is not in the compose (a local file that does not exist, or HTTP 404)."""


def http_session(retries: int = 4, backoff: float = 0.5) -> requests.Session:
    """A session that retries connection errors and 429/5xx with exponential backoff."""
    session = requests.Session()
    retry = Retry(
        total=retries,
        connect=retries,
        read=retries,
        status=retries,
        backoff_factor=backoff,
        status_forcelist=(429, 500, 502, 503, 504),
        allowed_methods=("GET", "HEAD"),
        raise_on_status=False,
    )
    adapter = HTTPAdapter(max_retries=retry)
    session.mount("http://", adapter)
    session.mount("https://", adapter)
    return session


def is_url(src: str) -> bool:
    """Whether SRC is an http(s) URL rather than a local path."""
    return src.startswith(("http://", "https://"))


@dataclass(frozen=True)
class ComposeLocation:
    """Where a compose's ``compose/`` folder is: a local path or a base URL."""

    source: str
    local_dir: Path | None
    base_url: str | None

    @property
    def compose_source(self) -> str:
        """The ``compose/`` folder as recorded in manifests: a resolved path or a URL."""
        return str(self.local_dir) if self.local_dir is not None else str(self.base_url)

    def image_location(self, path: str) -> str:
        """Where one image's file is (a local path or a URL)."""
        if self.local_dir is not None:
            return str(self.local_dir / path)
        assert self.base_url is not None
        return self.base_url + path


@dataclass(frozen=True)
class LoadedCompose:
    """Parsed productmd metadata, and where it came from."""

    location: ComposeLocation
    info: Any  # productmd.composeinfo.ComposeInfo
    images: Any  # productmd.images.Images
    rpms: Any = None  # productmd.rpms.Rpms, or None when the compose has no rpms.json


Fetcher = Callable[[str], bytes]

#: The environment variable that overrides the cap on a metadata file's size.
MAX_METADATA_ENV = "FORTNIGHT_MAX_METADATA_BYTES"


def load_compose(
    src: str,
    session: requests.Session | None = None,
    *,
    max_bytes: int = DEFAULT_MAX_METADATA_BYTES,
) -> LoadedCompose:
    """Find and parse a compose's ``composeinfo.json`` and ``images.json``, each at most
    ``max_bytes`` long, in time linear in their size.

    Raises:
        InputError: no metadata found, or it is too large, malformed, of the wrong type
            or an unsupported version.
        FetchError: a URL could not be fetched after retries.
    """
    if is_url(src):
        location, fetch = _locate_url(src, session or http_session(), max_bytes)
    else:
        location, fetch = _locate_dir(Path(src), max_bytes)
    info = _parse(fetch, "composeinfo.json", "productmd.composeinfo", _composeinfo)
    images = read_images(fetch("images.json"), "images.json")
    if info.compose.id != images.compose.id:
        raise InputError(
            f"{location.source}: composeinfo.json is for {info.compose.id} "
            f"but images.json is for {images.compose.id}",
            hint="the metadata folder mixes two composes",
        )
    rpms = _load_rpms(fetch, info.compose.id, location)
    return LoadedCompose(location=location, info=info, images=images, rpms=rpms)


def _load_rpms(fetch: Fetcher, compose_id: str, location: ComposeLocation) -> Any:
    try:
        rpms = _parse(fetch, "rpms.json", "productmd.rpms", _rpms)
    except MissingMetadata:
        return None
    if rpms.compose.id != compose_id:
        raise InputError(
            f"{location.source}: rpms.json is for {rpms.compose.id} but composeinfo.json "
            f"is for {compose_id}",
            hint="the metadata folder mixes two composes",
        )
    return rpms


def _too_large(where: str, max_bytes: int) -> InputError:
    return InputError(
        f"{where}: larger than the {max_bytes} byte limit for compose metadata",
        hint=f"if the compose really is that large, raise the limit with "
        f"--max-metadata-bytes or {MAX_METADATA_ENV}",
    )


def _locate_dir(src: Path, max_bytes: int) -> tuple[ComposeLocation, Fetcher]:
    if not src.is_dir():
        raise InputError(f"--source {src}: not a directory or an http(s) URL")
    for candidate in (src / "compose", src):
        if (candidate / "metadata" / "composeinfo.json").is_file():
            compose_dir = candidate.resolve()
            break
    else:
        raise InputError(
            f"--source {src}: no metadata/composeinfo.json in it or in its compose/ folder",
            hint="point --source at a Pungi compose (the compose root or its compose/ folder)",
        )

    def fetch(name: str) -> bytes:
        path = compose_dir / "metadata" / name
        try:
            with path.open("rb") as f:
                data = f.read(max_bytes + 1)  # never more, even if the file grows
        except FileNotFoundError:
            raise MissingMetadata(f"{path}: missing", hint="is the compose complete?") from None
        except OSError as e:
            raise InputError(f"{path}: cannot be read ({e.strerror})") from None
        if len(data) > max_bytes:
            raise _too_large(str(path), max_bytes)
        return data

    return ComposeLocation(str(src), compose_dir, None), fetch


def _locate_url(
    src: str, session: requests.Session, max_bytes: int
) -> tuple[ComposeLocation, Fetcher]:
    root = src.rstrip("/") + "/"
    last_error = ""
    for base in (root + "compose/", root):
        url = base + "metadata/composeinfo.json"
        status, body, error = _get(session, url, max_bytes)
        if status == 200:
            break
        last_error = error
        if status is None or status >= 500:  # the other layout would fail the same way
            what = "unreachable" if status is None else "server error after retries"
            raise FetchError(
                f"{url}: {what} ({error})", hint="check the URL and the network, then re-run"
            )
    else:
        raise InputError(
            f"--source {src}: no metadata/composeinfo.json under it ({last_error})",
            hint="point --source at a Pungi compose (root or compose/ folder)",
        )
    first = {"composeinfo.json": body}

    def fetch(name: str) -> bytes:
        if name in first:
            return first.pop(name)
        url = base + "metadata/" + name
        status, data, error = _get(session, url, max_bytes)
        if status == 404:
            raise MissingMetadata(f"{url}: {error}", hint="is the compose complete?")
        if status != 200:
            raise FetchError(f"{url}: {error}", hint="is the compose complete? re-run later")
        return data

    return ComposeLocation(src, None, base), fetch


def _get(session: requests.Session, url: str, max_bytes: int) -> tuple[int | None, bytes, str]:
    """GET ``url``, streamed and stopped past ``max_bytes``.

    Raises:
        InputError: the body is longer than ``max_bytes``.
    """
    try:
        with session.get(url, timeout=30, stream=True) as resp:
            if resp.status_code != 200:
                return resp.status_code, b"", f"HTTP {resp.status_code}"
            body = bytearray()
            for chunk in resp.iter_content(chunk_size=1 << 20):
                body += chunk
                if len(body) > max_bytes:
                    raise _too_large(url, max_bytes)
            return 200, bytes(body), ""
    except requests.RequestException as e:
        return None, b"", f"{type(e).__name__}: {_first_line(str(e))}"


def _first_line(text: str) -> str:
    return text.strip().splitlines()[0] if text.strip() else text


def _parse(
    fetch: Fetcher, name: str, expected_type: str, build: Callable[[dict[str, Any], str], Any]
) -> Any:
    data = loads_metadata(fetch(name), name)
    check_header(data, name, expected_type)
    return build(data, name)


def _composeinfo(data: dict[str, Any], name: str) -> Any:
    """productmd's ``ComposeInfo`` (a small file: productmd's own loader is fine)."""
    return _deserialize(productmd.composeinfo.ComposeInfo(), data, name)


def _rpms(data: dict[str, Any], name: str) -> Any:
    """productmd's ``Rpms``: the package list, read by productmd's own loader."""
    return _deserialize(productmd.rpms.Rpms(), data, name)


def _deserialize(obj: Any, data: dict[str, Any], name: str) -> Any:
    try:
        obj.deserialize(data)
    except (KeyError, ValueError, TypeError, AttributeError, IndexError) as e:
        detail = f"missing field {e}" if isinstance(e, KeyError) else _first_line(str(e))
        raise InputError(f"{name}: {detail}", hint="the metadata is malformed") from None
    return obj


def iter_images(images: Any) -> list[tuple[str, str, Any]]:
    """Every (variant, arch, productmd image) in the metadata, in a stable order."""
    out: list[tuple[str, str, Any]] = []
    for variant in sorted(images.images):
        for arch in sorted(images.images[variant]):
            out.extend((variant, arch, img) for img in images.images[variant][arch])
    return sorted(out, key=lambda t: (t[0], t[1], t[2].path))


def check_image_path(location: ComposeLocation, path: str) -> PurePosixPath:
    """Reject an image path that could escape the compose.

    Raises:
        InputError: the path is absolute, contains ``..``, or (locally) resolves
            outside the compose through a symlink.
    """
    pure = PurePosixPath(path)
    if pure.is_absolute() or not path or "\\" in path:
        raise InputError(
            f"images.json: image path {path!r} is absolute",
            hint="image paths must be relative to the compose/ folder",
        )
    if ".." in pure.parts:
        raise InputError(
            f"images.json: image path {path!r} escapes the compose ('..')",
            hint="image paths must stay inside the compose/ folder",
        )
    if location.local_dir is not None:
        resolved = (location.local_dir / pure).resolve()
        if not resolved.is_relative_to(location.local_dir):
            raise InputError(
                f"images.json: image path {path!r} escapes the compose through a symlink "
                f"(to {resolved})",
                hint="image files must live inside the compose/ folder",
            )
    return pure
