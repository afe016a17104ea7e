"""Composition root: `python -m bot` (long polling) or `python -m bot webhook`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from bot.app import create_app, run_polling
from bot.config import ConfigError, load_settings
from bot.gc_tuning import tune_garbage_collector
from bot.observability.logs import secret_parts, setup_logging
from bot.observability.logs_json import resolve_log_format
from bot.webhook.server import check_webhook_settings, run_webhook, webhook_secret


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot", description=__doc__)
    parser.add_argument("mode", nargs="?", choices=["polling", "webhook"], default=None)
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        mode = args.mode or settings.telegram.mode
        # the factories read the mode (leases are on in webhook mode)
        settings.telegram.mode = mode
        if mode == "webhook":
            check_webhook_settings(settings)
        log_format = resolve_log_format(settings.logging.format, os.environ.get("LOG_FORMAT"))
    except (ConfigError, ValueError) as exc:
        print(f"glmbot: configuration error: {exc}", file=sys.stderr)
        return 2
    setup_logging(
        os.environ.get("LOG_LEVEL", "INFO"),
        [
            *secret_parts(
                settings.telegram_bot_token.get_secret_value(),
                settings.zhipu_api_key.get_secret_value(),
                settings.redis_url.get_secret_value() if settings.redis_url else None,
            ),
            webhook_secret(settings),
        ],
        log_format,
    )
    try:
        app = create_app(settings)
    except ValueError as exc:  # e.g. a token without the "<id>:" prefix
        print(f"glmbot: configuration error: {exc}", file=sys.stderr)
        return 2
    tune_garbage_collector()
    if mode == "webhook":
        logging.getLogger("bot").info("starting: webhook, model %s", settings.llm.model)
        asyncio.run(run_webhook(app))
    else:
        logging.getLogger("bot").info("starting: long polling, model %s", settings.llm.model)
        asyncio.run(run_polling(app))
    return 0


if __name__ == "__main__":
    sys.exit(main())
