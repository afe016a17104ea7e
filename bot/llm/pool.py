"""The bounded thread pool the synchronous zhipuai SDK runs in, fed off the event loop."""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import queue
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["WorkerPool"]

_Job = tuple[Callable[[], Any], Callable[["concurrent.futures.Future[Any]"], None]]


class WorkerPool:
    """``max_workers`` threads (never asyncio's default executor, which would cap
    concurrent answers at a handful), with work handed over by a feeder thread.

    ``ThreadPoolExecutor.submit`` starts a worker when none is idle, and
    ``Thread.start()`` waits until the new thread runs: a GIL and scheduler round trip
    per worker. Called on the event loop for a burst of 1,000 requests, that stalled the
    loop for seconds; the feeder takes those waits instead.
    """

    def __init__(self, max_workers: int, *, name: str) -> None:
        self._name = name
        self._executor = concurrent.futures.ThreadPoolExecutor(
            max_workers=max_workers, thread_name_prefix=name
        )
        self._jobs: queue.SimpleQueue[_Job | None] = queue.SimpleQueue()
        # daemon: a client never closed must not keep the interpreter from exiting
        self._feeder = threading.Thread(target=self._feed, name=f"feed-{name}", daemon=True)
        self._feeder.start()

    def submit(
        self, fn: Callable[[], Any], on_done: Callable[[concurrent.futures.Future[Any]], None]
    ) -> None:
        """Run ``fn`` in a worker; ``on_done(future)`` is called in whatever thread
        settles it (also when it never ran because the pool shut down). Never blocks."""
        self._jobs.put((fn, on_done))

    async def aclose(self) -> None:
        """Run what was submitted (or cancel it if not started) and join every thread.

        Joining up to max_workers threads takes a while (~0.2 s for 1,000): it happens
        in a thread of its own so the loop keeps serving whatever else is shutting down.
        """
        loop = asyncio.get_running_loop()
        finished: asyncio.Future[None] = loop.create_future()

        def settle(error: BaseException | None) -> None:
            if finished.done():
                return
            if error is None:
                finished.set_result(None)
            else:
                finished.set_exception(error)

        def shut_down() -> None:
            error: BaseException | None = None
            try:
                self._jobs.put(None)
                self._feeder.join()
                self._executor.shutdown(wait=True, cancel_futures=True)
            except BaseException as exc:
                error = exc
            with contextlib.suppress(RuntimeError):  # the loop is closed: nobody waits
                loop.call_soon_threadsafe(settle, error)

        threading.Thread(target=shut_down, name=f"shutdown-{self._name}").start()
        await finished

    def _feed(self) -> None:
        while (job := self._jobs.get()) is not None:
            fn, on_done = job
            future: concurrent.futures.Future[Any]
            try:
                future = self._executor.submit(fn)
            except RuntimeError as exc:  # shut down from elsewhere (interpreter exit)
                future = concurrent.futures.Future()
                future.set_exception(exc)
            future.add_done_callback(on_done)
