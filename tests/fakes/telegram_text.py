"""Message text handling of the fake Telegram: HTML parse mode, entity checks, trimming.

The HTML parser follows TDLib's ``parse_html`` (what the Bot API server runs), including its
error texts, so a bot sees the same ``can't parse entities: ...`` descriptions as in production.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeGuard

MAX_TEXT_UTF16 = 4096

ENTITY_TYPES = frozenset(
    {
        "mention",
        "hashtag",
        "cashtag",
        "bot_command",
        "url",
        "email",
        "phone_number",
        "bold",
        "italic",
        "underline",
        "strikethrough",
        "spoiler",
        "blockquote",
        "expandable_blockquote",
        "code",
        "pre",
        "text_link",
        "text_mention",
        "custom_emoji",
        "date_time",
    }
)

_HTML_TAGS = frozenset(
    {
        "a",
        "b",
        "strong",
        "i",
        "em",
        "s",
        "strike",
        "del",
        "u",
        "ins",
        "tg-spoiler",
        "tg-emoji",
        "span",
        "pre",
        "code",
        "blockquote",
    }
)
_SIMPLE_TAG_TYPES = {
    "b": "bold",
    "strong": "bold",
    "i": "italic",
    "em": "italic",
    "u": "underline",
    "ins": "underline",
    "s": "strikethrough",
    "strike": "strikethrough",
    "del": "strikethrough",
    "tg-spoiler": "spoiler",
    "span": "spoiler",
}
# TDLib's is_space; NUL cannot occur in Python text coming from HTTP forms anyway.
_SPACES = frozenset(" \t\r\n\v\f")
_NAMED_ENTITIES = {"lt": "<", "gt": ">", "amp": "&", "quot": '"'}


class EntityParseError(ValueError):
    """Text Telegram would refuse with ``Bad Request: can't parse entities: <message>``."""


class UnsupportedParseModeError(ValueError):
    """A parse_mode the fake does not implement; str() is the full description."""


@dataclass(frozen=True, slots=True)
class FormattedText:
    text: str
    entities: list[dict[str, Any]]


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit of Telegram's limits and entity offsets."""
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le")) // 2


def _byte_offset(src: str, index: int) -> int:
    # TDLib reports positions as UTF-8 byte offsets into the original text.
    return len(src[:index].encode("utf-8", "surrogatepass"))


def _decode_entity(src: str, pos: int) -> tuple[str, int] | None:
    """TDLib's decode_html_entity: numeric references and four names, ';' optional."""
    n = len(src)
    end = pos + 1
    if end < n and src[end] == "#":
        end += 1
        value = 0
        if end < n and src[end] == "x":
            end += 1
            while end < n and src[end] in "0123456789abcdefABCDEF":
                value = value * 16 + int(src[end], 16)
                end += 1
                if value >= 0x10FFFF:
                    return None
        else:
            while end < n and src[end].isdigit() and src[end].isascii():
                value = value * 10 + int(src[end])
                end += 1
                if value >= 0x10FFFF:
                    return None
        if value == 0 or end - pos >= 10 or 0xD800 <= value <= 0xDFFF:
            return None
        char = chr(value)
    else:
        while end < n and src[end].isascii() and src[end].isalpha():
            end += 1
        named = _NAMED_ENTITIES.get(src[pos + 1 : end])
        if named is None:
            return None
        char = named
    if end < n and src[end] == ";":
        end += 1
    return char, end


def _decode_all_entities(value: str) -> str:
    if "&" not in value:
        return value
    out: list[str] = []
    i = 0
    while i < len(value):
        if value[i] == "&" and (decoded := _decode_entity(value, i)) is not None:
            out.append(decoded[0])
            i = decoded[1]
        else:
            out.append(value[i])
            i += 1
    return "".join(out)


@dataclass(slots=True)
class _OpenTag:
    name: str
    argument: str
    expandable: bool
    utf16_offset: int
    text_index: int  # position in the output list, to recover the inner text of <a>


def parse_html(src: str) -> FormattedText:
    """Parse Telegram HTML into plain text plus entities (offsets in UTF-16 units)."""
    out: list[str] = []
    u16 = 0
    stack: list[_OpenTag] = []
    entities: list[dict[str, Any]] = []
    i, n = 0, len(src)
    while i < n:
        c = src[i]
        if c == "&" and (decoded := _decode_entity(src, i)) is not None:
            out.append(decoded[0])
            u16 += 2 if ord(decoded[0]) > 0xFFFF else 1
            i = decoded[1]
            continue
        if c != "<":
            out.append(c)
            u16 += 2 if ord(c) > 0xFFFF else 1
            i += 1
            continue
        begin = i
        i += 1
        if i >= n or src[i] != "/":
            i, tag = _parse_start_tag(src, begin)
            stack.append(_OpenTag(tag[0], tag[1], tag[2], u16, len(out)))
            continue
        if not stack:
            raise EntityParseError(f"Unexpected end tag at byte offset {_byte_offset(src, begin)}")
        i += 1
        while i < n and src[i] not in _SPACES and src[i] != ">":
            i += 1
        end_name = src[begin + 2 : i].lower()
        while i < n and src[i] in _SPACES:
            i += 1
        if i >= n or src[i] != ">":
            raise EntityParseError(f"Unclosed end tag at byte offset {_byte_offset(src, begin)}")
        i += 1
        top = stack.pop()
        if end_name and end_name != top.name:
            raise EntityParseError(
                f"Unmatched end tag at byte offset {_byte_offset(src, begin)}, "
                f'expected "</{top.name}>", found "</{end_name}>"'
            )
        if u16 > top.utf16_offset:
            _close_entity(top, u16 - top.utf16_offset, out, entities)
    if stack:
        raise EntityParseError(f'Can\'t find end tag corresponding to start tag "{stack[-1].name}"')
    for entity in entities:
        if entity["type"] == "code":
            entity.pop("language", None)
    entities.sort(key=lambda e: (e["offset"], -e["length"]))
    return FormattedText("".join(out), entities)


def _parse_start_tag(src: str, begin: int) -> tuple[int, tuple[str, str, bool]]:
    """Read ``<tag attr=...>`` starting at ``begin``; return the index after '>' and the tag."""
    n = len(src)
    i = begin + 1
    while i < n and src[i] not in _SPACES and src[i] != ">":
        i += 1
    if i >= n:
        raise EntityParseError(f"Unclosed start tag at byte offset {_byte_offset(src, begin)}")
    tag = src[begin + 1 : i].lower()
    if tag not in _HTML_TAGS:
        raise EntityParseError(
            f'Unsupported start tag "{tag}" at byte offset {_byte_offset(src, begin)}'
        )
    argument = ""
    expandable = False
    unclosed = f'Unclosed start tag "{tag}" at byte offset {_byte_offset(src, begin)}'
    while True:
        while i < n and src[i] in _SPACES:
            i += 1
        if i >= n:
            raise EntityParseError(unclosed)
        if src[i] == ">":
            break
        name_begin = i
        while i < n and src[i] not in _SPACES and src[i] not in "=>":
            i += 1
        attr = src[name_begin:i].lower()
        if not attr:
            raise EntityParseError(
                f'Empty attribute name in the tag "{tag}" at byte offset {_byte_offset(src, begin)}'
            )
        while i < n and src[i] in _SPACES:
            i += 1
        if i >= n or src[i] != "=":
            if tag == "blockquote" and attr == "expandable":
                expandable = True
                continue
            raise EntityParseError(
                f'Expected equal sign in declaration of an attribute of the tag "{tag}" '
                f"at byte offset {_byte_offset(src, begin)}"
            )
        i += 1
        while i < n and src[i] in _SPACES:
            i += 1
        if i >= n:
            raise EntityParseError(unclosed)
        if src[i] in "'\"":
            quote = src[i]
            close = src.find(quote, i + 1)
            if close < 0:
                raise EntityParseError(f"Unclosed end tag at byte offset {_byte_offset(src, i)}")
            value = _decode_all_entities(src[i + 1 : close])
            i = close + 1
        else:
            token_begin = i
            while i < n and ((src[i].isascii() and src[i].isalnum()) or src[i] in ".-"):
                i += 1
            value = src[token_begin:i].lower()
            if i < n and src[i] not in _SPACES and src[i] != ">":
                raise EntityParseError(
                    f"Unexpected end of name token at byte offset {_byte_offset(src, token_begin)}"
                )
        if tag == "a" and attr == "href":
            argument = value
        elif tag == "code" and attr == "class" and value.startswith("language-"):
            argument = value[len("language-") :]
        elif tag == "span" and attr == "class" and value.startswith("tg-"):
            argument = value[len("tg-") :]
        elif tag == "tg-emoji" and attr == "emoji-id":
            argument = value
    if tag == "span" and argument != "spoiler":
        raise EntityParseError(
            f'Tag "span" must have class "tg-spoiler" at byte offset {_byte_offset(src, begin)}'
        )
    if tag == "tg-emoji" and not (argument.isascii() and argument.isdigit()):
        raise EntityParseError("Invalid custom emoji identifier specified")
    return i + 1, (tag, argument, expandable)


def _close_entity(
    top: _OpenTag, length: int, out: list[str], entities: list[dict[str, Any]]
) -> None:
    offset = top.utf16_offset
    simple = _SIMPLE_TAG_TYPES.get(top.name)
    if simple is not None:
        entities.append({"type": simple, "offset": offset, "length": length})
    elif top.name == "blockquote":
        kind = "expandable_blockquote" if top.expandable else "blockquote"
        entities.append({"type": kind, "offset": offset, "length": length})
    elif top.name == "tg-emoji":
        entities.append(
            {
                "type": "custom_emoji",
                "offset": offset,
                "length": length,
                "custom_emoji_id": top.argument,
            }
        )
    elif top.name == "a":
        url = top.argument or "".join(out[top.text_index :])
        if url:
            entities.append({"type": "text_link", "offset": offset, "length": length, "url": url})
    elif top.name == "pre":
        last = entities[-1] if entities else None
        if (
            last is not None
            and last["type"] == "code"
            and last["offset"] == offset
            and last["length"] == length
            and last.get("language")
        ):
            last["type"] = "pre"
        else:
            entities.append({"type": "pre", "offset": offset, "length": length})
    elif top.name == "code":
        last = entities[-1] if entities else None
        if (
            last is not None
            and last["type"] == "pre"
            and last["offset"] == offset
            and last["length"] == length
        ):
            if top.argument:
                last["language"] = top.argument
        else:
            entity: dict[str, Any] = {"type": "code", "offset": offset, "length": length}
            if top.argument:
                # kept until the enclosing <pre> closes; dropped from a lone <code> later
                entity["language"] = top.argument
            entities.append(entity)


def check_entities(text: str, raw: Any) -> list[dict[str, Any]]:
    """Validate a client-supplied ``entities`` array and return normalised copies."""
    if not isinstance(raw, list):
        raise EntityParseError("entities must be an array of MessageEntity objects")
    total = utf16_len(text)
    result: list[dict[str, Any]] = []
    for index, item in enumerate(raw):
        if not isinstance(item, dict):
            raise EntityParseError(f"entity {index} is not an object")
        kind = item.get("type")
        if not isinstance(kind, str) or kind not in ENTITY_TYPES:
            raise EntityParseError(f"entity {index} has unsupported type {kind!r}")
        offset, length = item.get("offset"), item.get("length")
        if not _is_int(offset) or not _is_int(length) or offset < 0 or length < 0:
            raise EntityParseError(f"entity {index} has an invalid offset or length")
        if offset + length > total:
            raise EntityParseError(
                f"entity {index} ({kind}) at offset {offset} with length {length} ends beyond "
                f"the text, which is {total} UTF-16 code units long"
            )
        if length == 0:
            continue  # Telegram silently drops empty entities
        entity: dict[str, Any] = {"type": kind, "offset": offset, "length": length}
        if kind == "text_link":
            url = item.get("url")
            if not isinstance(url, str) or not url:
                raise EntityParseError(f"entity {index} (text_link) has no url")
            entity["url"] = url
        elif kind == "text_mention":
            user = item.get("user")
            if not isinstance(user, dict) or not _is_int(user.get("id")):
                raise EntityParseError(f"entity {index} (text_mention) has no user")
            entity["user"] = user
        elif kind == "custom_emoji":
            emoji_id = item.get("custom_emoji_id")
            if not isinstance(emoji_id, str) or not emoji_id.isdigit():
                raise EntityParseError("Invalid custom emoji identifier specified")
            entity["custom_emoji_id"] = emoji_id
        elif kind == "pre" and item.get("language") is not None:
            language = item["language"]
            if not isinstance(language, str):
                raise EntityParseError(f"entity {index} (pre) has a non-string language")
            if language:
                entity["language"] = language
        elif kind == "date_time":
            if not _is_int(item.get("unix_time")):
                raise EntityParseError(f"entity {index} (date_time) has no unix_time")
            entity["unix_time"] = item["unix_time"]
            if isinstance(item.get("date_time_format"), str):
                entity["date_time_format"] = item["date_time_format"]
        result.append(entity)
    result.sort(key=lambda e: (e["offset"], -e["length"]))
    return result


def _is_int(value: Any) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _trim(formatted: FormattedText) -> FormattedText:
    """Strip surrounding whitespace as Telegram does, clipping entities to what is left."""
    text = formatted.text
    stripped = text.strip(" \t\r\n\v\f")
    if stripped == text:
        return formatted
    # whitespace is all BMP, so code points == UTF-16 units for the cut parts
    lead = len(text) - len(text.lstrip(" \t\r\n\v\f"))
    end = utf16_len(text) - (len(text) - len(text.rstrip(" \t\r\n\v\f")))
    entities: list[dict[str, Any]] = []
    for entity in formatted.entities:
        start = max(entity["offset"], lead)
        stop = min(entity["offset"] + entity["length"], end)
        if stop > start:
            entities.append({**entity, "offset": start - lead, "length": stop - start})
    return FormattedText(stripped, entities)


def format_text(text: str, parse_mode: str | None, entities: Any) -> FormattedText:
    """Apply parse_mode (which wins over entities, as in the Bot API server) and trim.

    Raises EntityParseError or UnsupportedParseModeError; emptiness and length are the caller's
    checks because their errors differ between methods.
    """
    mode = (parse_mode or "").lower()
    if mode in ("", "none"):
        formatted = FormattedText(text, [] if entities is None else check_entities(text, entities))
    elif mode == "html":
        formatted = parse_html(text)
    elif mode in ("markdownv2", "markdown"):
        raise UnsupportedParseModeError(
            f"Bad Request: unsupported parse_mode: {parse_mode} is not implemented by the fake "
            "Telegram server (use HTML or entities)"
        )
    else:
        raise UnsupportedParseModeError("Bad Request: unsupported parse_mode")
    return _trim(formatted)
