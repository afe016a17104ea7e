"""Settings: secrets and endpoints from the environment, everything else from settings.toml.

Every key of settings.toml can be overridden by an environment variable named
``SECTION__KEY`` (``LLM__MODEL``, ``STREAM__EDIT_INTERVAL``...). The settings file is
``settings.toml`` in the working directory unless ``BOT_SETTINGS`` names another one.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Literal

from pydantic import AliasChoices, BaseModel, Field, SecretStr, ValidationError, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from bot.config.formats import BotToken, check_redis_url
from bot.config.media import MediaSettings
from bot.config.models import ModelEntry
from bot.config.ops import (
    LeaseSettings,
    LoggingSettings,
    MetricsSettings,
    WebhookSecret,
    WebhookSettings,
)
from bot.config.reliability import ReliabilitySettings

ZHIPU_OFFICIAL_BASE_URL = "https://open.bigmodel.cn/api/paas/v4"


class TelegramSettings(BaseModel):
    # Telegram user ids allowed to use admin commands everywhere and alerted on outages.
    owners: list[int] = []
    # "draft": sendMessageDraft previews in private chats (Bot API 10.3);
    # "edit": send a message, then edit it as the answer grows.
    private_stream_method: Literal["draft", "edit"] = "draft"
    # Simultaneous HTTP connections to the Bot API (aiohttp's default of 100 would queue
    # a burst of 1,000 answers behind it).
    connection_limit: int = Field(default=1024, ge=1)
    request_timeout: float = Field(default=30.0, gt=0)
    # long polling or webhook; `python -m bot webhook` forces webhook
    mode: Literal["polling", "webhook"] = "polling"


class LLMSettings(BaseModel):
    # The default chat model of a new chat; a name from [models.*].
    model: str = "glm-4.7-flash"
    # Most prompt tokens (persona, history, question) one request may carry; unset: each
    # model's context window less its answer limit. The answer limit is not taken from it.
    context_tokens: int | None = Field(default=None, ge=256)
    temperature: float = Field(default=0.7, ge=0.0, le=1.0)
    # Concurrency bound: how many answers are generated at the same time, each holding one
    # HTTP connection to GLM. Further requests wait their turn (the user sees "typing")
    # instead of failing.
    max_concurrent: int = Field(default=1000, ge=1)
    connect_timeout: float = Field(default=8.0, gt=0)
    # Longest wait for any byte from GLM (the first token included).
    read_timeout: float = Field(default=60.0, gt=0)
    # A stream that yields no chunk for this long is cut and treated as a failure.
    stall_timeout: float = Field(default=45.0, gt=0)
    # Retries of rate limits, 5xx and timeouts, only before any text was shown.
    retry_attempts: int = Field(default=3, ge=1)
    retry_max_seconds: float = Field(default=20.0, gt=0)
    # Circuit breaker: after this many consecutive upstream failures (5xx, timeouts,
    # rate limits after retries) within breaker_window seconds, answer "temporarily
    # unavailable" at once for breaker_cooldown seconds, then try one request. 0: off.
    breaker_failures: int = Field(default=5, ge=0)
    breaker_window: float = Field(default=60.0, gt=0)
    breaker_cooldown: float = Field(default=30.0, gt=0)


class RedisSettings(BaseModel):
    # Pool size: enough for every concurrent answer plus handlers; a BlockingConnectionPool
    # waits up to pool_timeout for a free connection instead of raising "Too many connections".
    max_connections: int = Field(default=1200, ge=1)
    pool_timeout: float = Field(default=10.0, gt=0)
    # Namespace of every key this bot writes.
    key_prefix: str = "glmbot"
    # How REDIS_URL is read: one server, a Sentinel set (also implied by a
    # redis+sentinel:// URL) or a Cluster (keys of one chat share a hash tag).
    mode: Literal["standalone", "sentinel", "cluster"] = "standalone"


class HistorySettings(BaseModel):
    # Forget a conversation after this many seconds without activity; 0 keeps it forever.
    idle_ttl: int = Field(default=0, ge=0)
    # Stored messages per conversation beyond which the oldest are dropped (Redis stays
    # bounded; trimming to the context window happens independently on every turn).
    max_messages: int = Field(default=2000, ge=2)


class StreamSettings(BaseModel):
    # Seconds between two updates of a streaming message in one chat (Telegram allows
    # about one message per second per chat).
    edit_interval: float = Field(default=1.0, gt=0)
    # Bot-wide budget of messages/edits per second (Telegram: about 30).
    global_rate: float = Field(default=30.0, gt=0)
    # Messages per minute in one group (Telegram: 20).
    group_rate_per_minute: float = Field(default=20.0, gt=0)
    # Seconds between draft previews in private chats. Drafts are ephemeral and do not
    # spend the bot-wide message budget, but each is still a Bot API call: at the edit
    # cadence an answer costs at most 2 + ceil(stream seconds / interval) calls, and
    # Telegram animates the text between two drafts.
    draft_interval: float = Field(default=1.0, gt=0)


class PersonaSettings(BaseModel):
    default: str = ""
    max_length: int = Field(default=4000, ge=1)


class PersonaPreset(BaseModel):
    description: str = ""
    text: str
    # The model that answers while the preset is in force (a role-play model such as
    # charglm-4, or any chat model of the catalog); None: the chat's own model.
    model: str | None = None
    # Who a role-play model plays (Zhipu's `meta`): required with a role-play model.
    bot_name: str = ""
    bot_info: str = ""


class GroupSettings(BaseModel):
    # Record unaddressed group messages as context (group admins can change it per group).
    listen: bool = False


class AccessSettings(BaseModel):
    # "open": anyone may use the bot; "allowlist": only the users and chats listed here
    # (a listed user anywhere, anyone in a listed chat) and the owners.
    mode: Literal["open", "allowlist"] = "open"
    users: list[int] = []
    chats: list[int] = []
    # A refused person is told once per this many seconds, not on every message.
    refusal_interval: int = Field(default=86_400, ge=1)


class LimitSettings(BaseModel):
    # Messages that reach GLM per minute and GLM tokens (prompt + completion) per UTC
    # day; 0 turns a limit off. Owners are exempt.
    user_per_minute: int = Field(default=0, ge=0)
    chat_per_minute: int = Field(default=0, ge=0)
    user_daily_tokens: int = Field(default=0, ge=0)
    chat_daily_tokens: int = Field(default=0, ge=0)


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_nested_delimiter="__",
        case_sensitive=False,
        extra="ignore",
        populate_by_name=True,
    )

    telegram_bot_token: BotToken = Field(validation_alias="TELEGRAM_BOT_TOKEN")
    zhipu_api_key: SecretStr = Field(
        validation_alias=AliasChoices("ZHIPU_API_KEY", "ZHIPUAI_API_KEY"),
    )
    # May carry a password, hence secret.
    redis_url: SecretStr | None = Field(default=None, validation_alias="REDIS_URL")
    telegram_api_base: str | None = Field(default=None, validation_alias="TELEGRAM_API_BASE")
    zhipu_base_url: str = Field(default=ZHIPU_OFFICIAL_BASE_URL, validation_alias="ZHIPU_BASE_URL")
    # Checked on every webhook request; unset: derived from the bot token (replicas agree).
    telegram_webhook_secret: WebhookSecret | None = Field(
        default=None, validation_alias="TELEGRAM_WEBHOOK_SECRET"
    )

    telegram: TelegramSettings = TelegramSettings()
    llm: LLMSettings = LLMSettings()
    redis: RedisSettings = RedisSettings()
    history: HistorySettings = HistorySettings()
    stream: StreamSettings = StreamSettings()
    persona: PersonaSettings = PersonaSettings()
    personas: dict[str, PersonaPreset] = {}
    groups: GroupSettings = GroupSettings()
    access: AccessSettings = AccessSettings()
    limits: LimitSettings = LimitSettings()
    # the model catalog: [models."<name>"] tables (bot.config.models)
    models: dict[str, ModelEntry] = {}
    webhook: WebhookSettings = WebhookSettings()
    leases: LeaseSettings = LeaseSettings()
    metrics: MetricsSettings = MetricsSettings()
    logging: LoggingSettings = LoggingSettings()
    reliability: ReliabilitySettings = ReliabilitySettings()
    media: MediaSettings = MediaSettings()

    @model_validator(mode="after")
    def _check_redis_url(self) -> Settings:
        # here rather than on the field: how the URL reads depends on [redis] mode
        if self.redis_url is not None:
            try:
                check_redis_url(self.redis_url.get_secret_value(), self.redis.mode)
            except ValueError as exc:
                raise ValueError(f"REDIS_URL: {exc}") from None
        return self

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        toml = TomlConfigSettingsSource(settings_cls, toml_file=settings_path())
        return init_settings, env_settings, toml


def settings_path() -> Path:
    return Path(os.environ.get("BOT_SETTINGS", "settings.toml"))


def with_mode(settings: Settings, mode: Literal["polling", "webhook"] | None) -> Settings:
    """The settings with [telegram] mode set to `mode` (None: as configured); a copy, so
    the settings read at start stay what was configured."""
    if mode is None or mode == settings.telegram.mode:
        return settings
    telegram = settings.telegram.model_copy(update={"mode": mode})
    return settings.model_copy(update={"telegram": telegram})


class ConfigError(Exception):
    """Configuration is missing or malformed; the message is one readable line."""


def load_settings() -> Settings:
    """Read the settings once, turning any problem into a ConfigError naming the setting.

    The pydantic error is not passed on: its text would echo the offending value,
    which may be a secret.
    """
    path = settings_path()
    if "BOT_SETTINGS" in os.environ and not path.is_file():
        raise ConfigError(f"BOT_SETTINGS: settings file {path} does not exist")
    try:
        return Settings()
    except ValidationError as exc:
        problems = [_problem(err["loc"], err["msg"]) for err in exc.errors()]
        raise ConfigError("; ".join(problems)) from None
    except (OSError, ValueError) as exc:  # unreadable or invalid TOML
        raise ConfigError(f"{path}: {type(exc).__name__}: {exc}") from None


_ENV_NAMES = {
    "telegram_bot_token": "TELEGRAM_BOT_TOKEN",
    "TELEGRAM_BOT_TOKEN": "TELEGRAM_BOT_TOKEN",
    "zhipu_api_key": "ZHIPU_API_KEY",
    "ZHIPU_API_KEY": "ZHIPU_API_KEY",
    "redis_url": "REDIS_URL",
    "REDIS_URL": "REDIS_URL",
    "telegram_webhook_secret": "TELEGRAM_WEBHOOK_SECRET",
    "TELEGRAM_WEBHOOK_SECRET": "TELEGRAM_WEBHOOK_SECRET",
}


def _problem(loc: tuple[int | str, ...], message: str) -> str:
    # pydantic prefixes the messages of our own checks; the setting's name says enough
    message = message.removeprefix("Value error, ")
    # a check of the whole model names its setting itself
    return f"{_setting_name(loc)}: {message}" if loc else message


def _setting_name(loc: tuple[int | str, ...]) -> str:
    if len(loc) == 1 and str(loc[0]) in _ENV_NAMES:
        return _ENV_NAMES[str(loc[0])]
    # nested keys: [llm] max_tokens -> LLM__MAX_TOKENS, the name users can set
    return "__".join(str(part).upper() for part in loc)
