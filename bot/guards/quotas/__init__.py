"""Rate limits, daily token quotas and usage accounting (see `bot.guards.quotas.service`)."""

from __future__ import annotations

from redis.asyncio import Redis

from bot.guards.quotas.base import (
    Charge,
    Clock,
    Limits,
    MeterStore,
    MeterUnavailable,
    Reason,
    Refusal,
    Scope,
    Totals,
    day_of,
    month_of,
    seconds_to_midnight,
)
from bot.guards.quotas.memory_store import MemoryMeterStore
from bot.guards.quotas.redis_store import RedisMeterStore
from bot.guards.quotas.service import BotReport, QuotaService, UsageReport
from bot.storage.keys import Keys

__all__ = [
    "BotReport",
    "Charge",
    "Clock",
    "Limits",
    "MemoryMeterStore",
    "MeterStore",
    "MeterUnavailable",
    "QuotaService",
    "Reason",
    "RedisMeterStore",
    "Refusal",
    "Scope",
    "Totals",
    "UsageReport",
    "create_meter_store",
    "day_of",
    "month_of",
    "seconds_to_midnight",
]


def create_meter_store(redis: Redis | None, keys: Keys) -> MeterStore:
    """Redis when there is one (limits then hold across replicas), else process memory."""
    return MemoryMeterStore() if redis is None else RedisMeterStore(redis, keys)
