"""Real bot processes in webhook mode (`python -m bot webhook`) sharing one Redis, as the
replicas of a deployment: started, waited for until ready, stopped."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from tests.fakes.glm import FakeGLM
from tests.fakes.telegram import FakeTelegram
from tests.harness import API_KEY
from tests.webhook_updates import free_port

ROOT = Path(__file__).resolve().parent.parent
# Starting a process imports aiogram, zhipuai and pydantic: slow on a busy machine.
START_TIMEOUT = 120.0
# Lines of its log shown when a replica exits on its own.
LOG_TAIL = 40


@dataclass
class Replica:
    proc: subprocess.Popen[bytes]
    webhook_url: str
    metrics_url: str
    log_path: Path

    def exit_report(self) -> str:
        tail = "\n".join(self.log_path.read_text(errors="replace").splitlines()[-LOG_TAIL:])
        return (
            f"replica {self.log_path.stem} exited (code {self.proc.poll()}); its log ends:\n{tail}"
        )

    def log_lines(self) -> list[dict[str, Any]]:
        lines = []
        for raw in self.log_path.read_text().splitlines():
            try:
                lines.append(json.loads(raw))
            except ValueError:
                lines.append({"level": "RAW", "message": raw})
        return lines


def start_replica(
    n: int,
    tg: FakeTelegram,
    glm: FakeGLM,
    redis_url: str,
    key_prefix: str,
    tmp_path: Path,
    *,
    host: str = "127.0.0.1",
    port: int | None = None,
    metrics_port: int | None = None,
    public_url: str = "http://127.0.0.1:1",
) -> Replica:
    """A replica listening on ``host``; ``metrics_port=port`` serves /metrics, /healthz
    and /readyz on the webhook's own port. ``public_url`` is what Telegram is told to
    call: the load balancer."""
    port = port or free_port()
    metrics_port = metrics_port or free_port()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "TELEGRAM_BOT_TOKEN": tg.token,
        "ZHIPU_API_KEY": API_KEY,
        "ZHIPU_BASE_URL": glm.api_base,
        "TELEGRAM_API_BASE": tg.base_url,
        "REDIS_URL": redis_url,
        "REDIS__KEY_PREFIX": key_prefix,
        "WEBHOOK__PUBLIC_URL": public_url,
        "WEBHOOK__HOST": host,
        "WEBHOOK__PORT": str(port),
        "METRICS__HOST": host,
        "METRICS__PORT": str(metrics_port),
        "METRICS__READINESS_CACHE": "0",
        "LEASES__POLL_INTERVAL": "0.02",
        "STREAM__EDIT_INTERVAL": "0.2",
        "STREAM__DRAFT_INTERVAL": "0.1",
        "LOG_FORMAT": "json",
        "LOG_LEVEL": "INFO",
    }
    log_path = tmp_path / f"replica{n}.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "webhook"], cwd=ROOT, env=env, stderr=log
        )
    return Replica(
        proc,
        f"http://{host}:{port}/telegram/webhook",
        f"http://{host}:{metrics_port}",
        log_path,
    )


async def poll(predicate: Callable[[], Any], what: str, timeout: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not await predicate():
        if loop.time() > deadline:
            raise AssertionError(f"timed out after {timeout:g}s waiting for {what}")
        await asyncio.sleep(0.05)


async def wait_until_ready(tg: FakeTelegram, replicas: list[Replica]) -> None:
    """Every replica answers /readyz and has registered the webhook."""
    async with aiohttp.ClientSession() as session:

        async def ready() -> bool:
            for replica in replicas:
                if replica.proc.poll() is not None:
                    raise AssertionError(replica.exit_report())
                try:
                    async with session.get(f"{replica.metrics_url}/readyz") as resp:
                        if resp.status != 200:
                            return False
                except aiohttp.ClientError:
                    return False
            return len(tg.calls_of("setWebhook")) >= len(replicas)

        await poll(ready, f"{len(replicas)} replica(s) ready", START_TIMEOUT)


async def stop_replica(replica: Replica, timeout: float = 60) -> int:
    """SIGTERM, then SIGKILL after ``timeout``; the exit code. Waits off the event loop,
    where the fakes the replica may still call during its shutdown live."""
    if replica.proc.poll() is None:
        replica.proc.send_signal(signal.SIGTERM)
    try:
        return await asyncio.to_thread(replica.proc.wait, timeout)
    except subprocess.TimeoutExpired:
        replica.proc.kill()
        return await asyncio.to_thread(replica.proc.wait)


async def stop_replicas(replicas: list[Replica]) -> None:
    await asyncio.gather(*(stop_replica(replica) for replica in replicas))
