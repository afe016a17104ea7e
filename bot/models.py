"""Which model answers a turn, and the limits that come with it.

A chat may choose its model (`bot.preferences`); everything that depends on the model
(prompt budget, answer limit, thinking options, price) is resolved per turn from here,
never fixed at start.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

__all__ = ["ModelCatalog", "ModelSpec"]


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

    @property
    def prompt_budget(self) -> int:
        """The most tokens the prompt of one request may take."""
        room = self.context_window - self.max_tokens
        return room if self.prompt_cap is None else min(room, self.prompt_cap)


class ModelCatalog:
    """The chat models a chat may choose from, and the default one."""

    def __init__(self, models: Iterable[ModelSpec], default: str) -> None:
        self._models: Mapping[str, ModelSpec] = {model.name: model for model in models}
        if default not in self._models:
            raise ValueError(f"the default model {default!r} is not in the catalog")
        self.default = self._models[default]

    def __contains__(self, name: object) -> bool:
        return name in self._models

    def __iter__(self) -> Iterable[ModelSpec]:
        return iter(self._models.values())

    def for_chat(self, chosen: str | None) -> ModelSpec:
        """The chat's chosen model, or the default one (also for a model no longer
        offered)."""
        if chosen is None:
            return self.default
        return self._models.get(chosen, self.default)

    @property
    def largest_prompt_budget(self) -> int:
        """What a context read must cover before the chat's model is known."""
        return max(model.prompt_budget for model in self._models.values())
