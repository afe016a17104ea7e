"""Event-loop lag from the bot's Prometheus endpoint, when the bot has one.

The bot's ``[metrics] port`` is set to a free port; the histogram whose name contains
``loop_lag`` is scraped before and after the run, and its percentiles are read from the
bucket deltas (so start-up does not count). Without a metrics endpoint the figure is
reported as unavailable rather than guessed.
"""

from __future__ import annotations

import math
import re
from typing import Any

import aiohttp

from bench.procs import LOOPBACK, free_port

_BUCKET = re.compile(r'^(\w*loop_lag\w*)_bucket\{(?:[^}]*,)?le="([^"]+)"[^}]*\}\s+(\S+)$')
_SAMPLE = re.compile(r"^(\w*loop_lag\w*)(?:\{[^}]*\})?\s+(\S+)$")


def metrics_supported() -> bool:
    """Whether this bot's Settings have a ``[metrics]`` section with a port."""
    try:
        from bot.config import Settings
    except ImportError:
        return False
    field = Settings.model_fields.get("metrics")
    annotation = getattr(field, "annotation", None) if field else None
    return annotation is not None and "port" in getattr(annotation, "model_fields", {})


def parse_buckets(text: str) -> dict[float, float]:
    """Cumulative counts per upper bound of the loop-lag histogram (seconds)."""
    buckets: dict[float, float] = {}
    for line in text.splitlines():
        found = _BUCKET.match(line)
        if found:
            le = math.inf if found.group(2) == "+Inf" else float(found.group(2))
            buckets[le] = buckets.get(le, 0.0) + float(found.group(3))
    return buckets


def parse_gauges(text: str) -> dict[str, float]:
    """Plain loop-lag samples (a gauge of the latest or the maximum lag)."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        found = _SAMPLE.match(line)
        if found and not found.group(1).endswith(("_bucket", "_created")):
            out[found.group(1)] = float(found.group(2))
    return out


def bucket_quantile(before: dict[float, float], after: dict[float, float], q: float) -> float:
    """Upper bound of the bucket holding the q-quantile of the observations in between."""
    bounds = sorted(after)
    deltas = [after[b] - before.get(b, 0.0) for b in bounds]
    total = deltas[-1] if deltas else 0.0
    if total <= 0:
        return math.nan
    for bound, count in zip(bounds, deltas, strict=True):
        if count >= q * total:
            return bound
    return math.inf


class LoopLagProbe:
    def __init__(self, port: int | None, reason: str = "") -> None:
        self.port = port
        self.reason = reason
        self._before: dict[float, float] = {}

    @classmethod
    def configure(cls, bot_env: dict[str, str]) -> LoopLagProbe:
        """A probe with ``METRICS__PORT`` set in ``bot_env``, or a disabled one."""
        if not metrics_supported():
            return cls(None, "the bot has no [metrics] endpoint yet")
        port = free_port()
        bot_env["METRICS__PORT"] = str(port)
        return cls(port)

    async def _scrape(self, http: aiohttp.ClientSession) -> str | None:
        if self.port is None:
            return None
        try:
            async with http.get(f"http://{LOOPBACK}:{self.port}/metrics") as resp:
                if resp.status != 200:
                    self.reason = f"/metrics answered {resp.status}"
                    return None
                return await resp.text()
        except aiohttp.ClientError as exc:
            self.reason = f"/metrics unreachable: {exc}"
            return None

    async def start(self, http: aiohttp.ClientSession) -> None:
        text = await self._scrape(http)
        self._before = parse_buckets(text) if text else {}

    async def stop(self, http: aiohttp.ClientSession) -> dict[str, Any]:
        text = await self._scrape(http)
        if text is None:
            return {"unavailable": self.reason or "no metrics"}
        after = parse_buckets(text)
        if after:
            top = max((b for b in after if not math.isinf(b)), default=0.0)
            figures: dict[str, Any] = {
                "samples": after[max(after)] - self._before.get(max(after), 0.0),
                "largest_bucket_ms": _ms(top),
            }
            for name, q in (("p50_le", 0.5), ("p99_le", 0.99)):
                # beyond the largest bucket: only "more than" is known (JSON has no infinity)
                value = bucket_quantile(self._before, after, q)
                figures[name] = None if math.isinf(value) else _ms(value)
                figures[name.replace("_le", "_above_largest")] = math.isinf(value)
            return figures
        gauges = parse_gauges(text)
        if gauges:
            return {name: _ms(value) for name, value in gauges.items()}
        return {"unavailable": "/metrics has no loop_lag metric"}


def _ms(seconds: float) -> float | None:
    if math.isnan(seconds) or math.isinf(seconds):
        return None
    return round(seconds * 1000, 1)
