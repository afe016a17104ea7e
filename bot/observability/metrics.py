"""Prometheus metrics of one bot process, in a registry of its own.

A registry per app (not prometheus_client's global one) lets several apps run in one
process, as the tests do. What feeds it:

- `bot.observability.dispatcher_metrics`: updates by type and outcome, unknown updates
  (dropped), Bot API calls and 429s by method;
- `bot.streaming.telegram_session.UpdateCheckingSession.on_rejected`: unreadable updates, skipped;
- `Metrics.on_answered` (the conversation's after-answer hook): answers, latencies, tokens;
- `Metrics.answer_failed` (the conversation's failed-answer hook): answers that ended in an
  unexpected exception, which no update handler waits for to count it as its error;
- `MeteredModel` around the GLM client: failed GLM requests by kind and business code;
- `Metrics.redis_error`: failed Redis commands, from the Redis client and the leases;
- `Metrics.loop_lag_monitor()`: event-loop lag (`bot.observability.loop_lag`).
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator, Callable, Mapping, Sequence
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

from bot.llm import GLMError, GLMOptions, StreamEnd, StreamEvent
from bot.observability.loop_lag import LoopLagMonitor
from bot.turns.types import AnswerResult, ChatModel, Turn

__all__ = ["MeteredModel", "Metrics"]

# Seconds: GLM's first token takes from a few hundred ms to tens of seconds when busy.
_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 40.0)
_DURATION_BUCKETS = (0.5, 1.0, 2.0, 5.0, 10.0, 20.0, 40.0, 60.0, 120.0, 300.0)
_CALL_BUCKETS = (1, 2, 3, 5, 8, 13, 21, 34, 55, 89)
_LAG_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)


class Metrics:
    """Every metric family of the bot; see the module docstring for who feeds which."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self._updates(self.registry)
        self._answers(self.registry)
        self._dependencies(self.registry)

    def _updates(self, r: CollectorRegistry) -> None:
        self.updates = Counter(
            "glmbot_updates",
            "Telegram updates, by type and outcome (handled, unhandled, error)",
            ["type", "outcome"],
            registry=r,
        )
        self.updates_unknown = Counter(
            "glmbot_updates_unknown",
            "Updates of a type this bot does not know (a newer Bot API), dropped unread",
            registry=r,
        )
        self.updates_rejected = Counter(
            "glmbot_updates_rejected",
            "Updates of a getUpdates batch that aiogram could not read, skipped (content unlogged)",
            registry=r,
        )

    def _answers(self, r: CollectorRegistry) -> None:
        self.answers = Counter(
            "glmbot_answers",
            "Finished answers, by outcome (completed, stopped, failed, filtered, skipped)",
            ["outcome"],
            registry=r,
        )
        self.answer_errors = Counter(
            "glmbot_answer_errors",
            "Answers ended by an unexpected exception (a bug; logged with its traceback)",
            registry=r,
        )
        self.answers_in_flight = Gauge(
            "glmbot_answers_in_flight", "Answers being generated now", registry=r
        )
        self.first_token = Histogram(
            "glmbot_answer_first_token_seconds",
            "From the start of an answer (its turn came) to GLM's first token",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.first_visible = Histogram(
            "glmbot_answer_first_visible_seconds",
            "From the start of an answer to the first text the user could see",
            buckets=_LATENCY_BUCKETS,
            registry=r,
        )
        self.answer_duration = Histogram(
            "glmbot_answer_duration_seconds",
            "From the start of an answer to its end, by outcome",
            ["outcome"],
            buckets=_DURATION_BUCKETS,
            registry=r,
        )
        self.answer_telegram_calls = Histogram(
            "glmbot_answer_telegram_calls",
            "Bot API calls made for one answer (typing, drafts, messages, edits)",
            buckets=_CALL_BUCKETS,
            registry=r,
        )

    def _dependencies(self, r: CollectorRegistry) -> None:
        """GLM, the Bot API, Redis and the event loop."""
        self.glm_errors = Counter(
            "glmbot_glm_errors",
            "Failed GLM requests (after retries), by kind and business code",
            ["kind", "code"],
            registry=r,
        )
        self.tokens = Counter(
            "glmbot_glm_tokens",
            "Tokens GLM reported in usage, by model and kind (prompt, completion)",
            ["model", "kind"],
            registry=r,
        )
        self.telegram_calls = Counter(
            "glmbot_telegram_calls",
            "Bot API requests, by method and result (ok, retry_after, error, network)",
            ["method", "result"],
            registry=r,
        )
        self.telegram_429 = Counter(
            "glmbot_telegram_429",
            "Bot API flood-control refusals (429 with retry_after), by method",
            ["method"],
            registry=r,
        )
        self.redis_errors = Counter(
            "glmbot_redis_errors",
            "Failed Redis operations, by command or operation",
            ["operation"],
            registry=r,
        )
        self.loop_lag = Histogram(
            "glmbot_event_loop_lag_seconds",
            "How late the event loop ran a callback scheduled at a fixed interval",
            buckets=_LAG_BUCKETS,
            registry=r,
        )

    def exposition(self) -> bytes:
        """The Prometheus text format of every family."""
        return generate_latest(self.registry)

    def track_in_flight(self, count: Callable[[], int]) -> None:
        """Read the answers-in-flight gauge from `count` at each scrape."""
        self.answers_in_flight.set_function(lambda: float(count()))

    def loop_lag_monitor(self) -> LoopLagMonitor:
        """A monitor feeding the loop-lag histogram; the runner starts and stops it."""
        return LoopLagMonitor(self.loop_lag.observe)

    def redis_error(self, operation: str) -> None:
        self.redis_errors.labels(operation).inc()

    def answer_failed(self, turn: Turn, error: Exception) -> None:
        """The conversation's failed-answer hook."""
        self.answer_errors.inc()

    async def on_answered(self, turn: Turn, result: AnswerResult) -> None:
        """The conversation's after-answer hook."""
        self.record_answer(result)

    def record_answer(self, result: AnswerResult) -> None:
        outcome = result.outcome.value
        self.answers.labels(outcome).inc()
        if result.request_sent_at is None:
            return  # skipped, or failed before GLM was asked: no latency to speak of
        start = result.started_at
        if result.first_token_at is not None:
            self.first_token.observe(result.first_token_at - start)
        first_visible = result.first_visible_at
        if first_visible is not None:
            self.first_visible.observe(max(0.0, first_visible - start))
        if result.finished_at is not None:
            self.answer_duration.labels(outcome).observe(result.finished_at - start)
        self.answer_telegram_calls.observe(result.api_calls)


class MeteredModel:
    """A `ChatModel` that counts what the model behind it reports: errors and tokens."""

    def __init__(self, model: ChatModel, metrics: Metrics) -> None:
        self._model = model
        self._metrics = metrics

    async def stream(
        self, messages: Sequence[Mapping[str, Any]], options: GLMOptions
    ) -> AsyncGenerator[StreamEvent, None]:
        try:
            async with contextlib.aclosing(self._model.stream(messages, options)) as stream:
                async for event in stream:
                    if isinstance(event, StreamEnd) and event.usage is not None:
                        tokens = self._metrics.tokens
                        tokens.labels(options.model, "prompt").inc(event.usage.prompt_tokens)
                        completion = event.usage.completion_tokens
                        tokens.labels(options.model, "completion").inc(completion)
                    yield event
        except GLMError as exc:
            self._metrics.glm_errors.labels(exc.kind.value, exc.code or "").inc()
            raise
