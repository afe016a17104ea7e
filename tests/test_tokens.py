"""Token estimates and their calibration against GLM's exact usage."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.prompt.tokens import (
    MAX_TOKENS_PER_CHAR,
    MESSAGE_OVERHEAD,
    TokenCalibration,
    estimate_tokens,
    fitting_prefix_length,
    message_tokens,
)


def test_empty_text_costs_nothing() -> None:
    assert estimate_tokens("") == 0
    assert message_tokens("") == MESSAGE_OVERHEAD


@pytest.mark.parametrize("text", [" ", "\n", ".", "a", "中", "7", "😀", "\t\t"])
def test_any_non_empty_text_costs_at_least_one(text: str) -> None:
    assert estimate_tokens(text) >= 1


def test_english_follows_words_per_token() -> None:
    words = "the quick brown fox jumps over the lazy dog " * 30  # 270 words
    # 0.75 words per token -> 360 tokens
    assert 330 <= estimate_tokens(words) <= 400


def test_chinese_follows_characters_per_token() -> None:
    text = "我们今天讨论自然语言处理的基本方法" * 20  # 340 characters
    # 1.5 characters per token -> about 227 tokens
    assert 210 <= estimate_tokens(text) <= 245


def test_mixed_text_adds_both_scripts() -> None:
    english = "Please translate this sentence"
    chinese = "请把这句话翻译成中文"
    mixed = estimate_tokens(f"{english}{chinese}")
    assert mixed == pytest.approx(estimate_tokens(english) + estimate_tokens(chinese), abs=1)


def test_chinese_is_denser_than_its_length_in_latin_letters() -> None:
    # a Chinese character carries about a word's meaning, a Latin letter does not
    assert estimate_tokens("中" * 30) < estimate_tokens(" ".join("a" * 30))


def test_long_words_and_numbers_cost_more_than_short_ones() -> None:
    assert estimate_tokens("internationalisation") > estimate_tokens("cat")
    assert estimate_tokens("3141592653589793") > estimate_tokens("31")


def test_message_tokens_adds_the_overhead() -> None:
    assert message_tokens("hello world") == estimate_tokens("hello world") + MESSAGE_OVERHEAD


@given(st.text())
def test_a_prefix_never_costs_more_than_the_text(text: str) -> None:
    costs = [estimate_tokens(text[:n]) for n in range(len(text) + 1)]
    assert costs == sorted(costs)


@given(st.characters(codec="utf-8"))
def test_no_single_character_costs_more_than_the_documented_maximum(ch: str) -> None:
    assert 1 <= estimate_tokens(ch) <= MAX_TOKENS_PER_CHAR


@given(st.text(), st.text())
def test_concatenation_costs_about_the_sum(a: str, b: str) -> None:
    # a run may merge across the seam, which changes the cost by a few tokens at most
    assert abs(estimate_tokens(a + b) - estimate_tokens(a) - estimate_tokens(b)) <= 3


@given(st.text(max_size=300), st.integers(min_value=-2, max_value=120))
def test_fitting_prefix_length_is_the_longest_prefix_within_the_limit(
    text: str, limit: int
) -> None:
    expected = max(n for n in range(len(text) + 1) if estimate_tokens(text[:n]) <= max(limit, 0))
    assert fitting_prefix_length(text, limit) == expected


def test_fitting_prefix_length_cuts_inside_a_long_run() -> None:
    word = "a" * 400  # 100 tokens as one long word
    assert fitting_prefix_length(word, 10) == 40
    assert fitting_prefix_length("一二三四五六", 2) == 3


def test_calibration_starts_neutral() -> None:
    calibration = TokenCalibration()
    assert calibration.ratio == 1.0
    assert calibration.scale(100) == 100
    assert calibration.unscale(100) == 100


def test_calibration_converges_to_the_observed_ratio() -> None:
    calibration = TokenCalibration()
    for _ in range(60):
        calibration.observe(1000, 1300)
    assert calibration.ratio == pytest.approx(1.3, abs=1e-3)
    assert calibration.scale(1000) == pytest.approx(1300, abs=2)
    assert calibration.unscale(1300) == pytest.approx(1000, abs=2)


def test_calibration_moves_gradually() -> None:
    calibration = TokenCalibration(alpha=0.2)
    calibration.observe(100, 200)
    assert calibration.ratio == pytest.approx(1.2)


@pytest.mark.parametrize(("actual", "bound"), [(100_000, 3.0), (1, 0.5)])
def test_calibration_clamps(actual: int, bound: float) -> None:
    calibration = TokenCalibration(min_ratio=0.5, max_ratio=3.0)
    for _ in range(100):
        calibration.observe(100, actual)
    assert calibration.ratio == pytest.approx(bound)


def test_calibration_ignores_meaningless_observations() -> None:
    calibration = TokenCalibration()
    calibration.observe(0, 500)
    calibration.observe(500, 0)
    calibration.observe(-1, 10)
    assert calibration.ratio == 1.0


def test_scale_rounds_up_and_unscale_rounds_down() -> None:
    calibration = TokenCalibration(ratio=1.5)
    assert calibration.scale(3) == 5  # 4.5: better to overestimate what a prompt costs
    assert calibration.unscale(5) == 3  # 3.33: and to underestimate what fits
    assert calibration.scale(0) == 0
    assert calibration.unscale(-10) == 0


@given(st.floats(min_value=0.5, max_value=3.0), st.integers(min_value=0, max_value=10**6))
def test_an_unscaled_budget_scales_back_within_it(ratio: float, budget: int) -> None:
    calibration = TokenCalibration(ratio=ratio)
    assert calibration.scale(calibration.unscale(budget)) <= budget + 1


def test_calibration_rejects_bad_parameters() -> None:
    with pytest.raises(ValueError, match="ratio"):
        TokenCalibration(min_ratio=2.0, max_ratio=1.0)
    with pytest.raises(ValueError, match="alpha"):
        TokenCalibration(alpha=0)
