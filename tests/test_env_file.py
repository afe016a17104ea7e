"""The secrets file `.env`: read by `make run`, never one `git add .` away from a commit,
never sent to a docker build."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.bot_process import ROOT
from tests.test_startup import plain_env

# `make run` must not reinstall .venv while testing the run target itself.
MAKE = ["make", "--no-print-directory", "-o", ".venv/.installed", f"PY={sys.executable}"]


def _git(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["git", *args], cwd=ROOT, capture_output=True, text=True, check=False)


@pytest.mark.parametrize("name", [".env", ".env.production", "deploy/.env"])
def test_git_ignores_env_files(name: str) -> None:
    if _git("rev-parse", "--git-dir").returncode != 0:
        pytest.skip("not a git checkout")
    assert _git("check-ignore", "--quiet", "--no-index", name).returncode == 0


def test_docker_builds_do_not_receive_secrets_or_local_state() -> None:
    patterns = {
        line.strip()
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    }
    assert {".env", ".env.*", ".git", ".venv"} <= patterns
    assert not any(line.startswith("!") for line in patterns)  # nothing re-included


def _make_run(tmp_path: Path, env_file: str, **shell: str) -> subprocess.CompletedProcess[str]:
    """`make run` with `env_file` as .env and `shell` set in the environment."""
    (tmp_path / ".env").write_text(env_file)
    env = {k: v for k, v in plain_env(**shell).items() if not k.startswith("MAKE")}
    for name in ("TELEGRAM_BOT_TOKEN", "LOG_LEVEL"):
        if name not in shell:
            env.pop(name, None)
    return subprocess.run(
        [*MAKE, "run", f"ENV_FILE={tmp_path / '.env'}"],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def _bot_says(run: subprocess.CompletedProcess[str]) -> str:
    """The bot's last stderr line (make adds its own after it)."""
    assert run.returncode != 0, run.stderr
    lines = [line for line in run.stderr.splitlines() if not line.startswith("make")]
    return lines[-1] if lines else ""


def test_make_run_reads_the_env_file(tmp_path: Path) -> None:
    # a token with a trailing space, as an editor may leave it: proof the file was read
    run = _make_run(tmp_path, "TELEGRAM_BOT_TOKEN='42:TEST-TOKEN '\n")
    assert _bot_says(run).startswith(
        "glmbot: configuration error: TELEGRAM_BOT_TOKEN: contains a space"
    )
    assert "Traceback" not in run.stderr


def test_variables_set_in_the_shell_win_over_the_env_file(tmp_path: Path) -> None:
    run = _make_run(
        tmp_path,
        "TELEGRAM_BOT_TOKEN=not-a-token\nLOG_LEVEL=verbose\n",
        TELEGRAM_BOT_TOKEN="42:TEST-TOKEN",
    )
    # the shell's good token was used, and LOG_LEVEL still came from the file
    assert _bot_says(run).startswith("glmbot: configuration error: LOG_LEVEL:")
