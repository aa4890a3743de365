"""The fedora-messaging file and Fortnight's ``[consumer_config]`` in it."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.adapters.bus.settings import EXAMPLE_CONFIG, config_path, load_settings
from pipeline.errors import ConfigError
from tests.conftest import ROOT


def test_the_shipped_example_loads() -> None:
    settings = load_settings(ROOT / EXAMPLE_CONFIG)
    assert settings.topic_prefix
    assert settings.publish_attempts >= 1


def test_config_path_prefers_the_option_then_the_environment(tmp_path: Path) -> None:
    env = {"FEDORA_MESSAGING_CONF": str(tmp_path / "env.toml")}
    assert config_path(str(tmp_path / "opt.toml"), env, ROOT) == tmp_path / "opt.toml"
    assert config_path(None, env, ROOT) == tmp_path / "env.toml"
    assert config_path(None, {}, ROOT) == (ROOT / EXAMPLE_CONFIG).resolve()


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("amqp_url = ", "env.toml"),  # not TOML
        ('[consumer_config]\ntopic_prefix = "Not A Prefix"\n', "topic_prefix"),
        ("[consumer_config]\nretry_delay = -1\n", "retry_delay"),
        ("[consumer_config]\nunknown = 1\n", "unknown"),
    ],
)
def test_a_bad_file_is_a_config_error(tmp_path: Path, text: str, match: str) -> None:
    path = tmp_path / "env.toml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=match):
        load_settings(path)


def test_a_missing_file_says_where_to_start(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found") as caught:
        load_settings(tmp_path / "nope.toml")
    assert EXAMPLE_CONFIG in caught.value.hint
