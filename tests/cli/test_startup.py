"""``import tasks`` stays light: Pelican, fedora-messaging, boto3 and the AWS adapter load
only inside the tasks that use them (``benchmarks/startup.py`` times it).
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT

HEAVY = (
    "pelican",
    "fedora_messaging",
    "boto3",
    "botocore",
    "pipeline.adapters.aws",
    "pipeline.site",
)


def test_import_tasks_loads_no_heavy_module() -> None:
    code = (
        "import json, sys, tasks; "
        f"print(json.dumps(sorted(m for m in sys.modules if m.startswith({HEAVY!r}))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    assert json.loads(out) == []


def test_the_signer_api_loads_without_boto3_and_the_aws_signer_still_works() -> None:
    code = (
        "import sys; from pipeline.log import sslib; "
        "aws = sys.modules['securesystemslib.signer._aws_signer']; "
        "print('boto3' in sys.modules, aws.AWS_IMPORT_ERROR is None); "
        "sslib.signer_for_scheme('awskms'); "
        "aws = sys.modules['securesystemslib.signer._aws_signer']; "
        "print('boto3' in sys.modules, aws.AWS_IMPORT_ERROR is None, "
        "sslib.SIGNER_FOR_URI_SCHEME['awskms'] is aws.AWSSigner)"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout.splitlines()
    assert out == ["False False", "True True True"]
