"""Settings sections for running the bot in production: webhook, replicas, metrics, logs.

Kept apart from ``bot.config`` (which includes them in ``Settings``) so operational
settings have one place; every key is documented in settings.toml.
"""

from __future__ import annotations

import hashlib
import re
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, Field, SecretStr

# What Telegram accepts as a webhook secret_token.
_SECRET_RE = re.compile(r"[A-Za-z0-9_-]{1,256}")


def _check_webhook_secret(secret: SecretStr) -> SecretStr:
    # the message must not quote the value: it is a secret
    if not _SECRET_RE.fullmatch(secret.get_secret_value()):
        raise ValueError("must be 1-256 characters of A-Z a-z 0-9 _ -")
    return secret


WebhookSecret = Annotated[SecretStr, AfterValidator(_check_webhook_secret)]


def derived_webhook_secret(bot_token: str) -> str:
    """A stable secret derived from the bot token, so replicas agree without configuration.

    Whoever knows the token controls the bot anyway, so deriving adds no exposure; hashing
    keeps the token itself out of every webhook request.
    """
    return hashlib.sha256(f"glmbot webhook secret\0{bot_token}".encode()).hexdigest()


class WebhookSettings(BaseModel):
    # The https base URL Telegram can reach (e.g. https://bot.example.com); required in
    # webhook mode. Telegram posts to public_url + path.
    public_url: str = ""
    path: str = Field(default="/telegram/webhook", pattern=r"^/")
    # Where the web server listens (behind a reverse proxy that terminates TLS).
    host: str = "0.0.0.0"
    port: int = Field(default=8080, ge=1, le=65535)

    @property
    def url(self) -> str:
        return self.public_url.rstrip("/") + self.path


class MetricsSettings(BaseModel):
    # Port of /metrics, /healthz and /readyz; 0 turns them off. In webhook mode the same
    # port as [webhook] port serves them from the webhook's web server. Not 9090:
    # that is Prometheus' own (see settings.toml).
    port: int = Field(default=9464, ge=0, le=65535)
    host: str = "0.0.0.0"
    # Seconds a /readyz answer is reused, so frequent probes do not hammer Redis and Telegram.
    readiness_cache: float = Field(default=5.0, ge=0)


class LoggingSettings(BaseModel):
    # "json": one JSON object per line (production); "text": readable lines; "auto": text
    # when stderr is a terminal, else json. LOG_FORMAT in the environment overrides it.
    format: Literal["auto", "json", "text"] = "auto"


class LeaseSettings(BaseModel):
    # One answer at a time per conversation across replicas, through Redis leases.
    # "auto": on in webhook mode with Redis (polling runs one process by nature).
    enabled: Literal["auto", "on", "off"] = "auto"
    # A crashed replica's lease (and its place in a queue) is given up after this long;
    # a live holder renews every ttl/3.
    ttl: float = Field(default=30.0, gt=0)
    # Longest pause between two attempts of a waiting replica to take a lease.
    poll_interval: float = Field(default=0.05, gt=0)
    # Seconds between a replica's presence marks: replicas split Telegram's bot-wide
    # budget ([stream] global_rate) between those heard from within 5 intervals.
    presence_interval: float = Field(default=2.0, gt=0)
