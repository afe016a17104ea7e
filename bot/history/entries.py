"""How a message is written into one Redis list entry, and read back.

An entry is ``<tokens>\\t<code>\\t<body>``: the first two fields hold no tab, so a Lua
script can read the token count with an anchored pattern without decoding the rest.
The code names the role and the format version:

- ``u`` / ``a`` (version 1): the body is the message text.
- ``u2`` / ``a2`` (version 2, written now): the body is a JSON list of parts,
  ``{"text": ...}`` or ``{"image": <reference>, "mime": ...}``.

Entries of every version still load.
"""

from __future__ import annotations

import json
from typing import Any

from bot.messages import ImagePart, Message, Part, Role, TextPart

__all__ = ["as_text", "decode_entry", "encode_entry"]

_V1: dict[str, Role] = {"u": "user", "a": "assistant"}
_V2: dict[str, Role] = {"u2": "user", "a2": "assistant"}
_CODES: dict[Role, str] = {role: code for code, role in _V2.items()}


def as_text(value: bytes | str) -> str:
    # the store works with clients built with or without decode_responses
    return value.decode() if isinstance(value, bytes) else value


def _encode_part(part: Part) -> dict[str, str]:
    if isinstance(part, TextPart):
        return {"text": part.text}
    return {"image": part.ref, "mime": part.mime}


def _decode_part(data: dict[str, Any]) -> Part:
    if "image" in data:
        return ImagePart(str(data["image"]), str(data.get("mime", "image/jpeg")))
    return TextPart(str(data["text"]))


def encode_entry(message: Message) -> str:
    parts = [_encode_part(part) for part in message.parts]
    body = json.dumps(parts, ensure_ascii=False, separators=(",", ":"))
    return f"{message.tokens}\t{_CODES[message.role]}\t{body}"


def decode_entry(entry: bytes | str) -> Message:
    tokens, code, body = as_text(entry).split("\t", 2)
    if code in _V1:
        return Message(_V1[code], (TextPart(body),), int(tokens))
    parts = tuple(_decode_part(part) for part in json.loads(body))
    return Message(_V2[code], parts, int(tokens))
