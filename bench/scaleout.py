"""Scale-out: throughput with 1 and 2 bot replicas in webhook mode.

Blocked until `python -m bot webhook` works; until then the scenario reports why
instead of a figure.
"""

from __future__ import annotations

from typing import Any

from bench.procs import REPO_ROOT, Services

_NOT_YET = "webhook mode is not available yet"


def webhook_available() -> bool:
    """Whether the composition root serves webhook mode (it says so when it does not)."""
    main = (REPO_ROOT / "bot" / "__main__.py").read_text()
    return _NOT_YET not in main and "webhook" in main


async def scaleout(chats: int, services: Services, redis: tuple[str, str, int]) -> dict[str, Any]:
    if not webhook_available():
        return {
            "status": "blocked",
            "reason": "`python -m bot webhook` is not implemented yet (issue 6, webhook mode)",
        }
    return {
        "status": "todo",
        "reason": "webhook mode has landed; the replica run is not written yet",
    }
