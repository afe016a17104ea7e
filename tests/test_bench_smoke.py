"""The benchmark harness in its smoke size: correctness only, never speed.

It runs the real `python -m bench` (which runs the real bot process against the fakes
and a private redis-server) and checks that every answer came out complete, that the
results table was written between the README markers, and that nothing it started is
left running, after a normal end and after Ctrl-C.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

from bench.procs import alive

REPO_ROOT = Path(__file__).resolve().parents[1]
_STARTED = re.compile(r"started (\S+) \(pid (\d+)\)")


def _bench(tmp_path: Path, *args: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "bench",
        "--smoke",
        "--readme",
        str(tmp_path / "README.md"),
        "--results-dir",
        str(tmp_path / "results"),
        *args,
    ]


def test_smoke_run_answers_everything_and_writes_the_table(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    readme.write_text(
        "# Bench\n\nmethod text\n<!-- bench:results:start -->\nold table\n"
        "<!-- bench:results:end -->\ntrailing text\n"
    )
    # every bot start costs seconds of imports (aiogram builds its types): the overhead and
    # scale-out scenarios, two more bot starts each, are left to `python -m bench --smoke`
    scenarios = "concurrency,limits,reasoning,photos,history"
    done = subprocess.run(
        _bench(tmp_path, "--scenario", scenarios),
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=210,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]

    results = json.loads((tmp_path / "results" / "latest.json").read_text())
    s = results["scenarios"]
    (concurrency,) = s["concurrency"]["runs"]
    assert concurrency["completed"] == concurrency["chats"] == 20
    assert concurrency["warmup"]["completed"] == 20
    (limited,) = s["limits"]["runs"]
    assert limited["completed_private"] == 20
    assert limited["completed_groups"] == 5
    for run in (concurrency, limited):
        assert run["glm_violations"] == 0
        assert run["fake_server_errors"] == 0
        assert run["glm_requests"] == run["chats"]
        assert run["redis_per_answer"]["round_trips"] > 0
    thinking = s["reasoning"]
    assert thinking["completed"] == thinking["chats"] == 5
    assert thinking["glm_violations"] == 0
    # every answer was timed from its first reasoning chunk to the chat's first progress
    assert thinking["first_reasoning_to_visible_private_ms"]["n"] == 3
    assert thinking["first_reasoning_to_visible_group_ms"]["n"] == 2
    (photos,) = s["photos"]["runs"]
    assert photos["completed"] == photos["chats"] == 5
    # each photo question downloaded its own photo and GLM took every request
    assert photos["api_methods"]["getFile"] == 5
    assert photos["glm_violations"] == 0
    assert s["photos"]["pipeline"]["sent_base64_chars"] > 0
    assert [row["stored"] for row in s["history"]["rows"]] == [10, 10, 1000, 1000]
    assert set(s) == {"concurrency", "limits", "reasoning", "photos", "history"}

    text = readme.read_text()
    assert text.startswith("# Bench\n\nmethod text\n")
    assert text.endswith("<!-- bench:results:end -->\ntrailing text\n")
    assert "old table" not in text
    assert "| 20 | 20/20 |" in text
    assert "first reasoning chunk → first visible progress" in text
    assert "| photo, at once | 5/5 |" in text

    started = _STARTED.findall(done.stdout)
    assert {name for name, _ in started} >= {"redis", "fake-telegram", "fake-glm", "bot"}
    assert sorted(int(pid) for _, pid in started) == sorted(results["meta"]["pids"])
    assert not [pid for pid in results["meta"]["pids"] if alive(pid)]


def test_ctrl_c_stops_everything_it_started(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        _bench(tmp_path, "--scenario", "concurrency", "--no-readme"),
        cwd=REPO_ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    pids: list[int] = []
    try:
        assert proc.stdout is not None
        deadline = time.monotonic() + 60
        for line in proc.stdout:  # ends at EOF if the bench exits early
            found = _STARTED.search(line)
            if found:
                pids.append(int(found.group(2)))
                if found.group(1) == "bot":
                    break
            assert time.monotonic() < deadline, "the bench did not start the bot in time"
        assert len(pids) == 4, "redis, both fakes and the bot"
        os.kill(proc.pid, signal.SIGINT)
        _, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 130, err[-3000:]
    assert not [pid for pid in pids if alive(pid)]
