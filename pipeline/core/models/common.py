"""What every manifest model shares: the field types (timestamps, names, digests), the
strict base model, the signed envelope, the trust file, and the ``Manifest`` base class.

The manifest kinds themselves are in :mod:`pipeline.core.models.manifests`.
"""

# No ``from __future__ import annotations`` in this module: pydantic would evaluate every
# annotation string when it creates the model classes, and every task imports them at
# start-up (it cost about 10 ms of each; ``tests/cli/test_startup.py`` keeps it out).

import contextlib
import re
from datetime import UTC, datetime
from pathlib import PurePosixPath
from typing import Annotated, Any, ClassVar, Literal, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    WithJsonSchema,
    model_validator,
)

SPEC_VERSION: Literal["1"] = "1"

RoleName = Literal["root", "compose", "test", "release", "timestamp", "site"]
ROLES: tuple[RoleName, ...] = ("root", "compose", "test", "release", "timestamp", "site")
#: Roles a root version made before they existed may lack (then: no keys, threshold 1).
OPTIONAL_ROLES: frozenset[RoleName] = frozenset({"site"})

TIMESTAMP_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
#: The one accepted form, ASCII digits only (``strptime`` alone would also take
#: ``2015-9-15T0:0:0Z`` and other digits, and is slower: a load parses tens of thousands).
_TIMESTAMP = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})T([0-9]{2}):([0-9]{2}):([0-9]{2})Z")


def parse_timestamp(value: object) -> datetime:
    """Parse ``YYYY-MM-DDTHH:MM:SSZ`` (UTC, whole seconds) strictly.

    Raises:
        ValueError: the value is not a string in that exact form.
    """
    if isinstance(value, datetime):
        if value.tzinfo is None or value.utcoffset() != UTC.utcoffset(None):
            raise ValueError("timestamp must be timezone-aware UTC")
        return value.replace(microsecond=0)
    if not isinstance(value, str):
        raise ValueError(f"timestamp must be a string like 2015-09-15T00:00:00Z, got {value!r}")
    exact = _TIMESTAMP.fullmatch(value)
    if exact is not None:
        year, month, day, hour, minute, second = map(int, exact.groups())
        with contextlib.suppress(ValueError):  # out of range (2015-02-30): refused below
            return datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    raise ValueError(f"timestamp must look like 2015-09-15T00:00:00Z (UTC), got {value!r}")


def format_timestamp(value: datetime) -> str:
    """The canonical string form of a UTC timestamp."""
    return value.astimezone(UTC).strftime(TIMESTAMP_FORMAT)


UtcTimestamp = Annotated[
    datetime,
    BeforeValidator(parse_timestamp),
    PlainSerializer(format_timestamp, return_type=str),
    WithJsonSchema({"type": "string", "pattern": r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z$"}),
]

ProductName = Annotated[str, Field(pattern=r"^[a-z0-9][a-z0-9-]{0,63}$")]
# A compose id is used as a file name: no separators, no leading dot.
ComposeId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9._+-]{0,199}$")]
Sha256 = Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
NonEmpty = Annotated[str, Field(min_length=1)]


class StrictModel(BaseModel):
    """Base of every model: strict types, frozen, no unknown fields."""

    model_config = ConfigDict(
        strict=True,
        extra="forbid",
        frozen=True,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
        defer_build=True,  # validators build on first use: a task pays only for what it loads
    )


# --- The signed envelope -------------------------------------------------------------


class Signature(StrictModel):
    """One signature over the canonical JSON bytes of ``signed``."""

    keyid: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    sig: Annotated[str, Field(pattern=r"^[0-9a-f]+$")]


class Envelope(StrictModel):
    """A manifest file: ``{"signed": {...}, "signatures": [...]}``.

    ``signed`` stays a plain dict here: signatures are verified over the bytes
    of what was read, and only then is it parsed into its kind's model.
    """

    signed: dict[str, Any]
    signatures: list[Signature]


# --- Trust -----------------------------------------------------------------------------


class PublicKey(StrictModel):
    """A securesystemslib public key dict (``SSlibKey.to_dict()``)."""

    model_config = ConfigDict(extra="allow")

    keytype: NonEmpty
    scheme: NonEmpty
    keyval: dict[str, str]


class Role(StrictModel):
    """Which keys may sign a kind of manifest, and how many must."""

    keyids: list[Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]]
    threshold: Annotated[int, Field(ge=1)] = 1


class Trust(StrictModel):
    """The keys of a root version (:class:`RootMetadata`) and the roles they may sign for."""

    spec_version: Literal["1"] = SPEC_VERSION
    keys: dict[str, PublicKey]
    roles: dict[RoleName, Role]

    @model_validator(mode="before")
    @classmethod
    def _optional_roles(cls, data: Any) -> Any:
        return _with_optional_roles(data)

    @model_validator(mode="after")
    def _roles_complete(self) -> Self:
        _check_roles(self.keys, self.roles)
        return self


def _with_optional_roles(data: Any) -> Any:
    """``data`` with each missing optional role added, empty."""
    if isinstance(data, dict) and isinstance(data.get("roles"), dict):
        missing = {r: Role(keyids=[]) for r in OPTIONAL_ROLES if r not in data["roles"]}
        if missing:
            return {**data, "roles": {**data["roles"], **missing}}
    return data


def _check_roles(keys: dict[str, PublicKey], roles: dict[RoleName, Role]) -> None:
    missing = [r for r in ROLES if r not in roles]
    if missing:
        raise ValueError(f"roles {', '.join(missing)} missing")
    for name, role in roles.items():
        unknown = [k for k in role.keyids if k not in keys]
        if unknown:
            raise ValueError(f"role {name} lists keyid {unknown[0]} that is not in keys")


class RootMetadata(StrictModel):
    """The ``signed`` payload of ``manifests/trust/<version>.json`` (TUF's root role).

    Version N+1 is signed by a threshold of version N's ``root`` keys and of its own;
    ``manifests/trust.json`` is a copy of the newest version.
    """

    type_: Literal["root"] = Field(default="root", alias="_type")
    spec_version: Literal["1"] = SPEC_VERSION
    version: Annotated[int, Field(ge=1)]
    expires: UtcTimestamp | None = None
    keys: dict[str, PublicKey]
    roles: dict[RoleName, Role]

    @model_validator(mode="before")
    @classmethod
    def _optional_roles(cls, data: Any) -> Any:
        return _with_optional_roles(data)

    @model_validator(mode="after")
    def _valid_trust(self) -> Self:
        _check_roles(self.keys, self.roles)
        return self

    def trust(self) -> Trust:
        """The keys and roles this version trusts."""
        return Trust(keys=self.keys, roles=self.roles)


class Checkpoint(StrictModel):
    """The ``signed`` payload of ``manifests/checkpoints/<number>.json``: a signed tree head.

    ``root`` is the RFC 9162 Merkle tree hash (hex) of the first ``size`` lines of
    ``manifests/log.idx`` (:mod:`pipeline.core.merkle`); ``previous`` is checkpoint
    ``number - 1``'s root (None for number 1). Past ``expires`` the log is frozen.
    """

    type_: Literal["checkpoint"] = Field(default="checkpoint", alias="_type")
    spec_version: Literal["1"] = SPEC_VERSION
    number: Annotated[int, Field(ge=1)]
    size: Annotated[int, Field(ge=0)]
    root: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    previous: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")] | None
    time: UtcTimestamp
    expires: UtcTimestamp

    @model_validator(mode="after")
    def _expires_after_time(self) -> Self:
        if self.expires <= self.time:
            raise ValueError("expires must be after time")
        if (self.number == 1) != (self.previous is None):
            raise ValueError("previous is set exactly when number > 1")
        return self


class FileClaim(StrictModel):
    """A published file's size and sha256, as the site index names it."""

    sha256: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]
    size: Annotated[int, Field(ge=0)]


class TreeHead(StrictModel):
    """Which checkpoint a site was built from."""

    number: Annotated[int, Field(ge=1)]
    size: Annotated[int, Field(ge=0)]
    root: Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")]


class SiteIndex(StrictModel):
    """The ``signed`` payload of a site's ``site-index.json`` (TUF's snapshot idea), signed by
    the ``site`` role: the checkpoint the site shows and every file that makes a claim."""

    type_: Literal["site-index"] = Field(default="site-index", alias="_type")
    spec_version: Literal["1"] = SPEC_VERSION
    time: UtcTimestamp
    expires: UtcTimestamp
    checkpoint: TreeHead
    files: dict[str, FileClaim]


# --- Manifests -------------------------------------------------------------------------


class Manifest(StrictModel):
    """Fields every signed payload carries. Subclasses name their kind."""

    KIND: ClassVar[str]
    ROLE: ClassVar[RoleName]
    DIRECTORY: ClassVar[str]

    spec_version: Literal["1"] = SPEC_VERSION
    product: ProductName
    created: UtcTimestamp

    def identity(self) -> str:
        """The file stem this manifest must be stored under."""
        raise NotImplementedError

    def relname(self) -> str:
        """Where this manifest lives, relative to ``manifests/``, as a ``/`` string (cheap:
        the site build names tens of thousands)."""
        return f"{self.product}/{self.DIRECTORY}/{self.identity()}.json"

    def relpath(self) -> PurePosixPath:
        """Where this manifest lives, relative to ``manifests/``."""
        return PurePosixPath(self.relname())

    def signed_dict(self) -> dict[str, Any]:
        """The JSON-native payload that gets signed."""
        return self.model_dump(mode="json")
