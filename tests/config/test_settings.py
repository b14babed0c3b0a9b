"""Configuration: defaults load, overrides merge, and every bad value names its key."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.settings import ConfigError, build_settings, load_settings


def test_defaults_have_the_four_queues_and_contract_keys() -> None:
    settings = load_settings(env={})
    assert set(settings.queues) == {"disputes", "complaints", "security", "general"}
    assert settings.fallback_queue() == "general"
    assert settings.queues["disputes"].required == (
        "order_number",
        "tracking_number",
        "product_url",
    )
    assert settings.queues["complaints"].required == ("product_url", "store_url")
    assert settings.desk.accepted_languages == ("en",)
    assert settings.smtp.port == 2525 and settings.smtp.host == "127.0.0.1"
    assert settings.database.url == "sqlite:///claimdesk.db"
    assert settings.reports.sla_cron == "0 7 * * *"
    assert settings.web.port == 8080


def test_environment_overrides_the_database_url() -> None:
    settings = build_settings({}, env={"CLAIMDESK_DATABASE_URL": "sqlite:///other.db"})
    assert settings.database.url == "sqlite:///other.db"


def test_a_file_merges_over_the_defaults(tmp_path: Path) -> None:
    path = tmp_path / "c.toml"
    path.write_text('[desk]\naccepted_languages = ["en", "zh-cn"]\ntimezone = "Asia/Shanghai"\n')
    settings = load_settings(path, env={})
    assert settings.desk.accepted_languages == ("en", "zh-cn")
    assert settings.desk.from_address == "claims@desk.example"  # untouched default


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ({"smtp": {"port": "many"}}, "smtp.port"),
        ({"smtp": {"port": 70000}}, "smtp.port"),
        ({"desk": {"timezone": "Mars/Olympus"}}, "desk.timezone: unknown time zone"),
        ({"desk": {"accepted_languages": ["english"]}}, "desk.accepted_languages"),
        ({"desk": {"colour": "red"}}, "desk.colour: unknown key"),
        ({"queues": {"a": {"required": ["shoe_size"], "fallback": True}}}, "queues.a.required"),
        ({"queues": {"a": {"fallback": False}}}, "exactly one queue needs fallback"),
        (
            {"checks": {"carrier_patterns": [{"name": "x", "pattern": "("}]}},
            "checks.carrier_patterns.0.pattern",
        ),
        ({"mailboxes": [{"name": "m", "after": "delete"}]}, "mailboxes.0.after"),
    ],
)
def test_invalid_values_name_the_key(document: dict, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        build_settings(document, env={})
    assert expected in str(info.value)


def test_not_toml_is_a_config_error(tmp_path: Path) -> None:
    path = tmp_path / "bad.toml"
    path.write_text("[desk\nx=")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings(path, env={})


def test_missing_file_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="not found"):
        load_settings(tmp_path / "nope.toml", env={})
