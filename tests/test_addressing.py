"""Finding the bot's @mention in a group message, by UTF-16 entity offsets."""

from __future__ import annotations

from typing import Any

from aiogram.types import Message, User

from handlers.addressing import strip_mentions

ME = User(id=42, is_bot=True, first_name="GLM", username="glm_bot")


def group_message(text: str, *entities: dict[str, Any]) -> Message:
    return Message.model_validate(
        {
            "message_id": 1,
            "date": 1_700_000_000,
            "chat": {"id": -100, "type": "supergroup", "title": "g"},
            "from": {"id": 7, "is_bot": False, "first_name": "Ann"},
            "text": text,
            "entities": list(entities),
        }
    )


def mention(offset: int, length: int) -> dict[str, Any]:
    return {"type": "mention", "offset": offset, "length": length}


def test_the_mention_is_cut_out_by_utf16_offsets() -> None:
    # the emoji takes two UTF-16 units: Python offsets would cut the wrong place
    message = group_message("😀 @glm_bot what is 2+2?", mention(3, 8))
    question, mentioned = strip_mentions(message, ME)
    assert mentioned
    assert question.split() == ["😀", "what", "is", "2+2?"]


def test_someone_else_s_mention_is_not_ours() -> None:
    message = group_message("@alice what is 2+2?", mention(0, 6))
    assert strip_mentions(message, ME) == ("@alice what is 2+2?", False)


def test_a_lone_surrogate_in_the_text_does_not_break_the_mention() -> None:
    # aiogram's entity.extract_from() raises UnicodeEncodeError on such text
    message = group_message("@glm_bot hi \ud800 there", mention(0, 8))
    question, mentioned = strip_mentions(message, ME)
    assert mentioned
    assert question.split()[0] == "hi"
    assert question.split()[-1] == "there"
    assert "\ud800" not in question
