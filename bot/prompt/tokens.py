"""Offline token estimates for GLM prompts, and calibration against GLM's exact counts.

No GLM tokenizer ships offline, so text is split into runs (CJK characters, Latin words,
numbers, symbols, whitespace) and each run is priced with Zhipu's rule of thumb:
1 token ≈ 0.75 English words ≈ 1.5 Chinese characters. The `usage.prompt_tokens` GLM
returns with every answer is exact; `TokenCalibration` learns the ratio between the two.

The estimate is monotone on prefixes (a prefix never costs more than the whole text),
which `fitting_prefix_length` relies on.
"""

from __future__ import annotations

import math
import re

__all__ = [
    "IMAGE_TOKENS",
    "MAX_TOKENS_PER_CHAR",
    "MESSAGE_OVERHEAD",
    "TokenCalibration",
    "estimate_tokens",
    "fitting_prefix_length",
    "message_tokens",
]

# Role markers and separators the chat template wraps around every message.
MESSAGE_OVERHEAD = 4
# One image in a prompt. GLM-4.1V/4.5V/4.6V read one token per 28x28 pixels (14 px
# patches merged 2x2: the GLM-4.1V image processor in Hugging Face transformers,
# models/glm4v): a 1280x960 Telegram photo is 46x35 = 1610 tokens, a 2048x1536 one 4070.
IMAGE_TOKENS = 2048
# No single character is estimated above this (a one-letter word or an emoji); callers
# use it to know the smallest budget that still fits a non-empty message.
MAX_TOKENS_PER_CHAR = 2

# Prices are kept in sixtieths of a token so that every rule is exact integer arithmetic:
# float sums could round a prefix above the whole text and break monotonicity.
_UNIT = 60
_CJK_CHAR = 40  # 1.5 characters per token
_WORD = 80  # 0.75 words per token
_ASCII_WORD_CHAR = 15  # long words split into pieces of about 4 letters
_OTHER_WORD_CHAR = 24  # Cyrillic, Greek, Arabic... split more finely (about 2.5 letters)
_DIGIT = 20  # numbers split into groups of up to 3 digits
_SYMBOL = 30  # punctuation runs: about 2 characters per token
_ASTRAL_EXTRA = 60  # emoji and other characters beyond the BMP take extra byte tokens
_NEWLINE = 60
_SPACE = 15  # a single space merges into the next word; indentation does not

_CJK = (
    "\u2e80-\u2fff"  # radicals
    "\u3000-\u303f"  # CJK punctuation
    "\u3040-\u30ff"  # hiragana, katakana
    "\u3100-\u312f\u3190-\u31ff"
    "\u3400-\u4dbf\u4e00-\u9fff"  # ideographs
    "\uac00-\ud7af"  # hangul
    "\uf900-\ufaff\ufe30-\ufe4f"
    "\uff00-\uffef"  # full-width forms
    "\U00020000-\U0003134f"
)
# Alternatives are decided by the first character only, so the runs of a prefix are the
# runs of the whole text with the last one shortened.
_RUN = re.compile(
    rf"(?P<cjk>[{_CJK}])"
    rf"|(?P<num>\d+)"
    rf"|(?P<word>[^\W\d{_CJK}]+)"
    rf"|(?P<space>\s+)"
    rf"|(?P<symbol>[^\w\s{_CJK}]+)"
)


def _run_cost(kind: str | None, run: str) -> int:
    n = len(run)
    if kind == "cjk":
        return _CJK_CHAR * n
    if kind == "word":
        per_char = _ASCII_WORD_CHAR if run.isascii() else _OTHER_WORD_CHAR
        return max(_WORD, per_char * n)
    if kind == "num":
        return max(_UNIT, _DIGIT * n)
    if kind == "space":
        return (_NEWLINE if "\n" in run else 0) + _SPACE * (n - 1)
    # symbols
    astral = sum(1 for ch in run if ord(ch) > 0xFFFF)
    return max(_UNIT, _SYMBOL * n) + _ASTRAL_EXTRA * astral


def estimate_tokens(text: str) -> int:
    """Estimated GLM tokens of `text` alone: 0 for "", at least 1 for any other text."""
    if not text:
        return 0
    units = sum(_run_cost(m.lastgroup, m.group()) for m in _RUN.finditer(text))
    return max(1, -(-units // _UNIT))


def fitting_prefix_length(text: str, max_tokens: int) -> int:
    """Length of the longest prefix of `text` estimated at most `max_tokens`.

    One pass that stops where the budget runs out, so cutting a huge text costs about as
    much as estimating the part that is kept.
    """
    if max_tokens <= 0:
        return 0
    limit = max_tokens * _UNIT
    used = 0
    for match in _RUN.finditer(text):
        kind, run = match.lastgroup, match.group()
        cost = _run_cost(kind, run)
        if used + cost <= limit:
            used += cost
            continue
        # the budget runs out inside this run; a run's cost grows with its length
        fits, over = 0, len(run)
        while over - fits > 1:
            mid = (fits + over) // 2
            if used + _run_cost(kind, run[:mid]) <= limit:
                fits = mid
            else:
                over = mid
        return match.start() + fits
    return len(text)


def message_tokens(text: str) -> int:
    """Estimated tokens of one chat message with `text` as content, role markers included."""
    return estimate_tokens(text) + MESSAGE_OVERHEAD


class TokenCalibration:
    """Learns how far estimates are off from GLM's exact `usage.prompt_tokens`.

    The ratio actual/estimated starts at 1.0, follows an exponential moving average of
    observations and stays within [min_ratio, max_ratio] so that one odd answer (or a
    usage figure that includes tool output) cannot wreck trimming. Not thread-safe: use
    it from the event loop only.
    """

    __slots__ = ("_alpha", "_max", "_min", "_ratio")

    def __init__(
        self,
        *,
        ratio: float = 1.0,
        alpha: float = 0.2,
        min_ratio: float = 0.5,
        max_ratio: float = 3.0,
    ) -> None:
        if not 0 < min_ratio <= max_ratio:
            raise ValueError("need 0 < min_ratio <= max_ratio")
        if not 0 < alpha <= 1:
            raise ValueError("alpha must be in (0, 1]")
        self._alpha = alpha
        self._min = min_ratio
        self._max = max_ratio
        self._ratio = self._clamp(ratio)

    @property
    def ratio(self) -> float:
        """Current estimate of actual tokens per estimated token."""
        return self._ratio

    def _clamp(self, value: float) -> float:
        return min(self._max, max(self._min, value))

    def observe(self, estimated: int, actual: int) -> None:
        """Fold one prompt's (estimated, actual) pair into the ratio; ignores non-positive input."""
        if estimated <= 0 or actual <= 0:
            return
        sample = self._clamp(actual / estimated)
        self._ratio = self._clamp(self._ratio + self._alpha * (sample - self._ratio))

    def scale(self, estimated: int) -> int:
        """Expected real tokens for an estimate (rounded up: better to overestimate)."""
        if estimated <= 0:
            return 0
        return math.ceil(estimated * self._ratio)

    def unscale(self, budget: int) -> int:
        """The estimated-token budget that is expected to cost at most `budget` real tokens."""
        if budget <= 0:
            return 0
        return math.floor(budget / self._ratio)
