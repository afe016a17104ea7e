"""GLM's Markdown as Telegram text + entities, cut into message-sized parts.

Library: telegramify-markdown 1.x (``convert(md) -> (text, entities)``), over the others
we evaluated:

- telegramify-markdown parses with pyromark (a CommonMark parser in Rust, ~3 ms for 16 kB)
  and yields plain text plus ``MessageEntity`` offsets in UTF-16 units. Sending entities
  with no ``parse_mode`` means Telegram never answers "can't parse entities" for markup,
  and entities can be clipped at any split point: a ``pre`` cut in two keeps its language
  in both halves. Unclosed constructs mid-stream degrade gracefully: an unclosed fence is
  a code block up to the end (CommonMark), an unclosed ``**`` stays literal until closed.
- chatgpt-md-converter produces Telegram HTML with regexes: splitting HTML needs a tag
  stack and any miss costs a "can't parse entities" at send time.
- sulguk converts HTML to entities, so it would still need a Markdown-to-HTML step.
- ``aiogram.utils.formatting`` builds entities from Python nodes; it parses no Markdown.

Its splitter (``split_entities``) only knows "last newline that fits", so cutting is ours:
paragraph breaks outside entities first, code blocks closed and reopened with their
language when they must be cut, never inside a surrogate pair.
"""

from __future__ import annotations

import bisect
import logging
import re
from dataclasses import dataclass

import pyromark
import telegramify_markdown
from aiogram.types import MessageEntity

logger = logging.getLogger(__name__)

# Telegram's limit for a message text, in UTF-16 units after entity parsing.
TELEGRAM_TEXT_LIMIT = 4096
# Our parts stay below it so a footer line still fits on the last one.
PART_LIMIT = 4000

# The options telegramify-markdown parses with, so our own parses read the same blocks.
PARSE_OPTIONS = (
    pyromark.Options.ENABLE_TABLES
    | pyromark.Options.ENABLE_STRIKETHROUGH
    | pyromark.Options.ENABLE_TASKLISTS
    | pyromark.Options.ENABLE_MATH
)
# Its own config, not the process-global one another module might mutate.
_CONFIG = telegramify_markdown.RenderConfig.isolated()
# Entities that may be closed at a line break and reopened on the next message.
_BLOCK_ENTITIES = frozenset({"pre", "blockquote", "expandable_blockquote"})
_WHITESPACE = " \t\r\n\v\f"
_ASTRAL = re.compile("[\U00010000-\U0010ffff]")
_HTML_SPECIAL = re.compile(rb"[<&]")
_FENCE_RUN = re.compile(rb"`{3,}|~{3,}")
# LaTeX \(...\) and \[...\] within one paragraph: the converter turns them into Unicode
# math itself, and a backslash added inside would show.
_LATEX = re.compile(rb"\\\((?:(?!\n\n).)*?\\\)|\\\[(?:(?!\n\n).)*?\\\]", re.DOTALL)
# A cut is good enough when it keeps at least this share of a message's room.
_MIN_FILL = 0.5


@dataclass(frozen=True)
class Rendered:
    """Text and entities ready for sendMessage/editMessageText (no parse_mode)."""

    text: str
    entities: list[MessageEntity]


@dataclass(frozen=True, slots=True)
class _Span:
    """An entity in Python string indices, which slicing needs."""

    kind: str
    start: int
    end: int
    url: str | None = None
    language: str | None = None


class _Utf16:
    """Python index <-> UTF-16 offset of one text (identity unless it has astral chars)."""

    def __init__(self, text: str) -> None:
        astral = [] if text.isascii() else [m.start() for m in _ASTRAL.finditer(text)]
        self._astral = astral
        # UTF-16 offset just past each astral char: a surrogate pair counts twice
        self._ends = [index + k + 2 for k, index in enumerate(astral)]

    def offset(self, index: int) -> int:
        return index + bisect.bisect_left(self._astral, index)

    def index(self, offset: int) -> int:
        """The index of a UTF-16 offset; inside a surrogate pair, the index after it."""
        return offset - bisect.bisect_right(self._ends, offset)


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit of Telegram's limits and entity offsets."""
    return int(telegramify_markdown.utf16_len(text))


def render(markdown: str) -> Rendered:
    """Convert Markdown to Telegram text + entities, surrounding whitespace stripped."""
    text, spans = _render_spans(markdown)
    start, end = _strip(text, 0, len(text))
    return _slice(text, spans, _Utf16(text), start, end)


def render_parts(markdown: str, limit: int = PART_LIMIT) -> list[Rendered]:
    """Render and cut into parts of at most ``limit`` UTF-16 units each."""
    text, spans = _render_spans(markdown)
    return _split(text, spans, limit)


def plain_parts(text: str, limit: int = PART_LIMIT) -> list[str]:
    """Cut plain text into parts of at most ``limit`` UTF-16 units, at line breaks if any."""
    return [part.text for part in _split(text, [], limit)]


def _split(text: str, spans: list[_Span], limit: int) -> list[Rendered]:
    """Cut rendered text into parts; entities crossing a cut are clipped into both sides."""
    if limit < 1:
        raise ValueError("limit must be positive")
    utf16 = _Utf16(text)
    parts: list[Rendered] = []
    start, end = _strip(text, 0, len(text))
    while start < end:
        if utf16.offset(end) - utf16.offset(start) <= limit:
            cut = end
        else:
            cut = _best_cut(text, spans, utf16, start, limit)
        part_start, part_end = _strip(text, start, cut)
        if part_start < part_end:
            parts.append(_slice(text, spans, utf16, part_start, part_end))
        start, _ = _strip(text, cut, end)
    return parts


def rendered_parts(rendered: Rendered, limit: int = PART_LIMIT) -> list[Rendered]:
    """Cut an already rendered text (e.g. with a footer appended) into parts."""
    utf16 = _Utf16(rendered.text)
    spans = [
        _Span(
            e.type,
            utf16.index(e.offset),
            utf16.index(e.offset + e.length),
            e.url,
            e.language,
        )
        for e in rendered.entities
    ]
    return _split(rendered.text, spans, limit)


def _render_spans(markdown: str) -> tuple[str, list[_Span]]:
    try:
        text, entities = telegramify_markdown.convert(_literal_html(markdown), config=_CONFIG)
    except Exception:
        # a converter bug must not cost the answer: show the Markdown as it is
        logger.exception("Markdown conversion failed; sending plain text")
        return markdown, []
    utf16 = _Utf16(text)
    spans = []
    for entity in entities:
        if entity.type == "custom_emoji":
            continue  # bots may only send custom emoji with a Fragment username
        spans.append(
            _Span(
                entity.type,
                utf16.index(entity.offset),
                utf16.index(entity.offset + entity.length),
                entity.url,
                # the language is the info string's first word ("python title=x.py")
                entity.language.split()[0] if entity.language else None,
            )
        )
    return text, spans


def _literal_html(markdown: str) -> str:
    """Backslash-escape what the converter would drop although the model meant it as text.

    - ``<`` and ``&`` outside code: the converter drops inline and block HTML and decodes
      ``&amp;``; a model writing "use <div>" or "AT&T" means the characters themselves.
    - the fence of an empty code block whose info string has several words: a line like
      "``` and then some text" would open a block and swallow the text as its info string
      (a language is one word; a multi-word info string is prose after a fence).
    """
    if not any(marker in markdown for marker in ("<", "&", "```", "~~~")):
        return markdown
    data = markdown.encode("utf-8")
    regions: list[tuple[int, int]] = []
    escapes: list[int] = []
    fence: tuple[int, bool] | None = None  # an open fenced block: its start, multi-word info
    for payload, where in pyromark.events_with_range(markdown, options=PARSE_OPTIONS):
        if not isinstance(payload, dict):
            continue
        opened = payload.get("Start")
        code = opened.get("CodeBlock") if isinstance(opened, dict) else None
        if code is not None or any(k in payload for k in ("Code", "InlineMath", "DisplayMath")):
            regions.append((where["start"], where["end"]))
        if isinstance(code, dict) and "Fenced" in code:
            fence = (where["start"], len(str(code["Fenced"]).split()) > 1)
        elif fence is not None and "Text" in payload:
            fence = None  # the block has content: a real code block
        elif fence is not None and payload.get("End") == "CodeBlock":
            if fence[1]:
                escapes += _fence_run(data, fence[0])
            fence = None
    if b"\\" in data:
        regions += [(m.start(), m.end()) for m in _LATEX.finditer(data)]
    # merged and sorted, so one bisect tells whether a byte is inside
    starts: list[int] = []
    ends: list[int] = []
    for lo, hi in sorted(regions):
        if ends and lo <= ends[-1]:
            ends[-1] = max(ends[-1], hi)
        else:
            starts.append(lo)
            ends.append(hi)
    for match in _HTML_SPECIAL.finditer(data):
        pos = match.start()
        k = bisect.bisect_right(starts, pos) - 1
        if k >= 0 and pos < ends[k]:
            continue
        backslashes = 0
        while pos - backslashes > 0 and data[pos - backslashes - 1] == 0x5C:  # "\\"
            backslashes += 1
        if not backslashes % 2:  # else already escaped
            escapes.append(pos)
    if not escapes:
        return markdown
    out = bytearray()
    last = 0
    for pos in sorted(escapes):
        out += data[last:pos] + b"\\"
        last = pos
    out += data[last:]
    return out.decode("utf-8")


def _fence_run(data: bytes, start: int) -> list[int]:
    """Where to escape the fence of the block starting at ``start``: its first character."""
    match = _FENCE_RUN.search(data, start)
    return [match.start()] if match else []


def _strip(text: str, start: int, end: int) -> tuple[int, int]:
    """Narrow [start, end) past surrounding whitespace, which Telegram trims anyway."""
    while start < end and text[start] in _WHITESPACE:
        start += 1
    while end > start and text[end - 1] in _WHITESPACE:
        end -= 1
    return start, end


def _slice(text: str, spans: list[_Span], utf16: _Utf16, start: int, end: int) -> Rendered:
    base = utf16.offset(start)
    entities = []
    for span in spans:
        lo, hi = max(span.start, start), min(span.end, end)
        if lo >= hi:
            continue
        offset = utf16.offset(lo)
        entities.append(
            MessageEntity(
                type=span.kind,
                offset=offset - base,
                length=utf16.offset(hi) - offset,
                url=span.url,
                language=span.language,
            )
        )
    return Rendered(text[start:end], entities)


def _best_cut(text: str, spans: list[_Span], utf16: _Utf16, start: int, limit: int) -> int:
    """Where the part starting at ``start`` should end (exclusive), within ``limit``."""
    stop = utf16.index(utf16.offset(start) + limit)
    if utf16.offset(stop) - utf16.offset(start) > limit:
        stop -= 1  # the budget ended inside a surrogate pair
    width = stop - start
    # coverage of every position in the window by any entity / by an inline entity
    any_cover = [0] * (width + 2)
    inline_cover = [0] * (width + 2)
    for span in spans:
        lo, hi = max(span.start, start) - start, min(span.end, stop + 1) - start
        if lo >= hi:
            continue
        any_cover[lo + 1] += 1
        any_cover[hi] -= 1
        if span.kind not in _BLOCK_ENTITIES:
            inline_cover[lo + 1] += 1
            inline_cover[hi] -= 1
    # tiers, best first: a cut at p ends the part before text[p]
    tiers: list[int | None] = [None] * 6
    inside_any = inside_inline = 0
    for i in range(1, width + 1):
        inside_any += any_cover[i]
        inside_inline += inline_cover[i]
        p = start + i
        previous = text[p - 1]
        if previous == "\n":
            if not inside_any:
                tiers[0 if p >= 2 and text[p - 2] == "\n" else 1] = p
            elif not inside_inline:
                tiers[2 if p < len(text) and text[p] not in _WHITESPACE else 3] = p
            else:
                tiers[4] = p
        elif previous in _WHITESPACE:
            tiers[5] = p
    min_fill = limit * _MIN_FILL
    found = [p for p in tiers if p is not None]
    for p in found:
        if utf16.offset(p) - utf16.offset(start) >= min_fill:
            return p
    best = max(found, default=stop)
    return best if best > start else max(stop, start + 1)
