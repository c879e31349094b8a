"""The data plane's limits, measured: peak memory with four concurrent maximum-size bodies of each
kind, the health probe's latency while the largest allowed text batch is encoded, and Boston V2
throughput at c=8 (wrk), for this checkout and, with `--before DIR`, for another checkout of the
service in the same run (before/after in one report).

    python -m loadtest dataplane [--before DIR] [--rounds 3] [--duration 10]
                                           [--out reports/dataplane]

Each measurement starts a fresh `python -m service` on the load tests' models ($LOADTEST_MODELS,
default the committed ones) with its default settings, so each checkout is measured with its own
limits: a "maximum-size body" is the largest its SERVICE_MAX_BODY_BYTES allows (capped by
SERVICE_MAX_BATCH_ROWS and SERVICE_MAX_TEXT_CHARS); IMDB's V2 tensors are its newest version's
inputs (a dense version's rows, a sparse one's ids and weights, `payloads.row_width` a row).
Peak memory is the server's VmHWM (the kernel's high-water mark of its resident memory). The
throughput runs alternate between the checkouts, `--rounds` times each, and the median is kept.
Writes <out>.md and <out>.json.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import psutil

from loadtest.harness.payloads import (
    datatypes,
    largest_rows,
    model_config,
    row_width,
    typed_bodies,
)
from loadtest.harness.report import machine_lines, provenance, service_code, table
from loadtest.harness.servers import REPO, service_environment, start_service, stop_server
from loadtest.harness.wrk import median_of, warm_run, write_workloads

CONCURRENT_BODIES = 4
# What fills IMDB's V2 tensors, by datatype: a weight or a dense row's number, and an id
FILLER = {"FP32": 0.5, "INT64": 1}
PROBE_INTERVAL_S = 0.005


def service_limits(checkout: Path) -> dict[str, int]:
    """The checkout's default limits, read from its own settings."""
    code = (
        "import json; from service.settings import Settings; s = Settings(_env_file=None); "
        "print(json.dumps({'body': s.max_body_bytes, 'rows': s.max_batch_rows, "
        "'chars': s.max_text_chars}))"
    )
    env = service_environment(checkout=checkout)
    output = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                            check=True, cwd=checkout).stdout  # fmt: skip
    return json.loads(output)


def largest_bodies(limits: dict[str, int]) -> dict[str, tuple[str, bytes]]:
    """Path and body of the largest legal request of each kind."""
    room = limits["body"] - 1024  # the JSON around the data
    imdb_inputs, width = datatypes("imdb"), row_width("imdb")
    row_bytes = width * sum(len(f"{FILLER[d]},") for d in imdb_inputs.values())
    rows = largest_rows("imdb", min(limits["rows"], room // row_bytes))
    imdb_v2 = {"inputs": [{"name": name, "shape": [rows, width], "datatype": datatype,
                           "data": [FILLER[datatype]] * (rows * width)}
                          for name, datatype in imdb_inputs.items()]}  # fmt: skip
    boston_input = model_config("boston")["inputs"][0]["name"]
    review = (typed_bodies("imdb")[0]["reviews"][0] + " ") * (limits["chars"] // 200)
    review = review[: limits["chars"]]
    texts = min(limits["rows"], room // (len(review) + 4))
    house = typed_bodies("boston")[0]["houses"][0]
    boston_v2 = {"inputs": [{"name": boston_input, "shape": [limits["rows"], 13], "datatype": "FP32",
                             "data": [[house[k] for k in house]] * limits["rows"]}]}  # fmt: skip
    bodies = {
        "V2 IMDB, JSON tensor": ("/v2/models/imdb/infer", imdb_v2),
        "typed IMDB, raw reviews": ("/api/imdb", {"reviews": [review] * texts}),
        "typed Reuters, raw newswires": ("/api/reuters", {"newswires": [review] * texts}),
        "typed Boston, houses": ("/api/boston", {"houses": [house] * limits["rows"]}),
        "V2 Boston, JSON tensor": ("/v2/models/boston/infer", boston_v2),
    }
    return {
        kind: (path, json.dumps(body, separators=(",", ":")).encode())
        for kind, (path, body) in bodies.items()
    }


def peak_rss_mib(process: psutil.Process) -> float:
    for line in Path(f"/proc/{process.pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError("no VmHWM in /proc")


def post(url: str, path: str, body: bytes) -> tuple[int | str, float]:
    started = time.perf_counter()
    try:
        answer = httpx.post(f"{url}{path}", content=body, timeout=300,
                            headers={"content-type": "application/json"})  # fmt: skip
        status: int | str = answer.status_code
    except httpx.HTTPError as error:
        status = type(error).__name__
    return status, time.perf_counter() - started


def memory_point(checkout: Path, kind: str, path: str, body: bytes, folder: Path) -> dict:
    process, url = start_service(folder / "service.log", checkout=checkout)
    try:
        server = psutil.Process(process.pid)
        idle = server.memory_info().rss / 2**20
        with ThreadPoolExecutor(CONCURRENT_BODIES) as pool:
            results = list(pool.map(lambda _: post(url, path, body), range(CONCURRENT_BODIES)))
        probe = httpx.get(f"{url}/v2/health/ready", timeout=30).status_code
        peak = peak_rss_mib(server)
    finally:
        stop_server(process)
    return {
        "kind": kind,
        "path": path,
        "body_mib": len(body) / 2**20,
        "idle_rss_mib": idle,
        "peak_rss_mib": peak,
        "statuses": [status for status, _ in results],
        "seconds": max(seconds for _, seconds in results),
        "alive_after": probe == 200,
    }


def probe_point(checkout: Path, path: str, body: bytes, folder: Path) -> dict:
    """Health-probe latencies while one largest text batch is encoded. The batch goes from its own
    process (curl), so that sending it takes nothing from the probing client."""
    process, url = start_service(folder / "service.log", checkout=checkout)
    latencies: list[float] = []
    body_file = folder / "largest-batch.json"
    body_file.write_bytes(body)
    try:
        with httpx.Client(base_url=url, timeout=30) as client:
            client.get("/v2/health/ready")  # the connection is open
            started = time.perf_counter()
            batch = subprocess.Popen(
                ["curl", "-sS", "-o", "/dev/null", "-w", "%{http_code}", "-H",
                 "content-type: application/json", "--data-binary", f"@{body_file}",
                 f"{url}{path}"],
                stdout=subprocess.PIPE, text=True,
            )  # fmt: skip
            while batch.poll() is None:
                sent = time.perf_counter()
                client.get("/v2/health/ready")
                latencies.append((time.perf_counter() - sent) * 1000)
                time.sleep(PROBE_INTERVAL_S)
            seconds = time.perf_counter() - started
            status = batch.communicate()[0]
    finally:
        stop_server(process)
    ordered = sorted(latencies)
    return {
        "status": status,
        "batch_seconds": seconds,
        "probes": len(latencies),
        "p50_ms": statistics.median(ordered),
        "p99_ms": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))],
        "max_ms": ordered[-1],
    }


def throughput(checkouts: dict[str, Path], args, folder: Path) -> dict[str, dict]:
    """Boston V2 at c=8: the checkouts' servers run side by side, measured in turns."""
    (workload,) = [w for w in write_workloads(["boston"], folder) if w.endpoint == "v2"]
    servers = {name: start_service(folder / f"{name}.log", checkout=checkout)
               for name, checkout in checkouts.items()}  # fmt: skip
    runs: dict[str, list] = {name: [] for name in checkouts}
    try:
        for _ in range(args.rounds):
            for name, (_, url) in servers.items():
                runs[name].append(warm_run(url, workload, 8, args.duration))
    finally:
        for process, _ in servers.values():
            stop_server(process)
    return {name: median_of(results) for name, results in runs.items()}


def measure(checkouts: dict[str, Path], args) -> dict:
    folder = args.out.parent / f"{args.out.name}-work"
    folder.mkdir(parents=True, exist_ok=True)
    results: dict = {"memory": {}, "probe": {}, "limits": {}}
    for name, checkout in checkouts.items():
        limits = service_limits(checkout)
        bodies = largest_bodies(limits)
        results["limits"][name] = limits
        results["memory"][name] = [
            memory_point(checkout, kind, path, body, folder)
            for kind, (path, body) in bodies.items()
        ]
        results["probe"][name] = probe_point(checkout, *bodies["typed IMDB, raw reviews"], folder)
        print(f"{name}: memory and probe measured", file=sys.stderr)
    results["throughput"] = throughput(checkouts, args, folder)
    return results


def report(results: dict) -> str:
    names = list(results["limits"])
    memory_rows = []
    for i, point in enumerate(results["memory"][names[0]]):
        row = [point["kind"]]
        for name in names:
            p = results["memory"][name][i]
            statuses = ", ".join(str(s) for s in p["statuses"])
            row += [f"{p['body_mib']:.1f}", f"{p['idle_rss_mib']:.0f} → {p['peak_rss_mib']:.0f}",
                    statuses, f"{p['seconds']:.1f}"]  # fmt: skip
        memory_rows.append(row)
    header = ["body kind"]
    for name in names:
        header += [f"{name}: MiB each", f"{name}: RSS idle → peak MiB", f"{name}: answers",
                   f"{name}: s"]  # fmt: skip
    probe_rows = [[name, p["probes"], f"{p['p50_ms']:.1f}", f"{p['p99_ms']:.1f}",
                   f"{p['max_ms']:.1f}", p["status"], f"{p['batch_seconds']:.1f}"]
                  for name, p in results["probe"].items()]  # fmt: skip
    rps = results["throughput"]
    rps_rows = [[name, f"{t['rps']:,.0f}", " / ".join(f"{r:,.0f}" for r in t["runs_rps"]),
                 f"{t['p50_ms']:.2f}", f"{t['p99_ms']:.2f}", t["errors"]]
                for name, t in rps.items()]  # fmt: skip
    lines = [
        "# The data plane's limits: memory, event loop, throughput",
        "",
        f"Regenerate: `{results['command']}`  ",
        f"Measured {results['date']}; "
        + "; ".join(f"{name}: {code}" for name, code in results["code"].items())
        + ".",
        "",
        *machine_lines(results["machine"]),
        "",
        f"## Peak memory, {CONCURRENT_BODIES} concurrent maximum-size bodies of each kind",
        "",
        "Each checkout with its own default limits: "
        + "; ".join(
            f"{n}: body ≤ {lim['body'] / 2**20:.0f} MiB, ≤ {lim['rows']} rows, "
            f"≤ {lim['chars']:,} characters a text"
            for n, lim in results["limits"].items()
        )
        + ". Peak = the server's VmHWM after the four were answered; target < 400 MiB.",
        "",
        *table(header, memory_rows),
        "",
        "## Health probe while the largest text batch is encoded",
        "",
        "`GET /v2/health/ready` on a keep-alive connection every 5 ms while one maximum-size "
        "`/api/imdb` batch is encoded and run; target p99 < 50 ms.",
        "",
        *table(
            ["checkout", "probes", "p50 ms", "p99 ms", "max ms", "batch answer", "batch s"],
            probe_rows,
        ),
        "",
        "## Boston V2 throughput, c=8 (wrk)",
        "",
        *table(
            ["checkout", "rps (median)", "rps of each run", "p50 ms", "p99 ms", "errors"], rps_rows
        ),
    ]
    if len(names) == 2:
        before, after = names
        lines += ["", f"after ÷ before: {rps[after]['rps'] / rps[before]['rps']:.2f}"]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", type=Path, help="another checkout of the service to compare")
    parser.add_argument("--rounds", type=int, default=3, help="throughput runs per checkout")
    parser.add_argument("--duration", type=int, default=10, help="seconds per throughput run")
    parser.add_argument("--out", type=Path, default=REPO / "reports" / "dataplane")
    args = parser.parse_args(argv)
    checkouts = {"before": args.before.resolve(), "after": REPO} if args.before else {"this": REPO}
    started = time.perf_counter()
    results = measure(checkouts, args)
    results |= provenance("dataplane", argv) | {
        "code": {name: service_code(path) for name, path in checkouts.items()},  # each checkout's
        "wall_s": time.perf_counter() - started,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.with_suffix(".json").write_text(json.dumps(results, indent=2), "utf-8")
    args.out.with_suffix(".md").write_text(report(results), "utf-8")
    print(report(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
