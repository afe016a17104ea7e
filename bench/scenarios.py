"""The benchmark scenarios of issues 4 and 6, at full, quick and smoke sizes."""

from __future__ import annotations

import os
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from bench import format_cost, history_cost, photos
from bench.analysis import bound_check, spread_ms
from bench.load import run_load
from bench.procs import Services
from bench.scaleout import scaleout
from bench.stack import (
    TELEGRAM_LIKE,
    Chat,
    GLMProfile,
    StackConfig,
    group_chats,
    private_chats,
)

# Warm-up chats get ids far from the measured ones.
WARMUP_IDS = 100_000
SCENARIOS = (
    "concurrency",
    "limits",
    "overhead",
    "reasoning",
    "photos",
    "history",
    "formatting",
    "scaleout",
)
STANDARD_GLM = GLMProfile(first_token_ms=300, tokens_per_second=40, tokens=200)
# Smoke: correctness only, so a short fast answer.
SMOKE_GLM = GLMProfile(first_token_ms=50, tokens_per_second=200, tokens=40)
# A thinking model (issue 12): 2 s of reasoning, then the standard answer.
REASONING_GLM = GLMProfile(
    first_token_ms=300, tokens_per_second=40, tokens=200, reasoning_ms=2000, reasoning_tokens=20
)
SMOKE_REASONING_GLM = GLMProfile(
    first_token_ms=50, tokens_per_second=200, tokens=40, reasoning_ms=300, reasoning_tokens=10
)


@dataclass
class Plan:
    mode: str
    glm: GLMProfile
    concurrency: list[int]
    limits_private: int
    limits_groups: int
    limits_methods: list[str]
    overhead_private: int
    overhead_groups: int
    overhead_stagger: float
    history_sizes: list[int]
    history_iterations: int
    scaleout_chats: int
    # thinking-model answers at low concurrency: privates, groups, seconds apart
    reasoning: tuple[int, int, float] = (20, 20, 1.0)
    # photo questions: one by one (how many, seconds apart), at once, and text to compare
    photos: tuple[int, float, int, bool] = (20, 1.0, 100, True)
    extra: dict[str, Any] = field(default_factory=dict)


def make_plan(mode: str, chats: list[int] | None) -> Plan:
    if mode == "smoke":
        plan = Plan(
            mode, SMOKE_GLM, concurrency=[20], limits_private=20, limits_groups=5,
            limits_methods=["draft"], overhead_private=5, overhead_groups=2,
            overhead_stagger=0.1, history_sizes=[10, 1000], history_iterations=5,
            scaleout_chats=20, reasoning=(3, 2, 0.1), photos=(0, 0.1, 5, False),
        )  # fmt: skip
    elif mode == "quick":
        plan = Plan(
            mode, STANDARD_GLM, concurrency=[50, 200], limits_private=200, limits_groups=50,
            limits_methods=["draft"], overhead_private=10, overhead_groups=5,
            overhead_stagger=0.3, history_sizes=[10, 1000, 100_000], history_iterations=20,
            scaleout_chats=100, reasoning=(10, 5, 0.3), photos=(10, 0.3, 100, True),
        )  # fmt: skip
    else:
        plan = Plan(
            mode, STANDARD_GLM, concurrency=[50, 200, 500, 1000], limits_private=200,
            limits_groups=50, limits_methods=["draft", "edit"], overhead_private=20,
            overhead_groups=20, overhead_stagger=1.0, history_sizes=[10, 1000, 100_000],
            history_iterations=50, scaleout_chats=200,
        )  # fmt: skip
    if chats:
        plan.concurrency = chats
    return plan


def _timeout(glm: GLMProfile, chats: int) -> float:
    stream = (glm.first_token_ms + glm.reasoning_ms) / 1000 + glm.tokens / glm.tokens_per_second
    return 60 + 3 * stream + 0.1 * chats


Redis = tuple[str, str, int]
Runner = Callable[[Plan, Services, Redis], Awaitable[dict[str, Any]]]


async def concurrency(plan: Plan, services: Services, redis: Redis) -> dict[str, Any]:
    runs = []
    for n in plan.concurrency:
        print(f"  concurrency: {n} private chats at once", flush=True)
        figures, _ = await run_load(
            services,
            redis,
            private_chats(n),
            StackConfig(glm=plan.glm),
            timeout=_timeout(plan.glm, n),
            warmup=private_chats(n, start=WARMUP_IDS),
        )
        runs.append(figures)
    return {"glm": plan.glm.__dict__, "runs": runs}


async def limits(plan: Plan, services: Services, redis: Redis) -> dict[str, Any]:
    runs = []
    chats = private_chats(plan.limits_private) + group_chats(plan.limits_groups)
    for method in plan.limits_methods:
        print(
            f"  limits: {plan.limits_private} private ({method}) + {plan.limits_groups} groups",
            flush=True,
        )
        config = StackConfig(
            glm=plan.glm,
            limits=TELEGRAM_LIKE,
            bot_env={"TELEGRAM__PRIVATE_STREAM_METHOD": method},
        )
        warmup = private_chats(plan.limits_private, start=WARMUP_IDS)
        warmup += group_chats(plan.limits_groups, start=WARMUP_IDS)
        figures, _ = await run_load(
            services,
            redis,
            chats,
            config,
            timeout=_timeout(plan.glm, len(chats)) + 120,
            warmup=warmup,
        )
        figures["private_method"] = method
        runs.append(figures)
    return {"glm": plan.glm.__dict__, "limits": TELEGRAM_LIKE.__dict__, "runs": runs}


async def overhead(plan: Plan, services: Services, redis: Redis) -> dict[str, Any]:
    n = plan.overhead_private + plan.overhead_groups
    print(f"  overhead: {n} chats, one every {plan.overhead_stagger:g}s", flush=True)
    return await _staggered(
        plan,
        services,
        redis,
        plan.glm,
        (plan.overhead_private, plan.overhead_groups, plan.overhead_stagger),
        _PATHS,
    )


async def reasoning(plan: Plan, services: Services, redis: Redis) -> dict[str, Any]:
    """A thinking model (issue 12): how soon the chat shows that it thinks."""
    n_private, n_groups, stagger = plan.reasoning
    glm = SMOKE_REASONING_GLM if plan.mode == "smoke" else REASONING_GLM
    print(
        f"  reasoning: {n_private + n_groups} chats, one every {stagger:g}s, "
        f"{glm.reasoning_ms:g} ms of reasoning each",
        flush=True,
    )
    figures = await _staggered(plan, services, redis, glm, plan.reasoning, _REASONING_PATHS)
    figures["glm"] = glm.__dict__
    return figures


async def _staggered(
    plan: Plan,
    services: Services,
    redis: Redis,
    glm: GLMProfile,
    shape: tuple[int, int, float],
    paths: tuple[tuple[str, str, str], ...],
) -> dict[str, Any]:
    """Privates and groups alternating, one question every ``stagger`` seconds (a few
    answers in flight), with each of ``paths`` measured per chat kind."""
    n_private, n_groups, stagger = shape
    n = n_private + n_groups
    chats = _interleaved(n_private, n_groups)
    figures, records = await run_load(
        services,
        redis,
        chats,
        StackConfig(glm=glm),
        timeout=_timeout(glm, n) + n * stagger,
        stagger=stagger,
        warmup=private_chats(3, start=WARMUP_IDS) + group_chats(2, start=WARMUP_IDS),
    )
    figures["stagger_seconds"] = stagger
    for name, start, end in paths:
        for kind, group in (("private", False), ("group", True)):
            figures[f"{name}_{kind}_ms"] = spread_ms(
                [a.span(start, end) for a in records if a.group == group and a.complete]
            )
    figures["private_calls_edit_interval"] = bound_check([a for a in records if not a.group], 1.0)
    return figures


def _interleaved(n_private: int, n_groups: int) -> list[Chat]:
    """Privates and groups alternating, so both see the same (low) load."""
    privates, groups = private_chats(n_private), group_chats(n_groups)
    out: list[Chat] = []
    for i in range(max(n_private, n_groups)):
        out += privates[i : i + 1] + groups[i : i + 1]
    return out


# (figure, from, to) measured per chat kind in the overhead scenario
_PATHS = (
    ("update_to_glm_request", "delivered_at", "glm_received_at"),
    ("first_visible_beyond_glm", "glm_first_token_at", "first_visible_at"),
    ("last_chunk_to_final", "glm_last_chunk_at", "last_shown_at"),
    ("push_to_delivery", "pushed_at", "delivered_at"),
)
# ... in the reasoning scenario: the first visible progress is the sign of thinking
_REASONING_PATHS = (
    ("first_reasoning_to_visible", "glm_first_reasoning_at", "first_visible_at"),
    ("update_to_glm_request", "delivered_at", "glm_received_at"),
    ("last_chunk_to_final", "glm_last_chunk_at", "last_shown_at"),
)


async def run_photos(plan: Plan, services: Services, redis: Redis) -> dict[str, Any]:
    """Photo questions (issue 13): CPU and latency a photo adds, memory of a burst."""
    return await photos.measure(
        services,
        redis,
        plan.glm,
        plan.photos,
        _timeout(plan.glm, plan.photos[2]),
        iterations=plan.history_iterations,
    )


async def history(plan: Plan, services: Services, redis: Redis) -> dict[str, Any]:
    print(f"  history: {', '.join(map(str, plan.history_sizes))} stored messages", flush=True)
    rows = await history_cost.measure(
        redis[0], plan.history_sizes, iterations=plan.history_iterations
    )
    return {"rows": rows}


async def formatting(plan: Plan, services: Services, redis: Redis) -> dict[str, Any]:
    print("  formatting: CPU of one draft/edit render", flush=True)
    sizes = [1000, 4000] if plan.mode != "smoke" else [1000]
    return {"rows": format_cost.measure(sizes, iterations=plan.history_iterations)}


async def run_scaleout(plan: Plan, services: Services, redis: Redis) -> dict[str, Any]:
    n = plan.scaleout_chats
    return await scaleout(n, services, redis, plan.glm, _timeout(plan.glm, n))


RUNNERS: dict[str, Runner] = {
    "concurrency": concurrency,
    "limits": limits,
    "overhead": overhead,
    "reasoning": reasoning,
    "photos": run_photos,
    "history": history,
    "formatting": formatting,
    "scaleout": run_scaleout,
}


async def run_scenarios(
    plan: Plan, names: list[str], services: Services, redis: Redis
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for name in names:
        started = time.time()
        result = await RUNNERS[name](plan, services, redis)
        result["measured_at"] = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(started))
        result["mode"] = plan.mode
        result["seconds"] = round(time.time() - started, 1)
        # the machine is shared: how busy it was as the scenario ended
        result["loadavg_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
        results[name] = result
    return results
