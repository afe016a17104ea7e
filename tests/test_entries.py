"""History list entries (`bot.history.entries`): what is written now (version 2) round-trips
every kind of part, and what version 1 wrote still loads."""

from __future__ import annotations

import json

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.history.entries import decode_entry, encode_entry
from bot.messages import ImagePart, Message, Part, Role, TextPart

roles: st.SearchStrategy[Role] = st.sampled_from(["user", "assistant"])
parts: st.SearchStrategy[Part] = st.one_of(
    st.builds(TextPart, st.text()),
    st.builds(ImagePart, st.text(min_size=1), st.sampled_from(["image/jpeg", "image/png"])),
)


@given(
    role=roles,
    parts=st.lists(parts, min_size=1, max_size=5).map(tuple),
    tokens=st.integers(min_value=0, max_value=10**6),
)
def test_version_2_round_trips_any_message(
    role: Role, parts: tuple[Part, ...], tokens: int
) -> None:
    message = Message(role, parts, tokens)
    entry = encode_entry(message)
    assert decode_entry(entry) == message
    assert decode_entry(entry.encode()) == message, "clients without decode_responses"
    # the first two fields hold no tab: the Lua budget walk reads the tokens by pattern
    count, code, _ = entry.split("\t", 2)
    assert (count, code) == (str(tokens), {"user": "u2", "assistant": "a2"}[role])


def test_version_2_body_is_a_json_list_of_parts() -> None:
    message = Message("user", (TextPart("看\tthis\n"), ImagePart("AgAC", "image/png")), 12)
    tokens, code, body = encode_entry(message).split("\t", 2)
    assert (tokens, code) == ("12", "u2")
    assert json.loads(body) == [{"text": "看\tthis\n"}, {"image": "AgAC", "mime": "image/png"}]
    assert "看" in body, "stored as text, not \\u escapes"


@pytest.mark.parametrize(
    ("entry", "expected"),
    [
        ("7\tu\thello", Message.of_text("user", "hello", 7)),
        ("0\ta\t", Message.of_text("assistant", "", 0)),
        ("12\ta\ttabs\tin\tthe\ttext", Message.of_text("assistant", "tabs\tin\tthe\ttext", 12)),
        # a version 1 text that looks like JSON stays text
        ('5\tu\t[{"text": "x"}]', Message.of_text("user", '[{"text": "x"}]', 5)),
        (b"3\tu\t\xe4\xbd\xa0\xe5\xa5\xbd", Message.of_text("user", "你好", 3)),
    ],
)
def test_version_1_entries_still_load(entry: str | bytes, expected: Message) -> None:
    assert decode_entry(entry) == expected


def test_an_image_without_a_mime_type_is_a_jpeg() -> None:
    decoded = decode_entry('4\tu2\t[{"image": "ref"}]')
    assert decoded == Message("user", (ImagePart("ref", "image/jpeg"),), 4)
