"""The README's "Ship your own image" block, run exactly as written: from nothing to a
served site for a new product, fed the real Fedora Cloud 27 compose metadata over HTTP."""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import requests

from tests.conftest import FIXTURES, ROOT, StaticServer

CLOUD = "Fedora-Cloud-27-20180317.0"


def readme_block() -> str:
    """The first ``sh`` block of the README's "Ship your own image" section."""
    readme = (ROOT / "README.md").read_text()
    section = readme.split("\n## Ship your own image\n", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"```sh\n(.*?)```", section, flags=re.S)
    assert match, "the section must hold a ```sh block"
    return match.group(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_ship_your_own_image_from_the_readme(
    tmp_path: Path, serve_dir: Callable[[Path], StaticServer]
) -> None:
    block = readme_block()
    assert len([line for line in block.splitlines() if line.strip()]) <= 12  # "ten commands"
    metadata = tmp_path / "srv" / CLOUD / "compose" / "metadata"
    metadata.mkdir(parents=True)
    for name in ("composeinfo", "images"):
        shutil.copy(FIXTURES / f"fedimg-vcr-{CLOUD}-{name}.json", metadata / f"{name}.json")
    server = serve_dir(tmp_path / "srv")
    # The `fortnight` console script ([project.scripts]): this interpreter's entry point.
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    shim = bin_dir / "fortnight"
    shim.write_text(f'#!/bin/sh\nexec "{sys.executable}" -m pipeline.cli.main "$@"\n')
    shim.chmod(0o755)
    (tmp_path / "home").mkdir()
    work = tmp_path / "work"
    work.mkdir()
    port = free_port()
    env = {
        "HOME": str(tmp_path / "home"),
        "PATH": f"{bin_dir}:{Path(sys.executable).parent}:/usr/bin:/bin",
        "COMPOSE_URL": f"{server.url}{CLOUD}/compose/",
        "PORT": str(port),
        "LANG": "C.UTF-8",
        "COLUMNS": "120",
    }
    proc = subprocess.Popen(
        ["bash", "-e", "-c", block],
        cwd=work,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        page = wait_for(f"http://127.0.0.1:{port}/index.html", proc)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        output = proc.communicate(timeout=30)[0]
    assert page is not None, output
    assert "<title>MyOS Cloud, based on Fedora 27</title>" in page, output
    assert "Fedora-Cloud-27-20180318.0" in page  # the released sample compose
    assert "recorded: manifests/myos/composes/Fedora-Cloud-27-20180317.0.json" in output
    log = work / "myos-log"
    status = subprocess.run(
        ["git", "status", "--porcelain"], cwd=log, capture_output=True, text=True, check=True
    )
    assert status.stdout == ""  # output/ and logs/ never sit untracked in the log
    keys = sorted(p.name for p in (tmp_path / "home/myos-keys").iterdir())
    assert keys == ["compose.key", "release.key", "root.key", "test.key"]


def wait_for(url: str, proc: subprocess.Popen[str], timeout: float = 400) -> str | None:
    """The body at ``url`` once it answers 200, or None if ``proc`` ends first."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            answer = requests.get(url, timeout=5)
        except requests.ConnectionError:
            time.sleep(0.5)
            continue
        if answer.status_code == 200:
            return answer.text
        time.sleep(0.5)
    return None
