"""The HTTP side of observability: /metrics, /healthz and /readyz on aiohttp."""

from __future__ import annotations

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST

from bot.config import ConfigError
from bot.observability.health import Readiness
from bot.observability.metrics import Metrics

__all__ = ["ObservabilityServer", "add_observability_routes"]


def add_observability_routes(app: web.Application, metrics: Metrics, readiness: Readiness) -> None:
    """Serve the three endpoints from `app` (the webhook's server or a server of their own)."""

    async def serve_metrics(request: web.Request) -> web.Response:
        return web.Response(
            body=metrics.exposition(), headers={"Content-Type": CONTENT_TYPE_LATEST}
        )

    async def healthz(request: web.Request) -> web.Response:
        # alive: the event loop answers; dependencies are /readyz's business
        return web.json_response({"status": "ok"})

    async def readyz(request: web.Request) -> web.Response:
        checks = await readiness.check()
        ready = all(checks.values())
        body = {
            "ready": ready,
            "checks": {name: "ok" if ok else "down" for name, ok in checks.items()},
        }
        return web.json_response(body, status=200 if ready else 503)

    app.router.add_get("/metrics", serve_metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/readyz", readyz)


class ObservabilityServer:
    """A small web server of its own for the endpoints (polling mode, or a separate port)."""

    def __init__(self, metrics: Metrics, readiness: Readiness) -> None:
        self._app = web.Application()
        add_observability_routes(self._app, metrics, readiness)
        self._runner: web.AppRunner | None = None

    async def start(self, host: str, port: int) -> int:
        """Listen on host:port (0: any free port); returns the port. Raises ConfigError
        when it cannot: the port is a setting, and a taken one needs the operator."""
        runner = web.AppRunner(self._app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, host, port)
        try:
            await site.start()
        except OSError as exc:  # taken, or an address this machine does not have
            await runner.cleanup()
            raise ConfigError(
                f"METRICS__PORT: cannot listen on {host}:{port}: {exc.strerror or exc}"
            ) from None
        self._runner = runner
        return int(runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
