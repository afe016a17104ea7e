"""How an answer ended, and what the user sees and the history keeps for each ending.

One table, not branches: `ENDINGS` gives each outcome its note and whether the turn is
stored; `ERROR_NOTES` gives each upstream failure its note.
"""

from __future__ import annotations

from dataclasses import dataclass

from bot.llm import ErrorKind
from bot.turns.types import Outcome

__all__ = ["ENDINGS", "ERROR_NOTES", "Ending", "decide"]


@dataclass(frozen=True, slots=True)
class Ending:
    # text key of the line shown under the answer (None: nothing, or the error's note)
    note: str | None
    # the question and answer join the history sent back to the model next time
    stored: bool


ENDINGS: dict[Outcome, Ending] = {
    Outcome.COMPLETED: Ending(None, stored=True),
    # what the user saw is what the model will be told it said
    Outcome.STOPPED: Ending("stopped", stored=True),
    # a fragment presented as whole would come back as context: never stored
    Outcome.INTERRUPTED: Ending("interrupted", stored=False),
    Outcome.FAILED: Ending(None, stored=False),
    # a filtered exchange stays out of later context (it would be refused again)
    Outcome.FILTERED: Ending("filtered", stored=False),
    Outcome.SKIPPED: Ending("dropped_by_stop", stored=False),
}

ERROR_NOTES: dict[ErrorKind, str] = {
    ErrorKind.RATE_LIMITED: "busy_retry",
    ErrorKind.OVERLOADED: "busy_retry",
    ErrorKind.SERVER: "upstream_error",
    ErrorKind.NETWORK: "upstream_error",
    ErrorKind.UNKNOWN: "upstream_error",
    ErrorKind.TIMEOUT: "timeout",
    ErrorKind.STALLED: "timeout",
    ErrorKind.PROMPT_TOO_LONG: "prompt_too_long",
    ErrorKind.FILTERED: "filtered",
    ErrorKind.NO_BALANCE: "service_unavailable",
    ErrorKind.AUTH: "service_unavailable",
    ErrorKind.BAD_REQUEST: "bad_request",
    ErrorKind.UNAVAILABLE: "temporarily_unavailable",
}

# Stored for an answer stopped before any text arrived, so that the history keeps
# alternating user and assistant turns.
STOPPED_EMPTY = "(stopped before answering)"


def decide(*, stopped: bool, failed: bool, text: str, finish_reason: str | None) -> Outcome:
    """The outcome of a streamed answer."""
    if stopped:
        return Outcome.STOPPED
    if failed:
        return Outcome.INTERRUPTED if text else Outcome.FAILED
    if finish_reason == "sensitive":
        return Outcome.FILTERED
    return Outcome.COMPLETED
