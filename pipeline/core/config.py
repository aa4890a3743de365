"""Product configuration: ``manifests/<product>/product.toml``, loaded once at the edge."""

from __future__ import annotations

import tomllib
from datetime import date
from pathlib import Path
from typing import Annotated, ClassVar, Literal

from pydantic import Field, ValidationError, model_validator

from pipeline.core.models.common import NonEmpty, ProductName, StrictModel
from pipeline.core.models.manifests import SuiteName
from pipeline.errors import ConfigError, describe_validation_error

PRODUCT_FILE = "product.toml"


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
    anchor: date
    cadence_days: Annotated[int, Field(ge=1)] = 14
    #: How long past a missed release day before the page calls the product stale.
    grace_days: Annotated[int, Field(ge=0)] = 2
    #: No candidate on release day: ``retry`` releases the first passing compose
    #: later in the cycle; ``skip`` waits for the next cycle.
    policy: Literal["retry", "skip"] = "retry"


class ImageSelection(StrictModel):
    """Which images of a compose belong to the product.

    An image is selected when its variant is in ``variants`` or its subvariant
    is in ``subvariants``, and its type and arch are listed.
    """

    variants: list[str] = Field(default_factory=list)
    subvariants: list[str] = Field(default_factory=list)
    types: Annotated[list[str], Field(min_length=1)]
    arches: Annotated[list[str], Field(min_length=1)]
    #: Where users download an image: ``download_url + image.path``.
    #: ``{compose_id}`` is replaced. Empty: the compose's own location.
    download_url: str = ""

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
    tunir: str | None = None
    #: Results come from ``invoke test.import`` (JUnit XML), not from commands.
    external: bool = False
    #: For tunir and external suites: defaults that apply to every test.
    timeout: Annotated[int, Field(ge=1)] = 600
    types: list[str] = Field(default_factory=list)
    arches: list[str] = Field(default_factory=list)
    #: For external suites: fnmatch patterns of test names that only warn.
    advisory: list[str] = Field(default_factory=list)

    @model_validator(mode="after")
    def _one_source(self) -> SuiteSpec:
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
    def _no_keys_passed(self) -> Battery:
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
    def _bugzilla_configured(self) -> TrackerConfig:
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


def load_product(manifests_root: Path, product: str) -> ProductConfig:
    """Load ``manifests/<product>/product.toml``.

    Raises:
        ConfigError: the file is missing, not TOML, invalid, or names another product.
    """
    path = manifests_root / product / PRODUCT_FILE
    try:
        with path.open("rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(
            f"{path}: not found",
            hint=f"is '{product}' the right --product? Each product needs a product.toml",
        ) from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"{path}: not valid TOML ({e})") from e
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
