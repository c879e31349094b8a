"""A text model's dense version beside its sparse one, side by side in one service and one run:
onnxruntime's time per row, and what clients get over the typed endpoint and V2 JSON.

    python -m loadtest sparse_serving [--dense 2] [--sparse 3] [--concurrency 1 8 64]
                                      [--duration 5] [--warmup 1] [--batches 1 64]
                                      [--repository models] [--out reports/sparse_serving]

Per row: each version of IMDB and Reuters opened as the service opens it (one intra-op thread),
run on the benchmark's sample texts encoded by its own encoder (dense rows, or padded ids and
weights), the median of 3 runs of 2 s per batch size. Throughput: one `python -m service` on the
repository, wrk sending IMDB's sample reviews one per request to `/api/imdb?version=N` (raw text)
and to `/v2/models/imdb/versions/N/infer` (the dense version: its 50,000-wide row as JSON; the
sparse one: the review's n-gram ids), each point measured for both versions in turn. The
measurement behind issue 21's "done when": the sparse version's cost per row whatever its
vocabulary, typed at c=64 and V2 JSON against the dense version's.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from contract.config import ONNX_FILE, list_versions, read_config
from contract.text import TextEncoder
from loadtest.baselines.compute_limit import time_calls
from loadtest.harness.measure import PointSettings, measure_server, median_round
from loadtest.harness.payloads import SAMPLES, compact
from loadtest.harness.report import machine_lines, provenance, table
from loadtest.harness.servers import REPO, running, start_service
from loadtest.harness.wrk import json_workload
from service.runtime import OnnxRuntime
from service.settings import Settings

TEXT_MODELS = ("imdb", "reuters")


def encoded(folder: Path, size: int) -> tuple[OnnxRuntime, object]:
    """The version's runtime, and a batch of `size` sample texts (repeated) as it takes them."""
    config = read_config(folder)
    runtime = OnnxRuntime(folder / ONNX_FILE, Settings(_env_file=None).providers, 1).bind(config)
    encoder = TextEncoder.load(config.encoding, folder)
    name = config.name
    texts = [SAMPLES[name][i % len(SAMPLES[name])]["text"] for i in range(size)]
    rows = encoder.sparse_rows(encoder.word_ids_batch(texts))
    if config.encoding.form == "sparse":
        return runtime, lambda: runtime.run_sparse(rows)
    dense = rows.dense()
    return runtime, lambda: runtime.run(dense)


def per_row(repository: Path, batches: list[int]) -> list[dict]:
    results = []
    for name in TEXT_MODELS:
        for version in list_versions(repository)[name]:
            folder = repository / name / str(version)
            form = read_config(folder).encoding.form
            for size in batches:
                _, call = encoded(folder, size)
                time_calls(lambda i, call=call: call(), 1, 0.5)  # warm-up
                runs = [time_calls(lambda i, call=call: call(), 1, 2) for _ in range(3)]
                result = {"model": name, "version": version, "form": form, "batch": size,
                          "us_per_row": 1e6 / median_round(runs)["rps"] / size}  # fmt: skip
                results.append(result)
                print(json.dumps(result), flush=True)
    return results


def v2_bodies(folder: Path) -> list[dict]:
    """A V2 JSON body per sample review, as the version takes it."""
    config = read_config(folder)
    encoder = TextEncoder.load(config.encoding, folder)
    texts = [sample["text"] for sample in SAMPLES[config.name]]
    rows = encoder.sparse_rows(encoder.word_ids_batch(texts))
    bodies = []
    for i in range(len(texts)):
        row = rows.take(i, i + 1)
        if config.encoding.form == "dense":
            tensors = [("encoded_text", "FP32", compact(row.dense()[0]))]
        else:
            tensors = [("ids", "INT64", row.columns.tolist())]
            if len(config.inputs) == 2:
                tensors.append(("weights", "FP32", row.values.tolist()))
        bodies.append({"inputs": [
            {"name": n, "datatype": d, "shape": [1, len(data)], "data": data}
            for n, d, data in tensors
        ]})  # fmt: skip
    return bodies


def throughput(args: argparse.Namespace) -> list[dict]:
    folder = args.out.parent / "sparse_serving"
    folder.mkdir(parents=True, exist_ok=True)
    typed = [{"reviews": [sample["text"]]} for sample in SAMPLES["imdb"]]
    plan = []
    for endpoint in ("typed", "v2"):
        for c in args.concurrency:
            for version in (args.dense, args.sparse):
                path = (
                    f"/api/imdb?version={version}"
                    if endpoint == "typed"
                    else f"/v2/models/imdb/versions/{version}/infer"
                )
                bodies = (
                    typed
                    if endpoint == "typed"
                    else v2_bodies(args.repository / "imdb" / str(version))
                )
                (folder / f"v{version}").mkdir(exist_ok=True)
                workload = json_workload("imdb", endpoint, path, bodies, folder / f"v{version}")
                plan.append((workload, c, version))
    server = start_service(
        folder / "service.log", {"SERVICE_GRPC_PORT": "0"}, repository=args.repository
    )
    settings = PointSettings(duration=args.duration, warmup=args.warmup)
    results = []
    with running(server):
        for workload, c, version in plan:
            (point,), _ = measure_server(f"v{version}", f"imdb v{version}", server,
                                         [(workload, c)], settings)  # fmt: skip
            results.append({"version": version, "endpoint": workload.endpoint, "c": c,
                            "rps": point.rps, "p50_ms": point.p50_ms, "p99_ms": point.p99_ms,
                            "server_cpu_ms": point.server_cpu_ms_per_request,
                            "errors": point.error_count})  # fmt: skip
    return results


def report(rows: list[dict], points: list[dict], info: dict, args) -> list[str]:
    per_row_table = [[r["model"], r["version"], r["form"], r["batch"], f"{r['us_per_row']:.1f}"]
                     for r in rows]  # fmt: skip
    by_key = {(p["endpoint"], p["c"], p["version"]): p for p in points}
    side_by_side = []
    for (endpoint, c, version), p in by_key.items():
        if version != args.sparse:
            continue
        dense = by_key[(endpoint, c, args.dense)]
        side_by_side.append([
            "typed (raw text)" if endpoint == "typed" else "V2 JSON", c,
            f"{dense['rps']:,.0f}", f"{p['rps']:,.0f}", f"{p['rps'] / dense['rps']:.2f}",
            f"{dense['p50_ms']:.2f}", f"{p['p50_ms']:.2f}",
            f"{dense['server_cpu_ms']:.3f}", f"{p['server_cpu_ms']:.3f}",
            dense["errors"] + p["errors"],
        ])  # fmt: skip
    return [
        "# Sparse text serving: the dense version beside the sparse one",
        "",
        f"`{info['command']}`, {info['date']}, code: {info['code']}.",
        "",
        "## onnxruntime per row",
        "",
        "One intra-op thread, the service's session options; the benchmark's sample texts, "
        "encoded by each version's encoder; the median of 3 runs of 2 s. µs per row.",
        "",
        *table(["model", "version", "form", "batch", "µs per row"], per_row_table),
        "",
        f"## IMDB through the service: version {args.dense} (dense) and {args.sparse} (sparse)",
        "",
        "One service, wrk sending one sample review per request, each point measured for both "
        f"versions in turn ({args.duration} s after {args.warmup} s of warm-up). Requests per "
        "second, p50 latency (ms), server CPU per request (ms).",
        "",
        *table(
            [
                "endpoint",
                "c",
                f"rps v{args.dense}",
                f"rps v{args.sparse}",
                "×",
                f"p50 v{args.dense}",
                f"p50 v{args.sparse}",
                f"CPU v{args.dense}",
                f"CPU v{args.sparse}",
                "errors",
            ],
            side_by_side,
        ),
        "",
        *machine_lines(info["machine"]),
        "",
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dense", type=int, default=2, help="the dense version of IMDB")
    parser.add_argument("--sparse", type=int, default=3, help="the sparse version of IMDB")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 8, 64])
    parser.add_argument("--batches", type=int, nargs="+", default=[1, 64])
    parser.add_argument("--duration", type=int, default=5)
    parser.add_argument("--warmup", type=int, default=1)
    parser.add_argument("--repository", type=Path, default=REPO / "models")
    parser.add_argument("--out", type=Path, default=Path("reports/sparse_serving"))
    args = parser.parse_args()
    info = provenance("sparse_serving", None)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    rows = per_row(args.repository, args.batches)
    points = throughput(args)
    args.out.with_suffix(".json").write_text(
        json.dumps({**info, "per_row": rows, "throughput": points}, indent=1)
    )
    args.out.with_suffix(".md").write_text("\n".join(report(rows, points, info, args)), "utf-8")
    print(f"wrote {args.out}.md")


if __name__ == "__main__":
    main()
