"""The ``[reliability]`` settings section: update dedup, owner alerts, lost-answer recovery.

Kept apart from ``bot.config`` (which includes it in ``Settings``); every key is
documented in settings.toml.
"""

from __future__ import annotations

from pydantic import BaseModel, Field


class ReliabilitySettings(BaseModel):
    # Seconds an update id is remembered to drop redeliveries (Telegram redelivers a
    # webhook update within minutes; one key per update, so not much longer).
    update_dedup_ttl: int = Field(default=3600, ge=1)
    # An owner alert of one cause (no balance, rejected key) at most this often.
    owner_alert_interval: float = Field(default=3600.0, gt=0)
    # Seconds between this process's liveness marks in Redis (they expire after 3x) and
    # sweeps for answers lost by processes that stopped.
    heartbeat: float = Field(default=10.0, gt=0)
    # An unfinished answer of a stopped process is reported once it is this old.
    pending_grace: float = Field(default=30.0, ge=0)
