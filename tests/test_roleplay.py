"""Persona presets that name a model: the start-up check and the `meta` they produce."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import ConfigError, load_settings
from bot.config.models import catalog_from_settings
from bot.roleplay import Character, characters, meta

GLM_5 = """
[llm]
model = "glm-5"

[models."glm-5"]
kind = "chat"
context_window = 200000
max_tokens = 32768

[models."charglm-4"]
kind = "roleplay"
context_window = 8000
max_tokens = 2048

[models."cogview-3-flash"]
kind = "image"
"""


@pytest.fixture
def settings_file(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    path = tmp_path / "settings.toml"
    monkeypatch.setenv("BOT_SETTINGS", str(path))
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "42:SECRET-PART")
    monkeypatch.setenv("ZHIPU_API_KEY", "id.secret")
    monkeypatch.delenv("LLM__MODEL", raising=False)
    return path


@pytest.mark.parametrize(
    ("preset", "named"),
    [
        (
            'model = "charglm-9"',
            "PERSONAS__HOLMES__MODEL: 'charglm-9' is not in the model catalog",
        ),
        (
            'model = "cogview-3-flash"',
            "PERSONAS__HOLMES__MODEL: 'cogview-3-flash' cannot answer a chat (kind 'image')",
        ),
        (
            'model = "charglm-4"\nbot_name = "Holmes"',
            "PERSONAS__HOLMES__BOT_NAME: a role-play preset needs bot_name and bot_info",
        ),
    ],
)
def test_a_preset_whose_model_cannot_answer_stops_the_bot_with_one_line(
    settings_file: Path, preset: str, named: str
) -> None:
    settings_file.write_text(GLM_5 + f'[personas.holmes]\ntext = "In character."\n{preset}\n')
    with pytest.raises(ConfigError) as raised:
        catalog_from_settings(load_settings())
    assert str(raised.value) == named + (
        " ([models.*] in settings.toml)" if "catalog" in named else ""
    )


def test_presets_with_a_model_become_characters(settings_file: Path) -> None:
    settings_file.write_text(
        GLM_5
        + '[personas.Holmes]\ntext = "t"\nmodel = "charglm-4"\nbot_name = " Holmes "\n'
        + 'bot_info = "A detective"\n[personas.plain]\ntext = "t"\n'
    )
    settings = load_settings()
    catalog_from_settings(settings)  # starts
    assert characters(settings.personas) == {
        "holmes": Character("charglm-4", "Holmes", "A detective")
    }


def test_meta_describes_the_user_by_name_only() -> None:
    holmes = Character("charglm-4", "Holmes", "A detective")
    assert meta(holmes, "Ann Lee") == {
        "bot_name": "Holmes",
        "bot_info": "A detective",
        "user_name": "Ann Lee",
        "user_info": "Ann Lee, talking with Holmes in a Telegram chat.",
    }
    assert meta(holmes, None)["user_name"] == "User"
