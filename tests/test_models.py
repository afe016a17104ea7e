"""The model catalog: settings.toml's [models.*] read into a ModelCatalog at start, what
stops the bot, and what is resolved with a warning."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot.config import ConfigError, Settings, load_settings
from bot.config.models import catalog_from_settings
from bot.models import ModelCatalog

ROOT = Path(__file__).resolve().parent.parent

GLM_5 = """
[models."glm-5"]
kind = "chat"
context_window = 200000
max_tokens = 32768
thinking = "optional"
input_price = 4
output_price = 18
"""


@pytest.fixture
def settings_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    path = tmp_path / "settings.toml"
    monkeypatch.setenv("BOT_SETTINGS", str(path))
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "42:SECRET-PART")
    monkeypatch.setenv("ZHIPU_API_KEY", "id.secret")
    for name in ("LLM__MODEL", "LLM__CONTEXT_TOKENS"):
        monkeypatch.delenv(name, raising=False)
    return path


def catalog_of(path: Path, toml: str) -> ModelCatalog:
    path.write_text(toml)
    return catalog_from_settings(load_settings())


def shipped(settings_file: Path) -> Settings:
    settings_file.write_text((ROOT / "settings.toml").read_text())
    return load_settings()


def test_the_shipped_catalog(settings_file: Path) -> None:
    settings = shipped(settings_file)
    catalog = catalog_from_settings(settings)
    default = catalog.default
    assert default.name == settings.llm.model == "glm-4.7-flash"
    assert default.prices.input == default.prices.output == 0, "a new user pays nothing"
    assert not default.legacy
    kinds = {model.kind for model in catalog}
    assert kinds == {"chat", "vision", "image", "speech", "roleplay"}
    chat = catalog.chat_models()
    assert default in chat
    assert any(model.prices.output > 0 for model in chat), "a paid flagship is offered"
    assert all(model.kind in ("chat", "vision") for model in chat)
    assert "glm-4" in catalog
    assert catalog.get("glm-4") not in chat, "legacy, never offered"
    for model in chat:
        assert 0 < model.max_tokens < model.context_window
        assert model.prompt_budget == model.context_window - model.max_tokens


def test_capabilities_and_prices_are_read(settings_file: Path) -> None:
    catalog = catalog_of(
        settings_file,
        GLM_5
        + """
[models."glm-4.6v-flash"]
kind = "vision"
context_window = 128000
max_tokens = 16384
thinking = "always"
reasoning_effort = true
[models."cogview-4"]
kind = "image"
image_price = 0.06
[llm]
model = "glm-5"
""",
    )
    glm5 = catalog.default
    assert (glm5.name, glm5.context_window, glm5.max_tokens) == ("glm-5", 200_000, 32_768)
    assert glm5.capabilities.thinking == "optional"
    assert (glm5.prices.input, glm5.prices.output) == (4, 18)
    vision = catalog.for_chat("glm-4.6v-flash")
    assert vision.capabilities.images_in, "a vision model takes images"
    assert vision.capabilities.reasoning_effort
    image = catalog.get("cogview-4")
    assert image is not None
    assert image.prices.image == 0.06
    assert catalog.for_chat("cogview-4") is glm5, "an image model never answers a chat"
    assert [m.name for m in catalog.chat_models()] == ["glm-5", "glm-4.6v-flash"]


@pytest.mark.parametrize(
    ("toml", "named"),
    [
        (GLM_5 + '[llm]\nmodel = "glm-9"\n', "LLM__MODEL: 'glm-9' is not in the model catalog"),
        (
            GLM_5 + '[models.cogview]\nkind = "image"\n[llm]\nmodel = "cogview"\n',
            "LLM__MODEL: 'cogview' is not a chat model (kind 'image')",
        ),
        (
            GLM_5.replace("32768", "200000") + '[llm]\nmodel = "glm-5"\n',
            "MODELS__GLM-5__MAX_TOKENS: the answer limit 200000 leaves no room",
        ),
        (
            GLM_5 + '[models.other]\ncontext_window = 8000\n[llm]\nmodel = "glm-5"\n',
            "MODELS__OTHER__MAX_TOKENS: a chat model needs an answer limit",
        ),
    ],
)
def test_a_catalog_that_cannot_work_stops_the_bot_with_one_line(
    settings_file: Path, toml: str, named: str
) -> None:
    with pytest.raises(ConfigError) as raised:
        catalog_of(settings_file, toml)
    message = str(raised.value)
    assert message.startswith(named), message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("toml", "named"),
    [
        (GLM_5.replace("input_price = 4", "input_price = -1"), "MODELS__GLM-5__INPUT_PRICE"),
        (GLM_5.replace("input_price", "input_price_per_1k"), "MODELS__GLM-5__INPUT_PRICE_PER_1K"),
        (GLM_5.replace('"optional"', '"sometimes"'), "MODELS__GLM-5__THINKING"),
    ],
)
def test_a_malformed_model_table_is_a_config_error_naming_the_key(
    settings_file: Path, toml: str, named: str
) -> None:
    settings_file.write_text(toml + '[llm]\nmodel = "glm-5"\n')
    with pytest.raises(ConfigError) as raised:
        load_settings()
    assert str(raised.value).startswith(named), raised.value


def test_context_tokens_caps_every_prompt_and_is_not_reduced_by_the_answer_limit(
    settings_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LLM__CONTEXT_TOKENS", "600")
    catalog = catalog_from_settings(shipped(settings_file))
    assert {model.prompt_budget for model in catalog.chat_models()} == {600}
    assert catalog.largest_prompt_budget == 600


def test_inconsistencies_are_resolved_at_start_with_a_warning(
    settings_file: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("LLM__CONTEXT_TOKENS", "190000")
    toml = (
        GLM_5
        + """
[models.small]
context_window = 8000
max_tokens = 1024
thinking = "always"
[models.plain]
context_window = 8000
max_tokens = 1024
reasoning_effort = true
[llm]
model = "glm-5"
"""
    )
    with caplog.at_level(logging.WARNING, logger="bot.config"):
        catalog = catalog_of(settings_file, toml)
    warnings = "\n".join(record.getMessage() for record in caplog.records)
    # more than glm-5 leaves for a prompt: its own room wins
    assert catalog.default.prompt_budget == 200_000 - 32_768
    assert "LLM__CONTEXT_TOKENS: 190000 is more than glm-5 leaves" in warnings
    assert "LLM__CONTEXT_TOKENS: 190000 is more than small leaves" in warnings
    assert catalog.for_chat("small").prompt_budget == 8000 - 1024
    # a thinking model with little room for reasoning: told, left as configured
    assert "MODELS__SMALL__MAX_TOKENS: 1024 leaves little room for reasoning" in warnings
    # an effort for a model that does not think: ignored
    assert "MODELS__PLAIN__REASONING_EFFORT" in warnings
    assert not catalog.for_chat("plain").capabilities.reasoning_effort


def test_a_legacy_default_model_starts_with_a_warning(
    settings_file: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("LLM__MODEL", "glm-4")
    with caplog.at_level(logging.WARNING, logger="bot.config"):
        catalog = catalog_from_settings(shipped(settings_file))
    assert catalog.default.name == "glm-4"
    assert any("no longer on Zhipu's model list" in r.getMessage() for r in caplog.records)
