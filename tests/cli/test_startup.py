"""``import tasks`` stays light: Pelican, fedora-messaging and the AWS adapter load only
inside the tasks that use them.

(boto3 itself is loaded by ``securesystemslib.signer``, whose AWS signer imports it when
present; every task that verifies a signature needs that package.)
"""

from __future__ import annotations

import json
import subprocess
import sys

from tests.conftest import ROOT

HEAVY = ("pelican", "fedora_messaging", "pipeline.adapters.aws", "pipeline.site")


def test_import_tasks_loads_no_heavy_module() -> None:
    code = (
        "import json, sys, tasks; "
        f"print(json.dumps(sorted(m for m in sys.modules if m.startswith({HEAVY!r}))))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout
    assert json.loads(out) == []
