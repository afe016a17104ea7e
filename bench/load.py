"""One load run: start the fakes and the bot, push the questions, wait, measure."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from bench import analysis
from bench.metrics_scrape import LoopLagProbe
from bench.procs import Services, cpu_seconds, system_busy_seconds
from bench.redis_probe import RedisProbe
from bench.stack import Chat, Stack, StackConfig
from bot.config import StreamSettings

# Bot API methods an answer does not cause (polling, start-up).
_HOUSEKEEPING = frozenset(
    {"getUpdates", "getMe", "setMyCommands", "deleteMyCommands", "deleteWebhook", "getMyCommands"}
)


async def run_load(
    services: Services,
    redis: tuple[str, str, int],
    chats: list[Chat],
    config: StackConfig,
    *,
    timeout: float,
    stagger: float = 0.0,
    warmup: list[Chat] | None = None,
    edit_interval: float = 1.0,
    draft_interval: float = StreamSettings().draft_interval,
) -> tuple[dict[str, Any], list[analysis.Answer]]:
    """Figures of one run and its per-answer records.

    ``stagger`` > 0 sends the questions one by one that many seconds apart (low
    concurrency); 0 sends them all in the same instant. ``warmup`` chats are answered
    first, with the fake Bot API's limits off, and left out of every figure: a bot that
    has been running already has its HTTP and Redis connections open.
    """
    redis_url, redis_host, redis_port = redis
    config.bot_env.setdefault("STREAM__EDIT_INTERVAL", f"{edit_interval:g}")
    config.bot_env.setdefault("STREAM__DRAFT_INTERVAL", f"{draft_interval:g}")
    drafts = config.bot_env.get("TELEGRAM__PRIVATE_STREAM_METHOD", "draft") == "draft"
    # drafts are paced by the draft interval, edits by the edit interval
    private_interval = draft_interval if drafts else edit_interval
    lag = LoopLagProbe.configure(config.bot_env)
    async with Stack(services, redis_url, config) as stack:
        probe = RedisProbe(redis_url, redis_host, redis_port)
        idle_rss = stack.bot_peak_rss_mb()
        cold: dict[str, Any] | None = None
        if warmup:
            cold = await _warm_up(stack, warmup, timeout)
        await probe.start()
        await lag.start(stack.http)
        own = [s.pid for s in services.started]
        busy0, own0 = system_busy_seconds(), sum(cpu_seconds(p) for p in own)
        bot0, fakes0 = stack.bot_cpu(), stack.fakes_cpu()
        started = time.monotonic()
        try:
            if stagger > 0:
                for chat in chats:
                    await stack.push([chat])
                    await asyncio.sleep(stagger)  # the schedule of the run, not a wait
            else:
                await stack.push(chats)
            finished = await stack.wait_answers(chats, timeout)
        finally:
            elapsed = time.monotonic() - started
            bot_cpu = stack.bot_cpu() - bot0
            fakes_cpu = {k: v - fakes0.get(k, 0.0) for k, v in stack.fakes_cpu().items()}
            other = system_busy_seconds() - busy0 - (sum(cpu_seconds(p) for p in own) - own0)
            redis_cost = await probe.stop()
            loop_lag = await lag.stop(stack.http)
        peak_rss = stack.bot_peak_rss_mb()
        timeline = await stack.get_tg("/_fake/timeline")
        timings = await stack.get_glm("/_fake/timings")
        glm_stats = await stack.get_glm("/_fake/stats")
        bot_log = "\n".join(bot.log_tail(10) for bot in stack.bots)

    expected = config.glm.answer
    records = analysis.answers(chats, timeline, timings, expected)
    complete = [a for a in records if a.complete]
    n = len(chats)
    finals = [a.last_shown_at for a in complete if a.last_shown_at is not None]
    pushes = [a.pushed_at for a in records if a.pushed_at is not None]
    methods = {k: v for k, v in timeline["stats"]["methods"].items() if k not in _HOUSEKEEPING}
    privates = [a for a in records if not a.group]
    groups = [a for a in records if a.group]
    figures: dict[str, Any] = {
        "chats": n,
        "private_chats": len(privates),
        "group_chats": len(groups),
        "finished_in_time": finished,
        "completed": len(complete),
        "completed_private": sum(a.complete for a in privates),
        "completed_groups": sum(a.complete for a in groups),
        "all_done_seconds": round(max(finals) - min(pushes), 2) if finals and pushes else None,
        "first_visible_from_push_ms": analysis.spread_ms(
            [a.span("pushed_at", "first_visible_at") for a in records]
        ),
        "first_visible_beyond_glm_ms": analysis.spread_ms(
            [a.span("glm_first_token_at", "first_visible_at") for a in records]
        ),
        "update_to_glm_request_ms": analysis.spread_ms(
            [a.span("delivered_at", "glm_received_at") for a in records]
        ),
        "last_chunk_to_final_ms": analysis.spread_ms(
            [a.span("glm_last_chunk_at", "last_shown_at") for a in complete]
        ),
        "push_to_delivery_ms": analysis.spread_ms(
            [a.span("pushed_at", "delivered_at") for a in records]
        ),
        "glm_first_token_ms": analysis.spread_ms(
            [a.span("glm_received_at", "glm_first_token_at") for a in records]
        ),
        "glm_stream_ms": analysis.spread_ms([a.stream_seconds for a in records]),
        "api_calls_per_answer": round(sum(a.calls for a in records) / n, 2) if n else None,
        "api_methods": methods,
        "rejected_429": timeline["stats"]["rejected_429"],
        "bot_cpu_seconds": round(bot_cpu, 2),
        "bot_cpu_ms_per_answer": round(bot_cpu * 1000 / n, 2) if n else None,
        "bot_cpu_cores": round(bot_cpu / elapsed, 2) if elapsed else None,
        "fakes_cpu_cores": {k: round(v / elapsed, 2) for k, v in fakes_cpu.items()},
        "other_processes_cpu_cores": round(max(0.0, other) / elapsed, 2) if elapsed else None,
        "measured_seconds": round(elapsed, 2),
        "idle_rss_mb": round(idle_rss, 1) if idle_rss else None,
        "peak_rss_mb": round(peak_rss, 1) if peak_rss else None,
        "loop_lag_ms": loop_lag,
        "redis_per_answer": redis_cost.per_answer(n),
        "glm_requests": glm_stats["requests"],
        "glm_violations": glm_stats["violations"],
        "fake_server_errors": timeline["stats"]["server_errors"],
        "private_calls": analysis.bound_check(privates, private_interval),
        "group_calls": analysis.bound_check(groups, edit_interval),
    }
    if cold is not None:
        figures["warmup"] = cold
    if len(complete) < n:
        figures["bot_log_tail"] = bot_log
    return figures, records


async def _warm_up(stack: Stack, chats: list[Chat], timeout: float) -> dict[str, Any]:
    """Answer ``chats`` with the fake's flood limits off, then forget them in both fakes."""
    limited = stack.config.limits.argv() != []
    if limited:
        await stack.post_tg("/_fake/limits", {k: None for k in stack.config.limits.__dict__})
    started = time.monotonic()
    await stack.push(chats)
    finished = await stack.wait_answers(chats, timeout)
    timeline = await stack.get_tg("/_fake/timeline")
    timings = await stack.get_glm("/_fake/timings")
    records = analysis.answers(chats, timeline, timings, stack.config.glm.answer)
    cold = {
        "chats": len(chats),
        "finished_in_time": finished,
        "completed": sum(a.complete for a in records),
        "seconds": round(time.monotonic() - started, 2),
        "first_visible_beyond_glm_ms": analysis.spread_ms(
            [a.span("glm_first_token_at", "first_visible_at") for a in records]
        ),
        "update_to_glm_request_ms": analysis.spread_ms(
            [a.span("delivered_at", "glm_received_at") for a in records]
        ),
    }
    await stack.post_tg("/_fake/reset", None)
    await stack.post_glm("/_fake/reset")
    if limited:
        await stack.post_tg("/_fake/limits", stack.config.limits.__dict__)
        # the bot's own bot-wide budget refills within a second of the warm-up's last send
        await asyncio.sleep(1.5)
    return cold
