"""Load tests and benchmarks of the service: one entry point, `python -m loadtest BENCHMARK`
(`python -m loadtest --help` lists them), run from the repository's root.

- `scenarios/`: one module per benchmark, each runnable (`benchmark`, `dataplane`, `grpc`,
  `protocols`, `settings`, `threads`, `tracing`, `startup`, `trainer`, `memory`, `before_after`,
  `profile_service`, `locust` (the locust scenarios headless), `samples` (writes
  `samples.json`)).
- `harness/`: what the scenarios share: `servers.py` (start, wait until ready, stop the service
  and the baselines), `wrk.py` (the load generator wrk and the bodies it sends), `generator.py`
  (the asyncio gRPC/REST generator), `payloads.py` (request bodies from `samples.json`),
  `measure.py` (a measured point), `targets.py` (ratios and targets), `report.py`, `charts.py`,
  `soak.py` (the benchmark's last step: locust with every model reloaded half-way),
  `otlp_receiver.py` (a local OTLP/HTTP trace receiver; `python -m loadtest.harness.otlp_receiver`
  prints the spans it receives).
- `baselines/`: the servers the service is compared with (HTTP floor, plain FastAPI, naive Keras,
  the compute limit).
- Inputs of the external tools, where they look for them: `locustfile.py` (`locust -f
  loadtest/locustfile.py`), `wrk.lua`, `wrk_binary.lua`, `wrk_common.lua`, and `samples.json`.
"""
