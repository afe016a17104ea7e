"""Every filter runs on the event loop: aiogram sends synchronous ones to a thread pool."""

from __future__ import annotations

from aiogram import Router

from handlers import get_routers


def _routers(routers: list[Router]) -> list[Router]:
    found: list[Router] = []
    for router in routers:
        found.append(router)
        found.extend(_routers(list(router.sub_routers)))
    return found


def test_no_filter_or_handler_is_synchronous() -> None:
    synchronous = []
    for router in _routers(get_routers()):
        for name, observer in router.observers.items():
            for flt in observer._handler.filters or []:
                if not flt.awaitable:
                    synchronous.append(f"{router.name}.{name} filter {flt.callback!r}")
            for handler in observer.handlers:
                if not handler.awaitable:
                    synchronous.append(f"{router.name}.{name} handler {handler.callback!r}")
                for flt in handler.filters or []:
                    if not flt.awaitable:
                        synchronous.append(f"{router.name}.{name} filter {flt.callback!r}")
    assert synchronous == []
