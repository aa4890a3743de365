"""The manifest kinds, one model each, and the registry of kinds (:data:`KINDS`).

Each field that takes one of a few words is typed with a named ``Literal`` alias
(:data:`TestOutcome`, :data:`TrackerAction`…), so callers can annotate with it.
"""

# No ``from __future__ import annotations`` in this module: pydantic would evaluate every
# annotation string when it creates the model classes, and every task imports them at
# start-up (it cost about 10 ms of each; ``tests/cli/test_startup.py`` keeps it out).

from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import Field, model_validator

from pipeline.core.models.common import (
    ComposeId,
    Manifest,
    NonEmpty,
    RoleName,
    Sha256,
    StrictModel,
    UtcTimestamp,
)


class Checksums(StrictModel):
    """Digests of an image file; sha256 is required, as Fedora publishes it."""

    sha256: Sha256


class Image(StrictModel):
    """One image of a compose, in productmd's vocabulary, plus where to download it."""

    variant: NonEmpty
    subvariant: str
    type: NonEmpty
    format: NonEmpty
    arch: NonEmpty
    disc_number: Annotated[int, Field(ge=1)] = 1
    disc_count: Annotated[int, Field(ge=1)] = 1
    path: NonEmpty
    url: NonEmpty
    size: Annotated[int, Field(ge=0)]
    checksums: Checksums
    bootable: bool
    volume_id: str | None
    implant_md5: str | None
    mtime: Annotated[int, Field(ge=0)]

    def key(self) -> tuple[str, str, str, str, int]:
        """The identity of "the same image" across composes."""
        return (self.subvariant, self.type, self.format, self.arch, self.disc_number)

    @property
    def filename(self) -> str:
        """The image's file name, the last part of its path (``PurePosixPath(path).name``,
        without making a path object: the site names tens of thousands)."""
        return self.path.rstrip("/").rpartition("/")[2]


class Release(StrictModel):
    """The base release a compose was built from (productmd's ``release``)."""

    name: NonEmpty
    short: NonEmpty
    version: NonEmpty
    type: str = "ga"


#: An OSTree ref name (``fedora/28/x86_64/atomic-host``).
OstreeRefName = Annotated[
    str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*(/[A-Za-z0-9][A-Za-z0-9._-]*)*$")
]


class OstreeCommit(StrictModel):
    """The OSTree tree of one arch of a compose: the compose's ref, its commit, its version."""

    arch: NonEmpty
    ref: OstreeRefName
    commit: Sha256
    version: NonEmpty


def _unique_arches(items: list[OstreeCommit] | list["OstreePromotion"]) -> None:
    arches = [i.arch for i in items]
    if len(set(arches)) != len(arches):
        raise ValueError("two OSTree entries share an arch")


def _drop_empty_ostree(data: dict[str, Any]) -> dict[str, Any]:
    """Manifests without OSTree trees sign exactly the bytes they signed before the field."""
    if not data.get("ostree"):
        data.pop("ostree", None)
    return data


#: An rpm as ``name-epoch:version-release.arch`` (productmd's NEVRA, epoch always given).
Nevra = Annotated[
    str,
    Field(
        max_length=512,
        pattern=r"^[A-Za-z0-9_.+-]+-[0-9]{1,10}:[A-Za-z0-9_.+~^]+-[A-Za-z0-9_.+~^]+\.[A-Za-z0-9_]+$",
    ),
]


class PackageSet(StrictModel):
    """The binary rpms of one variant and arch of a compose, grouped by source rpm.

    ``sources`` maps each source rpm's NEVRA to its binary rpms' NEVRAs: name,
    epoch, version, release, arch and source rpm, compactly (from Pungi's ``rpms.json``).
    ``binaries`` lists binary rpms whose source rpm is not known: an OSTree commit's
    package list (``rpmostree.rpmdb.pkglist``) names no source rpms. It is left out of the
    signed payload when empty, so package sets from ``rpms.json`` sign the bytes they
    signed before the field.
    """

    variant: NonEmpty
    arch: NonEmpty
    sources: dict[Nevra, list[Nevra]]
    binaries: list[Nevra] = Field(default_factory=list)


#: Whether a compose produced images (Pungi's DOOMED composes produce none).
ComposeOutcome = Literal["images", "no-image"]
#: productmd's compose types.
ComposeType = Literal["production", "nightly", "test", "ci", "development"]


class ComposeManifest(Manifest):
    """One compose: its identity, base release, and the product's images.

    A compose that produced no image (Pungi's DOOMED) is recorded too, with
    ``outcome = "no-image"``, a reason, and no images.
    """

    KIND: ClassVar[str] = "compose"
    ROLE: ClassVar[RoleName] = "compose"
    DIRECTORY: ClassVar[str] = "composes"

    type_: Literal["compose"] = Field(default="compose", alias="_type")
    compose_id: ComposeId
    date: Annotated[str, Field(pattern=r"^\d{8}$")]
    respin: Annotated[int, Field(ge=0)]
    compose_type: ComposeType
    label: str | None = None
    release: Release | None
    outcome: ComposeOutcome
    reason: str | None = None
    log_url: str | None = None
    source: str
    checksums_verified: bool
    images: list[Image]
    #: The OSTree commit of each arch (empty: the compose has no OSTree trees recorded).
    ostree: list[OstreeCommit] = Field(default_factory=list)
    #: The package list per variant/arch of the product's images; None when the compose
    #: had no ``rpms.json`` (older manifests never have it).
    packages: list[PackageSet] | None = None

    def identity(self) -> str:
        return self.compose_id

    def signed_dict(self) -> dict[str, Any]:
        """The payload; without ``ostree`` when empty, without ``packages`` when unknown
        and without a package set's empty ``binaries``, so a manifest without them signs
        the bytes it signed before the fields."""
        data = _drop_empty_ostree(super().signed_dict())
        if data.get("packages") is None:
            data.pop("packages", None)
        for package_set in data.get("packages") or []:
            if not package_set.get("binaries"):
                package_set.pop("binaries", None)
        return data

    @model_validator(mode="after")
    def _outcome_consistent(self) -> Self:
        if self.outcome == "images":
            if not self.images:
                raise ValueError("outcome 'images' needs at least one image")
            if self.release is None:
                raise ValueError("outcome 'images' needs the base release")
            keys = [img.key() for img in self.images]
            if len(set(keys)) != len(keys):
                raise ValueError("two images share (subvariant, type, format, arch, disc_number)")
        elif self.images or not self.reason:
            raise ValueError("outcome 'no-image' needs a reason and no images")
        _unique_arches(self.ostree)
        return self


# --- test results ---------------------------------------------------------------------

SuiteName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9_.-]{0,63}$")]
RunId = Annotated[str, Field(pattern=r"^[0-9]{8}T[0-9]{6}Z-[0-9a-f]{6}$")]
#: What one test case came to.
TestOutcome = Literal["PASSED", "FAILED", "SKIPPED"]
#: What a suite came to: ``WARNED`` when only non-blocking tests failed.
SuiteVerdict = Literal["PASSED", "WARNED", "FAILED"]
#: Where a test result came from: the built-in battery, or an imported JUnit XML report.
TestOrigin = Literal["battery", "junit"]
#: What an operator's verdict does to a compose: fail it, or waive one failed test.
VerdictAction = Literal["fail", "waive"]


class ImageRef(StrictModel):
    """Which image (artifact) a test ran on: its identity, path and digest."""

    subvariant: str
    type: NonEmpty
    format: NonEmpty
    arch: NonEmpty
    disc_number: Annotated[int, Field(ge=1)] = 1
    path: NonEmpty
    sha256: Sha256

    def key(self) -> tuple[str, str, str, str, int]:
        """The identity of "the same image" across composes (see :meth:`Image.key`)."""
        return (self.subvariant, self.type, self.format, self.arch, self.disc_number)

    @classmethod
    def of(cls, image: Image) -> Self:
        """The reference to one image of a compose manifest."""
        return cls(
            subvariant=image.subvariant,
            type=image.type,
            format=image.format,
            arch=image.arch,
            disc_number=image.disc_number,
            path=image.path,
            sha256=image.checksums.sha256,
        )


class LogRef(StrictModel):
    """A test log in the log store (outside git): where, its digest, and for a failure its end."""

    path: NonEmpty
    sha256: Sha256
    size: Annotated[int, Field(ge=0)]
    tail: str | None = None


class CaseResult(StrictModel):
    """One test on one image (or on every artifact of the run when ``image`` is null)."""

    name: NonEmpty
    blocking: bool
    expect_fail: bool = False
    outcome: TestOutcome
    reason: str | None = None
    duration_ms: Annotated[int, Field(ge=0)]
    image: ImageRef | None = None
    log: LogRef | None = None


def suite_verdict(tests: list[CaseResult]) -> SuiteVerdict:
    """in-toto's result for a run: FAILED if a blocking test failed, WARNED if only advisory."""
    failed = [t for t in tests if t.outcome == "FAILED"]
    if any(t.blocking for t in failed):
        return "FAILED"
    return "WARNED" if failed else "PASSED"


class CaseCounts(StrictModel):
    """How many test cases an imported report held, by outcome, and how many the manifest
    records (a large report keeps its failures; the full report is in the log store)."""

    total: Annotated[int, Field(ge=0)]
    passed: Annotated[int, Field(ge=0)]
    failed: Annotated[int, Field(ge=0)]
    skipped: Annotated[int, Field(ge=0)]
    recorded: Annotated[int, Field(ge=0)]


def _is_none(value: object) -> bool:
    return value is None


class ResultManifest(Manifest):
    """One run of one test suite on a compose (in-toto test-result vocabulary).

    Runs are never replaced: a re-run is a new manifest, and for each test and
    image the latest run counts.
    """

    KIND: ClassVar[str] = "test-result"
    ROLE: ClassVar[RoleName] = "test"
    DIRECTORY: ClassVar[str] = "tests"

    type_: Literal["test-result"] = Field(default="test-result", alias="_type")
    compose_id: ComposeId
    suite: SuiteName
    run: RunId
    origin: TestOrigin
    runner: str
    started: UtcTimestamp
    finished: UtcTimestamp
    arches: list[str]
    artifacts: list[ImageRef]
    tests: list[CaseResult]
    result: SuiteVerdict
    #: An imported report: its cases by outcome (``tests`` may hold only some of them).
    counts: CaseCounts | None = Field(default=None, exclude_if=_is_none)
    #: An imported report: the whole report in the log store, with its sha256.
    report: LogRef | None = Field(default=None, exclude_if=_is_none)

    def identity(self) -> str:
        return f"{self.compose_id}/{self.suite}-{self.run}"

    @model_validator(mode="after")
    def _result_consistent(self) -> Self:
        expected = suite_verdict(self.tests)
        if self.result != expected:
            raise ValueError(f"result is {self.result} but the tests say {expected}")
        if self.finished < self.started:
            raise ValueError("finished is before started")
        return self


# --- operator verdicts -----------------------------------------------------------------


class VerdictManifest(Manifest):
    """An operator's decision on a compose: fail it by hand, or waive one failed test."""

    KIND: ClassVar[str] = "verdict"
    ROLE: ClassVar[RoleName] = "release"
    DIRECTORY: ClassVar[str] = "verdicts"

    type_: Literal["verdict"] = Field(default="verdict", alias="_type")
    compose_id: ComposeId
    number: Annotated[int, Field(ge=1)]
    action: VerdictAction
    test: str | None = None
    suite: SuiteName | None = None
    reason: NonEmpty
    reason_url: str | None = None
    operator: NonEmpty

    def identity(self) -> str:
        return f"{self.compose_id}-{self.number}"

    @model_validator(mode="after")
    def _test_only_for_waivers(self) -> Self:
        if (self.action == "waive") != (self.test is not None):
            raise ValueError("a waiver names a test; a manual fail does not")
        return self


# --- tracker events --------------------------------------------------------------------

BugRef = Annotated[str, Field(pattern=r"^(bz|local)[0-9]+$")]
#: Which failure tracker a tracker event was recorded by.
TrackerBackendName = Literal["local", "bugzilla"]
#: What a tracker event did to its bug.
TrackerAction = Literal["opened", "commented", "closed"]


class TrackerEventManifest(Manifest):
    """Something Fortnight did on the failure tracker, with the bug's URL.

    ``event_id`` is ``<bug>-<action>-<compose-id>``, so the same action for the
    same compose on the same bug can be recorded only once.
    """

    KIND: ClassVar[str] = "tracker-event"
    ROLE: ClassVar[RoleName] = "release"
    DIRECTORY: ClassVar[str] = "trackers"

    type_: Literal["tracker-event"] = Field(default="tracker-event", alias="_type")
    event_id: NonEmpty
    backend: TrackerBackendName
    bug: BugRef
    bug_id: NonEmpty
    url: NonEmpty
    action: TrackerAction
    compose_id: ComposeId
    compose_status: str
    summary: str | None = None
    comment: str

    def identity(self) -> str:
        return self.event_id

    @model_validator(mode="after")
    def _event_id_matches(self) -> Self:
        expected = f"{self.bug}-{self.action}-{self.compose_id}"
        if self.event_id != expected:
            raise ValueError(f"event_id must be {expected}")
        return self


# --- releases ---------------------------------------------------------------------------

ReleaseId = Annotated[str, Field(pattern=r"^\d{4}-\d{2}-\d{2}(\.[2-9]|\.[1-9][0-9]+)?$")]
CycleDate = Annotated[str, Field(pattern=r"^\d{4}-\d{2}-\d{2}$")]
#: What a release decision made of a compose it looked at.
ConsideredVerdict = Literal["chosen", "rejected", "older"]
#: What a release cycle decided: an image, or a stale cycle.
ReleaseDecision = Literal["release", "stale"]
#: What a cycle does after a stale decision: try again later in the cycle, or wait.
ReleasePolicy = Literal["retry", "skip"]


class BaseRef(StrictModel):
    """The base release a decision was made for (e.g. Fedora 23 Beta)."""

    name: NonEmpty
    version: NonEmpty
    prerelease: str | None = None

    def label(self) -> str:
        """``Fedora 23 Beta``."""
        return " ".join(p for p in (self.name, self.version, self.prerelease) if p)


class BugLink(StrictModel):
    """A failure bug, as the tracker events recorded it."""

    bug: NonEmpty
    url: NonEmpty


class Considered(StrictModel):
    """One compose a release decision looked at, and what it made of it."""

    compose_id: ComposeId
    status: str
    verdict: ConsideredVerdict
    reason: str


class OstreePromotion(StrictModel):
    """What a release did to the public OSTree ref of one arch: the commit it points to
    now, and the one it pointed to before (the previous release's, or none)."""

    arch: NonEmpty
    ref: OstreeRefName
    commit: Sha256
    version: NonEmpty
    previous: Sha256 | None = None


class ReleaseManifest(Manifest):
    """The decision of one release cycle: an image, or a stale cycle.

    The first decision of a cycle is ``<cycle>``; a later one in the same cycle
    (a late release under policy ``retry``) is ``<cycle>.2``, ``<cycle>.3``…
    """

    KIND: ClassVar[str] = "release"
    ROLE: ClassVar[RoleName] = "release"
    DIRECTORY: ClassVar[str] = "releases"

    type_: Literal["release"] = Field(default="release", alias="_type")
    release_id: ReleaseId
    cycle: CycleDate
    sequence: Annotated[int, Field(ge=1)]
    decision: ReleaseDecision
    compose_id: ComposeId | None
    #: The release that was current when this decision was made (kept, for a stale cycle).
    previous: ReleaseId | None
    base: BaseRef
    policy: ReleasePolicy
    open_bug: BugLink | None = None
    considered: list[Considered]
    explanation: NonEmpty
    #: The public OSTree refs this release moves, per arch (empty: no ``[ostree]``).
    ostree: list[OstreePromotion] = Field(default_factory=list)

    def identity(self) -> str:
        return self.release_id

    def signed_dict(self) -> dict[str, Any]:
        return _drop_empty_ostree(super().signed_dict())

    @model_validator(mode="after")
    def _consistent(self) -> Self:
        expected = self.cycle if self.sequence == 1 else f"{self.cycle}.{self.sequence}"
        if self.release_id != expected:
            raise ValueError(f"release_id must be {expected}")
        if (self.decision == "release") != (self.compose_id is not None):
            raise ValueError("a release names its compose; a stale decision does not")
        if self.ostree and self.decision != "release":
            raise ValueError("a stale decision moves no OSTree ref")
        _unique_arches(self.ostree)
        return self


class RevocationManifest(Manifest):
    """A withdrawn release: it is never current again, and its compose never released again."""

    KIND: ClassVar[str] = "revocation"
    ROLE: ClassVar[RoleName] = "release"
    DIRECTORY: ClassVar[str] = "revocations"

    type_: Literal["revocation"] = Field(default="revocation", alias="_type")
    release_id: ReleaseId
    compose_id: ComposeId
    reason: NonEmpty
    reason_url: str | None = None
    operator: NonEmpty

    def identity(self) -> str:
        return self.release_id


# --- cloud images ----------------------------------------------------------------------

AwsRegion = Annotated[str, Field(pattern=r"^[a-z]{2}(-[a-z]+)+-[0-9]+$")]


class CloudImage(StrictModel):
    """One AMI of a compose: which arch, in which region, and how it boots."""

    arch: NonEmpty
    region: AwsRegion
    ami_id: Annotated[str, Field(pattern=r"^ami-[0-9a-f]+$")]
    name: str
    virtualization_type: NonEmpty
    volume_type: NonEmpty
    public: bool


class MissingRegion(StrictModel):
    """A region where no image was found, or that could not be queried, and why."""

    region: AwsRegion
    reason: NonEmpty


class CloudImagesManifest(Manifest):
    """The AMIs of a compose, per arch and region, as one discovery run found them.

    Runs are kept: a later run that finds more regions records ``<compose-id>-aws-<n+1>``,
    and the newest run counts.
    """

    KIND: ClassVar[str] = "cloud-images"
    ROLE: ClassVar[RoleName] = "compose"
    DIRECTORY: ClassVar[str] = "clouds"

    type_: Literal["cloud-images"] = Field(default="cloud-images", alias="_type")
    compose_id: ComposeId
    provider: Literal["aws"] = "aws"
    run: Annotated[int, Field(ge=1)]
    images: list[CloudImage]
    missing: list[MissingRegion]

    def identity(self) -> str:
        return f"{self.compose_id}-{self.provider}-{self.run}"

    @model_validator(mode="after")
    def _regions_consistent(self) -> Self:
        keys = [(i.arch, i.region) for i in self.images]
        if len(set(keys)) != len(keys):
            raise ValueError("two images share (arch, region)")
        missing = [m.region for m in self.missing]
        if len(set(missing)) != len(missing):
            raise ValueError("a region is listed twice in missing")
        return self


#: Every manifest kind, by its ``_type``. Later stages add theirs here.
KINDS: dict[str, type[Manifest]] = {
    m.KIND: m
    for m in (
        ComposeManifest,
        ResultManifest,
        VerdictManifest,
        TrackerEventManifest,
        ReleaseManifest,
        RevocationManifest,
        CloudImagesManifest,
    )
}
#: The kind stored under each directory of a product.
KIND_BY_DIRECTORY: dict[str, type[Manifest]] = {m.DIRECTORY: m for m in KINDS.values()}
