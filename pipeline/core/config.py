"""Product configuration: ``manifests/<product>/product.toml``, loaded once at the edge."""

# No ``from __future__ import annotations`` in this module: pydantic would evaluate every
# annotation string when it creates the model classes, and every task imports them at
# start-up (it cost about 10 ms of each; ``tests/cli/test_startup.py`` keeps it out).

import json
import string
import tomllib
from datetime import date
from pathlib import Path, PurePosixPath
from typing import Annotated, ClassVar, Literal, Self

from pydantic import AfterValidator, Field, ValidationError, model_validator

from pipeline.core.models.common import NonEmpty, ProductName, StrictModel
from pipeline.core.models.manifests import SuiteName
from pipeline.errors import ConfigError, describe_validation_error

PRODUCT_FILE = "product.toml"

#: The longest cadence and grace accepted: a release at least every ten years.
MAX_DAYS = 3660
#: The placeholders a URL or name pattern may hold.
PLACEHOLDERS = ("compose_id",)


def _placeholders_only(value: str) -> str:
    """Check that ``value``'s ``str.format`` fields are only ``{compose_id}`` (``{{`` and
    ``}}`` are literal braces), so formatting it can never fail."""
    allowed = ", ".join(f"{{{p}}}" for p in PLACEHOLDERS)
    try:
        parsed = list(string.Formatter().parse(value))
    except ValueError as e:
        raise ValueError(f"{e}; allowed: {allowed}, and {{{{ }}}} for braces") from None
    for _, field, spec, conv in parsed:
        if field is not None and (field not in PLACEHOLDERS or spec or conv):
            shown = "{" + field + (f"!{conv}" if conv else "") + (f":{spec}" if spec else "") + "}"
            raise ValueError(f"unknown placeholder {json.dumps(shown)[:60]}; allowed: {allowed}")
    return value


def _inside_product_folder(value: str) -> str:
    """A file named relative to the product folder: no absolute path, no ``..``."""
    path = PurePosixPath(value)
    if not value or path.is_absolute() or ".." in path.parts or "\\" in value:
        raise ValueError(
            "must be a relative path inside the product folder (no '..', not absolute)"
        )
    return value


#: A ``str.format`` template with ``{compose_id}`` as its only placeholder.
Template = Annotated[str, AfterValidator(_placeholders_only)]
#: A file of the product folder.
ProductFile = Annotated[str, AfterValidator(_inside_product_folder)]


class BaseRelease(StrictModel):
    """The distribution release the product is based on (e.g. Fedora 22, or 23 Beta).

    Switched by a reviewed commit, independently of the distribution's own dates.
    """

    name: str = "Fedora"
    version: NonEmpty
    #: A prerelease label such as ``Beta``: the page then shows a disclaimer.
    prerelease: str | None = None
    #: Compose base versions that may be released; empty means just ``version``.
    eligible: list[str] = Field(default_factory=list)

    def label(self) -> str:
        """``Fedora 23 Beta``."""
        return " ".join(p for p in (self.name, self.version, self.prerelease) if p)

    def eligible_versions(self) -> list[str]:
        """The compose base versions that may be released."""
        return self.eligible or [self.version]


class ReleasePolicy(StrictModel):
    """The two-week cadence and what to do when a cycle has no candidate."""

    #: The first release day (UTC); release days are anchor + k x cadence_days.
    anchor: Annotated[date, Field(ge=date(1970, 1, 1), le=date(9000, 12, 31))]
    cadence_days: Annotated[int, Field(ge=1, le=MAX_DAYS)] = 14
    #: How long past a missed release day before the page calls the product stale.
    grace_days: Annotated[int, Field(ge=0, le=MAX_DAYS)] = 2
    #: No candidate on release day: ``retry`` releases the first passing compose
    #: later in the cycle; ``skip`` waits for the next cycle.
    policy: Literal["retry", "skip"] = "retry"


#: productmd's image types (``productmd.images.SUPPORTED_IMAGE_TYPES``, productmd 1.51),
#: copied: importing productmd imports urllib, http and email with it, some 15 ms of every
#: task's start-up, for one list. ``tests/core/test_config.py`` fails when productmd's list
#: differs, so an upgrade that adds a type is noticed.
SUPPORTED_IMAGE_TYPES: tuple[str, ...] = (
    "appx",
    "boot",
    "bootable-container",
    "cd",
    "container",
    "docker",
    "dvd",
    "dvd-debuginfo",
    "dvd-ostree",
    "dvd-ostree-osbuild",
    "ec2",
    "fex",
    "kvm",
    "live",
    "live-osbuild",
    "liveimg-squashfs",
    "netinst",
    "ociarchive",
    "p2v",
    "qcow",
    "qcow2",
    "raw",
    "raw-xz",
    "rescue",
    "rhevm-ova",
    "tar-gz",
    "vagrant-hyperv",
    "vagrant-libvirt",
    "vagrant-virtualbox",
    "vagrant-vmware-fusion",
    "vdi",
    "vhd-compressed",
    "vmdk",
    "vpc",
    "vsphere-ova",
    "wsl2",
)


def check_image_types(types: list[str]) -> list[str]:
    """``[images] types``: productmd's image types only.

    Raises:
        ValueError: a type productmd does not know, with the known list.
    """
    unknown = [t for t in types if t not in SUPPORTED_IMAGE_TYPES]
    if unknown:
        raise ValueError(
            f"unknown image type(s) {', '.join(unknown)}; known: {', '.join(SUPPORTED_IMAGE_TYPES)}"
        )
    return types


def check_download_url(value: str) -> str:
    """``[images] download_url``: empty, an absolute http(s) URL, or a root-relative path.

    Raises:
        ValueError: another scheme (``file://``) or a relative path without a leading ``/``.
    """
    if not value or value.startswith(("https://", "http://")):
        return value
    if value.startswith("/") and not value.startswith("//"):
        return value
    raise ValueError(f"must be an absolute http(s) URL or a path starting with '/', got {value!r}")


class ImageSelection(StrictModel):
    """Which images of a compose belong to the product.

    An image is selected when its variant is in ``variants`` or its subvariant
    is in ``subvariants``, and its type and arch are listed.
    """

    variants: list[str] = Field(default_factory=list)
    subvariants: list[str] = Field(default_factory=list)
    types: Annotated[list[str], Field(min_length=1), AfterValidator(check_image_types)]
    arches: Annotated[list[str], Field(min_length=1)]
    #: Where users download an image: ``download_url + image.path``, ``{compose_id}``
    #: replaced (the only placeholder; ``{{``/``}}`` are literal braces). An absolute
    #: http(s) URL, or a path from the site's root (``/composes/``, the same host serves
    #: the images). Empty: the compose's own http(s) location (a local compose then cannot
    #: be recorded: a ``file://`` link never reaches a page).
    download_url: Annotated[Template, AfterValidator(check_download_url)] = ""

    def selects(self, variant: str, subvariant: str, image_type: str, arch: str) -> bool:
        """Whether an image with these attributes belongs to the product."""
        in_variant = variant in self.variants or subvariant in self.subvariants
        return in_variant and image_type in self.types and arch in self.arches


class TestSpec(StrictModel):
    """One test of a battery: a shell command run once per matching image."""

    __test__: ClassVar[bool] = False  # not a pytest class

    name: NonEmpty
    command: NonEmpty
    blocking: bool = True
    #: The command is expected to fail (tunir's ``@@``): a non-zero exit passes.
    expect_fail: bool = False
    timeout: Annotated[int, Field(ge=1)] = 600
    #: Image types and arches the test applies to; empty means all.
    types: list[str] = Field(default_factory=list)
    arches: list[str] = Field(default_factory=list)

    def applies_to(self, image_type: str, arch: str) -> bool:
        """Whether the test runs on an image of this type and arch."""
        return (not self.types or image_type in self.types) and (
            not self.arches or arch in self.arches
        )


class SuiteSpec(StrictModel):
    """A suite: tests listed inline, or a tunir job file, or results imported from JUnit."""

    description: str = ""
    tests: list[TestSpec] = Field(default_factory=list)
    #: A tunir job file, relative to the product folder (plain line: blocking;
    #: ``## `` advisory; ``@@ `` expected to fail).
    tunir: ProductFile | None = None
    #: Results come from ``invoke test.import`` (JUnit XML), not from commands.
    external: bool = False
    #: For tunir and external suites: defaults that apply to every test.
    timeout: Annotated[int, Field(ge=1)] = 600
    types: list[str] = Field(default_factory=list)
    arches: list[str] = Field(default_factory=list)
    #: For external suites: fnmatch patterns of test names that only warn.
    advisory: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_source(self) -> Self:
        sources = [bool(self.tests), self.tunir is not None, self.external]
        if sum(sources) != 1:
            raise ValueError("a suite has exactly one of: tests, tunir, external = true")
        return self


#: The name of an environment variable.
EnvName = Annotated[str, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]
SandboxKind = Literal["none", "bwrap"]


class Battery(StrictModel):
    """The tests every compose goes through, by suite name."""

    #: Images tested at once; 0 means one per available core.
    workers: Annotated[int, Field(ge=0)] = 0
    #: Variables of the runner's environment passed to test commands, besides the allowlist
    #: (PATH, HOME, LANG, LC_ALL, LC_CTYPE, TZ, TMPDIR, TERM). Never a signing key.
    pass_env: list[EnvName] = Field(default_factory=list)
    #: ``bwrap``: each test command runs in bubblewrap, unable to read the signing keys.
    sandbox: SandboxKind = "none"
    #: With ``sandbox = "bwrap"``: let test commands reach the network.
    sandbox_network: bool = False
    suites: dict[SuiteName, SuiteSpec] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _no_keys_passed(self) -> Self:
        for name in self.pass_env:
            if name.upper().startswith("FORTNIGHT_KEY"):
                raise ValueError(f"{name}: signing keys are never passed to test commands")
        return self


class BugzillaConfig(StrictModel):
    """Where the bugzilla backend files bugs."""

    url: NonEmpty
    product: NonEmpty
    component: NonEmpty
    version: NonEmpty
    #: Where the per-product tag goes: the whiteboard or the keywords.
    tag_field: Literal["whiteboard", "keywords"] = "whiteboard"


class TrackerConfig(StrictModel):
    """The failure tracker: which backend, and the tag that finds the product's bug."""

    backend: Literal["local", "bugzilla"] = "local"
    tag: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")]
    bugzilla: BugzillaConfig | None = None

    @model_validator(mode="after")
    def _bugzilla_configured(self) -> Self:
        if self.backend == "bugzilla" and self.bugzilla is None:
            raise ValueError("backend 'bugzilla' needs a [tracker.bugzilla] table")
        return self


class AwsClouds(StrictModel):
    """``[clouds.aws]``: where ``invoke cloud.discover`` looks for the compose's AMIs.

    Credentials are not configured here: boto3 finds them through its standard
    chain (environment, shared files, instance role).
    """

    #: Region codes queried, in parallel.
    regions: Annotated[
        list[Annotated[str, Field(pattern=r"^[a-z]{2}(-[a-z]+)+-[0-9]+$")]], Field(min_length=1)
    ]
    #: The account id that owns (uploaded) the images.
    owner: Annotated[str, Field(pattern=r"^([0-9]{12}|self|amazon)$")]
    #: How an image is matched to a compose: by its name, or by a tag.
    match: Literal["name", "tag"] = "name"
    #: With ``match = "name"``: an EC2 name filter (``*`` wildcards); ``{compose_id}`` is replaced.
    name_pattern: NonEmpty = "*{compose_id}*"
    #: With ``match = "tag"``: the tag whose value is the compose id.
    tag_key: NonEmpty = "ComposeId"
    #: Arches recorded (``x86_64``, ``aarch64``); empty means the product's image arches.
    arches: list[str] = Field(default_factory=list)


class Clouds(StrictModel):
    """``[clouds]``: public cloud images of the product."""

    aws: AwsClouds | None = None


class OstreeConfig(StrictModel):
    """``[ostree]``: the public OSTree repository a release promotes the compose's trees to.

    Paths are relative to the product folder unless absolute; ``FORTNIGHT_OSTREE_*``
    variables override them at the task edge (see the README, "OSTree").
    """

    #: The public repository (archive mode), shipped with the site under ``site_path``.
    repo: NonEmpty = "ostree"
    #: Where the composes' commits are (a local repository path, or an http(s) URL), for
    #: ``release.cut`` to pull from; also ``compose.record``'s default ``--ostree-repo``.
    compose_repo: str = ""
    #: The compose's own ref (read by ``compose.record --ostree-repo``).
    compose_ref: NonEmpty = "fedora/{version}/{arch}/updates/atomic-host"
    #: The public ref a release moves; ``{version}`` and ``{arch}`` are replaced.
    ref: NonEmpty = "fedora/{version}/{arch}/atomic-host"
    #: The arches with a tree; empty means the arches of ``[images]``.
    arches: list[str] = Field(default_factory=list)
    #: The GPG key id (or fingerprint) that signs commits and the summary; empty: unsigned.
    gpg_key: str = ""
    #: The GPG keyring folder (GNUPGHOME); empty: gpg's default.
    gpg_homedir: str = ""
    #: The public key users import (ASCII-armoured), relative to the product folder.
    gpg_public_key: str = ""
    #: Generate a static delta from the previous release's commit.
    deltas: bool = True
    #: Where the repository appears on the site (``<site>/<site_path>/``).
    site_path: Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]*$")] = "ostree"
    #: The remote name the page tells users to add.
    remote: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")] = "fortnight"

    def public_ref(self, version: str, arch: str) -> str:
        """The public ref of ``arch`` for a base ``version``."""
        return self.ref.format(version=version, arch=arch)

    def source_ref(self, version: str, arch: str) -> str:
        """The compose's ref of ``arch``."""
        return self.compose_ref.format(version=version, arch=arch)

    @model_validator(mode="after")
    def _patterns(self) -> Self:
        for name in ("ref", "compose_ref"):
            try:
                getattr(self, name).format(version="28", arch="x86_64")
            except (KeyError, IndexError, ValueError) as e:
                raise ValueError(f"{name}: only {{version}} and {{arch}} may be used") from e
        if "{arch}" not in self.ref:
            raise ValueError("ref: needs {arch}, one ref per arch")
        return self


#: A mail address (no display name): what SMTP's RCPT TO takes.
MailAddress = Annotated[str, Field(pattern=r"^[^@\s,<>\"]+@[^@\s,<>\"]+$", max_length=254)]


class AnnounceConfig(StrictModel):
    """``[announce]``: who gets the announcement mail of every release, stale cycle and
    withdrawal (``invoke announce``; the SMTP server comes from the environment)."""

    mail_to: list[MailAddress] = Field(default_factory=list)


class ProductConfig(StrictModel):
    """``product.toml``: what the product is, which images it ships, how they are tested."""

    name: ProductName
    display_name: str
    base: BaseRelease
    images: ImageSelection
    battery: Battery = Field(default_factory=Battery)
    tracker: TrackerConfig
    release: ReleasePolicy
    clouds: Clouds = Field(default_factory=Clouds)
    announce: AnnounceConfig = Field(default_factory=AnnounceConfig)
    ostree: OstreeConfig | None = None

    def ostree_arches(self) -> list[str]:
        """The arches with an OSTree tree (``[ostree] arches``, else the image arches)."""
        if self.ostree is None:
            return []
        return self.ostree.arches or self.images.arches


def load_product(manifests_root: Path, product: str) -> ProductConfig:
    """Load ``manifests/<product>/product.toml``.

    Raises:
        ConfigError: the file is missing, not TOML, invalid, or names another product.
    """
    path = manifests_root / product / PRODUCT_FILE
    try:
        data = path.read_bytes()
    except (FileNotFoundError, NotADirectoryError):
        raise ConfigError(
            f"{path}: not found",
            hint=f"is '{product}' the right --product? Each product needs a product.toml",
        ) from None
    except OSError as e:
        raise ConfigError(f"{path}: cannot be read ({e.strerror})") from None
    return parse_product(data, path, product)


def parse_product(data: bytes, path: Path, product: str) -> ProductConfig:
    """Parse and validate a product.toml's bytes (``path`` names it in errors).

    Raises:
        ConfigError: not TOML, invalid, or names another product than ``product``.
    """
    try:
        raw = tomllib.loads(data.decode("utf-8"))
    except UnicodeDecodeError as e:
        raise ConfigError(f"{path}: not UTF-8 text ({e.reason})") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from None
    except RecursionError:
        raise ConfigError(f"{path}: not valid TOML (nested too deeply)") from None
    try:
        config = ProductConfig.model_validate(raw, strict=True)
    except ValidationError as e:
        raise ConfigError(
            f"{path}: {describe_validation_error(e)}",
            hint="see the product.toml reference in the README",
        ) from e
    if config.name != product:
        raise ConfigError(
            f"{path}: name is '{config.name}' but the folder is '{product}'",
            hint="make them the same",
        )
    return config
