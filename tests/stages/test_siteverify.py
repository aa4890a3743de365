"""fortnight-verify: a published site checked end to end from the pinned root, and the site
half of the tamper corpus (each altered claim rejected with its reason)."""

from __future__ import annotations

import contextlib
import io
import json
import re
import shutil
import subprocess
import sys
from collections.abc import Callable
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from pipeline.adapters.sitefetch import SiteSource
from pipeline.cli.verify_site import main
from pipeline.core.models.common import format_timestamp, parse_timestamp
from pipeline.errors import TrustError
from pipeline.stages.siteverify import verify_site
from tests.conftest import ROOT
from tests.sitekit import History, day, scenario_current

Site = tuple[History, Path, str]


@pytest.fixture
def site(make_history: Callable[..., History], tmp_path: Path) -> Site:
    h = make_history()
    out = tmp_path / "out"
    h.build(out, scenario_current(h))
    return h, out, h.log.log.load_root().chain.fingerprint


AT = format_timestamp(day(15, 12))  # when the site was built
AT_LATER = format_timestamp(day(16, 12))


def run(site: Path | str, fingerprint: str, state: Path, *extra: str) -> tuple[int, str]:
    """``fortnight-verify`` in this process (the console script's function), as of the
    build unless ``--at`` is in ``extra``."""
    at = () if "--at" in extra else ("--at", AT)
    err, out = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(out):
        code = main([str(site), "--root", fingerprint, "--state", str(state), *at, *extra])
    return code, (err.getvalue() or out.getvalue()).strip()


def current_image(tmp_path: Path) -> Path:
    """The x86_64 qcow2 of the newest compose, as a user downloads it."""
    return sorted(tmp_path.glob("composes/*/compose/**/*.x86_64.qcow2"))[-1]


def test_a_good_site_verifies_and_names_the_image(site: Site, tmp_path: Path) -> None:
    _, out, fingerprint = site
    code, text = run(out, fingerprint, tmp_path / "state", "--image", str(current_image(tmp_path)))
    assert code == 0, text
    assert re.match(
        r"^OK: .*: root [0-9a-f]{16}…, checkpoint \d+ \(\d+ manifests\), \d+ files as signed, "
        r"fresh until 2018-06-\d\dT\d\d:\d\d:\d\dZ; .*qcow2 is in streams/atomic-host\.json$",
        text,
    ), text
    saved = json.loads(next((tmp_path / "state").iterdir()).read_bytes())
    assert saved["fingerprint"] == fingerprint and saved["number"] >= 1


def _edit(rel: str, old: str, new: str) -> Callable[[Path], None]:
    def tamper(out: Path) -> None:
        path = out / rel
        text = path.read_text()
        assert old in text, (rel, old)
        path.write_text(text.replace(old, new, 1))

    return tamper


def _first_sha(rel: str) -> Callable[[Path], None]:
    def tamper(out: Path) -> None:
        path = out / rel
        text = path.read_text()
        sha = re.findall(r"[0-9a-f]{64}", text)[0]
        path.write_text(text.replace(sha, "0" * 64, 1))

    return tamper


def _resign_nothing(out: Path) -> None:
    """The index itself edited to match an altered page, without the site key."""
    _edit("atomic-host/index.html", "https://dl.example.org", "https://evil.invalid")(out)
    doc = json.loads((out / "site-index.json").read_bytes())
    doc["signed"]["files"]["atomic-host/index.html"]["size"] += 1
    (out / "site-index.json").write_text(json.dumps(doc))


SITE_CASES: list[tuple[str, Callable[[Path], None], str]] = [
    (
        "checksum-line",
        _first_sha("atomic-host/releases/2018-05-15/CHECKSUM"),
        r"^atomic-host/releases/2018-05-15/CHECKSUM: differs from the signed site-index\.json",
    ),
    (
        "stream-sha256",
        _first_sha("streams/atomic-host.json"),
        r"^streams/atomic-host\.json: differs from the signed site-index\.json",
    ),
    (
        "download-link",
        _edit("atomic-host/index.html", "https://dl.example.org", "https://evil.invalid"),
        r"^atomic-host/index\.html: differs from the signed site-index\.json",
    ),
    (
        "latest-pointer",
        _edit("latest/atomic-host/x86_64/qcow2/latest", "Fedora", "Evil"),
        r"^latest/atomic-host/x86_64/qcow2/latest: differs from the signed site-index\.json",
    ),
    (
        "index-edited",
        _resign_nothing,
        r"^site-index\.json: not signed by a threshold of the site role's keys \(0 of 1\)$",
    ),
    (
        "claimed-file-deleted",
        lambda out: (out / "streams/atomic-host.json").unlink(),
        r"^streams/atomic-host\.json: missing \(the signed site-index\.json names it\)$",
    ),
    (
        "log-index-rewritten",
        _first_sha("manifests/log.idx"),
        r"^manifests/checkpoints/\d+\.json: its root is not that of manifests/log\.idx$",
    ),
]


@pytest.mark.parametrize(
    ("tamper", "reason"), [c[1:] for c in SITE_CASES], ids=[c[0] for c in SITE_CASES]
)
def test_an_altered_claim_is_rejected_with_its_reason(
    site: Site, tmp_path: Path, tamper: Callable[[Path], None], reason: str
) -> None:
    _, out, fingerprint = site
    tamper(out)
    code, text = run(out, fingerprint, tmp_path / "state")
    assert code == 4
    message = text.removeprefix("fortnight-verify: error: ")
    assert re.search(reason, message), message


def test_a_wrong_image_and_a_wrong_pin(site: Site, tmp_path: Path) -> None:
    _, out, fingerprint = site
    bad = tmp_path / "download.qcow2"
    bad.write_bytes(current_image(tmp_path).read_bytes() + b"\0")
    code, text = run(out, fingerprint, tmp_path / "state", "--image", str(bad))
    assert code == 4 and "download.qcow2: not an image of the current signed release" in text
    code, text = run(out, "0" * 64, tmp_path / "other")
    assert code == 4 and "does not match the pinned root" in text


def test_an_older_copy_after_a_newer_one_is_a_rollback(site: Site, tmp_path: Path) -> None:
    h, out, fingerprint = site
    older = tmp_path / "older"
    shutil.copytree(out, older)
    old_number = json.loads((older / "site-index.json").read_bytes())["signed"]["checkpoint"]
    h.compose(day(16))
    h.build(out, day(16, 12))
    state = tmp_path / "state"
    assert run(out, fingerprint, state, "--at", AT_LATER)[0] == 0
    seen = json.loads(next(state.iterdir()).read_bytes())["number"]
    # The same address now serves the older copy (a stale mirror, a replayed site).
    shutil.rmtree(out)
    shutil.copytree(older, out)
    code, text = run(out, fingerprint, state, "--at", AT_LATER)
    assert code == 4
    assert text == (
        f"fortnight-verify: error: rollback: this verifier saw checkpoint {seen}, the site has "
        f"{old_number['number']} < {seen}; the site (or a mirror) serves an older copy; "
        "do not use it"
    )


def test_an_expired_site_is_frozen(site: Site, tmp_path: Path) -> None:
    _, out, fingerprint = site
    index: dict[str, Any] = json.loads((out / "site-index.json").read_bytes())["signed"]
    expires = parse_timestamp(index["expires"])
    source = SiteSource(str(out))
    verify_site(source, fingerprint, expires - timedelta(seconds=1), tmp_path / "s1")
    with pytest.raises(
        TrustError, match=r"^site-index\.json: frozen: the site's checkpoint expired at "
    ):
        verify_site(source, fingerprint, expires, tmp_path / "s2")


def test_the_console_script_verifies_over_http(
    site: Site, tmp_path: Path, serve_dir: Callable[[Path], Any]
) -> None:
    _, out, fingerprint = site
    server = serve_dir(out)
    state = ("--state", str(tmp_path / "state"), "--at", AT)
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.cli.verify_site",
            server.url,
            "--root",
            fingerprint,
            *state,
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith(f"OK: {server.url}: root {fingerprint[:16]}")
    assert any("site-index.json" in r for r in server.requests)
    (out / "streams/atomic-host.json").write_text("{}")
    again = subprocess.run(
        [
            sys.executable,
            "-m",
            "pipeline.cli.verify_site",
            server.url,
            "--root",
            fingerprint,
            *state,
        ],
        capture_output=True,
        text=True,
        check=False,
        cwd=ROOT,
        timeout=120,
    )
    assert again.returncode == 4
    assert again.stderr.startswith("fortnight-verify: error: streams/atomic-host.json: differs")
