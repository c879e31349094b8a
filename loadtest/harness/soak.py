"""The soak: the mixed locust scenario (`python -m loadtest locust`, every user class, every answer
checked) against the service with batching on, every model of the repository reloaded through the
repository API half-way through."""

from __future__ import annotations

import contextlib
import json
import os
import resource
import secrets
import shlex
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from loadtest.harness.payloads import MODELS
from loadtest.harness.servers import REPO, running, start_service, with_repo_on_path

SOAK_USERS = 128


@dataclass(frozen=True)
class Reload:
    model: str
    status: int | str  # the HTTP status, or why there was none
    seconds: float


@dataclass(frozen=True)
class SoakResult:
    users: int
    seconds: int
    exit_code: int
    total: dict | None  # locust's "Aggregated" row of summary.json
    by_name: list[dict]  # every row of summary.json
    reloads: tuple[Reload, ...]
    locust_cpu_s: float  # run.py's and locust's

    @property
    def passed(self) -> bool:
        return (
            self.exit_code == 0
            and self.total is not None
            and self.total["requests"] > 0
            and self.total["failures"] == 0
            and all(r.status == 200 for r in self.reloads)
        )

    def summary(self) -> str:
        total = self.total or {"requests": 0, "failures": "unknown"}
        reloads = ", ".join(f"{r.model} {r.status}" for r in self.reloads)
        return f"{total['requests']:,} requests, {total['failures']} failures; reloads: {reloads}"


def reload_model(url: str, name: str, key: str) -> Reload:
    request = urllib.request.Request(
        f"{url}/v2/repository/models/{name}/load",
        b"",
        {"Authorization": f"Bearer {key}"},
        method="POST",
    )
    started = time.perf_counter()
    status: int | str
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            status = response.status
    except urllib.error.HTTPError as error:
        status = error.code
    except OSError as error:  # no answer at all
        status = f"no answer: {error}"
    return Reload(name, status, time.perf_counter() - started)


def children_cpu_seconds() -> float:
    """CPU seconds of this process's reaped children and of the children they reaped."""
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def soak(seconds: int, folder: Path, checkout: Path = REPO) -> SoakResult:
    folder.mkdir(parents=True, exist_ok=True)
    key = secrets.token_urlsafe(24)
    names = sorted(p.name for p in MODELS.iterdir() if p.is_dir())
    service = start_service(
        folder / "service.log", {"SERVICE_ADMIN_API_KEY": key}, checkout=checkout
    )
    with running(service) as (_, url), (folder / "run.log").open("wb") as log:
        command = [sys.executable, "-m", "loadtest", "locust", "--host", url,
                   "--users", str(SOAK_USERS), "--spawn-rate", str(SOAK_USERS),
                   "--run-time", f"{seconds}s", "--reports", str(folder)]  # fmt: skip
        print(f"soak: {shlex.join(command[1:])}", flush=True)
        before = children_cpu_seconds()
        locust = subprocess.Popen(command, cwd=REPO, env=with_repo_on_path(dict(os.environ)),
                                  stdout=log, stderr=subprocess.STDOUT)  # fmt: skip
        with contextlib.suppress(subprocess.TimeoutExpired):
            locust.wait(timeout=seconds / 2)  # returns early only when locust fails
        reloads = tuple(reload_model(url, name, key) for name in names)
        code = locust.wait(timeout=seconds + 120)
        locust_cpu = children_cpu_seconds() - before  # run.py and locust, the only ones reaped
    summary_file = folder / "summary.json"
    stats = json.loads(summary_file.read_text("utf-8")) if summary_file.exists() else []
    total = next((row for row in stats if row["name"] == "Aggregated"), None)
    result = SoakResult(SOAK_USERS, seconds, code, total, stats, reloads, locust_cpu)
    print(f"soak: {'PASS' if result.passed else 'FAIL'}: {result.summary()}", flush=True)
    return result
