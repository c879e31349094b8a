"""Where the service's CPU goes under load: py-spy samples it while wrk drives one endpoint.

    python loadtest/profile_service.py [--endpoint boston-v2] [--concurrency 8] [--seconds 10]
                                       [--batching on|off] [--out reports/profile]

Starts `python -m service` (the committed models, default settings) on loopback, warms it up,
then runs `wrk -t1 -c<C>` with the benchmark's bodies (`loadtest/payloads.py`) while
`py-spy record` samples the server's threads (idle ones left out). Each sample is put in the group
of the innermost frame that belongs to one (inference, text encoding, body validation, the
handlers, batching, the request middleware, FastAPI/Starlette, uvicorn); the report gives each
group's share and its CPU microseconds per request (share × the server's CPU time ÷ requests).

Writes <out>/profile-<endpoint>.md and py-spy's collapsed stacks beside it (`.txt`, for
flamegraph tools or speedscope). py-spy reads another process's memory: it needs ptrace rights
(root, or CAP_SYS_PTRACE in a container).
"""

from __future__ import annotations

import argparse
import collections
import json
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from loadtest.payloads import TYPED_PATHS, typed_bodies, v2_bodies, v2_path  # noqa: E402
from loadtest.run import start_service, stop_server  # noqa: E402

WRK_SCRIPT = Path(__file__).with_name("wrk.lua")
ENDPOINTS = {  # name → (path, bodies)
    "boston-v2": lambda: (v2_path("boston"), v2_bodies("boston")),
    "boston-typed": lambda: (TYPED_PATHS["boston"], typed_bodies("boston")),
    "imdb-v2": lambda: (v2_path("imdb"), v2_bodies("imdb")),
    "imdb-typed": lambda: (TYPED_PATHS["imdb"], typed_bodies("imdb")),
}
# (group, substrings of a frame's file): a sample belongs to the group of its innermost frame
# that matches one, tried in this order for each frame.
GROUPS = [
    ("inference (onnxruntime)", ("onnxruntime",)),
    ("text encoding", ("service/encoding.py",)),
    ("body parsing and validation", ("service/api/wire.py", "pydantic")),
    ("batching", ("service/batching.py",)),
    ("handlers (checks, arrays, answers)", ("service/api/", "service/registry.py", "numpy")),
    ("request middleware and metrics", ("service/app.py", "service/logs.py", "prometheus_client")),
    ("FastAPI and Starlette", ("fastapi/", "starlette/")),
    ("uvicorn (HTTP)", ("uvicorn/", "httptools")),
]


def group_of(stack: list[str]) -> str:
    for frame in reversed(stack):  # innermost first
        for group, markers in GROUPS:
            if any(marker in frame for marker in markers):
                return group
    return "event loop and other"


def read_samples(path: Path) -> collections.Counter:
    """py-spy's raw output: one line per distinct stack, 'frame;frame;... count'."""
    groups: collections.Counter = collections.Counter()
    for line in path.read_text("utf-8").splitlines():
        stack, _, count = line.rpartition(" ")
        if stack:
            groups[group_of(stack.split(";"))] += int(count)
    return groups


def write_bodies(path: Path, url_path: str, bodies: list[dict]) -> None:
    lines = [f"{url_path}\t{json.dumps(b, separators=(',', ':'))}" for b in bodies]
    path.write_text("\n".join(lines) + "\n", "utf-8")


def wrk(url: str, bodies: Path, concurrency: int, seconds: float) -> dict:
    output = subprocess.run(
        ["wrk", "-t1", f"-c{concurrency}", f"-d{seconds}s", "-s", str(WRK_SCRIPT), url, "--",
         str(bodies)],
        check=True, capture_output=True, text=True,
    ).stdout  # fmt: skip
    return json.loads(output.strip().splitlines()[-1])


def report(args, groups: collections.Counter, run: dict, cpu_seconds: float) -> str:
    total = sum(groups.values())
    requests = run["requests"]
    cpu_us = cpu_seconds / requests * 1e6
    lines = [
        f"# Where the service's CPU goes: {args.endpoint}, c={args.concurrency}, "
        f"batching {args.batching}",
        "",
        f"Regenerate: `python loadtest/profile_service.py --endpoint {args.endpoint} "
        f"--concurrency {args.concurrency} --seconds {args.seconds} --batching {args.batching}`",
        "",
        f"wrk: {requests:,} requests in {run['duration_us'] / 1e6:.1f} s "
        f"({requests / (run['duration_us'] / 1e6):,.0f}/s), p50 {run['p50_us'] / 1000:.2f} ms; "
        f"server CPU {cpu_us:.0f} µs per request; py-spy: {total:,} samples of the server's "
        "busy threads (sampling slows the server a little).",
        "",
        "| group (innermost frame) | share of samples | CPU µs per request |",
        "|---|---|---|",
    ]
    for group, count in groups.most_common():
        share = count / total
        lines.append(f"| {group} | {share:.1%} | {share * cpu_us:.0f} |")
    lines += ["", f"Collapsed stacks: `profile-{args.endpoint}.txt`.", ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--endpoint", choices=sorted(ENDPOINTS), default="boston-v2")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--seconds", type=int, default=10)
    parser.add_argument("--batching", choices=["on", "off"], default="on")
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "profile")
    args = parser.parse_args(argv)
    # py-spy comes with the dev extra, beside this interpreter; wrk is Debian's package.
    py_spy = shutil.which("py-spy", path=str(Path(sys.executable).parent)) or shutil.which("py-spy")
    if py_spy is None or shutil.which("wrk") is None:
        parser.error("needs wrk (apt-get install wrk) and py-spy (pip install -e '.[dev]')")

    out = args.out.resolve()
    out.mkdir(parents=True, exist_ok=True)
    url_path, bodies = ENDPOINTS[args.endpoint]()
    bodies_file = out / f"bodies-{args.endpoint}.txt"
    write_bodies(bodies_file, url_path, bodies)
    stacks = out / f"profile-{args.endpoint}.txt"
    settings = {} if args.batching == "on" else {"SERVICE_DEFAULT_BATCHING": '{"enabled": false}'}
    process, url = start_service(out / "service.log", settings)
    try:
        wrk(url, bodies_file, args.concurrency, 2)  # warm-up
        server = psutil.Process(process.pid)
        before = server.cpu_times()
        sampler = subprocess.Popen(
            [py_spy, "record", "--pid", str(process.pid), "--duration", str(args.seconds),
             "--rate", "250", "--format", "raw", "--output", str(stacks), "--nonblocking"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(0.5)  # py-spy attaches
        run = wrk(url, bodies_file, args.concurrency, args.seconds - 1)
        after = server.cpu_times()
        if sampler.wait(60) != 0:
            raise SystemExit(f"py-spy failed (exit {sampler.returncode}); does it have ptrace?")
    finally:
        stop_server(process)
    bodies_file.unlink()
    cpu_seconds = (after.user + after.system) - (before.user + before.system)
    text = report(args, read_samples(stacks), run, cpu_seconds)
    (out / f"profile-{args.endpoint}.md").write_text(text, "utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
