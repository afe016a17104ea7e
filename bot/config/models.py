"""The model catalog in settings.toml (`[models.<name>]`), and the check that turns it
into a `bot.models.ModelCatalog` at start.

A setting that can never work stops the bot with one line naming it; anything else that
does not fit is resolved here, once, with a warning (never by failing each message).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import TYPE_CHECKING

from pydantic import BaseModel, ConfigDict, Field

from bot.models import Capabilities, Kind, ModelCatalog, ModelSpec, Prices, Thinking

if TYPE_CHECKING:
    from bot.config import PersonaPreset, Settings

__all__ = ["ModelEntry", "catalog_from_settings"]

log = logging.getLogger(__name__)

# Zhipu's guides: reasoning counts against max_tokens, leave it at least this much.
MIN_THINKING_ANSWER = 2048


class ModelEntry(BaseModel):
    """One `[models."<name>"]` table."""

    # a misspelt key (a price that would silently count as 0) stops the bot at start
    model_config = ConfigDict(extra="forbid")

    kind: Kind = "chat"
    # tokens read and written in one request (chat, vision and role-play models)
    context_window: int = Field(default=0, ge=0)
    # answer limit in tokens, reasoning included
    max_tokens: int = Field(default=0, ge=0)
    thinking: Thinking = "no"
    images_in: bool = False
    tools: bool = False
    web_search: bool = False
    reasoning_effort: bool = False
    # CNY per million tokens, per generated image, per minute of audio
    input_price: float = Field(default=0.0, ge=0)
    output_price: float = Field(default=0.0, ge=0)
    image_price: float = Field(default=0.0, ge=0)
    minute_price: float = Field(default=0.0, ge=0)
    # no longer on Zhipu's list: kept so an old LLM__MODEL still starts, never offered
    legacy: bool = False


def catalog_from_settings(settings: Settings) -> ModelCatalog:
    """The catalog of `[models.*]` with `[llm] model` as the default; raises ConfigError
    for a setting that can never work, warns about (and resolves) the rest."""
    from bot.config import ConfigError  # bot.config imports this module for its section

    problem = _fatal(settings.models, settings.llm.model) or _preset_problem(
        settings.personas, settings.models
    )
    if problem is not None:
        raise ConfigError(problem)
    models = [
        _spec(name, entry, settings.llm.context_tokens, settings.llm.temperature)
        for name, entry in settings.models.items()
    ]
    catalog = ModelCatalog(models, default=settings.llm.model)
    for warning in _warnings(catalog, settings.models, settings.llm.context_tokens):
        log.warning("settings: %s", warning)
    return catalog


def _setting(name: str, key: str) -> str:
    """How an operator names a model's key: what the environment override would be."""
    return f"MODELS__{name.upper()}__{key.upper()}"


def _fatal(entries: Mapping[str, ModelEntry], default: str) -> str | None:
    entry = entries.get(default)
    if entry is None:
        return f"LLM__MODEL: {default!r} is not in the model catalog ([models.*] in settings.toml)"
    if entry.kind not in ("chat", "vision"):
        return f"LLM__MODEL: {default!r} is not a chat model (kind {entry.kind!r})"
    for name, model in entries.items():
        if model.kind not in ("chat", "vision", "roleplay"):
            continue
        if model.max_tokens < 1:
            return f"{_setting(name, 'max_tokens')}: a {model.kind} model needs an answer limit"
        if model.max_tokens >= model.context_window:
            return (
                f"{_setting(name, 'max_tokens')}: the answer limit {model.max_tokens} leaves "
                f"no room for a prompt in the context window of {model.context_window}"
            )
    return None


def _preset_problem(
    presets: Mapping[str, PersonaPreset], entries: Mapping[str, ModelEntry]
) -> str | None:
    """A persona preset whose model could never answer."""
    for name, preset in presets.items():
        if preset.model is None:
            continue
        key = f"PERSONAS__{name.upper()}"
        entry = entries.get(preset.model)
        if entry is None:
            return (
                f"{key}__MODEL: {preset.model!r} is not in the model catalog "
                "([models.*] in settings.toml)"
            )
        if entry.kind not in ("chat", "vision", "roleplay"):
            return f"{key}__MODEL: {preset.model!r} cannot answer a chat (kind {entry.kind!r})"
        if entry.kind == "roleplay" and not (preset.bot_name.strip() and preset.bot_info.strip()):
            return f"{key}__BOT_NAME: a role-play preset needs bot_name and bot_info"
    return None


def _spec(name: str, entry: ModelEntry, cap: int | None, temperature: float) -> ModelSpec:
    return ModelSpec(
        name,
        context_window=entry.context_window,
        max_tokens=entry.max_tokens,
        prompt_cap=cap,
        temperature=temperature,
        kind=entry.kind,
        capabilities=Capabilities(
            thinking=entry.thinking,
            images_in=entry.images_in or entry.kind == "vision",
            tools=entry.tools,
            web_search=entry.web_search,
            # only a model that thinks has an effort to set
            reasoning_effort=entry.reasoning_effort and entry.thinking != "no",
        ),
        prices=Prices(
            input=entry.input_price,
            output=entry.output_price,
            image=entry.image_price,
            minute=entry.minute_price,
        ),
        legacy=entry.legacy,
    )


def _warnings(
    catalog: ModelCatalog, entries: Mapping[str, ModelEntry], cap: int | None
) -> list[str]:
    found = [
        f"{_setting(name, 'reasoning_effort')}: {name} does not think; the setting is ignored"
        for name, entry in entries.items()
        if entry.reasoning_effort and entry.thinking == "no"
    ]
    if catalog.default.legacy:
        found.append(
            f"LLM__MODEL: {catalog.default.name!r} is no longer on Zhipu's model list; "
            "choose a current one"
        )
    for model in catalog:
        if not model.chats:
            continue
        room = model.context_window - model.max_tokens
        if cap is not None and cap > room:
            found.append(
                f"LLM__CONTEXT_TOKENS: {cap} is more than {model.name} leaves for a prompt; "
                f"its requests carry at most {room} prompt tokens"
            )
        if model.capabilities.thinking != "no" and model.max_tokens < MIN_THINKING_ANSWER:
            found.append(
                f"{_setting(model.name, 'max_tokens')}: {model.max_tokens} leaves little room "
                f"for reasoning (Zhipu advises at least {MIN_THINKING_ANSWER}); answers may "
                "end before any text"
            )
    return found
