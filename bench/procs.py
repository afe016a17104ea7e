"""Child processes of a benchmark: a private redis-server, the fakes, the bot.

Every child runs in a session of its own (a Ctrl-C in the terminal reaches only the
harness, which then stops them in order) and gets SIGTERM from the kernel if the harness
dies without cleaning up (PR_SET_PDEATHSIG). `Service.stop()` escalates to SIGKILL after
a timeout, so nothing the harness started outlives it.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import re
import shutil
import signal
import socket
import sys
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

REPO_ROOT = Path(__file__).resolve().parents[1]
LOOPBACK = "127.0.0.1"
_PR_SET_PDEATHSIG = 1
_CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
_URL = re.compile(rb"http://127\.0\.0\.1:(\d+)")


def _die_with_parent() -> None:  # runs in the child between fork and exec
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process, all its threads included (0.0 once it is gone)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    # the command name may contain spaces: fields are counted after its closing ")"
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / _CLOCK_TICKS


def peak_rss_mb(pid: int) -> float | None:
    """VmHWM, the resident set's high-water mark, in MiB."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in status.splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


def system_busy_seconds() -> float:
    """CPU seconds all cores spent busy since boot (from /proc/stat)."""
    values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = values[3] + (values[4] if len(values) > 4 else 0)  # idle + iowait
    return (sum(values[:8]) - idle) / _CLOCK_TICKS


def alive(pid: int) -> bool:
    """Whether the pid is a running (not zombie) process."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


@dataclass
class Service:
    """One child process with its log file."""

    name: str
    proc: asyncio.subprocess.Process
    log_path: Path
    _log: IO[bytes] = field(repr=False)
    port: int | None = None
    _drainer: asyncio.Task[None] | None = field(default=None, repr=False)

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc.returncode is None

    def log_tail(self, lines: int = 20) -> str:
        with contextlib.suppress(OSError):
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        return ""

    async def stop(self, *, sig: int = signal.SIGTERM, timeout: float = 15.0) -> None:
        """Ask the process to stop, kill it after ``timeout``; always reaps it."""
        try:
            if self.proc.returncode is None:
                with contextlib.suppress(ProcessLookupError):
                    self.proc.send_signal(sig)
                try:
                    await asyncio.wait_for(self.proc.wait(), timeout)
                except TimeoutError:
                    with contextlib.suppress(ProcessLookupError):
                        self.proc.kill()
                    await self.proc.wait()
            if self._drainer is not None:
                # the pipe reaches EOF with the process; bounded in case a grandchild holds it
                with contextlib.suppress(TimeoutError, asyncio.CancelledError):
                    await asyncio.wait_for(self._drainer, 5.0)
        finally:
            self._log.close()


class Services:
    """Every child of one benchmark run; `stop_all()` stops them newest first."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self.started: list[Service] = []
        log_dir.mkdir(parents=True, exist_ok=True)

    @property
    def pids(self) -> list[int]:
        return [service.pid for service in self.started]

    async def spawn(
        self,
        name: str,
        argv: list[str],
        *,
        env: Mapping[str, str] | None = None,
        announce: bool = False,
        timeout: float = 20.0,
    ) -> Service:
        """Start ``argv``; with ``announce``, wait for the port in its first stdout line."""
        log_path = self.log_dir / f"{name}.log"
        log = log_path.open("wb")
        try:
            proc = await asyncio.create_subprocess_exec(
                *argv,
                cwd=REPO_ROOT,
                env={**os.environ, **(env or {})},
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE if announce else log,
                stderr=log,
                start_new_session=True,
                preexec_fn=_die_with_parent,
            )
        except BaseException:
            log.close()
            raise
        service = Service(name, proc, log_path, log)
        self.started.append(service)
        print(f"    started {name} (pid {proc.pid})", flush=True)
        if announce:
            service.port = await self._read_port(service, timeout)
        return service

    @staticmethod
    async def _read_port(service: Service, timeout: float) -> int:
        stdout = service.proc.stdout
        assert stdout is not None
        try:
            line = await asyncio.wait_for(stdout.readline(), timeout)
        except TimeoutError:
            raise RuntimeError(f"{service.name} did not start within {timeout:g}s") from None
        found = _URL.search(line)
        if found is None:
            raise RuntimeError(f"{service.name} did not start: {service.log_tail()}")
        # nothing else is printed; reading to EOF in the background keeps the pipe drained
        service._log.write(line)
        service._drainer = asyncio.create_task(_drain(stdout))
        return int(found.group(1))

    async def stop_all(self) -> None:
        for service in reversed(self.started):
            with contextlib.suppress(Exception):
                await service.stop()


async def _drain(stream: asyncio.StreamReader) -> None:
    with contextlib.suppress(Exception):
        while await stream.read(65536):
            pass


async def start_redis(services: Services) -> tuple[Service, str, Path]:
    """A private redis-server on a free loopback port, no persistence; returns its URL."""
    server = shutil.which("redis-server")
    if server is None:
        raise RuntimeError("redis-server is not installed (apt-get install redis-server)")
    workdir = Path(tempfile.mkdtemp(prefix="glmbot-bench-redis-"))
    for _ in range(5):  # a free port may be taken between the probe and the bind
        port = free_port()
        argv = [server, "--port", str(port), "--bind", LOOPBACK, "--save", ""]
        argv += ["--appendonly", "no", "--dir", str(workdir), "--maxclients", "10000"]
        service = await services.spawn("redis", argv)
        url = f"redis://{LOOPBACK}:{port}/0"
        if await _redis_answers(port, service):
            service.port = port
            return service, url, workdir
        await service.stop()
        services.started.remove(service)
    raise RuntimeError("could not start a private redis-server")


async def _redis_answers(port: int, service: Service, timeout: float = 10.0) -> bool:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while loop.time() < deadline and service.running():
        with contextlib.suppress(OSError):
            reader, writer = await asyncio.open_connection(LOOPBACK, port)
            try:
                writer.write(b"PING\r\n")
                await writer.drain()
                if (await asyncio.wait_for(reader.readline(), 1.0)).startswith(b"+PONG"):
                    return True
            finally:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
        await asyncio.sleep(0.05)  # polling a starting server, bounded by the deadline
    return False


def python_argv(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]
