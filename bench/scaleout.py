"""Scale-out: throughput with 1 and 2 bot replicas in webhook mode, sharing one Redis.

The harness plays Telegram's part: it takes the updates from the fake Bot API and posts
them to the replicas' webhooks in turn, all at once. Throughput is answers completed per
second between the push and the last final message.
"""

from __future__ import annotations

from typing import Any

from bench.load import run_load
from bench.procs import REPO_ROOT, Services
from bench.stack import GLMProfile, StackConfig, private_chats

_NOT_YET = "webhook mode is not available yet"
WARMUP_IDS = 200_000


def webhook_available() -> bool:
    """Whether the composition root serves webhook mode (it says so when it does not)."""
    main = (REPO_ROOT / "bot" / "__main__.py").read_text()
    return _NOT_YET not in main and "webhook" in main


async def scaleout(
    chats: int, services: Services, redis: tuple[str, str, int], glm: GLMProfile, timeout: float
) -> dict[str, Any]:
    if not webhook_available():
        return {
            "status": "blocked",
            "reason": "`python -m bot webhook` is not implemented yet (issue 6, webhook mode)",
        }
    runs = []
    for replicas in (1, 2):
        print(f"  scale-out: {chats} private chats, {replicas} webhook replica(s)", flush=True)
        config = StackConfig(glm=glm, mode="webhook", replicas=replicas)
        figures, _ = await run_load(
            services,
            redis,
            private_chats(chats),
            config,
            timeout=timeout,
            warmup=private_chats(chats, start=WARMUP_IDS),
        )
        done = figures["all_done_seconds"]
        figures["replicas"] = replicas
        figures["answers_per_second"] = round(figures["completed"] / done, 1) if done else None
        runs.append(figures)
    return {"status": "ok", "glm": glm.__dict__, "runs": runs}
