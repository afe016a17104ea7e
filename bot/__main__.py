"""Composition root: `python -m bot` (long polling) or `python -m bot webhook`.

Every problem an operator must fix (a setting, a token Telegram rejects, a port in use)
ends the process with one line, ``glmbot: configuration error: ...``, and exit code 2.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import sys
from pathlib import Path

from aiogram import Bot
from aiogram.exceptions import TelegramNotFound, TelegramUnauthorizedError
from dotenv import load_dotenv

from bot.app import App, create_app, run_polling
from bot.config import ConfigError, Settings, load_settings, with_mode
from bot.config.environment import unknown_settings
from bot.gc_tuning import tune_garbage_collector
from bot.observability.logs import resolve_log_level, setup_logging
from bot.observability.logs_json import resolve_log_format
from bot.observability.redaction import secret_parts
from bot.storage.redis_client import describe_redis
from bot.webhook.server import check_webhook_settings, run_webhook, webhook_secret

log = logging.getLogger("bot")

CONFIG_ERROR_EXIT = 2


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bot", description=__doc__)
    parser.add_argument("mode", nargs="?", choices=["polling", "webhook"], default=None)
    parser.add_argument(
        "--env-file",
        type=Path,
        help="read variables from this file first (those already set win); `make run` passes .env",
    )
    args = parser.parse_args(argv)
    try:
        if args.env_file is not None:
            _read_env_file(args.env_file)
        settings = with_mode(load_settings(), args.mode)
        if settings.telegram.mode == "webhook":
            check_webhook_settings(settings)
        log_format = resolve_log_format(settings.logging.format, os.environ.get("LOG_FORMAT"))
        log_level = resolve_log_level(os.environ.get("LOG_LEVEL"))
    except (ConfigError, ValueError) as exc:
        return _configuration_error(exc)
    setup_logging(log_level, _secrets(settings), log_format)
    _warn_unknown_settings()
    try:
        app = create_app(settings)
    except (ConfigError, ValueError) as exc:  # a catalog that cannot work, a bad Redis URL
        return _configuration_error(exc)
    tune_garbage_collector()
    try:
        asyncio.run(_serve(app))
    except ConfigError as exc:
        return _configuration_error(exc)
    return 0


async def _serve(app: App) -> None:
    try:
        await check_bot_token(app.bot)
    except BaseException:
        await app.aclose()
        raise
    settings = app.settings
    webhook = settings.telegram.mode == "webhook"
    redis_url = settings.redis_url.get_secret_value() if settings.redis_url else None
    log.info(
        "starting: %s, model %s, Redis %s",
        "webhook" if webhook else "long polling",
        settings.llm.model,
        describe_redis(redis_url, settings.redis.mode),
    )
    await (run_webhook(app) if webhook else run_polling(app))


async def check_bot_token(bot: Bot) -> None:
    """Ask Telegram who the bot is, once, before serving: a revoked or mistyped token
    then stops the start with one line instead of failing every call after it.

    ``bot.me()`` keeps the answer, so polling does not ask again.
    """
    try:
        await bot.me()
    except (TelegramUnauthorizedError, TelegramNotFound) as exc:
        raise ConfigError(
            f"TELEGRAM_BOT_TOKEN: Telegram rejected the token ({exc.message}); "
            "get the current one from @BotFather"
        ) from None


def _read_env_file(path: Path) -> None:
    if not path.is_file():
        raise ConfigError(f"--env-file: {path} does not exist")
    # override=False: a variable set in the shell wins, as with docker compose
    load_dotenv(path, override=False)


def _secrets(settings: Settings) -> list[str]:
    return [
        *secret_parts(
            settings.telegram_bot_token.get_secret_value(),
            settings.zhipu_api_key.get_secret_value(),
            settings.redis_url.get_secret_value() if settings.redis_url else None,
        ),
        webhook_secret(settings),
    ]


def _warn_unknown_settings() -> None:
    # a typo in an override would otherwise be ignored in silence; the value may be a
    # secret, so only the name is logged
    for unknown in unknown_settings(os.environ, Settings):
        hint = f" (did you mean {unknown.suggestion}?)" if unknown.suggestion else ""
        log.warning("environment variable %s matches no setting: ignored%s", unknown.name, hint)


def _configuration_error(exc: Exception) -> int:
    print(f"glmbot: configuration error: {exc}", file=sys.stderr)
    return CONFIG_ERROR_EXIT


if __name__ == "__main__":
    sys.exit(main())
