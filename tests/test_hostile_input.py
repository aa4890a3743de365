"""Issue 17: hostile input through the tasks, as processes: one line, the documented exit
code, nothing written."""

from __future__ import annotations

from collections.abc import Callable

from tests.conftest import ComposeTree, Log, run_invoke
from tests.test_tasks import assert_one_line_error


def test_compose_record_caps_metadata_size_with_an_override(
    make_log: Callable[..., Log], make_compose_tree: Callable[..., ComposeTree]
) -> None:
    log = make_log()
    tree = make_compose_tree()
    head = log.git("rev-parse", "HEAD")
    args = ("compose.record", "--source", str(tree.root), "--repo", str(log.repo))
    small = run_invoke(*args, "--max-metadata-bytes", "1KiB", env=log.env)
    assert small.returncode == 3, small.stderr
    assert_one_line_error(small.stderr, "larger than the 1024 byte limit for compose metadata")
    assert "--max-metadata-bytes or FORTNIGHT_MAX_METADATA_BYTES" in small.stderr
    by_env = run_invoke(*args, env={**log.env, "FORTNIGHT_MAX_METADATA_BYTES": "2000"})
    assert by_env.returncode == 3
    assert_one_line_error(by_env.stderr, "larger than the 2000 byte limit")
    bad = run_invoke(*args, env={**log.env, "FORTNIGHT_MAX_METADATA_BYTES": "lots"})
    assert bad.returncode == 2
    assert_one_line_error(bad.stderr, "FORTNIGHT_MAX_METADATA_BYTES: 'lots' is not a size")
    assert log.git("rev-parse", "HEAD") == head and log.git("status", "--porcelain") == ""
    # the option wins over the variable, and a big enough cap records the compose
    ok = run_invoke(
        *args, "--max-metadata-bytes", "64MiB", env={**log.env, "FORTNIGHT_MAX_METADATA_BYTES": "1"}
    )
    assert ok.returncode == 0, ok.stderr


def test_compose_record_rejects_deep_nesting_and_coerced_fields(
    make_log: Callable[..., Log], make_compose_tree: Callable[..., ComposeTree]
) -> None:
    """200,000 nested arrays (RecursionError before) and a string size (coerced before)."""
    log = make_log()
    tree = make_compose_tree()
    meta = tree.compose_dir / "metadata" / "images.json"
    good = meta.read_bytes()
    args = ("compose.record", "--source", str(tree.root), "--repo", str(log.repo))
    meta.write_bytes(b"[" * 200_000 + b"]" * 200_000)
    deep = run_invoke(*args, env=log.env)
    assert deep.returncode == 3, deep.stderr
    assert_one_line_error(deep.stderr, "images.json: nested too deeply")
    meta.write_bytes(good)
    image = tree.atomic_x86_64()[0]
    image["size"] = str(image["size"])
    tree.rewrite()
    coerced = run_invoke(*args, env=log.env)
    assert coerced.returncode == 3, coerced.stderr
    assert_one_line_error(
        coerced.stderr,
        "images.json: payload.images.AtomicHost.x86_64[0].size: Input should be a valid integer",
    )
    assert log.git("status", "--porcelain") == ""
