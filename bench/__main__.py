"""`python -m bench`: run the benchmark scenarios and write bench/README.md + bench/results/."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import platform
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from bench import report
from bench.procs import LOOPBACK, REPO_ROOT, Services, start_redis
from bench.scenarios import SCENARIOS, make_plan, run_scenarios

BENCH_DIR = Path(__file__).resolve().parent


def _parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--chats",
        type=lambda v: [int(x) for x in v.split(",") if x.strip()],
        help="concurrency levels of the concurrency scenario (default 50,200,500,1000)",
    )
    size = parser.add_mutually_exclusive_group()
    size.add_argument("--quick", action="store_true", help="smaller runs (about 2 minutes)")
    size.add_argument("--smoke", action="store_true", help="tiny runs that check correctness")
    parser.add_argument(
        "--scenario",
        action="append",
        help=f"run only these (comma-separated or repeated): {', '.join(SCENARIOS)}",
    )
    parser.add_argument("--readme", type=Path, default=BENCH_DIR / "README.md")
    parser.add_argument("--results-dir", type=Path, default=BENCH_DIR / "results")
    parser.add_argument("--no-readme", action="store_true", help="leave the README alone")
    args = parser.parse_args(argv)
    names = [n.strip() for v in (args.scenario or [",".join(SCENARIOS)]) for n in v.split(",")]
    unknown = [n for n in names if n not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario {', '.join(unknown)}; choose from {', '.join(SCENARIOS)}")
    args.names = [n for n in SCENARIOS if n in names]
    return args


def _commit() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO_ROOT,
            capture_output=True,
            text=True,
            check=True,
            timeout=10,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    # others work in this tree: the bot that ran may include changes not yet committed
    return f"{head} + uncommitted changes" if dirty else head


async def _redis_version(url: str) -> str:
    import redis.asyncio as aioredis

    async with aioredis.Redis.from_url(url) as client:
        info = await client.info("server")
    return f"Redis {info.get('redis_version', '?')}"


async def _run(args: argparse.Namespace) -> dict[str, Any]:
    mode = "smoke" if args.smoke else "quick" if args.quick else "full"
    plan = make_plan(mode, args.chats)
    started = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    stamp = time.strftime("%Y%m%dT%H%M%S", time.gmtime())
    services = Services(args.results_dir / "logs" / stamp)
    loop = asyncio.get_running_loop()
    main_task = asyncio.current_task()
    if main_task is not None:
        # SIGTERM gets the same orderly cleanup as Ctrl-C
        loop.add_signal_handler(signal.SIGTERM, main_task.cancel)
    workdir: Path | None = None
    try:
        redis_service, redis_url, workdir = await start_redis(services)
        assert redis_service.port is not None
        meta = {
            "started_at": started,
            "mode": mode,
            "command": "python -m bench " + " ".join(sys.argv[1:])
            if sys.argv[1:]
            else "python -m bench",
            "commit": _commit(),
            "python": platform.python_version(),
            "cpus": os.cpu_count(),
            "loadavg_before": " ".join(f"{x:.2f}" for x in os.getloadavg()),
            "redis_version": await _redis_version(redis_url),
            "scenarios": args.names,
        }
        print(f"glmbot bench ({mode}): {', '.join(args.names)}; logs in {services.log_dir}")
        scenarios = await run_scenarios(
            plan, args.names, services, (redis_url, LOOPBACK, redis_service.port)
        )
    finally:
        with contextlib.suppress(Exception):
            loop.remove_signal_handler(signal.SIGTERM)
        await services.stop_all()
        if workdir is not None:
            shutil.rmtree(workdir, ignore_errors=True)
    meta["finished_at"] = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime())
    meta["loadavg_after"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    meta["pids"] = services.pids
    return {"meta": meta, "scenarios": scenarios}


def _incomplete(run: dict[str, Any]) -> list[str]:
    problems = []
    for name, section in run["scenarios"].items():
        for r in section.get("runs", [section] if "completed" in section else []):
            if r.get("completed") != r.get("chats"):
                problems.append(f"{name}: {r.get('completed')}/{r.get('chats')} answers complete")
    return problems


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    try:
        run = asyncio.run(_run(args))
    except (KeyboardInterrupt, asyncio.CancelledError):
        print("bench: interrupted; every process it started was stopped", file=sys.stderr)
        return 130
    path, merged = report.write_json(args.results_dir, run)
    markdown = report.render(merged)
    if not args.no_readme:
        report.update_readme(args.readme, markdown)
        print(f"results: {path} and {args.readme}")
    else:
        print(f"results: {path}")
    problems = _incomplete(run)
    for problem in problems:
        print(f"bench: {problem}", file=sys.stderr)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
