"""Stage: OSTree trees of composes, promoted to the public repository by releases.

Recording reads each arch's commit (from the compose's repository, a bus message or the
operator) and checks it: present, complete, one ``version`` across arches. A release
copies the commits into the public repository, signs them and generates the static delta
*before* its manifest is written (a failure leaves no release manifest), then moves the
refs and re-signs the summary *after* (nothing moves a ref without a signed manifest).
:func:`sync_refs` makes the refs match the log again after any crash, and
:func:`ref_problems` reports a ref that does not.
"""

from __future__ import annotations

import tempfile
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from pipeline.adapters.ostree import CHECKSUM, GpgKey, OstreeRepo
from pipeline.core.config import OstreeConfig, ProductConfig, load_product
from pipeline.core.models.manifests import OstreeCommit, OstreePromotion
from pipeline.core.ostree import desired_refs, named_refs
from pipeline.core.state import State, derive
from pipeline.errors import ConfigError, InputError, OstreeError
from pipeline.log.reader import Verified
from pipeline.log.store import ManifestLog
from pipeline.stages.load import load_state

#: Called after each step of a promotion with its name (``pulled``, ``delta``,
#: ``recorded``, ``ref``, ``summary``): tests inject a crash there.
FaultHook = Callable[[str], None]


def no_fault(step: str) -> None:
    return None


@dataclass(frozen=True)
class OstreeSetup:
    """The ``[ostree]`` table resolved at the task edge: repositories and the key."""

    config: OstreeConfig
    public: OstreeRepo
    #: Where the composes' commits are: a local repository, or an http(s) URL.
    source: OstreeRepo | str | None
    key: GpgKey | None


def _path(value: str, base: Path) -> Path:
    path = Path(value).expanduser()
    return path if path.is_absolute() else (base / path)


def ostree_setup(
    product: ProductConfig, checkout: Path, env: Mapping[str, str]
) -> OstreeSetup | None:
    """Resolve ``[ostree]``: relative paths against the log's ``checkout``, overridden by
    ``FORTNIGHT_OSTREE_REPO``, ``FORTNIGHT_OSTREE_COMPOSE_REPO`` and
    ``FORTNIGHT_OSTREE_GPG_HOMEDIR``. None when the product has no ``[ostree]``."""
    config = product.ostree
    if config is None:
        return None
    public = OstreeRepo(_path(env.get("FORTNIGHT_OSTREE_REPO") or config.repo, checkout))
    source_value = env.get("FORTNIGHT_OSTREE_COMPOSE_REPO") or config.compose_repo
    source: OstreeRepo | str | None = None
    if source_value.startswith(("http://", "https://")):
        source = source_value
    elif source_value:
        source = OstreeRepo(_path(source_value, checkout))
    homedir = env.get("FORTNIGHT_OSTREE_GPG_HOMEDIR") or config.gpg_homedir
    key = None
    if config.gpg_key:
        key = GpgKey(config.gpg_key, _path(homedir, checkout) if homedir else None)
    return OstreeSetup(config=config, public=public, source=source, key=key)


# --- recording ---------------------------------------------------------------------------


def local_source(source: OstreeRepo | str | None, cache: Path | None = None) -> OstreeRepo:
    """A local repository for ``source``; a URL is mirrored into ``cache`` (or a scratch
    folder) ref by ref as :func:`read_trees` asks.

    Raises:
        ConfigError: no source is configured.
    """
    if source is None:
        raise ConfigError(
            "[ostree] compose_repo: not set and no --ostree-repo given",
            hint="say where the compose's OSTree repository is",
        )
    if isinstance(source, OstreeRepo):
        return source
    folder = cache or Path(tempfile.mkdtemp(prefix="fortnight-ostree-"))
    repo = OstreeRepo(folder / "repo")
    repo.init("archive")
    return repo


def read_trees(
    source: OstreeRepo | str,
    config: OstreeConfig,
    version: str,
    arches: Sequence[str],
    *,
    cache: Path | None = None,
) -> tuple[OstreeRepo, list[OstreeCommit]]:
    """Each arch's commit of the compose ref (``[ostree] compose_ref``) in ``source``.

    Raises:
        InputError: no arch has a ref in the repository.
        OstreeError: the repository cannot be read.
    """
    repo = local_source(source, cache)
    trees = []
    for arch in arches:
        ref = config.source_ref(version, arch)
        if isinstance(source, str):
            try:
                commit: str | None = repo.pull_url(source, ref)
            except OstreeError:
                commit = None
        else:
            commit = repo.resolve(ref)
        if commit is not None:
            trees.append(_tree(repo, arch, ref, commit))
    if not trees:
        refs = ", ".join(config.source_ref(version, a) for a in arches)
        raise InputError(
            f"--ostree-repo {source if isinstance(source, str) else source.path}: "
            f"none of the refs {refs} exists",
            hint="check [ostree] compose_ref, or give --ostree-commit ARCH=CHECKSUM",
        )
    return repo, trees


def _tree(repo: OstreeRepo, arch: str, ref: str, commit: str) -> OstreeCommit:
    return OstreeCommit(arch=arch, ref=ref, commit=commit, version=repo.version(commit))


def parse_commit_options(specs: Sequence[str]) -> dict[str, str]:
    """``--ostree-commit ARCH=CHECKSUM`` options, by arch.

    Raises:
        InputError: not ``ARCH=CHECKSUM``, not a checksum, or an arch given twice.
    """
    out: dict[str, str] = {}
    for spec in specs:
        arch, sep, commit = spec.partition("=")
        if not sep or not arch or not CHECKSUM.match(commit):
            raise InputError(
                f"--ostree-commit {spec}: expected ARCH=CHECKSUM (64 lowercase hex digits)"
            )
        if arch in out:
            raise InputError(f"--ostree-commit {spec}: arch {arch} given twice")
        out[arch] = commit
    return out


def explicit_trees(
    repo: OstreeRepo, config: OstreeConfig, version: str, commits: Mapping[str, str]
) -> list[OstreeCommit]:
    """Trees named by the operator (or a bus message); versions are read from ``repo``.

    Raises:
        OstreeError: a commit is not in ``repo`` or has no version.
    """
    return [
        _tree(repo, arch, config.source_ref(version, arch), c)
        for arch, c in sorted(commits.items())
    ]


def check_trees(repo: OstreeRepo, trees: Sequence[OstreeCommit]) -> None:
    """The battery's OSTree check: every commit is present and complete, and every arch
    carries the same ``version``.

    Raises:
        OstreeError: a commit is missing or incomplete, or the versions differ.
    """
    for tree in trees:
        repo.check_complete(tree.commit)
    versions = {t.version for t in trees}
    if len(versions) > 1:
        detail = ", ".join(f"{t.arch} {t.version}" for t in trees)
        raise OstreeError(
            f"{repo.path}: the arches carry different versions ({detail})",
            hint="record the trees of one compose run, which share one version",
        )


@dataclass(frozen=True)
class GatheredTrees:
    """A compose's checked OSTree trees, and each arch's package list read from its commit
    (``packages`` None: not asked for, or no commit has one)."""

    trees: list[OstreeCommit]
    packages: dict[str, list[str]] | None = None


def gather_trees(
    setup: OstreeSetup | None,
    version: str,
    *,
    repo: str | None,
    commits: Sequence[str],
    arches: Sequence[str],
) -> list[OstreeCommit]:
    """The checked OSTree trees of a compose with base ``version`` (see :func:`gather`).

    Raises:
        ConfigError, InputError, OstreeError: see :func:`gather`.
    """
    return gather(setup, version, repo=repo, commits=commits, arches=arches).trees


def gather(
    setup: OstreeSetup | None,
    version: str,
    *,
    repo: str | None,
    commits: Sequence[str],
    arches: Sequence[str],
    packages: bool = False,
) -> GatheredTrees:
    """The checked OSTree trees of a compose with base ``version``: each arch's commit of
    ``--ostree-repo`` (or ``[ostree] compose_repo``), or the ``--ostree-commit`` ones; with
    ``packages``, also each commit's package list (``rpmostree.rpmdb.pkglist``).

    Raises:
        ConfigError: the product has no ``[ostree]`` table.
        InputError: a bad ``--ostree-commit``, or no ref found.
        OstreeError: a commit is missing, incomplete, or the versions differ; or a
            package list cannot be read.
    """
    if setup is None:
        raise ConfigError(
            "product.toml: no [ostree] table, so OSTree trees cannot be recorded",
            hint="add [ostree] (see the README, 'OSTree')",
        )
    source: OstreeRepo | str | None = setup.source
    if repo:
        source = repo if repo.startswith(("http://", "https://")) else OstreeRepo(Path(repo))
    explicit = parse_commit_options(commits)
    if explicit:
        local = local_source(source)
        if isinstance(source, str):
            for commit in explicit.values():
                local.pull_url(source, commit)
        trees = explicit_trees(local, setup.config, version, explicit)
    else:
        local, trees = read_trees(
            local_source(source) if source is None else source, setup.config, version, arches
        )
    check_trees(local, trees)
    return GatheredTrees(trees, commit_packages(local, trees) if packages else None)


def commit_packages(repo: OstreeRepo, trees: Sequence[OstreeCommit]) -> dict[str, list[str]] | None:
    """Each arch's package list from its commit's metadata, for the arches whose commit has
    one; None when none has.

    Raises:
        OstreeError: a package list cannot be read (see :meth:`OstreeRepo.package_list`).
    """
    found = {t.arch: rpms for t in trees if (rpms := repo.package_list(t.commit)) is not None}
    return found or None


# --- promotion ---------------------------------------------------------------------------


def _check_binding(repo: OstreeRepo, p: OstreePromotion) -> None:
    bound = repo.ref_bindings(p.commit)
    if bound and p.ref not in bound:
        raise OstreeError(
            f"{repo.path}: commit {p.commit} ({p.arch}) is bound to {', '.join(bound)}, "
            f"so hosts following {p.ref} would refuse it",
            hint=f"commit the compose's trees with --bind-ref={p.ref} (or without bindings)",
        )


def prepare(
    setup: OstreeSetup, planned: Sequence[OstreePromotion], fault: FaultHook = no_fault
) -> None:
    """Before the release manifest: copy each commit into the public repository, sign it,
    and generate the static delta from the previous commit. Moves no ref.

    Raises:
        OstreeError, ConfigError: a commit cannot be pulled, signed or deltaed; no release
            manifest must be written then.
    """
    if not planned:
        return
    setup.public.init("archive")
    for p in planned:
        if not setup.public.has_commit(p.commit):
            source = local_source(setup.source)
            if isinstance(setup.source, str):
                source.pull_url(setup.source, p.commit)
            if not source.has_commit(p.commit):
                raise OstreeError(
                    f"{source.path}: commit {p.commit} ({p.arch}) is not in the repository",
                    hint="check [ostree] compose_repo; the release is not recorded",
                )
            setup.public.pull_local(source, p.commit)
        _check_binding(setup.public, p)
        if setup.key is not None:
            setup.public.sign(p.commit, setup.key)
    fault("pulled")
    if setup.config.deltas:
        for p in planned:
            if p.previous is not None and setup.public.has_commit(p.previous):
                setup.public.generate_delta(p.previous, p.commit)
    fault("delta")


def apply(
    setup: OstreeSetup, planned: Sequence[OstreePromotion], fault: FaultHook = no_fault
) -> None:
    """After the release manifest is committed: move each ref, then re-sign the summary.

    Raises:
        OstreeError: a ref or the summary could not be written (``ostree.sync`` finishes).
    """
    if not planned:
        return
    for p in planned:
        setup.public.set_ref(p.ref, p.commit)
    fault("ref")
    setup.public.update_summary(setup.key)
    fault("summary")


@dataclass
class SyncReport:
    """What :func:`sync_refs` changed (or would change, with ``dry_run``)."""

    moved: dict[str, tuple[str | None, str]] = field(default_factory=dict)
    deleted: list[str] = field(default_factory=list)
    summary: bool = False


def sync_refs(
    setup: OstreeSetup,
    state: State,
    *,
    dry_run: bool = False,
    fault: FaultHook = no_fault,
) -> SyncReport:
    """Make the public refs match the verified log, and re-sign the summary if they did
    not (or the summary lists other refs). Idempotent.

    Raises:
        OstreeError: a commit the log names cannot be brought into the repository.
    """
    wanted = desired_refs(state)
    repo = setup.public
    report = SyncReport()
    if not wanted and not repo.exists():
        return report
    have = repo.refs() if repo.exists() else {}
    for ref, p in sorted(wanted.items()):
        if have.get(ref) != p.commit:
            report.moved[ref] = (have.get(ref), p.commit)
    report.deleted = sorted(r for r in named_refs(state) if r in have and r not in wanted)
    listed = repo.summary_refs() if repo.exists() else {}
    expected = {**{r: c for r, c in have.items() if r not in report.deleted}}
    expected.update({r: new for r, (_old, new) in report.moved.items()})
    report.summary = bool(report.moved or report.deleted) or listed != expected
    if dry_run:
        return report
    missing = [p for p in wanted.values() if not repo.has_commit(p.commit)]
    prepare(setup, missing)
    for ref, (_old, new) in report.moved.items():
        repo.set_ref(ref, new)
    for ref in report.deleted:
        repo.delete_ref(ref)
    fault("ref")
    if report.summary:
        repo.update_summary(setup.key)
    fault("summary")
    return report


def ref_problems(setup: OstreeSetup, state: State) -> list[str]:
    """Each public ref that does not match the log, and a summary that lists other refs
    than the repository has, as one line each (``invoke verify``)."""
    report = sync_refs_dry(setup, state)
    repo = setup.public
    problems = [
        f"{repo.path}: ref {ref} points to {old or 'nothing'}, the log says {new}"
        for ref, (old, new) in sorted(report.moved.items())
    ]
    problems += [
        f"{repo.path}: ref {ref} exists, but only withdrawn releases name it"
        for ref in report.deleted
    ]
    if report.summary and not problems:
        problems.append(f"{repo.path}: summary does not list the repository's refs")
    return problems


def sync_refs_dry(setup: OstreeSetup, state: State) -> SyncReport:
    """What :func:`sync_refs` would change."""
    return sync_refs(setup, state, dry_run=True)


def verify_refs(
    log: ManifestLog,
    env: Mapping[str, str],
    now: datetime,
    verified: Sequence[Verified] | None = None,
) -> list[str]:
    """``invoke verify``'s OSTree part: for each product with ``[ostree]`` whose public
    repository is on this machine, every ref that does not match the log.

    ``verified``: the whole log, verified already without a failure (``invoke verify``
    has just checked every file): each product's state is derived from it instead of
    verifying the product's manifests again. None: each product is loaded (fail closed).

    Raises:
        VerificationError: a manifest failed verification (fail closed).
        ConfigError: a ``product.toml`` is invalid.
    """
    problems: list[str] = []
    for name in log.product_names():
        product = load_product(log.root, name)
        setup = ostree_setup(product, log.repo, env)
        if setup is None or not setup.public.exists():
            continue
        if verified is None:
            state, _trust = load_state(log, product, now)
        else:
            ours = [v.manifest for v in verified if v.name.startswith(f"{name}/")]
            state = derive(ours, product, now)
        problems += ref_problems(setup, state)
    return problems


def sync_product(
    log: ManifestLog,
    product: ProductConfig,
    env: Mapping[str, str],
    now: datetime,
    *,
    dry_run: bool = False,
) -> tuple[OstreeSetup, SyncReport]:
    """``invoke ostree.sync``: make the product's public refs match the verified log.

    Raises:
        ConfigError: the product has no ``[ostree]``.
        VerificationError: a manifest failed verification (nothing is moved).
        OstreeError: a commit the log names cannot be brought into the repository.
    """
    setup = ostree_setup(product, log.repo, env)
    if setup is None:
        raise ConfigError(
            f"{product.name}/product.toml: no [ostree] table: nothing to sync",
            hint="add [ostree] (see the README, 'OSTree')",
        )
    log.require_repo()
    with log.lock():
        state, _trust = load_state(log, product, now)
        return setup, sync_refs(setup, state, dry_run=dry_run)
