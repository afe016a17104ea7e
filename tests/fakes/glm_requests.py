"""What the fake GLM checks and reads in a request body, the way Zhipu would."""

from __future__ import annotations

from typing import Any

__all__ = ["text_of", "validate_body"]

_VALID_ROLES = frozenset({"system", "user", "assistant", "tool"})
_TOOL_TYPES = frozenset({"function", "web_search", "retrieval", "mcp"})
_EFFORTS = frozenset({"none", "minimal", "low", "medium", "high", "xhigh", "max"})
# Role-play models refuse a request without the character and the user (glm-api.md).
_ROLEPLAY_MODELS = ("charglm", "emohaa")
_META_FIELDS = ("user_info", "bot_info", "bot_name", "user_name")


def validate_body(body: Any) -> str | None:
    """Why Zhipu would reject this request body as invalid messages, or None."""
    if not isinstance(body, dict):
        return "body is not a JSON object"
    model = body.get("model")
    if not isinstance(model, str) or not model:
        return "model missing or empty"
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "messages must be a non-empty list"
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            return f"messages[{i}] is not an object"
        role = message.get("role")
        if role not in _VALID_ROLES:
            return f"messages[{i}].role is {role!r}"
        content = message.get("content")
        if not isinstance(content, str | list):
            return f"messages[{i}].content is {type(content).__name__}"
        if isinstance(content, list) and (problem := _parts_problem(content)):
            return f"messages[{i}].content{problem}"
        if role == "system" and i != 0:
            return f"messages[{i}] is a system message after index 0"
    if all(m.get("role") == "system" for m in messages):
        return "messages hold only a system message"
    if model.startswith(_ROLEPLAY_MODELS) and (problem := _meta_problem(body.get("meta"))):
        return problem
    return _options_problem(body)


def _meta_problem(meta: Any) -> str | None:
    if not isinstance(meta, dict):
        return "a role-play model needs meta"
    missing = [
        name for name in _META_FIELDS if not isinstance(meta.get(name), str) or not meta[name]
    ]
    return f"meta lacks {', '.join(missing)}" if missing else None


def _parts_problem(parts: list[Any]) -> str | None:
    if not parts:
        return " is an empty list"
    for j, part in enumerate(parts):
        kind = part.get("type") if isinstance(part, dict) else None
        if kind == "text" and isinstance(part.get("text"), str):
            continue
        image = part.get("image_url") if kind == "image_url" else None
        url = image.get("url") if isinstance(image, dict) else None
        if not isinstance(url, str) or not url:
            return f"[{j}] is not a text or image_url part"
    return None


def _options_problem(body: dict[str, Any]) -> str | None:
    """Why Zhipu would reject the thinking, reasoning_effort or tools of this body."""
    thinking = body.get("thinking")
    if thinking is not None and (
        not isinstance(thinking, dict)
        or thinking.get("type") not in ("enabled", "disabled")
        or not isinstance(thinking.get("clear_thinking", True), bool)
    ):
        return f"thinking is {thinking!r}"
    effort = body.get("reasoning_effort")
    if effort is not None and effort not in _EFFORTS:
        return f"reasoning_effort is {effort!r}"
    tools = body.get("tools")
    if tools is None:
        return None
    if not isinstance(tools, list):
        return "tools is not a list"
    for k, tool in enumerate(tools):
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind not in _TOOL_TYPES or not isinstance(tool.get(kind), dict):
            return f"tools[{k}] is not a known tool"
    return None


def text_of(content: Any) -> str | None:
    """The text of a message's content, a string or a list of parts."""
    if isinstance(content, list):
        texts = [p["text"] for p in content if isinstance(p, dict) and p.get("type") == "text"]
        return "".join(t for t in texts if isinstance(t, str))
    return content if isinstance(content, str) else None
