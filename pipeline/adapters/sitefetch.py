"""Reading a published site: a folder, or an http(s) URL (with requests).

Names are relative, ``/``-separated, and checked before use: no absolute path, no ``..``,
no empty or hidden part, so a hostile index cannot make the verifier read outside the site.
"""

from __future__ import annotations

import re
from pathlib import Path

import requests

from pipeline.errors import FetchError, InputError

_PART_RE = re.compile(r"^[A-Za-z0-9_+@-][A-Za-z0-9._+@-]*$")


def check_name(name: str, where: str) -> str:
    """``name`` if it is a safe relative file name.

    Raises:
        InputError: it is not.
    """
    if not name or len(name) > 1024 or not all(_PART_RE.match(p) for p in name.split("/")):
        raise InputError(f"{where}: {name!r} is not a safe relative file name")
    return name


class SiteSource:
    """A site's files, from a folder or over HTTP(S)."""

    def __init__(self, where: str, session: requests.Session | None = None) -> None:
        self.where = where
        self.url = where.rstrip("/") + "/" if where.startswith(("http://", "https://")) else None
        self.folder = None if self.url else Path(where)
        self.session = session or (requests.Session() if self.url else None)
        if self.folder is not None and not self.folder.is_dir():
            raise InputError(f"{where}: not a folder nor an http(s) URL")

    def get(self, name: str) -> bytes | None:
        """The bytes of ``name``, or None when the site has no such file.

        Raises:
            FetchError: the site could not be read (an HTTP error other than 404, a
                network failure, a read error).
        """
        if self.folder is not None:
            try:
                return (self.folder / name).read_bytes()
            except (FileNotFoundError, NotADirectoryError, IsADirectoryError):
                return None
            except OSError as e:
                raise FetchError(f"{self.folder / name}: cannot read ({e.strerror})") from e
        assert self.url is not None and self.session is not None
        try:
            response = self.session.get(self.url + name, timeout=30)
        except requests.RequestException as e:
            raise FetchError(f"{self.url}{name}: {type(e).__name__}") from e
        if response.status_code == 404:
            return None
        if response.status_code != 200:
            raise FetchError(f"{self.url}{name}: HTTP {response.status_code}")
        return response.content
