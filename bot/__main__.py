"""Composition root: `python -m bot` (long polling) or `python -m bot webhook`."""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys

from bot.app import create_app, run_polling
from bot.config import ConfigError, load_settings
from bot.logs import secret_parts, setup_logging


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot", description=__doc__)
    parser.add_argument("mode", nargs="?", choices=["polling", "webhook"], default=None)
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"glmbot: configuration error: {exc}", file=sys.stderr)
        return 2
    setup_logging(
        os.environ.get("LOG_LEVEL", "INFO"),
        secret_parts(
            settings.telegram_bot_token.get_secret_value(),
            settings.zhipu_api_key.get_secret_value(),
            settings.redis_url.get_secret_value() if settings.redis_url else None,
        ),
    )
    mode = args.mode or settings.telegram.mode
    if mode == "webhook":
        print("glmbot: webhook mode is not available yet", file=sys.stderr)
        return 2
    try:
        app = create_app(settings)
    except ValueError as exc:  # e.g. a token without the "<id>:" prefix
        print(f"glmbot: configuration error: {exc}", file=sys.stderr)
        return 2
    logging.getLogger("bot").info("starting: long polling, model %s", settings.llm.model)
    asyncio.run(run_polling(app))
    return 0


if __name__ == "__main__":
    sys.exit(main())
