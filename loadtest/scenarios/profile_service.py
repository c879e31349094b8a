"""Where the service's CPU goes under load: py-spy samples it while wrk drives one endpoint.

    python -m loadtest profile_service [--endpoint boston-v2] [--concurrency 8] [--seconds 10]
                                       [--batching on|off] [--out reports/profile]

Starts `python -m service` (the committed models or $LOADTEST_MODELS, default settings) on loopback,
warms it up, then runs `wrk -t1 -c<C>` with the benchmark's bodies (`loadtest/harness/payloads.py`)
while `py-spy record` samples the server's threads (idle ones left out). Each sample is put in the
group of the innermost frame that belongs to one (inference, text encoding, body validation, the
handlers, batching, the request middleware, FastAPI/Starlette, uvicorn); the report gives each
group's share and its CPU microseconds per request (share × the server's CPU time ÷ requests).

Writes <out>/profile-<endpoint>.md and py-spy's collapsed stacks beside it (`.txt`, for
flamegraph tools or speedscope). py-spy reads another process's memory: it needs ptrace rights
(root, or CAP_SYS_PTRACE in a container).
"""

from __future__ import annotations

import argparse
import collections
import shutil
import subprocess
import sys
import time
from pathlib import Path

import psutil

from loadtest.harness.measure import cpu_seconds
from loadtest.harness.payloads import TYPED_PATHS
from loadtest.harness.servers import NO_BATCHING, REPO, start_service, stop_server
from loadtest.harness.wrk import Run, run_wrk, write_workloads

CHOICES = sorted(f"{model}-{endpoint}" for model in TYPED_PATHS for endpoint in ("typed", "v2"))
# (group, substrings of a frame's file): a sample belongs to the group of its innermost frame
# that matches one, tried in this order for each frame. py-spy names a file by its last two path
# components (service/api/rest/wire.py is "rest/wire.py").
REST = ("v2", "v1", "typed", "admin", "fastpath", "binary", "errors", "__init__")
GROUPS = [
    ("inference (onnxruntime)", ("onnxruntime",)),
    ("text encoding", ("contract/text.py",)),
    ("body parsing and validation", ("rest/wire.py", "pydantic")),
    ("batching", ("service/batching.py",)),
    (
        "request lifecycle and metrics",
        ("rest/middleware.py", "service/lifecycle.py", "service/logs.py", "prometheus_client"),
    ),
    (
        "handlers and data plane (checks, admission, arrays, answers)",
        (
            *(f"rest/{name}.py" for name in REST),
            "typed/",  # the typed endpoints' package (service/api/rest/typed/)
            "service/inference.py",
            "service/dataplane.py",
            "service/admission.py",
            "contract/numbers.py",
            "service/registry.py",
            "numpy",
        ),
    ),
    ("FastAPI and Starlette", ("fastapi/", "starlette/")),
    ("uvicorn and the service's HTTP protocol", ("uvicorn/", "httptools", "rest/http.py")),
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


def report(args, groups: collections.Counter, run: Run, server_cpu: float) -> str:
    total = sum(groups.values())
    requests = run.requests
    cpu_us = server_cpu / requests * 1e6
    lines = [
        f"# Where the service's CPU goes: {args.endpoint}, c={args.concurrency}, "
        f"batching {args.batching}",
        "",
        f"Regenerate: `python -m loadtest profile_service --endpoint {args.endpoint} "
        f"--concurrency {args.concurrency} --seconds {args.seconds} --batching {args.batching}`",
        "",
        f"wrk: {requests:,} requests in {run.seconds:.1f} s "
        f"({run.rps:,.0f}/s), p50 {run.p50_ms:.2f} ms; "
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
    parser.add_argument("--endpoint", choices=CHOICES, default="boston-v2")
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
    model, endpoint = args.endpoint.split("-")
    (workload,) = [w for w in write_workloads([model], out / "bodies") if w.endpoint == endpoint]
    stacks = out / f"profile-{args.endpoint}.txt"
    settings = {} if args.batching == "on" else NO_BATCHING
    process, url = start_service(out / "service.log", settings)
    try:
        run_wrk(url, workload, args.concurrency, 2)  # warm-up
        server = psutil.Process(process.pid)
        before = cpu_seconds(server)
        sampler = subprocess.Popen(
            [py_spy, "record", "--pid", str(process.pid), "--duration", str(args.seconds),
             "--rate", "250", "--format", "raw", "--output", str(stacks), "--nonblocking"],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        time.sleep(0.5)  # py-spy attaches
        run, _, _ = run_wrk(url, workload, args.concurrency, args.seconds - 1)
        server_cpu = cpu_seconds(server) - before
        if sampler.wait(60) != 0:
            raise SystemExit(f"py-spy failed (exit {sampler.returncode}); does it have ptrace?")
    finally:
        stop_server(process)
    shutil.rmtree(out / "bodies")
    text = report(args, read_samples(stacks), run, server_cpu)
    (out / f"profile-{args.endpoint}.md").write_text(text, "utf-8")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
