"""``import tasks`` stays light: Pelican, fedora-messaging, boto3 and the AWS adapter load
only inside the tasks that use them (``benchmarks/startup.py`` times it).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys

from tests.conftest import ROOT


def python(code: str) -> str:
    """The standard output of ``python -c CODE`` run in the checkout."""
    return subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, check=True, capture_output=True, text=True
    ).stdout


HEAVY = (
    "pelican",
    "fedora_messaging",
    "boto3",
    "botocore",
    "pipeline.adapters.aws",
    "pipeline.site",
)


# `invoke --list` needs the task signatures only: not even the models, the log or the stages.
LIST_ONLY = (
    "pydantic",
    "requests",
    "productmd",
    "securesystemslib",
    "cryptography",
    "pipeline.core.models",
    "pipeline.log",
    "pipeline.stages",
    "pipeline.demo",
)


def _loaded_by_import_tasks(prefixes: tuple[str, ...]) -> list[str]:
    """The modules starting with one of ``prefixes`` that ``import tasks`` loads."""
    code = (
        "import json, sys, tasks; "
        f"print(json.dumps(sorted(m for m in sys.modules if m.startswith({prefixes!r}))))"
    )
    out = python(code)
    loaded: list[str] = json.loads(out)
    return loaded


def test_import_tasks_loads_no_heavy_module() -> None:
    assert _loaded_by_import_tasks(HEAVY) == []


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
    out = python(code).splitlines()
    assert out == ["False False", "True True True"]


def test_import_tasks_loads_neither_the_models_nor_the_log() -> None:
    assert _loaded_by_import_tasks(LIST_ONLY) == []


def test_a_config_load_and_the_console_import_neither_productmd_nor_rich_progress() -> None:
    """A config load checks image types against a copy of productmd's list
    (``tests/core/test_config.py`` keeps it equal), not productmd and its urllib/http/email;
    the console loads rich's progress display only when a task shows one."""
    code = (
        "import json, sys; from pipeline.core.config import load_product; "
        "from pipeline.cli import console; "
        "print(json.dumps(sorted(m for m in sys.modules "
        "if m.startswith(('productmd', 'rich.progress')))))"
    )
    out = python(code)
    assert json.loads(out) == []


def test_a_tasks_process_runs_the_cycle_collector_rarely() -> None:
    """``import tasks`` raises the collector's first threshold (start-up ran 60 collections)."""
    code = "import gc, tasks; print(gc.get_threshold()[0])"
    out = python(code)
    assert int(out) >= 10_000


def test_the_model_modules_every_task_imports_have_no_string_annotations() -> None:
    """pydantic would evaluate each annotation string of these modules' models at class
    creation, in every task's start-up: their annotations are evaluated by the interpreter."""
    modules = ("core/models/common.py", "core/models/manifests.py", "core/config.py")
    for name in (*modules, "core/siteconfig.py"):
        tree = ast.parse((ROOT / "pipeline" / name).read_text())
        imports = [n for n in tree.body if isinstance(n, ast.ImportFrom)]
        assert [n.module for n in imports if n.module == "__future__"] == [], name
