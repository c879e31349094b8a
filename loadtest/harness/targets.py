"""Ratios and targets, from the measured numbers alone (no I/O): the service's requests per second
over each baseline's at the same model, endpoint and concurrency, and the targets' verdicts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from loadtest.harness.measure import ComputeLimit, Point
from loadtest.harness.payloads import is_sparse

# The servers measured, by series name (see `loadtest/scenarios/benchmark.py` for how each is started).
SERIES = {
    "off": "service, batching off",
    "on": "service, batching on",
    "workers2": "service, 2 workers",
    "floor": "HTTP floor",
    "plain": "plain FastAPI",
    "naive": "naive Keras",
}
SERVICE = ("off", "on")
ENDPOINTS = {
    "typed": "typed",
    "v2": "V2 JSON",
    "v2-32": "V2 JSON, 32 rows",
    "binary": "V2 binary",
    "grpc": "gRPC (asyncio client)",
    "v2-py": "V2 JSON (asyncio client)",
}
# The ratios table's columns: series over series; "compute" is the compute limit.
RATIOS = (("off", "floor"), ("on", "floor"), ("off", "plain"), ("on", "plain"),
          ("off", "naive"), ("on", "naive"), ("on", "off"), ("workers2", "on"),
          ("off", "compute"), ("on", "compute"))  # fmt: skip
FLOOR_C8, FLOOR_C64, TYPED_FLOOR, IMDB_FLOOR = 0.8, 1.0, 0.7, 0.4
BATCHING_FACTOR = 2
LONE_RPS, LONE_P50, CPU_MS = 0.7, 1.5, 0.12
ROWS32_FLOOR = 0.4
PLAIN_FACTOR = 1.5
NAIVE_FACTOR = 20
WORKERS_FACTOR = 1.5
BINARY_FACTOR = 10


@dataclass(frozen=True)
class RatioRow:
    model: str
    endpoint: str
    concurrency: int
    values: dict[str, float | None]  # "on/floor": the service with batching on over the floor


@dataclass(frozen=True)
class Target:
    """One row of the targets table; a row that does not count is shown only."""

    group: str
    requirement: str
    measured: str
    status: str  # "PASS", "FAIL" or "not measured"
    counts: bool = True


def fmt_ratio(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.2f}" if value < 10 else f"{value:,.0f}"


def ratio(numerator: float | None, denominator: float | None) -> float | None:
    return numerator / denominator if numerator is not None and denominator else None


def find(points: list[Point], series: str, model: str, endpoint: str, c: int) -> Point | None:
    wanted = (series, model, endpoint, c)
    return next((p for p in points
                 if (p.series, p.model, p.endpoint, p.concurrency) == wanted), None)  # fmt: skip


def compute_rps(limits: list[ComputeLimit], model: str, endpoint: str) -> float | None:
    """The compute limit of an endpoint: "encode + run" for a text model's typed endpoint (raw
    text in), "run" for one row otherwise; none for several rows per request."""
    kinds = {row.kind: row.rps for row in limits if row.model == model}
    if endpoint == "typed" and "encode + run" in kinds:
        return kinds["encode + run"]
    return None if endpoint == "v2-32" else kinds.get("run")


def ratios(points: list[Point], limits: list[ComputeLimit]) -> list[RatioRow]:
    """A row per model, endpoint and concurrency the service was measured at."""
    order = list(ENDPOINTS)
    keys = {(p.model, order.index(p.endpoint), p.concurrency) for p in points
            if p.series in SERVICE}  # fmt: skip
    rows = []
    for model, index, c in sorted(keys):
        endpoint = order[index]
        rps = {name: getattr(find(points, name, model, endpoint, c), "rps", None)
               for name in SERIES}  # fmt: skip
        rps["compute"] = compute_rps(limits, model, endpoint)
        values = {f"{a}/{b}": ratio(rps[a], rps[b]) for a, b in RATIOS}
        rows.append(RatioRow(model, endpoint, c, values))
    return rows


def at_least(value: float | None, bound: float) -> str:
    return "not measured" if value is None else "PASS" if value >= bound else "FAIL"


def at_most(value: float | None, bound: float) -> str:
    return "not measured" if value is None else "PASS" if value <= bound else "FAIL"


def best_service(
    points: list[Point],
    model: str,
    endpoint: str,
    c: int,
    measure: Callable[[Point], float | None],
    lower_is_better: bool = False,
) -> tuple[float | None, str]:
    """The better of the service's `measure` with batching off and on, and a text naming both."""
    values = {s: measure(p) if (p := find(points, s, model, endpoint, c)) else None
              for s in SERVICE}  # fmt: skip
    known = [v for v in values.values() if v is not None]
    if not known:
        return None, "not measured"
    best = min(known) if lower_is_better else max(known)
    return best, f"off {fmt_ratio(values['off'])}, on {fmt_ratio(values['on'])}"


def over(points: list[Point], model: str, endpoint: str, c: int, baseline: str):
    """The service's better rps over a baseline series' at the same point."""
    other = find(points, baseline, model, endpoint, c)
    value, text = best_service(points, model, endpoint, c,
                               lambda p: ratio(p.rps, other.rps if other else None))  # fmt: skip
    return value, f"{fmt_ratio(value)} × ({text})" if value is not None else text


def floor_targets(points: list[Point]) -> list[Target]:
    rows = []
    for model, endpoint, c, share in (("boston", "v2", 8, FLOOR_C8), ("boston", "v2", 64, FLOOR_C64),
                                      ("boston", "typed", 8, TYPED_FLOOR),
                                      ("imdb", "typed", 64, IMDB_FLOOR)):  # fmt: skip
        value, text = over(points, model, endpoint, c, "floor")
        name = f"{model.capitalize() if model == 'boston' else 'IMDB'} {ENDPOINTS[endpoint]}"
        rows.append(Target("floor", f"{name}, c={c}: service ≥ {share} × floor rps", text,
                           at_least(value, share)))  # fmt: skip
    off, on = (find(points, s, "imdb", "typed", 64) for s in SERVICE)
    value = ratio(on.rps if on else None, off.rps if off else None)
    rows.append(Target("batching", f"IMDB typed (raw text), c=64: batching on ≥ "
                       f"{BATCHING_FACTOR} × off", f"{fmt_ratio(value)} × off",
                       at_least(value, BATCHING_FACTOR)))  # fmt: skip
    return rows


def lone_client_targets(points: list[Point]) -> list[Target]:
    value, text = over(points, "boston", "v2", 1, "floor")
    rows = [Target("lone client", f"Boston V2 JSON, c=1: service ≥ {LONE_RPS} × floor rps", text,
                   at_least(value, LONE_RPS))]  # fmt: skip
    floor = find(points, "floor", "boston", "v2", 1)
    value, text = best_service(points, "boston", "v2", 1,
                               lambda p: ratio(p.p50_ms, floor.p50_ms if floor else None),
                               lower_is_better=True)  # fmt: skip
    measured = "not measured" if value is None else f"{fmt_ratio(value)} × floor p50 ({text})"
    rows.append(Target("lone client", f"Boston V2 JSON, c=1: service p50 ≤ {LONE_P50} × floor p50",
                       measured, at_most(value, LONE_P50)))  # fmt: skip
    value, text = best_service(points, "boston", "v2", 8, lambda p: p.server_cpu_ms_per_request,
                               lower_is_better=True)  # fmt: skip
    measured = "not measured" if value is None else f"{value:.3f} ms"
    rows.append(Target("lone client", f"Boston V2 JSON, c=8: server CPU ≤ {CPU_MS} ms per request",
                       measured, at_most(value, CPU_MS)))  # fmt: skip
    return rows


def rows32_targets(points: list[Point]) -> list[Target]:
    value, text = over(points, "boston", "v2-32", 8, "floor")
    rows = [Target("32 rows", f"Boston V2 JSON, 32 rows, c=8: service ≥ {ROWS32_FLOOR} × floor "
                   "rps", text, at_least(value, ROWS32_FLOOR))]  # fmt: skip
    c8 = best_service(points, "boston", "v2-32", 8, lambda p: p.rps)[0]
    c64 = best_service(points, "boston", "v2-32", 64, lambda p: p.rps)[0]
    value = ratio(c64, c8)
    rows.append(Target("32 rows", "Boston V2 JSON, 32 rows: service rps at c=64 ≥ at c=8",
                       f"{fmt_ratio(value)} × c=8", at_least(value, 1)))  # fmt: skip
    return rows


def plain_targets(points: list[Point]) -> list[Target]:
    """One row: the lowest of the service's ratios over the plain app, at every point it has."""
    found = []
    for p in points:
        if p.series == "plain":
            value, _ = over(points, p.model, p.endpoint, p.concurrency, "plain")
            if value is not None:
                found.append((value, f"{p.model} {ENDPOINTS[p.endpoint]}, c={p.concurrency}"))
    lowest = min(found, default=None)
    measured = ("not measured" if lowest is None
                else f"lowest {fmt_ratio(lowest[0])} × ({lowest[1]}), over {len(found)} points")  # fmt: skip
    requirement = f"every point: service ≥ {PLAIN_FACTOR} × plain FastAPI rps"
    return [Target("plain", requirement, measured,
                   at_least(lowest and lowest[0], PLAIN_FACTOR))]  # fmt: skip


def naive_targets(points: list[Point]) -> list[Target]:
    rows = []
    for model in ("boston", "imdb"):
        value, text = over(points, model, "v2", 8, "naive")
        name = "Boston" if model == "boston" else "IMDB"
        rows.append(Target("naive", f"{name} V2 JSON, c=8: service ≥ {NAIVE_FACTOR} × naive rps",
                           text, at_least(value, NAIVE_FACTOR)))  # fmt: skip
    return rows


def workers_targets(points: list[Point], metrics_status: int | str | None) -> list[Target]:
    two, one = find(points, "workers2", "boston", "v2", 64), find(points, "on", "boston", "v2", 64)
    value = ratio(two.rps if two else None, one.rps if one else None)
    rows = [Target("workers", f"Boston V2 JSON, c=64: SERVICE_WORKERS=2 ≥ {WORKERS_FACTOR} × "
                   "one worker's rps (batching on)", f"{fmt_ratio(value)} × one worker",
                   at_least(value, WORKERS_FACTOR))]  # fmt: skip
    status = ("not measured" if metrics_status is None
              else "PASS" if metrics_status == 200 else "FAIL")  # fmt: skip
    rows.append(
        Target(
            "workers",
            "SERVICE_WORKERS=2: GET /metrics answers 200 after the load",
            "not measured" if metrics_status is None else str(metrics_status),
            status,
        )
    )
    return rows


def rps_ratio(points: list[Point], top: tuple, bottom: tuple) -> float | None:
    """rps of one point over another's, each given as (series, model, endpoint, c)."""
    a, b = find(points, *top), find(points, *bottom)
    return ratio(a.rps if a else None, b.rps if b else None)


def protocol_targets(points: list[Point]) -> list[Target]:
    """Binary over JSON and gRPC over REST, each beside the same ratio for the floor: what the
    HTTP server and grpcio alone allow (the floor's binary rps over the service's JSON rps; the
    floor's bare gRPC method over its bare route)."""
    rows = []
    # Binary pays where JSON rows are wide: IMDB's dense rows (50,000 numbers), not a sparse
    # version's few hundred ids.
    imdb_factor = None if is_sparse("imdb") else BINARY_FACTOR
    for model, factor in (("imdb", imdb_factor), ("boston", None)):
        value = rps_ratio(points, ("on", model, "binary", 8), ("on", model, "v2", 8))
        most = rps_ratio(points, ("floor", model, "binary", 8), ("on", model, "v2", 8))
        measured = f"{fmt_ratio(value)} × JSON (the floor's binary: {fmt_ratio(most)} ×)"
        name = "IMDB" if model == "imdb" else "Boston"
        if factor:
            rows.append(Target("binary", f"{name} V2, c=8: binary ≥ {factor} × JSON rps",
                               measured, at_least(value, factor)))  # fmt: skip
        else:
            rows.append(Target("binary", f"{name} V2, c=8: binary beside JSON (shown only)",
                               measured, at_least(value, 0), counts=False))  # fmt: skip
    value = rps_ratio(points, ("on", "boston", "grpc", 8), ("on", "boston", "v2-py", 8))
    floors = rps_ratio(points, ("floor", "boston", "grpc", 8), ("floor", "boston", "v2-py", 8))
    rows.append(Target("gRPC", "Boston, c=8, the same asyncio client: gRPC ≥ REST V2 JSON rps",
                       f"{fmt_ratio(value)} × REST (the floor's: {fmt_ratio(floors)} ×)",
                       at_least(value, 1)))  # fmt: skip
    return rows


def soak_target(passed: bool | None, summary: str) -> Target:
    status = "not measured" if passed is None else "PASS" if passed else "FAIL"
    return Target("soak", "soak: 0 failures, every reload answered 200", summary, status)


def targets(points: list[Point], metrics_status: int | str | None, soak_passed: bool | None,
            soak_summary: str) -> list[Target]:  # fmt: skip
    return [
        *floor_targets(points),
        *lone_client_targets(points),
        *rows32_targets(points),
        *plain_targets(points),
        *naive_targets(points),
        *workers_targets(points, metrics_status),
        *protocol_targets(points),
        soak_target(soak_passed, soak_summary),
    ]


def verdicts(rows: list[Target]) -> dict[str, str]:
    """Each group's verdict from its rows that count: FAIL if one fails, PASS if all pass."""
    statuses: dict[str, set[str]] = {}
    for row in rows:
        if row.counts:
            statuses.setdefault(row.group, set()).add(row.status)
    return {
        group: next(s for s in ("FAIL", "not measured", "PASS") if s in found)
        for group, found in statuses.items()
    }
