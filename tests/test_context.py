"""build_prompt: what GLM receives for one turn, within the token budget."""

from __future__ import annotations

import unicodedata

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.messages import ImagePart, Message, Role, TextPart
from bot.prompt.build import (
    IMAGE_GONE,
    MIN_PROMPT_BUDGET,
    Prompt,
    attachable_images,
    build_prompt,
    truncate_to_tokens,
)
from bot.prompt.tokens import IMAGE_TOKENS, estimate_tokens, message_tokens


def msg(role: Role, content: str) -> Message:
    return Message.of_text(role, content)


def turns(count: int, size: int = 10) -> list[Message]:
    """`count` alternating messages starting with a user one, each `size` words long."""
    roles: tuple[Role, Role] = ("user", "assistant")
    return [msg(roles[i % 2], f"m{i} " + "word " * (size - 1)) for i in range(count)]


def build(
    *,
    persona: str | None = None,
    history: list[Message] | None = None,
    user: str = "hello",
    budget: int = 1000,
) -> Prompt:
    return build_prompt(
        persona=persona,
        persona_tokens=message_tokens(persona) if persona else 0,
        history=history or [],
        user=msg("user", user),
        budget_tokens=budget,
    )


def test_persona_history_and_user_in_order() -> None:
    history = turns(4)
    prompt = build(persona="You are terse.", history=history, user="next?")
    assert prompt.messages[0] == {"role": "system", "content": "You are terse."}
    assert prompt.messages[1:-1] == [{"role": m.role, "content": m.text} for m in history]
    assert prompt.messages[-1] == {"role": "user", "content": "next?"}
    assert prompt.estimated_tokens == (
        message_tokens("You are terse.") + sum(m.tokens for m in history) + message_tokens("next?")
    )
    assert not prompt.user_truncated
    assert not prompt.persona_truncated
    assert prompt.dropped_messages == 0


@pytest.mark.parametrize("persona", [None, ""])
def test_no_system_message_without_a_persona(persona: str | None) -> None:
    prompt = build(persona=persona, history=turns(2))
    assert all(m["role"] != "system" for m in prompt.messages)


def test_without_history_the_prompt_is_persona_and_user() -> None:
    prompt = build(persona="Be kind.", user="hi")
    assert [m["role"] for m in prompt.messages] == ["system", "user"]


def test_oldest_history_is_dropped_first() -> None:
    history = turns(20)
    per_message = history[0].tokens
    budget = message_tokens("q") + 6 * per_message
    prompt = build(history=history, user="q", budget=budget)
    assert prompt.messages[:-1] == [{"role": m.role, "content": m.text} for m in history[-6:]]
    assert prompt.dropped_messages == 14
    assert prompt.estimated_tokens <= budget


def test_history_never_starts_with_an_assistant_message() -> None:
    history = turns(20)
    per_message = history[0].tokens
    # room for 5 messages: the oldest of them would be an assistant answer
    budget = message_tokens("q") + 5 * per_message
    prompt = build(history=history, user="q", budget=budget)
    assert prompt.messages[0]["role"] == "user"
    assert len(prompt.messages) == 5  # 4 history messages + the new one
    assert prompt.dropped_messages == 16


def test_history_stops_at_the_first_message_that_does_not_fit() -> None:
    # a gap would splice unrelated turns together; a shorter history is better
    history = [msg("user", "a"), msg("assistant", "word " * 500), msg("user", "b")]
    budget = message_tokens("q") + message_tokens("a") + message_tokens("b")
    prompt = build(history=history, user="q", budget=budget)
    assert [m["content"] for m in prompt.messages] == ["b", "q"]
    assert prompt.dropped_messages == 2


def test_a_long_user_message_is_cut_to_fit() -> None:
    text = "lorem ipsum " * 2000
    prompt = build(persona="Persona.", user=text, budget=500)
    last = prompt.messages[-1]
    assert last["role"] == "user"
    assert text.startswith(last["content"])
    assert 0 < len(last["content"]) < len(text)
    assert prompt.user_truncated
    assert prompt.estimated_tokens <= 500
    assert prompt.messages[0]["content"] == "Persona."


def test_a_big_persona_is_cut_to_half_when_the_user_needs_room() -> None:
    persona = "rule " * 3000
    user = "question " * 3000
    prompt = build(persona=persona, user=user, budget=1000)
    system, last = prompt.messages[0], prompt.messages[-1]
    assert prompt.persona_truncated
    assert prompt.user_truncated
    assert persona.startswith(system["content"])
    assert message_tokens(system["content"]) <= 500
    assert message_tokens(last["content"]) >= 500
    assert prompt.estimated_tokens <= 1000


def test_a_big_persona_is_kept_whole_when_the_user_message_fits() -> None:
    persona = "rule " * 300
    prompt = build(persona=persona, user="hi", budget=message_tokens(persona) + 10)
    assert prompt.messages[0]["content"] == persona
    assert not prompt.persona_truncated


def test_a_big_persona_is_cut_only_as_much_as_the_user_needs() -> None:
    persona = "rule " * 300
    user = "question " * 30
    budget = message_tokens(persona) + message_tokens(user) - 20
    prompt = build(persona=persona, user=user, budget=budget)
    assert prompt.persona_truncated
    assert not prompt.user_truncated
    assert prompt.messages[-1]["content"] == user
    assert message_tokens(prompt.messages[0]["content"]) > budget // 2


def test_the_smallest_budget_still_keeps_a_character_of_the_user_message() -> None:
    prompt = build(persona="rule " * 50, user="question " * 50, budget=MIN_PROMPT_BUDGET)
    assert [m["role"] for m in prompt.messages] == ["user"]
    assert prompt.messages[0]["content"]
    assert prompt.estimated_tokens <= MIN_PROMPT_BUDGET


def test_a_budget_below_one_message_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="budget"):
        build(budget=MIN_PROMPT_BUDGET - 1)


def test_the_new_message_must_be_a_user_message() -> None:
    with pytest.raises(ValueError, match="user"):
        build_prompt(
            persona=None,
            persona_tokens=0,
            history=[],
            user=msg("assistant", "hi"),
            budget_tokens=100,
        )


def test_truncate_returns_fitting_text_unchanged() -> None:
    assert truncate_to_tokens("short text", 100) == "short text"
    assert truncate_to_tokens("", 0) == ""
    assert truncate_to_tokens("some text", 0) == ""


def test_truncate_cuts_chinese_at_a_character() -> None:
    text = "自然语言处理" * 100
    cut = truncate_to_tokens(text, 10)
    assert text.startswith(cut)
    assert estimate_tokens(cut) <= 10
    assert estimate_tokens(text[: len(cut) + 1]) > 10


def test_truncate_does_not_split_an_emoji_sequence() -> None:
    family = "👨\u200d👩\u200d👧"
    text = "ok " + family * 50
    for limit in range(2, 30):
        cut = truncate_to_tokens(text, limit)
        assert not cut.endswith("\u200d")
        assert not text[len(cut) :].startswith("\u200d")


def test_truncate_keeps_combining_marks_with_their_letter() -> None:
    text = "e\u0301" * 200  # é as e + combining acute
    for limit in range(1, 40):
        cut = truncate_to_tokens(text, limit)
        assert not text[len(cut) :].startswith("\u0301")


# ---- properties ---------------------------------------------------------------------

contents = st.text(min_size=0, max_size=120)
roles: st.SearchStrategy[Role] = st.sampled_from(["user", "assistant"])


@st.composite
def stored(draw: st.DrawFn) -> Message:
    return Message.of_text(draw(roles), draw(contents))


@given(
    persona=st.one_of(st.none(), st.text(max_size=400)),
    history=st.lists(stored(), max_size=30),
    user=st.text(min_size=1, max_size=400),
    budget=st.integers(min_value=MIN_PROMPT_BUDGET, max_value=1500),
)
def test_build_prompt_properties(
    persona: str | None, history: list[Message], user: str, budget: int
) -> None:
    prompt = build_prompt(
        persona=persona,
        persona_tokens=message_tokens(persona) if persona else 0,
        history=history,
        user=Message.of_text("user", user),
        budget_tokens=budget,
    )
    messages = prompt.messages
    roles_out = [m["role"] for m in messages]

    # never only a system message (GLM error 1214); the new user message is last
    assert roles_out[-1] == "user"
    assert roles_out != ["system"]
    # system only first, and only for a non-empty persona
    assert "system" not in roles_out[1:]
    if roles_out[0] == "system":
        assert persona
        assert messages[0]["content"]
        assert persona.startswith(messages[0]["content"])
        assert prompt.persona_truncated == (messages[0]["content"] != persona)
    # the new message is kept: whole, or a non-empty prefix when cut
    last = messages[-1]["content"]
    assert last
    assert user.startswith(last)
    assert prompt.user_truncated == (last != user)
    # within budget, by the same arithmetic the caller would do
    body = messages[1:-1] if roles_out[0] == "system" else messages[:-1]
    system_cost = message_tokens(messages[0]["content"]) if roles_out[0] == "system" else 0
    kept_cost = sum(m.tokens for m in history[len(history) - len(body) :])
    assert prompt.estimated_tokens == system_cost + kept_cost + message_tokens(last)
    assert prompt.estimated_tokens <= budget
    # history: an order-preserving suffix of the input, opening with a user turn
    assert body == [
        {"role": m.role, "content": m.text} for m in history[len(history) - len(body) :]
    ]
    assert prompt.dropped_messages == len(history) - len(body)
    if body:
        assert body[0]["role"] == "user"


@given(
    history=st.lists(stored(), max_size=30),
    budget=st.integers(min_value=200, max_value=3000),
)
def test_history_is_the_longest_suffix_that_fits(history: list[Message], budget: int) -> None:
    prompt = build_prompt(
        persona=None,
        persona_tokens=0,
        history=history,
        user=msg("user", "q"),
        budget_tokens=budget,
    )
    room = budget - message_tokens("q")
    start = len(history) - (len(prompt.messages) - 1)
    # going back over assistant answers that were only dropped for opening the history,
    # the next older message must be one that did not fit
    j = start
    while (
        j > 0
        and history[j - 1].role == "assistant"
        and sum(m.tokens for m in history[j - 1 :]) <= room
    ):
        j -= 1
    assert j == 0 or sum(m.tokens for m in history[j - 1 :]) > room


def _attaches(ch: str) -> bool:
    return (
        ch in "\u200d\ufe0e\ufe0f"
        or unicodedata.combining(ch) != 0
        or 0x1F3FB <= ord(ch) <= 0x1F3FF
    )


@given(text=st.text(max_size=600), limit=st.integers(min_value=0, max_value=200))
def test_truncate_to_tokens_is_the_longest_fitting_prefix(text: str, limit: int) -> None:
    cut = truncate_to_tokens(text, limit)
    assert text.startswith(cut)
    assert estimate_tokens(cut) <= limit
    if cut == text:
        return
    longest = max(n for n in range(len(text) + 1) if estimate_tokens(text[:n]) <= limit)
    assert len(cut) <= longest
    # the cut only steps back from the longest fit so as not to split an attached character
    for p in range(len(cut) + 1, longest + 1):
        assert _attaches(text[p]) or text[p - 1] == "\u200d"


def test_images_go_as_parts_and_one_without_data_is_left_out() -> None:
    photo = ImagePart("file-1", "image/png")
    gone = ImagePart("file-2")
    user = Message(
        "user", (TextPart("what is this?"), photo, gone), message_tokens("what is this?")
    )
    history = [Message("user", (TextPart("look"), gone), 10), msg("assistant", "a cat")]
    prompt = build_prompt(
        persona=None,
        persona_tokens=0,
        history=history,
        user=user,
        budget_tokens=IMAGE_TOKENS + 1000,
        images={"file-1": "data:image/png;base64,AAAA"},
    )
    assert prompt.messages == [
        {"role": "user", "content": "look"},  # nothing left to see: plain text
        {"role": "assistant", "content": "a cat"},
        {
            "role": "user",
            "content": [
                {"type": "text", "text": "what is this?"},
                {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}},
            ],
        },
    ]


def test_a_cut_question_keeps_its_images() -> None:
    photo = ImagePart("file-1")
    text = "why " * 400
    user = Message("user", (TextPart(text), photo), message_tokens(text))
    prompt = build_prompt(
        persona=None,
        persona_tokens=0,
        history=[],
        user=user,
        budget_tokens=IMAGE_TOKENS + 100,
        images={"file-1": "data:image/jpeg;base64,BBBB"},
    )
    assert prompt.user_truncated
    (sent,) = prompt.messages
    cut, image = sent["content"]
    assert text.startswith(cut["text"])
    assert len(cut["text"]) < len(text)
    assert image == {"type": "image_url", "image_url": {"url": "data:image/jpeg;base64,BBBB"}}


def test_images_are_counted_and_a_message_of_lost_images_is_never_empty() -> None:
    def photo_message(role: Role, *refs: str) -> Message:
        return Message(role, tuple(ImagePart(ref) for ref in refs), 0)

    history = [photo_message("user", "a", "b"), msg("assistant", "two cats"), msg("user", "x")]
    question = Message("user", (ImagePart("c"), TextPart("and now?")), message_tokens("and now?"))
    prompt = build_prompt(
        persona=None,
        persona_tokens=0,
        history=history,
        user=question,
        budget_tokens=10 * IMAGE_TOKENS,
        images={"b": "BBBB", "c": "CCCC"},
    )
    first, _, _, last = prompt.messages
    assert first["content"] == [{"type": "image_url", "image_url": {"url": "BBBB"}}]
    assert last["content"][0] == {"type": "image_url", "image_url": {"url": "CCCC"}}
    texts = sum(m.tokens for m in history) + question.tokens
    assert prompt.estimated_tokens == texts + 2 * IMAGE_TOKENS, "the two images sent count"

    lost = build_prompt(
        persona=None, persona_tokens=0, history=history, user=question, budget_tokens=5000
    )
    assert lost.messages[0] == {"role": "user", "content": IMAGE_GONE}
    assert lost.estimated_tokens == texts


def test_the_question_keeps_the_images_the_budget_holds() -> None:
    question = Message(
        "user", (ImagePart("a"), ImagePart("b"), TextPart("which?")), message_tokens("which?")
    )
    prompt = build_prompt(
        persona=None,
        persona_tokens=0,
        history=[],
        user=question,
        budget_tokens=IMAGE_TOKENS + 50,
        images={"a": "AAAA", "b": "BBBB"},
    )
    [sent] = prompt.messages
    assert sent["content"] == [
        {"type": "image_url", "image_url": {"url": "AAAA"}},
        {"type": "text", "text": "which?"},
    ]
    assert prompt.estimated_tokens <= IMAGE_TOKENS + 50


def test_attachable_images_the_questions_then_the_newest_earlier_ones() -> None:
    def with_images(*refs: str) -> Message:
        return Message("user", (*(ImagePart(ref) for ref in refs), TextPart("?")), 5)

    history = [with_images("old"), with_images("a", "b"), msg("assistant", "ok"), with_images("c")]
    # "c" is already the question's: it does not count against the limit
    assert attachable_images(history, with_images("q", "c"), 2) == ["q", "c", "b", "a"]
    assert attachable_images(history, with_images("q"), 0) == ["q"]
    assert attachable_images(history, msg("user", "hi"), 10) == ["c", "b", "a", "old"]
