"""Markdown -> Telegram text + entities, and cutting into parts."""

from __future__ import annotations

import re

from aiogram.types import MessageEntity
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.streaming.formatting import (
    PART_LIMIT,
    Rendered,
    plain_parts,
    render,
    render_parts,
    rendered_parts,
    utf16_len,
)


def _squash(text: str) -> str:
    return re.sub(r"\s+", "", text)


def _entity_text(part: Rendered, entity: MessageEntity) -> str:
    return entity.extract_from(part.text)


def _assert_valid(part: Rendered, limit: int) -> None:
    size = utf16_len(part.text)
    assert 0 < size <= limit
    assert part.text == part.text.strip(), "Telegram trims; offsets would shift"
    units = part.text.encode("utf-16-le")
    for entity in part.entities:
        assert entity.length > 0
        assert entity.offset >= 0
        assert entity.offset + entity.length <= size
        for edge in (entity.offset, entity.offset + entity.length):
            if 0 < edge < size:
                unit = int.from_bytes(units[2 * edge : 2 * edge + 2], "little")
                assert not 0xDC00 <= unit <= 0xDFFF, "entity edge inside a surrogate pair"


def _code_answer(chars: int, language: str = "python") -> str:
    intro = "Here is the **whole** script, explained below.\n\n"
    lines = []
    i = 0
    while sum(len(line) for line in lines) < chars:
        lines.append(f"value_{i} = compute({i}) if {i} < limit else None  # step {i}\n")
        i += 1
    return intro + f"```{language}\n" + "".join(lines) + "```\n\nThat's all: *enjoy*."


def test_markdown_becomes_entities_without_markup() -> None:
    rendered = render("Say **hi** to _you_ with `x = 1`:\n\n```python\nprint('a')\n```")
    assert rendered.text == "Say hi to you with x = 1:\n\nprint('a')"
    kinds = {(e.type, _entity_text(rendered, e), e.language) for e in rendered.entities}
    assert kinds == {
        ("bold", "hi", None),
        ("italic", "you", None),
        ("code", "x = 1", None),
        ("pre", "print('a')", "python"),
    }


def test_html_like_text_and_ampersands_stay_literal() -> None:
    md = "Use <div> & <br/> tags; AT&T &amp; 1 < 2 > 0.\n\n<p>para</p>\n\n`a<b>&amp;`"
    rendered = render(md)
    assert rendered.text == (
        "Use <div> & <br/> tags; AT&T &amp; 1 < 2 > 0.\n\n<p>para</p>\n\na<b>&amp;"
    )
    assert [e.type for e in rendered.entities] == ["code"]


def test_code_keeps_angle_brackets_and_language() -> None:
    rendered = render("```html\n<a href='x'>&nbsp;</a>\n```")
    assert rendered.text == "<a href='x'>&nbsp;</a>"
    assert rendered.entities[0].type == "pre"
    assert rendered.entities[0].language == "html"


def test_latex_is_converted_not_escaped() -> None:
    assert render(r"\( \alpha < \beta \)").text == "α < β"


def test_prose_after_a_fence_is_not_swallowed_as_its_info_string() -> None:
    rendered = render("Done:\n\n``` and then _some_ words")
    assert rendered.text == "Done:\n\n``` and then some words"
    messy = render("Here **bold and `code and ```py\nprint(1)\n``` and _italic_ end")
    assert messy.text.endswith("italic end")
    assert "print(1)" in messy.text


def test_code_language_is_the_first_word_of_the_info_string() -> None:
    (pre,) = render("```python title=app.py\nrun()\n```").entities
    assert pre.language == "python"


def test_unclosed_fence_mid_stream_is_a_code_block() -> None:
    rendered = render("Here:\n\n```python\ndef f():\n    return 1")
    assert rendered.text == "Here:\n\ndef f():\n    return 1"
    (pre,) = rendered.entities
    assert pre.type == "pre"
    assert pre.language == "python"
    assert _entity_text(rendered, pre) == "def f():\n    return 1"


def test_unclosed_emphasis_mid_stream_stays_literal_then_formats() -> None:
    partial = render("This is **very imp")
    assert partial.text == "This is **very imp"
    assert partial.entities == []
    done = render("This is **very important**.")
    assert done.text == "This is very important."
    assert [(e.type, _entity_text(done, e)) for e in done.entities] == [("bold", "very important")]


def test_entity_offsets_count_utf16_units() -> None:
    rendered = render("😀😀 **bold** 🎉 `code`")
    assert [_entity_text(rendered, e) for e in rendered.entities] == ["bold", "code"]
    assert rendered.entities[0].offset == 5  # two surrogate pairs and a space


def test_whitespace_only_renders_empty() -> None:
    assert render("  \n\n ").text == ""
    assert render_parts("\n \n") == []


def test_short_answer_is_one_part() -> None:
    parts = render_parts("just **one** part")
    assert len(parts) == 1
    assert parts[0] == render("just **one** part")


def test_nine_thousand_chars_with_code_across_the_split() -> None:
    md = _code_answer(9_000)
    assert len(md) > 9_000
    whole = render(md)
    parts = render_parts(md)
    assert len(parts) == 3
    for part in parts:
        _assert_valid(part, PART_LIMIT)
        pres = [e for e in part.entities if e.type == "pre"]
        assert pres, "every part holds a piece of the code block"
        assert all(e.language == "python" for e in pres)
    assert _squash("".join(p.text for p in parts)) == _squash(whole.text)
    # the code is cut between two lines, none lost or broken
    code_lines = [
        line
        for part in parts
        for entity in part.entities
        if entity.type == "pre"
        for line in _entity_text(part, entity).splitlines()
    ]
    assert code_lines == [line for line in md.splitlines() if line.startswith("value_")]


def test_split_prefers_paragraph_breaks() -> None:
    paragraphs = [f"Paragraph {i} " + "word " * 40 for i in range(30)]
    parts = render_parts("\n\n".join(paragraphs), limit=1000)
    for part in parts:
        _assert_valid(part, 1000)
        assert part.text.startswith("Paragraph "), "a part starts a paragraph"
        assert part.text.endswith("word")


def test_split_never_cuts_a_link_or_bold_when_a_line_break_fits() -> None:
    line = "**" + "bold words " * 8 + "** and [a link](https://example.com/path)"
    parts = render_parts("\n".join([line] * 40), limit=500)
    for part in parts:
        _assert_valid(part, 500)
        for entity in part.entities:
            if entity.type == "text_link":
                assert _entity_text(part, entity) == "a link"
            if entity.type == "bold":
                assert _entity_text(part, entity).startswith("bold words")


def test_plain_parts_cut_at_spaces_then_anywhere() -> None:
    words = "lorem ipsum " * 1000
    parts = plain_parts(words)
    assert all(utf16_len(p) <= PART_LIMIT for p in parts)
    assert " ".join(parts).split() == words.split()
    emoji = "😀" * 3000  # 6,000 UTF-16 units, no space to cut at
    parts = plain_parts(emoji)
    assert [utf16_len(p) for p in parts] == [4000, 2000]
    assert "".join(parts) == emoji


def test_rendered_parts_resplits_with_entities() -> None:
    rendered = render(_code_answer(3_000, language="js"))
    parts = rendered_parts(rendered, limit=1000)
    assert len(parts) > 2
    for part in parts:
        _assert_valid(part, 1000)
        assert all(e.language == "js" for e in part.entities if e.type == "pre")
    assert _squash("".join(p.text for p in parts)) == _squash(rendered.text)


# Markdown-ish tokens, so that fences, emphasis, lists and tables occur, closed or not.
_MARKDOWN = st.lists(
    st.sampled_from(
        [
            *list("ab  \n\n*_`~#>-|[]()!<&;:.1\\="),
            "```",
            "```py\n",
            "**",
            "||",
            "- ",
            "1. ",
            "😀",
            "é",
            "\t",
            "$",
            "word ",
        ]
    ),
    max_size=300,
).map("".join)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(markdown=_MARKDOWN, limit=st.integers(min_value=8, max_value=300))
def test_any_markdown_renders_to_valid_parts(markdown: str, limit: int) -> None:
    parts = render_parts(markdown, limit=limit)
    for part in parts:
        _assert_valid(part, limit)
    whole = render(markdown)
    assert _squash("".join(p.text for p in parts)) == _squash(whole.text)


@settings(max_examples=200, deadline=None)
@given(
    text=st.text(alphabet=st.sampled_from(list("ab <>&;#/=\"'\n*_x")), max_size=200),
)
def test_angle_brackets_and_ampersands_always_literal(text: str) -> None:
    rendered = render(text).text
    for char in "<&":
        assert rendered.count(char) == text.count(char)


@settings(max_examples=100, deadline=None)
@given(
    language=st.sampled_from(["python", "c++", "js", "sql"]),
    lines=st.lists(st.text(alphabet="ab <>&{}();=\t", max_size=60), min_size=1, max_size=80),
    limit=st.integers(min_value=40, max_value=500),
)
def test_code_block_language_survives_every_split(
    language: str, lines: list[str], limit: int
) -> None:
    md = f"Intro text.\n\n```{language}\n" + "\n".join(lines) + "\n```\n\nOutro."
    for part in render_parts(md, limit=limit):
        _assert_valid(part, limit)
        for entity in part.entities:
            assert entity.type == "pre"
            assert entity.language == language
