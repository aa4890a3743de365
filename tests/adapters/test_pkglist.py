"""An rpm-ostree commit's package list (``rpmostree.rpmdb.pkglist``, GVariant ``a(stsss)``):
the text parser, and real commits made and read back by the real ``ostree`` command."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipeline.adapters import pkglist
from pipeline.adapters.ostree import OstreeRepo
from pipeline.adapters.pkglist import PKGLIST_KEY, PkglistError, format_pkglist, parse_pkglist
from pipeline.errors import OstreeError
from tests.ostreekit import commit_tree

#: As rpm-ostree writes it (the shape Fedora Atomic Host 28's commits carry).
PKGLIST = (
    "[('kernel-core', uint64 0, '4.16.3', '301.fc28', 'x86_64'), "
    "('rpm-ostree', 0, '2018.5', '1.fc28', 'x86_64'), "
    "('docker', 2, '1.13.1', '51.git4032bd5.fc28', 'x86_64'), "
    "('glibc-langpack-en', 0, '2.27', '8.fc28', 'x86_64'), "
    "('fedora-repos', 0, '28', '1', 'noarch'), "
    "('git-core', 0, '2.17.0~rc1^1', '1.fc28', 'x86_64')]"
)
NEVRAS = [
    "docker-2:1.13.1-51.git4032bd5.fc28.x86_64",
    "fedora-repos-0:28-1.noarch",
    "git-core-0:2.17.0~rc1^1-1.fc28.x86_64",
    "glibc-langpack-en-0:2.27-8.fc28.x86_64",
    "kernel-core-0:4.16.3-301.fc28.x86_64",
    "rpm-ostree-0:2018.5-1.fc28.x86_64",
]


@pytest.mark.parametrize(
    ("text", "nevras"),
    [
        ("[]", []),
        ("@a(stsss) []", []),
        ("[('bash', uint64 0, '4.4.19', '1.fc28', 'x86_64')]", ["bash-0:4.4.19-1.fc28.x86_64"]),
        ('[("bash", uint64 0, "4.4.19", "1.fc28", "x86_64")]\n', ["bash-0:4.4.19-1.fc28.x86_64"]),
        # ostree show prints metadata byte-swapped on little-endian machines: epoch 2
        ("[('vim', uint64 144115188075855872, '8.0', '1', 'x86_64')]", ["vim-2:8.0-1.x86_64"]),
        ("[('a\\u002bb', uint64 0, '1', '1', 'noarch')]", ["a+b-0:1-1.noarch"]),
    ],
)
def test_parse_reads_the_list(text: str, nevras: list[str]) -> None:
    assert parse_pkglist(text) == nevras


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "not a list of rpms"),
        ("'version'", "not a list of rpms"),
        ("@a(sisss) []", r"of type a\(sisss\), not a\(stsss\)"),
        ("[('bash', 0, '4.4', '1', 'x86_64')]", r"not of type a\(stsss\) \(no 'uint64' epoch"),
        ("[('bash', int32 0, '4.4', '1', 'x86_64')]", "not of type a"),
        ("[('bash', uint64 0, '4.4', '1')]", "expected an rpm .* at character 30"),
        ("[('bash', uint64 '0', '4.4', '1', 'x86_64')]", "expected an rpm"),
        ("[('bash', uint64 0, '4.4', '1', 'x86_64')", "not closed"),
        ("[('bash', uint64 0, '4.4', '1', 'x86_64')] extra", "unexpected 'extra'"),
        ("[('a', uint64 0, '1', '1', 'x') ('b', 0, '1', '1', 'x')]", "expected ',' or ']'"),
        ("[('a', uint64 0, '1', '1', 'x'), ('b', uint32 0, '1', '1', 'x')]", "expected an rpm"),
        ("[('../etc', uint64 0, '1', '1', 'x86_64')]", "name '../etc' is not an rpm name"),
        ("[('bash', uint64 0, '4-4', '1', 'x86_64')]", "version '4-4' is not an rpm version"),
        ("[('bash', uint64 0, '4.4', '1', 'x86 64')]", "arch 'x86 64' is not an rpm arch"),
        ("[('bash', uint64 0, '4.4\\q', '1', 'x86_64')]", r"unknown escape \\q"),
        ("[('bash', uint64 99999999999999999999, '4', '1', 'x')]", "not a 32-bit number"),
        ("[('bash', uint64 0, '1', '1', 'x'), ('bash', 0, '1', '1', 'x')]", "listed twice"),
        ("[('" + "a" * 201 + "', uint64 0, '1', '1', 'x')]", "is not an rpm name"),
    ],
)
def test_parse_refuses_what_is_not_a_package_list(text: str, message: str) -> None:
    with pytest.raises(PkglistError, match=message) as exc:
        parse_pkglist(text)
    assert "\n" not in str(exc.value)


def test_parse_is_bounded(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(pkglist, "MAX_PKGLIST_CHARS", len(PKGLIST) - 1)
    with pytest.raises(PkglistError, match="larger than the"):
        parse_pkglist(PKGLIST)
    monkeypatch.setattr(pkglist, "MAX_PKGLIST_CHARS", len(PKGLIST))
    monkeypatch.setattr(pkglist, "MAX_PKGLIST_RPMS", 5)
    with pytest.raises(PkglistError, match="more than 5 rpms"):
        parse_pkglist(PKGLIST)


def _commit(tmp_path: Path, metadata: dict[str, str]) -> tuple[OstreeRepo, str]:
    repo = OstreeRepo(tmp_path / "repo")
    return repo, commit_tree(
        repo, "fedora/28/x86_64/updates/atomic-host", {"a": "b"}, "28.1", "", metadata
    )


def test_a_real_commit_s_package_list(tmp_path: Path) -> None:
    """``ostree commit --add-metadata`` writes the list as rpm-ostree does; ``ostree show``
    reads it back (a non-zero epoch included, whatever the machine's byte order)."""
    repo, commit = _commit(tmp_path, {PKGLIST_KEY: PKGLIST})
    assert repo.package_list(commit) == NEVRAS
    plain_repo, plain = _commit(tmp_path / "plain", {})
    assert plain_repo.package_list(plain) is None  # no package list: unknown, not an error
    with pytest.raises(OstreeError, match=f"commit {'0' * 64}"):
        plain_repo.package_list("0" * 64)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("[('bash', '4.4')]", r"not of type a\(stsss\)"),
        ("'not a list'", "not a list of rpms"),
        ("[('x;rm -rf', uint64 0, '1', '1', 'x86_64')]", "is not an rpm name"),
    ],
)
def test_a_hostile_package_list_is_one_line_naming_the_commit(
    tmp_path: Path, value: str, message: str
) -> None:
    repo, commit = _commit(tmp_path, {PKGLIST_KEY: value})
    with pytest.raises(OstreeError, match=message) as exc:
        repo.package_list(commit)
    assert f"commit {commit}: {PKGLIST_KEY}: " in exc.value.message
    assert "\n" not in exc.value.diagnostics()


def test_a_commit_too_large_to_read_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo, commit = _commit(tmp_path, {PKGLIST_KEY: PKGLIST})
    monkeypatch.setattr("pipeline.adapters.ostree.MAX_PKGLIST_CHARS", 64)
    with pytest.raises(OstreeError, match=f"commit {commit}: larger than the 64 byte limit"):
        repo.package_list(commit)


def test_format_writes_what_parse_and_ostree_read(tmp_path: Path) -> None:
    rpms = [("kernel-core", 0, "4.16.3", "301.fc28", "x86_64"), ("vim", 2, "8.0", "1", "x86_64")]
    text = format_pkglist(rpms)
    assert parse_pkglist(text) == ["kernel-core-0:4.16.3-301.fc28.x86_64", "vim-2:8.0-1.x86_64"]
    assert parse_pkglist(format_pkglist([])) == []
    repo, commit = _commit(tmp_path, {PKGLIST_KEY: text})
    assert repo.package_list(commit) == parse_pkglist(text)
    # quotes and backslashes are escaped: the text stays one GVariant string per field
    odd = format_pkglist([("a'b\\c", 0, "1", "1", "x")])
    assert odd == "[('a\\'b\\\\c', uint64 0, '1', '1', 'x')]"
    with pytest.raises(PkglistError, match="is not an rpm name"):
        parse_pkglist(odd)


_WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789_.+", min_size=1, max_size=12)
_RPM = st.tuples(
    st.builds(str.__add__, st.sampled_from("abkz"), st.text("abz09_.+-", max_size=20)),
    st.integers(min_value=0, max_value=2**32 - 1),
    _WORD,
    _WORD,
    st.sampled_from(["x86_64", "aarch64", "noarch", "ppc64le"]),
)


@settings(max_examples=60, deadline=None, derandomize=True, database=None)
@given(st.lists(_RPM, max_size=8, unique_by=lambda r: r))
def test_what_format_writes_parse_reads_back(rpms: list[tuple[str, int, str, str, str]]) -> None:
    expected = sorted(f"{n}-{e}:{v}-{r}.{a}" for n, e, v, r, a in rpms)
    assert parse_pkglist(format_pkglist(rpms)) == expected


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(st.text(alphabet="[]()'\",\\ uint64@astx0123456789", max_size=80))
def test_any_text_parses_or_fails_with_a_pkglist_error(text: str) -> None:
    """Hostile text: a list of NEVRAs or a PkglistError, never another exception."""
    message = ""
    try:
        result = parse_pkglist(text)
    except PkglistError as e:
        message, result = str(e), []
    assert "\n" not in message
    assert all(isinstance(n, str) for n in result)
