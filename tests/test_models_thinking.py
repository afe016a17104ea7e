"""The shipped catalog leaves thinking models room to reason: reasoning counts against
the answer limit, and Zhipu's guides advise at least 2048 tokens for it."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from bot.config import load_settings
from bot.config.models import MIN_THINKING_ANSWER, catalog_from_settings

ROOT = Path(__file__).resolve().parent.parent


def test_thinking_models_have_room_to_reason(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv("BOT_SETTINGS", str(ROOT / "settings.toml"))
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "42:SECRET-PART")
    monkeypatch.setenv("ZHIPU_API_KEY", "id.secret")
    for name in ("LLM__MODEL", "LLM__CONTEXT_TOKENS"):
        monkeypatch.delenv(name, raising=False)
    with caplog.at_level(logging.WARNING, logger="bot.config"):
        catalog = catalog_from_settings(load_settings())
    assert not caplog.records, "the shipped settings start without a warning"
    thinking = [m for m in catalog.chat_models() if m.capabilities.thinking != "no"]
    assert thinking, "the catalog offers thinking models"
    for model in thinking:
        # several times the advised minimum: a long answer after long reasoning still fits
        assert model.max_tokens >= 4 * MIN_THINKING_ANSWER, model.name
