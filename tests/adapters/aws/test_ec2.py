"""cloud.discover: boto3 against moto's EC2 server on 127.0.0.1 (real HTTP); fakes for faults."""

from __future__ import annotations

import json
import socket
from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import boto3
import pytest
import requests
from botocore.config import Config
from botocore.exceptions import ClientError

from pipeline.adapters.aws.ec2 import WITHDRAWN_TAG, ClientFactory, WithdrawAction, discover
from pipeline.core.config import AwsClouds, load_product
from pipeline.core.models.manifests import (
    BaseRef,
    CloudImagesManifest,
    ComposeManifest,
    ReleaseManifest,
)
from pipeline.errors import ConfigError, InputError
from pipeline.log.writer import WriteOptions
from pipeline.stages.clouds import discover_clouds, withdraw_clouds
from pipeline.stages.load import load_state
from tests.conftest import NOW, ROOT, Log, make_compose, run_invoke

OWNER = "123456789012"  # moto's account
CID = "Fedora-Atomic-22-20150915.0"
REGIONS = ["ap-southeast-2", "eu-west-1", "us-east-1"]
CLOUDS_TOML = f"""
[clouds.aws]
regions = {json.dumps(REGIONS)}
owner = "{OWNER}"
name_pattern = "Fedora-Cloud-*-{{compose_id}}*"
arches = ["x86_64", "aarch64"]
"""
BASE_AMIS: dict[tuple[str, str], str] = {}
NO_RETRY = Config(retries={"total_max_attempts": 1, "mode": "standard"}, connect_timeout=2)


@dataclass
class Ec2:
    """moto's server and a way to put AMIs in it."""

    url: str

    def client(self, region: str) -> Any:
        return boto3.client("ec2", region_name=region, endpoint_url=self.url, config=NO_RETRY)

    def factory(self) -> ClientFactory:
        return self.client

    def ami(self, region: str, arch: str, name: str, *, public: bool) -> str:
        """Register an AMI of ``arch`` (via an instance of one of moto's AMIs)."""
        ec2 = self.client(region)
        if (region, arch) not in BASE_AMIS:  # listing moto's stock AMIs is slow: once
            found = ec2.describe_images(Filters=[{"Name": "architecture", "Values": [arch]}])
            BASE_AMIS[region, arch] = found["Images"][0]["ImageId"]
        started = ec2.run_instances(ImageId=BASE_AMIS[region, arch], MinCount=1, MaxCount=1)
        instance = started["Instances"][0]
        ami = str(ec2.create_image(InstanceId=instance["InstanceId"], Name=name)["ImageId"])
        ec2.create_tags(Resources=[ami], Tags=[{"Key": "ComposeId", "Value": CID}])
        if public:
            ec2.modify_image_attribute(ImageId=ami, LaunchPermission={"Add": [{"Group": "all"}]})
        return ami


@pytest.fixture
def ec2(moto_server: str, monkeypatch: pytest.MonkeyPatch) -> Ec2:
    """A fresh EC2 (moto reset) with dummy credentials; AMIs of the compose in two regions."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing-key-id")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing-secret-do-not-log")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    for var in ("AWS_PROFILE", "AWS_SESSION_TOKEN", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(var, raising=False)
    requests.post(f"{moto_server}/moto-api/reset", timeout=10).raise_for_status()
    ec2 = Ec2(moto_server)
    ec2.ami("us-east-1", "x86_64", f"Fedora-Cloud-Atomic-{CID}.x86_64", public=True)
    ec2.ami("us-east-1", "arm64", f"Fedora-Cloud-Atomic-{CID}.aarch64", public=True)
    ec2.ami("eu-west-1", "x86_64", f"Fedora-Cloud-Atomic-{CID}.x86_64", public=False)
    # Another compose's image: not matched.
    ec2.ami(
        "ap-southeast-2", "x86_64", "Fedora-Cloud-Atomic-Fedora-Atomic-22-20150901.0", public=True
    )
    return ec2


@pytest.fixture
def cloud_log(make_log: Callable[..., Log]) -> Log:
    """A log with [clouds.aws] in product.toml and the compose recorded."""
    toml = (ROOT / "manifests/atomic-host/product.toml").read_text() + CLOUDS_TOML
    log = make_log(product_toml=toml.encode())
    trust = log.log.load_trust()
    log.log.record(
        [make_compose()], [log.signers["compose"]], trust, "compose: setup", WriteOptions()
    )
    return log


def run(log: Log, factory: ClientFactory, hours: int = 1, **kw: Any) -> Any:
    product = load_product(log.log.root, "atomic-host")
    return discover_clouds(
        log.log,
        product,
        CID,
        signers=[log.signers["compose"]],
        options=WriteOptions(),
        now=NOW + timedelta(hours=hours),
        make_client=factory,
        workers=kw.pop("workers", 3),
        attempts=kw.pop("attempts", 3),
        backoff=kw.pop("backoff", 0.01),
    )


def rows(m: CloudImagesManifest) -> list[tuple[str, str, str, bool]]:
    return [(i.arch, i.region, i.volume_type, i.public) for i in m.images]


def test_discover_records_each_region_and_the_missing_one(ec2: Ec2, cloud_log: Log) -> None:
    before = len(cloud_log.commits())
    outcome = run(cloud_log, ec2.factory())
    m = outcome.manifest
    assert outcome.write is not None and outcome.write.commit
    assert m.relpath().as_posix() == f"atomic-host/clouds/{CID}-aws-1.json"
    assert rows(m) == [
        ("aarch64", "us-east-1", "standard", True),
        ("x86_64", "eu-west-1", "standard", False),
        ("x86_64", "us-east-1", "standard", True),
    ]
    assert all(i.virtualization_type == "hvm" and i.ami_id.startswith("ami-") for i in m.images)
    assert [(x.region, x.reason) for x in m.missing] == [
        ("ap-southeast-2", f"no image matched name Fedora-Cloud-*-{CID}*")
    ]
    assert cloud_log.commits()[0] == f"cloud: discover {CID} (2 regions, 1 missing)"

    # Same result: nothing recorded.
    again = run(cloud_log, ec2.factory(), hours=2)
    assert again.write is None and again.manifest.run == 1
    assert len(cloud_log.commits()) == before + 1

    # A later run finds one more region: run 2, and the newest counts.
    ec2.ami("ap-southeast-2", "arm64", f"Fedora-Cloud-Atomic-{CID}.aarch64", public=True)
    later = run(cloud_log, ec2.factory(), hours=3)
    assert later.manifest.run == 2 and later.manifest.missing == []
    assert ("aarch64", "ap-southeast-2", "standard", True) in rows(later.manifest)
    product = load_product(cloud_log.log.root, "atomic-host")
    state, _ = load_state(cloud_log.log, product, NOW + timedelta(hours=4))
    assert state.clouds[CID].run == 2
    assert cloud_log.commits()[0] == f"cloud: discover {CID} (3 regions, 0 missing)"


def test_match_by_tag(ec2: Ec2) -> None:
    aws = AwsClouds(regions=REGIONS, owner=OWNER, match="tag", arches=["x86_64"])
    images, missing = discover(make_compose(), aws, ec2.factory(), arches=[], backoff=0.0)
    assert [(i.arch, i.region) for i in images] == [
        ("x86_64", "ap-southeast-2"),  # tagged with CID though named otherwise
        ("x86_64", "eu-west-1"),
        ("x86_64", "us-east-1"),
    ]
    assert missing == []


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_unreachable_region_is_retried_then_missing(ec2: Ec2, cloud_log: Log) -> None:
    dead = f"http://127.0.0.1:{closed_port()}"
    calls: list[str] = []

    def factory(region: str) -> Any:
        calls.append(region)
        url = dead if region == "eu-west-1" else ec2.url
        return boto3.client("ec2", region_name=region, endpoint_url=url, config=NO_RETRY)

    m = run(cloud_log, factory, attempts=3).manifest
    assert calls.count("eu-west-1") == 3 and calls.count("us-east-1") == 1
    assert [i.region for i in m.images] == ["us-east-1", "us-east-1"]
    reasons = {x.region: x.reason for x in m.missing}
    assert reasons["eu-west-1"].startswith("EndpointConnectionError: ")
    assert reasons["eu-west-1"].endswith("(after 3 attempts)")
    assert "testing-secret" not in reasons["eu-west-1"]


def test_a_failing_region_keeps_what_an_earlier_run_found(ec2: Ec2, cloud_log: Log) -> None:
    first = run(cloud_log, ec2.factory()).manifest
    assert {i.region for i in first.images} == {"us-east-1", "eu-west-1"}
    dead = f"http://127.0.0.1:{closed_port()}"

    def factory(region: str) -> Any:
        url = dead if region == "eu-west-1" else ec2.url
        return boto3.client("ec2", region_name=region, endpoint_url=url, config=NO_RETRY)

    outage = run(cloud_log, factory, hours=2, attempts=2)
    assert outage.write is None  # eu-west-1's AMIs carried forward: nothing changed
    assert outage.manifest == first


class FakeClient:
    """Raises the given error codes in turn, then answers with one image."""

    def __init__(self, codes: list[str]) -> None:
        self.codes = codes
        self.calls = 0

    def describe_images(self, **kwargs: Any) -> dict[str, Any]:
        self.calls += 1
        if self.codes:
            code = self.codes.pop(0)
            raise ClientError({"Error": {"Code": code, "Message": f"{code} says no"}}, "X")
        return {
            "Images": [
                {
                    "ImageId": "ami-0123abcd",
                    "Name": CID,
                    "Architecture": "arm64",
                    "VirtualizationType": "hvm",
                    "RootDeviceName": "/dev/sda1",
                    "BlockDeviceMappings": [
                        {"DeviceName": "/dev/sdb", "Ebs": {"VolumeType": "io1"}},
                        {"DeviceName": "/dev/sda1", "Ebs": {"VolumeType": "gp3"}},
                    ],
                    "Public": False,
                }
            ]
        }


def fake_discover(
    clients: dict[str, FakeClient], compose: ComposeManifest | None = None
) -> tuple[Any, Any, list[float]]:
    sleeps: list[float] = []
    aws = AwsClouds(regions=sorted(clients), owner=OWNER)
    images, missing = discover(
        compose or make_compose(),
        aws,
        clients.__getitem__,
        arches=["x86_64", "aarch64"],
        attempts=4,
        backoff=0.5,
        sleep=sleeps.append,
    )
    return images, missing, sleeps


def test_throttling_is_retried_with_backoff_and_auth_failure_is_not() -> None:
    throttled = FakeClient(["Throttling", "RequestLimitExceeded"])
    denied = FakeClient(["AuthFailure"])
    images, missing, sleeps = fake_discover({"us-east-1": throttled, "eu-west-1": denied})
    assert throttled.calls == 3 and denied.calls == 1
    assert sleeps == [0.5, 1.0]
    assert [(i.region, i.arch, i.volume_type, i.public) for i in images] == [
        ("us-east-1", "aarch64", "gp3", False)
    ]
    assert [(x.region, x.reason) for x in missing] == [
        ("eu-west-1", "AuthFailure: AuthFailure says no")
    ]


def test_throttled_too_long_is_missing() -> None:
    client = FakeClient(["Throttling"] * 10)
    _, missing, sleeps = fake_discover({"us-east-1": client})
    assert client.calls == 4 and sleeps == [0.5, 1.0, 2.0]
    assert missing[0].reason == "Throttling: Throttling says no (after 4 attempts)"


def test_no_clouds_table_is_a_config_error(make_log: Callable[..., Log]) -> None:
    log = make_log()
    with pytest.raises(ConfigError, match=r"no \[clouds.aws\] in product.toml"):
        run(log, lambda region: None)


def test_cli_discover(ec2: Ec2, cloud_log: Log) -> None:
    env = {
        **cloud_log.env,
        "AWS_ACCESS_KEY_ID": "testing-key-id",
        "AWS_SECRET_ACCESS_KEY": "testing-secret-do-not-log",
        "AWS_DEFAULT_REGION": "us-east-1",
    }
    args = ["cloud.discover", "--compose-id", CID, "--repo", str(cloud_log.repo)]
    proc = run_invoke(*args, "--endpoint-url", ec2.url, env=env)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert "missing: ap-southeast-2: no image matched" in out
    assert f"recorded: manifests/atomic-host/clouds/{CID}-aws-1.json" in out
    assert "eu-west-1" in out and "standard" in out
    assert "testing-secret" not in out and "testing-key-id" not in out
    again = run_invoke(*args, "--endpoint-url", ec2.url, env=env)
    assert again.returncode == 0 and "unchanged since run 1" in again.stdout
    missing = run_invoke(
        "cloud.discover",
        "--compose-id",
        "nope",
        "--repo",
        str(cloud_log.repo),
        "--endpoint-url",
        ec2.url,
        env=env,
    )
    assert missing.returncode == 3 and "not recorded" in missing.stderr


# --- withdrawal ------------------------------------------------------------------------


def withdraw_run(log: Log, factory: ClientFactory, *, dry_run: bool = False) -> Any:
    product = load_product(log.log.root, "atomic-host")
    return withdraw_clouds(
        log.log,
        product,
        CID,
        make_client=factory,
        now=NOW + timedelta(days=1),
        dry_run=dry_run,
        attempts=2,
        backoff=0.01,
    )


def ami_state(ec2: Ec2, region: str, ami: str) -> tuple[bool, str | None]:
    """(public, the withdrawal tag's value) as EC2 has them now."""
    client = ec2.client(region)
    image = client.describe_images(ImageIds=[ami])["Images"][0]
    perms = client.describe_image_attribute(ImageId=ami, Attribute="launchPermission")
    public = {"Group": "all"} in perms["LaunchPermissions"]
    assert public == bool(image.get("Public"))
    tags = {t["Key"]: t["Value"] for t in image.get("Tags", [])}
    return public, tags.get(WITHDRAWN_TAG)


def summary(actions: list[WithdrawAction]) -> list[tuple[str, str, bool, str]]:
    return [(a.arch, a.region, a.was_public, a.describe()) for a in actions]


def test_withdraw_makes_amis_private_and_tags_them(ec2: Ec2, cloud_log: Log) -> None:
    images = run(cloud_log, ec2.factory()).manifest.images
    before = len(cloud_log.commits())
    day = (NOW + timedelta(days=1)).date().isoformat()

    plan = withdraw_run(cloud_log, ec2.factory(), dry_run=True)
    assert summary(plan) == [
        ("aarch64", "us-east-1", True, "would make private + tag"),
        ("x86_64", "eu-west-1", False, "would tag"),
        ("x86_64", "us-east-1", True, "would make private + tag"),
    ]
    assert not any(a.done for a in plan)
    assert [ami_state(ec2, i.region, i.ami_id) for i in images] == [
        (i.public, None) for i in images
    ]

    done = withdraw_run(cloud_log, ec2.factory())
    assert summary(done) == [
        ("aarch64", "us-east-1", True, "made private + tagged"),
        ("x86_64", "eu-west-1", False, "tagged"),
        ("x86_64", "us-east-1", True, "made private + tagged"),
    ]
    assert all(a.done and a.error is None for a in done)
    assert [ami_state(ec2, i.region, i.ami_id) for i in images] == [(False, day)] * 3

    again = withdraw_run(cloud_log, ec2.factory())
    assert [a.describe() for a in again] == ["unchanged (already private and tagged)"] * 3
    assert len(cloud_log.commits()) == before  # EC2 only: nothing recorded

    # Restorable: the launch permission back, the tag deleted.
    ami = images[0]
    client = ec2.client(ami.region)
    client.modify_image_attribute(ImageId=ami.ami_id, LaunchPermission={"Add": [{"Group": "all"}]})
    client.delete_tags(Resources=[ami.ami_id], Tags=[{"Key": WITHDRAWN_TAG}])
    assert ami_state(ec2, ami.region, ami.ami_id) == (True, None)


def test_withdraw_reports_a_dead_region_and_withdraws_the_others(ec2: Ec2, cloud_log: Log) -> None:
    run(cloud_log, ec2.factory())
    dead = f"http://127.0.0.1:{closed_port()}"

    def factory(region: str) -> Any:
        url = dead if region == "eu-west-1" else ec2.url
        return boto3.client("ec2", region_name=region, endpoint_url=url, config=NO_RETRY)

    actions = withdraw_run(cloud_log, factory)
    by_region = {(a.arch, a.region): a for a in actions}
    failed = by_region["x86_64", "eu-west-1"]
    assert not failed.done and failed.describe() == "failed"
    assert failed.error is not None and failed.error.startswith("EndpointConnectionError: ")
    assert failed.error.endswith("(after 2 attempts)") and "testing-secret" not in failed.error
    for key in [("x86_64", "us-east-1"), ("aarch64", "us-east-1")]:
        a = by_region[key]
        assert a.done and a.error is None
        assert ami_state(ec2, a.region, a.ami_id)[0] is False


def test_withdraw_without_discovery_is_an_input_error(cloud_log: Log) -> None:
    with pytest.raises(InputError) as e:
        withdraw_run(cloud_log, lambda region: None)
    assert e.value.diagnostics() == f"no cloud images recorded for {CID}; run cloud.discover"


def aws_env(log: Log) -> dict[str, str]:
    return {
        **log.env,
        "AWS_ACCESS_KEY_ID": "testing-key-id",
        "AWS_SECRET_ACCESS_KEY": "testing-secret-do-not-log",
        "AWS_DEFAULT_REGION": "us-east-1",
    }


def test_cli_withdraw(ec2: Ec2, cloud_log: Log) -> None:
    images = run(cloud_log, ec2.factory()).manifest.images
    env = aws_env(cloud_log)
    args = ["cloud.withdraw", "--compose-id", CID, "--repo", str(cloud_log.repo)]
    dead = f"http://127.0.0.1:{closed_port()}"
    down = run_invoke(*args, "--endpoint-url", dead, "--attempts", "1", env=env)
    assert down.returncode == 8, down.stdout + down.stderr
    assert "error: 3 of 3 AMI(s)" in down.stderr and "EndpointConnectionError" in down.stdout
    assert "testing-secret" not in down.stdout + down.stderr

    dry = run_invoke(*args, "--endpoint-url", ec2.url, "--dry-run", env=env)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "would make private + tag" in dry.stdout and "dry run: nothing changed" in dry.stdout
    assert all(ami_state(ec2, i.region, i.ami_id)[1] is None for i in images)

    out = run_invoke(*args, "--endpoint-url", ec2.url, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert out.stdout.count("made private + tagged") == 2 and "tagged" in out.stdout
    assert all(ami_state(ec2, i.region, i.ami_id)[0] is False for i in images)
    again = run_invoke(*args, "--endpoint-url", ec2.url, env=env)
    assert again.returncode == 0 and again.stdout.count("unchanged") == 3


def test_cli_revoke_cloud_withdraws_the_released_compose(ec2: Ec2, cloud_log: Log) -> None:
    images = run(cloud_log, ec2.factory()).manifest.images
    release = ReleaseManifest(
        product="atomic-host",
        created=NOW + timedelta(hours=2),
        release_id="2015-09-15",
        cycle="2015-09-15",
        sequence=1,
        decision="release",
        compose_id=CID,
        previous=None,
        base=BaseRef(name="Fedora", version="22"),
        policy="retry",
        considered=[],
        explanation="test release",
    )
    log = cloud_log.log
    log.record(
        [release], [cloud_log.signers["release"]], log.load_trust(), "release", WriteOptions()
    )
    env = aws_env(cloud_log)
    args = [
        "release.revoke",
        "--release-id",
        "2015-09-15",
        "--reason",
        "bad AMIs",
        "--operator",
        "dusty",
        "--cloud",
        "--endpoint-url",
        ec2.url,
        "--repo",
        str(cloud_log.repo),
    ]
    dry = run_invoke(*args, "--dry-run", env=env)
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert dry.stdout.count("would make private + tag") == 2
    assert all(ami_state(ec2, i.region, i.ami_id)[1] is None for i in images)

    out = run_invoke(*args, env=env)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "recorded: manifests/atomic-host/revocations/" in out.stdout
    assert out.stdout.count("made private + tagged") == 2
    assert all(ami_state(ec2, i.region, i.ami_id)[0] is False for i in images)
    assert all(ami_state(ec2, i.region, i.ami_id)[1] for i in images)
    again = run_invoke(*args, env=env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert "already withdrawn (no change)" in again.stdout
    assert again.stdout.count("unchanged") == 3
