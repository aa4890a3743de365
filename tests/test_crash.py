"""Killed at any moment, finished by a re-run (issue 17): ``compose.record``, ``test.run``,
``release.cut``, ``tracker.sync`` and ``site.publish`` are each killed with SIGKILL at seeded
points (just before their Nth git command, file move or S3 request: tests/crashkit.py), then
killed again while recovering, then run to the end. The log must end complete, committed,
pushed and verified, with one decision per identity, and the bucket must hold the site."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests

from pipeline.demo.simulate import with_battery
from tests.conftest import ROOT, ComposeTree, Log

SEED = 17
C1, C2 = "Fedora-28-20180425.0", "Fedora-28-20180426.0"
#: Kill points: the first among the early steps every run of a task takes (each of these
#: tasks takes at least 12 when it has work to do), the second anywhere in a run.
EARLY, ANYWHERE = 12, 60
BUCKET = "fortnight-crash"


class Crasher:
    """Runs tasks through tests/crashkit.py on one log, killing them at seeded steps."""

    def __init__(self, log: Log, tmp: Path, env: dict[str, str]) -> None:
        self.rnd = random.Random(SEED)
        self.tmp = tmp
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("FORTNIGHT_")}
        self.env.update({**log.env, **env, "FORTNIGHT_REPO": str(log.repo), "COLUMNS": "200"})
        self.kills: dict[str, list[int]] = {}

    def run(self, at: int, *task: str) -> subprocess.CompletedProcess[str]:
        count = self.tmp / "steps"
        return subprocess.run(
            [sys.executable, str(ROOT / "tests" / "crashkit.py"), str(at), str(count), *task],
            env=self.env,
            capture_output=True,
            text=True,
            check=False,
            timeout=120,
        )

    def crash_then_finish(self, *task: str) -> str:
        """Kill ``task`` early, kill its re-run anywhere, then run it to the end."""
        landed = self.kills.setdefault(task[0], [])
        for limit in (EARLY, ANYWHERE):
            at = self.rnd.randint(1, limit)
            proc = self.run(at, *task)
            if proc.returncode == -signal.SIGKILL:
                landed.append(at)
            else:  # the run ended before step ``at``: it must have ended well
                assert proc.returncode == 0, proc.stderr
        return self.finish(*task)

    def finish(self, *task: str) -> str:
        """Run ``task`` to the end; it must succeed."""
        done = self.run(0, *task)
        assert done.returncode == 0, done.stdout + done.stderr
        assert "Traceback" not in done.stderr
        return done.stdout


@dataclass
class Bucket:
    """An empty bucket on moto's S3 server, and the environment that reaches it."""

    endpoint: str
    env: dict[str, str]

    def client(self) -> Any:
        return boto3.client(
            "s3",
            endpoint_url=self.endpoint,
            aws_access_key_id=self.env["AWS_ACCESS_KEY_ID"],
            aws_secret_access_key=self.env["AWS_SECRET_ACCESS_KEY"],
            region_name=self.env["AWS_DEFAULT_REGION"],
        )

    def objects(self) -> dict[str, bytes]:
        """Every object under ``site/``, by site-relative path."""
        client = self.client()
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix="site/")
        keys = [str(o["Key"]) for p in pages for o in p.get("Contents", [])]
        return {k[5:]: client.get_object(Bucket=BUCKET, Key=k)["Body"].read() for k in keys}


@pytest.fixture
def bucket(moto_server: str) -> Bucket:
    """A fresh moto (reset) with the bucket created."""
    env = {
        "AWS_ACCESS_KEY_ID": "testing-key-id",
        "AWS_SECRET_ACCESS_KEY": "testing-secret",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    requests.post(f"{moto_server}/moto-api/reset", timeout=10).raise_for_status()
    made = Bucket(moto_server, env)
    made.client().create_bucket(Bucket=BUCKET)
    return made


def test_tasks_killed_at_seeded_steps_finish_on_a_rerun(
    make_log: Callable[..., Log],
    make_compose_tree: Callable[..., ComposeTree],
    bucket: Bucket,
    tmp_path: Path,
) -> None:
    toml = with_battery((ROOT / "manifests/atomic-host/product.toml").read_bytes())
    log = make_log(product_toml=toml)
    remote = tmp_path / "remote.git"
    subprocess.run(["git", "init", "--quiet", "--bare", str(remote)], check=True)
    log.git("remote", "add", "origin", str(remote))
    crash = Crasher(log, tmp_path, bucket.env)
    push = "--push"

    good, bad = make_compose_tree(C1), make_compose_tree(C2)
    crash.crash_then_finish("compose.record", "--source", str(good.root), push)
    crash.finish("test.run", "--compose-id", C1, "--no-tracker", push)
    crash.crash_then_finish("release.cut", push)
    crash.finish("compose.record", "--source", str(bad.root), push)
    qcow2 = next(i for i in bad.atomic_x86_64() if i["type"] == "qcow2")["path"]
    image = bad.compose_dir / qcow2
    image.write_bytes(bytes(16) + image.read_bytes()[16:])  # damaged after recording
    crash.crash_then_finish("test.run", "--compose-id", C2, "--no-tracker", push)
    crash.crash_then_finish("tracker.sync", push)
    out_dir = tmp_path / "out"
    crash.finish("site.build", "--output", str(out_dir))
    target = ("--target", f"s3://{BUCKET}/site", "--endpoint-url", bucket.endpoint)
    crash.crash_then_finish("site.publish", "--output", str(out_dir), *target)

    assert all(crash.kills.values()), crash.kills  # every task was really killed
    assert log.git("status", "--porcelain", "--untracked-files=all") == ""
    assert log.git("rev-parse", "HEAD") == log.git("--git-dir", str(remote), "rev-parse", "main")
    audit = crash.run(0, "verify")
    assert audit.returncode == 0 and "warning" not in audit.stderr, audit.stderr
    root = log.repo / "manifests/atomic-host"
    committed = set(log.git("ls-files", "manifests/atomic-host").split())
    assert {f"manifests/atomic-host/composes/{c}.json" for c in (C1, C2)} <= committed
    for cid in (C1, C2):
        assert list((root / "tests" / cid).glob("images-*.json"))
    [decision] = (root / "releases").glob("*.json")
    assert json.loads(decision.read_text())["signed"]["compose_id"] == C1
    assert sorted(p.name for p in (root / "trackers").glob("*.json")) == [
        f"local1-opened-{C2}.json"
    ]
    site = {
        p.relative_to(out_dir).as_posix(): p.read_bytes()
        for p in out_dir.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(out_dir).parts)
    }
    assert bucket.objects() == site
