"""The log is append-only, provably: an index of every manifest and signed checkpoints over it.

``manifests/log.idx`` names every manifest in the order it was recorded, one line each:
``<sha256 of the file's bytes> <path relative to manifests/>``. Root versions
(``trust/``) are not in it: they are a chain of their own, verified from the pin
(:mod:`pipeline.log.trust`). ``manifests/checkpoints/<N>.json`` is a signed tree head
(:class:`~pipeline.core.models.common.Checkpoint`): the RFC 9162 Merkle root
(:mod:`pipeline.core.merkle`) of the first ``size`` lines of the index, with ``time``,
``expires`` and the previous checkpoint's root. Every committing write appends its lines
and the next checkpoint in the same commit.

A checkpoint verifies when every root of the chain is the root of that prefix of the
current index (so N+1 extends N and nothing shrank or changed), sizes and times never go
down, and it is signed by a threshold of each role whose manifests it adds (a compose key
alone cannot sign the entry of a release decision), by a threshold of ``timestamp`` or
any role when it adds nothing (a refresh), or by a threshold of ``root`` (the upgrade).

Each clone remembers the newest checkpoint it verified in ``git config
fortnight.checkpoint`` (``<number> <root>``), outside the tracked tree, and refuses a log
that has fewer checkpoints or another root at that number. A speed-up, never trusted for
more than it checked, lives in ``<git dir>/fortnight-cache/checkpoint.json``: the Merkle
state after the index prefix already verified.
"""

from __future__ import annotations

import functools
import hashlib
import json
import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

from pydantic import ValidationError

from pipeline.core.merkle import TreeBuilder, leaf_hash
from pipeline.core.models.common import Checkpoint, Envelope, RoleName, Trust, format_timestamp
from pipeline.core.models.manifests import KINDS
from pipeline.errors import TrustError, describe_validation_error
from pipeline.fsutil import atomic_write
from pipeline.log.git import Git
from pipeline.log.layout import CHECKPOINT_DIR, INDEX_FILE, MANIFESTS, NON_MANIFEST_DIRS
from pipeline.log.signing import ManifestRejected, dump_envelope, loads_strict, signed_bytes
from pipeline.log.sslib import Signer
from pipeline.log.trust import valid_signers

CHECKPOINT_CONFIG = "fortnight.checkpoint"
#: How long a checkpoint stays fresh by default: one 14-day cycle plus 3 days of grace.
DEFAULT_VALIDITY = timedelta(days=17)
UPGRADE_HINT = "run 'invoke checkpoint.upgrade' (see README, 'Keys and trust')"
INDEX_PATH = f"{MANIFESTS}/{INDEX_FILE}"
_LINE_RE = re.compile(r"^([0-9a-f]{64}) (\S+)$")
_INDEX_RE = re.compile(rb"(?:[0-9a-f]{64} (?:[^\s/.][^\s/]*/){2,}[^\s/.][^\s/]*\.json\n)*")
_RESERVED_RE = re.compile(
    rb"^[0-9a-f]{64} (?:" + b"|".join(d.encode() for d in sorted(NON_MANIFEST_DIRS)) + rb")/",
    re.M,
)
_FILE_RE = re.compile(r"^[1-9][0-9]*\.json$")
_ROLE_OF_DIR: dict[str, RoleName] = {m.DIRECTORY: m.ROLE for m in KINDS.values()}
_STATE_FILE = "checkpoint.json"


class IndexEntry(NamedTuple):
    """One line of ``log.idx``: a manifest's sha256 and its path under ``manifests/``."""

    sha256: str
    name: str

    def line(self) -> bytes:
        """The line as written, with its newline."""
        return f"{self.sha256} {self.name}\n".encode()


@dataclass(frozen=True)
class SignedCheckpoint:
    """One checkpoint file: where it is, its bytes, envelope and payload."""

    path: str  # relative to the repository
    raw: bytes
    envelope: Envelope
    signed: Checkpoint


def checkpoint_path(number: int) -> str:
    """``manifests/checkpoints/<number>.json``."""
    return f"{MANIFESTS}/{CHECKPOINT_DIR}/{number}.json"


def role_of(name: str) -> RoleName | None:
    """The role that signs the manifest at ``name`` (by its kind folder), if any."""
    parts = name.split("/")
    return _ROLE_OF_DIR.get(parts[1]) if len(parts) > 2 else None


# --- the index -------------------------------------------------------------------------


def _check_name(name: str, number: int) -> None:
    parts = name.split("/")
    bad = (
        len(parts) < 3
        or not name.endswith(".json")
        or parts[0] in NON_MANIFEST_DIRS
        or any(not p or p.startswith(".") for p in parts)
    )
    if bad:
        raise TrustError(f"{INDEX_PATH}: line {number}: {name!r} is not a manifest path")


def parse_index(raw: bytes) -> list[IndexEntry]:
    """The entries of ``log.idx``, checked: one ``<sha256> <path>`` per line, each path once.

    Raises:
        TrustError: naming the first bad line.
    """
    if not raw:
        return []
    # The whole file checked at once (a long log has tens of thousands of lines); the line
    # by line parse below only runs to name what is wrong.
    if raw.isascii() and _INDEX_RE.fullmatch(raw) and not _RESERVED_RE.search(raw):
        lines = raw.decode("ascii").split("\n")
        lines.pop()
        entries = [IndexEntry(line[:64], line[65:]) for line in lines]
        if len({e.name for e in entries}) == len(entries):
            return entries
    return _parse_lines(raw)


def _parse_lines(raw: bytes) -> list[IndexEntry]:
    if not raw.endswith(b"\n"):
        raise TrustError(f"{INDEX_PATH}: the last line is cut short (no newline)")
    try:
        text = raw.decode("ascii")
    except UnicodeDecodeError:
        raise TrustError(f"{INDEX_PATH}: not ASCII text") from None
    entries: list[IndexEntry] = []
    seen: set[str] = set()
    for number, line in enumerate(text[:-1].split("\n"), start=1):
        match = _LINE_RE.match(line)
        if match is None:
            raise TrustError(f"{INDEX_PATH}: line {number}: not '<sha256> <path>'")
        sha, name = match.groups()
        if name in seen:
            raise TrustError(f"{INDEX_PATH}: line {number}: {name} is listed twice")
        _check_name(name, number)
        seen.add(name)
        entries.append(IndexEntry(sha, name))
    return entries


def read_index(root: Path) -> bytes:
    """The bytes of ``log.idx`` under ``root`` (the ``manifests`` folder); empty if absent."""
    try:
        return (root / INDEX_FILE).read_bytes()
    except FileNotFoundError:
        return b""


# --- checkpoint files ------------------------------------------------------------------


def checkpoint_count(root: Path) -> int:
    """How many checkpoint files there are (numbered 1..N; gaps are found by the reader)."""
    folder = root / CHECKPOINT_DIR
    return sum(1 for p in folder.iterdir() if _FILE_RE.match(p.name)) if folder.is_dir() else 0


def checkpoint_files(root: Path) -> list[Path]:
    """``checkpoints/<N>.json`` in order, checked to be 1..N with no gap or stray file.

    Raises:
        TrustError: a stray file, or a missing number.
    """
    folder = root / CHECKPOINT_DIR
    numbered: dict[int, Path] = {}
    for path in sorted(folder.iterdir()) if folder.is_dir() else []:
        if not _FILE_RE.match(path.name) or not path.is_file():
            raise TrustError(f"{MANIFESTS}/{CHECKPOINT_DIR}/{path.name}: not a checkpoint file")
        numbered[int(path.name[:-5])] = path
    for expected, number in enumerate(sorted(numbered), start=1):
        if number != expected:
            raise TrustError(
                f"{checkpoint_path(expected)}: missing (checkpoints are consecutive from 1)"
            )
    return [numbered[n] for n in sorted(numbered)]


def read_checkpoint(path: Path, number: int) -> SignedCheckpoint:
    """Parse one checkpoint file (strict JSON, its model, its number).

    Raises:
        TrustError: it is not a checkpoint, or not checkpoint ``number``.
    """
    where = checkpoint_path(number)
    raw = path.read_bytes()
    try:
        envelope = Envelope.model_validate(loads_strict(raw), strict=True)
        signed = Checkpoint.model_validate(envelope.signed, strict=True)
    except ManifestRejected as e:
        raise TrustError(f"{where}: {e.reason}") from None
    except ValidationError as e:
        raise TrustError(f"{where}: not a checkpoint ({describe_validation_error(e)})") from e
    if signed.number != number:
        raise TrustError(f"{where}: holds checkpoint {signed.number}, its file name says {number}")
    return SignedCheckpoint(where, raw, envelope, signed)


def check_signed(
    cp: SignedCheckpoint, trusts: Sequence[Trust], added: Sequence[IndexEntry]
) -> None:
    """Check who signed ``cp`` (see the module's rules) against ``trusts``: the keys of
    every root version (a key removed later still vouches for what it signed before).

    Raises:
        TrustError: not signed by a threshold of the roles its new entries need.
    """
    try:
        data = signed_bytes(cp.envelope.signed)
    except ManifestRejected as e:
        raise TrustError(f"{cp.path}: {e.reason}") from None

    def meets(role: RoleName) -> bool:
        for trust in trusts:
            spec = trust.roles[role]
            if valid_signers(cp.envelope, data, spec, trust) >= spec.threshold:
                return True
        return False

    if meets("root"):
        return
    if not added:
        if any(meets(r) for r in trusts[-1].roles if r not in ("root", "site")):
            return
        raise TrustError(f"{cp.path}: not signed by a threshold of any trusted role's keys")
    roles = {role_of(e.name) for e in added}
    missing = sorted(str(r) for r in roles if r is None or not meets(r))
    if missing:
        raise TrustError(
            f"{cp.path}: adds {len(added)} manifest(s) but is not signed by a threshold "
            f"of the keys of role(s) {', '.join(missing)}",
            hint="a checkpoint that adds a manifest needs the keys of the role that signs it",
        )


# --- signing the next checkpoint -------------------------------------------------------


def sign_checkpoint(signed: Checkpoint, signers: Sequence[Signer]) -> bytes:
    """The bytes of a checkpoint file signed by every signer."""
    payload = signed.model_dump(mode="json", by_alias=True)
    data = signed_bytes(payload)
    return dump_envelope(payload, [s.sign(data) for s in signers])


def next_checkpoint(
    previous: Checkpoint | None,
    index: Sequence[IndexEntry],
    signers: Sequence[Signer],
    at: datetime,
    validity: timedelta = DEFAULT_VALIDITY,
) -> bytes:
    """The next checkpoint over ``index``, signed by ``signers``, made at ``at`` (never
    before the previous one's time), expiring ``validity`` later."""
    builder = TreeBuilder()
    for entry in index:
        builder.append(leaf_hash(entry.line()))
    return sign_tree_head(previous, builder.size, builder.root().hex(), signers, at, validity)


def sign_tree_head(
    previous: Checkpoint | None,
    size: int,
    root: str,
    signers: Sequence[Signer],
    at: datetime,
    validity: timedelta = DEFAULT_VALIDITY,
) -> bytes:
    """The checkpoint after ``previous`` for a tree of ``size`` leaves and ``root``."""
    time = max(at, previous.time) if previous is not None else at
    signed = Checkpoint(
        number=previous.number + 1 if previous is not None else 1,
        size=size,
        root=root,
        previous=previous.root if previous is not None else None,
        time=time,
        expires=time + validity,
    )
    return sign_checkpoint(signed, signers)


def newest(root: Path) -> SignedCheckpoint | None:
    """The newest checkpoint, parsed but not verified (for writing the next one).

    Raises:
        TrustError: it does not parse.
    """
    count = checkpoint_count(root)
    if not count:
        return None
    return read_checkpoint(root / CHECKPOINT_DIR / f"{count}.json", count)


def frozen_message(head: Checkpoint) -> str:
    """What verification says past the newest checkpoint's expiry."""
    return (
        f"frozen: the log's newest checkpoint expired at {format_timestamp(head.expires)} "
        f"(signed at {format_timestamp(head.time)})"
    )


def check_fresh(head: Checkpoint | None, now: datetime) -> None:
    """Fail when the newest checkpoint has expired at ``now``.

    Raises:
        TrustError: ``frozen: …`` (see :func:`frozen_message`).
    """
    if head is not None and head.expires <= now:
        raise TrustError(
            f"{checkpoint_path(head.number)}: {frozen_message(head)}",
            hint="run 'invoke checkpoint.refresh' with FORTNIGHT_KEY_TIMESTAMP",
        )


# --- the clone's memory and the speed-up -----------------------------------------------


def remembered(git: Git) -> tuple[int, str] | None:
    """The newest checkpoint this clone verified (``git config fortnight.checkpoint``)."""
    value = git.run("config", "--get", CHECKPOINT_CONFIG, check=False).stdout.split()
    if len(value) == 2 and value[0].isdigit() and re.fullmatch(r"[0-9a-f]{64}", value[1]):
        return int(value[0]), value[1]
    return None


def forget_uncommitted(git: Git, head: SignedCheckpoint | None) -> None:
    """After uncommitted checkpoints were dropped (a killed write, see the writer's
    ``_verify_or_tidy``), remember no more than ``head``, the newest one left: the dropped ones
    were never committed, so no other clone can have seen them."""
    memory = remembered(git)
    if memory is None or (head is not None and memory[0] <= head.signed.number):
        return
    if head is None:
        git.run("config", "--unset", CHECKPOINT_CONFIG, check=False)
    else:
        remember(git, head.signed)


def remember(git: Git, cp: Checkpoint) -> None:
    """Record ``cp`` as the newest checkpoint this clone verified."""
    if git.is_repo():
        git.run("config", CHECKPOINT_CONFIG, f"{cp.number} {cp.root}", check=False)


@dataclass
class MerkleState:
    """The tree after a verified prefix of the index (a cache: checked before use)."""

    index_bytes: int
    index_sha256: str
    number: int  # the newest checkpoint verified over that prefix
    checkpoint_sha256: str
    stack: list[tuple[int, bytes]]
    size: int

    def to_json(self) -> dict[str, Any]:
        """A JSON-native form."""
        return {
            "index_bytes": self.index_bytes,
            "index_sha256": self.index_sha256,
            "number": self.number,
            "checkpoint_sha256": self.checkpoint_sha256,
            "stack": [[n, h.hex()] for n, h in self.stack],
            "size": self.size,
        }


def load_state(cache_dir: Path | None, index: bytes) -> MerkleState | None:
    """The cached state, if it describes a prefix of ``index``; None otherwise."""
    if cache_dir is None:
        return None
    try:
        doc = json.loads((cache_dir / _STATE_FILE).read_bytes())
        state = MerkleState(
            int(doc["index_bytes"]),
            str(doc["index_sha256"]),
            int(doc["number"]),
            str(doc["checkpoint_sha256"]),
            [(int(n), bytes.fromhex(h)) for n, h in doc["stack"]],
            int(doc["size"]),
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    prefix = index[: state.index_bytes]
    if len(prefix) != state.index_bytes:
        return None
    if hashlib.sha256(prefix).hexdigest() != state.index_sha256:
        return None
    return state


def save_state(cache_dir: Path | None, state: MerkleState) -> None:
    """Write the cache (failing to write only makes the next check slower)."""
    if cache_dir is None:
        return
    try:
        cache_dir.mkdir(parents=True, exist_ok=True)
        atomic_write(cache_dir / _STATE_FILE, json.dumps(state.to_json()).encode())
    except OSError:
        pass


# --- verifying the chain ---------------------------------------------------------------


@dataclass(frozen=True)
class VerifiedLog:
    """The index (its bytes) and the newest checkpoint, verified."""

    raw: bytes
    head: Checkpoint | None

    def digests(self, products: Collection[str] | None = None) -> dict[str, str]:
        """The sha256 of each name in the index (of ``products``' folders, if given)."""
        if products is None:
            pairs = _ANY_LINE_RE.findall(self.raw)
        else:
            pairs = [p for name in sorted(products) for p in _product_re(name).findall(self.raw)]
        return {name.decode(): sha.decode() for sha, name in pairs}


_ANY_LINE_RE = re.compile(rb"^([0-9a-f]{64}) (\S+)$", re.M)


@functools.lru_cache(maxsize=64)
def _product_re(product: str) -> re.Pattern[bytes]:
    return re.compile(rb"^([0-9a-f]{64}) (" + re.escape(product.encode()) + rb"/\S+)$", re.M)


def _rollback(seen: int, has: int) -> TrustError:
    return TrustError(
        f"rollback: this clone saw checkpoint {seen}, the log has {has} < {seen}",
        hint="someone rewrote the log's history (force-push, revert, deletion); do not use it",
    )


def _resume(
    cache_dir: Path | None, raw: bytes, files: list[Path]
) -> tuple[TreeBuilder, Checkpoint | None, int]:
    """Where to start: the cached tree after a verified prefix, else the beginning."""
    builder = TreeBuilder()
    state = load_state(cache_dir, raw)
    if state is None or sum(n for n, _ in state.stack) != state.size:
        return builder, None, 1
    if state is None or not 1 <= state.number <= len(files):
        return builder, None, 1
    cp_raw = files[state.number - 1].read_bytes()
    if hashlib.sha256(cp_raw).hexdigest() != state.checkpoint_sha256:
        return builder, None, 1
    cp = read_checkpoint(files[state.number - 1], state.number).signed
    if cp.size != state.size:
        return builder, None, 1
    return TreeBuilder.resume(state.stack), cp, state.number + 1


def _check_link(cp: SignedCheckpoint, prev: Checkpoint | None, total: int) -> None:
    s = cp.signed
    if prev is not None:
        if s.size < prev.size:
            raise TrustError(f"{cp.path}: shrinks the log from {prev.size} to {s.size} entries")
        if s.previous != prev.root:
            raise TrustError(f"{cp.path}: does not follow checkpoint {prev.number} (previous root)")
        if s.time < prev.time:
            raise TrustError(f"{cp.path}: signed before checkpoint {prev.number}")
    if s.size > total:
        raise TrustError(
            f"{cp.path}: covers {s.size} entries but {INDEX_PATH} has only {total} "
            "(recorded manifests were removed from the index)"
        )


def verify_chain(
    root: Path, git: Git, trusts: Sequence[Trust], cache_dir: Path | None
) -> VerifiedLog:
    """Verify ``log.idx`` and every checkpoint over it (see the module's rules), against
    the clone's memory, and remember the newest. ``trusts``: every root version's trust,
    oldest first; the newest checkpoint, when it adds nothing (a refresh), must verify
    under the last one.

    Raises:
        TrustError: naming the first file that does not hold, or ``rollback: …``.
    """
    raw = read_index(root)
    files = checkpoint_files(root)
    memory = remembered(git)
    if memory is not None and memory[0] > len(files):
        raise _rollback(memory[0], len(files))
    if not files:
        if parse_index(raw):
            raise TrustError(f"{INDEX_PATH}: no checkpoint covers it", hint=UPGRADE_HINT)
        return VerifiedLog(raw, None)
    unchanged = _unchanged(cache_dir, raw, files)
    if unchanged is not None:  # verified before, byte for byte: only the memory to check
        _check_memory(memory, {unchanged.number: unchanged.root}, files)
        if memory != (unchanged.number, unchanged.root):
            remember(git, unchanged)
        return VerifiedLog(raw, unchanged)
    entries = parse_index(raw)
    builder, prev, start = _resume(cache_dir, raw, files)
    roots: dict[int, str] = {}
    for number in range(start, len(files) + 1):
        cp = read_checkpoint(files[number - 1], number)
        _check_link(cp, prev, len(entries))
        added = entries[builder.size : cp.signed.size]
        for entry in added:
            builder.append(leaf_hash(entry.line()))
        if builder.root().hex() != cp.signed.root:
            raise TrustError(
                f"{cp.path}: its root is not that of the first {cp.signed.size} lines of "
                f"{INDEX_PATH} (a recorded entry was changed or removed)"
            )
        last = number == len(files) and not added
        check_signed(cp, trusts[-1:] if last else trusts, added)
        prev, roots[number] = cp.signed, cp.signed.root
    assert prev is not None
    if len(entries) > prev.size:
        raise TrustError(
            f"{INDEX_PATH}: {entries[prev.size].name} and later entries are not covered by a "
            f"checkpoint (the newest, {prev.number}, covers {prev.size})",
            hint="record manifests with the invoke tasks, which sign a checkpoint",
        )
    _check_memory(memory, roots, files)
    if roots:
        _save(cache_dir, raw, files, prev, builder)
    if memory != (prev.number, prev.root):
        remember(git, prev)
    return VerifiedLog(raw, prev)


def _unchanged(cache_dir: Path | None, raw: bytes, files: list[Path]) -> Checkpoint | None:
    """The newest checkpoint, when the cache says this very index and newest checkpoint
    file verified before (the state names their sha256); None otherwise."""
    state = load_state(cache_dir, raw)
    if state is None or state.index_bytes != len(raw) or state.number != len(files):
        return None
    cp_raw = files[-1].read_bytes()
    if hashlib.sha256(cp_raw).hexdigest() != state.checkpoint_sha256:
        return None
    head = read_checkpoint(files[-1], len(files)).signed
    return head if head.size == state.size else None


def _check_memory(memory: tuple[int, str] | None, roots: dict[int, str], files: list[Path]) -> None:
    if memory is None:
        return
    number, seen = memory
    root = roots.get(number)
    if root is None:
        root = read_checkpoint(files[number - 1], number).signed.root
    if root != seen:
        raise TrustError(
            f"{checkpoint_path(number)}: not the checkpoint this clone saw (root {root[:16]}…, "
            f"saw {seen[:16]}…)",
            hint="the log's history was rewritten; do not use it",
        )


def _save(
    cache_dir: Path | None, raw: bytes, files: list[Path], head: Checkpoint, b: TreeBuilder
) -> None:
    cp_raw = files[head.number - 1].read_bytes()
    # The head covers the whole index (checked before): the prefix is all of it.
    state = MerkleState(
        len(raw),
        hashlib.sha256(raw).hexdigest(),
        head.number,
        hashlib.sha256(cp_raw).hexdigest(),
        b.compact_range(),
        b.size,
    )
    save_state(cache_dir, state)
