"""Load tests and benchmarks of the service, run from the repository's root as modules
(`python -m loadtest.benchmark`, `python -m loadtest.run`, ...).

- `locustfile.py`, `run.py`: the locust scenarios and their headless run; `payloads.py` and
  `samples.json` (`make_samples.py`): the request bodies every load test sends.
- The benchmark, in parts: `benchmark.py` (the command: which servers, which points), `wrk.py`
  (the load generator wrk, its scripts `wrk*.lua` and the bodies it sends), `generator.py` (the
  asyncio generator for gRPC), `servers.py` (starting and stopping the service and the
  baselines of `baselines/`), `measure.py` (a measured point), `soak.py`, `targets.py` (ratios
  and targets), `report.py` and `charts.py`.
- Focused benchmarks: `dataplane_benchmark.py`, `protocols_benchmark.py`, `grpc_benchmark.py`,
  `tracing_benchmark.py` (+ `otlp_receiver.py`), `startup_benchmark.py`, `trainer_benchmark.py`,
  and `profile_service.py` (py-spy while wrk drives the service).
"""
