"""The checks by command name (``CHECKS``), the inputs they read (``FIELDS``,
``Inputs``), and the two checks that pick others: by format, by name."""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path

from pipeline.adapters.ostree import OstreeRepo
from pipeline.checks.common import CheckFailed, UsageError
from pipeline.checks.disk import check_checksum, check_qcow2, check_xz
from pipeline.checks.media import check_iso9660, check_vagrant_box, expected_provider
from pipeline.errors import OstreeError

# --- by format, by name ------------------------------------------------------------------


def check_format(
    path: Path, image_format: str, *, image_type: str = "", volume_id: str = ""
) -> str:
    """Run the check for productmd ``image_format``: ``qcow2`` → qcow2, ``*.xz`` → xz,
    ``iso`` → iso9660, ``*.box`` → vagrant-box.

    Raises:
        CheckFailed: that check failed, or no check knows ``image_format``.
    """
    if image_format == "qcow2":
        return check_qcow2(path)
    if image_format.endswith(".xz"):
        return check_xz(path)
    if image_format == "iso":
        return check_iso9660(path, volume_id)
    if image_format.endswith(".box"):
        return check_vagrant_box(path, expected_provider(image_type, image_format))
    raise CheckFailed(
        f"{path.name}: no built-in check for format {image_format!r} "
        "(known: qcow2, *.xz, iso, *.box)"
    )


def check_name(name: str, image_format: str, arch: str) -> str:
    """File ``name`` ends with ``.`` + ``image_format`` and holds ``arch`` as a whole word
    (between ``.``, ``-`` or ``_``), as in ``Fedora-AtomicHost-28-1.1.x86_64.qcow2`` or
    ``Fedora-Server-dvd-x86_64-28-1.1.iso``.

    Raises:
        CheckFailed: the extension or the arch is missing.
    """
    extension = f".{image_format}"
    if not name.endswith(extension):
        raise CheckFailed(
            f"{name}: file name does not end with {extension!r}, expected for format {image_format}"
        )
    stem = name.removesuffix(extension)
    if not re.search(rf"(?<![A-Za-z0-9]){re.escape(arch)}(?![A-Za-z0-9])", stem):
        raise CheckFailed(f"{name}: file name does not name the arch, expected {arch!r} in it")
    return f"{name}: file name names the arch {arch} and ends with {extension}"


def check_ostree(repo: str, commit: str, version: str, versions: str) -> str:
    """The OSTree check: ``commit`` is in ``repo`` and complete (every object read and
    checksummed), its ``version`` metadata is ``version``, and every arch of the compose
    (``versions``: ``arch=version,…``) carries that same version.

    Raises:
        CheckFailed: the commit is missing, incomplete, of another version, or the arches
            disagree.
    """
    tree = OstreeRepo(Path(repo))
    try:
        tree.check_complete(commit)
        found = tree.version(commit)
    except OstreeError as e:
        raise CheckFailed(e.message) from e
    if found != version:
        raise CheckFailed(f"{repo}: commit {commit} has version {found}, recorded {version}")
    others = dict(p.partition("=")[::2] for p in versions.split(",") if p)
    differ = sorted(f"{a} {v}" for a, v in others.items() if v != version)
    if differ:
        raise CheckFailed(f"arches carry different versions: {version} here, {', '.join(differ)}")
    return f"{repo}: commit {commit[:12]} complete, version {version} on every arch"


# --- the command -------------------------------------------------------------------------


@dataclass(frozen=True)
class Field:
    """One input of the contract: its environment variable and its option."""

    env: str
    option: str
    help: str


FIELDS: dict[str, Field] = {
    "image": Field("FORTNIGHT_IMAGE", "--image", "local path of the image file"),
    "url": Field("FORTNIGHT_IMAGE_URL", "--url", "its download URL"),
    "format": Field("FORTNIGHT_IMAGE_FORMAT", "--format", "productmd format (qcow2, raw.xz…)"),
    "type": Field("FORTNIGHT_IMAGE_TYPE", "--type", "productmd type (qcow2, raw-xz…)"),
    "arch": Field("FORTNIGHT_IMAGE_ARCH", "--arch", "productmd arch"),
    "subvariant": Field("FORTNIGHT_IMAGE_SUBVARIANT", "--subvariant", "productmd subvariant"),
    "size": Field("FORTNIGHT_IMAGE_SIZE", "--size", "size in bytes, from the manifest"),
    "sha256": Field("FORTNIGHT_IMAGE_SHA256", "--sha256", "sha256, from the manifest"),
    "volume_id": Field("FORTNIGHT_IMAGE_VOLUME_ID", "--volume-id", "ISO volume id, or empty"),
    "compose_id": Field("FORTNIGHT_COMPOSE_ID", "--compose-id", "the compose id"),
    "scratch": Field("FORTNIGHT_SCRATCH", "--scratch", "an empty scratch directory"),
    "ostree_repo": Field("FORTNIGHT_OSTREE_REPO", "--ostree-repo", "the compose's OSTree repo"),
    "ostree_commit": Field("FORTNIGHT_OSTREE_COMMIT", "--ostree-commit", "this arch's commit"),
    "ostree_version": Field("FORTNIGHT_OSTREE_VERSION", "--ostree-version", "its version"),
    "ostree_versions": Field(
        "FORTNIGHT_OSTREE_VERSIONS", "--ostree-versions", "every arch's: arch=version,..."
    ),
}


@dataclass(frozen=True)
class Inputs:
    """The contract's values for one run, from options over environment variables."""

    values: Mapping[str, str]

    def get(self, key: str) -> str:
        """A value, or "" when unset."""
        return self.values.get(key, "")

    def require(self, key: str) -> str:
        """A value that must be set and non-empty.

        Raises:
            UsageError: it is unset or empty.
        """
        value = self.get(key)
        if not value:
            field = FIELDS[key]
            raise UsageError(f"{field.env} is not set (or pass {field.option})")
        return value

    def image(self) -> Path:
        """The image path, which must be an existing regular file.

        Raises:
            UsageError: unset, missing or not a regular file.
        """
        path = Path(self.require("image"))
        if not path.is_file():
            problem = "is not a regular file" if path.exists() else "does not exist"
            raise UsageError(f"image file {path} {problem}")
        return path

    def size(self) -> int:
        """The manifest size in bytes.

        Raises:
            UsageError: unset or not a non-negative integer.
        """
        value = self.require("size")
        if not value.isdigit():
            raise UsageError(f"FORTNIGHT_IMAGE_SIZE is {value!r}, expected a number of bytes")
        return int(value)

    def sha256(self) -> str:
        """The manifest sha256, lowercase hex.

        Raises:
            UsageError: unset or not 64 hex digits.
        """
        value = self.require("sha256")
        if not re.fullmatch(r"[0-9a-fA-F]{64}", value):
            raise UsageError(f"FORTNIGHT_IMAGE_SHA256 is {value!r}, expected 64 hex digits")
        return value.lower()


@dataclass(frozen=True)
class Check:
    """A command: its one-line description and how it runs on the inputs."""

    description: str
    run: Callable[[Inputs], str]


CHECKS: dict[str, Check] = {
    "checksum": Check(
        "size and sha256 equal FORTNIGHT_IMAGE_SIZE and FORTNIGHT_IMAGE_SHA256",
        lambda i: check_checksum(i.image(), i.size(), i.sha256()),
    ),
    "qcow2": Check(
        "a qcow2 v2/v3 header: magic, version, cluster_bits 9..21, virtual size, tables",
        lambda i: check_qcow2(i.image()),
    ),
    "xz": Check(
        "complete xz stream(s) that decompress with every check verified, no trailing data",
        lambda i: check_xz(i.image()),
    ),
    "iso9660": Check(
        "an ISO 9660 primary volume descriptor, terminator and FORTNIGHT_IMAGE_VOLUME_ID",
        lambda i: check_iso9660(i.image(), i.get("volume_id")),
    ),
    "vagrant-box": Check(
        "a tar(.gz) with metadata.json for the type's provider and a non-empty disk",
        lambda i: check_vagrant_box(i.image(), expected_provider(i.get("type"), i.get("format"))),
    ),
    "format": Check(
        "the check for FORTNIGHT_IMAGE_FORMAT: qcow2, *.xz, iso or *.box",
        lambda i: check_format(
            i.image(),
            i.require("format"),
            image_type=i.get("type"),
            volume_id=i.get("volume_id"),
        ),
    ),
    "ostree": Check(
        "the arch's OSTree commit is complete, carries its recorded version, as every arch",
        lambda i: check_ostree(
            i.require("ostree_repo"),
            i.require("ostree_commit"),
            i.require("ostree_version"),
            i.get("ostree_versions"),
        ),
    ),
    "name": Check(
        "(advisory) the file name holds the arch and ends with the format's extension",
        lambda i: check_name(Path(i.require("image")).name, i.require("format"), i.require("arch")),
    ),
}
