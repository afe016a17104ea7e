"""What glmbot asks of GLM (``GLMOptions``) and the SDK call that asks it.

Everything that knows the names of the SDK's ``create()`` arguments lives here, so that
a move to the successor SDK (zai-sdk) changes this package alone.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = ["GLMOptions", "Messages", "build_request"]

# A message's content is a string or a list of parts ({"type": "text", "text": ...},
# {"type": "image_url", "image_url": {"url": ...}}).
Messages = Sequence[Mapping[str, Any]]

# The built-in search tool, asking for the sources (the top-level ``web_search`` list).
_WEB_SEARCH_TOOL = {
    "type": "web_search",
    "web_search": {"enable": True, "search_engine": "search_std", "search_result": True},
}


@dataclass(frozen=True)
class GLMOptions:
    """The options of one request; the defaults of the optional ones send nothing."""

    model: str
    max_tokens: int
    temperature: float
    # Sent only when Zhipu would accept it (6 to 128 characters).
    user_id: str | None = None
    # None: the model's default; True / False: thinking {"type": "enabled" / "disabled"}.
    thinking: bool | None = None
    # "none" ... "max" (glm-5.2 on); None sends nothing.
    reasoning_effort: str | None = None
    # Sent inside thinking, so only with thinking=True. False obliges the caller to send
    # every earlier reasoning back unchanged.
    clear_thinking: bool | None = None
    # The built-in web search tool, with sources.
    web_search: bool = False
    # Role-play models (charglm, emohaa): the character and the user, as Zhipu requires
    # them (bot_name, bot_info, user_name, user_info).
    meta: Mapping[str, str] | None = None


def build_request(messages: Messages, options: GLMOptions) -> dict[str, Any]:
    """The keyword arguments of the SDK's ``chat.completions.create()`` for a stream."""
    request: dict[str, Any] = {
        "model": options.model,
        "messages": [_copy_message(message) for message in messages],
        "stream": True,
        "max_tokens": options.max_tokens,
        "temperature": options.temperature,
    }
    if options.user_id is not None and 6 <= len(options.user_id) <= 128:
        request["user_id"] = options.user_id
    if options.meta is not None:
        request["meta"] = dict(options.meta)
    if options.web_search:
        request["tools"] = [copy.deepcopy(_WEB_SEARCH_TOOL)]
    # zhipuai 2.1.5 has no argument for these; extra_body is merged into the JSON body
    # (shallowly: a "thinking" there replaces the argument's, so it carries the type too).
    extra: dict[str, Any] = {}
    if options.thinking is not None:
        thinking: dict[str, Any] = {"type": "enabled" if options.thinking else "disabled"}
        if options.thinking and options.clear_thinking is not None:
            thinking["clear_thinking"] = options.clear_thinking
            extra["thinking"] = thinking
        else:
            request["thinking"] = thinking
    if options.reasoning_effort is not None:
        extra["reasoning_effort"] = options.reasoning_effort
    if extra:
        request["extra_body"] = extra
    return request


def _copy_message(message: Mapping[str, Any]) -> dict[str, Any]:
    """A copy the SDK may rewrite in place (it strips ``data:image/...;base64,`` prefixes
    inside image parts), so the caller's messages stay as they were."""
    copied = dict(message)
    content = copied.get("content")
    if isinstance(content, list):
        copied["content"] = copy.deepcopy(content)
    return copied
