"""Start-up checks of the settings, in-process: token and Redis URL formats, LOG_LEVEL,
unknown variables, the Redis description of the start-up line, the mode, the webhook URL."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import ConfigError, Settings, load_settings, with_mode
from bot.config.environment import UnknownSetting, unknown_settings
from bot.observability.logs import resolve_log_level
from bot.storage.redis_client import describe_redis
from bot.webhook.server import check_webhook_settings

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    """A clean environment with valid secrets; tests change one variable."""
    for name in ("REDIS_URL", "TELEGRAM_API_BASE", "REDIS__MODE", "LOG_LEVEL"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("BOT_SETTINGS", str(ROOT / "settings.toml"))
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123456:AAE-valid_token")
    monkeypatch.setenv("ZHIPU_API_KEY", "id.secret")
    return monkeypatch


def _error(env: pytest.MonkeyPatch, **variables: str) -> str:
    for name, value in variables.items():
        env.setenv(name, value)
    with pytest.raises(ConfigError) as caught:
        load_settings()
    return str(caught.value)


@pytest.mark.parametrize(
    ("token", "expected"),
    [
        ("AAE-no-id-prefix", "should look like <bot id>:<secret>"),
        ("bot123456:AAE", "should look like <bot id>:<secret>"),
        ("123456:", "should look like <bot id>:<secret>"),
        ("123456:AAE-valid_token ", "contains a space or a line break"),
        ("123456:AAE-valid_token\n", "contains a space or a line break"),
    ],
)
def test_a_malformed_bot_token_is_a_configuration_error_naming_it(
    env: pytest.MonkeyPatch, token: str, expected: str
) -> None:
    message = _error(env, TELEGRAM_BOT_TOKEN=token)
    assert message.startswith(f"TELEGRAM_BOT_TOKEN: {expected}")
    assert "AAE" not in message  # never the token itself


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("redis://127.0.0.1/notadb", "the database should be a number"),
        ("redis://:hunter2@127.0.0.1:6379/notadb", "the database should be a number"),
        ("redis://127.0.0.1:6379/0?db=one", "the database should be a number"),
        ("redis://127.0.0.1:port/0", "the port should be a number"),
        ("redis://127.0.0.1:6379/0/1", "should be redis://[:password@]host[:port][/db]"),
        ("redis+sentinel://s1:26379,s2/mymaster/zero", "the database should be a number"),
        ("http://127.0.0.1:6379/0", "should start with redis://"),
    ],
)
def test_a_redis_url_that_cannot_be_meant_is_a_configuration_error(
    env: pytest.MonkeyPatch, url: str, expected: str
) -> None:
    message = _error(env, REDIS_URL=url)
    assert message.startswith(f"REDIS_URL: {expected}")
    assert "hunter2" not in message


@pytest.mark.parametrize(
    ("url", "mode"),
    [
        ("redis://127.0.0.1:6379/3", "standalone"),
        ("redis://127.0.0.1", "standalone"),
        ("rediss://:pw@[::1]:6380/0", "standalone"),
        ("unix:///run/redis.sock?db=2", "standalone"),
        ("redis+sentinel://:pw@s1:26379,s2/mymaster/1", "standalone"),
        ("redis://s1:26379/mymaster", "sentinel"),  # a master name, not a database
        ("redis://node:7000", "cluster"),
    ],
)
def test_good_redis_urls_are_accepted(env: pytest.MonkeyPatch, url: str, mode: str) -> None:
    env.setenv("REDIS_URL", url)
    env.setenv("REDIS__MODE", mode)
    settings = load_settings()
    assert settings.redis_url is not None
    assert settings.redis_url.get_secret_value() == url


@pytest.mark.parametrize(
    ("value", "level"),
    [
        (None, "INFO"),
        ("debug", "DEBUG"),
        ("Info", "INFO"),
        (" warn ", "WARNING"),
        ("ERROR", "ERROR"),
    ],
)
def test_log_level_is_read_in_any_case(value: str | None, level: str) -> None:
    assert resolve_log_level(value) == level


def test_an_unknown_log_level_names_the_variable() -> None:
    with pytest.raises(ValueError, match=r"^LOG_LEVEL: should be debug, info"):
        resolve_log_level("verbose")


def test_variables_that_look_like_settings_but_match_none_are_found() -> None:
    environ = {
        "LLM__TEMPRATURE": "0.2",  # a typo of a key
        "llm__context_tokens": "600",  # known, in any case
        "STREAM__EDIT_INTERVAL": "1",
        "PERSONAS__PIRATE__TEXT": "Arr",  # a table: any entry name
        "TELEGRAM_TOKEN": "1:a",  # our prefix, no such variable
        "ZHIPUAI_BASE_URL": "http://x",  # the SDK's name; ours is ZHIPU_BASE_URL
        "REDIS_URI": "redis://x",  # close to REDIS_URL
        "LOG_LEVEL": "debug",
        "TELEGRAM_BOT_TOKEN": "1:a",
        "ZHIPUAI_API_KEY": "a.b",  # an accepted alias
        # not ours: other software, and Kubernetes' links to a service named telegram-bot-api
        "PATH": "/usr/bin",
        "REDIS_PORT": "tcp://10.0.0.1:6379",
        "TELEGRAM_BOT_API_SERVICE_HOST": "10.0.0.2",
        "TELEGRAM_BOT_API_PORT_8081_TCP_ADDR": "10.0.0.2",
        "DJANGO__DEBUG": "1",
    }
    assert unknown_settings(environ, Settings) == [
        UnknownSetting("LLM__TEMPRATURE", "LLM__TEMPERATURE"),
        UnknownSetting("REDIS_URI", "REDIS_URL"),
        UnknownSetting("TELEGRAM_TOKEN", "TELEGRAM_BOT_TOKEN"),
        UnknownSetting("ZHIPUAI_BASE_URL", "ZHIPU_BASE_URL"),
    ]


@pytest.mark.parametrize(
    ("url", "mode", "described"),
    [
        (None, "standalone", "in memory (no REDIS_URL)"),
        ("redis://:hunter2@cache.internal:6380/2", "standalone", "cache.internal:6380, db 2"),
        ("redis://user:hunter2@cache.internal", "standalone", "cache.internal:6379, db 0"),
        ("rediss://:hunter2@[::1]/1", "standalone", "[::1]:6379, db 1, TLS"),
        ("unix:///run/redis.sock?db=4", "standalone", "socket /run/redis.sock, db 4"),
        (
            "redis+sentinel://:hunter2@s1:26379,s2:26379/mymaster/3",
            "standalone",
            "sentinel s1:26379,s2:26379, master mymaster, db 3",
        ),
        ("redis://:hunter2@node1:7000", "cluster", "cluster via node1:7000"),
    ],
)
def test_the_redis_in_use_is_described_without_its_password(
    url: str | None, mode: str, described: str
) -> None:
    assert describe_redis(url, mode) == described


def test_the_mode_is_resolved_into_a_new_settings_object(env: pytest.MonkeyPatch) -> None:
    configured = load_settings()
    assert configured.telegram.mode == "polling"
    resolved = with_mode(configured, "webhook")
    assert resolved.telegram.mode == "webhook"
    assert configured.telegram.mode == "polling"  # what was read stays as it was
    assert resolved.llm == configured.llm
    assert with_mode(configured, None) is configured


def test_the_webhook_url_must_be_https(env: pytest.MonkeyPatch) -> None:
    env.setenv("WEBHOOK__PUBLIC_URL", "http://bot.example.com")
    with pytest.raises(ConfigError, match="WEBHOOK__PUBLIC_URL: should start with https://"):
        check_webhook_settings(load_settings())
    env.setenv("WEBHOOK__PUBLIC_URL", "https://bot.example.com")
    check_webhook_settings(load_settings())


def test_a_self_hosted_bot_api_server_may_post_to_http(env: pytest.MonkeyPatch) -> None:
    # telegram-bot-api --local delivers webhooks over plain http (the tests' fake too)
    env.setenv("TELEGRAM_API_BASE", "http://127.0.0.1:8081")
    env.setenv("WEBHOOK__PUBLIC_URL", "http://127.0.0.1:8443")
    check_webhook_settings(load_settings())
    env.setenv("WEBHOOK__PUBLIC_URL", "ftp://127.0.0.1")
    with pytest.raises(ConfigError, match="should start with https://"):
        check_webhook_settings(load_settings())
