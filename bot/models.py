"""Which model answers a turn, and the limits that come with it.

A chat may choose its model (`bot.preferences`); everything that depends on the model
(prompt budget, answer limit, thinking options, price) is resolved per turn from here,
never fixed at start. The catalog itself is configuration (`[models.*]` in
settings.toml, read by `bot.config.models`).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Literal

__all__ = [
    "CHAT_KINDS",
    "Capabilities",
    "Kind",
    "ModelCatalog",
    "ModelSpec",
    "Prices",
    "Thinking",
]

# What a model is for: chat and vision models answer through chat completions with no
# extra parameters; role-play models answer through a persona preset that gives them a
# character (`bot.roleplay`), and image and speech models have APIs of their own.
Kind = Literal["chat", "vision", "image", "speech", "roleplay"]
CHAT_KINDS: frozenset[Kind] = frozenset({"chat", "vision"})
# "optional": the request may turn thinking on or off; "always": it cannot be turned off
Thinking = Literal["no", "optional", "always"]


@dataclass(frozen=True, slots=True)
class Capabilities:
    thinking: Thinking = "no"
    # takes images in the messages
    images_in: bool = False
    # function calling
    tools: bool = False
    # GLM's built-in web_search tool
    web_search: bool = False
    # takes `reasoning_effort`
    reasoning_effort: bool = False


@dataclass(frozen=True, slots=True)
class Prices:
    """In CNY: tokens per million, images each, audio per minute."""

    input: float = 0.0
    output: float = 0.0
    image: float = 0.0
    minute: float = 0.0

    def cost_micros(self, prompt_tokens: int, completion_tokens: int) -> int:
        """The cost of tokens in millionths of a CNY (per million x tokens = millionths)."""
        return round(self.input * prompt_tokens + self.output * completion_tokens)


@dataclass(frozen=True, slots=True)
class ModelSpec:
    name: str
    # tokens the model reads and writes in one request
    context_window: int
    # longest answer, in tokens (reasoning included, for models that think)
    max_tokens: int
    # most prompt tokens a request may carry (an operator's cap); None: the window less
    # the answer limit
    prompt_cap: int | None = None
    temperature: float = 0.7
    kind: Kind = "chat"
    capabilities: Capabilities = field(default_factory=Capabilities)
    prices: Prices = field(default_factory=Prices)
    # no longer on Zhipu's list: still answers where it is configured, never offered
    legacy: bool = False

    @property
    def prompt_budget(self) -> int:
        """The most tokens the prompt of one request may take."""
        room = self.context_window - self.max_tokens
        return room if self.prompt_cap is None else min(room, self.prompt_cap)

    @property
    def chats(self) -> bool:
        """Whether it can answer a chat's turns."""
        return self.kind in CHAT_KINDS


class ModelCatalog:
    """Every configured model; the chat models a chat may choose from, and the default."""

    def __init__(self, models: Iterable[ModelSpec], default: str) -> None:
        self._models: Mapping[str, ModelSpec] = {model.name: model for model in models}
        self._chat: Mapping[str, ModelSpec] = {
            name: model for name, model in self._models.items() if model.chats
        }
        if default not in self._chat:
            raise ValueError(f"the default model {default!r} is not a chat model of the catalog")
        self.default = self._chat[default]

    def __contains__(self, name: object) -> bool:
        return name in self._models

    def __iter__(self) -> Iterator[ModelSpec]:
        return iter(self._models.values())

    def get(self, name: str) -> ModelSpec | None:
        return self._models.get(name)

    def chat_models(self) -> list[ModelSpec]:
        """What /model offers, in catalog order."""
        return [model for model in self._chat.values() if not model.legacy]

    def for_chat(self, chosen: str | None) -> ModelSpec:
        """The chat's chosen model, or the default one (also for a model no longer
        offered)."""
        if chosen is None:
            return self.default
        return self._chat.get(chosen, self.default)

    def vision_model(self) -> ModelSpec | None:
        """The chat model that answers turns with images when the chat's own cannot see:
        the first offered one that takes images (None when the catalog has none)."""
        return next((m for m in self.chat_models() if m.capabilities.images_in), None)

    def for_turn(
        self, chosen: str | None, *, search: bool = False, images: bool = False
    ) -> ModelSpec:
        """The model that answers a turn: the chat's, unless the turn needs what it lacks,
        then another for this turn only: the vision model for a turn with images (seeing
        comes first), else the first chat model with web search for a searching one."""
        model = self.for_chat(chosen)
        if images and not model.capabilities.images_in:
            return self.vision_model() or model
        if not search or model.capabilities.web_search:
            return model
        searching = (m for m in self.chat_models() if m.capabilities.web_search)
        return next(searching, model)

    @property
    def largest_prompt_budget(self) -> int:
        """What a context read must cover before the chat's model is known."""
        return max(model.prompt_budget for model in self._chat.values())
