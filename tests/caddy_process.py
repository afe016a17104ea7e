"""`caddy run` on the real deploy/Caddyfile, outside Docker.

Docker's DNS answers the compose service name with one address per replica; here Caddy
gets an /etc/hosts of its own instead (a private mount namespace, so the machine's file is
untouched), listing the replicas' loopback addresses under that name. Rewriting it is how
a test scales the service up or down.
"""

from __future__ import annotations

import asyncio
import functools
import os
import re
import shutil
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import TracebackType

import aiohttp

from tests.webhook_updates import free_port

ROOT = Path(__file__).resolve().parent.parent
CADDYFILE = ROOT / "deploy" / "Caddyfile"
CADDY = shutil.which("caddy")
_BIND_HOSTS = 'mount --bind "$1" /etc/hosts'


def caddy_version() -> tuple[int, int, int]:
    """(2, 6, 2) for Debian's "2.6.2", or an upstream build's "v2.11.2 h1:..."."""
    assert CADDY is not None
    out = subprocess.run([CADDY, "version"], capture_output=True, text=True, check=True)
    found = re.search(r"(\d+)\.(\d+)\.(\d+)", out.stdout)
    assert found, out.stdout
    major, minor, patch = (int(part) for part in found.groups())
    return major, minor, patch


@functools.cache
def private_hosts_argv() -> tuple[str, ...] | None:
    """The command prefix giving a process its own mount namespace, where it may bind a
    file over /etc/hosts; None where this machine allows none."""
    unshare = shutil.which("unshare")
    if unshare is None:
        return None
    # root has the right already; anyone else gets it inside a user namespace of their own
    prefix = (unshare, "--mount") if os.geteuid() == 0 else (unshare, "--map-root-user", "--mount")
    with tempfile.NamedTemporaryFile("w", prefix="glmbot-hosts-") as probe:
        probe.write("127.0.0.1 localhost\n")
        probe.flush()
        tried = subprocess.run(
            [*prefix, "sh", "-c", _BIND_HOSTS, "sh", probe.name], capture_output=True
        )
    return prefix if tried.returncode == 0 else None


class CaddyProcess:
    """Caddy serving deploy/Caddyfile on 127.0.0.1:``port`` (plain HTTP: the site
    address is ``WEBHOOK_DOMAIN``, here ``:port``), proxying to port ``upstream_port`` of
    whatever addresses its /etc/hosts lists under the upstream's name."""

    def __init__(
        self, tmp_path: Path, *, upstream_port: int, hosts: Mapping[str, Sequence[str]]
    ) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._dir = tmp_path / "caddy"
        self._dir.mkdir()
        self._hosts_file = self._dir / "hosts"
        self._hosts = {name: list(addresses) for name, addresses in hosts.items()}
        self._write_hosts()
        self.log_path = self._dir / "caddy.log"
        self.env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(self._dir),
            "XDG_DATA_HOME": str(self._dir / "data"),
            "XDG_CONFIG_HOME": str(self._dir / "config"),
            "WEBHOOK_DOMAIN": f":{self.port}",
            "BOT_UPSTREAM_PORT": str(upstream_port),
            # the default, localhost:2019, is taken by whichever Caddy started first
            "CADDY_ADMIN": f"127.0.0.1:{free_port()}",
        }
        self._proc: asyncio.subprocess.Process | None = None

    def list_addresses(self, name: str, addresses: Sequence[str]) -> None:
        """Answer ``name`` with these addresses from now on, as Docker's DNS does when
        replicas start or stop. Caddy sees it within its refresh plus Go's 5 s hosts
        cache."""
        self._hosts[name] = list(addresses)
        self._write_hosts()

    def _write_hosts(self) -> None:
        # in place: the bind mount follows this inode, not the path
        lines = [Path("/etc/hosts").read_text()]
        lines += [f"{a} {name}\n" for name, addresses in self._hosts.items() for a in addresses]
        with self._hosts_file.open("r+" if self._hosts_file.exists() else "w") as hosts:
            hosts.write("".join(lines))
            hosts.truncate()

    async def __aenter__(self) -> CaddyProcess:
        prefix = private_hosts_argv()
        assert CADDY is not None
        assert prefix is not None
        script = f'{_BIND_HOSTS} && exec "$2" run --adapter caddyfile --config "$3"'
        with self.log_path.open("wb") as log:
            self._proc = await asyncio.create_subprocess_exec(
                *prefix,
                "sh",
                "-c",
                script,
                "sh",
                str(self._hosts_file),
                CADDY,
                str(CADDYFILE),
                env=self.env,
                stdout=log,
                stderr=log,
            )
        try:
            await self._wait_until_serving()
        except BaseException:
            await self.stop()
            raise
        return self

    async def _wait_until_serving(self, timeout: float = 30) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        async with aiohttp.ClientSession() as session:
            while True:
                assert self._proc is not None
                if self._proc.returncode is not None:
                    raise AssertionError(f"caddy exited: {self.log()}")
                try:
                    async with session.get(f"{self.url}/") as resp:
                        if resp.status == 404:  # the Caddyfile's catch-all
                            return
                except aiohttp.ClientError:
                    pass
                if loop.time() > deadline:
                    raise AssertionError(f"caddy did not serve within {timeout:g}s: {self.log()}")
                await asyncio.sleep(0.05)

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    async def stop(self) -> None:
        proc = self._proc
        if proc is None:
            return
        if proc.returncode is None:
            proc.terminate()
        try:
            await asyncio.wait_for(proc.wait(), 30)
        except TimeoutError:
            proc.kill()
            await proc.wait()

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")
