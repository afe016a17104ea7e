"""docker-compose.yml, checked by docker-compose itself (`config` validates the file and
resolves it without a Docker engine), then its `replicas` profile's wiring: the webhook the
bot computes from the mounted settings.toml and compose's environment is where
deploy/Caddyfile sends updates, and only Caddy is published."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = shutil.which("docker-compose")
DOMAIN = "bot.example.com"
# what the Dockerfile's ENTRYPOINT reads (BOT_SETTINGS) and compose mounts a file over
IMAGE_SETTINGS = "/home/glmbot/settings.toml"
# where the official Caddy image reads its configuration
IMAGE_CADDYFILE = "/etc/caddy/Caddyfile"

pytestmark = pytest.mark.skipif(
    COMPOSE is None,
    reason="docker-compose is not installed (Debian's docker-compose validates without an "
    "engine; not installed by .ci/run: too heavy for one check)",
)


def _compose(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    assert COMPOSE is not None
    return subprocess.run(
        [COMPOSE, "--project-directory", str(ROOT), "-f", str(ROOT / "docker-compose.yml"), *args],
        env={"PATH": "/usr/bin:/bin", **env},
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


SECRETS = {"TELEGRAM_BOT_TOKEN": "123456:test-token", "ZHIPU_API_KEY": "id.secret"}


def _resolved_config() -> dict[str, Any]:
    """The file as docker-compose resolves it for `--profile replicas`, as JSON."""
    env = {**SECRETS, "WEBHOOK_DOMAIN": DOMAIN}
    version = _compose("version", "--short").stdout.strip().lstrip("v")
    if not version.startswith("1."):
        resolved = _compose("--profile", "replicas", "config", "--format", "json", **env)
        assert resolved.returncode == 0, resolved.stderr
        return dict(json.loads(resolved.stdout))
    resolved = _compose("--profile", "replicas", "config", **env)
    assert resolved.returncode == 0, resolved.stderr
    # Compose v1 prints YAML only; the Python it runs on has PyYAML (v1 needs it), the
    # project's does not
    assert COMPOSE is not None
    shebang = Path(COMPOSE).read_bytes()[:200].split(b"\n", 1)[0]
    if not shebang.startswith(b"#!"):
        pytest.skip(f"cannot read the YAML of {COMPOSE}, a Compose v1 that is not a script")
    to_json = "import json, sys, yaml; json.dump(yaml.safe_load(sys.stdin), sys.stdout)"
    converted = subprocess.run(
        [*shebang[2:].decode().split(), "-c", to_json],
        input=resolved.stdout,
        capture_output=True,
        text=True,
        check=True,
    )
    return dict(json.loads(converted.stdout))


@pytest.fixture(scope="module")
def services() -> dict[str, dict[str, Any]]:
    return dict(_resolved_config()["services"])


def _volumes(service: dict[str, Any]) -> dict[str, str]:
    """Container path -> host path, from either the short or the long volume syntax."""
    mounts = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, str):
            source, target = volume.split(":")[:2]
        else:
            source, target = volume["source"], volume["target"]
        mounts[target] = source
    return mounts


def _caddyfile_defaults() -> tuple[str, str, int]:
    """(webhook path, upstream name, upstream port) as deploy/Caddyfile has them."""
    text = (ROOT / "deploy" / "Caddyfile").read_text()
    (path,) = re.findall(r"^\s*handle (/\S*) \{", text, re.M)
    (upstream,) = re.findall(
        r"dynamic a \{\$BOT_UPSTREAM:([\w.-]+)\} \{\$BOT_UPSTREAM_PORT:(\d+)\}", text
    )
    return path, upstream[0], int(upstream[1])


def _bot_settings(env: dict[str, str], settings_file: str) -> dict[str, Any]:
    """The webhook and metrics settings the bot computes in the container."""
    script = (
        "import json; from bot.config import load_settings; s = load_settings(); "
        "print(json.dumps({'webhook': s.webhook.model_dump(), 'metrics': s.metrics.model_dump()}))"
    )
    loaded = subprocess.run(
        [sys.executable, "-c", script],
        env={**env, "BOT_SETTINGS": settings_file},
        capture_output=True,
        text=True,
        check=True,
        cwd=ROOT,
    )
    return dict(json.loads(loaded.stdout))


def test_compose_file_is_valid_with_and_without_the_replicas_profile() -> None:
    for profile in ([], ["--profile", "replicas"]):
        checked = _compose(*profile, "config", "-q", **SECRETS)
        assert checked.returncode == 0, checked.stderr
    listed = _compose("--profile", "replicas", "config", "--services", **SECRETS)
    assert sorted(listed.stdout.split()) == ["bot", "bot-webhook", "caddy", "redis"]


def test_compose_refuses_to_start_without_the_secrets() -> None:
    missing = _compose("--profile", "replicas", "config", "-q", ZHIPU_API_KEY="id.secret")
    assert missing.returncode != 0
    assert "set TELEGRAM_BOT_TOKEN" in missing.stderr


def test_replicas_profile_is_the_polling_bot_turned_webhook_behind_caddy(
    services: dict[str, dict[str, Any]],
) -> None:
    assert services["bot-webhook"]["profiles"] == ["replicas"]
    assert services["caddy"]["profiles"] == ["replicas"]
    assert "profiles" not in services["bot"]
    assert "profiles" not in services["redis"]
    assert services["bot-webhook"]["command"] == ["webhook"]
    assert services["bot-webhook"]["build"] == services["bot"]["build"]

    # one Redis for every replica and the polling bot alike: their only shared state
    redis_url = services["bot-webhook"]["environment"]["REDIS_URL"]
    assert services["bot"]["environment"]["REDIS_URL"] == redis_url
    assert urlsplit(redis_url).hostname in services
    assert services["bot-webhook"]["depends_on"]["redis"]["condition"] == "service_healthy"


def test_caddy_sends_updates_where_the_replicas_listen_and_nothing_else_is_published(
    services: dict[str, dict[str, Any]],
) -> None:
    replica = services["bot-webhook"]
    settings_file = _volumes(replica)[IMAGE_SETTINGS]
    assert Path(settings_file) == ROOT / "settings.toml"
    bot = _bot_settings(replica["environment"], settings_file)
    webhook, metrics = bot["webhook"], bot["metrics"]

    path, upstream, upstream_port = _caddyfile_defaults()
    assert upstream in services
    assert upstream == "bot-webhook"
    assert (webhook["port"], webhook["path"]) == (upstream_port, path)
    assert webhook["host"] == "0.0.0.0"  # reachable from Caddy's container
    # what the replicas register with Telegram: Caddy's address, with its certificate
    assert webhook["public_url"] == f"https://{DOMAIN}"
    assert services["caddy"]["environment"]["WEBHOOK_DOMAIN"] == DOMAIN

    # the webhook and the observability port are reachable inside the network only
    assert "ports" not in replica
    assert {str(webhook["port"]), str(metrics["port"])} <= set(map(str, replica["expose"]))
    assert metrics["port"] != webhook["port"]  # so Caddy can't reach /metrics either
    assert f":{metrics['port']}/healthz" in " ".join(replica["healthcheck"]["test"])

    caddy = services["caddy"]
    assert Path(_volumes(caddy)[IMAGE_CADDYFILE]) == ROOT / "deploy" / "Caddyfile"
    published = {int(port["published"]) for port in caddy["ports"]}
    assert published == {80, 443}
    assert [name for name, service in services.items() if service.get("ports")] == ["caddy"]
