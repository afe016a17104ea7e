"""The caption of an /image picture: Telegram's 1024 UTF-16 units, never a broken pair."""

from __future__ import annotations

from bot.streaming.formatting import utf16_len
from bot.streaming.photos import CAPTION_LIMIT, caption_of


def test_a_short_description_is_the_caption() -> None:
    assert caption_of("a red fox") == "a red fox"
    exact = "x" * CAPTION_LIMIT
    assert caption_of(exact) == exact


def test_a_long_one_is_cut_with_an_ellipsis_within_the_limit() -> None:
    for description in ("fox " * 400, "🦊" * 600, "x" + "🦊" * 600, "狐狸" * 700):
        caption = caption_of(description)
        assert utf16_len(caption) <= CAPTION_LIMIT
        assert caption.endswith("…")
        assert caption.encode("utf-8")  # no lone surrogate: it would not encode
        assert description.startswith(caption[:-1].rstrip())
