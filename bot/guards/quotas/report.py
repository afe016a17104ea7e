"""The words of limits and /usage: refusals with their reset time, usage summaries."""

from __future__ import annotations

import math

from bot.guards.quotas.base import Refusal, Totals
from bot.guards.quotas.service import BotReport, UsageReport
from bot.texts import count, text

__all__ = ["describe_refusal", "format_wait", "render_bot_report", "render_user_report"]


def format_wait(seconds: float, language: str | None) -> str:
    """A short duration, rounded up: "42 s", "3 min", "5 h 12 min"."""
    whole = max(1, math.ceil(seconds))
    if whole < 60:
        return text("duration_seconds", language, n=str(whole))
    minutes = math.ceil(whole / 60)
    if minutes < 60:
        return text("duration_minutes", language, n=str(minutes))
    hours, minutes = divmod(minutes, 60)
    return text("duration_hours", language, h=str(hours), m=str(minutes))


def describe_refusal(refusal: Refusal, language: str | None) -> str:
    return text(
        f"limit_{refusal.reason.value}",
        language,
        limit=f"{refusal.limit:,}",
        wait=format_wait(refusal.retry_after, language),
    )


def _cost(totals: Totals) -> str:
    return f"{totals.cost:.4f}"


def _summary(totals: Totals, language: str | None) -> str:
    if not totals.requests and not totals.tokens:
        return text("usage_nothing", language)
    return text(
        "usage_summary_reasoning" if totals.reasoning else "usage_summary",
        language,
        tokens=count("tokens", totals.tokens, language),
        prompt=f"{totals.prompt:,}",
        completion=f"{totals.completion:,}",
        reasoning=f"{totals.reasoning:,}",
        requests=count("requests", totals.requests, language),
        cost=_cost(totals),
    )


def _section(
    title: str,
    today: Totals,
    month: Totals,
    quota: int,
    resets_in: float,
    language: str | None,
) -> list[str]:
    lines = [
        text(title, language),
        text("usage_today", language, summary=_summary(today, language)),
        text("usage_month", language, summary=_summary(month, language)),
    ]
    if quota:
        lines.append(
            text(
                "usage_quota",
                language,
                spent=f"{min(today.tokens, quota):,}",
                limit=f"{quota:,}",
                wait=format_wait(resets_in, language),
            )
        )
    return lines


def render_user_report(report: UsageReport, language: str | None) -> str:
    limits = report.limits
    lines = _section(
        "usage_you",
        report.today,
        report.month,
        limits.user_daily_tokens,
        report.resets_in,
        language,
    )
    if report.by_model:
        lines.append(text("usage_models", language))
        pictures = report.picture_models
        lines += [_row(name, totals, language, pictures) for name, totals in report.by_model]
    if report.chat_today is not None and report.chat_month is not None:
        lines.append("")
        lines += _section(
            "usage_chat",
            report.chat_today,
            report.chat_month,
            limits.chat_daily_tokens,
            report.resets_in,
            language,
        )
    return "\n".join(lines)


def _row(
    name: str, totals: Totals, language: str | None, pictures: frozenset[str] = frozenset()
) -> str:
    # an image model is counted per picture (each one request), not in tokens
    if name in pictures:
        amount = count("pictures", totals.requests, language)
    else:
        amount = count("tokens", totals.tokens, language)
    return text("usage_row", language, name=name, tokens=amount, cost=_cost(totals))


def render_bot_report(report: BotReport, language: str | None) -> str:
    lines = [
        text("usage_bot", language),
        text("usage_today", language, summary=_summary(report.today, language)),
        text("usage_month", language, summary=_summary(report.month, language)),
    ]
    if report.models:
        lines += ["", text("usage_models", language)]
        pictures = report.picture_models
        lines += [_row(name, totals, language, pictures) for name, totals in report.models]
    if report.chats:
        lines += ["", text("usage_top_chats", language)]
        lines += [
            f"{rank}. {_row(str(chat), totals, language)}"
            for rank, (chat, totals) in enumerate(report.chats, start=1)
        ]
    return "\n".join(lines)
