"""What a turn asks of which model: chosen once its context is loaded.

The model is the chat's (`/model`), or the preset's while a role-play persona is in
force; for this turn only, a vision model when it carries images the chat's model cannot
see, or a model with web search for /search. Then the images the prompt re-attaches (the
newest, fetched again by reference), a document cut to the model's budget, the prompt
within that budget and the request options.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from bot.history import ConversationContext
from bot.llm import GLMOptions
from bot.messages import ImagePart, Message
from bot.models import ModelCatalog, ModelSpec
from bot.preferences import Preferences
from bot.prompt.build import Prompt, attachable_images, build_prompt
from bot.prompt.tokens import TokenCalibration, message_tokens
from bot.roleplay import Character
from bot.turns.inputs import fit_attachment
from bot.turns.stream import options_for
from bot.turns.types import FetchedImages, ImageProblem, ImageSource, Turn

__all__ = ["Planner", "TurnPlan"]

# What the asker is told when an image of the question cannot be seen.
_IMAGE_NOTES: Mapping[ImageProblem, str] = {
    "too_large": "file_too_large",
    "unavailable": "image_unavailable",
    "unreadable": "image_unreadable",
}


@dataclass(frozen=True, slots=True)
class TurnPlan:
    turn: Turn  # its document cut to the model's budget
    question: Message
    preferences: Preferences
    model: ModelSpec
    # base64 data of the images the prompt carries, by reference
    images: Mapping[str, str]
    options: GLMOptions
    prompt: Prompt


class Planner:
    def __init__(
        self,
        *,
        models: ModelCatalog,
        calibration: TokenCalibration,
        default_persona: str = "",
        images: ImageSource | None = None,
        history_images: int = 3,
        characters: Mapping[str, Character] | None = None,
    ) -> None:
        self._models = models
        self._calibration = calibration
        self._default_persona = default_persona
        self.default_persona_tokens = message_tokens(default_persona) if default_persona else 0
        self._images = images
        self._history_images = history_images
        # persona presets that name their model (`bot.roleplay`)
        self._characters = characters or {}

    async def plan(self, turn: Turn, context: ConversationContext) -> TurnPlan | str:
        """The turn's plan; instead, the note to show when the question's own image
        cannot be seen."""
        preferences = Preferences.parse(context.preferences)
        character = self._character(context, turn)
        seen = await self._see(turn, context, preferences, character)
        if isinstance(seen, str):
            return seen
        model, images = seen
        if turn.attachment is not None:
            turn = fit_attachment(turn, model.prompt_budget)
        question = turn.question()
        return TurnPlan(
            turn=turn,
            question=question,
            preferences=preferences,
            model=model,
            images=images,
            options=options_for(model, preferences, turn, character),
            prompt=self.prompt(context, question, model, images, shrink=1),
        )

    def prompt(
        self,
        context: ConversationContext,
        question: Message,
        model: ModelSpec,
        images: Mapping[str, str],
        *,
        shrink: int,
    ) -> Prompt:
        """The messages within the model's budget (`shrink` times smaller for a retry)."""
        if context.persona is not None:
            persona, persona_tokens = context.persona.text, context.persona.tokens
        else:
            persona, persona_tokens = self._default_persona, self.default_persona_tokens
        return build_prompt(
            persona=persona or None,
            persona_tokens=persona_tokens,
            history=context.messages,
            user=question,
            budget_tokens=self._calibration.unscale(model.prompt_budget // shrink),
            images=images,
        )

    def _character(self, context: ConversationContext, turn: Turn) -> Character | None:
        """The character of the persona's preset, if it names a model; not for a /search
        turn, which needs a model that searches."""
        preset = context.persona.preset if context.persona is not None else None
        return None if preset is None or turn.search else self._characters.get(preset)

    def _model(
        self, turn: Turn, preferences: Preferences, character: Character | None, *, images: bool
    ) -> ModelSpec:
        """The preset's model while its persona is in force (unless the turn has images it
        cannot see), else the chat's, or one that can do what the turn needs."""
        named = self._models.get(character.model) if character is not None else None
        if named is not None and (named.capabilities.images_in or not images):
            return named
        return self._models.for_turn(preferences.model, search=turn.search, images=images)

    async def _see(
        self,
        turn: Turn,
        context: ConversationContext,
        preferences: Preferences,
        character: Character | None,
    ) -> tuple[ModelSpec, Mapping[str, str]] | str:
        """The turn's model and the images (by reference) its prompt may carry; instead,
        the note to show when an image of the question itself cannot be seen."""
        question = turn.question()
        own = [part.ref for part in question.parts if isinstance(part, ImagePart)]
        if not self._models.for_turn(preferences.model, images=True).capabilities.images_in:
            if own:
                return "no_vision_model"
            return self._model(turn, preferences, character, images=False), {}
        refs = attachable_images(context.messages, question, self._history_images)
        if self._images is None:
            fetched = FetchedImages(problems=dict.fromkeys(refs, "unavailable"))
        else:
            fetched = await self._images.fetch(refs) if refs else FetchedImages()
        for ref in own:
            if ref in fetched.problems:
                return _IMAGE_NOTES[fetched.problems[ref]]
        images = bool(fetched.data)
        return self._model(turn, preferences, character, images=images), fetched.data
